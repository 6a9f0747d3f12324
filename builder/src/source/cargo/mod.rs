//! `[[cargo]]` sources: Rust crates compiled statically (musl) for every
//! target, from the crate's own `Cargo.lock` (see `crates.rs` for how a
//! crate is locked, built, checked and cached).

pub mod compile;

use super::{Context, Contribution, Placement, Source};
use crate::error::{bad_input, Result};
use crate::image::write::meta;
use crate::lockfile::Lockfile;
use crate::sbom::{self, SbomPackage};
use crate::source::cargo::compile::CrateLock;
use crate::target::Target;
use image_layout::{Body, Entry, Node};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `[[cargo]]` entries.
pub struct Cargo;

impl Source for Cargo {
    fn kind(&self) -> &'static str {
        "cargo"
    }

    fn lock(&self, cx: &Context, _: Option<&Lockfile>, lock: &mut Lockfile) -> Result<()> {
        if cx.spec.cargo.is_empty() {
            return Ok(());
        }
        let work = tempfile::tempdir()?;
        for c in &cx.spec.cargo {
            (cx.log)(format!("lock crate {}", c.name));
            let l = crate::source::cargo::compile::lock_crate(c, &cx.spec.base_dir(), work.path())?;
            lock.crates.insert(c.name.clone(), l);
        }
        Ok(())
    }

    fn prepare(
        &self,
        cx: &Context,
        lock: &Lockfile,
        targets: &[Target],
    ) -> Result<Vec<Contribution>> {
        let (programs, sbom) = programs(cx, lock, targets)?;
        let mut out = Vec::new();
        for (progs, sbom) in programs.into_iter().zip(sbom) {
            let mut c = Contribution {
                placement: Placement::Tools,
                sbom,
                ..Default::default()
            };
            for p in progs {
                c.tree
                    .insert(&p.binary.dest, p.entry(cx.epoch)?)
                    .map_err(|e| bad_input(format!("cargo binary {}: {e}", p.binary.name)))?;
            }
            out.push(c);
        }
        Ok(out)
    }
}

/// A program compiled from a `[[cargo]]` entry for one target.
pub struct Program {
    /// The crate it comes from.
    pub crate_name: String,
    /// The crate's locked version.
    pub version: String,
    /// The binary (name, file in the cache, path in the image).
    pub binary: crate::source::cargo::compile::BuiltBinary,
}

impl Program {
    /// The program as an image entry: root's, mode 0755.
    pub fn entry(&self, epoch: u64) -> Result<Entry> {
        let size = std::fs::metadata(&self.binary.path)?.len();
        Ok(Entry {
            node: Node::File {
                body: Body::File(Arc::new(self.binary.path.clone())),
                size,
            },
            meta: meta(0o755, 0, 0, epoch),
        })
    }
}

/// Per target (in the targets' order): its programs, and its SBOM packages.
pub type PerTarget = (Vec<Vec<Program>>, Vec<Vec<SbomPackage>>);

/// Compiles (or takes from the cache) the active `[[cargo]]` entries for
/// every target: the programs per target, and the SBOM packages per
/// target.
pub fn programs(cx: &Context, lock: &Lockfile, targets: &[Target]) -> Result<PerTarget> {
    let mut out: Vec<Vec<Program>> = targets.iter().map(|_| Vec::new()).collect();
    let mut locks: Vec<(&crate::source::cargo::compile::CrateSpec, CrateLock)> = Vec::new();
    for c in cx.spec.cargo.iter().filter(|c| c.active(cx.profiles)) {
        let cl = lock.crates.get(&c.name).ok_or_else(|| {
            bad_input(format!(
                "{}: has no entry for crate {:?}; run `netshoot-build lock`",
                crate::lockfile::path_for(&cx.spec.path).display(),
                c.name
            ))
        })?;
        for (t, progs) in targets.iter().zip(out.iter_mut()) {
            let built = crate::source::cargo::compile::build_crate_with(
                c,
                cl,
                &cx.spec.base_dir(),
                &t.oci(),
                cx.cache.root(),
                cx.epoch,
                cx.log,
                cx.progress,
            )?;
            progs.extend(built.into_iter().map(|binary| Program {
                crate_name: c.name.clone(),
                version: cl.version.clone(),
                binary,
            }));
        }
        locks.push((c, cl.clone()));
    }
    let sbom = targets
        .iter()
        .map(|t| {
            let here: Vec<&CrateLock> = locks
                .iter()
                .filter(|(c, _)| !c.skips(&t.oci()))
                .map(|(_, l)| l)
                .collect();
            sbom_packages(&here, Some(t.rust_triple))
        })
        .collect();
    Ok((out, sbom))
}

/// The SBOM packages of the crates built for one target: every crate with
/// the packages of its `Cargo.lock` that the target's build uses. Tools
/// share dependencies: one package per name and version, with the union
/// of their edges.
pub fn sbom_packages(crates: &[&CrateLock], triple: Option<&str>) -> Vec<SbomPackage> {
    let mut cargo: BTreeMap<String, SbomPackage> = BTreeMap::new();
    for c in crates {
        let licenses: BTreeMap<(&str, &str), &str> = c
            .packages
            .iter()
            .filter_map(|p| {
                p.license
                    .as_deref()
                    .map(|l| ((p.name.as_str(), p.version.as_str()), l))
            })
            .collect();
        let license_of = |n: &str, v: &str| -> Option<String> {
            licenses.get(&(n, v)).and_then(|l| sbom::cargo_license(l))
        };
        let root_license = licenses
            .get(&(c.name.as_str(), c.version.as_str()))
            .and_then(|l| sbom::cargo_license(l));
        // Packages the target's build does not use (other operating
        // systems' dependencies) are left out; edges to them drop with them.
        let unused: std::collections::BTreeSet<(&str, &str)> = match triple {
            Some(t) if c.packages.iter().any(|p| !p.targets.is_empty()) => c
                .packages
                .iter()
                .filter(|p| !p.targets.iter().any(|x| x == t))
                .map(|p| (p.name.as_str(), p.version.as_str()))
                .collect(),
            _ => Default::default(),
        };
        for p in sbom::cargo_packages(&c.lockfile, &c.name, root_license.as_deref(), &license_of) {
            if unused.contains(&(p.name.as_str(), p.version.as_str())) {
                continue;
            }
            let key = sbom::pkg_ref(&p.kind, &p.name, &p.version, p.arch.as_deref());
            match cargo.get_mut(&key) {
                Some(existing) => {
                    for d in p.depends_on {
                        if !existing.depends_on.contains(&d) {
                            existing.depends_on.push(d);
                        }
                    }
                    existing.depends_on.sort();
                }
                None => {
                    cargo.insert(key, p);
                }
            }
        }
    }
    cargo.into_values().collect()
}
