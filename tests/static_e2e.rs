//! The `source` kind end to end, offline: a Debian source package made by
//! the real `dpkg-source -b` (upstream tarball plus a Debian patch) is
//! published with a signed `Sources` index on 127.0.0.1; `netshoot-build`
//! locks it, compiles it with zig for amd64 and arm64, writes the static
//! image and the bundle, and refuses tampered sources. The results are
//! read by skopeo/umoci, `file`, GNU tar and run with runc and qemu-user.

#[path = "common/aptrepo.rs"]
mod aptrepo;
mod common;

use aptrepo::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const UPSTREAM_C: &str = r#"#include <stdio.h>
int main(void) { puts("hello from upstream"); return 0; }
"#;

const GREETING_PATCH: &str = r#"--- a/hello.c
+++ b/hello.c
@@ -1,2 +1,2 @@
 #include <stdio.h>
-int main(void) { puts("hello from upstream"); return 0; }
+int main(void) { puts("hello from the Debian patch"); return 0; }
"#;

const CERT: &str = "-----BEGIN CERTIFICATE-----\nTkVUU0hPT1QgVEVTVA==\n-----END CERTIFICATE-----";

struct Fixture {
    t: tempfile::TempDir,
    repo: Repo,
    server: DirServer,
    pool: String,
}

/// Writes the source package with the real dpkg-source and returns its .dsc.
fn source_package(work: &Path) -> PathBuf {
    let up = work.join("nshello-1.0");
    std::fs::create_dir_all(up.join("debian/source")).unwrap();
    std::fs::create_dir_all(up.join("debian/patches")).unwrap();
    std::fs::write(up.join("hello.c"), UPSTREAM_C).unwrap();
    ok(Command::new("tar").current_dir(work).args([
        "--sort=name",
        "--mtime=@0",
        "--owner=0",
        "--group=0",
        "-czf",
        "nshello_1.0.orig.tar.gz",
        "nshello-1.0/hello.c",
    ]));
    let d = up.join("debian");
    std::fs::write(d.join("source/format"), "3.0 (quilt)\n").unwrap();
    std::fs::write(
        d.join("changelog"),
        "nshello (1.0-1) trixie; urgency=medium\n\n  * Test package.\n\n -- Test <test@example.invalid>  Thu, 01 Jan 1970 00:00:00 +0000\n",
    )
    .unwrap();
    std::fs::write(
        d.join("control"),
        "Source: nshello\nMaintainer: Test <test@example.invalid>\nSection: net\nPriority: optional\nStandards-Version: 4.7.0\n\nPackage: nshello\nArchitecture: any\nDescription: test\n test package\n",
    )
    .unwrap();
    std::fs::write(d.join("rules"), "#!/usr/bin/make -f\n%:\n\tdh $@\n").unwrap();
    std::fs::write(d.join("patches/series"), "greeting.patch\n").unwrap();
    std::fs::write(d.join("patches/greeting.patch"), GREETING_PATCH).unwrap();
    ok(Command::new("dpkg-source")
        .current_dir(work)
        .args(["-b", "nshello-1.0"]));
    work.join("nshello_1.0-1.dsc")
}

fn fixture() -> Fixture {
    fixture_for(&["amd64", "arm64"])
}

/// The fixture repository with Packages indexes for `arches`.
fn fixture_for(arches: &[&str]) -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let mut repo = Repo::new(t.path(), arches);
    repo.add(
        "trixie",
        &DebSpec::new("ca-certificates", "20250419", "all").file(
            "/usr/share/ca-certificates/test/netshoot-test.crt",
            CERT.as_bytes(),
            0o644,
        ),
    );
    let work = t.path().join("srcpkg");
    std::fs::create_dir_all(&work).unwrap();
    let dsc = source_package(&work);
    let pool = repo.add_source("trixie", &dsc);
    let now = now_secs();
    repo.publish("trixie", now - 3600, Some(now + 7 * 86400));
    let server = DirServer::start(&repo.root);
    Fixture {
        t,
        repo,
        server,
        pool,
    }
}

impl Fixture {
    fn spec(&self, dir: &str) -> PathBuf {
        self.spec_for(dir, &["linux/amd64", "linux/arm64"])
    }

    fn spec_for(&self, dir: &str, platforms: &[&str]) -> PathBuf {
        let d = self.t.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        self.repo.write_keyring(&d.join("keyring.gpg"), false);
        let text = format!(
            r#"platforms = {platforms:?}

[image]
name = "fixture"
tag = "1.0"

[apt]
packages = ["ca-certificates"]
base = "none"

[[apt.repository]]
name = "test"
suites = ["trixie"]
components = ["main"]
keyring = "keyring.gpg"
url = "{url}"

[static]
tag_suffix = "-static"
repository = "test"
suite = "trixie"

[[source]]
name = "nshello"
bins = ["nshello"]
links_file = "usr/share/nshello/links"
steps = [
  "$CC $CFLAGS $CPPFLAGS $LDFLAGS -o nshello hello.c",
  "install -D -m 0755 nshello $OUT/usr/bin/nshello",
  "mkdir -p $OUT/usr/share/nshello && printf '/bin/sh\n/usr/bin/hi\n/usr/bin/nshello\n' > $OUT/usr/share/nshello/links",
]
"#,
            url = self.server.url()
        );
        let p = d.join("netshoot.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn pool_file(&self, name: &str) -> PathBuf {
        self.repo.path(&format!("{}/{name}", self.pool))
    }
}

fn build(spec: &Path, out: &Path, cache: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.env_remove("NETSHOOT_MIRROR_TEST")
        .args(["build", "--spec"])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(cache)
        .args(["--variant", "static"])
        .args(extra);
    c
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn file_says(p: &Path) -> String {
    ok(Command::new("file").arg("-b").arg(p))
}

#[test]
fn static_variant_compiles_verified_debian_sources_for_both_arches() {
    let f = fixture();
    let spec = f.spec("s");
    let out = f.t.path().join("layout");
    let cache = f.t.path().join("cache");
    let r = run(&mut build(&spec, &out, &cache, &[]));
    let log = String::from_utf8_lossy(&r.stderr).to_string();
    assert!(r.status.success(), "{log}");

    // The lock pins exactly the files the archive published, by their own digests.
    let lock = read_json(&spec.with_extension("lock"));
    let src = &lock["sources"]["nshello"];
    assert_eq!(src["version"], "1.0-1", "{src}");
    assert_eq!(src["suite"], "trixie");
    assert_eq!(src["format"], "3.0 (quilt)");
    let files = src["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(
        names
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        [
            "nshello_1.0-1.debian.tar.xz",
            "nshello_1.0-1.dsc",
            "nshello_1.0.orig.tar.gz"
        ]
        .into_iter()
        .collect()
    );
    for x in files {
        let bytes = std::fs::read(f.pool_file(x["name"].as_str().unwrap())).unwrap();
        assert_eq!(x["sha256"], sha256_hex(&bytes));
        assert_eq!(x["size"], bytes.len() as u64);
    }
    let rel = std::fs::read(f.repo.base().join("dists/trixie/InRelease")).unwrap();
    assert_eq!(src["release_sha256"], sha256_hex(&rel));

    // The image: static programs for the right machine, the Debian patch
    // applied, applet links, CA bundle, accounts, CMD sh.
    let layout_index = read_json(&out.join("index.json"));
    let tags: Vec<&str> = layout_index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert_eq!(tags, ["1.0-static"]);
    for (arch, machine) in [("amd64", "x86-64"), ("arm64", "ARM aarch64")] {
        let work = f.t.path().join(format!("unpack-{arch}"));
        std::fs::create_dir_all(&work).unwrap();
        let bundle = unpack(&out, "1.0-static", arch, &work);
        let root = bundle.join("rootfs");
        let prog = root.join("usr/bin/nshello");
        let what = file_says(&prog);
        assert!(
            what.contains("statically linked") || what.contains("static-pie"),
            "{what}"
        );
        assert!(what.contains(machine), "{arch}: {what}");
        let run_out = ok(&mut Command::new(&prog));
        assert_eq!(run_out.trim(), "hello from the Debian patch", "{arch}");
        assert_eq!(
            std::fs::read_link(root.join("usr/bin/hi")).unwrap(),
            Path::new("/usr/bin/nshello")
        );
        assert_eq!(
            std::fs::read_link(root.join("bin/sh")).unwrap(),
            Path::new("/usr/bin/nshello")
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap(),
            format!("{CERT}\n")
        );
        assert!(std::fs::read_to_string(root.join("etc/passwd"))
            .unwrap()
            .starts_with("root:x:0:0:"));
        let cfg = read_json(&bundle.join("config.json"));
        assert_eq!(cfg["process"]["args"], serde_json::json!(["sh"]), "{arch}");
    }
    assert!(
        log.contains("compile source nshello 1.0-1 for linux/amd64"),
        "{log}"
    );

    // Its SBOM names the source package, and the reference validator accepts it.
    let sbom = ok(bin()
        .args(["sbom", "--platform", "linux/arm64", "--layout"])
        .arg(&out));
    assert!(
        sbom.contains("pkg:deb/debian/nshello@1.0-1?arch=source"),
        "{sbom}"
    );
    let sbom_file = f.t.path().join("static.spdx.json");
    std::fs::write(&sbom_file, &sbom).unwrap();
    let (valid, report) = validate_spdx(&sbom_file);
    assert!(valid, "{report}");

    // Warm: nothing compiles, same bytes.
    let digest = layout_tag_digest(&out, "1.0-static");
    let r = run(&mut build(&spec, &out, &cache, &["--locked"]));
    let log2 = String::from_utf8_lossy(&r.stderr).to_string();
    assert!(r.status.success(), "{log2}");
    assert!(!log2.contains("compile source"), "{log2}");
    assert!(
        log2.contains("cached source nshello 1.0-1 for linux/arm64"),
        "{log2}"
    );
    assert_eq!(layout_tag_digest(&out, "1.0-static"), digest);

    // Reproducible: another cache, another build folder, same index.
    let out2 = f.t.path().join("layout2");
    let r = run(&mut build(
        &spec,
        &out2,
        &f.t.path().join("cache2"),
        &["--locked", "-q"],
    ));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(layout_tag_digest(&out2, "1.0-static"), digest);

    // A recipe change is a cache miss.
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("$CC $CFLAGS", "$CC -Os $CFLAGS");
    std::fs::write(&spec, text).unwrap();
    let r = run(&mut build(
        &spec,
        &out,
        &cache,
        &["--platform", "linux/amd64"],
    ));
    let log3 = String::from_utf8_lossy(&r.stderr).to_string();
    assert!(r.status.success(), "{log3}");
    assert!(
        log3.contains("compile source nshello 1.0-1 for linux/amd64"),
        "{log3}"
    );
}

/// `export --static-bundle` for `platform` into `tarball`.
fn export_bundle(spec: &Path, cache: &Path, platform: &str, tarball: &Path) -> Command {
    let mut c = bin();
    c.args([
        "export",
        "--static-bundle",
        "-q",
        "--platform",
        platform,
        "--spec",
    ])
    .arg(spec)
    .arg("--cache")
    .arg(cache)
    .arg("-o")
    .arg(tarball);
    c
}

/// arm/v7, riscv64, ppc64le and s390x: the source package compiles with
/// the same zig toolchain, each bundle's program is a static executable of
/// its platform's machine, and it runs under qemu-user.
#[test]
fn further_platforms_compile_with_zig_and_run_under_qemu() {
    let cases = [
        ("linux/arm/v7", "armhf", "qemu-arm-static", "ARM, EABI5"),
        ("linux/riscv64", "riscv64", "qemu-riscv64-static", "RISC-V"),
        (
            "linux/ppc64le",
            "ppc64el",
            "qemu-ppc64le-static",
            "64-bit PowerPC",
        ),
        ("linux/s390x", "s390x", "qemu-s390x-static", "IBM S/390"),
    ];
    let arches: Vec<&str> = cases.iter().map(|c| c.1).collect();
    let f = fixture_for(&arches);
    let platforms: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let spec = f.spec_for("further", &platforms);
    let cache = f.t.path().join("cache");
    for (platform, arch, qemu, machine) in cases {
        let tarball = f.t.path().join(format!("bundle-{arch}.tar.gz"));
        ok(&mut export_bundle(&spec, &cache, platform, &tarball));
        let dir = f.t.path().join(format!("x-{arch}"));
        std::fs::create_dir_all(&dir).unwrap();
        ok(Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&dir));
        let prog = dir.join("netshoot/bin/nshello");
        let kind = ok(Command::new("file").arg("-b").arg(&prog));
        assert!(
            kind.contains(machine)
                && (kind.contains("statically linked") || kind.contains("static-pie linked"))
                && !kind.contains("interpreter"),
            "{platform}: {kind}"
        );
        let out = ok(Command::new(qemu).arg(&prog));
        assert_eq!(out.trim(), "hello from the Debian patch", "{platform}");
        if platform == "linux/arm/v7" {
            // ARMv7-A with VFPv3-D16, no NEON: Debian armhf's baseline.
            let attrs = ok(Command::new("readelf").arg("-A").arg(&prog));
            assert!(
                attrs.contains("Tag_CPU_arch: v7") && !attrs.contains("NEON"),
                "{attrs}"
            );
        }
    }
}

#[test]
fn bundle_runs_alone_in_an_empty_container() {
    let f = fixture();
    let spec = f.spec("b");
    let cache = f.t.path().join("cache");
    let tarball = f.t.path().join("bundle.tar.gz");
    ok(&mut export_bundle(&spec, &cache, "linux/amd64", &tarball));
    let listing = ok(Command::new("tar").arg("-tvzf").arg(&tarball));
    assert!(listing.contains("netshoot/bin/nshello"), "{listing}");
    assert!(listing.contains("netshoot/bin/hi -> nshello"), "{listing}");
    assert!(
        listing.contains("netshoot/etc/ssl/certs/ca-certificates.crt"),
        "{listing}"
    );
    assert!(!listing.contains("/usr/"), "{listing}");

    // A container whose root holds the bundle and nothing else.
    let bundle_dir = scratch_bundle(&tarball, f.t.path());
    let out = runc_run(&bundle_dir, "nsb-bundle-fixture", &["/netshoot/bin/hi"]);
    assert!(out.contains("hello from the Debian patch"), "{out}");

    // An existing archive is kept when a later export fails.
    let before = std::fs::read(&tarball).unwrap();
    let r = run(&mut export_bundle(&spec, &cache, "linux/s390x", &tarball));
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains("linux/s390x"), "{err}");
    assert_eq!(std::fs::read(&tarball).unwrap(), before);
}

#[test]
fn tampered_or_missing_source_files() {
    let f = fixture();
    let spec = f.spec("t");
    // Lock against the genuine archive.
    ok(bin()
        .env_remove("NETSHOOT_MIRROR_TEST")
        .args(["lock", "--spec"])
        .arg(&spec));
    let out = f.t.path().join("layout");
    for (n, name) in [
        "nshello_1.0.orig.tar.gz",
        "nshello_1.0-1.dsc",
        "nshello_1.0-1.debian.tar.xz",
    ]
    .iter()
    .enumerate()
    {
        let path = f.pool_file(name);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x20;
        let _swap = Swap::write(&path, &bytes);
        let r = run(&mut build(
            &spec,
            &out,
            &f.t.path().join(format!("cache-t{n}")),
            &["--locked"],
        ));
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(3), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains(name) && err.contains("signed Sources index"),
            "{err}"
        );
        assert!(!out.exists(), "a layout was written despite {name}");
    }
    // An edited lock: a file's pin swapped for another file of the pool
    // (which the mirror serves, with that very digest).
    let lock_path = spec.with_extension("lock");
    let original = std::fs::read(&lock_path).unwrap();
    let mut lock: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let other = std::fs::read(f.pool_file("nshello_1.0-1.debian.tar.xz")).unwrap();
    for entry in lock["sources"].as_object_mut().unwrap().values_mut() {
        for file in entry["files"].as_array_mut().unwrap() {
            if file["name"].as_str().unwrap().ends_with(".orig.tar.gz") {
                file["sha256"] = sha256_hex(&other).into();
                file["size"] = other.len().into();
            }
        }
    }
    let _edited = Swap::write(&lock_path, &serde_json::to_vec_pretty(&lock).unwrap());
    let r = run(&mut build(
        &spec,
        &out,
        &f.t.path().join("cache-edited"),
        &["--locked"],
    ));
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{err}");
    assert!(
        err.contains("lock entry for source") && err.contains("signed Sources index"),
        "{err}"
    );
    assert!(!out.exists());
    drop(_edited);
    // A mirror without the .dsc: the signed index's record stands in.
    let _gone = Swap::remove(&f.pool_file("nshello_1.0-1.dsc"));
    let r = run(&mut build(
        &spec,
        &out,
        &f.t.path().join("cache-nodsc"),
        &["--locked", "--platform", "linux/amd64"],
    ));
    let log = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{log}");
    assert!(log.contains("has no nshello_1.0-1.dsc"), "{log}");
    assert!(out.join("index.json").is_file());
}
