//! Helpers shared by the end-to-end tests: the real binary, a loopback
//! file server, fixtures built by the tests themselves, and wrappers for
//! the real consumers (skopeo, umoci, runc, podman).
#![allow(dead_code)]

pub mod netns;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The netshoot-build binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netshoot-build"));
    c.env_remove("SOURCE_DATE_EPOCH");
    // zig's libc builds are shared by the tests' fresh caches.
    if std::env::var_os("NETSHOOT_ZIG_CACHE").is_none() {
        c.env(
            "NETSHOOT_ZIG_CACHE",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("zig-cache"),
        );
    }
    c
}

/// Runs a command, returning its output; panics with the command line and
/// stderr if it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

/// Runs a command that must succeed and returns its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A static file server on 127.0.0.1 for url sources. It serves the files
/// put into its map and counts requests; it stops when dropped.
pub struct FileServer {
    pub port: u16,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    pub requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Milliseconds over which each response is trickled (0: at once).
    delay_ms: Arc<AtomicU64>,
}

impl FileServer {
    pub fn start() -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Default::default();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (f, r, s) = (files.clone(), requests.clone(), stop.clone());
        let d = delay_ms.clone();
        std::thread::spawn(move || {
            // Bounded: the loop ends when the server is dropped, and each
            // connection is served with timeouts.
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).ok();
                        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                        r.fetch_add(1, Ordering::Relaxed);
                        let mut reader = BufReader::new(conn.try_clone().unwrap());
                        let mut line = String::new();
                        if reader.read_line(&mut line).is_err() {
                            continue;
                        }
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                                break;
                            }
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                        let body = f.lock().unwrap().get(&path).cloned();
                        let resp = match body {
                            Some(b) => {
                                let mut v = format!(
                                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                    b.len()
                                )
                                .into_bytes();
                                v.extend_from_slice(&b);
                                v
                            }
                            None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                        };
                        let delay = d.load(Ordering::Relaxed);
                        if delay == 0 {
                            let _ = conn.write_all(&resp);
                        } else {
                            // Slow mirror: the response in 20 pieces
                            // spread over the delay.
                            let piece = resp.len().div_ceil(20).max(1);
                            for c in resp.chunks(piece) {
                                if conn.write_all(c).is_err() {
                                    break;
                                }
                                let _ = conn.flush();
                                std::thread::sleep(Duration::from_millis(delay / 20));
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FileServer {
            port,
            files,
            requests,
            stop,
            delay_ms,
        }
    }

    /// Makes every later response take about `delay` (sent in pieces), so
    /// that a download's progress can be watched; zero restores at once.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Serves `data` at `path` and returns its URL.
    pub fn put(&self, path: &str, data: Vec<u8>) -> String {
        self.files.lock().unwrap().insert(path.to_string(), data);
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// sha256 hex of `data`, computed by the system's `sha256sum` so the tests
/// do not trust the code under test for expected digests.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Compiles tests/fixtures/hello.c statically for the host (amd64).
pub fn hello_binary(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hello.c");
    let out = dir.join("hello");
    ok(Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src));
    out
}

/// A gzip-compressed tar holding `name` with `data`, made by GNU tar.
pub fn tar_gz(dir: &Path, name: &str, data: &[u8]) -> Vec<u8> {
    let stage = dir.join("tgz-stage");
    std::fs::create_dir_all(&stage).unwrap();
    let p = stage.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    let archive = dir.join(format!("{}.tar.gz", name.replace('/', "_")));
    ok(Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&stage)
        .arg(name));
    std::fs::read(archive).unwrap()
}

/// Every file under `dir` with its content, for "untouched" checks.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let mut v = Vec::new();
                std::fs::File::open(&p)
                    .unwrap()
                    .read_to_end(&mut v)
                    .unwrap();
                out.insert(p.strip_prefix(base).unwrap().to_path_buf(), v);
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// A work folder for what a test binary keeps in a `static` for all its
/// tests (a built image): statics are never dropped, so a temporary
/// folder would outlive every run. This one has a fixed place under
/// cargo's target tmpdir and is emptied when a run starts, so at most one
/// copy is ever on disk.
pub fn suite_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("{}: {e}", dir.display()),
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The cache a build uses when no `--cache` is given (the tests that
/// build the default spec share it, as a user's builds do).
pub fn default_cache() -> PathBuf {
    if let Some(d) = std::env::var_os("NETSHOOT_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("netshoot-build");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache/netshoot-build")
}

/// A copy of the repository's `tools/` under `dir`, relocked, and its
/// spec: the committed lock pins security and point-release files that
/// the mirror drops once superseded, and the image tests are about the
/// image, not that pin.
pub fn relocked_default_spec(dir: &Path) -> PathBuf {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools");
    let spec_dir = dir.join("tools");
    ok(Command::new("cp").arg("-a").arg(&tools).arg(&spec_dir));
    let spec = spec_dir.join("netshoot.toml");
    ok(bin().args(["lock", "-q", "--spec"]).arg(&spec));
    spec
}

/// Extracts a static bundle into `dir/scratch/rootfs`, checks that the
/// root then holds `netshoot/` and nothing else (no shell, no libc), and
/// writes runc's default config beside it; returns the bundle folder.
pub fn scratch_bundle(tarball: &Path, dir: &Path) -> PathBuf {
    let bundle = dir.join("scratch");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    ok(Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(&rootfs));
    let top: Vec<String> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(top, ["netshoot"], "the container has more than the bundle");
    ok(Command::new("runc")
        .arg("spec")
        .arg("--bundle")
        .arg(&bundle));
    bundle
}

/// Copies the amd64 image of `layout:tag` into a single-image layout with
/// skopeo, unpacks it with umoci and returns the bundle folder.
pub fn umoci_bundle(layout: &Path, tag: &str, work: &Path) -> PathBuf {
    unpack_platform(layout, tag, "amd64", work)
}

/// Copies platform `arch` of `layout:tag` into a single-image layout
/// (`WORK/single-ARCH`) with skopeo and unpacks it with umoci (as root:
/// owners, modes and xattrs are restored) into `WORK/bundle-ARCH`, which
/// it returns (the root filesystem is its `rootfs`).
pub fn unpack_platform(layout: &Path, tag: &str, arch: &str, work: &Path) -> PathBuf {
    let single = work.join(format!("single-{arch}"));
    ok(Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--override-arch",
            arch,
            "--override-os",
            "linux",
        ])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("oci:{}:{arch}", single.display())));
    let bundle = work.join(format!("bundle-{arch}"));
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{arch}", single.display()))
        .arg(&bundle));
    bundle
}

/// Runs `args` in the bundle with runc (no terminal) and returns stdout.
pub fn runc_run(bundle: &Path, id: &str, args: &[&str]) -> String {
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = serde_json::Value::Bool(false);
    cfg["process"]["args"] = serde_json::json!(args);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let _ = Command::new("runc").args(["delete", "-f", id]).output();
    let out = run(Command::new("timeout")
        .args(["120", "runc", "run", "--bundle"])
        .arg(bundle)
        .arg(id));
    let _ = Command::new("runc").args(["delete", "-f", id]).output();
    assert!(
        out.status.success(),
        "runc run {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A podman with private storage under `dir`, vfs driver, no network
/// setup, and the containers.conf this machine needs (the hard open-files
/// limit is 20000, below podman's default).
pub struct Podman {
    dir: PathBuf,
}

impl Podman {
    pub fn new(dir: &Path) -> Podman {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = []\n",
        )
        .unwrap();
        Podman {
            dir: dir.to_path_buf(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af"]).output();
        let _ = self.cmd().args(["rmi", "-af"]).output();
        // vfs layers may hold read-only files; unmount leftovers first.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("runroot"))
            .output();
    }
}

/// A minimal two-platform spec with a url source per platform and a local
/// file, written into `dir`, served from `server`. Returns the spec path.
pub fn write_fixture_spec(dir: &Path, server: &FileServer, hello: &Path) -> PathBuf {
    let data = std::fs::read(hello).unwrap();
    let tgz = tar_gz(dir, "bin/hello", &data);
    let amd = server.put("/hello-amd64.tar.gz", tgz.clone());
    // arm64 gets the raw file form (the content does not matter: nothing
    // runs it; the test checks both download forms).
    let arm = server.put("/hello-arm64", data.clone());
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/motd"), "welcome to netshoot\n").unwrap();
    let spec = format!(
        r#"platforms = ["linux/amd64", "linux/arm64"]

[image]
name = "netshoot"
tag = "test"
cmd = ["/usr/local/bin/hello", "/etc/motd"]
env = ["PATH=/usr/local/bin:/usr/bin:/bin"]
workdir = "/root"
labels = {{ "org.opencontainers.image.title" = "netshoot" }}

[[local]]
src = "files/motd"
dest = "/etc/motd"

[[url]]
name = "hello"
dest = "/usr/local/bin/hello"
mode = 0o755
[url.platform."linux/amd64"]
url = "{amd}"
sha256 = "{}"
path = "bin/hello"
[url.platform."linux/arm64"]
url = "{arm}"
sha256 = "{}"
"#,
        sha256_hex(&tgz),
        sha256_hex(&data)
    );
    let p = dir.join("netshoot.toml");
    std::fs::write(&p, spec).unwrap();
    p
}

// ---------------------------------------------------------------------
// Registry helpers (push/pull end-to-end tests, tests/push_e2e.rs).
// ---------------------------------------------------------------------

/// A loopback port nothing listens on: bound to an ephemeral port, then
/// released (another process could take it in between; tests use it at
/// once).
pub fn free_loopback_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A real `docker-registry` (Debian's, distribution 2.8) serving plain
/// HTTP on a free 127.0.0.1 port, storing into a temporary folder. The
/// process is killed and the folder removed on drop.
pub struct TestRegistry {
    /// Its port.
    pub port: u16,
    /// `127.0.0.1:PORT`, the registry part of references.
    pub host: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts one and waits (at most 15 s) until it accepts connections.
    pub fn start() -> TestRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_loopback_port();
        let cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-secret-not-for-production\n",
            dir.path().join("data").display()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).expect("write registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start docker-registry");
        // Built before waiting so that a timeout still kills the child.
        let reg = TestRegistry {
            port,
            host: format!("127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The digest (`sha256:...`) of the image tagged `tag` in the layout at
/// `dir`, read from `index.json`; checks with `sha256sum` that the blob it
/// names has that digest, so the expectation does not come from the code
/// under test.
pub fn layout_tag_digest(dir: &Path, tag: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    let entry = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {}", dir.display()));
    let named = entry["digest"].as_str().expect("digest").to_string();
    let hex = named.trim_start_matches("sha256:");
    let blob = std::fs::read(dir.join("blobs/sha256").join(hex)).expect("the tagged blob");
    assert_eq!(
        sha256_hex(&blob),
        hex,
        "blob {named} does not hash to its name"
    );
    named
}

/// The blobs of a layout's SBOM artifacts (their manifests, documents and
/// the shared empty config), which `pull` of the image does not fetch.
pub fn referrer_blobs(layout: &Path) -> std::collections::BTreeSet<PathBuf> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut out = std::collections::BTreeSet::new();
    let path = |d: &str| PathBuf::from("sha256").join(d.trim_start_matches("sha256:"));
    for m in index["manifests"].as_array().unwrap() {
        if let Some(d) = m["digest"]
            .as_str()
            .filter(|_| m["artifactType"].is_string())
        {
            let man: serde_json::Value =
                serde_json::from_slice(&std::fs::read(layout.join("blobs").join(path(d))).unwrap())
                    .unwrap();
            out.insert(path(d));
            out.insert(path(man["config"]["digest"].as_str().unwrap()));
            for l in man["layers"].as_array().unwrap() {
                out.insert(path(l["digest"].as_str().unwrap()));
            }
        }
    }
    out
}

/// The image's own blobs: all but the SBOM artifacts'.
pub fn image_blobs(layout: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let skip = referrer_blobs(layout);
    snapshot(&layout.join("blobs"))
        .into_iter()
        .filter(|(p, _)| !skip.contains(p))
        .collect()
}

// ---------------------------------------------------------------------
// SBOM validators (tests/sbom_validate.rs, tests/image_e2e.rs).
// ---------------------------------------------------------------------

pub const SBOM_VENV: &str = "/opt/netshoot-sbom-venv";
pub const CDX_CHECK: &str = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

validator = JsonStrictValidator(SchemaVersion.V1_5)
with open(sys.argv[1], encoding="utf-8") as f:
    errors = validator.validate_str(f.read(), all_errors=True)
if errors is not None:
    errors = list(errors)
    for e in errors[:20]:
        print(e, file=sys.stderr)
    print(f"{len(errors)} schema error(s)", file=sys.stderr)
    sys.exit(1)
print("valid CycloneDX 1.5")
"#;

/// A tool of the SBOM validators' venv (made by tools/scripts/install-deps.sh).
pub fn sbom_venv_tool(name: &str) -> PathBuf {
    let path = Path::new(SBOM_VENV).join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run tools/scripts/install-deps.sh (it creates the SBOM validator venv {SBOM_VENV})",
        path.display()
    );
    path
}

/// Runs a validator; returns (success, stdout + stderr).
fn run_validator(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// pyspdxtools' verdict on an SPDX file: (valid, its output).
pub fn validate_spdx(file: &Path) -> (bool, String) {
    run_validator(
        Command::new(sbom_venv_tool("pyspdxtools"))
            .arg("-i")
            .arg(file),
    )
}

/// cyclonedx-python-lib's CycloneDX 1.5 schema verdict: (valid, its output).
pub fn validate_cdx(file: &Path) -> (bool, String) {
    run_validator(
        Command::new(sbom_venv_tool("python"))
            .arg("-c")
            .arg(CDX_CHECK)
            .arg(file),
    )
}

// ---------------------------------------------------------------------
// A server that stalls (tests/timeouts_e2e.rs).
// ---------------------------------------------------------------------

/// How a [`StallServer`] stalls.
#[derive(Clone, Copy, Debug)]
pub enum Stall {
    /// Read the request, never answer (a TLS hello included).
    Silent,
    /// Answer `200` with a `Content-Length` of `len`, send `sent` bytes
    /// of the body, then nothing more; hang up on anything but HTTP.
    MidBody { len: usize, sent: usize },
}

/// A server on 127.0.0.1 that accepts every connection, reads the request
/// and then stalls as told, holding the connection open until it is
/// dropped. It counts the requests it read. Bounded: it stops accepting
/// after 2 minutes, each connection is held at most that long, and
/// dropping it releases everything.
pub struct StallServer {
    pub port: u16,
    /// Requests (or TLS hellos) read.
    pub requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StallServer {
    pub fn start(mode: Stall) -> StallServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (r, s) = (r.clone(), s.clone());
                        held.push(std::thread::spawn(move || {
                            stall_one(conn, mode, &r, &s, deadline)
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            s.store(true, Ordering::Relaxed);
            for t in held {
                let _ = t.join();
            }
        });
        StallServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for StallServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request head (a TLS hello is taken as one at once), answers as
/// `mode` says, then holds the connection until `stop` or `deadline`.
fn stall_one(
    mut conn: std::net::TcpStream,
    mode: Stall,
    requests: &AtomicU64,
    stop: &AtomicBool,
    deadline: std::time::Instant,
) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let head_by = std::time::Instant::now() + Duration::from_secs(1);
    let tls_hello = |s: &[u8]| s.first() == Some(&0x16);
    let has_head = |s: &[u8]| s.windows(4).any(|w| w == b"\r\n\r\n");
    while std::time::Instant::now() < head_by && !tls_hello(&seen) && !has_head(&seen) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    requests.fetch_add(1, Ordering::Relaxed);
    if let Stall::MidBody { len, sent } = mode {
        // Like a plain HTTP server, hang up on a TLS hello.
        if !has_head(&seen) {
            return;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&vec![b'x'; sent.min(len)]);
        let _ = conn.flush();
    }
    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
        // Keep reading (and dropping) so the client's writes never block.
        if let Ok(0) = conn.read(&mut buf) {
            return;
        }
    }
}

/// A port on 127.0.0.1 whose listener never accepts and whose queue of
/// connections is full, so that a new connection is never established
/// (the kernel drops its SYN): a server that cannot be connected to, on
/// loopback. Dropping it closes everything.
pub struct FullPort {
    pub port: u16,
    _listener: TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

impl FullPort {
    pub fn start() -> FullPort {
        use std::os::fd::AsRawFd;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        // The shortest queue: one connection waiting fills it.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
        let addr = listener.local_addr().unwrap();
        let queued = (0..3)
            .filter_map(|_| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()
            })
            .collect();
        FullPort {
            port: addr.port(),
            _listener: listener,
            _queued: queued,
        }
    }
}
