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
use crate::error::{bad_input, network, verification, Result};
pub use crate::lockfile::{LockedSourceFile, SourceLock};
use crate::source::cargo::compile::{copy_tree, remove_dir_if_exists, FileLock};
pub use crate::spec::{build_order, SourceSpec, StaticSpec};
use crate::spec::{static_repository as repository, AptRepository, Spec};
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

pub use crate::zig::Zig;

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
    let cpu = crate::target::Target::of(platform)?.zig_cpu;
    let zig = Zig::find()?;
    let job = Job {
        spec,
        mirrors,
        repo,
        platform,
        target,
        cpu,
        zig,
        cache,
        epoch: source_date_epoch,
        log,
        progress,
    };
    // Each built entry's cache key and output folder, for the entries
    // that need it.
    let mut keys: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    let mut built = Vec::new();
    for s in build_order(spec)? {
        let lock = locked(spec, locks, &s.name)?;
        let deps: Vec<(String, PathBuf)> = s.needs.iter().map(|n| keys[n].clone()).collect();
        let unit = job.unit(s, lock, deps)?;
        let (cached, seconds) = match job.ensure_built(&unit)? {
            Some(seconds) => (false, seconds),
            None => {
                log(format!("cached {}", unit.who));
                (true, 0.0)
            }
        };
        let out = unit.done.join("out");
        let bins = static_bins(s, &out, platform, &unit.who)?;
        let links = links_of(s, &out, &unit.who)?;
        keys.insert(s.name.clone(), (unit.key, out));
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

/// What every entry's build for one platform shares, so the steps of a
/// build take it whole rather than ten loose arguments.
struct Job<'a> {
    spec: &'a Spec,
    mirrors: &'a MirrorConfig,
    /// The `[static]` table's repository, which serves the sources.
    repo: &'a AptRepository,
    platform: &'a Platform,
    /// The zig (and autoconf) target triple.
    target: &'static str,
    /// zig's `-mcpu` for the platform, where it narrows the default.
    cpu: Option<&'static str>,
    zig: Zig,
    cache: &'a Cache,
    /// `SOURCE_DATE_EPOCH` for the recipes.
    epoch: u64,
    log: &'a (dyn Fn(String) + Sync),
    progress: &'a crate::progress::Progress,
}

/// One entry's build for the job's platform.
struct Unit<'a> {
    s: &'a SourceSpec,
    lock: &'a SourceLock,
    /// The entries it needs: their cache keys and output folders.
    deps: Vec<(String, PathBuf)>,
    /// Everything that decides its bytes, hashed (see [`cache_key`]).
    key: String,
    /// How log lines and errors name it.
    who: String,
    /// Its output's folder in the cache, complete once `.complete` is there.
    done: PathBuf,
}

/// The lock entry of source `name`: a spec entry the lock does not know
/// was added after the last `lock`, which is the command to run.
fn locked<'l>(
    spec: &Spec,
    locks: &'l BTreeMap<String, SourceLock>,
    name: &str,
) -> Result<&'l SourceLock> {
    locks.get(name).ok_or_else(|| {
        bad_input(format!(
            "{}: has no entry for source {:?}; run `netshoot-build lock`",
            crate::lockfile::path_for(&spec.path).display(),
            name
        ))
    })
}

impl Job<'_> {
    /// Names the entry's cache folder by its key, so any change to what
    /// decides its bytes builds it anew beside the old result.
    fn unit<'u>(
        &self,
        s: &'u SourceSpec,
        lock: &'u SourceLock,
        deps: Vec<(String, PathBuf)>,
    ) -> Result<Unit<'u>> {
        let key = cache_key(
            self.spec,
            s,
            lock,
            &deps,
            (self.target, self.cpu),
            &self.zig,
            self.epoch,
        )?;
        let who = format!("source {} {} for {}", s.name, lock.version, self.platform);
        let done = self.cache.root().join("static").join(format!(
            "{}-{}-{}-{}",
            s.name,
            lock.version,
            self.target,
            &key[..16]
        ));
        Ok(Unit {
            s,
            lock,
            deps,
            key,
            who,
            done,
        })
    }

    /// Compiles the entry unless the cache has it; `None` when it does,
    /// else the seconds the compile took. The check is repeated under the
    /// entry's file lock, so two builds sharing a cache compile it once.
    fn ensure_built(&self, unit: &Unit) -> Result<Option<f64>> {
        if unit.done.join(".complete").is_file() {
            return Ok(None);
        }
        let static_dir = self.cache.root().join("static");
        std::fs::create_dir_all(&static_dir)
            .map_err(|e| bad_input(format!("cache {}: {e}", self.cache.root().display())))?;
        let _guard =
            FileLock::acquire(&static_dir.join(format!(".{}-{}.lock", unit.s.name, self.target)))?;
        if unit.done.join(".complete").is_file() {
            return Ok(None);
        }
        self.fetch_and_compile(unit).map(Some)
    }

    /// Downloads the verified source files only when a compile needs them,
    /// and times the compile for the summary.
    fn fetch_and_compile(&self, unit: &Unit) -> Result<f64> {
        let base = crate::apt::MirrorConfig::url_for(self.mirrors, self.repo, &unit.lock.suite)?;
        let files = fetch_source(unit.lock, &base, self.cache, self.log)?;
        (self.log)(format!(
            "compile {} ({}, zig {})",
            unit.who, self.target, self.zig.version
        ));
        let spinner = self.progress.spinner("compile");
        spinner.set_message(format!("{} for {}", unit.s.name, self.platform));
        let started = std::time::Instant::now();
        compile(self, unit, &files)?;
        drop(spinner);
        let seconds = started.elapsed().as_secs_f64();
        (self.log)(format!("compiled {} in {seconds:.0} s", unit.who));
        Ok(seconds)
    }
}

/// The entry's programs under `out`, each checked to be static for the
/// platform: the image has no libc for a dynamic one to load.
fn static_bins(
    s: &SourceSpec,
    out: &Path,
    platform: &Platform,
    who: &str,
) -> Result<Vec<(String, PathBuf)>> {
    let mut bins = Vec::new();
    for b in &s.bins {
        let p = out.join("usr/bin").join(b);
        crate::elf::check_static(&p, platform).map_err(|e| verification(format!("{who}: {e}")))?;
        bins.push((b.clone(), p));
    }
    Ok(bins)
}

/// The link paths the recipe wrote to the entry's `links_file`, each
/// absolute and free of `..`, since they become paths in the image.
fn links_of(s: &SourceSpec, out: &Path, who: &str) -> Result<Vec<String>> {
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
    Ok(links)
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
    (target, cpu): (&str, Option<&str>),
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
    let mut v = serde_json::json!({
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
    if let Some(cpu) = cpu {
        v["cpu"] = cpu.into();
    }
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
fn compile(job: &Job, unit: &Unit, files: &[(LockedSourceFile, Option<PathBuf>)]) -> Result<()> {
    let work = WorkDir::create(job.cache, &unit.s.name, job.target)?;
    let dsc_name = stage_files(&work.dl, unit.lock, files, &unit.who)?;
    let log_file = std::fs::File::create(&work.log)
        .map_err(|e| bad_input(format!("{}: {e}", work.log.display())))?;
    unpack(&work, &dsc_name, &unit.who)?;
    apply_patches(job.spec, unit.s, &work.src, &unit.who)?;
    // Debian's own trees often ship stale config.sub/config.guess that do
    // not know musl; use the host's (autotools-dev), as dh_update_autotools_config does.
    replace_autotools_aux(&work.src)?;
    for (_, dep_out) in &unit.deps {
        copy_tree(dep_out, &work.deps)?;
    }
    write_wrappers(&work.tools, &job.zig, (job.target, job.cpu), &work.root)?;
    run_steps(job, unit, &work, &log_file)?;
    check_installed(unit, &work)?;
    publish(&work, &unit.done)
}

/// The folders of one entry's compile, under the cache's `static-work`
/// rather than a temporary folder so a failed build's log stays to read.
struct WorkDir {
    root: PathBuf,
    /// The verified source files, as dpkg-source reads them.
    dl: PathBuf,
    /// The unpacked, patched source tree the steps run in.
    src: PathBuf,
    /// The outputs of the entries it needs (`$DEPS`).
    deps: PathBuf,
    /// The compiler wrappers, first on `PATH`.
    tools: PathBuf,
    /// Every step's output.
    log: PathBuf,
}

impl WorkDir {
    /// Starts from an empty folder, so nothing of an earlier failed
    /// attempt reaches this build.
    fn create(cache: &Cache, name: &str, target: &str) -> Result<WorkDir> {
        let work_parent = cache.root().join("static-work");
        std::fs::create_dir_all(&work_parent)
            .map_err(|e| bad_input(format!("cache {}: {e}", work_parent.display())))?;
        let root = work_parent.join(format!("{name}-{target}"));
        remove_dir_if_exists(&root)?;
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
        Ok(WorkDir {
            dl: root.join("dl"),
            src: root.join("src"),
            deps: root.join("deps"),
            tools: root.join("tools"),
            log: root.join("build.log"),
            root,
        })
    }
}

/// Puts the verified files under their own names in `dl`, as dpkg-source
/// wants them (a `.dsc` the mirror lacked written from the lock), and
/// returns the `.dsc`'s name.
fn stage_files(
    dl: &Path,
    lock: &SourceLock,
    files: &[(LockedSourceFile, Option<PathBuf>)],
    who: &str,
) -> Result<String> {
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
            check_dsc_files(&dst, f, lock, who)?;
        }
    }
    Ok(dsc_name)
}

/// dpkg-source unpacks the files the `.dsc` lists, so its list must be
/// the signed index's (both are signed statements about the same upload):
/// otherwise a file no digest vouches for could reach the build.
fn check_dsc_files(dst: &Path, f: &LockedSourceFile, lock: &SourceLock, who: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(dst).map_err(|e| bad_input(format!("{who}: {}: {e}", f.name)))?;
    let paras = debian::control::parse_paragraphs(dsc_body(&text))
        .map_err(|e| verification(format!("{who}: {}: {e}", f.name)))?;
    let listed = paras
        .first()
        .and_then(|p| p.get("Checksums-Sha256"))
        .ok_or_else(|| verification(format!("{who}: {} has no Checksums-Sha256", f.name)))?;
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
    Ok(())
}

/// `dpkg-source -x`, so Debian's patches are applied exactly as Debian
/// builds the package.
fn unpack(work: &WorkDir, dsc_name: &str, who: &str) -> Result<()> {
    let out = Command::new("dpkg-source")
        .current_dir(&work.dl)
        .args(["--no-copy", "-x", dsc_name])
        .arg(&work.src)
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
    Ok(())
}

/// The spec's own patches, over Debian's, in the order listed; one that
/// does not apply stops the build rather than compiling other code.
fn apply_patches(spec: &Spec, s: &SourceSpec, src: &Path, who: &str) -> Result<()> {
    for p in &s.patches {
        let path = std::fs::canonicalize(spec.resolve_inside(&format!("{who}: patch"), p)?)
            .map_err(|e| bad_input(format!("{who}: patch {}: {e}", p.display())))?;
        let out = Command::new("patch")
            .current_dir(src)
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
    Ok(())
}

/// Runs the recipe's steps in order, each in the cleared environment, all
/// writing to the one log; the first that fails stops the build.
fn run_steps(job: &Job, unit: &Unit, work: &WorkDir, log_file: &std::fs::File) -> Result<()> {
    let env = RecipeEnv::new(job, work)?;
    for (i, step) in unit.s.steps.iter().enumerate() {
        let status = env
            .command(step, log_file)?
            .status()
            .map_err(|e| bad_input(format!("{}: cannot run /bin/sh: {e}", unit.who)))?;
        if !status.success() {
            return Err(step_failure(unit, work, i, step, status));
        }
    }
    Ok(())
}

/// What a recipe step sees: nothing of the host's environment, so the
/// output depends only on what the cache key holds.
struct RecipeEnv<'a> {
    work: &'a WorkDir,
    target: &'a str,
    debian_arch: &'static str,
    epoch: u64,
    jobs: usize,
    /// The wrappers first, then the host's tools.
    path: String,
    /// zig's own cache (its musl libc per target) is content-addressed and
    /// may be shared between caches (`NETSHOOT_ZIG_CACHE`).
    zig_cache: PathBuf,
}

impl<'a> RecipeEnv<'a> {
    /// Reads the host once for every step (parallelism, zig's cache).
    fn new(job: &'a Job, work: &'a WorkDir) -> Result<RecipeEnv<'a>> {
        let debian_arch = crate::apt::debian_arch(job.platform)?;
        let jobs = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", work.tools.display());
        let zig_cache = std::env::var_os("NETSHOOT_ZIG_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| job.cache.root().join("zig-cache"));
        Ok(RecipeEnv {
            work,
            target: job.target,
            debian_arch,
            epoch: job.epoch,
            jobs,
            path,
            zig_cache,
        })
    }

    /// `bash -euo pipefail -c STEP` in the source tree, with the variables
    /// the recipes are written against and the compiler set to the wrappers.
    fn command(&self, step: &str, log_file: &std::fs::File) -> Result<Command> {
        let (root, tools, deps_dir) = (&self.work.root, &self.work.tools, &self.work.deps);
        let mut cmd = Command::new("bash");
        cmd.current_dir(&self.work.src)
            .args(["-euo", "pipefail", "-c", step])
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", root.join("home"))
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .env("SOURCE_DATE_EPOCH", self.epoch.to_string())
            .env("HOST", self.target)
            .env("ARCH", self.debian_arch)
            .env("ROOT", root)
            .env("BUILD", "x86_64-linux-gnu")
            .env("JOBS", self.jobs.to_string())
            .env("SRC", &self.work.src)
            .env("DEPS", deps_dir)
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
            .env("PKG_CONFIG_SYSROOT_DIR", deps_dir)
            .env("ZIG_GLOBAL_CACHE_DIR", &self.zig_cache)
            .env("ZIG_LOCAL_CACHE_DIR", root.join("zig-local"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| bad_input(e.to_string()))?)
            .stderr(log_file.try_clone().map_err(|e| bad_input(e.to_string()))?);
        Ok(cmd)
    }
}

/// One line for a failed step: the step, the log's last error line, the
/// log's path; a build log is too long for the terminal.
fn step_failure(
    unit: &Unit,
    work: &WorkDir,
    i: usize,
    step: &str,
    status: std::process::ExitStatus,
) -> anyhow::Error {
    let text = std::fs::read_to_string(&work.log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let why = lines
        .iter()
        .rev()
        .find(|l| l.contains("error:") || l.contains("Error ") || l.contains("*** "))
        .or(lines.last())
        .map(|l| l.trim())
        .unwrap_or("no output");
    bad_input(format!(
        "{}: step {} of {} (`{step}`) failed ({status}): {why} (full log: {})",
        unit.who,
        i + 1,
        unit.s.steps.len(),
        work.log.display()
    ))
}

/// Every program the entry names must be under `$OUT`: a recipe that
/// installed elsewhere fails here, naming the log, not later in the image.
fn check_installed(unit: &Unit, work: &WorkDir) -> Result<()> {
    for b in &unit.s.bins {
        let p = work.root.join("out/usr/bin").join(b);
        if !p.is_file() {
            return Err(bad_input(format!(
                "{}: the recipe did not install usr/bin/{b} under $OUT (log: {})",
                unit.who,
                work.log.display()
            )));
        }
    }
    Ok(())
}

/// Publishes atomically: the output folder, then the `.complete` marker,
/// so a reader never takes a half-written result for a cached one.
fn publish(work: &WorkDir, done: &Path) -> Result<()> {
    remove_dir_if_exists(done)?;
    std::fs::create_dir_all(done).map_err(|e| bad_input(format!("{}: {e}", done.display())))?;
    std::fs::rename(work.root.join("out"), done.join("out"))
        .map_err(|e| bad_input(format!("{}: {e}", done.display())))?;
    let _ = std::fs::copy(&work.log, done.join("build.log"));
    std::fs::write(done.join(".complete"), b"")
        .map_err(|e| bad_input(format!("{}: {e}", done.display())))?;
    remove_dir_if_exists(&work.root)
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
fn write_wrappers(
    tools: &Path,
    zig: &Zig,
    (target, cpu): (&str, Option<&str>),
    root: &Path,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let z = zig.path.display();
    let mcpu = cpu.map(|c| format!(" -mcpu={c}")).unwrap_or_default();
    let scripts = [
        (
            "cc",
            format!(
                "exec {z} cc -target {target}{mcpu} -ffile-prefix-map={}=/build \"$@\"\n",
                root.display()
            ),
        ),
        (
            "c++",
            format!(
                "exec {z} c++ -target {target}{mcpu} -ffile-prefix-map={}=/build \"$@\"\n",
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
