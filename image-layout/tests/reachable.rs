//! `OciLayout::reachable` on layouts shaped to make a naive walk blow up:
//! wide fan-out over many levels (exponential paths to the same blobs) and
//! a long chain (deep recursion). Both shapes come from a few kilobytes of
//! archive, so `push --archive` and `export` must take them in stride.

use std::sync::mpsc;
use std::time::Duration;

use image_layout::layout::MT_INDEX;
use image_layout::{Digest, OciLayout};
use oci_spec::image::Descriptor;

/// Writes `bytes` as a blob (no fsync: thousands of them) and returns its
/// index descriptor text.
fn put(layout: &OciLayout, bytes: &[u8]) -> String {
    let d = Digest::of(bytes);
    std::fs::write(layout.blob_path(&d), bytes).unwrap();
    format!(
        r#"{{"mediaType":"{MT_INDEX}","digest":"{d}","size":{}}}"#,
        bytes.len()
    )
}

fn index_of(children: &[String]) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{MT_INDEX}","manifests":[{}]}}"#,
        children.join(",")
    )
    .into_bytes()
}

fn top(desc: &str) -> Descriptor {
    serde_json::from_str(desc).unwrap()
}

/// Runs `reachable` on another thread and gives up after `limit`.
fn reachable_within(layout: OciLayout, desc: Descriptor, limit: Duration) -> Vec<Descriptor> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(layout.reachable(&desc).map_err(|e| e.to_string()));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("reachable did not finish within {limit:?}"))
        .unwrap()
}

#[test]
fn each_index_is_read_once_however_many_paths_lead_to_it() {
    // Nine levels, each index naming the next sixteen times: 16^8 paths.
    // The fuzz input that showed it (fuzz/regressions/oci_layout) is the
    // same shape, six wide.
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let mut desc = put(&layout, &index_of(&[]));
    let mut digests = vec![top(&desc).digest().to_string()];
    for _ in 0..8 {
        desc = put(&layout, &index_of(&vec![desc.clone(); 16]));
        digests.push(top(&desc).digest().to_string());
    }
    let got = reachable_within(layout, top(&desc), Duration::from_secs(20));
    let got: Vec<String> = got.iter().map(|d| d.digest().to_string()).collect();
    // Children before the index that names them: the leaf first.
    assert_eq!(got, digests);
}

#[test]
fn a_long_chain_of_indexes_does_not_exhaust_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let mut desc = put(&layout, &index_of(&[]));
    for _ in 0..20_000 {
        desc = put(&layout, &index_of(&[desc]));
    }
    let got = reachable_within(layout, top(&desc), Duration::from_secs(60));
    assert_eq!(got.len(), 20_001);
    assert_eq!(
        got.last().unwrap().digest().to_string(),
        top(&desc).digest().to_string()
    );
}
