//! `[apt]`: Debian packages from signed repositories, resolved into the
//! lock per platform and laid out the way dpkg would (see `apt.rs` for
//! the archive access and `rootfs.rs` for the assembly).

use super::{Context, Contribution, Owners, Source};
use crate::error::{bad_input, Result};
use crate::lockfile::Lockfile;
use crate::target::Target;

/// The spec's `[apt]` table.
pub struct Apt;

impl Source for Apt {
    fn kind(&self) -> &'static str {
        "apt"
    }

    fn lock(&self, cx: &Context, _: Option<&Lockfile>, lock: &mut Lockfile) -> Result<()> {
        let Some(apt) = &cx.spec.apt else {
            return Ok(());
        };
        for p in &cx.spec.platforms {
            let l = crate::apt::lock_platform(cx.spec, apt, cx.mirrors, p, cx.cache, cx.log)?;
            (cx.log)(format!("locked {p}: {} packages", l.packages.len()));
            lock.apt.insert(p.to_string(), l);
        }
        Ok(())
    }

    fn prepare(
        &self,
        cx: &Context,
        lock: &Lockfile,
        targets: &[Target],
    ) -> Result<Vec<Contribution>> {
        let Some(apt) = &cx.spec.apt else {
            return Ok(targets.iter().map(|_| Contribution::default()).collect());
        };
        // Downloads one platform after the other (each in parallel inside),
        // then the platforms are assembled side by side.
        let mut payloads = Vec::new();
        for t in targets {
            let p = t.oci();
            let pl = lock.apt.get(&p.to_string()).ok_or_else(|| {
                bad_input(format!(
                    "{}: has no packages for {p}; run `netshoot-build lock`",
                    crate::lockfile::path_for(&cx.spec.path).display()
                ))
            })?;
            let bar = cx.progress.bar(pl.packages.len() as u64, "packages");
            bar.set_message(p.to_string());
            payloads.push(crate::apt::fetch_payloads_with(
                cx.spec, apt, cx.mirrors, pl, cx.cache, cx.log, &bar,
            )?);
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = targets
                .iter()
                .zip(&payloads)
                .map(|(t, pkgs)| {
                    s.spawn(move || -> Result<Contribution> {
                        let asm = crate::rootfs::assemble(pkgs, apt, t.debian_arch, cx.epoch)?;
                        Ok(Contribution {
                            tree: asm.tree,
                            placement: Default::default(),
                            owners: Some(Owners {
                                origin: asm.origin,
                                sources: pkgs
                                    .iter()
                                    .map(|(l, _)| (l.name.clone(), l.source.clone()))
                                    .collect(),
                            }),
                            sbom: Vec::new(),
                            notes: asm
                                .notes
                                .into_iter()
                                .map(|n| format!("note {}: {n}", t.platform))
                                .collect(),
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("an assembly thread panicked")))
                })
                .collect()
        })
    }
}
