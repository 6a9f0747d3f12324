//! Deterministic OCI images without a daemon.
//!
//! An image is a config plus layers; an index is images by platform. This
//! crate writes layers bit-for-bit reproducibly from an in-memory [`Tree`],
//! keeps blobs in an [`OciLayout`], and moves whole layouts into and out of
//! archives. Nothing here knows about netshoot.

pub mod archive;
pub mod compress;
pub mod digest;
pub mod json;
pub mod layer;
pub mod layout;
pub mod platform;
pub mod tree;

pub use compress::Compression;
pub use digest::{Digest, HashingWriter};
pub use json::canonical_json;
pub use layer::{write_layer, LayerInfo, LayerOptions};
pub use layout::{BlobRef, OciLayout};
pub use oci_spec;
pub use platform::Platform;
pub use tree::{Body, Entry, Meta, Node, Tree};
