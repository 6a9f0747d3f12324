//! The `source` kind: Debian source packages compiled into static
//! binaries with a hermetic musl cross toolchain (zig), for every platform.
//!
//! Trust flows as it does for `.deb`s: the signed Release pins the
//! `Sources` index, the index pins every file of a source package (the
//! `.dsc`, the upstream tarball, Debian's changes) by sha256 and size, and
//! the lockfile records all of them. `dpkg-source` unpacks the verified
//! files (Debian's patches applied), then the entry's recipe runs in a
//! cleared environment whose compiler is `zig cc -target ARCH-linux-musl`.
//! Results are cached by everything that decides their bytes.

use crate::apt::MirrorConfig;
use crate::cache::Cache;
use crate::crates::{capture, copy_tree, remove_dir_if_exists, FileLock};
use crate::error::{bad_input, network, verification, Result};
pub use crate::lockfile::{LockedSourceFile, SourceLock};
pub use crate::spec::{build_order, SourceSpec, StaticSpec};
use crate::spec::{static_repository as repository, Spec};
use image_layout::Platform;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Bumped when the build environment changes in a way that changes bytes.
const RECIPE_VERSION: u32 = 1;

/// Resolves every `[[source]]` entry to the newest version its suite's
/// signed `Sources` index lists, pinning every file.
pub fn lock_sources(
    spec: &Spec,
    mirrors: &MirrorConfig,
    cache: &Cache,
    log: &(dyn Fn(String) + Sync),
) -> Result<BTreeMap<String, SourceLock>> {
    let mut out = BTreeMap::new();
    let Some(st) = &spec.statics else {
        return Ok(out);
    };
    if spec.source.is_empty() {
        return Ok(out);
    }
    let repo = repository(spec, st)?;
    let keyring = crate::apt::read_keyring(spec, repo)?;
    let fetch = crate::apt::Keeping {
        inner: crate::apt::fetcher()?,
        cache,
    };
    let now = std::time::SystemTime::now();
    let mut indexes: BTreeMap<String, debian::repository::SourcesIndex> = BTreeMap::new();
    for s in &spec.source {
        let suite = s.suite.clone().unwrap_or_else(|| st.suite.clone());
        if !indexes.contains_key(&suite) {
            let base = mirrors.url_for(repo, &suite)?;
            log(format!(
                "index {}/{suite}/{}/source from {base}",
                repo.name, st.component
            ));
            let idx = debian::repository::load_sources_index(
                &fetch,
                &base,
                &suite,
                &st.component,
                &keyring,
                now,
            )
            .map_err(|e| crate::apt::classify_repo_error(&repo.name, e))?;
            indexes.insert(suite.clone(), idx);
        }
        let idx = &indexes[&suite];
        let p = match &s.version {
            None => debian::sources::newest(&idx.packages, &s.name),
            Some(v) => idx
                .packages
                .iter()
                .find(|p| p.name == s.name && p.version.to_string() == *v),
        }
        .ok_or_else(|| {
            let listed: Vec<String> = idx
                .packages
                .iter()
                .filter(|p| p.name == s.name)
                .map(|p| p.version.to_string())
                .collect();
            bad_input(format!(
                "source {:?}{}: not in the {suite}/{} Sources index of repository {:?} (it lists: {})",
                s.name,
                s.version.as_ref().map(|v| format!(" version {v}")).unwrap_or_default(),
                st.component,
                repo.name,
                if listed.is_empty() { "no version".to_string() } else { listed.join(", ") }
            ))
        })?;
        if p.dsc().is_none() {
            return Err(verification(format!(
                "source {:?} {}: the Sources index lists no .dsc",
                s.name, p.version
            )));
        }
        out.insert(
            s.name.clone(),
            SourceLock {
                package: p.name.clone(),
                version: p.version.to_string(),
                repository: repo.name.clone(),
                suite: suite.clone(),
                component: st.component.clone(),
                release_sha256: idx.release_digest.clone(),
                sources_path: idx.path.clone(),
                sources_sha256: idx.sha256.clone(),
                directory: p.directory.clone(),
                format: p.format.clone(),
                files: p
                    .files
                    .iter()
                    .map(|f| LockedSourceFile {
                        name: f.name.clone(),
                        sha256: f.sha256.clone(),
                        size: f.size,
                    })
                    .collect(),
            },
        );
        log(format!("locked source {} {}", s.name, p.version));
    }
    Ok(out)
}

/// The zig compiler the recipes use: `$NETSHOOT_ZIG`, else `zig` on PATH.
#[derive(Clone, Debug)]
pub struct Zig {
    /// The executable (absolute).
    pub path: PathBuf,
    /// `zig version`.
    pub version: String,
}

impl Zig {
    /// Finds zig and reads its version.
    pub fn find() -> Result<Zig> {
        let named = std::env::var_os("NETSHOOT_ZIG").map(PathBuf::from);
        let candidate = match named {
            Some(p) => p,
            None => std::env::var_os("PATH")
                .and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join("zig"))
                        .find(|p| p.is_file())
                })
                .ok_or_else(|| {
                    bad_input(
                        "the static toolbox compiles with zig, which is not on PATH: \
                         run scripts/install-deps.sh (pip package ziglang), or set NETSHOOT_ZIG",
                    )
                })?,
        };
        let path = std::fs::canonicalize(&candidate)
            .map_err(|e| bad_input(format!("zig {}: {e}", candidate.display())))?;
        let version = capture(Command::new(&path).arg("version"))
            .map_err(|e| bad_input(format!("zig {}: {e}", path.display())))?
            .trim()
            .to_string();
        Ok(Zig { path, version })
    }
}

/// The zig (and autoconf) target for a platform, or an error naming it.
pub fn zig_target(platform: &Platform) -> Result<&'static str> {
    Ok(crate::target::Target::of(platform)?.zig_triple)
}

/// What one entry built for one platform.
#[derive(Clone, Debug)]
pub struct BuiltSource {
    /// The entry's name.
    pub name: String,
    /// The locked version.
    pub version: String,
    /// Programs: name and file.
    pub bins: Vec<(String, PathBuf)>,
    /// Link paths (absolute) to the first program.
    pub links: Vec<String>,
    /// Whether it came from the cache.
    pub cached: bool,
    /// Seconds the compile took (0 when cached).
    pub seconds: f64,
}

/// The source packages of the `Sources` index a lock entry names: from the
/// cache when the lock's InRelease and index are there (checked against
/// the keyring and each other), else from the mirror's current signed
/// index.
fn signed_sources(
    spec: &Spec,
    lock: &SourceLock,
    mirrors: &MirrorConfig,
    cache: &Cache,
) -> Result<Vec<debian::sources::SourcePackage>> {
    let st = spec
        .statics
        .as_ref()
        .ok_or_else(|| bad_input(format!("{}: has no [static] table", spec.path.display())))?;
    let repo = repository(spec, st)?;
    let keyring = crate::apt::read_keyring(spec, repo)?;
    if let Some(release) = crate::apt::kept_release(cache, &lock.release_sha256, &keyring)? {
        let listed = release
            .sha256(&lock.sources_path)
            .is_some_and(|(h, _)| h.eq_ignore_ascii_case(&lock.sources_sha256));
        if let Some(path) = listed
            .then(|| cache.verified_blob(&lock.sources_sha256))
            .transpose()?
            .flatten()
        {
            let ext = lock.sources_path.rsplit_once('.').map_or("", |(_, e)| e);
            let ext = if ["xz", "gz"].contains(&ext) { ext } else { "" };
            let text = debian::repository::decompress(&std::fs::read(&path)?, ext)
                .map_err(|e| verification(format!("{}: {e}", path.display())))?;
            return debian::sources::parse_sources(&text)
                .map_err(|e| verification(format!("{}: {e}", path.display())));
        }
    }
    let base = mirrors.url_for(repo, &lock.suite)?;
    let fetch = crate::apt::Keeping {
        inner: crate::apt::fetcher()?,
        cache,
    };
    let idx = debian::repository::load_sources_index(
        &fetch,
        &base,
        &lock.suite,
        &lock.component,
        &keyring,
        std::time::SystemTime::now(),
    )
    .map_err(|e| crate::apt::classify_repo_error(&repo.name, e))?;
    Ok(idx.packages)
}

/// Checks every locked source package against the signed `Sources`
/// index: the same folder and the same files, digests and sizes, so an
/// edited lock cannot swap in another package's files. A lock that
/// passed is remembered in the cache by its digest.
fn check_locks(
    spec: &Spec,
    locks: &BTreeMap<String, SourceLock>,
    mirrors: &MirrorConfig,
    cache: &Cache,
) -> Result<()> {
    let key = image_layout::Digest::of(&image_layout::canonical_json(
        &serde_json::json!({"v": 1, "sources": locks}),
    )?)
    .hex()
    .to_string();
    let marker = cache.root().join("checked").join(format!("sources-{key}"));
    if marker.is_file() {
        return Ok(());
    }
    let lock_path = crate::lockfile::path_for(&spec.path);
    let mut seen: BTreeMap<(String, String), Vec<debian::sources::SourcePackage>> = BTreeMap::new();
    for (name, l) in locks {
        let k = (l.release_sha256.clone(), l.sources_sha256.clone());
        if !seen.contains_key(&k) {
            let pkgs = signed_sources(spec, l, mirrors, cache)?;
            seen.insert(k.clone(), pkgs);
        }
        let listed = seen[&k]
            .iter()
            .find(|p| p.name == l.package && p.version.to_string() == l.version);
        let files = |p: &debian::sources::SourcePackage| {
            let mut v: Vec<(String, String, u64)> = p
                .files
                .iter()
                .map(|f| (f.name.clone(), f.sha256.to_ascii_lowercase(), f.size))
                .collect();
            v.sort();
            v
        };
        let mut ours: Vec<(String, String, u64)> = l
            .files
            .iter()
            .map(|f| (f.name.clone(), f.sha256.to_ascii_lowercase(), f.size))
            .collect();
        ours.sort();
        let why = match listed {
            None => format!("is not in the signed Sources index of {}", l.suite),
            Some(p) if p.directory != l.directory || files(p) != ours => format!(
                "does not match the signed Sources index of {} (folder or files differ)",
                l.suite
            ),
            Some(_) => continue,
        };
        return Err(verification(format!(
            "{}: lock entry for source {name:?} ({} {}) {why}; the lockfile was edited or is corrupt: run `netshoot-build lock`",
            lock_path.display(),
            l.package,
            l.version
        )));
    }
    let mark = || -> std::io::Result<()> {
        std::fs::create_dir_all(marker.parent().unwrap_or(cache.root()))?;
        std::fs::write(&marker, b"")
    };
    let _ = mark();
    Ok(())
}

/// Builds (or finds in the cache) every `[[source]]` entry for `platform`,
/// dependencies first.
#[allow(clippy::too_many_arguments)]
pub fn build_all(
    spec: &Spec,
    locks: &BTreeMap<String, SourceLock>,
    mirrors: &MirrorConfig,
    platform: &Platform,
    cache: &Cache,
    source_date_epoch: u64,
    log: &(dyn Fn(String) + Sync),
    progress: &crate::progress::Progress,
) -> Result<Vec<BuiltSource>> {
    let st = spec
        .statics
        .as_ref()
        .ok_or_else(|| bad_input(format!("{}: has no [static] table", spec.path.display())))?;
    let repo = repository(spec, st)?;
    check_locks(spec, locks, mirrors, cache)?;
    let target = zig_target(platform)?;
    let zig = Zig::find()?;
    let mut keys: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    let mut built = Vec::new();
    for s in build_order(spec)? {
        let lock = locks.get(&s.name).ok_or_else(|| {
            bad_input(format!(
                "{}: has no entry for source {:?}; run `netshoot-build lock`",
                crate::lockfile::path_for(&spec.path).display(),
                s.name
            ))
        })?;
        let deps: Vec<(String, PathBuf)> = s.needs.iter().map(|n| keys[n].clone()).collect();
        let key = cache_key(spec, s, lock, &deps, target, &zig, source_date_epoch)?;
        let who = format!("source {} {} for {platform}", s.name, lock.version);
        let done = cache.root().join("static").join(format!(
            "{}-{}-{target}-{}",
            s.name,
            lock.version,
            &key[..16]
        ));
        let mut cached = true;
        let mut seconds = 0.0;
        if !done.join(".complete").is_file() {
            std::fs::create_dir_all(cache.root().join("static"))
                .map_err(|e| bad_input(format!("cache {}: {e}", cache.root().display())))?;
            let _guard = FileLock::acquire(
                &cache
                    .root()
                    .join("static")
                    .join(format!(".{}-{target}.lock", s.name)),
            )?;
            if !done.join(".complete").is_file() {
                let base = crate::apt::MirrorConfig::url_for(mirrors, repo, &lock.suite)?;
                let files = fetch_source(lock, &base, cache, log)?;
                log(format!("compile {who} ({target}, zig {})", zig.version));
                let spinner = progress.spinner("compile");
                spinner.set_message(format!("{} for {platform}", s.name));
                let started = std::time::Instant::now();
                compile(
                    spec,
                    s,
                    lock,
                    &files,
                    &deps,
                    target,
                    platform,
                    &zig,
                    cache,
                    source_date_epoch,
                    &done,
                    &who,
                )?;
                drop(spinner);
                seconds = started.elapsed().as_secs_f64();
                cached = false;
                log(format!("compiled {who} in {seconds:.0} s"));
            }
        }
        if cached {
            log(format!("cached {who}"));
        }
        let out = done.join("out");
        let mut bins = Vec::new();
        for b in &s.bins {
            let p = out.join("usr/bin").join(b);
            crate::elf::check_static(&p, platform)
                .map_err(|e| verification(format!("{who}: {e}")))?;
            bins.push((b.clone(), p));
        }
        let mut links = Vec::new();
        if let Some(f) = &s.links_file {
            let text = std::fs::read_to_string(out.join(f.trim_start_matches('/')))
                .map_err(|e| bad_input(format!("{who}: links_file {f}: {e}")))?;
            for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if !l.starts_with('/') || l.split('/').any(|c| c == "..") {
                    return Err(bad_input(format!(
                        "{who}: links_file {f}: {l:?} is not an absolute path"
                    )));
                }
                links.push(l.to_string());
            }
        }
        keys.insert(s.name.clone(), (key, out));
        built.push(BuiltSource {
            name: s.name.clone(),
            version: lock.version.clone(),
            bins,
            links,
            cached,
            seconds,
        });
    }
    Ok(built)
}

fn sha256_file(p: &Path) -> Result<String> {
    let data = std::fs::read(p).map_err(|e| bad_input(format!("{}: {e}", p.display())))?;
    Ok(hex::encode(Sha256::digest(&data)))
}

/// Everything that decides the bytes of an entry's output.
fn cache_key(
    spec: &Spec,
    s: &SourceSpec,
    lock: &SourceLock,
    deps: &[(String, PathBuf)],
    target: &str,
    zig: &Zig,
    epoch: u64,
) -> Result<String> {
    let mut patches = Vec::new();
    for p in &s.patches {
        let path = spec.resolve_inside(&format!("source {:?} patch", s.name), p)?;
        patches.push((
            p.display().to_string(),
            sha256_file(&path).map_err(|e| {
                bad_input(format!("source {:?}: patch {}: {e}", s.name, p.display()))
            })?,
        ));
    }
    let aux: Vec<String> = ["config.sub", "config.guess"]
        .iter()
        .map(|n| sha256_file(&Path::new("/usr/share/misc").join(n)).unwrap_or_default())
        .collect();
    let v = serde_json::json!({
        "recipe_version": RECIPE_VERSION,
        "lock": lock,
        "steps": s.steps,
        "bins": s.bins,
        "links_file": s.links_file,
        "patches": patches,
        "deps": deps.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "target": target,
        "zig": zig.version,
        "autotools": aux,
        "epoch": epoch,
    });
    Ok(hex::encode(Sha256::digest(image_layout::canonical_json(
        &v,
    )?)))
}

/// Downloads (or finds in the cache) every file of a locked source
/// package, each checked against the lock's sha256 and size. A `.dsc` the
/// mirror does not carry is written from the signed index's record of it
/// (same file list, same digests); any other missing file is an error.
fn fetch_source(
    lock: &SourceLock,
    base: &str,
    cache: &Cache,
    log: &(dyn Fn(String) + Sync),
) -> Result<Vec<(LockedSourceFile, Option<PathBuf>)>> {
    let who = format!("source {} {}", lock.package, lock.version);
    let mut out = Vec::new();
    for f in &lock.files {
        let url = format!("{base}/{}/{}", lock.directory, f.name);
        if let Some(dest) = cache.verified_blob(&f.sha256)? {
            out.push((f.clone(), Some(dest)));
            continue;
        }
        let is_dsc = f.name.ends_with(".dsc");
        let (tmp, got) = match cache.download(&url) {
            Ok(x) => x,
            Err(e) if is_dsc && e.to_string().contains("404 Not Found") => {
                log(format!(
                    "{who}: the mirror has no {}; using the signed index's record of it",
                    f.name
                ));
                out.push((f.clone(), None));
                continue;
            }
            Err(e) => return Err(network(format!("{who}: {}: {e:#}", f.name))),
        };
        let size = tmp
            .as_file()
            .metadata()
            .map(|m| m.len())
            .map_err(|e| bad_input(format!("cache: {e}")))?;
        if got != f.sha256 || size != f.size {
            return Err(verification(format!(
                "{who}: {} from {url} is not the file the signed Sources index lists \
                 (sha256 {got}, {size} bytes; expected {}, {} bytes)",
                f.name, f.sha256, f.size
            )));
        }
        let dest = cache.keep(tmp, &f.sha256)?;
        out.push((f.clone(), Some(dest)));
    }
    Ok(out)
}

/// The body of a `.dsc`, without an OpenPGP clear-signature around it.
fn dsc_body(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----") else {
        return text;
    };
    let body = rest.split_once("\n\n").map(|(_, b)| b).unwrap_or(rest);
    body.split("-----BEGIN PGP SIGNATURE-----")
        .next()
        .unwrap_or(body)
}

/// A `.dsc` written from the lock: what dpkg-source needs to unpack.
fn synth_dsc(lock: &SourceLock, files: &[(LockedSourceFile, Option<PathBuf>)]) -> Result<String> {
    use md5::Digest as _;
    let mut sha = String::new();
    let mut md5s = String::new();
    for (f, path) in files {
        if f.name.ends_with(".dsc") {
            continue;
        }
        let path = path
            .as_ref()
            .ok_or_else(|| bad_input(format!("{} missing", f.name)))?;
        let data =
            std::fs::read(path).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        sha.push_str(&format!(" {} {} {}\n", f.sha256, f.size, f.name));
        md5s.push_str(&format!(
            " {} {} {}\n",
            hex::encode(md5::Md5::digest(&data)),
            f.size,
            f.name
        ));
    }
    Ok(format!(
        "Format: {}\nSource: {}\nVersion: {}\nChecksums-Sha256:\n{sha}Files:\n{md5s}",
        lock.format, lock.package, lock.version
    ))
}

/// Unpacks, patches and runs the recipe; on success renames the result
/// into `done`. A failure leaves `done` absent and the log in the cache.
#[allow(clippy::too_many_arguments)]
fn compile(
    spec: &Spec,
    s: &SourceSpec,
    lock: &SourceLock,
    files: &[(LockedSourceFile, Option<PathBuf>)],
    deps: &[(String, PathBuf)],
    target: &str,
    platform: &Platform,
    zig: &Zig,
    cache: &Cache,
    epoch: u64,
    done: &Path,
    who: &str,
) -> Result<()> {
    let work_parent = cache.root().join("static-work");
    std::fs::create_dir_all(&work_parent)
        .map_err(|e| bad_input(format!("cache {}: {e}", work_parent.display())))?;
    let root = work_parent.join(format!("{}-{target}", s.name));
    remove_dir_if_exists(&root)?;
    let dl = root.join("dl");
    for d in [
        "dl",
        "deps/usr/include",
        "deps/usr/lib",
        "out",
        "tools",
        "home",
        "zig-local",
    ] {
        std::fs::create_dir_all(root.join(d))
            .map_err(|e| bad_input(format!("{}: {e}", root.display())))?;
    }
    // The verified files under their own names, as dpkg-source wants them.
    let mut dsc_name = String::new();
    for (f, path) in files {
        let dst = dl.join(&f.name);
        match path {
            Some(p) => {
                std::fs::copy(p, &dst).map_err(|e| bad_input(format!("{}: {e}", dst.display())))?;
            }
            None => {
                std::fs::write(&dst, synth_dsc(lock, files)?)
                    .map_err(|e| bad_input(format!("{}: {e}", dst.display())))?;
            }
        }
        if f.name.ends_with(".dsc") {
            dsc_name = f.name.clone();
            // The .dsc's own list must be the index's (both are signed
            // statements about the same upload).
            let text = std::fs::read_to_string(&dst)
                .map_err(|e| bad_input(format!("{who}: {}: {e}", f.name)))?;
            let paras = debian::control::parse_paragraphs(dsc_body(&text))
                .map_err(|e| verification(format!("{who}: {}: {e}", f.name)))?;
            let listed = paras
                .first()
                .and_then(|p| p.get("Checksums-Sha256"))
                .ok_or_else(|| {
                    verification(format!("{who}: {} has no Checksums-Sha256", f.name))
                })?;
            let mut in_dsc: Vec<(String, String, u64)> =
                debian::sources::parse_checksums(&lock.package, listed)
                    .map_err(|e| verification(format!("{who}: {}: {e}", f.name)))?
                    .into_iter()
                    .map(|x| (x.name, x.sha256, x.size))
                    .collect();
            let mut in_lock: Vec<(String, String, u64)> = lock
                .files
                .iter()
                .filter(|x| !x.name.ends_with(".dsc"))
                .map(|x| (x.name.clone(), x.sha256.clone(), x.size))
                .collect();
            in_dsc.sort();
            in_lock.sort();
            if in_dsc != in_lock {
                return Err(verification(format!(
                    "{who}: {} lists other files than the signed Sources index",
                    f.name
                )));
            }
        }
    }
    let log_path = root.join("build.log");
    let log_file = std::fs::File::create(&log_path)
        .map_err(|e| bad_input(format!("{}: {e}", log_path.display())))?;
    let src = root.join("src");
    let out = Command::new("dpkg-source")
        .current_dir(&dl)
        .args(["--no-copy", "-x", &dsc_name])
        .arg(&src)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            bad_input(format!(
                "cannot run dpkg-source (apt-get install dpkg-dev): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(verification(format!(
            "{who}: dpkg-source -x failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    for p in &s.patches {
        let path = std::fs::canonicalize(spec.resolve_inside(&format!("{who}: patch"), p)?)
            .map_err(|e| bad_input(format!("{who}: patch {}: {e}", p.display())))?;
        let out = Command::new("patch")
            .current_dir(&src)
            .args([
                "-p1",
                "--batch",
                "--forward",
                "--no-backup-if-mismatch",
                "-i",
            ])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| bad_input(format!("cannot run patch: {e}")))?;
        if !out.status.success() {
            return Err(bad_input(format!(
                "{who}: patch {} does not apply: {}",
                p.display(),
                String::from_utf8_lossy(&out.stdout).trim()
            )));
        }
    }
    // Debian's own trees often ship stale config.sub/config.guess that do
    // not know musl; use the host's (autotools-dev), as dh_update_autotools_config does.
    replace_autotools_aux(&src)?;
    for (_, dep_out) in deps {
        copy_tree(dep_out, &root.join("deps"))?;
    }
    let tools = root.join("tools");
    write_wrappers(&tools, zig, target, &root)?;
    let debian_arch = crate::apt::debian_arch(platform)?;
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let deps_dir = root.join("deps");
    let path_env = format!("{}:/usr/local/bin:/usr/bin:/bin", tools.display());
    // zig's own cache (its musl libc per target) is content-addressed and
    // may be shared between caches (`NETSHOOT_ZIG_CACHE`).
    let zig_cache = std::env::var_os("NETSHOOT_ZIG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.root().join("zig-cache"));
    for (i, step) in s.steps.iter().enumerate() {
        let mut cmd = Command::new("bash");
        cmd.current_dir(&src)
            .args(["-euo", "pipefail", "-c", step])
            .env_clear()
            .env("PATH", &path_env)
            .env("HOME", root.join("home"))
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            .env("HOST", target)
            .env("ARCH", debian_arch)
            .env("ROOT", &root)
            .env("BUILD", "x86_64-linux-gnu")
            .env("JOBS", jobs.to_string())
            .env("SRC", &src)
            .env("DEPS", &deps_dir)
            .env("OUT", root.join("out"))
            .env("CC", tools.join("cc"))
            .env("CXX", tools.join("c++"))
            .env("AR", tools.join("ar"))
            .env("RANLIB", tools.join("ranlib"))
            .env("CC_FOR_BUILD", "gcc")
            .env("HOSTCC", "gcc")
            .env("BUILD_CC", "gcc")
            .env("CFLAGS", "-O2")
            .env("CXXFLAGS", "-O2")
            .env("CPPFLAGS", format!("-I{}/usr/include", deps_dir.display()))
            .env(
                "LDFLAGS",
                format!("-L{}/usr/lib -static -s", deps_dir.display()),
            )
            .env("PKG_CONFIG_LIBDIR", deps_dir.join("usr/lib/pkgconfig"))
            .env("PKG_CONFIG_SYSROOT_DIR", &deps_dir)
            .env("ZIG_GLOBAL_CACHE_DIR", &zig_cache)
            .env("ZIG_LOCAL_CACHE_DIR", root.join("zig-local"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| bad_input(e.to_string()))?)
            .stderr(log_file.try_clone().map_err(|e| bad_input(e.to_string()))?);
        let status = cmd
            .status()
            .map_err(|e| bad_input(format!("{who}: cannot run /bin/sh: {e}")))?;
        if !status.success() {
            // One line: the step, the log's last error line, the log.
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let why = lines
                .iter()
                .rev()
                .find(|l| l.contains("error:") || l.contains("Error ") || l.contains("*** "))
                .or(lines.last())
                .map(|l| l.trim())
                .unwrap_or("no output");
            return Err(bad_input(format!(
                "{who}: step {} of {} (`{step}`) failed ({status}): {why} (full log: {})",
                i + 1,
                s.steps.len(),
                log_path.display()
            )));
        }
    }
    for b in &s.bins {
        let p = root.join("out/usr/bin").join(b);
        if !p.is_file() {
            return Err(bad_input(format!(
                "{who}: the recipe did not install usr/bin/{b} under $OUT (log: {})",
                log_path.display()
            )));
        }
    }
    // Publish atomically: the output folder, then the marker.
    remove_dir_if_exists(done)?;
    std::fs::create_dir_all(done).map_err(|e| bad_input(format!("{}: {e}", done.display())))?;
    std::fs::rename(root.join("out"), done.join("out"))
        .map_err(|e| bad_input(format!("{}: {e}", done.display())))?;
    let _ = std::fs::copy(&log_path, done.join("build.log"));
    std::fs::write(done.join(".complete"), b"")
        .map_err(|e| bad_input(format!("{}: {e}", done.display())))?;
    remove_dir_if_exists(&root)?;
    Ok(())
}

fn replace_autotools_aux(src: &Path) -> Result<()> {
    let host = Path::new("/usr/share/misc");
    if !host.join("config.sub").is_file() {
        return Ok(());
    }
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd =
            std::fs::read_dir(&dir).map_err(|e| bad_input(format!("{}: {e}", dir.display())))?;
        for e in rd.flatten() {
            let p = e.path();
            let ft = match e.file_type() {
                Ok(t) => t,
                Err(_) => continue,
            };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let name = e.file_name();
                if name == "config.sub" || name == "config.guess" {
                    std::fs::copy(host.join(&name), &p)
                        .map_err(|e| bad_input(format!("{}: {e}", p.display())))?;
                }
            }
        }
    }
    Ok(())
}

/// `cc`, `c++`, `ar`, `ranlib` (and `TARGET-` prefixed names, which
/// autoconf looks for) calling zig for the target. Build paths are mapped
/// to `/build` so they never reach the binaries.
fn write_wrappers(tools: &Path, zig: &Zig, target: &str, root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let z = zig.path.display();
    let scripts = [
        (
            "cc",
            format!(
                "exec {z} cc -target {target} -ffile-prefix-map={}=/build \"$@\"\n",
                root.display()
            ),
        ),
        (
            "c++",
            format!(
                "exec {z} c++ -target {target} -ffile-prefix-map={}=/build \"$@\"\n",
                root.display()
            ),
        ),
        ("ar", format!("exec {z} ar \"$@\"\n")),
        ("ranlib", format!("exec {z} ranlib \"$@\"\n")),
    ];
    for (name, body) in scripts {
        let p = tools.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}"))
            .map_err(|e| bad_input(format!("{}: {e}", p.display())))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| bad_input(format!("{}: {e}", p.display())))?;
        let mut aliases = vec![format!("{target}-{name}")];
        if name == "cc" {
            aliases.push(format!("{target}-gcc"));
        }
        for alias in aliases {
            std::os::unix::fs::symlink(name, tools.join(alias))
                .map_err(|e| bad_input(format!("{}: {e}", tools.display())))?;
        }
    }
    Ok(())
}
