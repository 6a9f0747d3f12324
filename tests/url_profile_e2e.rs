//! `url` sources pinned by the lockfile on first download (as go.sum pins
//! modules), and profiles the default build leaves out: served from a
//! loopback server, checked with sha256sum, skopeo and umoci.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Fixture {
    _t: tempfile::TempDir,
    dir: PathBuf,
    server: FileServer,
    spec: PathBuf,
    calico_amd64: Vec<u8>,
    calico_arm64: Vec<u8>,
    grpcurl: Vec<u8>,
    grpcurl_tgz: Vec<u8>,
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let server = FileServer::start();
    let hello = hello_binary(&dir);
    // The fixture spec (hello pinned in the spec itself), plus two
    // entries in profile "full" that pin nothing in the spec.
    let spec = write_fixture_spec(&dir, &server, &hello);
    let calico_amd64 = b"#!/bin/sh\necho calicoctl amd64\n".to_vec();
    let calico_arm64 = b"#!/bin/sh\necho calicoctl arm64\n".to_vec();
    let grpcurl = b"#!/bin/sh\necho grpcurl\n".to_vec();
    let grpcurl_tgz = tar_gz(&dir, "grpcurl", &grpcurl);
    let ca = server.put("/calicoctl-linux-amd64", calico_amd64.clone());
    let cr = server.put("/calicoctl-linux-arm64", calico_arm64.clone());
    let g = server.put("/grpcurl.tar.gz", grpcurl_tgz.clone());
    let mut text = std::fs::read_to_string(&spec).unwrap();
    text.push_str(&format!(
        r#"
[[url]]
name = "calicoctl"
dest = "/usr/local/bin/calicoctl"
profile = "full"
[url.platform."linux/amd64"]
url = "{ca}"
[url.platform."linux/arm64"]
url = "{cr}"

[[url]]
name = "grpcurl"
dest = "/usr/local/bin/grpcurl"
profile = "full"
[url.platform."linux/amd64"]
url = "{g}"
path = "grpcurl"
[url.platform."linux/arm64"]
url = "{g}"
path = "grpcurl"
"#
    ));
    std::fs::write(&spec, text).unwrap();
    Fixture {
        _t: t,
        dir,
        server,
        spec,
        calico_amd64,
        calico_arm64,
        grpcurl,
        grpcurl_tgz,
    }
}

fn nb(f: &Fixture, args: &[&str], cache: &str) -> Output {
    run(bin()
        .args(args)
        .arg("--spec")
        .arg(&f.spec)
        .arg("--cache")
        .arg(f.dir.join(cache)))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn lock_json(f: &Fixture) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(f.spec.with_extension("lock")).unwrap()).unwrap()
}

fn amd64_rootfs(layout: &Path, work: &Path) -> PathBuf {
    std::fs::create_dir_all(work).unwrap();
    umoci_bundle(layout, "test", work).join("rootfs")
}

#[test]
fn default_build_leaves_the_profile_out_and_says_so() {
    let f = fixture();
    let out = f.dir.join("out");
    let o = nb(&f, &["build", "--out", out.to_str().unwrap()], "cache");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("left out (profile full): calicoctl, grpcurl; add them with --profile full"),
        "{err}"
    );
    // The profile's downloads were not even fetched.
    for data in [&f.calico_amd64, &f.calico_arm64, &f.grpcurl_tgz] {
        let blob = f.dir.join("cache/blobs/sha256").join(sha256_hex(data));
        assert!(!blob.exists(), "{} was downloaded", blob.display());
    }
    assert!(!err.contains("calicoctl (linux"), "{err}");
    let rootfs = amd64_rootfs(&out, &f.dir.join("u"));
    assert!(rootfs.join("usr/local/bin/hello").is_file());
    assert!(!rootfs.join("usr/local/bin/calicoctl").exists());
    assert!(!rootfs.join("usr/local/bin/grpcurl").exists());
    // Nothing needed a pin, so no lockfile was written.
    assert!(!f.spec.with_extension("lock").exists());

    // An unknown profile is one clear error naming it and the known ones.
    let o = nb(
        &f,
        &[
            "build",
            "--out",
            out.to_str().unwrap(),
            "--profile",
            "fulll",
        ],
        "cache",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--profile fulll") && err.contains("profiles: full"),
        "{err}"
    );
}

#[test]
fn lock_pins_on_first_download_and_builds_verify_the_pin() {
    let f = fixture();
    let out = f.dir.join("out");
    let lock_path = f.spec.with_extension("lock");

    // --locked without a lockfile: one line that says what to run.
    let locked_full = [
        "build",
        "-q",
        "--locked",
        "--profile",
        "full",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = nb(&f, &locked_full, "cache");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("netshoot-build lock") && err.contains("--profile full"),
        "{err}"
    );
    assert!(!out.exists());

    // `lock` without the profile pins nothing of it...
    let o = nb(&f, &["lock"], "cache");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(lock_json(&f).get("url").is_none());
    // ...so a --locked build with the profile names the unpinned download.
    let o = nb(&f, &locked_full, "cache");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("url \"calicoctl\"") && err.contains("--profile full"),
        "{err}"
    );
    assert!(!out.exists());

    // `lock --profile full` records what sha256sum says of the served bytes.
    let o = nb(&f, &["lock", "--profile", "full"], "cache");
    assert!(o.status.success(), "{}", stderr(&o));
    let l = lock_json(&f);
    assert_eq!(
        l["url"]["calicoctl"]["linux/amd64"]["sha256"],
        sha256_hex(&f.calico_amd64)
    );
    assert_eq!(
        l["url"]["calicoctl"]["linux/arm64"]["sha256"],
        sha256_hex(&f.calico_arm64)
    );
    assert_eq!(
        l["url"]["grpcurl"]["linux/amd64"]["sha256"],
        sha256_hex(&f.grpcurl_tgz)
    );
    assert_eq!(
        l["url"]["calicoctl"]["linux/amd64"]["size"],
        f.calico_amd64.len() as u64
    );
    // A relock without the profile keeps those pins.
    let o = nb(&f, &["lock"], "cache");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lock_json(&f)["url"], l["url"]);

    // Built with the profile: the files are the served bytes.
    let o = nb(
        &f,
        &[
            "build",
            "-q",
            "--locked",
            "--profile",
            "full",
            "--out",
            out.to_str().unwrap(),
        ],
        "cache",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("left out"), "{}", stderr(&o));
    let rootfs = amd64_rootfs(&out, &f.dir.join("u"));
    assert_eq!(
        std::fs::read(rootfs.join("usr/local/bin/calicoctl")).unwrap(),
        f.calico_amd64
    );
    assert_eq!(
        std::fs::read(rootfs.join("usr/local/bin/grpcurl")).unwrap(),
        f.grpcurl
    );

    // The release is replaced upstream under the same URL: a build with a
    // cold cache refuses it (exit 3) and leaves the layout and lock as they were.
    let lock_before = std::fs::read(&lock_path).unwrap();
    let layout_before = snapshot(&out);
    f.server.put(
        "/calicoctl-linux-amd64",
        b"#!/bin/sh\necho swapped\n".to_vec(),
    );
    let o = nb(
        &f,
        &[
            "build",
            "-q",
            "--profile",
            "full",
            "--out",
            out.to_str().unwrap(),
        ],
        "cold-cache",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("calicoctl") && err.contains("sha256"), "{err}");
    assert_eq!(std::fs::read(&lock_path).unwrap(), lock_before);
    assert_eq!(snapshot(&out), layout_before);
}

#[test]
fn a_build_pins_a_new_download_into_the_lock() {
    let f = fixture();
    let out = f.dir.join("out");
    // Without --locked the first build downloads, pins and records.
    let o = nb(
        &f,
        &["build", "--profile", "full", "--out", out.to_str().unwrap()],
        "cache",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let l = lock_json(&f);
    assert_eq!(
        l["url"]["calicoctl"]["linux/arm64"]["sha256"],
        sha256_hex(&f.calico_arm64)
    );
    assert_eq!(
        l["url"]["grpcurl"]["linux/arm64"]["sha256"],
        sha256_hex(&f.grpcurl_tgz)
    );
    // A changed URL in the spec is a new pin, not a mismatch.
    let moved = f.server.put(
        "/v2/calicoctl-linux-amd64",
        b"#!/bin/sh\necho v2\n".to_vec(),
    );
    let text = std::fs::read_to_string(&f.spec).unwrap().replace(
        &format!("http://127.0.0.1:{}/calicoctl-linux-amd64", f.server.port),
        &moved,
    );
    std::fs::write(&f.spec, text).unwrap();
    let o = nb(
        &f,
        &["build", "--profile", "full", "--out", out.to_str().unwrap()],
        "cache",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let l2 = lock_json(&f);
    assert_eq!(l2["url"]["calicoctl"]["linux/amd64"]["url"], moved.as_str());
    assert_eq!(
        l2["url"]["calicoctl"]["linux/amd64"]["sha256"],
        sha256_hex(b"#!/bin/sh\necho v2\n")
    );
    assert_eq!(
        l2["url"]["calicoctl"]["linux/arm64"],
        l["url"]["calicoctl"]["linux/arm64"]
    );
}
