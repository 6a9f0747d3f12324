//! Network time-outs end to end: the real binary against loopback servers
//! that accept the connection and then stall (no answer at all, or an
//! answer that stops mid-body), or that accept no connection at all. With `--timeout 2` (or
//! `NETSHOOT_TIMEOUT=2`) every command gives up after three attempts, in
//! seconds rather than minutes, says each retry in one line, exits 4 and
//! names the URL and the time-out.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The longest any of these commands may take: three attempts of about
/// 2.5 s and two short waits, with room for a busy machine.
const WITHIN: Duration = Duration::from_secs(15);

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs `cmd`, which must fail with exit 4 within [`WITHIN`]; returns its
/// stderr.
fn fails_with_network_error(cmd: &mut Command) -> String {
    let started = Instant::now();
    let out = run(cmd);
    let took = started.elapsed();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(4), "{cmd:?}: {err}");
    assert!(took < WITHIN, "{cmd:?} took {took:?}: {err}");
    err
}

/// The retry lines of `stderr`.
fn retry_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("retrying "))
        .collect()
}

/// The one error line of `stderr`.
fn error_line(stderr: &str) -> &str {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("netshoot-build: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0]
}

/// A one-platform spec with `body` appended, in `dir`.
fn spec(dir: &Path, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/motd"), "welcome\n").unwrap();
    let text = format!(
        r#"platforms = ["linux/amd64"]

[image]
name = "netshoot"
tag = "test"

[[local]]
src = "files/motd"
dest = "/etc/motd"
{body}"#
    );
    let p = dir.join("netshoot.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A spec whose packages come from the apt repository `debian`, whose
/// mirror the test gives with `--mirror`. The keyring is never used: the
/// first download already fails.
fn apt_spec(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("keyring.gpg"), b"not reached").unwrap();
    spec(
        dir,
        r#"
[apt]
packages = ["hello"]
base = "none"

[[apt.repository]]
name = "debian"
suites = ["stable"]
components = ["main"]
keyring = "keyring.gpg"
"#,
    )
}

#[test]
fn push_to_a_registry_that_never_answers() {
    let t = tempfile::tempdir().unwrap();
    let spec = spec(t.path(), "");
    let out = t.path().join("out");
    ok(bin()
        .args(["build", "-q", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(t.path().join("cache")));
    let stall = StallServer::start(Stall::Silent);
    let err = fails_with_network_error(
        bin()
            .args(["push", "--timeout", "2", "--layout"])
            .arg(&out)
            .arg(format!("127.0.0.1:{}/team/netshoot:v1", stall.port)),
    );
    let v2 = stall.url("/v2/");
    let line = error_line(&err);
    assert!(
        line.contains(&format!("no data for 2 s from {v2}")) && line.contains("timed out 3 times"),
        "{err}"
    );
    // A loopback registry is tried over HTTPS first (its handshake
    // stalls too: the connect time-out), then over plain HTTP.
    let retries = retry_lines(&err);
    assert_eq!(retries.len(), 2, "{err}");
    assert!(
        retries[0].starts_with(&format!(
            "retrying GET {v2} (attempt 2 of 3): could not connect to 127.0.0.1:{} within 2 s",
            stall.port
        )),
        "{err}"
    );
    assert_eq!(
        retries[1],
        format!("retrying GET {v2} (attempt 3 of 3): no data for 2 s"),
        "{err}"
    );
}

#[test]
fn lock_against_a_mirror_that_never_answers() {
    let t = tempfile::tempdir().unwrap();
    let spec = apt_spec(t.path());
    let stall = StallServer::start(Stall::Silent);
    let mirror = stall.url("/debian");
    let err = fails_with_network_error(
        bin()
            .args(["lock", "--timeout", "2", "--spec"])
            .arg(&spec)
            .arg("--mirror")
            .arg(format!("debian={mirror}"))
            .arg("--cache")
            .arg(t.path().join("cache")),
    );
    let url = format!("{mirror}/dists/stable/InRelease");
    assert!(
        error_line(&err).contains(&format!("{url}: no data for 2 s (timed out 3 times)")),
        "{err}"
    );
    assert_eq!(
        retry_lines(&err),
        [2, 3].map(|n| format!("retrying GET {url} (attempt {n} of 3): no data for 2 s")),
        "{err}"
    );
    assert_eq!(stall.requests.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert!(!t.path().join("netshoot.lock").exists());
}

#[test]
fn lock_against_a_mirror_that_accepts_no_connection() {
    let t = tempfile::tempdir().unwrap();
    let spec = apt_spec(t.path());
    let full = FullPort::start();
    let mirror = format!("http://127.0.0.1:{}/debian", full.port);
    let err = fails_with_network_error(
        bin()
            .args(["lock", "--timeout", "2", "--spec"])
            .arg(&spec)
            .arg("--mirror")
            .arg(format!("debian={mirror}"))
            .arg("--cache")
            .arg(t.path().join("cache")),
    );
    let url = format!("{mirror}/dists/stable/InRelease");
    let connect = format!("could not connect to 127.0.0.1:{} within 2 s", full.port);
    assert!(
        error_line(&err).contains(&format!("{url}: {connect} (timed out 3 times)")),
        "{err}"
    );
    assert_eq!(
        retry_lines(&err),
        [2, 3].map(|n| format!("retrying GET {url} (attempt {n} of 3): {connect}")),
        "{err}"
    );
}

#[test]
fn lock_against_a_mirror_that_stops_mid_body() {
    let t = tempfile::tempdir().unwrap();
    let spec = apt_spec(t.path());
    let stall = StallServer::start(Stall::MidBody {
        len: 4000,
        sent: 1000,
    });
    let mirror = stall.url("/debian");
    // The time-out from the environment this time.
    let err = fails_with_network_error(
        bin()
            .env("NETSHOOT_TIMEOUT", "2")
            .args(["lock", "--spec"])
            .arg(&spec)
            .arg("--mirror")
            .arg(format!("debian={mirror}"))
            .arg("--cache")
            .arg(t.path().join("cache")),
    );
    let url = format!("{mirror}/dists/stable/InRelease");
    assert!(
        error_line(&err).contains(&format!("{url}: no data for 2 s (timed out 3 times)")),
        "{err}"
    );
    assert_eq!(retry_lines(&err).len(), 2, "{err}");
}

#[test]
fn url_download_that_stops_mid_body() {
    let t = tempfile::tempdir().unwrap();
    let stall = StallServer::start(Stall::MidBody {
        len: 4000,
        sent: 1000,
    });
    let url = stall.url("/tool.bin");
    // No sha256: `lock` downloads it to pin it.
    let spec = spec(
        t.path(),
        &format!(
            r#"
[[url]]
name = "tool"
dest = "/usr/local/bin/tool"
mode = 0o755
[url.platform."linux/amd64"]
url = "{url}"
"#
        ),
    );
    let err = fails_with_network_error(
        bin()
            .args(["lock", "--timeout", "2", "--spec"])
            .arg(&spec)
            .arg("--cache")
            .arg(t.path().join("cache")),
    );
    // The first attempt stalls after 1000 bytes; the retry asks for the
    // rest, which this server does not send (it answers 200 again).
    let line = error_line(&err);
    assert!(
        line.contains(&format!(
            "{url}: no data for 2 s after 1000 bytes, and the server does not send the rest"
        )),
        "{err}"
    );
    assert_eq!(
        retry_lines(&err),
        [format!(
            "retrying GET {url} (attempt 2 of 3): no data for 2 s"
        )],
        "{err}"
    );
    assert!(!t.path().join("netshoot.lock").exists());
}
