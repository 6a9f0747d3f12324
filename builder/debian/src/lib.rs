//! Debian archive access for `netshoot-build`: signed repository metadata,
//! dpkg's version ordering, package relations, a deterministic resolver and
//! a `.deb` reader that never extracts anything onto the host.

pub mod caps;
pub mod control;
pub mod deb;
pub mod fileop;
pub mod maintscript;
pub mod net;
pub mod packages;
pub mod relation;
pub mod release;
pub mod repository;
pub mod resolver;
pub mod sources;
pub mod sources_list;
pub mod version;
