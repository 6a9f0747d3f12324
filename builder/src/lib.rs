//! The `netshoot-build` library: spec, sources, assembly and commands.
//! `main.rs` only parses the command line and calls into here.

pub mod apt;
pub mod build;
pub mod bundle;
pub mod cache;
pub mod certhash;
pub mod elf;
pub mod error;
pub mod fileops;
pub mod guard;
pub mod image;
pub mod inspect;
pub mod layercache;
pub mod layering;
pub mod lockfile;
pub mod net;
pub mod progress;
pub mod push;
pub mod rootfs;
pub mod sbom;
pub mod source;
pub mod spec;
pub mod store;
pub mod target;
pub mod urls;
pub mod variant;
pub mod verify;
pub mod zig;
