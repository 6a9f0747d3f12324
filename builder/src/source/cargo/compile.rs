//! The `cargo` source: Rust tools compiled from source, statically, for
//! every platform of the image.
//!
//! Locking pins a crate to an exact version, the sha256 of its `.crate` and
//! the full `Cargo.lock` it is built with (the crate's own when it ships one,
//! else one generated once and recorded). Building compiles that crate with
//! `cargo build --locked` for the platform's musl target, with fixed flags
//! and remapped paths so that the bytes do not depend on the machine, the
//! folder or the cache; checks that every binary is a static ELF for the
//! platform; and keeps the binaries in the cache under a key of everything
//! that can change them, so a warm build runs no cargo at all.
//!
//! The registry is never named here: cargo is asked for the crate by name and
//! version, so cargo's own configuration (a mirror, a source replacement, a
//! vendored directory) decides where the bytes come from. Every `.crate` is
//! verified against a checksum: cargo checks each download against the
//! `checksum` of the `Cargo.lock` it builds with (so the lock records one for
//! every registry package, or locking fails), and the crate itself is found
//! in cargo's download cache by name and checked against the pinned sha256
//! here before it is unpacked.

use crate::elf::check_static;
use crate::error::{bad_input, network, verification, Result};
use image_layout::Platform;

use sha2::{Digest as _, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Bumped whenever the flags or the environment of a build change, so that
/// binaries cached by an older recipe are never reused.
pub use crate::lockfile::{CrateLock, LockedDep};
pub use crate::spec::CrateSpec;

const RECIPE: &str = "netshoot-build cargo recipe 3 (zig cc, ar and linker)";

/// Every musl target a platform of a spec can map to.
const MUSL_TRIPLES: [&str; 8] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "armv7-unknown-linux-musleabihf",
    "arm-unknown-linux-musleabihf",
    "i686-unknown-linux-musl",
    "riscv64gc-unknown-linux-musl",
    "powerpc64le-unknown-linux-musl",
    "s390x-unknown-linux-musl",
];

/// The (name, version) of every package reachable from the root in the
/// `resolve` graph of `cargo metadata` output.
fn reachable_packages(meta: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut by_id: HashMap<&str, (String, String)> = HashMap::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        if let (Some(id), Some(n), Some(v)) =
            (p["id"].as_str(), p["name"].as_str(), p["version"].as_str())
        {
            by_id.insert(id, (n.to_string(), v.to_string()));
        }
    }
    let mut deps: HashMap<&str, Vec<&str>> = HashMap::new();
    for n in meta["resolve"]["nodes"].as_array().into_iter().flatten() {
        if let Some(id) = n["id"].as_str() {
            let d = n["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["pkg"].as_str())
                .collect();
            deps.insert(id, d);
        }
    }
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut todo: Vec<&str> = meta["resolve"]["root"].as_str().into_iter().collect();
    while let Some(id) = todo.pop() {
        if seen.insert(id) {
            todo.extend(deps.get(id).into_iter().flatten().copied());
        }
    }
    seen.into_iter()
        .filter_map(|id| by_id.get(id).cloned())
        .collect()
}

/// A binary compiled for one platform, ready to be laid into the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltBinary {
    /// The binary's name.
    pub name: String,
    /// The file, in the cache (never modified once there).
    pub path: PathBuf,
    /// Its absolute path in the image (`dest` + `/` + `name`).
    pub dest: String,
}

/// The Rust target triple for an image platform: always a musl target, so
/// that binaries are static and run on any image.
pub fn rust_target(platform: &Platform) -> Result<&'static str> {
    target_info(platform).map(|t| t.triple)
}

/// How to compile for one platform: the Rust musl target, and zig as its
/// C compiler, archiver and linker (one cross toolchain for every arch).
struct TargetInfo {
    triple: &'static str,
    target: crate::target::Target,
}

/// The Rust musl target of a platform, when there is one.
pub fn musl_triple(platform: &Platform) -> Option<&'static str> {
    target_info(platform).ok().map(|t| t.triple)
}

fn target_info(platform: &Platform) -> Result<TargetInfo> {
    let target = crate::target::Target::of(platform).map_err(|_| {
        bad_input(format!(
            "platform {platform}: no Rust musl target is known for it; \
             skip it for this crate with skip_platforms"
        ))
    })?;
    Ok(TargetInfo {
        triple: target.rust_triple,
        target,
    })
}

/// The toolchain every cargo call uses: the real `cargo` and `rustc` of the
/// default toolchain's sysroot, so that a `rust-toolchain.toml` inside a
/// crate cannot switch compilers behind the cache key's back.
struct Toolchain {
    cargo: PathBuf,
    rustc: PathBuf,
    sysroot: PathBuf,
    /// `rustc -vV`: part of the cache key.
    version: String,
    host: String,
}

impl Toolchain {
    fn find() -> Result<Toolchain> {
        let rustc0 = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = capture(Command::new(&rustc0).args(["--print", "sysroot"]))
            .map_err(|e| bad_input(format!("Rust toolchain: {e}")))?;
        let sysroot = PathBuf::from(sysroot.trim());
        let pick = |name: &str| {
            let p = sysroot.join("bin").join(name);
            if p.is_file() {
                p
            } else {
                PathBuf::from(name)
            }
        };
        let rustc = pick("rustc");
        let cargo = pick("cargo");
        let version = capture(Command::new(&rustc).arg("-vV"))
            .map_err(|e| bad_input(format!("Rust toolchain: {e}")))?;
        let host = version
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .unwrap_or("")
            .trim()
            .to_string();
        Ok(Toolchain {
            cargo,
            rustc,
            sysroot,
            version,
            host,
        })
    }

    /// A cargo command with a clean build environment: nothing from the
    /// caller's RUSTFLAGS or target settings leaks into the binaries.
    fn cargo(&self) -> Command {
        let mut c = Command::new(&self.cargo);
        c.env("RUSTC", &self.rustc)
            .env("CARGO_TERM_COLOR", "never")
            .env("CARGO_TERM_PROGRESS_WHEN", "never")
            .env("CARGO_INCREMENTAL", "0")
            .stdin(Stdio::null());
        for v in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            c.env_remove(v);
        }
        c
    }

    /// `rustc -vV`'s commit hash (the prebuilt standard library's sources
    /// are at `/rustc/<hash>`).
    fn commit_hash(&self) -> &str {
        self.version
            .lines()
            .find_map(|l| l.strip_prefix("commit-hash: "))
            .unwrap_or("unknown")
            .trim()
    }

    /// Whether the toolchain has the standard library's sources.
    fn has_rust_src(&self) -> bool {
        self.rust_src().join("library/std/Cargo.toml").is_file()
    }

    /// Where `rust-src` puts the standard library's sources.
    fn rust_src(&self) -> PathBuf {
        self.sysroot.join("lib/rustlib/src/rust")
    }

    /// Whether the standard library for `triple` is installed.
    fn has_target(&self, triple: &str) -> bool {
        self.sysroot
            .join("lib/rustlib")
            .join(triple)
            .join("lib")
            .is_dir()
    }
}

/// Where the standard library of a target comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Std {
    /// The toolchain's own (rustup's `rust-std` component).
    Installed,
    /// Compiled with the crate from the toolchain's `rust-src`
    /// (`-Zbuild-std`), where no `rust-std` can be had for the target
    /// (a rustup mirror without it, or a tier-3 target).
    FromSource,
}

impl Std {
    fn label(self) -> &'static str {
        match self {
            Std::Installed => "installed",
            Std::FromSource => "rust-src",
        }
    }
}

/// Makes sure there is a standard library for `platform`'s target:
/// installed, added with rustup, or else compiled from `rust-src`.
/// Returns the target triple.
pub fn ensure_rust_target(platform: &Platform) -> Result<&'static str> {
    let triple = rust_target(platform)?;
    let tc = Toolchain::find()?;
    ensure_target(&tc, triple, &|_| {})?;
    Ok(triple)
}

fn ensure_target(tc: &Toolchain, triple: &'static str, log: &dyn Fn(String)) -> Result<Std> {
    if tc.has_target(triple) {
        return Ok(Std::Installed);
    }
    let failed = match rustup_add(tc, &["target", "add", triple]) {
        Ok(()) if tc.has_target(triple) => return Ok(Std::Installed),
        Ok(()) => format!("`rustup target add {triple}` left no standard library"),
        Err(e) => e,
    };
    if !tc.has_rust_src() {
        let _ = rustup_add(tc, &["component", "add", "rust-src"]);
    }
    if tc.has_rust_src() {
        log(format!(
            "no standard library for {triple} ({failed}): compiling it from rust-src"
        ));
        return Ok(Std::FromSource);
    }
    Err(bad_input(format!(
        "Rust target {triple}: no standard library for {} ({failed}) and no rust-src to \
         compile one from: run `rustup target add {triple}` or `rustup component add rust-src`, \
         or skip the platform for this crate with skip_platforms",
        tc.sysroot.display()
    )))
}

/// Runs `rustup ARGS` for the toolchain in use; the error says why not.
fn rustup_add(tc: &Toolchain, args: &[&str]) -> std::result::Result<(), String> {
    if find_in_path("rustup").is_none() {
        return Err("rustup is not on PATH".into());
    }
    // The toolchain's folder name is rustup's name for it; naming it
    // keeps a directory override from adding the target elsewhere.
    let mut cmd = Command::new("rustup");
    cmd.args(args).env("RUST_BACKTRACE", "0");
    let managed = tc
        .sysroot
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "toolchains");
    if let (true, Some(name)) = (managed, tc.sysroot.file_name()) {
        cmd.arg("--toolchain").arg(name);
    }
    capture(&mut cmd).map(|_| ()).map_err(|e| {
        let text = e.to_string();
        let line = text.lines().find(|l| l.contains("error")).unwrap_or(&text);
        format!("`rustup {}` failed: {}", args.join(" "), line.trim())
    })
}

/// Resolves `spec` to a [`CrateLock`]: the exact version, the `.crate`
/// checksum from the registry index (or the source tree's digest for a
/// `path` crate) and the `Cargo.lock` to build with. `base_dir` is the
/// spec's folder; `work` a scratch folder (its contents may be replaced).
pub fn lock_crate(spec: &CrateSpec, base_dir: &Path, work: &Path) -> Result<CrateLock> {
    spec.check()?;
    let tc = Toolchain::find()?;
    std::fs::create_dir_all(work).map_err(|e| bad_input(format!("{}: {e}", work.display())))?;
    let scratch = tempfile::Builder::new()
        .prefix(&format!("lock-{}-", spec.name))
        .tempdir_in(work)
        .map_err(|e| bad_input(format!("{}: {e}", work.display())))?;
    let (version, checksum, src) = match &spec.path {
        Some(rel) => {
            let dir = base_dir.join(rel);
            let (name, version) = package_identity(&tc, &dir)?;
            if name != spec.name {
                return Err(bad_input(format!(
                    "cargo crate {:?}: {} holds package {name:?}, not {:?}",
                    spec.name,
                    dir.display(),
                    spec.name
                )));
            }
            if let Some(want) = spec.exact_version() {
                if want != version {
                    return Err(bad_input(format!(
                        "cargo crate {:?}: {} is version {version}, the spec pins {want}",
                        spec.name,
                        dir.display()
                    )));
                }
            }
            let checksum = tree_digest(&dir)?;
            let copy = scratch.path().join("src");
            copy_tree(&dir, &copy)?;
            (version, checksum, copy)
        }
        None => {
            let version = spec.exact_version().unwrap_or_default().to_string();
            let checksum = resolve_checksum(&tc, &spec.name, &version, scratch.path())?;
            let file = crate_file(&tc, &spec.name, &version, &checksum, scratch.path())?;
            let src = unpack_crate(&file, &spec.name, &version, &scratch.path().join("src"))?;
            (version, checksum, src)
        }
    };
    let who = format!("crate {} {version}", spec.name);
    make_own_workspace(&src)?;
    check_bins(&tc, spec, &src, &who)?;
    let lock_path = src.join("Cargo.lock");
    if !lock_path.is_file() {
        // The crate ships no lock: resolve one now and record it, so that
        // every later build uses exactly these dependency versions.
        let out = tc
            .cargo()
            .arg("generate-lockfile")
            .arg("--manifest-path")
            .arg(src.join("Cargo.toml"))
            .output()
            .map_err(|e| bad_input(format!("cannot run cargo: {e}")))?;
        if !out.status.success() {
            return Err(cargo_failure(&who, &String::from_utf8_lossy(&out.stderr)));
        }
    }
    let lockfile = std::fs::read_to_string(&lock_path)
        .map_err(|e| bad_input(format!("{who}: Cargo.lock: {e}")))?;
    let mut packages =
        parse_lockfile(&lockfile).map_err(|e| bad_input(format!("{who}: Cargo.lock: {e}")))?;
    record_licenses(&tc, &src, &who, &mut packages)?;
    record_targets(&tc, spec, &src, &who, &mut packages)?;
    Ok(CrateLock {
        name: spec.name.clone(),
        version,
        checksum,
        lock_sha256: sha256_hex(lockfile.as_bytes()),
        lockfile,
        packages,
    })
}

/// Licenses as each package's manifest declares them, recorded at lock
/// time so the SBOM depends on the lock alone.
fn record_licenses(
    tc: &Toolchain,
    src: &Path,
    who: &str,
    packages: &mut [LockedDep],
) -> Result<()> {
    let meta = cargo_metadata(tc, &src.join("Cargo.toml"), who, &["--locked"])?;
    let mut licenses: HashMap<(String, String), String> = HashMap::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        if let (Some(n), Some(v), Some(l)) = (
            p["name"].as_str(),
            p["version"].as_str(),
            p["license"].as_str(),
        ) {
            licenses.insert((n.to_string(), v.to_string()), l.to_string());
        }
    }
    for p in packages {
        p.license = licenses.remove(&(p.name.clone(), p.version.clone()));
    }
    Ok(())
}

/// Which packages each musl target really builds (with the spec's
/// features): a Cargo.lock also lists Windows and macOS dependencies,
/// which an SBOM of a Linux image must not claim.
fn record_targets(
    tc: &Toolchain,
    spec: &CrateSpec,
    src: &Path,
    who: &str,
    packages: &mut [LockedDep],
) -> Result<()> {
    for triple in MUSL_TRIPLES {
        let features = spec.features.join(",");
        let mut args = vec!["--locked", "--filter-platform", triple];
        if spec.no_default_features {
            args.push("--no-default-features");
        }
        if !features.is_empty() {
            args.extend(["--features", &features]);
        }
        let meta = cargo_metadata(tc, &src.join("Cargo.toml"), who, &args)?;
        let used = reachable_packages(&meta);
        for p in packages.iter_mut() {
            if used.contains(&(p.name.clone(), p.version.clone())) {
                p.targets.push(triple.to_string());
            }
        }
    }
    Ok(())
}

/// Compiles the crate pinned by `lock` for `platform` and returns its
/// binaries, each checked by [`check_static`]. `base_dir` is the spec's
/// folder (for `path` crates). Binaries are cached in
/// `cache_dir/crates/<key>/`; on a hit no cargo runs. Cargo's own target
/// folder is kept in `cache_dir/cargo-target/<name>` so that a changed
/// feature or toolchain recompiles only what changed. `log` receives one
/// line per event (`cargo build ...`, `cached ...`, `skip ...`).
///
/// A platform in the spec's `skip_platforms` gives no binaries.
pub fn build_crate(
    spec: &CrateSpec,
    lock: &CrateLock,
    base_dir: &Path,
    platform: &Platform,
    cache_dir: &Path,
    source_date_epoch: u64,
    log: &dyn Fn(String),
) -> Result<Vec<BuiltBinary>> {
    let quiet = crate::progress::Progress::quiet();
    build_crate_with(
        spec,
        lock,
        base_dir,
        platform,
        cache_dir,
        source_date_epoch,
        log,
        &quiet,
    )
}

/// [`build_crate`] with a spinner on `progress` while cargo runs.
#[allow(clippy::too_many_arguments)]
pub fn build_crate_with(
    spec: &CrateSpec,
    lock: &CrateLock,
    base_dir: &Path,
    platform: &Platform,
    cache_dir: &Path,
    source_date_epoch: u64,
    log: &dyn Fn(String),
    progress: &crate::progress::Progress,
) -> Result<Vec<BuiltBinary>> {
    spec.check()?;
    if spec.skips(platform) {
        log(format!(
            "skip crate {} for {platform} (skip_platforms)",
            spec.name
        ));
        return Ok(Vec::new());
    }
    let who = format!("crate {} {}", lock.name, lock.version);
    check_lock_matches(spec, lock, base_dir)?;
    let target = target_info(platform)?;
    let triple = target.triple;
    let tc = Toolchain::find()?;
    let cache_dir = std::path::absolute(cache_dir)
        .map_err(|e| bad_input(format!("cache {}: {e}", cache_dir.display())))?;
    let tools = c_tools(&target, &cache_dir)?;
    let std = ensure_target(&tc, triple, log)?;
    let key = cache_key(
        spec,
        lock,
        triple,
        &format!("{}std={}\n", tc.version, std.label()),
        &tools.identity,
        source_date_epoch,
    );
    let crates_dir = cache_dir.join("crates");
    let key_dir = crates_dir.join(format!(
        "{}-{}-{triple}-{}",
        lock.name,
        lock.version,
        &key[..16]
    ));
    if let Some(bins) = cached_bins(&key_dir, log) {
        for b in &bins {
            check_static(&b.path, platform)?;
        }
        log(format!("cached {who} for {triple}"));
        return Ok(with_dest(bins, &spec.dest));
    }

    let src_parent = cache_dir.join("cargo-src");
    std::fs::create_dir_all(&src_parent)
        .map_err(|e| bad_input(format!("cache {}: {e}", src_parent.display())))?;
    // One build of a crate for a target at a time: the source folder is
    // shared (a stable path lets cargo reuse what it compiled), and cargo
    // itself serialises builds in one target folder anyway.
    let _guard = FileLock::acquire(&src_parent.join(format!(".{}-{triple}.lock", lock.name)))?;
    // Another process may have finished this very build while we waited.
    if let Some(bins) = cached_bins(&key_dir, log) {
        log(format!("cached {who} for {triple}"));
        return Ok(with_dest(bins, &spec.dest));
    }
    let build_root = src_parent.join(format!("{}-{triple}", lock.name));
    let src = unpacked_source(spec, lock, base_dir, &tc, &build_root, &who)?;

    let target_dir = cache_dir.join("cargo-target").join(&lock.name);
    log(format!("cargo build {who} for {triple}"));
    let started = std::time::Instant::now();
    let job = CargoJob {
        spec,
        lock,
        tc: &tc,
        target: &target,
        tools: &tools,
        std,
        src: &src,
        build_root: &build_root,
        target_dir: &target_dir,
        source_date_epoch,
        who: &who,
    };
    let produced = job.run(platform, progress)?;

    publish(&crates_dir, &key_dir, &produced, log)?;
    log(format!(
        "built {who} for {triple} in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    cached_bins(&key_dir, log)
        .map(|b| with_dest(b, &spec.dest))
        .ok_or_else(|| {
            bad_input(format!(
                "cache {}: vanished after writing",
                key_dir.display()
            ))
        })
}

/// zig's wrappers for `target`, kept in the cache by zig's version and
/// target (the same files for every build).
fn c_tools(target: &TargetInfo, cache_dir: &Path) -> Result<crate::zig::CargoTools> {
    let zig = crate::zig::Zig::find()?;
    let dir = cache_dir
        .join("zig-tools")
        .join(format!("{}-{}", zig.version, target.triple));
    zig.cargo_tools(&dir, &target.target)
}

/// The crate's source in a fresh `build_root`: the spec's folder for a
/// `path` crate, else the verified `.crate` unpacked, made its own
/// workspace and given the recorded `Cargo.lock` (which must be the one
/// a crate ships, if it ships one).
fn unpacked_source(
    spec: &CrateSpec,
    lock: &CrateLock,
    base_dir: &Path,
    tc: &Toolchain,
    build_root: &Path,
    who: &str,
) -> Result<PathBuf> {
    remove_dir_if_exists(build_root)?;
    std::fs::create_dir_all(build_root)
        .map_err(|e| bad_input(format!("cache {}: {e}", build_root.display())))?;
    let src = match &spec.path {
        Some(rel) => {
            let dst = build_root.join(format!("{}-{}", lock.name, lock.version));
            copy_tree(&base_dir.join(rel), &dst)?;
            dst
        }
        None => {
            let file = crate_file(tc, &lock.name, &lock.version, &lock.checksum, build_root)?;
            unpack_crate(&file, &lock.name, &lock.version, build_root)?
        }
    };
    if let Ok(shipped) = std::fs::read_to_string(src.join("Cargo.lock")) {
        if shipped != lock.lockfile {
            return Err(verification(format!(
                "{who}: the recorded Cargo.lock differs from the one the crate ships: \
                 run `netshoot-build lock`"
            )));
        }
    }
    make_own_workspace(&src)?;
    std::fs::write(src.join("Cargo.lock"), &lock.lockfile)
        .map_err(|e| bad_input(format!("{}: {e}", src.display())))?;
    Ok(src)
}

/// One `cargo build` of a crate for a target.
struct CargoJob<'a> {
    spec: &'a CrateSpec,
    lock: &'a CrateLock,
    tc: &'a Toolchain,
    target: &'a TargetInfo,
    tools: &'a crate::zig::CargoTools,
    std: Std,
    src: &'a Path,
    build_root: &'a Path,
    target_dir: &'a Path,
    source_date_epoch: u64,
    who: &'a str,
}

impl CargoJob<'_> {
    /// Runs cargo (a spinner on `progress` meanwhile) and returns the
    /// binaries it produced, each checked to be static for `platform`.
    fn run(
        &self,
        platform: &Platform,
        progress: &crate::progress::Progress,
    ) -> Result<Vec<(String, PathBuf)>> {
        let (who, triple) = (self.who, self.target.triple);
        let mut cmd = self.command();
        let spinner = progress.spinner("cargo");
        spinner.set_message(format!("build {who} for {triple}"));
        let out = cmd
            .output()
            .map_err(|e| bad_input(format!("cannot run {}: {e}", self.tc.cargo.display())))?;
        drop(spinner);
        if !out.status.success() {
            return Err(cargo_failure(
                &format!("{who} for {triple}"),
                &String::from_utf8_lossy(&out.stderr),
            ));
        }
        let produced = bin_artifacts(
            &String::from_utf8_lossy(&out.stdout),
            &self.src.join("Cargo.toml"),
        );
        if produced.is_empty() {
            return Err(bad_input(format!(
                "{who} for {triple}: the crate has no binaries"
            )));
        }
        for (_, path) in &produced {
            check_static(path, platform).map_err(|e| {
                verification(format!(
                    "{who} for {triple}: {}",
                    crate::error::one_line(&e)
                ))
            })?;
        }
        Ok(produced)
    }

    /// The cargo command line, run from the folder above the crate as
    /// `cargo install` does, so a `.cargo/config.toml` shipped inside a
    /// crate does not steer the build.
    fn command(&self) -> Command {
        let spec = self.spec;
        let mut cmd = self.tc.cargo();
        cmd.current_dir(self.build_root)
            .args([
                "build",
                "--release",
                "--locked",
                "--message-format=json-render-diagnostics",
            ])
            .arg("--target")
            .arg(self.target.triple)
            .arg("--target-dir")
            .arg(self.target_dir)
            .arg("--manifest-path")
            .arg(self.src.join("Cargo.toml"));
        if self.std == Std::FromSource {
            // Stable cargo's build-std, as its own bootstrap uses it.
            cmd.arg("-Zbuild-std=std,panic_abort")
                .env("RUSTC_BOOTSTRAP", "1");
        }
        if spec.no_default_features {
            cmd.arg("--no-default-features");
        }
        if !spec.features.is_empty() {
            cmd.arg("--features").arg(spec.features.join(","));
        }
        if spec.bins.is_empty() {
            cmd.arg("--bins");
        }
        for b in &spec.bins {
            cmd.arg("--bin").arg(b);
        }
        reproducible_env(&mut cmd, self);
        cmd
    }
}

/// Publishes all binaries at once, each with its digest: a temporary
/// folder renamed to `key_dir`, so a key folder is either complete or
/// absent. Losing a race to an identical build is fine.
fn publish(
    crates_dir: &Path,
    key_dir: &Path,
    produced: &[(String, PathBuf)],
    log: &dyn Fn(String),
) -> Result<()> {
    std::fs::create_dir_all(crates_dir)
        .map_err(|e| bad_input(format!("cache {}: {e}", crates_dir.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(crates_dir)
        .map_err(|e| bad_input(format!("cache {}: {e}", crates_dir.display())))?;
    let mut names = String::new();
    for (name, path) in produced {
        let dst = tmp.path().join(name);
        std::fs::copy(path, &dst)
            .map_err(|e| bad_input(format!("cache {}: {e}", dst.display())))?;
        set_mode(&dst, 0o755)?;
        let digest = crate::store::sha256_file(&dst)
            .map_err(|e| bad_input(format!("cache {}: {e}", dst.display())))?;
        names.push_str(&format!("{name} {digest}\n"));
    }
    std::fs::write(tmp.path().join(BINS_FILE), names)
        .map_err(|e| bad_input(format!("cache {}: {e}", tmp.path().display())))?;
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, key_dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        if cached_bins(key_dir, log).is_none() {
            return Err(bad_input(format!("cache {}: {e}", key_dir.display())));
        }
    }
    Ok(())
}

/// The file in a key folder listing its binaries; written last.
const BINS_FILE: &str = "bins.list";

/// The binaries cached in `key_dir`, each still hashing to the digest
/// recorded beside it when it was built; a damaged entry is removed (and
/// said) so the crate is compiled again.
fn cached_bins(key_dir: &Path, log: &dyn Fn(String)) -> Option<Vec<BuiltBinary>> {
    let list = std::fs::read_to_string(key_dir.join(BINS_FILE)).ok()?;
    let stamps = crate::store::Stamps::open(key_dir.parent()?.parent()?);
    let mut bins = Vec::new();
    let mut intact = true;
    for line in list.lines().filter(|l| !l.is_empty()) {
        let (name, digest) = line.split_once(' ').unwrap_or((line, ""));
        let path = key_dir.join(name);
        intact &= stamps.verify(&path, digest).unwrap_or(false);
        bins.push(BuiltBinary {
            name: name.to_string(),
            path,
            dest: String::new(),
        });
    }
    if !intact {
        log(format!(
            "cache: {} does not match its recorded digests: removed, compiling again",
            key_dir.display()
        ));
        let _ = std::fs::remove_dir_all(key_dir);
        return None;
    }
    (!bins.is_empty()).then_some(bins)
}

fn with_dest(bins: Vec<BuiltBinary>, dest: &str) -> Vec<BuiltBinary> {
    let folder = dest.trim_end_matches('/');
    bins.into_iter()
        .map(|b| BuiltBinary {
            dest: format!("{folder}/{}", b.name),
            ..b
        })
        .collect()
}

/// The lock must belong to this spec entry, and a `path` crate's source
/// must still be what was locked: otherwise the cache key would describe
/// different bytes than the build.
fn check_lock_matches(spec: &CrateSpec, lock: &CrateLock, base_dir: &Path) -> Result<()> {
    let stale = |why: String| {
        bad_input(format!(
            "cargo crate {:?}: the lock is stale ({why}): run `netshoot-build lock`",
            spec.name
        ))
    };
    if lock.name != spec.name {
        return Err(stale(format!("it pins crate {:?}", lock.name)));
    }
    if let Some(v) = spec.exact_version() {
        if v != lock.version {
            return Err(stale(format!("it pins {}, the spec {v}", lock.version)));
        }
    }
    if sha256_hex(lock.lockfile.as_bytes()) != lock.lock_sha256 {
        return Err(verification(format!(
            "cargo crate {:?}: the recorded Cargo.lock does not match its lock_sha256",
            spec.name
        )));
    }
    if let Some(rel) = &spec.path {
        let now = tree_digest(&base_dir.join(rel))?;
        if now != lock.checksum {
            return Err(stale(format!(
                "{} changed since it was locked",
                rel.display()
            )));
        }
    }
    Ok(())
}

fn cache_key(
    spec: &CrateSpec,
    lock: &CrateLock,
    triple: &str,
    rustc: &str,
    cc: &str,
    source_date_epoch: u64,
) -> String {
    let features: BTreeSet<&str> = spec.features.iter().map(String::as_str).collect();
    let bins: BTreeSet<&str> = spec.bins.iter().map(String::as_str).collect();
    let text = format!(
        "{RECIPE}\nname={}\nversion={}\nchecksum={}\nlock={}\nfeatures={}\n\
         no-default-features={}\nbins={}\ntarget={triple}\ncc={cc}\n\
         source-date-epoch={source_date_epoch}\nrustc={rustc}\n",
        lock.name,
        lock.version,
        lock.checksum,
        lock.lock_sha256,
        features.into_iter().collect::<Vec<_>>().join(","),
        spec.no_default_features,
        bins.into_iter().collect::<Vec<_>>().join(","),
    );
    sha256_hex(text.as_bytes())
}

/// The environment that makes a build's bytes independent of where it ran.
fn reproducible_env(cmd: &mut Command, job: &CargoJob) {
    let (triple, tools, src, target_dir) = (job.target.triple, job.tools, job.src, job.target_dir);
    let (name, version) = (&job.lock.name, &job.lock.version);
    let home = cargo_home();
    // rustc applies the last matching prefix, so general folders come first
    // and the more specific ones inside them after.
    let mut maps: Vec<(PathBuf, String)> = vec![(home.clone(), "/cargo".into())];
    // The registry's unpack folder is named after the registry's URL; remap
    // it away so a mirror gives the same bytes as the registry itself.
    if let Ok(rd) = std::fs::read_dir(home.join("registry/src")) {
        let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for d in dirs {
            maps.push((d, "/cargo/registry/src".into()));
        }
    }
    maps.push((target_dir.to_path_buf(), "/target".into()));
    maps.push((src.to_path_buf(), format!("/build/{name}-{version}")));
    if job.std == Std::FromSource {
        // Where the prebuilt standard library says its sources were.
        maps.push((
            job.tc.rust_src(),
            format!("/rustc/{}", job.tc.commit_hash()),
        ));
    }

    let mut rustflags: Vec<String> = vec![
        "-Ctarget-feature=+crt-static".into(),
        "-Cstrip=symbols".into(),
        "-Cdebuginfo=0".into(),
    ];
    let mut cflags: Vec<String> = Vec::new();
    for (from, to) in &maps {
        rustflags.push(format!("--remap-path-prefix={}={to}", from.display()));
        cflags.push(format!("-ffile-prefix-map={}={to}", from.display()));
    }
    let env_triple = triple.replace('-', "_");
    let upper = env_triple.to_uppercase();
    cmd.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\u{1f}"))
        .env(format!("CARGO_TARGET_{upper}_RUSTFLAGS"), "")
        .env("SOURCE_DATE_EPOCH", job.source_date_epoch.to_string())
        // cargo's 16 codegen units: the split is a pure function of the
        // code (not of the core count), and it builds far faster than 1;
        // fat LTO a crate may ask for costs minutes per target for a few
        // percent of size.
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "false")
        .env("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "false")
        .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "false")
        .env("CARGO_PROFILE_RELEASE_SPLIT_DEBUGINFO", "off")
        .env(format!("CC_{env_triple}"), &tools.cc)
        .env(format!("CXX_{env_triple}"), &tools.cxx)
        .env(format!("AR_{env_triple}"), &tools.ar)
        .env(format!("RANLIB_{env_triple}"), &tools.ranlib)
        .env(format!("CARGO_TARGET_{upper}_LINKER"), &tools.linker)
        .env("TZ", "UTC")
        .env("LC_ALL", "C");
    // C code compiled by build scripts sees the same remapping through
    // CFLAGS; a caller's own flags for the target are kept in front.
    let cflags_var = format!("CFLAGS_{env_triple}");
    let mut all_cflags = std::env::var(&cflags_var).unwrap_or_default();
    for f in cflags {
        if !all_cflags.is_empty() {
            all_cflags.push(' ');
        }
        all_cflags.push_str(&f);
    }
    cmd.env(&cflags_var, all_cflags);
}

/// The binaries cargo reported for the package at `manifest`, by name.
fn bin_artifacts(stdout: &str, manifest: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if msg["manifest_path"].as_str().map(Path::new) != Some(manifest) {
            continue;
        }
        let is_bin = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"));
        let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str())
        else {
            continue;
        };
        if is_bin && !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    out.sort();
    out
}

/// Name and version of the package whose manifest is in `dir`.
fn package_identity(tc: &Toolchain, dir: &Path) -> Result<(String, String)> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(bad_input(format!(
            "{}: no Cargo.toml (a cargo `path` must be a crate folder)",
            dir.display()
        )));
    }
    let meta = cargo_metadata(
        tc,
        &manifest,
        &format!("crate at {}", dir.display()),
        &["--no-deps"],
    )?;
    let pkg = &meta["packages"][0];
    match (pkg["name"].as_str(), pkg["version"].as_str()) {
        (Some(n), Some(v)) => Ok((n.to_string(), v.to_string())),
        _ => Err(bad_input(format!(
            "{}: not a package manifest",
            manifest.display()
        ))),
    }
}

/// `cargo metadata --format-version 1` of `manifest` with `args` (e.g.
/// `--no-deps`, or `--locked --filter-platform T`).
fn cargo_metadata(
    tc: &Toolchain,
    manifest: &Path,
    who: &str,
    args: &[&str],
) -> Result<serde_json::Value> {
    let out = tc
        .cargo()
        .args(["metadata", "--format-version", "1"])
        .args(args)
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .map_err(|e| bad_input(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(cargo_failure(who, &String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| bad_input(format!("{who}: cargo metadata: {e}")))
}

/// Fails early when the spec names binaries the crate does not have.
fn check_bins(tc: &Toolchain, spec: &CrateSpec, src: &Path, who: &str) -> Result<()> {
    let meta = cargo_metadata(tc, &src.join("Cargo.toml"), who, &["--no-deps"])?;
    let have: Vec<String> = meta["packages"][0]["targets"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bin"))
                })
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if have.is_empty() {
        return Err(bad_input(format!("{who}: the crate has no binaries")));
    }
    for b in &spec.bins {
        if !have.contains(b) {
            return Err(bad_input(format!(
                "{who}: no binary {b:?} (it has: {})",
                have.join(", ")
            )));
        }
    }
    Ok(())
}

/// Asks cargo which `.crate` checksum the registry index records for
/// `name` `version`, through a throwaway package that depends on exactly
/// that version. Unknown crates and versions fail here.
fn resolve_checksum(tc: &Toolchain, name: &str, version: &str, work: &Path) -> Result<String> {
    let who = format!("crate {name} {version}");
    let dir = work.join("resolve");
    write_probe_package(&dir, name, version)?;
    let out = tc
        .cargo()
        .arg("generate-lockfile")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .output()
        .map_err(|e| bad_input(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(cargo_failure(&who, &String::from_utf8_lossy(&out.stderr)));
    }
    let text = std::fs::read_to_string(dir.join("Cargo.lock"))
        .map_err(|e| bad_input(format!("{who}: resolving: {e}")))?;
    let pkgs = parse_lockfile(&text)
        .map_err(|e| bad_input(format!("{who}: resolving: Cargo.lock: {e}")))?;
    pkgs.into_iter()
        .find(|p| p.name == name && p.version == version)
        .and_then(|p| p.checksum)
        .ok_or_else(|| {
            verification(format!(
                "{who}: the registry index gives no checksum for it, so it cannot be verified"
            ))
        })
}

fn write_probe_package(dir: &Path, name: &str, version: &str) -> Result<()> {
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|e| bad_input(format!("{}: {e}", dir.display())))?;
    // Default features off: the probe only needs the crate itself, and
    // fewer features mean fewer dependencies to resolve and download.
    let manifest = format!(
        "[package]\nname = \"netshoot-build-probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         publish = false\n\n[dependencies]\n{name} = {{ version = \"={version}\", default-features = false }}\n\n\
         [workspace]\n"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest)
        .and_then(|_| std::fs::write(dir.join("src/lib.rs"), ""))
        .map_err(|e| bad_input(format!("{}: {e}", dir.display())))
}

/// The `.crate` file of `name` `version` with sha256 `checksum`: from
/// cargo's download cache when it is there, else downloaded by cargo first
/// (`cargo fetch` of a throwaway package). The file is checked here
/// against `checksum` either way, so neither a mirror nor a corrupted cache
/// can slip in other bytes.
fn crate_file(
    tc: &Toolchain,
    name: &str,
    version: &str,
    checksum: &str,
    work: &Path,
) -> Result<PathBuf> {
    let who = format!("crate {name} {version}");
    if let Some(p) = find_cached_crate(name, version, checksum) {
        return Ok(p);
    }
    let dir = work.join("fetch");
    write_probe_package(&dir, name, version)?;
    let mut cmd = tc.cargo();
    cmd.arg("fetch")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"));
    // Only the host's dependencies: the probe is there for the crate itself.
    if !tc.host.is_empty() {
        cmd.args(["--target", &tc.host]);
    }
    let out = cmd
        .output()
        .map_err(|e| bad_input(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(cargo_failure(&who, &String::from_utf8_lossy(&out.stderr)));
    }
    if let Some(p) = find_cached_crate(name, version, checksum) {
        return Ok(p);
    }
    // Cargo verified the download against the index; if no cached file has
    // the pinned digest, the index now says something else than when the
    // crate was locked.
    Err(verification(format!(
        "{who}: the registry's .crate does not have the locked sha256 {checksum}"
    )))
}

fn find_cached_crate(name: &str, version: &str, checksum: &str) -> Option<PathBuf> {
    let cache = cargo_home().join("registry/cache");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|d| d.join(format!("{name}-{version}.crate")))
        .find(|p| p.is_file() && file_sha256(p).is_ok_and(|h| h == checksum))
}

/// Unpacks a `.crate` (a gzip tar of `name-version/...`) into `into` and
/// returns the crate's folder.
fn unpack_crate(file: &Path, name: &str, version: &str, into: &Path) -> Result<PathBuf> {
    let who = format!("crate {name} {version}");
    let f = std::fs::File::open(file).map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    ar.set_preserve_permissions(false);
    ar.set_preserve_mtime(true);
    std::fs::create_dir_all(into).map_err(|e| bad_input(format!("{}: {e}", into.display())))?;
    // tar's unpack_in refuses entries that would land outside `into`.
    let entries = ar
        .entries()
        .map_err(|e| verification(format!("{who}: bad .crate: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| verification(format!("{who}: bad .crate: {e}")))?;
        entry
            .unpack_in(into)
            .map_err(|e| verification(format!("{who}: bad .crate: {e}")))?;
    }
    let dir = into.join(format!("{name}-{version}"));
    if !dir.join("Cargo.toml").is_file() {
        return Err(verification(format!(
            "{who}: the .crate holds no {name}-{version}/Cargo.toml"
        )));
    }
    Ok(dir)
}

/// Adds an empty `[workspace]` to a copied crate's manifest unless it has
/// one, so that a cache folder inside some other workspace never makes
/// cargo treat the crate as that workspace's member.
fn make_own_workspace(src: &Path) -> Result<()> {
    let manifest = src.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| bad_input(format!("{}: {e}", manifest.display())))?;
    let parsed: toml::Table = text
        .parse()
        .map_err(|e| bad_input(format!("{}: {e}", manifest.display())))?;
    if parsed.contains_key("workspace") {
        return Ok(());
    }
    std::fs::write(&manifest, format!("{text}\n[workspace]\n"))
        .map_err(|e| bad_input(format!("{}: {e}", manifest.display())))
}

/// The packages of a `Cargo.lock` (formats 1 to 4), read by the
/// `cargo-lock` crate; a registry package without a checksum is refused,
/// since cargo could not verify it. Errors are one line.
fn parse_lockfile(text: &str) -> std::result::Result<Vec<LockedDep>, String> {
    let lock: cargo_lock::Lockfile = text.parse().map_err(|e: cargo_lock::Error| {
        // The TOML error quotes the offending line under its position:
        // keep the position and the reason.
        let msg = e.to_string();
        let mut lines = msg.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or_default().to_string();
        match lines.next_back() {
            Some(last) => format!("{first}: {last}"),
            None => first,
        }
    })?;
    if lock.packages.is_empty() {
        return Err("no [[package]] entries".into());
    }
    lock.packages
        .into_iter()
        .map(|p| {
            let (name, version) = (p.name.to_string(), p.version.to_string());
            let from_registry = p.source.as_ref().is_some_and(|s| s.is_remote_registry());
            if from_registry && p.checksum.is_none() {
                return Err(format!(
                    "{name} {version} has no checksum, so it cannot be verified"
                ));
            }
            Ok(LockedDep {
                name,
                version,
                checksum: p.checksum.map(|c| c.to_string()),
                license: None,
                targets: Vec::new(),
            })
        })
        .collect()
}

/// One line for a failed cargo call: `who`, then cargo's first error with
/// its location or causes. Unknown crates and versions are bad input, a
/// changed checksum a verification failure, a download problem a network
/// failure.
fn cargo_failure(who: &str, stderr: &str) -> anyhow::Error {
    let line = condense_cargo_error(stderr);
    let msg = format!("{who}: {line}");
    let has = |s: &str| line.contains(s);
    if has("no matching package named") || has("failed to select a version") {
        bad_input(msg)
    } else if has("checksum for") || has("checksum mismatch") {
        verification(msg)
    } else if has("failed to download")
        || has("spurious network")
        || has("Could not resolve host")
        || has("failed to query replaced source registry")
        || has("download of")
        || has("network failure")
        || has("failed to fetch")
    {
        network(msg)
    } else {
        bad_input(msg)
    }
}

/// Cargo's first `error...` line, followed by the `-->` location of a
/// compiler error or the `Caused by:` lines of a cargo error, on one line.
fn condense_cargo_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let Some(first) = lines.iter().position(|l| l.starts_with("error")) else {
        return lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| "cargo failed without a message".into());
    };
    // "error: " adds nothing to a line that already says it failed; a
    // compiler error's code (`error[E0308]`) stays, it is searchable.
    let head = lines[first].trim();
    let head = head.strip_prefix("error: ").unwrap_or(head);
    let mut parts: Vec<String> = vec![head.to_string()];
    let mut in_causes = false;
    let mut have_location = false;
    for l in &lines[first + 1..] {
        let t = l.trim();
        if l.starts_with("error") || l.starts_with("warning") {
            break;
        }
        if let Some(loc) = t.strip_prefix("-->") {
            if !have_location {
                parts.push(format!("at {}", loc.trim()));
                have_location = true;
            }
        } else if t.starts_with("candidate versions found") {
            // Names the versions that do exist, for a mistyped version.
            parts.push(t.to_string());
        } else if t == "Caused by:" {
            in_causes = true;
        } else if in_causes && !t.is_empty() && !parts.iter().any(|p| p == t) {
            parts.push(t.to_string());
        }
    }
    let mut s = parts.join(": ");
    if s.len() > 600 {
        let mut cut = 600;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// sha256 of a crate folder's files: relative paths, executable bits,
/// link targets and contents, in sorted order. `target/` and `.git/` at the
/// top are left out (build output and history are not source).
pub fn tree_digest(dir: &Path) -> Result<String> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for (rel, path) in files {
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        h.update(rel.as_bytes());
        h.update([0]);
        if meta.file_type().is_symlink() {
            let to = std::fs::read_link(&path)
                .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
            h.update(b"link\0");
            h.update(to.to_string_lossy().as_bytes());
        } else {
            use std::os::unix::fs::PermissionsExt;
            let exec = meta.permissions().mode() & 0o111 != 0;
            h.update(if exec { b"exec\0" } else { b"file\0" });
            h.update(meta.len().to_le_bytes());
            let mut f = std::fs::File::open(&path)
                .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| bad_input(format!("{}: {e}", dir.display())))?;
    for e in rd {
        let e = e.map_err(|e| bad_input(format!("{}: {e}", dir.display())))?;
        let path = e.path();
        let rel = path
            .strip_prefix(base)
            .map_err(|e| bad_input(format!("{}: {e}", path.display())))?
            .to_string_lossy()
            .to_string();
        if rel == "target" || rel == ".git" {
            continue;
        }
        let ft = e
            .file_type()
            .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        if ft.is_dir() {
            walk(base, &path, out)?;
        } else {
            out.push((rel, path));
        }
    }
    Ok(())
}

/// Copies a crate folder (without `target/` and `.git/`) to `to`.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let mut files = Vec::new();
    walk(from, from, &mut files)?;
    std::fs::create_dir_all(to).map_err(|e| bad_input(format!("{}: {e}", to.display())))?;
    for (rel, path) in files {
        let dst = to.join(&rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| bad_input(format!("{}: {e}", parent.display())))?;
        }
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)
                .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
            std::os::unix::fs::symlink(target, &dst)
                .map_err(|e| bad_input(format!("{}: {e}", dst.display())))?;
        } else {
            std::fs::copy(&path, &dst)
                .map_err(|e| bad_input(format!("{} -> {}: {e}", path.display(), dst.display())))?;
        }
    }
    Ok(())
}

pub(crate) fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(bad_input(format!("cache {}: {e}", dir.display()))),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))
}

fn cargo_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| OsString::from("/root"));
    PathBuf::from(home).join(".cargo")
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Runs `cmd` and returns its stdout; the error is its stderr's last line.
pub(crate) fn capture(cmd: &mut Command) -> std::result::Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!(
            "{:?} failed ({}): {last}",
            cmd.get_program(),
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// An exclusive lock on a file ([`std::fs::File::lock`], a `flock` on
/// Linux) held until dropped (the kernel releases it if the process dies,
/// so a killed build never leaves a stale lock behind).
pub(crate) struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> Result<FileLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| bad_input(format!("cache {}: {e}", path.display())))?;
        file.lock()
            .map_err(|e| bad_input(format!("cache {}: cannot lock: {e}", path.display())))?;
        Ok(FileLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> std::result::Result<CrateSpec, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn spec_defaults_and_strictness() {
        let s = spec("name = \"trippy\"\nversion = \"=0.13.0\"\n").unwrap();
        assert_eq!(s.dest, "/usr/local/bin");
        assert_eq!(s.exact_version(), Some("0.13.0"));
        s.check().unwrap();
        let e = spec("name = \"x\"\nversion = \"1.0.0\"\nfeatuers = []\n").unwrap_err();
        assert!(e.contains("featuers"), "{e}");
        let s = spec("name = \"x\"\nversion = \"^1\"\n").unwrap();
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("\"x\"") && e.contains("exact"), "{e}");
        let s = spec("name = \"x\"\n").unwrap();
        assert!(s.check().unwrap_err().to_string().contains("version"));
        let s = spec("name = \"x\"\npath = \"fx\"\nskip_platforms = [\"linux/s390x\"]\n").unwrap();
        s.check().unwrap();
        assert!(s.skips(&"linux/s390x".parse().unwrap()));
        assert!(!s.skips(&"linux/amd64".parse().unwrap()));
        let s = spec("name = \"x\"\npath = \"fx\"\nskip_platforms = [\"linux/vax\"]\n").unwrap();
        assert!(s.check().unwrap_err().to_string().contains("linux/vax"));
        let s = spec("name = \"x\"\npath = \"fx\"\ndest = \"bin\"\n").unwrap();
        assert!(s.check().unwrap_err().to_string().contains("dest"));
    }

    #[test]
    fn targets_for_every_platform() {
        let t = |p: &str| rust_target(&p.parse().unwrap()).unwrap();
        assert_eq!(t("linux/amd64"), "x86_64-unknown-linux-musl");
        assert_eq!(t("linux/arm64"), "aarch64-unknown-linux-musl");
        assert_eq!(t("linux/arm/v7"), "armv7-unknown-linux-musleabihf");
        assert_eq!(t("linux/riscv64"), "riscv64gc-unknown-linux-musl");
        assert_eq!(t("linux/ppc64le"), "powerpc64le-unknown-linux-musl");
        assert_eq!(t("linux/s390x"), "s390x-unknown-linux-musl");
        assert_eq!(t("linux/arm/v6"), "arm-unknown-linux-musleabihf");
        assert_eq!(t("linux/386"), "i686-unknown-linux-musl");
        // Every platform the spec accepts has a target.
        for p in image_layout::platform::KNOWN {
            t(p);
        }
    }

    #[test]
    fn condenses_compiler_and_cargo_errors() {
        let rustc = "   Compiling x v0.1.0\nerror[E0308]: mismatched types\n --> src/main.rs:2:18\n  |\n2 |     let x: u32 = \"s\";\n\nerror: could not compile `x`\n";
        assert_eq!(
            condense_cargo_error(rustc),
            "error[E0308]: mismatched types: at src/main.rs:2:18"
        );
        let cargo = "    Updating index\nerror: failed to get `x` as a dependency of package `p`\n\nCaused by:\n  failed to load source for dependency `x`\n\nCaused by:\n  no matching package named `x` found\n";
        let c = condense_cargo_error(cargo);
        assert!(
            c.starts_with("failed to get") && c.ends_with("no matching package named `x` found"),
            "{c}"
        );
        let e = cargo_failure("crate x 1.0.0", cargo);
        assert_eq!(crate::error::exit_code(&e), 2);
        assert_eq!(condense_cargo_error(""), "cargo failed without a message");
    }

    #[test]
    fn lockfile_checksums_are_required_for_registry_packages() {
        let (ab, cd) = ("ab".repeat(32), "cd".repeat(32));
        let v4 = format!("version = 4\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+https://example.invalid/index\"\nchecksum = \"{ab}\"\n[[package]]\nname = \"me\"\nversion = \"0.1.0\"\ndependencies = [\"a\"]\n");
        let p = parse_lockfile(&v4).unwrap();
        assert_eq!((p[0].name.as_str(), p[0].version.as_str()), ("a", "1.0.0"));
        assert_eq!(p[0].checksum.as_deref(), Some(ab.as_str()));
        assert_eq!(p[1].checksum, None);
        let v1 = format!("[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+https://example.invalid/index\"\n[metadata]\n\"checksum a 1.0.0 (registry+https://example.invalid/index)\" = \"{cd}\"\n");
        assert_eq!(
            parse_lockfile(&v1).unwrap()[0].checksum.as_deref(),
            Some(cd.as_str())
        );
        let bad = v4.replace(&format!("checksum = \"{ab}\"\n"), "");
        assert!(parse_lockfile(&bad).unwrap_err().contains("a 1.0.0"));
        let sparse = bad.replace("registry+", "sparse+");
        assert!(parse_lockfile(&sparse).unwrap_err().contains("a 1.0.0"));
        // A git source carries no checksum.
        let git = bad.replace(
            "registry+https://example.invalid/index",
            "git+https://example.invalid/a#0123abcd",
        );
        assert_eq!(parse_lockfile(&git).unwrap()[0].checksum, None);
        for broken in [
            "garbage [[[",
            "version = 4\n",
            "[[package]]\nname = \"a\"\n",
        ] {
            let e = parse_lockfile(broken).unwrap_err();
            assert!(!e.is_empty() && !e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn exact_versions_are_semver_versions() {
        for v in [
            "1.2.3",
            "0.13.0",
            "1.2.3-alpha.1",
            "1.2.3-rc.1",
            "1.2.3+build",
            "10.20.30",
        ] {
            assert!(crate::spec::is_exact_version(v), "{v}");
        }
        // `=1.2.3` is accepted by the spec, which strips the `=` first.
        let pinned = spec("name = \"x\"\nversion = \"=1.2.3\"\n").unwrap();
        assert_eq!(pinned.exact_version(), Some("1.2.3"));
        pinned.check().unwrap();
        for v in [
            "", "=1.2.3", "1.2", "1", "^1", "~1.2.3", "*", "1.2.3.4", "v1.2.3", " 1.2.3", "1.x.3",
            ">=1.2.3",
        ] {
            assert!(!crate::spec::is_exact_version(v), "{v}");
        }
        // Not versions to cargo either (so they failed later before): now
        // refused up front.
        for v in ["01.2.3", "1.2.3-", "1.2.3+", "1.2.3-a b"] {
            assert!(!crate::spec::is_exact_version(v), "{v}");
        }
    }

    #[test]
    fn tree_digest_ignores_target_and_sees_edits() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src")).unwrap();
        std::fs::create_dir_all(d.path().join("target/x")).unwrap();
        std::fs::write(d.path().join("src/main.rs"), "fn main() {}").unwrap();
        let a = tree_digest(d.path()).unwrap();
        std::fs::write(d.path().join("target/x/junk"), "junk").unwrap();
        assert_eq!(a, tree_digest(d.path()).unwrap());
        std::fs::write(d.path().join("src/main.rs"), "fn main() { }").unwrap();
        assert_ne!(a, tree_digest(d.path()).unwrap());
    }
}
