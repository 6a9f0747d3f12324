//! SBOM artifacts of a built layout: printed by `netshoot-build sbom`,
//! carried by `push` to a real docker-registry 2.8 (no referrers API) and
//! found there through the `sha256-<digest>` tag fallback with skopeo.

mod common;
use common::*;
use std::process::Command;

fn skopeo_raw(reference: &str) -> serde_json::Value {
    let out = ok(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(reference));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{reference}: {e}: {out}"))
}

#[test]
fn sboms_are_printed_pushed_and_found_through_the_tag_fallback() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let hello = hello_binary(t.path());
    let spec = write_fixture_spec(t.path(), &server, &hello);
    let out = t.path().join("out");
    ok(bin()
        .args(["build", "-q", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(t.path().join("cache")));
    let index_digest = layout_tag_digest(&out, "test");
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            out.join("blobs/sha256")
                .join(index_digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let arm64 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // `sbom` prints each format for a platform; the url download is in it
    // with the sha256 that sha256sum gives for what the server served.
    let served = std::fs::read(&hello).unwrap();
    let spdx: serde_json::Value = serde_json::from_str(&ok(bin()
        .args(["sbom", "--platform", "linux/arm64", "--layout"])
        .arg(&out)))
    .unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    let pkgs = spdx["packages"].as_array().unwrap();
    let hello_pkg = pkgs
        .iter()
        .find(|p| p["name"] == "hello")
        .expect("hello in the SPDX");
    assert_eq!(
        hello_pkg["checksums"][0]["checksumValue"],
        sha256_hex(&served)
    );
    let cdx: serde_json::Value = serde_json::from_str(&ok(bin()
        .args([
            "sbom",
            "--format",
            "cyclonedx",
            "--platform",
            "linux/arm64",
            "--layout",
        ])
        .arg(&out)))
    .unwrap();
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    assert_eq!(cdx["specVersion"], "1.5");
    assert!(
        cdx.to_string().contains(&arm64),
        "the SBOM names its image: {cdx}"
    );
    // A platform the image lacks is one clear error.
    let o = run(bin()
        .args(["sbom", "--platform", "linux/s390x", "--layout"])
        .arg(&out));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );

    // Pushed to a registry without the referrers API: the referrers index
    // under the fallback tag lists both SBOMs of the arm64 image, and each
    // one's manifest has that image as its subject.
    let reg = TestRegistry::start();
    let name = format!("{}/team/netshoot", reg.host);
    ok(bin()
        .args(["push", "-q", "--layout"])
        .arg(&out)
        .arg(format!("{name}:v1")));
    let fallback = format!(
        "docker://{name}:sha256-{}",
        arm64.trim_start_matches("sha256:")
    );
    let referrers = skopeo_raw(&fallback);
    let listed = referrers["manifests"].as_array().unwrap();
    let mut types: Vec<&str> = listed
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["application/spdx+json", "application/vnd.cyclonedx+json"]
    );
    for m in listed {
        let manifest = skopeo_raw(&format!(
            "docker://{name}@{}",
            m["digest"].as_str().unwrap()
        ));
        assert_eq!(manifest["subject"]["digest"], arm64.as_str(), "{manifest}");
        // The document itself is on the registry: skopeo copies the
        // artifact into a layout and the SPDX blob is the one printed above.
        if m["artifactType"] == "application/spdx+json" {
            let copy = t.path().join("copied");
            ok(Command::new("skopeo")
                .args(["copy", "--src-tls-verify=false"])
                .arg(format!("docker://{name}@{}", m["digest"].as_str().unwrap()))
                .arg(format!("oci:{}:spdx", copy.display())));
            let doc = manifest["layers"][0]["digest"].as_str().unwrap();
            let bytes = std::fs::read(
                copy.join("blobs/sha256")
                    .join(doc.trim_start_matches("sha256:")),
            )
            .unwrap();
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
                spdx
            );
        }
    }
}
