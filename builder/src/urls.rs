//! `url` sources: downloads pinned by sha256, either in the spec or, when
//! the spec gives none, in the lockfile on first download (what go.sum does
//! for modules). Entries can sit in a profile (`profile = "full"`) that a
//! build leaves out unless asked for (`--profile full`), for tools whose
//! hosts a site cannot reach.

use crate::build::extract_member;
use crate::cache::Cache;
use crate::error::{bad_input, Result};
use crate::lockfile::{path_for, Lockfile, UrlPin};
use crate::spec::{Spec, UrlArtifact, UrlFormat, UrlSource};
use anyhow::Context;
use image_layout::Platform;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Checks that every requested profile is used by the spec and returns,
/// per profile left out, the names of its entries.
pub fn check_profiles(spec: &Spec, profiles: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut known: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in &spec.url {
        if let Some(p) = &u.profile {
            known.entry(p.clone()).or_default().push(u.name.clone());
        }
    }
    for c in &spec.cargo {
        if let Some(p) = &c.profile {
            known.entry(p.clone()).or_default().push(c.name.clone());
        }
    }
    for p in profiles {
        if !known.contains_key(p) {
            return Err(bad_input(format!(
                "--profile {p}: no entry of {} is in that profile (profiles: {})",
                spec.path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            )));
        }
    }
    known.retain(|p, _| !profiles.contains(p));
    Ok(known)
}

/// Whether a build with these profiles needs pins from the lockfile.
pub fn needs_pins(spec: &Spec, profiles: &[String]) -> bool {
    spec.url
        .iter()
        .filter(|u| u.active(profiles))
        .any(|u| u.platform.values().any(|a| a.sha256.is_none()))
}

fn artifact<'a>(u: &'a UrlSource, p: &Platform) -> Option<&'a UrlArtifact> {
    u.platform
        .iter()
        .find(|(k, _)| k.parse::<Platform>().is_ok_and(|kp| &kp == p))
        .map(|(_, a)| a)
}

/// A fetched download, ready to install.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The file to install (the download, or the member of its archive).
    pub file: PathBuf,
    /// The URL it came from.
    pub url: String,
    /// sha256 of the download.
    pub sha256: String,
}

/// Downloads entry `u`'s `url` for `p` into the cache and returns its pin.
fn pin(
    cache: &Cache,
    u: &UrlSource,
    p: &Platform,
    url: &str,
    progress: &(dyn Fn(String) + Sync),
) -> Result<UrlPin> {
    progress(format!("pin {} ({p}) {url}", u.name));
    let pin = download_pin(cache, url).with_context(|| format!("url source {:?}", u.name))?;
    progress(format!("pinned {} ({p}) sha256:{}", u.name, pin.sha256));
    Ok(pin)
}

fn download_pin(cache: &Cache, url: &str) -> Result<UrlPin> {
    let (tmp, sha256) = cache.download(url)?;
    let size = tmp.as_file().metadata()?.len();
    cache.keep(tmp, &sha256)?;
    Ok(UrlPin {
        url: url.to_string(),
        sha256,
        size,
    })
}

/// The pins a fresh lock holds: every entry without a spec sha256, for
/// every platform of the spec. Entries in the requested profiles (and
/// those without a profile) are downloaded unless `previous` already pins
/// the same URL; entries of other profiles keep their previous pin.
pub fn pin_all(
    spec: &Spec,
    profiles: &[String],
    cache: &Cache,
    previous: Option<&Lockfile>,
    progress: &(dyn Fn(String) + Sync),
) -> Result<BTreeMap<String, BTreeMap<String, UrlPin>>> {
    let mut out: BTreeMap<String, BTreeMap<String, UrlPin>> = BTreeMap::new();
    for u in &spec.url {
        for p in &spec.platforms {
            let Some(a) = artifact(u, p) else { continue };
            if a.sha256.is_some() {
                continue;
            }
            let old = previous
                .and_then(|l| l.url.get(&u.name))
                .and_then(|m| m.get(&p.to_string()))
                .filter(|pin| pin.url == a.url);
            let pinned = match old {
                Some(pin) => pin.clone(),
                None if u.active(profiles) => pin(cache, u, p, &a.url, progress)?,
                None => continue,
            };
            out.entry(u.name.clone())
                .or_default()
                .insert(p.to_string(), pinned);
        }
    }
    Ok(out)
}

/// Fetches every active entry for `platforms`, verified against the
/// spec's sha256 or the lock's pin. A missing pin is made by downloading
/// (and written to the lockfile) unless `locked`. Returns the file to
/// install and the download's sha256 per (entry index, platform).
pub fn fetch_all(
    spec: &Spec,
    platforms: &[Platform],
    profiles: &[String],
    cache: &Cache,
    mut lock: Option<&mut Lockfile>,
    locked: bool,
    progress: &(dyn Fn(String) + Sync),
) -> Result<HashMap<(usize, Platform), Fetched>> {
    let lock_path = path_for(&spec.path);
    let mut changed = false;
    let mut files = HashMap::new();
    // Every digest is settled (and a missing pin reported) before the
    // first download.
    let mut plan = Vec::new();
    for (i, u) in spec.url.iter().enumerate() {
        if !u.active(profiles) {
            continue;
        }
        for p in platforms {
            let a = artifact(u, p).ok_or_else(|| {
                bad_input(format!(
                    "{}: url {:?} has no entry for platform {p}",
                    spec.path.display(),
                    u.name
                ))
            })?;
            let sha = match (&a.sha256, lock.as_deref_mut()) {
                (Some(s), _) => s.clone(),
                (None, Some(l)) => {
                    let existing = l
                        .url
                        .get(&u.name)
                        .and_then(|m| m.get(&p.to_string()))
                        .filter(|pin| pin.url == a.url)
                        .map(|pin| pin.sha256.clone());
                    match existing {
                        Some(s) => s,
                        None if locked => {
                            return Err(bad_input(format!(
                                "url {:?} ({p}): {} pins no sha256 for {} and --locked was given: \
                                 run `netshoot-build lock --spec {}{}`",
                                u.name,
                                lock_path.display(),
                                a.url,
                                spec.path.display(),
                                u.profile
                                    .as_ref()
                                    .map(|p| format!(" --profile {p}"))
                                    .unwrap_or_default()
                            )))
                        }
                        None => {
                            let pin = pin(cache, u, p, &a.url, progress)?;
                            let s = pin.sha256.clone();
                            l.url
                                .entry(u.name.clone())
                                .or_default()
                                .insert(p.to_string(), pin);
                            changed = true;
                            s
                        }
                    }
                }
                (None, None) => {
                    return Err(bad_input(format!(
                        "url {:?} ({p}): no sha256 in the spec and no lockfile",
                        u.name
                    )))
                }
            };
            plan.push((i, u, p, a, sha));
        }
    }
    for (i, u, p, a, sha) in plan {
        {
            progress(format!("fetch {} ({p}) {}", u.name, a.url));
            let file = cache
                .fetch(&a.url, &sha)
                .with_context(|| format!("url source {:?}", u.name))?;
            let file = match a.format() {
                UrlFormat::File => file,
                UrlFormat::TarGz => {
                    let member = a.path.as_deref().unwrap_or_default();
                    extract_member(cache, &file, member)
                        .with_context(|| format!("url source {:?} ({})", u.name, a.url))?
                }
            };
            files.insert(
                (i, p.clone()),
                Fetched {
                    file,
                    url: a.url.clone(),
                    sha256: sha,
                },
            );
        }
    }
    if changed {
        if let Some(l) = lock {
            l.write(&lock_path)?;
            progress(format!("recorded new pins in {}", lock_path.display()));
        }
    }
    Ok(files)
}
