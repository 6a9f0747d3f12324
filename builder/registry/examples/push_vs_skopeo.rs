//! Benchmark: push one multi-arch layout (random, incompressible layers,
//! ~200 MB across 2 platforms by default; `BENCH_MB` changes it) to a
//! fresh local registry with our client and with `skopeo copy --all`,
//! then push again; prints wall times, the blob bytes each re-push
//! sent (counted by a loopback proxy in front of each registry) and
//! where the CPU time of each first push went: the pushing client (our
//! client threads, or the skopeo process), the registry process, and this
//! process's loopback proxies (counted with the client for ours).

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use registry::{Client, ClientOptions, CredentialSources, Reference};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// CPU seconds (user + system) a process used so far, and those of its
/// waited-for children, from `/proc/PID/stat` (clock ticks of 1/100 s).
fn cpu(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0) as f64 / 100.0;
    // utime, stime, cutime, cstime are fields 14-17, here 11-14.
    (get(11) + get(12), get(13) + get(14))
}

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

    let ours_pid = ours_reg.pid().to_string();
    let sko_pid = sko_reg.pid().to_string();
    let (self0, _) = cpu("self");
    let (reg0, _) = cpu(&ours_pid);
    let (ours_first, r1) = push();
    let (self1, children1) = cpu("self");
    let ours_cpu = (self1 - self0, cpu(&ours_pid).0 - reg0);
    let ours_first_bytes = ours_proxy.upload_bytes.load(Ordering::Relaxed);
    let (sreg0, _) = cpu(&sko_pid);
    let sko_first = skopeo_push();
    let (self2, children2) = cpu("self");
    let sko_cpu = (
        children2 - children1,
        cpu(&sko_pid).0 - sreg0,
        self2 - self1,
    );
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
    println!(
        "first push CPU: netshoot-build client+proxy {:.2}s, its registry {:.2}s; skopeo {:.2}s, proxy {:.2}s, its registry {:.2}s",
        ours_cpu.0, ours_cpu.1, sko_cpu.0, sko_cpu.2, sko_cpu.1
    );
    println!("pushed {}", r1.reference);
}
