//! End-to-end tests of `build`, `export` and `inspect` against the real
//! consumers of an OCI image: skopeo, umoci + runc, podman, oci-image-tool.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn build(spec: &Path, out: &Path, cache: &Path) -> String {
    ok(bin()
        .args(["build", "-q", "--spec"])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(cache))
    .trim()
    .to_string()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

#[test]
fn skopeo_reads_the_index_and_round_trips_archives() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let hello = hello_binary(t.path());
    let spec = write_fixture_spec(t.path(), &server, &hello);
    let out = t.path().join("out/netshoot");
    let digest = build(&spec, &out, &t.path().join("cache"));

    // The index skopeo finds under the tag is byte-for-byte the blob the
    // build reported, and its digest is what sha256sum says.
    let raw = ok(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:test", out.display())));
    assert_eq!(raw.as_bytes(), &blob(&out, &digest)[..]);
    assert_eq!(format!("sha256:{}", sha256_hex(raw.as_bytes())), digest);
    let idx: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let plats: Vec<String> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(plats, ["amd64", "arm64"]);

    // Every manifest, config and the index pass oci-image-tool (which
    // cannot read a nested index in a layout, so each blob is checked).
    let check = |kind: &str, d: &str| {
        ok(Command::new("oci-image-tool")
            .args(["validate", "--type", kind])
            .arg(
                out.join("blobs/sha256")
                    .join(d.trim_start_matches("sha256:")),
            ));
    };
    check("imageIndex", &digest);
    for m in idx["manifests"].as_array().unwrap() {
        let md = m["digest"].as_str().unwrap();
        check("manifest", md);
        let man: serde_json::Value = serde_json::from_slice(&blob(&out, md)).unwrap();
        check("config", man["config"]["digest"].as_str().unwrap());
        let cfg: serde_json::Value =
            serde_json::from_slice(&blob(&out, man["config"]["digest"].as_str().unwrap())).unwrap();
        assert_eq!(cfg["created"], "1970-01-01T00:00:00Z");
        assert_eq!(cfg["config"]["WorkingDir"], "/root");
        assert_eq!(
            cfg["rootfs"]["diff_ids"].as_array().unwrap().len(),
            man["layers"].as_array().unwrap().len()
        );
        assert_eq!(
            cfg["history"].as_array().unwrap().len(),
            man["layers"].as_array().unwrap().len()
        );
    }
    // The validator is not a rubber stamp: a manifest with a bad mediaType fails.
    let bad = t.path().join("bad-manifest.json");
    std::fs::write(&bad, br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/x","digest":"sha256:00","size":-1},"layers":[]}"#).unwrap();
    let r = run(Command::new("oci-image-tool")
        .args(["validate", "--type", "manifest"])
        .arg(&bad));
    assert!(
        !r.status.success(),
        "oci-image-tool accepted a broken manifest"
    );

    // skopeo copy --all into an oci-archive and back keeps every digest.
    let archive = t.path().join("copy.tar");
    ok(Command::new("skopeo")
        .args(["copy", "--all"])
        .arg(format!("oci:{}:test", out.display()))
        .arg(format!("oci-archive:{}", archive.display())));
    let back = t.path().join("back");
    ok(Command::new("skopeo")
        .args(["copy", "--all"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("oci:{}:test", back.display())));
    let raw_back = ok(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:test", back.display())));
    assert_eq!(raw_back, raw);
    // skopeo copies the tagged image, not the SBOM artifacts that refer to
    // it (tests/sbom_e2e.rs follows those); every other blob comes back.
    assert_eq!(referrer_blobs(&out).len(), 2 * 2 * 2 + 1, "SBOM artifacts");
    for (p, data) in image_blobs(&out) {
        assert_eq!(
            std::fs::read(back.join("blobs").join(&p)).ok().as_ref(),
            Some(&data),
            "blob {p:?} differs after the round trip"
        );
    }

    // Our own oci export, read by skopeo, gives the same index too.
    let ours = t.path().join("ours.tar");
    ok(bin()
        .args(["export", "--format", "oci", "--layout"])
        .arg(&out)
        .arg("-o")
        .arg(&ours));
    let raw_ours = ok(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}:test", ours.display())));
    assert_eq!(raw_ours, raw);

    // inspect --json names both platforms and the layers with sizes.
    let js: serde_json::Value = serde_json::from_str(&ok(bin()
        .args(["inspect", "--json", "--sizes", "--layout"])
        .arg(&out)))
    .unwrap();
    assert_eq!(js["digest"], digest.as_str());
    assert_eq!(js["images"].as_array().unwrap().len(), 2);
    let l0 = &js["images"][0]["layers"][0];
    assert!(l0["uncompressed_size"].as_u64().unwrap() > l0["size"].as_u64().unwrap() / 2);
}

#[test]
fn runc_runs_the_url_binary_and_reads_the_local_file() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let hello = hello_binary(t.path());
    let spec = write_fixture_spec(t.path(), &server, &hello);
    let out = t.path().join("out/netshoot");
    build(&spec, &out, &t.path().join("cache"));
    let bundle = umoci_bundle(&out, "test", t.path());
    let rootfs = bundle.join("rootfs");
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(rootfs.join("usr/local/bin/hello")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o755);
    assert_eq!((md.uid(), md.gid()), (0, 0));
    let out = runc_run(
        &bundle,
        "nsb-e2e-hello",
        &["/usr/local/bin/hello", "/etc/motd"],
    );
    assert_eq!(out, "hello from a url source\nwelcome to netshoot\n");
}

#[test]
fn podman_loads_the_docker_export_and_runs_it() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let hello = hello_binary(t.path());
    let spec = write_fixture_spec(t.path(), &server, &hello);
    let out = t.path().join("out/netshoot");
    build(&spec, &out, &t.path().join("cache"));
    let archive = t.path().join("netshoot-docker.tar");
    ok(bin()
        .args([
            "export",
            "--format",
            "docker",
            "--platform",
            "linux/amd64",
            "--layout",
        ])
        .arg(&out)
        .arg("-o")
        .arg(&archive));
    // skopeo reads it as a docker-archive...
    let cfg = ok(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{}", archive.display())));
    assert!(cfg.contains("\"amd64\""), "{cfg}");
    // ...and podman loads and runs it.
    let podman = Podman::new(&t.path().join("podman"));
    let loaded = ok(podman.cmd().args(["load", "-i"]).arg(&archive));
    assert!(loaded.contains("netshoot:test"), "{loaded}");
    let ran = ok(podman.cmd().args([
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/netshoot:test",
    ]));
    assert_eq!(ran, "hello from a url source\nwelcome to netshoot\n");
}

#[test]
fn two_builds_in_different_conditions_give_the_same_index() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let hello = hello_binary(t.path());
    let mut digests = Vec::new();
    for (i, (umask, tz, lang, jobs)) in [
        ("022", "UTC", "C", "1"),
        ("077", "Asia/Tokyo", "de_DE.UTF-8", "4"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = t.path().join(format!("checkout-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        // Lay the sources out under the umask, as a checkout would.
        let script = format!(
            "umask {umask}; cp {} {}/hello-copy",
            hello.display(),
            dir.display()
        );
        ok(Command::new("sh").arg("-c").arg(&script));
        let spec = write_fixture_spec(&dir, &server, &dir.join("hello-copy"));
        let out = dir.join("out");
        let cmd = format!(
            "umask {umask}; exec {} build -q -j {jobs} --spec {} --out {} --cache {}",
            env!("CARGO_BIN_EXE_netshoot-build"),
            spec.display(),
            out.display(),
            dir.join("cache").display()
        );
        let d = ok(Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(&dir)
            .env("TZ", tz)
            .env("LC_ALL", lang)
            .env("LANG", lang));
        digests.push(d.trim().to_string());
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(digests[0], digests[1]);
    // And SOURCE_DATE_EPOCH does change it (the setting is honoured).
    let dir = t.path().join("checkout-0");
    let d = ok(bin()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "-q", "--spec"])
        .arg(dir.join("netshoot.toml"))
        .arg("--out")
        .arg(t.path().join("epoch-out"))
        .arg("--cache")
        .arg(dir.join("cache")));
    assert_ne!(d.trim(), digests[0]);
    let raw = ok(Command::new("skopeo")
        .args(["inspect", "--config", "--override-arch", "amd64"])
        .arg(format!("oci:{}:test", t.path().join("epoch-out").display())));
    assert!(raw.contains("2023-11-14T22:13:20Z"), "{raw}");
}

/// Runs a build that must fail; checks one line on stderr naming `culprit`
/// and that the previous output is byte-for-byte unchanged.
fn assert_fails_cleanly(args: &[&str], spec: &Path, out: &Path, cache: &Path, culprit: &str) {
    let before = snapshot(out);
    let r = run(bin()
        .args(["build", "-q", "--spec"])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(cache)
        .args(args));
    let stderr = String::from_utf8_lossy(&r.stderr).to_string();
    assert!(
        !r.status.success(),
        "build succeeded but should fail on {culprit}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(
        stderr.contains(culprit),
        "{stderr:?} does not name {culprit:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(snapshot(out), before, "the previous output changed");
    // No staging folder is left beside the output.
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_input_fails_with_one_line_and_leaves_the_output() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let hello = hello_binary(t.path());
    let spec = write_fixture_spec(t.path(), &server, &hello);
    let out = t.path().join("out/netshoot");
    let cache = t.path().join("cache");
    build(&spec, &out, &cache);
    let text = std::fs::read_to_string(&spec).unwrap();
    let variant = |name: &str, body: String| {
        let p = t.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };

    // A url whose content does not match its pin (served, but changed).
    // The amd64 archive is the one changed: the arm64 pin is the bare
    // binary, which the content-addressed cache rightly already holds once
    // the amd64 archive was unpacked.
    let url = server.put("/changed", b"not what was pinned".to_vec());
    let tampered = text.replace(
        &format!("http://127.0.0.1:{}/hello-amd64.tar.gz", server.port),
        &url,
    );
    let s = variant("tampered.toml", tampered);
    assert_fails_cleanly(&[], &s, &out, &t.path().join("cache2"), "/changed");
    let r = run(bin()
        .args(["build", "-q", "--spec"])
        .arg(&s)
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(t.path().join("cache2")));
    assert_eq!(
        r.status.code(),
        Some(3),
        "a digest mismatch is a verification failure"
    );

    // A missing local file.
    let s = variant("missing.toml", text.replace("files/motd", "files/nope"));
    assert_fails_cleanly(&[], &s, &out, &cache, "files/nope");

    // A malformed spec: an unknown key, and a syntax error.
    let s = variant("unknown-key.toml", text.replace("workdir =", "wrokdir ="));
    assert_fails_cleanly(&[], &s, &out, &cache, "wrokdir");
    let s = variant("syntax.toml", text.replace("[image]", "[image"));
    assert_fails_cleanly(&[], &s, &out, &cache, "syntax.toml");

    // An unknown platform, in the spec and on the command line.
    let s = variant(
        "platform.toml",
        text.replace("linux/arm64\"]", "linux/mips\"]"),
    );
    assert_fails_cleanly(&[], &s, &out, &cache, "linux/mips");
    assert_fails_cleanly(
        &["--platform", "linux/s390x"],
        &spec,
        &out,
        &cache,
        "linux/s390x",
    );

    // And the earlier output still builds to the same digest.
    let r = run(bin()
        .args(["build", "-q", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(t.path().join("fresh"))
        .arg("--cache")
        .arg(&cache));
    assert!(r.status.success());
}

#[test]
fn rebuild_into_the_same_folder_keeps_other_tags_and_reuses_blobs() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let hello = hello_binary(t.path());
    let spec = write_fixture_spec(t.path(), &server, &hello);
    let out = t.path().join("out/netshoot");
    let cache = t.path().join("cache");
    let d1 = build(&spec, &out, &cache);
    let fetches = server.requests.load(std::sync::atomic::Ordering::Relaxed);
    let d2 = ok(bin()
        .args(["build", "-q", "--tag", "v2", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(&cache));
    assert_eq!(d1, d2.trim());
    // The warm cache served the downloads.
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::Relaxed),
        fetches
    );
    for tag in ["test", "v2"] {
        ok(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:{tag}", out.display())));
    }
}

#[test]
fn oci_labels_come_from_the_tag_the_epoch_git_and_the_command_line() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let hello = hello_binary(t.path());
    let repo = t.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let spec = write_fixture_spec(&repo, &server, &hello);
    let git = |args: &[&str]| {
        ok(Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args))
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "spec"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://ci:secret@registry.example.com/team/netshoot-build.git",
    ]);
    let head = git(&["rev-parse", "HEAD"]).trim().to_string();
    let out = t.path().join("out");
    ok(bin()
        .args(["build", "-q", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(t.path().join("cache"))
        .args([
            "--label",
            "org.opencontainers.image.licenses=MIT AND Apache-2.0",
        ])
        .env("SOURCE_DATE_EPOCH", "1764288000"));
    let cfg = ok(Command::new("skopeo")
        .args(["inspect", "--config", "--override-arch", "arm64"])
        .arg(format!("oci:{}:test", out.display())));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    let l = &cfg["config"]["Labels"];
    let p = "org.opencontainers.image.";
    // From the spec, kept.
    assert_eq!(l[format!("{p}title")], "netshoot", "{l}");
    // Filled in: the tag, SOURCE_DATE_EPOCH (2025-11-28), git HEAD and the
    // origin without its credentials.
    assert_eq!(l[format!("{p}version")], "test", "{l}");
    assert_eq!(l[format!("{p}created")], "2025-11-28T00:00:00Z", "{l}");
    assert_eq!(cfg["created"], "2025-11-28T00:00:00Z");
    assert_eq!(l[format!("{p}revision")], head.as_str(), "{l}");
    assert_eq!(
        l[format!("{p}source")],
        "https://registry.example.com/team/netshoot-build",
        "{l}"
    );
    // The command line wins.
    assert_eq!(l[format!("{p}licenses")], "MIT AND Apache-2.0", "{l}");
    assert!(!cfg.to_string().contains("secret"));
}
