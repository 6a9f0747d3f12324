//! netshoot-build library.
