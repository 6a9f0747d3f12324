//! End-to-end tests of `push` and `pull`: the real binary against the real
//! `docker-registry` (distribution 2.8) on loopback, read back by skopeo,
//! podman and our own pull; archives carried to a second registry; and the
//! failures a user meets (unreachable registry, bad input).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the fixture image into `t/out`; returns the layout folder and
/// the digest of its index, computed with sha256sum from `index.json`.
fn build_fixture(t: &Path, server: &FileServer) -> (PathBuf, String) {
    let hello = hello_binary(t);
    let spec = write_fixture_spec(t, server, &hello);
    let out = t.join("out");
    let printed = ok(bin()
        .args(["build", "-q", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(t.join("cache")));
    let digest = layout_tag_digest(&out, "test");
    assert_eq!(printed.trim(), digest);
    (out, digest)
}

/// `skopeo inspect --raw` of a registry reference.
fn skopeo_raw(reference: &str) -> Vec<u8> {
    let out = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}")));
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every blob of a layout with its content.
fn blobs(layout: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    snapshot(&layout.join("blobs"))
}

/// The architectures an index lists, in order.
fn architectures(index: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(index).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_string())
        .collect()
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn push_is_read_back_by_skopeo_podman_and_pull() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let (out, digest) = build_fixture(t.path(), &server);
    let reg = TestRegistry::start();
    let name = format!("{}/team/netshoot", reg.host);

    // The push prints REF@digest, the digest of the layout's index.
    let pushed = run(bin()
        .args(["push", "--layout"])
        .arg(&out)
        .arg(format!("{name}:v1"))
        .args(["--tag", "v1.0"]));
    assert!(pushed.status.success(), "{}", stderr_of(&pushed));
    assert_eq!(
        String::from_utf8_lossy(&pushed.stdout),
        format!("{name}@{digest}\n")
    );
    // Every config and layer was sent, and the SBOM documents with their
    // empty config (all blobs less the index, the two image manifests and
    // the four SBOM artifact manifests), none was there before.
    let blob_count = blobs(&out).len() - 3 - 4;
    assert_eq!(referrer_blobs(&out).len(), 4 + 4 + 1);
    let summary = stderr_of(&pushed);
    assert!(
        summary.contains(&format!("pushed {blob_count} blobs ("))
            && summary.contains("), 0 already present, 0 mounted; tags: v1, v1.0"),
        "{summary}"
    );

    // skopeo sees the byte-identical index under both tags.
    let index = std::fs::read(out.join("blobs/sha256").join(&digest[7..])).unwrap();
    assert_eq!(skopeo_raw(&format!("{name}:v1")), index);
    assert_eq!(skopeo_raw(&format!("{name}:v1.0")), index);
    assert_eq!(architectures(&index), ["amd64", "arm64"]);

    // skopeo copies every platform back with identical blobs.
    let back = t.path().join("skopeo-back");
    ok(Command::new("skopeo")
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{name}:v1"))
        .arg(format!("oci:{}:v1", back.display())));
    assert_eq!(blobs(&back), image_blobs(&out));
    assert_eq!(layout_tag_digest(&back, "v1"), digest);

    // Our pull gives the same blobs and the same index under the tag.
    let pulled = t.path().join("pulled");
    let said = ok(bin()
        .args(["pull", "-q"])
        .arg(format!("{name}:v1"))
        .arg("--out")
        .arg(&pulled));
    assert_eq!(said, format!("{name}@{digest}\n"));
    assert_eq!(blobs(&pulled), image_blobs(&out));
    assert_eq!(layout_tag_digest(&pulled, "v1"), digest);

    // podman pulls it from the registry and runs it.
    let podman = Podman::new(&t.path().join("podman"));
    ok(podman
        .cmd()
        .args(["pull", "-q", "--tls-verify=false"])
        .arg(format!("{name}:v1")));
    let ran = ok(podman
        .cmd()
        .args(["run", "--rm", "--network", "none"])
        .arg(format!("{name}:v1")));
    assert_eq!(ran, "hello from a url source\nwelcome to netshoot\n");

    // A second push sends no blob bytes: the summary says so, and the
    // request trace shows no upload at all, only HEADs.
    let again = run(bin()
        .env("NETSHOOT_REGISTRY_TRACE", "1")
        .args(["push", "--layout"])
        .arg(&out)
        .arg(format!("{name}:v1")));
    assert!(again.status.success(), "{}", stderr_of(&again));
    let err = stderr_of(&again);
    assert!(
        err.contains(&format!(
            "pushed 0 blobs (0 B), {blob_count} already present, 0 mounted"
        )),
        "{err}"
    );
    assert!(!err.contains("blobs/uploads"), "{err}");
    let heads = err
        .lines()
        .filter(|l| l.starts_with("registry: HEAD ") && l.contains("/blobs/sha256:"))
        .count();
    assert_eq!(heads, blob_count, "{err}");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        format!("{name}@{digest}\n")
    );

    // --platform: a new index listing only arm64, under its own digest.
    let arm = ok(bin()
        .args(["push", "-q", "--platform", "linux/arm64", "--layout"])
        .arg(&out)
        .arg(format!("{name}:arm")));
    let arm_index = skopeo_raw(&format!("{name}:arm"));
    assert_eq!(architectures(&arm_index), ["arm64"]);
    assert_eq!(arm, format!("{name}@sha256:{}\n", sha256_hex(&arm_index)));
    assert_ne!(arm.trim(), format!("{name}@{digest}"));
}

#[test]
fn archives_carry_the_image_to_a_second_registry() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let (out, digest) = build_fixture(t.path(), &server);
    // The far side of the air gap.
    let reg = TestRegistry::start();
    let name = format!("{}/mirror/netshoot", reg.host);

    // oci-archive: every platform, same digests after push and pull.
    let oci = t.path().join("netshoot.oci.tar");
    ok(bin()
        .args(["export", "--format", "oci", "--layout"])
        .arg(&out)
        .arg("-o")
        .arg(&oci));
    let pushed = ok(bin()
        .args(["push", "-q", "--archive"])
        .arg(&oci)
        .arg(format!("{name}:v1")));
    assert_eq!(pushed, format!("{name}@{digest}\n"));
    let pulled = t.path().join("pulled");
    ok(bin()
        .args(["pull", "-q"])
        .arg(format!("{name}@{digest}"))
        .args(["--tag", "v1", "--out"])
        .arg(&pulled));
    assert_eq!(layout_tag_digest(&pulled, "v1"), digest);
    assert_eq!(blobs(&pulled), image_blobs(&out));

    // docker-archive: one platform; the registry gets its manifest, byte
    // for byte the amd64 manifest of the layout, and its blobs.
    let docker = t.path().join("netshoot.docker.tar");
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
        .arg(&docker));
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("blobs/sha256").join(&digest[7..])).unwrap(),
    )
    .unwrap();
    let amd = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
    let pushed = ok(bin()
        .args(["push", "-q", "--archive"])
        .arg(&docker)
        .arg(format!("{name}:amd64")));
    assert_eq!(pushed, format!("{name}@{amd}\n"));
    let manifest = skopeo_raw(&format!("{name}:amd64"));
    assert_eq!(
        manifest,
        std::fs::read(out.join("blobs/sha256").join(&amd[7..])).unwrap()
    );
    let single = t.path().join("single");
    ok(bin()
        .args(["pull", "-q"])
        .arg(format!("{name}:amd64"))
        .arg("--out")
        .arg(&single));
    for (p, data) in blobs(&single) {
        assert_eq!(blobs(&out).get(&p), Some(&data), "blob {p:?}");
    }
}

#[test]
fn failures_exit_with_their_class_and_one_line() {
    let t = tempfile::tempdir().unwrap();
    // A minimal valid layout is enough to reach the network.
    let layout = t.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let chex = sha256_hex(config);
    std::fs::write(layout.join("blobs/sha256").join(&chex), config).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{chex}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let mhex = sha256_hex(manifest.as_bytes());
    std::fs::write(layout.join("blobs/sha256").join(&mhex), &manifest).unwrap();
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{mhex}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"x"}}}}]}}"#,
            manifest.len()
        ),
    )
    .unwrap();

    let fails = |args: &[&str], code: i32, culprit: &str| {
        let o = run(bin().args(args));
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        // Retries are said one line each, as progress; the failure
        // itself is one line.
        assert_eq!(
            err.trim_end()
                .lines()
                .filter(|l| !l.starts_with("retrying "))
                .count(),
            1,
            "{args:?}: not one line: {err}"
        );
        assert!(
            err.contains(culprit),
            "{args:?}: {err:?} does not name {culprit:?}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(o.stdout.is_empty(), "{args:?} printed {:?}", o.stdout);
    };
    let lay = layout.to_str().unwrap();

    // Nothing listens on this loopback port: a network failure (exit 4)
    // naming the registry, after bounded retries.
    let closed = format!("127.0.0.1:{}", free_loopback_port());
    let started = std::time::Instant::now();
    fails(
        &["push", "--layout", lay, &format!("{closed}/x:v1")],
        4,
        &closed,
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // A pull from it fails the same way and leaves no folder behind.
    let dest = t.path().join("never");
    fails(
        &[
            "pull",
            &format!("{closed}/x:v1"),
            "--out",
            dest.to_str().unwrap(),
        ],
        4,
        &closed,
    );
    assert!(!dest.exists());

    // Bad input (exit 2): a missing layout, a missing archive, a
    // malformed reference; none of them touches the network.
    let missing = t.path().join("no-such-layout");
    fails(
        &[
            "push",
            "--layout",
            missing.to_str().unwrap(),
            &format!("{closed}/x:v1"),
        ],
        2,
        "no-such-layout",
    );
    fails(
        &[
            "push",
            "--archive",
            "/nonexistent/a.tar",
            &format!("{closed}/x:v1"),
        ],
        2,
        "/nonexistent/a.tar",
    );
    fails(
        &["push", "--layout", lay, "127.0.0.1:5000/Team/Netshoot:v1"],
        2,
        "Team/Netshoot",
    );
    fails(
        &["push", "--layout", lay, "127.0.0.1:5000/x:bad tag"],
        2,
        "bad tag",
    );
    fails(
        &["pull", "127.0.0.1:5000/x@sha256:12", "--out", lay],
        2,
        "sha256:12",
    );
    fails(
        &[
            "push",
            "--layout",
            lay,
            "--platform",
            "linux/s390x",
            &format!("{closed}/x:v1"),
        ],
        2,
        "linux/s390x",
    );
}
