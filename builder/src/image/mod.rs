//! Turning prepared sources into an OCI image: the recipes, the writing
//! of layers, configs, manifests and the index, and the staging of the
//! output.

pub mod recipe;
pub mod referrers;
pub mod stage;
pub mod write;
