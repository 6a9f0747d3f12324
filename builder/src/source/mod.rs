//! Sources: where an image's files come from. Every kind (Debian
//! packages, compiled crates, pinned downloads, files beside the spec,
//! Debian source packages compiled for the static toolbox) has the same
//! shape, the [`Source`] trait, so the pipeline in `build.rs` treats them
//! alike: lock, pin first downloads, then prepare each platform's
//! contribution, everything fetched and verified before anything is
//! written.
//!
//! To add a kind: a file here implementing [`Source`], its spec and lock
//! types in `spec.rs`/`lockfile.rs`, and one line in [`for_image`].

pub mod apt;
pub mod cargo;
pub mod debsrc;
pub mod local;
pub mod url;

use crate::apt::MirrorConfig;
use crate::cache::Cache;
use crate::error::Result;
use crate::lockfile::Lockfile;
use crate::progress::Progress;
use crate::sbom::SbomPackage;
use crate::spec::Spec;
use crate::target::Target;
use image_layout::Tree;
use std::collections::BTreeMap;

/// What every source may use while it locks or prepares.
pub struct Context<'a> {
    /// The spec.
    pub spec: &'a Spec,
    /// The content store.
    pub cache: &'a Cache,
    /// Where mirrors come from.
    pub mirrors: &'a MirrorConfig,
    /// Profiles whose entries are built too.
    pub profiles: &'a [String],
    /// Refuse to pin or relock.
    pub locked: bool,
    /// `SOURCE_DATE_EPOCH`.
    pub epoch: u64,
    /// Step lines.
    pub log: &'a (dyn Fn(String) + Sync),
    /// Bars and spinners.
    pub progress: &'a Progress,
}

/// Files owned by packages: which package placed each path, and each
/// package's source package, so layering keeps packages together.
#[derive(Clone, Debug, Default)]
pub struct Owners {
    /// Path → package name.
    pub origin: BTreeMap<String, String>,
    /// Package name → source package name.
    pub sources: BTreeMap<String, String>,
}

/// Where a source's files go when they are not a package manager's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// The top layer, with the files no package owns (dpkg status,
    /// accounts, the spec's configuration files): it changes with every
    /// package bump, so it holds only what is small.
    #[default]
    Top,
    /// The tools layer, below the top: compiled or downloaded programs,
    /// megabytes that change only when their own entry does.
    Tools,
}

/// One source's part of one platform's image.
#[derive(Debug, Default)]
pub struct Contribution {
    /// The files it places.
    pub tree: Tree,
    /// Which layer they go to (unless `owners` is set).
    pub placement: Placement,
    /// For a package manager's tree: who owns what (else the files go to
    /// the top layer).
    pub owners: Option<Owners>,
    /// What it adds to the SBOM beyond what the tree's package database
    /// says.
    pub sbom: Vec<SbomPackage>,
    /// Remarks worth a line on stderr.
    pub notes: Vec<String>,
}

/// A kind of source.
pub trait Source: Sync {
    /// What it is, for messages (`apt`, `cargo`).
    fn kind(&self) -> &'static str;

    /// Resolves the spec's entries into `lock` (network allowed).
    fn lock(&self, cx: &Context, previous: Option<&Lockfile>, lock: &mut Lockfile) -> Result<()>;

    /// Records what a first download pins (as go.sum does); returns
    /// whether the lock changed. Most kinds pin everything in [`lock`].
    ///
    /// [`lock`]: Source::lock
    fn pin(&self, _cx: &Context, _targets: &[Target], _lock: &mut Lockfile) -> Result<bool> {
        Ok(false)
    }

    /// Fetches, verifies (and compiles) what each target needs and
    /// returns one contribution per target, in order.
    fn prepare(
        &self,
        cx: &Context,
        lock: &Lockfile,
        targets: &[Target],
    ) -> Result<Vec<Contribution>>;
}

/// The sources of the regular image, in the order their files are laid
/// (a later one replaces an earlier one's file).
pub fn for_image() -> Vec<Box<dyn Source>> {
    vec![
        Box::new(apt::Apt),
        Box::new(cargo::Cargo),
        Box::new(url::Url),
        Box::new(local::Local),
    ]
}
