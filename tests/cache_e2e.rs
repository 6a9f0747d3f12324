//! Caches and reproducibility under stress: concurrent builds sharing one
//! cache, a build killed with SIGKILL at several points, and `verify`
//! passing on a fresh build and naming the first difference otherwise.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The fixture spec plus a large local folder, so a build lasts long
/// enough to be interrupted.
fn big_spec(dir: &Path, server: &FileServer) -> PathBuf {
    let hello = hello_binary(dir);
    let spec = write_fixture_spec(dir, server, &hello);
    let data = dir.join("files/data");
    std::fs::create_dir_all(&data).unwrap();
    // 64 MiB of pseudo-random bytes over 16 files (compresses slowly).
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in 0..16 {
        let mut v = vec![0u8; 4 << 20];
        for b in v.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        std::fs::write(data.join(format!("blob{i:02}")), v).unwrap();
    }
    let mut text = std::fs::read_to_string(&spec).unwrap();
    text.push_str("\n[[local]]\nsrc = \"files/data\"\ndest = \"/data\"\n");
    std::fs::write(&spec, text).unwrap();
    spec
}

fn build(spec: &Path, out: &Path, cache: &Path) -> Command {
    let mut c = bin();
    c.args(["build", "-q", "--spec"])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(cache);
    c
}

#[test]
fn concurrent_builds_share_a_cache() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let spec = big_spec(t.path(), &server);
    let cache = t.path().join("cache");
    let children: Vec<_> = (0..2)
        .map(|i| {
            build(&spec, &t.path().join(format!("out{i}")), &cache)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let digests: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
    // A third build on the now-warm shared cache agrees too.
    assert_eq!(
        ok(&mut build(&spec, &t.path().join("out2"), &cache)).trim(),
        digests[0]
    );
}

#[test]
fn a_killed_build_leaves_cache_and_layout_usable() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let spec = big_spec(t.path(), &server);
    let cache = t.path().join("cache");
    let out = t.path().join("out");
    let good = ok(&mut build(&spec, &out, &cache)).trim().to_string();
    // Change the input so the next builds have work to do, then kill them
    // at increasing points (bounded: 5 tries).
    std::fs::write(t.path().join("files/motd"), "changed motd\n").unwrap();
    for delay_ms in [50u64, 200, 400, 800, 1600] {
        let mut child = build(&spec, &out, &cache)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // The previous layout is still whole and readable.
        let raw = ok(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:test", out.display())));
        assert!(raw.contains("manifests"));
    }
    // The killed builds' staging folders beside the output (at least the
    // later kills got that far) are removed by the next build.
    let stages = || -> Vec<String> {
        std::fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(".out.tmp-"))
            .collect()
    };
    // Plus two made here: one whose writer has exited, one whose writer
    // (this test) lives and so must be left alone.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    for (name, pid) in [("dead", gone_pid), ("live", std::process::id())] {
        let d = t.path().join(format!(".out.tmp-{name}"));
        std::fs::create_dir_all(d.join("blobs/sha256")).unwrap();
        std::fs::write(d.join(".netshoot-build-pid"), pid.to_string()).unwrap();
    }
    let after = ok(&mut build(&spec, &out, &cache)).trim().to_string();
    assert_eq!(stages(), [".out.tmp-live"]);
    assert_ne!(after, good, "the input changed");
    // Every blob of the layout is intact.
    ok(Command::new("skopeo")
        .args(["copy", "--all"])
        .arg(format!("oci:{}:test", out.display()))
        .arg(format!("oci:{}:x", t.path().join("copy").display())));
    // And a build with a fresh cache gives the same digest: nothing
    // half-written was taken from the interrupted cache.
    let fresh = ok(&mut build(
        &spec,
        &t.path().join("out-fresh"),
        &t.path().join("cache-fresh"),
    ));
    assert_eq!(fresh.trim(), after);
    // No temporary files left behind in the layout.
    let leftovers: Vec<_> = walk(&out)
        .into_iter()
        .filter(|p| {
            p.strip_prefix(&out)
                .unwrap()
                .to_string_lossy()
                .contains(".tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn verify_passes_on_a_fresh_build_and_pinpoints_a_difference() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let hello = hello_binary(t.path());
    let spec = write_fixture_spec(t.path(), &server, &hello);
    let out = t.path().join("out");
    let cache = t.path().join("cache");
    ok(&mut build(&spec, &out, &cache));
    let verify = |layout: &Path| {
        bin()
            .args(["verify", "--spec"])
            .arg(&spec)
            .arg("--layout")
            .arg(layout)
            .arg("--cache")
            .arg(&cache)
            .output()
            .unwrap()
    };
    let r = verify(&out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stdout).contains("identical"));

    // A layout that is not what the spec gives: the same spec with one
    // file's mode changed, then with its content changed.
    let text = std::fs::read_to_string(&spec).unwrap();
    let altered = |name: &str, body: String| {
        let s = t.path().join(format!("{name}.toml"));
        std::fs::write(&s, body).unwrap();
        let o = t.path().join(name);
        ok(&mut build(&s, &o, &cache));
        o
    };
    let mode = altered(
        "mode",
        text.replace(
            "dest = \"/etc/motd\"",
            "dest = \"/etc/motd\"\nmode = \"0600\"",
        ),
    );
    let r = verify(&mode);
    let err = String::from_utf8_lossy(&r.stderr).to_string();
    assert_eq!(r.status.code(), Some(3), "{err}");
    assert!(err.contains("etc/motd: mode 600 vs 644"), "{err}");
    assert!(err.contains("linux/amd64 layer 0"), "{err}");

    std::fs::write(t.path().join("files/motd2"), "another motd\n").unwrap();
    let content = altered(
        "content",
        text.replace("src = \"files/motd\"", "src = \"files/motd2\""),
    );
    let r = verify(&content);
    let err = String::from_utf8_lossy(&r.stderr).to_string();
    assert_eq!(r.status.code(), Some(3), "{err}");
    assert!(err.contains("etc/motd: content"), "{err}");
}

#[test]
fn cache_prune_keeps_recent_entries_and_empties_on_request() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let hello = hello_binary(t.path());
    let spec = write_fixture_spec(t.path(), &server, &hello);
    let cache = t.path().join("cache");
    let first = ok(&mut build(&spec, &t.path().join("out"), &cache));
    let count = |dir: &Path| walk(dir).into_iter().filter(|p| p.is_file()).count();
    let before = count(&cache);
    assert!(before > 0);
    // A leftover of an interrupted write, two hours old.
    let stale = cache.join("blobs/sha256/.tmp-interrupted");
    std::fs::write(&stale, b"partial").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    let f = std::fs::File::options().write(true).open(&stale).unwrap();
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(two_hours_ago)
            .set_modified(two_hours_ago),
    )
    .unwrap();
    let out = ok(bin().args(["cache", "prune", "--cache"]).arg(&cache));
    assert!(out.contains("pruned 1 entries"), "{out}");
    assert!(!stale.exists());
    assert_eq!(count(&cache), before, "recent entries are kept");
    let out = ok(bin()
        .args(["cache", "prune", "--keep-days", "0", "--cache"])
        .arg(&cache));
    assert!(out.starts_with("pruned"), "{out}");
    assert_eq!(count(&cache), 0, "--keep-days 0 empties the cache");
    // A build afterwards refills it and gives the same image.
    let again = ok(&mut build(&spec, &t.path().join("out2"), &cache));
    assert_eq!(first, again);
}
