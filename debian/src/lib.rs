//! Debian archive access for `netshoot-build`: signed repository metadata,
//! dpkg's version ordering, package relations, a deterministic resolver and
//! a `.deb` reader that never extracts anything onto the host.

pub mod control;
