//! Test fixtures: real `docker-registry` processes on loopback, a test CA
//! made with `openssl`, small multi-arch images built with `image-layout`,
//! a fault-injecting TCP proxy and a tiny token server. Everything is
//! bounded in time and cleaned up on drop.
#![allow(dead_code)]

use image_layout::layout::{MT_CONFIG, MT_INDEX, MT_MANIFEST, REF_NAME};
use image_layout::{Digest, OciLayout};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A free loopback port (there is a small race until the server binds).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Deterministic pseudo-random bytes (incompressible enough for tests).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A two-platform image: per platform a config, one private layer, and
/// one layer shared between the platforms. Returns the layout and the
/// digest of the index tagged `latest`.
pub struct TestImage {
    pub layout: OciLayout,
    pub index: Digest,
    pub blobs: Vec<Digest>,
    pub manifests: Vec<Digest>,
}

pub fn build_image(dir: &Path, seed: u64, layer_size: usize) -> TestImage {
    let layout = OciLayout::create(dir).expect("create layout");
    let shared = layout
        .put_blob(&random_bytes(seed, layer_size))
        .expect("put layer");
    let mut blobs = vec![shared.digest.clone()];
    let mut manifests = Vec::new();
    let mut entries = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let own = layout
            .put_blob(&random_bytes(
                seed * 31 + i as u64 + 7,
                layer_size / 2 + 1000 * i,
            ))
            .expect("put layer");
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [shared.digest.to_string(), own.digest.to_string()]},
        });
        let cfg = layout.put_json(&config).expect("put config");
        let layer = |b: &image_layout::BlobRef| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": b.digest.to_string(), "size": b.size});
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": cfg.digest.to_string(), "size": cfg.size},
            "layers": [layer(&shared), layer(&own)],
        });
        let m = layout.put_json(&manifest).expect("put manifest");
        blobs.push(own.digest.clone());
        blobs.push(cfg.digest.clone());
        manifests.push(m.digest.clone());
        entries.push(serde_json::json!({
            "mediaType": MT_MANIFEST, "digest": m.digest.to_string(), "size": m.size,
            "platform": {"os": "linux", "architecture": arch},
        }));
    }
    let index =
        serde_json::json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries});
    let idx = layout.put_json(&index).expect("put index");
    let top = serde_json::json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [{
        "mediaType": MT_INDEX, "digest": idx.digest.to_string(), "size": idx.size,
        "annotations": {REF_NAME: "latest"},
    }]});
    layout
        .write_index(&serde_json::from_value(top).expect("index.json"))
        .expect("write index.json");
    TestImage {
        layout,
        index: idx.digest,
        blobs,
        manifests,
    }
}

/// Certificates made with `openssl`: a CA and a server cert for 127.0.0.1.
pub struct TestCa {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

pub fn make_ca(dir: &Path) -> TestCa {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=netshoot test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("server.crt"))
        .arg("-extfile")
        .arg(p("ext.cnf")));
    TestCa {
        dir: dir.to_path_buf(),
        ca_cert: p("ca.crt"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
    }
}

/// How a test registry authenticates.
pub enum Auth {
    None,
    Htpasswd {
        user: String,
        password: String,
    },
    Token {
        realm: String,
        service: String,
        issuer: String,
        root_cert: PathBuf,
    },
}

/// A `docker-registry` process on a loopback port; killed on drop.
pub struct Registry {
    pub port: u16,
    pub host: String,
    pub tls: bool,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(auth: Auth, tls: Option<&TestCa>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-secret-not-for-production\n",
            dir.path().join("data").display()
        );
        if let Some(ca) = tls {
            cfg.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                ca.server_cert.display(),
                ca.server_key.display()
            ));
        }
        match &auth {
            Auth::None => {}
            Auth::Htpasswd { user, password } => {
                let file = dir.path().join("htpasswd");
                let line = run(Command::new("htpasswd").args(["-Bbn", user, password]));
                std::fs::write(&file, line).expect("write htpasswd");
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    file.display()
                ));
            }
            Auth::Token {
                realm,
                service,
                issuer,
                root_cert,
            } => {
                cfg.push_str(&format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                    root_cert.display()
                ));
            }
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).expect("write config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            port,
            host: format!("127.0.0.1:{port}"),
            tls: tls.is_some(),
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }
}

impl Registry {
    /// The registry's process id (for CPU accounting in benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `skopeo` with TLS verification off for the plain-HTTP test registries.
pub fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(args)
        .env("TMPDIR", std::env::temp_dir())
        .output()
        .expect("run skopeo")
}

/// Every blob file name in a layout.
pub fn layout_blobs(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .expect("read blobs")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// A fault the proxy injects into one matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Forward this many body bytes, then cut both connections.
    ResetAfter(u64),
    /// Answer with this status (and `Retry-After` seconds) without
    /// forwarding.
    Status(u16, Option<u64>),
    /// Hold the request this long without answering, then close.
    Stall(Duration),
}

/// A loopback proxy in front of a registry that counts blob upload body
/// bytes and injects faults into blob uploads. One request per
/// connection (it asks both sides to close), which keeps it simple.
pub struct FaultProxy {
    pub port: u16,
    pub host: String,
    /// Faults for the next matching requests, in order.
    pub faults: Arc<Mutex<std::collections::VecDeque<Fault>>>,
    /// A fault for every matching request (persistent failure).
    pub always: Arc<Mutex<Option<Fault>>>,
    /// Body bytes of PUT/PATCH requests to blob upload URLs forwarded.
    pub upload_bytes: Arc<AtomicU64>,
    /// Faults injected.
    pub injected: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let faults = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        let always = Arc::new(Mutex::new(None));
        let upload_bytes = Arc::new(AtomicU64::new(0));
        let injected = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, a, u, i, s) = (
            faults.clone(),
            always.clone(),
            upload_bytes.clone(),
            injected.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            // Bounded: the proxy lives at most 5 minutes.
            let deadline = Instant::now() + Duration::from_secs(300);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (f, a, u, i) = (f.clone(), a.clone(), u.clone(), i.clone());
                        std::thread::spawn(move || {
                            let _ = proxy_one(conn, upstream_port, &f, &a, &u, &i);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy {
            port,
            host: format!("127.0.0.1:{port}"),
            faults,
            always,
            upload_bytes,
            injected,
            stop,
            thread: Some(thread),
        }
    }

    pub fn push_fault(&self, f: Fault) {
        self.faults.lock().expect("lock").push_back(f);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn proxy_one(
    client: TcpStream,
    upstream_port: u16,
    faults: &Mutex<std::collections::VecDeque<Fault>>,
    always: &Mutex<Option<Fault>>,
    upload_bytes: &AtomicU64,
    injected: &AtomicUsize,
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    if request_line.is_empty() {
        return Ok(());
    }
    let mut content_length = 0u64;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") {
            continue;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let is_upload = (method == "PUT" || method == "PATCH") && path.contains("/blobs/uploads/");
    let fault = if is_upload && content_length > 0 {
        let f = faults.lock().expect("lock").pop_front();
        f.or_else(|| always.lock().expect("lock").clone())
    } else {
        None
    };
    let mut client_w = client.try_clone()?;
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            injected.fetch_add(1, Ordering::Relaxed);
            // Drain the body so the client reads our answer.
            std::io::copy(
                &mut (&mut reader).take(content_length),
                &mut std::io::sink(),
            )?;
            let body =
                format!(r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected {code}"}}]}}"#);
            let ra = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            write!(
                client_w,
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\n{ra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            let _ = client_w.shutdown(Shutdown::Both);
            return Ok(());
        }
        Some(Fault::Stall(d)) => {
            injected.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(d);
            let _ = client_w.shutdown(Shutdown::Both);
            return Ok(());
        }
        _ => {}
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream_port))?;
    up.write_all(request_line.as_bytes())?;
    up.write_all(&head)?;
    up.write_all(b"Connection: close\r\n\r\n")?;
    let mut remaining = content_length;
    let cut_at = match fault {
        Some(Fault::ResetAfter(n)) => Some(n.min(content_length.saturating_sub(1))),
        _ => None,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut forwarded = 0u64;
    while remaining > 0 {
        let want = (remaining as usize).min(buf.len());
        let want = match cut_at {
            Some(c) => want
                .min((c - forwarded) as usize)
                .max(if c == forwarded { 0 } else { 1 }),
            None => want,
        };
        if want == 0 {
            injected.fetch_add(1, Ordering::Relaxed);
            let _ = up.shutdown(Shutdown::Both);
            let _ = client_w.shutdown(Shutdown::Both);
            return Ok(());
        }
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            return Ok(());
        }
        up.write_all(&buf[..n])?;
        if is_upload {
            upload_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        forwarded += n as u64;
        remaining -= n as u64;
    }
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    std::io::copy(&mut up, &mut client_w)?;
    let _ = client_w.shutdown(Shutdown::Both);
    Ok(())
}

/// A tiny token service for docker-registry's `token` auth: signs ES256
/// JWTs with an `x5c` header carrying its self-signed certificate, which
/// is also the registry's `rootcertbundle`.
pub struct TokenServer {
    pub port: u16,
    pub realm: String,
    pub cert: PathBuf,
    /// Every `scope` parameter asked for, in order.
    pub scopes_seen: Arc<Mutex<Vec<String>>>,
    /// Grant types seen on POST (`password`, `refresh_token`) and `GET`.
    pub grants_seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

pub const TOKEN_SERVICE: &str = "test-registry";
pub const TOKEN_ISSUER: &str = "test-issuer";

impl TokenServer {
    /// `users`: accepted user/password pairs; anonymous gets nothing.
    pub fn start(users: Vec<(String, String)>) -> TokenServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=token signer",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        // jsonwebtoken wants PKCS#8; openssl req writes that already, but
        // normalise to be sure.
        let pk8 = run(Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
            .arg(&key));
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl");
        use base64::Engine as _;
        let x5c = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
        let enc = jsonwebtoken::EncodingKey::from_ec_pem(pk8.as_bytes()).expect("EC key");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let scopes_seen = Arc::new(Mutex::new(Vec::new()));
        let grants_seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sc, gr, st) = (scopes_seen.clone(), grants_seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            let counter = AtomicU64::new(0);
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = serve_token(conn, &users, &enc, &x5c, &sc, &gr, &counter);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TokenServer {
            port,
            realm: format!("http://127.0.0.1:{port}/token"),
            cert,
            scopes_seen,
            grants_seen,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn serve_token(
    conn: TcpStream,
    users: &[(String, String)],
    enc: &jsonwebtoken::EncodingKey,
    x5c: &str,
    scopes_seen: &Mutex<Vec<String>>,
    grants_seen: &Mutex<Vec<String>>,
    counter: &AtomicU64,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0usize;
    let mut basic: Option<(String, String)> = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("authorization: basic ") {
            use base64::Engine as _;
            let b64 = line.trim()["authorization: basic ".len()..].to_string();
            if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
                let s = String::from_utf8_lossy(&raw).to_string();
                if let Some((u, p)) = s.split_once(':') {
                    basic = Some((u.to_string(), p.to_string()));
                }
            }
        }
    }
    let mut body = vec![0u8; content_length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params = if method == "POST" {
        parse_query(&String::from_utf8_lossy(&body))
    } else {
        parse_query(query)
    };
    let get = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let mut w = conn;
    let reply = |w: &mut TcpStream, status: &str, body: &str| {
        write!(w, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    };
    // Who is asking?
    let user: Option<String> = if method == "POST" {
        let grant = get("grant_type").unwrap_or_default();
        grants_seen.lock().expect("lock").push(grant.clone());
        match grant.as_str() {
            "password" => {
                let (u, p) = (
                    get("username").unwrap_or_default(),
                    get("password").unwrap_or_default(),
                );
                if !users.iter().any(|(x, y)| *x == u && *y == p) {
                    return reply(
                        &mut w,
                        "401 Unauthorized",
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad password"}]}"#,
                    );
                }
                Some(u)
            }
            "refresh_token" => {
                get("refresh_token").and_then(|r| r.strip_prefix("refresh-").map(str::to_string))
            }
            _ => return reply(&mut w, "400 Bad Request", "{}"),
        }
    } else {
        grants_seen.lock().expect("lock").push("GET".into());
        match basic {
            Some((u, p)) if users.iter().any(|(x, y)| *x == u && *y == p) => Some(u),
            Some(_) => {
                return reply(
                    &mut w,
                    "401 Unauthorized",
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
                )
            }
            None => None,
        }
    };
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let mut access = Vec::new();
    for s in &scopes {
        scopes_seen.lock().expect("lock").push(s.clone());
        // repository:NAME:ACTIONS
        let mut it = s.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if user.is_some() {
            access.push(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": user.clone().unwrap_or_default(),
        "aud": get("service").unwrap_or_default(),
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("t{}", counter.fetch_add(1, Ordering::Relaxed)),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![x5c.to_string()]);
    let token = jsonwebtoken::encode(&header, &claims, enc).map_err(std::io::Error::other)?;
    let refresh = match (&user, method) {
        (Some(u), "POST") => format!(r#","refresh_token":"refresh-{u}""#),
        _ => String::new(),
    };
    let body =
        format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":300{refresh}}}"#);
    reply(&mut w, "200 OK", &body)
}

/// How a [`StallServer`] stalls.
#[derive(Clone, Copy, Debug)]
pub enum Stall {
    /// Read the request, never answer (a TLS hello included).
    Silent,
    /// Answer `200` with a `Content-Length` of `len`, send `sent` bytes
    /// of the body, then nothing more; hang up on anything but HTTP.
    MidBody { len: usize, sent: usize },
}

/// A loopback server that accepts every connection, reads what the client
/// sends and then stalls as told, holding the connection open until it is
/// dropped. Bounded: it stops accepting after 2 minutes, each connection
/// thread ends within 2 minutes, and dropping it releases everything.
pub struct StallServer {
    pub port: u16,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StallServer {
    pub fn start(mode: Stall) -> StallServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stall server");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        let s = s.clone();
                        held.push(std::thread::spawn(move || {
                            stall_one(conn, mode, &s, deadline)
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
            host: format!("127.0.0.1:{port}"),
            connections,
            stop,
            thread: Some(thread),
        }
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

/// Reads the request head (or whatever comes within a second: a TLS
/// hello has no blank line), answers as `mode` says, then holds the
/// connection until `stop` or `deadline`.
fn stall_one(mut conn: TcpStream, mode: Stall, stop: &AtomicBool, deadline: Instant) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let head_by = Instant::now() + Duration::from_secs(1);
    let tls_hello = |s: &[u8]| s.first() == Some(&0x16);
    while Instant::now() < head_by
        && !tls_hello(&seen)
        && !seen.windows(4).any(|w| w == b"\r\n\r\n")
    {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let is_http = seen.windows(4).any(|w| w == b"\r\n\r\n");
    if let Stall::MidBody { len, sent } = mode {
        // Like a plain HTTP server, hang up on a TLS hello.
        if !is_http {
            return;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&vec![b'x'; sent.min(len)]);
        let _ = conn.flush();
    }
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        // Keep reading (and dropping) so the client's writes never block.
        if let Ok(0) = conn.read(&mut buf) {
            return;
        }
    }
}
