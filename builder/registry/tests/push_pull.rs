//! Push and pull against a real `docker-registry`, read back with skopeo.

mod common;

use common::*;
use image_layout::{Digest, OciLayout, Platform};
use registry::{Client, ClientOptions, CredentialSources, Reference};
use std::collections::BTreeSet;

pub fn opts() -> ClientOptions {
    ClientOptions {
        credentials: CredentialSources::default(),
        ..Default::default()
    }
}

fn hexes(ds: &[Digest]) -> BTreeSet<String> {
    ds.iter().map(|d| d.hex().to_string()).collect()
}

#[test]
fn push_multi_arch_read_back_with_skopeo_and_pull() {
    let reg = Registry::start(Auth::None, None);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 1, 300_000);
    let top = img.layout.resolve(Some("latest")).unwrap();
    let client = Client::new(opts()).unwrap();
    let target: Reference = format!("{}/team/netshoot:v1", reg.host).parse().unwrap();
    let events = std::cell::RefCell::new(0usize);
    let report = client
        .push_layout(
            &img.layout,
            &top,
            None,
            &target,
            &["latest".into(), "stable".into()],
            &|_| *events.borrow_mut() += 1,
        )
        .unwrap();
    assert_eq!(report.digest, img.index);
    assert_eq!(report.blobs_uploaded, 5, "{report:?}");
    assert_eq!(report.tags, vec!["v1", "latest", "stable"]);
    assert!(*events.borrow() > 5);
    assert_eq!(
        report.reference.to_string(),
        format!("{}/team/netshoot@{}", reg.host, img.index)
    );

    // skopeo sees the byte-identical index under every tag.
    let original = img.layout.read_blob(&img.index).unwrap();
    for tag in ["v1", "latest", "stable"] {
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/team/netshoot:{tag}", reg.host),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, original, "tag {tag}");
    }
    // skopeo copies every platform back; every blob is the source's.
    let back = tempfile::tempdir().unwrap();
    let out = skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}/team/netshoot:v1", reg.host),
        &format!("oci:{}:v1", back.path().display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = layout_blobs(back.path());
    let mut want = hexes(&img.blobs);
    want.extend(hexes(&img.manifests));
    want.insert(img.index.hex().to_string());
    assert_eq!(got, want);

    // Our pull: same digests, tagged, other tags kept.
    let dest_dir = tempfile::tempdir().unwrap();
    let dest = OciLayout::create(dest_dir.path()).unwrap();
    let d1 = client.pull(&target, None, &dest, "one").unwrap();
    assert_eq!(Digest::from(d1.digest()), img.index);
    let by_digest: Reference = format!("{}/team/netshoot@{}", reg.host, img.index)
        .parse()
        .unwrap();
    client.pull(&by_digest, None, &dest, "two").unwrap();
    assert_eq!(dest.tags().unwrap(), vec!["one", "two"]);
    assert_eq!(layout_blobs(dest_dir.path()), want);
    for b in &want {
        dest.read_blob(&Digest::from_hex(b).unwrap()).unwrap();
    }
}

#[test]
fn platform_subset_push_and_pull() {
    let reg = Registry::start(Auth::None, None);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 2, 100_000);
    let top = img.layout.resolve(Some("latest")).unwrap();
    let client = Client::new(opts()).unwrap();
    let arm: Platform = "linux/arm64".parse().unwrap();
    let target: Reference = format!("{}/sub:arm", reg.host).parse().unwrap();
    let report = client
        .push_layout(
            &img.layout,
            &top,
            Some(std::slice::from_ref(&arm)),
            &target,
            &[],
            &|_| {},
        )
        .unwrap();
    assert_ne!(report.digest, img.index);
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/sub:arm", reg.host),
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["platform"]["architecture"], "arm64");
    assert_eq!(list[0]["digest"], img.manifests[1].to_string());
    assert_eq!(Digest::of(&out.stdout), report.digest);
    // 1 shared + 1 own layer + config.
    assert_eq!(report.blobs_uploaded, 3);

    // Pulling a subset of the full image stores a one-entry index.
    let full: Reference = format!("{}/sub:full", reg.host).parse().unwrap();
    client
        .push_layout(&img.layout, &top, None, &full, &[], &|_| {})
        .unwrap();
    let dest_dir = tempfile::tempdir().unwrap();
    let dest = OciLayout::create(dest_dir.path()).unwrap();
    let amd: Platform = "linux/amd64".parse().unwrap();
    let d = client.pull(&full, Some(&[amd]), &dest, "amd").unwrap();
    let images = dest.images(&d).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].0.architecture, "amd64");
    // A platform the image lacks is a clear error.
    let e = client
        .push_layout(
            &img.layout,
            &top,
            Some(&["linux/s390x".parse().unwrap()]),
            &target,
            &[],
            &|_| {},
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("linux/s390x") && e.contains("linux/amd64"),
        "{e}"
    );
}

#[test]
fn second_push_sends_no_blob_bytes_and_mounts_across_repositories() {
    let reg = Registry::start(Auth::None, None);
    let proxy = FaultProxy::start(reg.port);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 3, 200_000);
    let top = img.layout.resolve(Some("latest")).unwrap();
    let client = Client::new(opts()).unwrap();
    let target: Reference = format!("{}/again:v1", proxy.host).parse().unwrap();
    let first = client
        .push_layout(&img.layout, &top, None, &target, &[], &|_| {})
        .unwrap();
    let sent_first = proxy
        .upload_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent_first >= 400_000, "{sent_first}");
    assert_eq!(first.blobs_uploaded, 5);

    // A fresh client (no memory of the first push) sends no blob bytes.
    let client2 = Client::new(opts()).unwrap();
    let second = client2
        .push_layout(&img.layout, &top, None, &target, &[], &|_| {})
        .unwrap();
    assert_eq!(
        proxy
            .upload_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        sent_first
    );
    assert_eq!(second.blobs_skipped, 5);
    assert_eq!(second.blobs_uploaded, 0);
    assert_eq!(second.digest, first.digest);

    // Same client, another repository: every blob is mounted.
    let other: Reference = format!("{}/elsewhere:v1", proxy.host).parse().unwrap();
    let third = client
        .push_layout(&img.layout, &top, None, &other, &[], &|_| {})
        .unwrap();
    assert_eq!(third.blobs_mounted, 5, "{third:?}");
    assert_eq!(
        proxy
            .upload_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        sent_first
    );

    // A new client told where to look mounts too.
    let client3 = Client::new(ClientOptions {
        mount_from: vec!["again".into()],
        ..opts()
    })
    .unwrap();
    let fourth: Reference = format!("{}/third:v1", proxy.host).parse().unwrap();
    let r = client3
        .push_layout(&img.layout, &top, None, &fourth, &[], &|_| {})
        .unwrap();
    assert_eq!(r.blobs_mounted, 5);
}

#[test]
fn chunked_upload_with_small_chunks() {
    let reg = Registry::start(Auth::None, None);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 4, 300_000);
    let top = img.layout.resolve(Some("latest")).unwrap();
    let client = Client::new(ClientOptions {
        chunk_threshold: 1000,
        chunk_size: 64 * 1024,
        ..opts()
    })
    .unwrap();
    let target: Reference = format!("{}/chunked:v1", reg.host).parse().unwrap();
    let r = client
        .push_layout(&img.layout, &top, None, &target, &[], &|_| {})
        .unwrap();
    assert_eq!(r.digest, img.index);
    let dest_dir = tempfile::tempdir().unwrap();
    let dest = OciLayout::create(dest_dir.path()).unwrap();
    client.pull(&target, None, &dest, "x").unwrap();
    for b in &img.blobs {
        assert_eq!(dest.read_blob(b).unwrap(), img.layout.read_blob(b).unwrap());
    }
}

#[test]
fn air_gap_archive_round_trip() {
    let reg_a = Registry::start(Auth::None, None);
    let reg_b = Registry::start(Auth::None, None);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 5, 150_000);
    let top = img.layout.resolve(Some("latest")).unwrap();
    let client = Client::new(opts()).unwrap();
    let a: Reference = format!("{}/mirror/netshoot:v1", reg_a.host)
        .parse()
        .unwrap();
    client
        .push_layout(&img.layout, &top, None, &a, &[], &|_| {})
        .unwrap();

    // Pull from A, archive, carry over, unpack, push to B, pull back.
    let pulled_dir = tempfile::tempdir().unwrap();
    let pulled = OciLayout::create(pulled_dir.path()).unwrap();
    client.pull(&a, None, &pulled, "v1").unwrap();
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("netshoot.oci.tar");
    image_layout::archive::write_oci_archive(&pulled, &[], &archive).unwrap();
    let unpacked =
        image_layout::archive::read_archive(&archive, &work.path().join("unpacked")).unwrap();
    let desc = unpacked.resolve(Some("v1")).unwrap();
    let b: Reference = format!("{}/airgap/netshoot:v1", reg_b.host)
        .parse()
        .unwrap();
    let r = client
        .push_layout(&unpacked, &desc, None, &b, &[], &|_| {})
        .unwrap();
    assert_eq!(r.digest, img.index);
    let final_dir = tempfile::tempdir().unwrap();
    let fin = OciLayout::create(final_dir.path()).unwrap();
    client.pull(&b, None, &fin, "v1").unwrap();
    assert_eq!(
        layout_blobs(final_dir.path()),
        layout_blobs(pulled_dir.path())
    );
    let mut want = hexes(&img.blobs);
    want.extend(hexes(&img.manifests));
    want.insert(img.index.hex().to_string());
    assert_eq!(layout_blobs(final_dir.path()), want);
}

#[test]
fn referrers_in_the_layout_are_pushed_after_their_subject() {
    use image_layout::layout::{MT_MANIFEST, REF_NAME};
    let reg = Registry::start(Auth::None, None);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 6, 20_000);
    // An SBOM artifact whose subject is the amd64 manifest, listed
    // untagged in index.json as an SBOM step would add it.
    let l = &img.layout;
    let empty = l.put_blob(b"{}").unwrap();
    let sbom = l.put_blob(br#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    let subject = l.read_blob(&img.manifests[0]).unwrap();
    let art = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.digest.to_string(), "size": empty.size},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom.digest.to_string(), "size": sbom.size}],
        "subject": {"mediaType": MT_MANIFEST, "digest": img.manifests[0].to_string(), "size": subject.len()},
    });
    let a = l.put_json(&art).unwrap();
    let mut index: serde_json::Value = serde_json::to_value(l.read_index().unwrap()).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": MT_MANIFEST, "digest": a.digest.to_string(), "size": a.size,
            "artifactType": "application/spdx+json",
        }));
    l.write_index(&serde_json::from_value(index).unwrap())
        .unwrap();
    let top = l.resolve(Some("latest")).unwrap();
    assert!(top.annotations().as_ref().unwrap().get(REF_NAME).is_some());

    let client = Client::new(opts()).unwrap();
    let target: Reference = format!("{}/withsbom:v1", reg.host).parse().unwrap();
    let r = client
        .push_layout(l, &top, None, &target, &[], &|_| {})
        .unwrap();
    assert_eq!(r.blobs_uploaded, 7);
    // 2 manifests + index by digest + referrer + referrers tag (the
    // registry has no referrers API) + tag.
    assert_eq!(r.manifests_pushed, 6);
    assert_eq!(
        r.referrers_tags,
        vec![format!("sha256-{}", img.manifests[0].hex())]
    );
    let by_digest: Reference = format!("{}/withsbom@{}", reg.host, a.digest)
        .parse()
        .unwrap();
    let (bytes, _, d) = client.get_manifest(&by_digest).unwrap();
    assert_eq!(d, a.digest);
    assert_eq!(bytes, l.read_blob(&a.digest).unwrap());

    // Pushing only arm64 leaves out the amd64 SBOM.
    let arm: Reference = format!("{}/withsbom:arm", reg.host).parse().unwrap();
    let r = client
        .push_layout(
            l,
            &top,
            Some(&["linux/arm64".parse().unwrap()]),
            &arm,
            &[],
            &|_| {},
        )
        .unwrap();
    assert_eq!(r.manifests_pushed, 3);
}
