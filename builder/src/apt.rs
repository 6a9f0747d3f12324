//! The Debian package source: mirrors, locking (fetch and verify the
//! signed indexes, resolve), fetching the locked `.deb`s, and their
//! payloads cached decompressed with an index of entries, so a rebuild
//! reads file bodies by offset and never decompresses xz again.

use crate::cache::Cache;
use crate::error::{bad_input, network, verification, Result};
use crate::lockfile::{AptLock, LockedIndex, LockedPackage};
use crate::spec::{AptRepository, AptSpec, BaseSpec, Spec};
use debian::repository::{load_index, Fetch, FetchError, HttpFetch};
use debian::resolver::{Base, Request, Resolver};
use image_layout::Platform;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Where mirrors come from besides the spec: `--mirror NAME=URL` flags and
/// the root under which the host's apt sources are read.
#[derive(Clone, Debug, Default)]
pub struct MirrorConfig {
    /// `--mirror` values by name.
    pub flags: BTreeMap<String, String>,
    /// Root for `etc/apt/sources.list*` (default `/`, env `NETSHOOT_APT_ROOT`).
    pub apt_root: Option<PathBuf>,
}

impl MirrorConfig {
    /// Parses `--mirror NAME=URL` values.
    pub fn from_flags(values: &[String]) -> Result<MirrorConfig> {
        let mut flags = BTreeMap::new();
        for v in values {
            let (k, u) = v.split_once('=').ok_or_else(|| {
                bad_input(format!("--mirror {v:?}: expected NAME=URL, e.g. debian=https://registry.example.com/debian"))
            })?;
            if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file://"))
            {
                return Err(bad_input(format!(
                    "--mirror {v:?}: the URL must be http(s):// or file://"
                )));
            }
            flags.insert(k.to_string(), u.trim_end_matches('/').to_string());
        }
        Ok(MirrorConfig {
            flags,
            apt_root: std::env::var_os("NETSHOOT_APT_ROOT").map(PathBuf::from),
        })
    }

    /// The base URL to fetch `suite` of `repo` from, in order: flag, env,
    /// spec, the host's apt sources. A `*-security` suite looks for a
    /// security-specific setting first (`NAME-security`), then falls back
    /// to the repository's main URL.
    pub fn url_for(&self, repo: &AptRepository, suite: &str) -> Result<String> {
        let security = suite.ends_with("-security");
        let env_key = |name: &str| {
            format!(
                "NETSHOOT_MIRROR_{}",
                name.to_uppercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
            )
        };
        let by_name = |name: &str| -> Option<String> {
            self.flags.get(name).cloned().or_else(|| {
                std::env::var(env_key(name))
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(|v| v.trim_end_matches('/').to_string())
            })
        };
        let host = || -> Option<String> {
            let root = self.apt_root.clone().unwrap_or_else(|| PathBuf::from("/"));
            let entries = debian::sources_list::read_sources(&root).ok()?;
            debian::sources_list::mirror_for_suite(&entries, suite)
        };
        let sec_name = format!("{}-security", repo.name);
        let found = if security {
            by_name(&sec_name)
                .or_else(|| repo.security_url.clone())
                .or_else(host)
                .or_else(|| by_name(&repo.name))
                .or_else(|| repo.url.clone())
        } else {
            by_name(&repo.name)
                .or_else(|| repo.url.clone())
                .or_else(host)
        };
        found.map(|u| u.trim_end_matches('/').to_string()).ok_or_else(|| {
            let (flag, env) = if security {
                (sec_name.clone(), env_key(&sec_name))
            } else {
                (repo.name.clone(), env_key(&repo.name))
            };
            bad_input(format!(
                "apt repository {:?} suite {suite}: no mirror configured: pass --mirror {flag}=URL (or set {env}, or `url` in the spec, or add it to /etc/apt/sources.list)",
                repo.name
            ))
        })
    }
}

/// The Debian architecture for an OCI platform.
pub fn debian_arch(p: &Platform) -> Result<&'static str> {
    Ok(crate::target::Target::of(p)?.debian_arch)
}

pub(crate) fn fetcher() -> Result<HttpFetch> {
    HttpFetch::with_policy(crate::net::policy())
        .map(|f| f.on_retry(crate::net::note_retry))
        .map_err(|e| network(e.to_string()))
}

pub(crate) fn read_keyring(spec: &Spec, repo: &AptRepository) -> Result<Vec<u8>> {
    let p = spec.resolve_inside(
        &format!("apt.repository {:?} keyring", repo.name),
        &repo.keyring,
    )?;
    std::fs::read(&p).map_err(|e| {
        bad_input(format!(
            "{}: apt repository {:?}: keyring {}: {e}",
            spec.path.display(),
            repo.name,
            p.display()
        ))
    })
}

fn base_of(b: &BaseSpec) -> Base {
    match b {
        BaseSpec::Essential => Base::Essential,
        BaseSpec::Required => Base::Required,
        BaseSpec::None => Base::None,
        BaseSpec::List(l) => Base::List(l.clone()),
    }
}

/// Fetches and verifies every index the spec names for `platform`,
/// resolves the request and returns the platform's lock.
pub fn lock_platform(
    spec: &Spec,
    apt: &AptSpec,
    mirrors: &MirrorConfig,
    platform: &Platform,
    cache: &Cache,
    log: &(dyn Fn(String) + Sync),
) -> Result<AptLock> {
    let arch = debian_arch(platform)?;
    let fetch = Keeping {
        inner: fetcher()?,
        cache,
    };
    let now = SystemTime::now();
    let mut indexes = Vec::new();
    let mut all: Vec<debian::packages::Package> = Vec::new();
    // Which repository and suite each package came from; the first index
    // that lists a (name, version, arch) wins, in spec order.
    let mut origin: HashMap<(String, String, String), (String, String)> = HashMap::new();
    for repo in &apt.repository {
        let keyring = read_keyring(spec, repo)?;
        for suite in &repo.suites {
            let base = mirrors.url_for(repo, suite)?;
            for comp in &repo.components {
                log(format!(
                    "index {}/{suite}/{comp}/binary-{arch} from {base}",
                    repo.name
                ));
                let idx = load_index(&fetch, &base, suite, comp, arch, &keyring, now)
                    .map_err(|e| classify_repo_error(&repo.name, e))?;
                indexes.push(LockedIndex {
                    repository: repo.name.clone(),
                    suite: suite.clone(),
                    component: comp.clone(),
                    release_sha256: idx.release_digest.clone(),
                    packages_path: idx.packages_path.clone(),
                    packages_sha256: idx.packages_sha256.clone(),
                });
                for p in idx.packages {
                    let key = (
                        p.name.clone(),
                        p.version.to_string(),
                        p.architecture.clone(),
                    );
                    if origin.contains_key(&key) {
                        continue;
                    }
                    origin.insert(key, (repo.name.clone(), suite.clone()));
                    all.push(p);
                }
            }
        }
    }
    let requests = apt
        .packages
        .iter()
        .map(|r| {
            r.parse::<Request>()
                .map_err(|e| bad_input(format!("apt.packages: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let resolver = Resolver::new(all, arch, &[]);
    let chosen = resolver
        .resolve(&requests, &base_of(&apt.base))
        .map_err(|e| bad_input(format!("{}: {platform}: {e}", spec.path.display())))?;
    let mut packages: Vec<LockedPackage> = chosen
        .iter()
        .map(|p| {
            let key = (
                p.name.clone(),
                p.version.to_string(),
                p.architecture.clone(),
            );
            let (repository, suite) = origin.get(&key).cloned().unwrap_or_default();
            LockedPackage {
                name: p.name.clone(),
                version: p.version.to_string(),
                architecture: p.architecture.clone(),
                source: p.source.clone(),
                source_version: p.source_version.to_string(),
                repository,
                suite,
                filename: p.filename.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
            }
        })
        .collect();
    packages.sort_by(|a, b| (&a.name, &a.architecture).cmp(&(&b.name, &b.architecture)));
    Ok(AptLock {
        arch: arch.to_string(),
        indexes,
        packages,
    })
}

pub(crate) fn classify_repo_error(
    repo: &str,
    e: debian::repository::RepositoryError,
) -> anyhow::Error {
    use debian::repository::RepositoryError as E;
    let msg = format!("apt repository {repo:?}: {e}");
    match e {
        E::Fetch(_) => network(msg),
        _ => verification(msg),
    }
}

/// The cached payload of one `.deb`: its control data and the index of
/// its data entries, with the decompressed data tar beside it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Payload {
    /// The control file text.
    pub control: String,
    /// Conffiles (absolute paths).
    pub conffiles: Vec<String>,
    /// md5sums (relative path, md5).
    pub md5sums: Vec<(String, String)>,
    /// The postinst script, if any.
    pub postinst: Option<String>,
    /// The preinst script, if any.
    pub preinst: Option<String>,
    /// Data entries.
    pub entries: Vec<PayloadEntry>,
    /// Where the decompressed data tar is (not serialised).
    #[serde(skip)]
    pub data_tar: PathBuf,
}

/// One data entry (see `debian::deb::DataEntry`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PayloadEntry {
    /// Relative path.
    pub path: String,
    /// `f` file, `d` dir, `l` symlink, `h` hard link.
    pub kind: char,
    /// Body offset in the data tar (files).
    #[serde(default)]
    pub offset: u64,
    /// Body size (files).
    #[serde(default)]
    pub size: u64,
    /// Link target (links).
    #[serde(default)]
    pub target: String,
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Owner name.
    pub uname: String,
    /// Group name.
    pub gname: String,
    /// mtime.
    pub mtime: u64,
}

const PAYLOAD_FORMAT: &str = "payload-v2";

/// Fetches (or finds in the cache) every locked `.deb` of a platform and
/// returns its payload, in lock order. Downloads run in parallel.
pub fn fetch_payloads(
    spec: &Spec,
    apt: &AptSpec,
    mirrors: &MirrorConfig,
    lock: &AptLock,
    cache: &Cache,
    log: &(dyn Fn(String) + Sync),
) -> Result<Vec<(LockedPackage, Payload)>> {
    let none = crate::progress::Task::none();
    fetch_payloads_with(spec, apt, mirrors, lock, cache, log, &none)
}

/// [`fetch_payloads`] advancing `bar` by one per package done (fetched or
/// found in the cache).
pub fn fetch_payloads_with(
    spec: &Spec,
    apt: &AptSpec,
    mirrors: &MirrorConfig,
    lock: &AptLock,
    cache: &Cache,
    log: &(dyn Fn(String) + Sync),
    bar: &crate::progress::Task,
) -> Result<Vec<(LockedPackage, Payload)>> {
    // Whatever asks for payloads (the image, the static toolbox's CA
    // bundle) gets only packages the signed indexes vouch for.
    check_lock(spec, apt, mirrors, lock, cache)?;
    let jobs = 4usize;
    let items: Vec<&LockedPackage> = lock.packages.iter().collect();
    let results: Vec<Result<Payload>> = std::thread::scope(|s| {
        let chunks: Vec<Vec<(usize, &LockedPackage)>> = (0..jobs)
            .map(|j| {
                items
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % jobs == j)
                    .map(|(i, p)| (i, *p))
                    .collect()
            })
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(i, p)| {
                            let r = payload_for(spec, apt, mirrors, p, cache, log);
                            bar.inc(1);
                            (i, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out: Vec<(usize, Result<Payload>)> = Vec::new();
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(_) => out.push((
                    usize::MAX,
                    Err(anyhow::anyhow!("a download thread panicked")),
                )),
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, r)| r).collect()
    });
    let mut out = Vec::new();
    for (p, r) in lock.packages.iter().zip(results) {
        out.push((p.clone(), r?));
    }
    Ok(out)
}

fn payload_for(
    spec: &Spec,
    apt: &AptSpec,
    mirrors: &MirrorConfig,
    p: &LockedPackage,
    cache: &Cache,
    log: &(dyn Fn(String) + Sync),
) -> Result<Payload> {
    let dir = cache
        .root()
        .join("payloads")
        .join(PAYLOAD_FORMAT)
        .join(&p.sha256);
    if let Some(pl) = cached_payload(&dir, cache)? {
        check_control(p, &pl.control)?;
        return Ok(pl);
    }
    let deb = fetch_deb(spec, apt, mirrors, p, cache, log)?;
    match extract_payload(p, &deb, &dir) {
        Ok(pl) => {
            check_control(p, &pl.control)?;
            Ok(pl)
        }
        Err(e) => {
            // The .deb hashed to the lock's digest, so its bytes are the
            // ones the signed index names; still, never keep a file that
            // fails the same way on every build.
            cache.evict(&deb, "does not unpack");
            Err(e)
        }
    }
}

/// The digests of a payload folder's two files, written beside them.
const PAYLOAD_DIGESTS: &str = "digests";

/// The payload cached in `dir`, when its data tar and index still hash to
/// the digests recorded when it was unpacked; a damaged one is evicted.
fn cached_payload(dir: &std::path::Path, cache: &Cache) -> Result<Option<Payload>> {
    if !dir.exists() {
        return Ok(None);
    }
    let recorded = std::fs::read_to_string(dir.join(PAYLOAD_DIGESTS)).unwrap_or_default();
    let mut want = recorded.lines().filter_map(|l| l.split_once(' '));
    let intact = match (want.next(), want.next()) {
        (Some(("data.tar", d)), Some(("index.json", i))) => {
            cache.stamps().verify(&dir.join("data.tar"), d)?
                && cache.stamps().verify(&dir.join("index.json"), i)?
        }
        _ => false,
    };
    let parsed = intact
        .then(|| std::fs::read(dir.join("index.json")).ok())
        .flatten()
        .and_then(|t| serde_json::from_slice::<Payload>(&t).ok());
    match parsed {
        Some(mut pl) => {
            pl.data_tar = dir.join("data.tar");
            Ok(Some(pl))
        }
        None => {
            cache.evict(dir, "does not match its recorded digests");
            Ok(None)
        }
    }
}

/// The .deb's own control fields must name the package the lock names:
/// an edited lock can point a name at another validly signed .deb.
fn check_control(p: &LockedPackage, control: &str) -> Result<()> {
    let para = debian::control::parse_paragraphs(control)
        .ok()
        .and_then(|v| v.into_iter().next());
    let field = |k: &str| {
        para.as_ref()
            .and_then(|x| x.get(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    for (k, want) in [
        ("Package", &p.name),
        ("Version", &p.version),
        ("Architecture", &p.architecture),
    ] {
        let got = field(k);
        if &got != want {
            return Err(verification(format!(
                "lock entry {} {} ({}): the .deb {} it pins says {k}: {got:?}; \
                 the lockfile was edited or is corrupt: run `netshoot-build lock`",
                p.name, p.version, p.architecture, p.filename
            )));
        }
    }
    Ok(())
}

/// Unpacks `deb` into the payload folder `dir` (written beside it and
/// renamed in), recording the digests of its files.
fn extract_payload(
    p: &LockedPackage,
    deb: &std::path::Path,
    dir: &std::path::Path,
) -> Result<Payload> {
    std::fs::create_dir_all(dir.parent().unwrap_or(dir))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(dir.parent().unwrap_or(dir))?;
    let tar_path = tmp.path().join("data.tar");
    let mut out = image_layout::HashingWriter::new(std::io::BufWriter::new(std::fs::File::create(
        &tar_path,
    )?));
    let f = std::io::BufReader::new(std::fs::File::open(deb)?);
    let (control, entries) = debian::deb::read_deb(f, &mut out).map_err(|e| {
        let file = p.filename.rsplit('/').next().unwrap_or(&p.filename);
        verification(format!("{file} (cached as {}): {e}", deb.display()))
    })?;
    let (buf, data_digest, _) = out.finish();
    buf.into_inner()
        .map_err(|e| anyhow::anyhow!("{}", e.error()))?;
    let script = |n: &str| {
        control
            .scripts
            .get(n)
            .map(|b| String::from_utf8_lossy(b).to_string())
    };
    let pl = Payload {
        control: control.control.to_string(),
        conffiles: control.conffiles.clone(),
        md5sums: control.md5sums.clone(),
        postinst: script("postinst"),
        preinst: script("preinst"),
        entries: entries
            .into_iter()
            .map(|e| {
                use debian::deb::EntryKind as K;
                let (kind, offset, size, target) = match e.kind {
                    K::File { offset, size } => ('f', offset, size, String::new()),
                    K::Dir => ('d', 0, 0, String::new()),
                    K::Symlink { target } => ('l', 0, 0, target),
                    K::Hardlink { target } => ('h', 0, 0, target),
                };
                PayloadEntry {
                    path: e.path,
                    kind,
                    offset,
                    size,
                    target,
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                    uname: e.uname,
                    gname: e.gname,
                    mtime: e.mtime,
                }
            })
            .collect(),
        data_tar: PathBuf::new(),
    };
    let index = serde_json::to_vec(&pl)?;
    std::fs::write(tmp.path().join("index.json"), &index)?;
    std::fs::write(
        tmp.path().join(PAYLOAD_DIGESTS),
        format!(
            "data.tar {}\nindex.json {}\n",
            data_digest.hex(),
            image_layout::Digest::of(&index).hex()
        ),
    )?;
    // The folder appears under its final name in one rename; a concurrent
    // build that got there first wins and ours is dropped.
    let tmp_path = tmp.keep();
    if std::fs::rename(&tmp_path, dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp_path);
    }
    let mut pl = pl;
    pl.data_tar = dir.join("data.tar");
    Ok(pl)
}

fn fetch_deb(
    spec: &Spec,
    apt: &AptSpec,
    mirrors: &MirrorConfig,
    p: &LockedPackage,
    cache: &Cache,
    log: &(dyn Fn(String) + Sync),
) -> Result<PathBuf> {
    if let Some(dest) = cache.verified_blob(&p.sha256)? {
        return Ok(dest);
    }
    let repo = apt
        .repository
        .iter()
        .find(|r| r.name == p.repository)
        .ok_or_else(|| {
            bad_input(format!(
                "{}: the lock names repository {:?}, which the spec no longer has; run `netshoot-build lock`",
                spec.path.display(),
                p.repository
            ))
        })?;
    let base = mirrors.url_for(repo, &p.suite)?;
    let url = format!("{base}/{}", p.filename);
    log(format!("fetch {} {} ({} bytes)", p.name, p.version, p.size));
    let fetch = fetcher()?;
    let bytes = fetch.get(&url).map_err(|e| match e {
        FetchError::NotFound { .. } => network(format!(
            "{url}: the mirror does not serve {} {} ({}) from the lock: leave that platform out \
             with --platform (the others), relock with `netshoot-build lock`, or point --mirror {}=URL \
             at a mirror (or snapshot) that has it",
            p.name, p.version, p.architecture, repo.name
        )),
        other => network(other.to_string()),
    })?;
    if bytes.len() as u64 != p.size {
        return Err(verification(format!(
            "{url}: size {} does not match the lock's {}",
            bytes.len(),
            p.size
        )));
    }
    let got = image_layout::Digest::of(&bytes);
    if got.hex() != p.sha256 {
        return Err(verification(format!(
            "{url}: sha256 {} does not match the lock's {}",
            got.hex(),
            p.sha256
        )));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(cache.root().join("blobs/sha256"))?;
    use std::io::Write;
    tmp.write_all(&bytes)?;
    cache.keep(tmp, &p.sha256)
}

/// Digest of what decides the apt resolution: platforms, requests, base,
/// repositories and their keyrings (not mirrors: where bytes come from
/// does not change what they must be).
pub fn spec_digest_part(spec: &Spec, apt: &AptSpec) -> Result<serde_json::Value> {
    let mut repos = Vec::new();
    for r in &apt.repository {
        let key = read_keyring(spec, r)?;
        repos.push(serde_json::json!({
            "name": r.name, "suites": r.suites, "components": r.components,
            "keyring_sha256": image_layout::Digest::of(&key).hex(),
        }));
    }
    Ok(serde_json::json!({
        "packages": apt.packages,
        "base": apt.base,
        "repositories": repos,
    }))
}

/// Default globs of paths left out of the image (dpkg `path-exclude`).
pub const DEFAULT_EXCLUDE: &[&str] = &[
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/share/linda/*",
];

/// Default exceptions to the exclusions (dpkg `path-include`).
pub const DEFAULT_INCLUDE: &[&str] = &["/usr/share/doc/*/copyright"];

/// A [`Fetch`] that keeps every verified body it hands out (InRelease,
/// Packages and Sources indexes) in the cache under its sha256, so a
/// build can check a lock against the very indexes it was made from.
pub(crate) struct Keeping<'a, F: Fetch> {
    pub(crate) inner: F,
    pub(crate) cache: &'a Cache,
}

impl<F: Fetch> Fetch for Keeping<'_, F> {
    fn get(&self, url: &str) -> std::result::Result<Vec<u8>, FetchError> {
        let bytes = self.inner.get(url)?;
        let hex = image_layout::Digest::of(&bytes).hex().to_string();
        let path = self.cache.blob_path(&hex);
        if !path.is_file() {
            let keep = || -> Result<()> {
                let mut tmp = tempfile::Builder::new()
                    .prefix(".tmp-")
                    .tempfile_in(self.cache.root().join("blobs/sha256"))?;
                std::io::Write::write_all(&mut tmp, &bytes)?;
                self.cache.keep(tmp, &hex)?;
                Ok(())
            };
            // Only an optimisation for later checks; a full disk shows
            // up where it matters.
            let _ = keep();
        }
        Ok(bytes)
    }
}

/// A signed Release kept in the cache by its digest, verified against the
/// keyring as of its own `Date` (a lock outlives the Release's
/// `Valid-Until`; what counts is that the archive signed it).
pub(crate) fn kept_release(
    cache: &Cache,
    sha256: &str,
    keyring: &[u8],
) -> Result<Option<debian::release::Release>> {
    let Some(path) = cache.verified_blob(sha256)? else {
        return Ok(None);
    };
    let bytes = std::fs::read(&path)?;
    let text = String::from_utf8_lossy(&bytes);
    let date = text
        .lines()
        .find_map(|l| l.strip_prefix("Date:"))
        .and_then(|d| debian::release::parse_rfc2822(d.trim()).ok());
    let Some(date) = date else { return Ok(None) };
    // A detached Release has no signature in it: not usable alone.
    Ok(debian::release::verify_inrelease(&bytes, keyring, date + Duration::from_secs(1)).ok())
}

/// The packages of one locked index, from the cache when the lock's
/// InRelease and Packages are there (the InRelease checked against the
/// keyring, the Packages against the InRelease), else from the mirror's
/// current signed index. `None` when neither is to be had.
fn signed_packages(
    spec: &Spec,
    apt: &AptSpec,
    mirrors: &MirrorConfig,
    arch: &str,
    idx: &LockedIndex,
    cache: &Cache,
) -> Result<Vec<debian::packages::Package>> {
    let repo = apt
        .repository
        .iter()
        .find(|r| r.name == idx.repository)
        .ok_or_else(|| {
            verification(format!(
                "{}: the lock names repository {:?}, which the spec does not have; run `netshoot-build lock`",
                crate::lockfile::path_for(&spec.path).display(),
                idx.repository
            ))
        })?;
    let keyring = read_keyring(spec, repo)?;
    if let Some(release) = kept_release(cache, &idx.release_sha256, &keyring)? {
        let listed = release
            .sha256(&idx.packages_path)
            .is_some_and(|(h, _)| h.eq_ignore_ascii_case(&idx.packages_sha256));
        if listed {
            if let Some(path) = cache.verified_blob(&idx.packages_sha256)? {
                let ext = idx.packages_path.rsplit_once('.').map_or("", |(_, e)| e);
                let ext = if ["xz", "gz"].contains(&ext) { ext } else { "" };
                let text = debian::repository::decompress(&std::fs::read(&path)?, ext)
                    .map_err(|e| verification(format!("{}: {e}", path.display())))?;
                return debian::packages::parse_packages(&text)
                    .map_err(|e| verification(format!("{}: {e}", path.display())));
            }
        }
    }
    let base = mirrors.url_for(repo, &idx.suite)?;
    let fetch = Keeping {
        inner: fetcher()?,
        cache,
    };
    let got = load_index(
        &fetch,
        &base,
        &idx.suite,
        &idx.component,
        arch,
        &keyring,
        SystemTime::now(),
    )
    .map_err(|e| classify_repo_error(&repo.name, e))?;
    Ok(got.packages)
}

/// The packages of a signed index by (name, version, architecture).
type SignedPackages = HashMap<(String, String, String), debian::packages::Package>;

/// Checks every locked package of a platform against the signed indexes:
/// an entry must be listed there with the same file, size and sha256,
/// so an edited lock cannot point a name at another (validly signed)
/// `.deb`. A lock that passed is remembered in the cache by its digest.
pub fn check_lock(
    spec: &Spec,
    apt: &AptSpec,
    mirrors: &MirrorConfig,
    lock: &AptLock,
    cache: &Cache,
) -> Result<()> {
    let mut keyrings = Vec::new();
    for r in &apt.repository {
        keyrings.push(
            image_layout::Digest::of(&read_keyring(spec, r)?)
                .hex()
                .to_string(),
        );
    }
    let key = image_layout::Digest::of(&image_layout::canonical_json(
        &serde_json::json!({"v": 1, "lock": lock, "keyrings": keyrings}),
    )?)
    .hex()
    .to_string();
    let marker = cache.root().join("checked").join(format!("apt-{key}"));
    if marker.is_file() {
        return Ok(());
    }
    let mut listed: HashMap<(String, String), SignedPackages> = HashMap::new();
    for idx in &lock.indexes {
        let pkgs = signed_packages(spec, apt, mirrors, &lock.arch, idx, cache)?;
        let m = listed
            .entry((idx.repository.clone(), idx.suite.clone()))
            .or_default();
        for p in pkgs {
            m.insert(
                (
                    p.name.clone(),
                    p.version.to_string(),
                    p.architecture.clone(),
                ),
                p,
            );
        }
    }
    let lock_path = crate::lockfile::path_for(&spec.path);
    for p in &lock.packages {
        let found = listed
            .get(&(p.repository.clone(), p.suite.clone()))
            .and_then(|m| m.get(&(p.name.clone(), p.version.clone(), p.architecture.clone())));
        let why = match found {
            None => format!("is not in the signed index of {}/{}", p.repository, p.suite),
            Some(x)
                if x.filename != p.filename
                    || x.size != p.size
                    || !x.sha256.eq_ignore_ascii_case(&p.sha256) =>
            {
                format!(
                    "does not match the signed index of {}/{} (it lists {} {} bytes sha256 {})",
                    p.repository, p.suite, x.filename, x.size, x.sha256
                )
            }
            Some(x) if x.source != p.source => format!(
                "names source {:?}, the signed index {:?}",
                p.source, x.source
            ),
            Some(_) => continue,
        };
        return Err(verification(format!(
            "{}: lock entry {} {} ({}) {why}; the lockfile was edited or is corrupt: run `netshoot-build lock`",
            lock_path.display(),
            p.name,
            p.version,
            p.architecture
        )));
    }
    let mark = || -> std::io::Result<()> {
        std::fs::create_dir_all(marker.parent().unwrap_or(cache.root()))?;
        std::fs::write(&marker, b"")
    };
    let _ = mark();
    Ok(())
}
