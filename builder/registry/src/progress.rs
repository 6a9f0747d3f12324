//! What a transfer reports while it runs and how each blob got there.
//!
//! The vocabulary that push, pull and the worker pool share. It lives below
//! all of them, so that none has to import another for it (the types are
//! still named `registry::push::ProgressEvent` and so on, as before).

use image_layout::Digest;
use std::time::Duration;

/// How one blob reached the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Its bytes were sent.
    Uploaded,
    /// The registry already had it in the target repository.
    Skipped,
    /// Mounted from another repository of the same registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// Downloaded (pull).
    Downloaded,
}

/// What a push or pull reports while it runs.
#[derive(Clone, Debug)]
pub enum ProgressEvent {
    /// A blob transfer starts.
    BlobStarted {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// A blob is done.
    BlobDone {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// How.
        outcome: BlobOutcome,
    },
    /// A manifest or index was stored under `reference` (a digest or tag).
    ManifestPushed {
        /// Tag or digest it was put under.
        reference: String,
        /// Its digest.
        digest: Digest,
    },
    /// A transfer failed and will be tried again.
    Retrying {
        /// What is retried.
        what: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Why (one line, no secrets).
        error: String,
        /// The wait before the next attempt.
        delay: Duration,
    },
}
