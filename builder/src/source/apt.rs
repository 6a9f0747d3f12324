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
                            notes: summarize_notes(asm.notes)
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

/// The assembly's notes, with the maintainer-script operations whose
/// condition is only known at run time folded into one line naming their
/// packages (every one of them with `NETSHOOT_VERBOSE=1`).
fn summarize_notes(notes: Vec<String>) -> Vec<String> {
    const SKIPPED: &str = ": maintainer script operation not applied: ";
    if std::env::var_os("NETSHOOT_VERBOSE").is_some_and(|v| v == "1") {
        return notes;
    }
    let (skipped, mut out): (Vec<String>, Vec<String>) =
        notes.into_iter().partition(|n| n.contains(SKIPPED));
    let mut packages: Vec<&str> = skipped
        .iter()
        .filter_map(|n| n.split(SKIPPED).next())
        .collect();
    packages.dedup();
    if !skipped.is_empty() {
        out.push(format!(
            "{} maintainer-script operations left as packaged (their condition is only known \
             when the script runs; NETSHOOT_VERBOSE=1 lists them): {}",
            skipped.len(),
            packages.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_operations_fold_into_one_line_naming_their_packages() {
        let notes = vec![
            "bird2: maintainer script operation not applied: chown a".to_string(),
            "bird2: maintainer script operation not applied: chmod a".to_string(),
            "iproute2: setcap behind a debconf question not applied".to_string(),
            "zsh-common: maintainer script operation not applied: mkdir b".to_string(),
        ];
        let out = summarize_notes(notes);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].starts_with("iproute2: setcap"), "{out:?}");
        assert!(
            out[1].starts_with("3 maintainer-script operations")
                && out[1].ends_with(": bird2, zsh-common"),
            "{out:?}"
        );
    }
}
