//! Faults between client and registry: resets mid-blob, 5xx, 429 with
//! Retry-After, stalls. Transient ones are survived with identical
//! digests; a persistent one fails clearly and moves no tag.

mod common;

use common::*;
use image_layout::OciLayout;
use registry::{Client, ClientOptions, CredentialSources, Reference, RetryPolicy};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn opts(max_attempts: u32) -> ClientOptions {
    ClientOptions {
        credentials: CredentialSources::default(),
        retry: RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            ..RetryPolicy::default()
        },
        timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

fn check_same(reg: &Registry, repo_tag: &str, img: &TestImage, src: &std::path::Path) {
    // Read back directly from the registry, not through the proxy.
    let dest_dir = tempfile::tempdir().unwrap();
    let dest = OciLayout::create(dest_dir.path()).unwrap();
    let r: Reference = format!("{}/{repo_tag}", reg.host).parse().unwrap();
    let d = Client::new(opts(3))
        .unwrap()
        .pull(&r, None, &dest, "x")
        .unwrap();
    assert_eq!(image_layout::Digest::from(d.digest()), img.index);
    assert_eq!(layout_blobs(dest_dir.path()), layout_blobs(src));
}

#[test]
fn transient_faults_are_retried() {
    let reg = Registry::start(Auth::None, None);
    let proxy = FaultProxy::start(reg.port);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 30, 200_000);
    let top = img.layout.resolve(Some("latest")).unwrap();
    for f in [
        Fault::ResetAfter(50_000),
        Fault::Status(500, None),
        Fault::Status(503, None),
        Fault::Status(429, Some(1)),
        Fault::Stall(Duration::from_secs(4)),
        Fault::Status(502, None),
    ] {
        proxy.push_fault(f);
    }
    let client = Client::new(opts(8)).unwrap();
    let target: Reference = format!("{}/faulty:v1", proxy.host).parse().unwrap();
    let retries = std::cell::Cell::new(0);
    let started = Instant::now();
    let r = client
        .push_layout(&img.layout, &top, None, &target, &[], &|e| {
            if let registry::ProgressEvent::Retrying { .. } = e {
                retries.set(retries.get() + 1)
            }
        })
        .unwrap();
    assert_eq!(r.digest, img.index);
    assert_eq!(proxy.injected.load(std::sync::atomic::Ordering::Relaxed), 6);
    assert!(retries.get() >= 6, "{}", retries.get());
    // The 429 asked for one second: it was honoured, but not much more.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(60));
    check_same(&reg, "faulty:v1", &img, src.path());
}

#[test]
fn chunked_upload_resumes_after_resets() {
    let reg = Registry::start(Auth::None, None);
    let proxy = FaultProxy::start(reg.port);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 31, 300_000);
    let top = img.layout.resolve(Some("latest")).unwrap();
    for _ in 0..4 {
        proxy.push_fault(Fault::ResetAfter(20_000));
    }
    let client = Client::new(ClientOptions {
        chunk_threshold: 1000,
        chunk_size: 64 * 1024,
        ..opts(8)
    })
    .unwrap();
    let target: Reference = format!("{}/resume:v1", proxy.host).parse().unwrap();
    let r = client
        .push_layout(&img.layout, &top, None, &target, &[], &|_| {})
        .unwrap();
    assert_eq!(r.digest, img.index);
    assert_eq!(proxy.injected.load(std::sync::atomic::Ordering::Relaxed), 4);
    check_same(&reg, "resume:v1", &img, src.path());
}

#[test]
fn persistent_fault_fails_clearly_and_moves_no_tag() {
    let reg = Registry::start(Auth::None, None);
    let proxy = FaultProxy::start(reg.port);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 32, 100_000);
    let top = img.layout.resolve(Some("latest")).unwrap();
    *proxy.always.lock().unwrap() = Some(Fault::Status(503, None));
    let client = Client::new(opts(3)).unwrap();
    let target: Reference = format!("{}/broken:v1", proxy.host).parse().unwrap();
    let started = Instant::now();
    let e = client
        .push_layout(&img.layout, &top, None, &target, &[], &|_| {})
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30));
    let text = e.to_string();
    assert!(
        text.contains("503")
            && text.contains("blob sha256:")
            && text.contains("broken")
            && text.contains(&proxy.host),
        "{text}"
    );
    assert!(
        text.contains("injected 503"),
        "the registry's message is shown: {text}"
    );
    // The tag does not exist: no index points at missing blobs.
    let direct: Reference = format!("{}/broken:v1", reg.host).parse().unwrap();
    let e = Client::new(opts(1))
        .unwrap()
        .get_manifest(&direct)
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/broken:v1", reg.host),
    ]);
    assert!(!out.status.success());

    // A connection that always breaks mid-blob: a transport error.
    *proxy.always.lock().unwrap() = Some(Fault::ResetAfter(1000));
    let e = client
        .push_layout(&img.layout, &top, None, &target, &[], &|_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("blob sha256:") && e.contains("broken"), "{e}");
    assert!(Client::new(opts(1)).unwrap().get_manifest(&direct).is_err());
}

/// Options for the stall tests: 1 s time-outs, quick backoff, and the
/// retry lines collected.
fn stall_opts(lines: &Arc<Mutex<Vec<String>>>) -> ClientOptions {
    let lines = lines.clone();
    ClientOptions {
        credentials: CredentialSources::default(),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        on_retry: Some(Arc::new(move |l: &str| {
            lines.lock().unwrap().push(l.to_string())
        })),
        ..Default::default()
    }
}

#[test]
fn a_registry_that_never_answers_times_out_after_three_tries() {
    let stall = StallServer::start(Stall::Silent);
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 33, 1000);
    let top = img.layout.resolve(Some("latest")).unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let client = Client::new(stall_opts(&lines)).unwrap();
    let target: Reference = format!("{}/stalled:v1", stall.host).parse().unwrap();
    let started = Instant::now();
    let e = client
        .push_layout(&img.layout, &top, None, &target, &[], &|_| {})
        .unwrap_err();
    let took = started.elapsed();
    // Three time-outs of about 1.5 s each and two short waits: not the
    // five attempts of other failures.
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(matches!(e, registry::Error::TimedOut { .. }), "{e:?}");
    let text = e.to_string();
    let v2 = format!("http://{}/v2/", stall.host);
    assert!(
        text.contains(&format!("no data for 1 s from {v2}")) && text.contains("timed out 3 times"),
        "{text}"
    );
    // Loopback: HTTPS is tried first (its handshake stalls), then HTTP.
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with(&format!("retrying GET {v2} (attempt 2 of 3): ")),
        "{lines:#?}"
    );
    assert_eq!(
        lines[1],
        format!("retrying GET {v2} (attempt 3 of 3): no data for 1 s")
    );
    assert_eq!(stall.connections.load(Ordering::Relaxed), 3);
}

#[test]
fn a_body_that_stops_midway_is_asked_for_again_then_given_up() {
    let stall = StallServer::start(Stall::MidBody {
        len: 1000,
        sent: 100,
    });
    let lines = Arc::new(Mutex::new(Vec::new()));
    let client = Client::new(stall_opts(&lines)).unwrap();
    let source: Reference = format!("{}/stalled:v1", stall.host).parse().unwrap();
    let started = Instant::now();
    let e = client.get_manifest(&source).unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    let text = e.to_string();
    let url = format!("http://{}/v2/stalled/manifests/v1", stall.host);
    assert!(
        text.contains(&format!("no data for 1 s from {url}")) && text.contains("timed out 3 times"),
        "{text}"
    );
    let lines = lines.lock().unwrap().clone();
    assert_eq!(
        lines,
        [2, 3]
            .map(|n| format!("retrying GET {url} (attempt {n} of 3): no data for 1 s"))
            .to_vec()
    );
}
