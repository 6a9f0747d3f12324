//! The referrers tag schema against a real `docker-registry` 2.8, which
//! has no referrers API: pushing an artifact whose `subject` is a pushed
//! manifest also lists it under the tag `sha256-<subject hex>`, merging
//! with what that tag already lists; skopeo reads the result.

mod common;

use common::*;
use image_layout::layout::{MT_INDEX, MT_MANIFEST};
use image_layout::{Digest, OciLayout};
use registry::{Client, ClientOptions, CredentialSources, Reference};

fn opts() -> ClientOptions {
    ClientOptions {
        credentials: CredentialSources::default(),
        ..Default::default()
    }
}

/// Puts an artifact manifest with `subject` into `layout` and lists it
/// (untagged) in `index.json`, replacing artifacts listed before, the way
/// an SBOM or signing step adds one. Returns its digest.
fn add_artifact(
    layout: &OciLayout,
    artifact_type: &str,
    payload: &[u8],
    subject: &Digest,
    annotation: &str,
) -> Digest {
    let empty = layout.put_blob(b"{}").unwrap();
    let body = layout.put_blob(payload).unwrap();
    let subject_bytes = layout.read_blob(subject).unwrap();
    let art = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.digest.to_string(), "size": empty.size},
        "layers": [{"mediaType": artifact_type, "digest": body.digest.to_string(), "size": body.size}],
        "subject": {"mediaType": MT_MANIFEST, "digest": subject.to_string(), "size": subject_bytes.len()},
        "annotations": {"org.example.note": annotation},
    });
    let a = layout.put_json(&art).unwrap();
    let mut index: serde_json::Value = serde_json::to_value(layout.read_index().unwrap()).unwrap();
    let list = index["manifests"].as_array_mut().unwrap();
    list.retain(|m| m.get("artifactType").is_none());
    list.push(serde_json::json!({
        "mediaType": MT_MANIFEST, "digest": a.digest.to_string(), "size": a.size,
        "artifactType": artifact_type,
    }));
    layout
        .write_index(&serde_json::from_value(index).unwrap())
        .unwrap();
    a.digest
}

/// `skopeo inspect --raw` of `reference`, which must succeed.
fn raw(reference: &str) -> Vec<u8> {
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn referrers_tag_lists_artifacts_and_merges_with_what_is_there() {
    let reg = Registry::start(Auth::None, None);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 61, 10_000);
    let l = &img.layout;
    let subject = &img.manifests[1]; // the arm64 image
    let tag = format!("sha256-{}", subject.hex());
    let repo = format!("{}/team/netshoot", reg.host);

    // The probe is what the client bases its choice on: 2.8 answers 404.
    let probe = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "http://{}/v2/team/netshoot/referrers/{subject}",
            reg.host
        ))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&probe.stdout), "404");

    let sbom = add_artifact(
        l,
        "application/spdx+json",
        br#"{"spdxVersion":"SPDX-2.3"}"#,
        subject,
        "sbom",
    );
    let client = Client::new(opts()).unwrap();
    let target: Reference = format!("{repo}:v1").parse().unwrap();
    let top = l.resolve(Some("latest")).unwrap();
    let r = client
        .push_layout(l, &top, None, &target, &[], &|_| {})
        .unwrap();
    assert_eq!(r.referrers_tags, vec![tag.clone()]);

    // skopeo finds an OCI index under the tag listing the SBOM, with the
    // descriptor fields the referrers API would give.
    let bytes = raw(&format!("{repo}:{tag}"));
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["mediaType"], MT_INDEX);
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    let sbom_bytes = l.read_blob(&sbom).unwrap();
    assert_eq!(list[0]["digest"], sbom.to_string());
    assert_eq!(list[0]["size"], sbom_bytes.len());
    assert_eq!(list[0]["mediaType"], MT_MANIFEST);
    assert_eq!(list[0]["artifactType"], "application/spdx+json");
    assert_eq!(list[0]["annotations"]["org.example.note"], "sbom");
    // The artifact itself is there byte for byte.
    assert_eq!(raw(&format!("{repo}@{sbom}")), sbom_bytes);

    // Pushing the same again changes nothing: the tag already lists it.
    let again = client
        .push_layout(l, &top, None, &target, &[], &|_| {})
        .unwrap();
    assert!(again.referrers_tags.is_empty(), "{again:?}");
    assert_eq!(raw(&format!("{repo}:{tag}")), bytes);

    // A second artifact from a layout that no longer lists the first one
    // (another machine, a later signing step): the tag keeps the SBOM
    // (read back from the registry) and adds the signature after it.
    let sig = add_artifact(
        l,
        "application/vnd.example.signature",
        b"signature bytes",
        subject,
        "sig",
    );
    let fresh = Client::new(opts()).unwrap();
    let r = fresh
        .push_layout(l, &top, None, &target, &[], &|_| {})
        .unwrap();
    assert_eq!(r.referrers_tags, vec![tag.clone()]);
    let v: serde_json::Value = serde_json::from_slice(&raw(&format!("{repo}:{tag}"))).unwrap();
    let digests: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, vec![sbom.to_string(), sig.to_string()]);

    // A platform subset without the subject pushes no referrers tag.
    let amd: Reference = format!("{repo}:amd").parse().unwrap();
    let r = client
        .push_layout(
            l,
            &top,
            Some(&["linux/amd64".parse().unwrap()]),
            &amd,
            &[],
            &|_| {},
        )
        .unwrap();
    assert!(r.referrers_tags.is_empty());
}

#[test]
fn a_foreign_manifest_under_the_referrers_tag_is_not_overwritten() {
    let reg = Registry::start(Auth::None, None);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 62, 10_000);
    let l = &img.layout;
    let subject = img.manifests[0].clone();
    let repo = format!("{}/clash", reg.host);
    let client = Client::new(opts()).unwrap();
    let top = l.resolve(Some("latest")).unwrap();
    // Someone tagged an image manifest `sha256-<subject hex>`.
    let clash: Reference = format!("{repo}:sha256-{}", subject.hex()).parse().unwrap();
    let amd = img.manifests[0].clone();
    let desc = image_layout::oci_spec::image::Descriptor::new(
        MT_MANIFEST.into(),
        l.read_blob(&amd).unwrap().len() as u64,
        amd.to_oci(),
    );
    client
        .push_layout(l, &desc, None, &clash, &[], &|_| {})
        .unwrap();
    add_artifact(l, "application/spdx+json", b"{}", &subject, "x");
    let target: Reference = format!("{repo}:v1").parse().unwrap();
    let e = client
        .push_layout(l, &top, None, &target, &[], &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not overwriting") && e.contains(&format!("sha256-{}", subject.hex())),
        "{e}"
    );
    // The clashing tag still holds the image manifest.
    assert_eq!(
        raw(&format!("{repo}:sha256-{}", subject.hex())),
        l.read_blob(&amd).unwrap()
    );
}
