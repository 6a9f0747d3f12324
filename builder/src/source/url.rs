//! `[[url]]` sources: downloads pinned by sha256 (in the spec, or in the
//! lock on first download), installed as one file each.

use super::{Context, Contribution, Placement, Source};
use crate::error::{bad_input, Result};
use crate::image::write::meta;
use crate::lockfile::Lockfile;
use crate::sbom::{PackageKind, SbomPackage};
use crate::target::Target;
use image_layout::{Body, Entry, Node, Platform};
use std::sync::Arc;

/// The `[[url]]` entries.
pub struct Url;

impl Source for Url {
    fn kind(&self) -> &'static str {
        "url"
    }

    fn lock(&self, cx: &Context, previous: Option<&Lockfile>, lock: &mut Lockfile) -> Result<()> {
        lock.url = crate::urls::pin_all(cx.spec, cx.profiles, cx.cache, previous, cx.log)?;
        Ok(())
    }

    fn pin(&self, cx: &Context, targets: &[Target], lock: &mut Lockfile) -> Result<bool> {
        let platforms: Vec<Platform> = targets.iter().map(Target::oci).collect();
        crate::urls::pin_missing(
            cx.spec,
            &platforms,
            cx.profiles,
            cx.cache,
            lock,
            cx.locked,
            cx.log,
        )
    }

    fn prepare(
        &self,
        cx: &Context,
        lock: &Lockfile,
        targets: &[Target],
    ) -> Result<Vec<Contribution>> {
        let platforms: Vec<Platform> = targets.iter().map(Target::oci).collect();
        let files =
            crate::urls::fetch_pinned(cx.spec, &platforms, cx.profiles, cx.cache, lock, cx.log)?;
        let mut out = Vec::new();
        for p in &platforms {
            let mut c = Contribution {
                placement: Placement::Tools,
                ..Default::default()
            };
            for (i, u) in cx.spec.url.iter().enumerate() {
                let Some(f) = files.get(&(i, p.clone())) else {
                    continue;
                };
                let size = std::fs::metadata(&f.file)?.len();
                let (uid, gid) = u.owner.unwrap_or((0, 0));
                c.tree
                    .insert(
                        &u.dest,
                        Entry {
                            node: Node::File {
                                body: Body::File(Arc::new(f.file.clone())),
                                size,
                            },
                            meta: meta(u.mode.unwrap_or(0o755), uid, gid, cx.epoch),
                        },
                    )
                    .map_err(|e| bad_input(format!("url {:?}: {e}", u.name)))?;
                c.sbom.push(SbomPackage {
                    kind: PackageKind::Generic,
                    name: u.name.clone(),
                    version: u.version.clone().unwrap_or_else(|| "unversioned".into()),
                    arch: None,
                    source: None,
                    license: None,
                    sha256: Some(f.sha256.clone()),
                    download_url: Some(f.url.clone()),
                    depends_on: Vec::new(),
                });
            }
            out.push(c);
        }
        Ok(out)
    }
}
