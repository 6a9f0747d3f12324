//! End-to-end tests of the `cargo` source: the fixture crate in
//! tests/fixtures/cratefix (Rust calling C built by the `cc` crate) is
//! compiled with zig for amd64 and arm64 musl through the library (and for
//! arm/v7, riscv64, ppc64le and s390x), checked to be static, run natively
//! and under qemu-user, rebuilt elsewhere to
//! the same bytes, and served warm from the cache without cargo. Bad inputs
//! (a compile error, an unknown crate, an unknown version, a stale lock, a
//! dynamically linked file) must each fail with one clear line.

mod common;
use common::*;
use image_layout::Platform;
use netshoot_build::elf::check_static;
use netshoot_build::error::{exit_code, one_line};
use netshoot_build::source::cargo::compile::{
    build_crate, lock_crate, BuiltBinary, CrateLock, CrateSpec,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn platform(s: &str) -> Platform {
    s.parse().unwrap()
}

fn cratefix_spec() -> CrateSpec {
    toml::from_str("name = \"cratefix\"\npath = \"cratefix\"\n").unwrap()
}

/// Builds `spec` for `plat` into `cache`, returning the binaries and the
/// log lines the build reported.
fn build(
    spec: &CrateSpec,
    lock: &CrateLock,
    base: &Path,
    plat: &str,
    cache: &Path,
) -> (anyhow::Result<Vec<BuiltBinary>>, Vec<String>) {
    let events = Mutex::new(Vec::new());
    let log = |m: String| events.lock().unwrap().push(m);
    let r = build_crate(spec, lock, base, &platform(plat), cache, 0, &log);
    (r, events.into_inner().unwrap())
}

fn sha256_file(p: &Path) -> String {
    ok(Command::new("sha256sum").arg(p))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The fixture locked and built once for both platforms into two caches in
/// folders of different names and depths; shared by the tests below so
/// the (slow) compilation happens once per test run.
struct Built {
    _dir: tempfile::TempDir,
    lock: CrateLock,
    cache_a: PathBuf,
    amd64: BuiltBinary,
    arm64: BuiltBinary,
    amd64_b: BuiltBinary,
    arm64_b: BuiltBinary,
    cold_logs: Vec<String>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let spec = cratefix_spec();
        let lock = lock_crate(&spec, &fixtures(), &dir.path().join("work"))
            .unwrap_or_else(|e| panic!("lock: {}", one_line(&e)));
        let cache_a = dir.path().join("a/cache");
        let cache_b = dir.path().join("some/other/deeper/folder-b");
        let mut cold_logs = Vec::new();
        let mut one = |plat: &str, cache: &Path| {
            let (r, logs) = build(&spec, &lock, &fixtures(), plat, cache);
            cold_logs.extend(logs);
            let mut bins = r.unwrap_or_else(|e| panic!("build {plat}: {}", one_line(&e)));
            assert_eq!(bins.len(), 1, "{bins:?}");
            bins.remove(0)
        };
        let amd64 = one("linux/amd64", &cache_a);
        let arm64 = one("linux/arm64", &cache_a);
        let amd64_b = one("linux/amd64", &cache_b);
        let arm64_b = one("linux/arm64", &cache_b);
        Built {
            _dir: dir,
            lock,
            cache_a,
            amd64,
            arm64,
            amd64_b,
            arm64_b,
            cold_logs,
        }
    })
}

/// The fixture's output: its C part ran, it was built for `arch`, and the
/// source paths the C and Rust compilers recorded are the remapped ones
/// (`/build/<crate>-<version>`, `/target`), not the build's real folders.
fn assert_output(out: &str, arch: &str, triple: &str) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], format!("cratefix 42 hello from C {arch}"));
    assert_eq!(lines[1], "c-source /build/cratefix-0.1.0/csrc/mix.c");
    let generated = lines[2].strip_prefix("generated ").unwrap_or_default();
    assert!(
        generated.starts_with(&format!("/target/{triple}/release/build/cratefix-"))
            && generated.ends_with("/out/generated.rs"),
        "{out}"
    );
}

#[test]
fn lock_pins_the_fixture_and_its_cc_dependency() {
    let b = built();
    assert_eq!(b.lock.name, "cratefix");
    assert_eq!(b.lock.version, "0.1.0");
    // The fixture ships its Cargo.lock: that exact text is what is used.
    let shipped = std::fs::read_to_string(fixtures().join("cratefix/Cargo.lock")).unwrap();
    assert_eq!(b.lock.lockfile, shipped);
    assert_eq!(b.lock.lock_sha256, sha256_hex(shipped.as_bytes()));
    let cc = b
        .lock
        .packages
        .iter()
        .find(|p| p.name == "cc")
        .expect("cc locked");
    assert_eq!(cc.checksum.as_ref().map(String::len), Some(64));
    // The lock is data the lead stores in the lockfile: it round-trips.
    let json = serde_json::to_string(&b.lock).unwrap();
    let back: CrateLock = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, &b.lock);
}

#[test]
fn amd64_binary_is_static_and_runs() {
    let b = built();
    assert_eq!(b.amd64.name, "cratefix");
    assert_eq!(b.amd64.dest, "/usr/local/bin/cratefix");
    assert!(b.amd64.path.starts_with(b.cache_a.join("crates")));
    check_static(&b.amd64.path, &platform("linux/amd64")).unwrap();
    let out = ok(&mut Command::new(&b.amd64.path));
    assert_output(&out, "x86_64", "x86_64-unknown-linux-musl");
    // An amd64 program is not an arm64 one.
    let e = check_static(&b.amd64.path, &platform("linux/arm64")).unwrap_err();
    let msg = one_line(&e);
    eprintln!("error line: {msg}");
    assert!(
        msg.contains("linux/arm64") && msg.contains("machine"),
        "{msg}"
    );
    assert_eq!(exit_code(&e), 3);
}

#[test]
fn arm64_binary_is_static_and_runs_under_qemu() {
    let b = built();
    check_static(&b.arm64.path, &platform("linux/arm64")).unwrap();
    let out = ok(Command::new("qemu-aarch64-static").arg(&b.arm64.path));
    assert_output(&out, "aarch64", "aarch64-unknown-linux-musl");
    let e = check_static(&b.arm64.path, &platform("linux/amd64")).unwrap_err();
    assert!(one_line(&e).contains("machine"), "{}", one_line(&e));
}

/// The four further platforms Debian and Rust share, compiled with the
/// same zig toolchain: each binary is static, carries its platform's ELF
/// machine (and no other's), and its C part runs under qemu-user. Where
/// rustup cannot install a target's standard library it is compiled from
/// rust-src, minutes per target: a slow matrix, run by
/// `make test-platforms` (and `make bench`), not by `make test`.
#[test]
#[ignore = "slow matrix (std compiled per target): make test-platforms"]
fn every_further_platform_builds_with_zig_and_runs_under_qemu() {
    let b = built();
    let spec = cratefix_spec();
    let cases = [
        (
            "linux/arm/v7",
            "qemu-arm-static",
            "arm",
            "armv7-unknown-linux-musleabihf",
        ),
        (
            "linux/riscv64",
            "qemu-riscv64-static",
            "riscv64",
            "riscv64gc-unknown-linux-musl",
        ),
        (
            "linux/ppc64le",
            "qemu-ppc64le-static",
            "powerpc64",
            "powerpc64le-unknown-linux-musl",
        ),
        (
            "linux/s390x",
            "qemu-s390x-static",
            "s390x",
            "s390x-unknown-linux-musl",
        ),
    ];
    for (plat, qemu, arch, triple) in cases {
        let (r, logs) = build(&spec, &b.lock, &fixtures(), plat, &b.cache_a);
        let bins = r.unwrap_or_else(|e| panic!("build {plat}: {}", one_line(&e)));
        assert!(
            logs.iter()
                .any(|l| l.starts_with("cargo build crate cratefix")),
            "{logs:?}"
        );
        let bin = &bins[0].path;
        check_static(bin, &platform(plat)).unwrap_or_else(|e| panic!("{plat}: {}", one_line(&e)));
        assert!(
            check_static(bin, &platform("linux/amd64")).is_err(),
            "{plat}"
        );
        let out = ok(Command::new(qemu).arg(bin));
        assert_output(&out, arch, triple);
    }
}

#[test]
fn builds_in_different_folders_are_byte_identical() {
    let b = built();
    assert_ne!(b.amd64.path, b.amd64_b.path);
    assert_eq!(sha256_file(&b.amd64.path), sha256_file(&b.amd64_b.path));
    assert_eq!(sha256_file(&b.arm64.path), sha256_file(&b.arm64_b.path));
    assert_ne!(sha256_file(&b.amd64.path), sha256_file(&b.arm64.path));
    // No build folder leaks into the bytes.
    for p in [&b.amd64.path, &b.arm64.path] {
        let data = std::fs::read(p).unwrap();
        let hay = String::from_utf8_lossy(&data);
        for leak in ["/tmp/", "cargo-src", "cargo-target", "/.cargo/"] {
            assert!(!hay.contains(leak), "{} contains {leak:?}", p.display());
        }
    }
}

#[test]
fn warm_build_runs_no_cargo() {
    let b = built();
    assert!(
        b.cold_logs
            .iter()
            .any(|l| l.starts_with("cargo build crate cratefix")),
        "{:?}",
        b.cold_logs
    );
    let started = Instant::now();
    let (r, logs) = build(
        &cratefix_spec(),
        &b.lock,
        &fixtures(),
        "linux/amd64",
        &b.cache_a,
    );
    let took = started.elapsed();
    let bins = r.unwrap_or_else(|e| panic!("{}", one_line(&e)));
    assert_eq!(bins, vec![b.amd64.clone()]);
    assert!(
        logs.iter().all(|l| !l.starts_with("cargo build")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.starts_with("cached crate cratefix")),
        "{logs:?}"
    );
    // How long it took is for `make bench-crates`, not a test assertion.
    eprintln!("warm build took {took:?}");
}

#[test]
fn skipped_platform_builds_nothing() {
    let b = built();
    let mut spec = cratefix_spec();
    spec.skip_platforms = vec!["linux/arm64".into()];
    let (r, logs) = build(&spec, &b.lock, &fixtures(), "linux/arm64", &b.cache_a);
    assert_eq!(r.unwrap(), vec![]);
    assert!(logs.iter().any(|l| l.starts_with("skip")), "{logs:?}");
}

/// A standalone crate in `dir` whose main.rs is `main`.
fn write_crate(dir: &Path, name: &str, main: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
}

#[test]
fn compile_error_is_one_clear_line_and_caches_nothing() {
    let t = tempfile::tempdir().unwrap();
    write_crate(
        &t.path().join("broken"),
        "broken",
        "fn main() {\n    let x: u32 = \"not a number\";\n    println!(\"{x}\");\n}\n",
    );
    let spec: CrateSpec = toml::from_str("name = \"broken\"\npath = \"broken\"\n").unwrap();
    // The crate ships no Cargo.lock: locking generates and records one.
    let lock = lock_crate(&spec, t.path(), &t.path().join("work")).unwrap();
    assert!(
        lock.lockfile.contains("name = \"broken\""),
        "{}",
        lock.lockfile
    );
    let cache = t.path().join("cache");
    let (r, _) = build(&spec, &lock, t.path(), "linux/amd64", &cache);
    let e = r.unwrap_err();
    let msg = one_line(&e);
    eprintln!("error line: {msg}");
    assert!(!msg.contains('\n'));
    for want in [
        "crate broken 0.1.0",
        "x86_64-unknown-linux-musl",
        "error[E0308]",
        "src/main.rs:2",
    ] {
        assert!(msg.contains(want), "{want:?} missing from: {msg}");
    }
    assert_eq!(exit_code(&e), 2);
    let published: Vec<_> = std::fs::read_dir(cache.join("crates"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(published.is_empty(), "cache holds {published:?}");
}

#[test]
fn edited_path_crate_needs_a_new_lock() {
    let t = tempfile::tempdir().unwrap();
    write_crate(&t.path().join("tool"), "tool", "fn main() {}\n");
    let spec: CrateSpec = toml::from_str("name = \"tool\"\npath = \"tool\"\n").unwrap();
    let lock = lock_crate(&spec, t.path(), &t.path().join("work")).unwrap();
    std::fs::write(
        t.path().join("tool/src/main.rs"),
        "fn main() { println!(); }\n",
    )
    .unwrap();
    let (r, logs) = build(
        &spec,
        &lock,
        t.path(),
        "linux/amd64",
        &t.path().join("cache"),
    );
    let msg = one_line(&r.unwrap_err());
    assert!(
        msg.contains("\"tool\"") && msg.contains("stale") && msg.contains("lock"),
        "{msg}"
    );
    assert!(
        logs.iter().all(|l| !l.starts_with("cargo build")),
        "{logs:?}"
    );
    // A path crate whose package has another name is refused at lock time.
    let wrong: CrateSpec = toml::from_str("name = \"other\"\npath = \"tool\"\n").unwrap();
    let msg = one_line(&lock_crate(&wrong, t.path(), &t.path().join("work")).unwrap_err());
    assert!(
        msg.contains("\"tool\"") && msg.contains("\"other\""),
        "{msg}"
    );
}

#[test]
fn unknown_crate_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let spec: CrateSpec =
        toml::from_str("name = \"netshoot-build-no-such-crate-xyz\"\nversion = \"=0.0.1\"\n")
            .unwrap();
    let e = lock_crate(&spec, t.path(), &t.path().join("work")).unwrap_err();
    let msg = one_line(&e);
    eprintln!("error line: {msg}");
    assert!(
        msg.contains("netshoot-build-no-such-crate-xyz") && msg.contains("no matching package"),
        "{msg}"
    );
    assert_eq!(exit_code(&e), 2, "{msg}");
}

#[test]
fn unknown_version_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let spec: CrateSpec = toml::from_str("name = \"cc\"\nversion = \"999.0.0\"\n").unwrap();
    let e = lock_crate(&spec, t.path(), &t.path().join("work")).unwrap_err();
    let msg = one_line(&e);
    eprintln!("error line: {msg}");
    assert!(
        msg.contains("crate cc 999.0.0") && msg.contains("failed to select a version"),
        "{msg}"
    );
    assert_eq!(exit_code(&e), 2, "{msg}");
}

#[test]
fn dynamically_linked_binary_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let src = fixtures().join("hello.c");
    let dynamic = t.path().join("hello-dynamic");
    ok(Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&dynamic)
        .arg(&src));
    let e = check_static(&dynamic, &platform("linux/amd64")).unwrap_err();
    let msg = one_line(&e);
    eprintln!("error line: {msg}");
    assert!(
        msg.contains("hello-dynamic") && msg.contains("linux/amd64") && msg.contains("PT_INTERP"),
        "{msg}"
    );
    assert_eq!(exit_code(&e), 3);
    // A shared library has no interpreter but needs libc: DT_NEEDED.
    let lib = t.path().join("libhello.so");
    ok(Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src));
    let msg = one_line(&check_static(&lib, &platform("linux/amd64")).unwrap_err());
    assert!(msg.contains("DT_NEEDED"), "{msg}");
    // The same program linked statically passes.
    let stat = hello_binary(t.path());
    check_static(&stat, &platform("linux/amd64")).unwrap();
}

/// The image built from a spec with a `[[cargo]]` source holds the
/// compiled binary, which runs under runc.
#[test]
fn image_with_cargo_source_runs_under_runc() {
    let t = tempfile::tempdir().unwrap();
    ok(Command::new("cp")
        .arg("-r")
        .arg(fixtures().join("cratefix"))
        .arg(t.path().join("cratefix")));
    let spec = t.path().join("netshoot.toml");
    std::fs::write(
        &spec,
        r#"platforms = ["linux/amd64", "linux/arm64"]

[image]
name = "netshoot"
tag = "test"
cmd = ["/usr/local/bin/cratefix"]

[[cargo]]
name = "cratefix"
path = "cratefix"
"#,
    )
    .unwrap();
    let cache = t.path().join("cache");
    ok(bin().args(["lock", "--spec"]).arg(&spec));
    let out = t.path().join("out");
    ok(bin()
        .args(["build", "-q", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(&cache));
    let bundle = umoci_bundle(&out, "test", t.path());
    let stdout = runc_run(&bundle, "netshoot-cargo-e2e", &["/usr/local/bin/cratefix"]);
    assert_eq!(
        stdout.lines().next(),
        Some("cratefix 42 hello from C x86_64"),
        "{stdout}"
    );

    // Another zig (a wrapper reporting another version) is another cache
    // key: the crate is compiled again, while a rebuild with the usual one
    // is served from the cache.
    let wrapper = t.path().join("zig");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\n[ \"$1\" = version ] && { echo 0.0.0-netshoot-test; exit 0; }\nexec zig \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let rebuild = |cc: Option<&Path>| {
        let mut c = bin();
        c.args(["build", "--platform", "linux/amd64", "--spec"])
            .arg(&spec)
            .arg("--out")
            .arg(t.path().join("out2"))
            .arg("--cache")
            .arg(&cache);
        if let Some(cc) = cc {
            c.env("NETSHOOT_ZIG", cc);
        }
        let o = run(&mut c);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let same = rebuild(None);
    assert!(same.contains("cached crate cratefix"), "{same}");
    let other = rebuild(Some(&wrapper));
    assert!(other.contains("cargo build crate cratefix"), "{other}");
}
