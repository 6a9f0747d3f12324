//! An OCI distribution client for pushing and pulling OCI image layouts.
//!
//! [`Client::push_layout`] sends an image from an [`image_layout::OciLayout`]
//! to a registry (parallel blob uploads, cross-repository mounts,
//! monolithic or chunked uploads with resume, retries with backoff), and
//! [`Client::pull`] fetches one into a layout, verifying every digest.
//! Authentication follows what docker and podman do: anonymous, Basic, or
//! Bearer tokens from the registry's token service, with credentials from
//! explicit options, podman's `auth.json`, docker's `config.json` and
//! credential helpers. Secrets never appear in `Debug` output or errors.
//! Referrers are also listed under the referrers tag schema on registries
//! without the referrers API (see [`referrers`]).

// Errors carry the registry, repository and object they are about, which
// makes them large; they are built only on the cold failure path.
#![allow(clippy::result_large_err)]
#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod error;
mod manifest;
mod parallel;
mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod referrers;

pub use auth::{CredentialSources, Credentials, Secret};
pub use client::{Client, ClientOptions, RetryHook, RetryPolicy};
pub use error::{Error, Result};
pub use push::{BlobOutcome, ProgressEvent, PushReport};
pub use reference::Reference;
