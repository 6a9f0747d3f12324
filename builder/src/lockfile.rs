//! The lockfile (`tools/netshoot.lock`): every resolved input pinned by
//! digest, sorted and pretty-printed one field per line so changes read
//! well in a diff.

use crate::error::{bad_input, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Format version written and accepted.
pub const LOCK_VERSION: u32 = 1;

/// The whole lockfile.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// Format version.
    pub version: u32,
    /// Digest of the parts of the spec that decide resolution; a lock
    /// whose digest differs from the spec's is stale.
    pub spec_digest: String,
    /// Debian packages per platform (`linux/amd64` ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apt: BTreeMap<String, AptLock>,
    /// Compiled crates by name (their own lock data).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub crates: BTreeMap<String, CrateLock>,
    /// `url` downloads whose spec gives no sha256: name → platform → pin,
    /// recorded on first download (as go.sum does) and verified after.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub url: BTreeMap<String, BTreeMap<String, UrlPin>>,
    /// Debian source packages of the static toolbox, by `[[source]]` name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, SourceLock>,
}

/// A download pinned by the lock.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UrlPin {
    /// The URL the digest belongs to; a changed URL is downloaded and pinned anew.
    pub url: String,
    /// sha256 of the downloaded bytes.
    pub sha256: String,
    /// Their size.
    pub size: u64,
}

/// One platform's Debian packages.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AptLock {
    /// Debian architecture (`amd64`, `arm64`, `armhf`, ...).
    pub arch: String,
    /// The verified indexes the resolution used.
    pub indexes: Vec<LockedIndex>,
    /// The installed set, sorted by name then architecture.
    pub packages: Vec<LockedPackage>,
}

/// A verified `Packages` index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LockedIndex {
    /// Repository name from the spec.
    pub repository: String,
    /// Suite.
    pub suite: String,
    /// Component.
    pub component: String,
    /// sha256 of the InRelease (or Release) used.
    pub release_sha256: String,
    /// Path of the Packages file under `dists/SUITE/`.
    pub packages_path: String,
    /// sha256 of that Packages file.
    pub packages_sha256: String,
}

/// One resolved package.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Architecture (`amd64`, `all`, ...).
    pub architecture: String,
    /// Source package name.
    pub source: String,
    /// Source package version.
    pub source_version: String,
    /// Repository it comes from.
    pub repository: String,
    /// Suite it comes from.
    pub suite: String,
    /// Pool path under the repository's base URL.
    pub filename: String,
    /// Size of the .deb.
    pub size: u64,
    /// sha256 of the .deb.
    pub sha256: String,
}

/// The lockfile that belongs to `spec` (`x.toml` → `x.lock`).
pub fn path_for(spec: &Path) -> PathBuf {
    spec.with_extension("lock")
}

impl Lockfile {
    /// Reads a lockfile; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Lockfile>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad_input(format!("{}: {e}", path.display()))),
        };
        let lock: Lockfile = serde_json::from_str(&text).map_err(|e| {
            bad_input(format!(
                "{}: not a netshoot-build lockfile ({e}); delete it and run `netshoot-build lock`",
                path.display()
            ))
        })?;
        if lock.version != LOCK_VERSION {
            return Err(bad_input(format!(
                "{}: lockfile version {} is not {LOCK_VERSION}; run `netshoot-build lock`",
                path.display(),
                lock.version
            )));
        }
        Ok(Some(lock))
    }

    /// The lockfile's text: sorted keys, two-space indents, final newline.
    pub fn to_text(&self) -> Result<String> {
        let v = serde_json::to_value(self)?;
        let mut s = serde_json::to_string_pretty(&v)?;
        s.push('\n');
        Ok(s)
    }

    /// Writes the lockfile atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        image_layout::layout::write_atomic(path, self.to_text()?.as_bytes())
            .map_err(|e| bad_input(format!("{}: {e}", path.display())))
    }
}

/// A source package pinned by the lock.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceLock {
    /// Source package name.
    pub package: String,
    /// Its exact version.
    pub version: String,
    /// Repository name from the spec.
    pub repository: String,
    /// Suite.
    pub suite: String,
    /// Component.
    pub component: String,
    /// sha256 of the InRelease (or Release) that listed the index.
    pub release_sha256: String,
    /// Path of the Sources index under `dists/SUITE/`.
    pub sources_path: String,
    /// sha256 of that index.
    pub sources_sha256: String,
    /// Pool folder.
    pub directory: String,
    /// Source format (`3.0 (quilt)`).
    pub format: String,
    /// Every file, the `.dsc` among them.
    pub files: Vec<LockedSourceFile>,
}

/// One file of a locked source package.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LockedSourceFile {
    /// File name.
    pub name: String,
    /// sha256.
    pub sha256: String,
    /// Size.
    pub size: u64,
}

/// What locking pinned for one crate; stored in the lockfile.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CrateLock {
    /// The crate's name.
    pub name: String,
    /// Its exact version.
    pub version: String,
    /// sha256 (hex) of the `.crate` as the registry index records it; for a
    /// `path` crate, the sha256 of its source tree (see `source::cargo::compile::tree_digest`).
    pub checksum: String,
    /// sha256 (hex) of [`CrateLock::lockfile`].
    pub lock_sha256: String,
    /// The `Cargo.lock` text the crate is built with.
    pub lockfile: String,
    /// Every package of that `Cargo.lock`, for the SBOM and for review.
    pub packages: Vec<LockedDep>,
}

/// One package of a crate's `Cargo.lock`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockedDep {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// The `.crate` sha256; absent for the crate itself and git sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The package's declared license (its manifest's `license`), for the SBOM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The musl targets whose build uses the package (host-side build
    /// dependencies included); empty in locks made before this was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}
