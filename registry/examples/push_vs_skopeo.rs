//! Benchmark: push one multi-arch layout (random, incompressible layers,
//! ~200 MB across 2 platforms by default; `BENCH_MB` changes it) to a
//! fresh local registry with our client and with `skopeo copy --all`,
//! then push again; prints wall times and the blob bytes each re-push
//! sent (counted by a loopback proxy in front of each registry).

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use registry::{Client, ClientOptions, CredentialSources, Reference};
use std::sync::atomic::Ordering;
use std::time::Instant;

fn main() {
    let total_mb: usize = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // build_image: a shared layer of L bytes and one of ~L/2 per platform.
    let layer = total_mb * (1 << 20) / 2;
    let src = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let img = build_image(src.path(), 42, layer);
    let size: u64 = img
        .blobs
        .iter()
        .map(|d| {
            img.layout
                .blob_path(d)
                .metadata()
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    println!(
        "layout: {:.1} MB in {} blobs, 2 platforms (built in {:.2?})",
        size as f64 / 1e6,
        img.blobs.len(),
        t.elapsed()
    );

    let ours_reg = Registry::start(Auth::None, None);
    let ours_proxy = FaultProxy::start(ours_reg.port);
    let sko_reg = Registry::start(Auth::None, None);
    let sko_proxy = FaultProxy::start(sko_reg.port);

    let client = Client::new(ClientOptions {
        credentials: CredentialSources::default(),
        ..Default::default()
    })
    .expect("client");
    let top = img.layout.resolve(Some("latest")).expect("tag");
    let target: Reference = format!("{}/bench/netshoot:v1", ours_proxy.host)
        .parse()
        .expect("reference");
    let push = || {
        let t = Instant::now();
        let r = client
            .push_layout(&img.layout, &top, None, &target, &[], &|_| {})
            .expect("push");
        (t.elapsed(), r)
    };
    let skopeo_push = || {
        let t = Instant::now();
        let out = skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:latest", src.path().display()),
            &format!("docker://{}/bench/netshoot:v1", sko_proxy.host),
        ]);
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    };

    let (ours_first, r1) = push();
    let ours_first_bytes = ours_proxy.upload_bytes.load(Ordering::Relaxed);
    let sko_first = skopeo_push();
    let sko_first_bytes = sko_proxy.upload_bytes.load(Ordering::Relaxed);
    let (ours_again, r2) = push();
    let ours_again_bytes = ours_proxy.upload_bytes.load(Ordering::Relaxed) - ours_first_bytes;
    let sko_again = skopeo_push();
    let sko_again_bytes = sko_proxy.upload_bytes.load(Ordering::Relaxed) - sko_first_bytes;
    assert_eq!(r1.digest, r2.digest);

    println!("{:<28} {:>12} {:>16}", "", "wall time", "blob bytes sent");
    println!(
        "{:<28} {:>12.2?} {:>16}",
        "netshoot-build push", ours_first, ours_first_bytes
    );
    println!(
        "{:<28} {:>12.2?} {:>16}",
        "skopeo copy --all", sko_first, sko_first_bytes
    );
    println!(
        "{:<28} {:>12.2?} {:>16}",
        "netshoot-build re-push", ours_again, ours_again_bytes
    );
    println!(
        "{:<28} {:>12.2?} {:>16}",
        "skopeo re-push", sko_again, sko_again_bytes
    );
    println!("pushed {}", r1.reference);
}
