//! `url` sources: downloads pinned by sha256, either in the spec or, when
//! the spec gives none, in the lockfile on first download (what go.sum does
//! for modules). Entries can sit in a profile (`profile = "full"`) that a
//! build leaves out unless asked for (`--profile full`), for tools whose
//! hosts a site cannot reach.

use crate::cache::Cache;
use crate::error::{bad_input, verification, Result};
use crate::lockfile::{path_for, Lockfile, UrlPin};
use crate::spec::{Spec, UrlArtifact, UrlFormat, UrlSource};
use anyhow::Context;
use image_layout::Platform;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

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

/// The sha256 an active entry's download for `p` must have: the spec's,
/// else the lock's pin for the same URL.
fn pinned_sha(u: &UrlSource, a: &UrlArtifact, p: &Platform, lock: &Lockfile) -> Option<String> {
    a.sha256.clone().or_else(|| {
        lock.url
            .get(&u.name)
            .and_then(|m| m.get(&p.to_string()))
            .filter(|pin| pin.url == a.url)
            .map(|pin| pin.sha256.clone())
    })
}

/// The artifact of every active entry for each platform, or an error
/// naming an entry that has none.
fn planned<'a>(
    spec: &'a Spec,
    platforms: &'a [Platform],
    profiles: &'a [String],
) -> Result<Vec<(usize, &'a UrlSource, &'a Platform, &'a UrlArtifact)>> {
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
            plan.push((i, u, p, a));
        }
    }
    Ok(plan)
}

/// Pins every active download the spec and `lock` leave unpinned, by
/// downloading it (what go.sum does), unless `locked`, which fails
/// instead. Returns whether `lock` changed (the caller writes it).
pub fn pin_missing(
    spec: &Spec,
    platforms: &[Platform],
    profiles: &[String],
    cache: &Cache,
    lock: &mut Lockfile,
    locked: bool,
    progress: &(dyn Fn(String) + Sync),
) -> Result<bool> {
    let lock_path = path_for(&spec.path);
    let mut changed = false;
    for (_, u, p, a) in planned(spec, platforms, profiles)? {
        if pinned_sha(u, a, p, lock).is_some() {
            continue;
        }
        if locked {
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
            )));
        }
        let pin = pin(cache, u, p, &a.url, progress)?;
        lock.url
            .entry(u.name.clone())
            .or_default()
            .insert(p.to_string(), pin);
        changed = true;
    }
    Ok(changed)
}

/// Fetches every active entry for `platforms`, verified against the
/// spec's sha256 or the lock's pin. Returns the file to install and the
/// download's sha256 per (entry index, platform).
pub fn fetch_pinned(
    spec: &Spec,
    platforms: &[Platform],
    profiles: &[String],
    cache: &Cache,
    lock: &Lockfile,
    progress: &(dyn Fn(String) + Sync),
) -> Result<HashMap<(usize, Platform), Fetched>> {
    let mut files = HashMap::new();
    for (i, u, p, a) in planned(spec, platforms, profiles)? {
        let sha = pinned_sha(u, a, p, lock).ok_or_else(|| {
            bad_input(format!(
                "url {:?} ({p}): no sha256 in the spec and none in {}",
                u.name,
                path_for(&spec.path).display()
            ))
        })?;
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
    Ok(files)
}

/// Extracts `member` from a cached `.tar.gz` into the cache (named by its
/// own digest) and returns its path.
fn extract_member(cache: &Cache, archive: &Path, member: &str) -> Result<PathBuf> {
    let want = image_layout::tree::normalize_path(member)
        .map_err(|e| bad_input(format!("path {member:?}: {e}")))?;
    let f = std::fs::File::open(archive)?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)));
    let entries = ar
        .entries()
        .map_err(|e| verification(format!("not a .tar.gz: {e}")))?;
    for e in entries {
        let mut e = e.map_err(|e| verification(format!("corrupt .tar.gz: {e}")))?;
        let p = e
            .path()
            .map_err(|e| verification(format!("corrupt .tar.gz: {e}")))?
            .to_string_lossy()
            .to_string();
        if image_layout::tree::normalize_path(&p).ok().as_deref() == Some(want.as_str()) {
            if !e.header().entry_type().is_file() {
                return Err(bad_input(format!(
                    "{member:?} in the archive is not a regular file"
                )));
            }
            let tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(cache.root().join("blobs/sha256"))?;
            let mut w = image_layout::HashingWriter::new(std::io::BufWriter::new(tmp));
            std::io::copy(&mut e, &mut w)
                .map_err(|e| verification(format!("corrupt .tar.gz: {e}")))?;
            let (buf, digest, _) = w.finish();
            let tmp = buf
                .into_inner()
                .map_err(|e| anyhow::anyhow!("{}", e.error()))?;
            let dest = cache.blob_path(digest.hex());
            tmp.persist(&dest)
                .map_err(|e| anyhow::anyhow!("{}", e.error))?;
            return Ok(dest);
        }
    }
    Err(bad_input(format!("the archive has no member {member:?}")))
}
