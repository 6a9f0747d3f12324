//! The netshoot image in the ways its users launch it, with real network
//! namespaces: runc joined to a "target container" namespace (what
//! `docker run --net container:<name>` does), runc in the host namespace
//! (`--net host`), the `kubectl run ... -- /bin/bash -c CMD` form, podman
//! with `--network container:` and `--network host`, and every ELF on
//! PATH checked for missing libraries on amd64 and (under qemu) arm64.
//!
//! All addresses are from 192.0.2.0/24 inside namespaces these tests make
//! and remove; every loop is bounded.

mod common;
use common::netns::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The default image, built once for this test binary, unpacked per arch.
struct Image {
    _dir: PathBuf,
    spec: PathBuf,
    layout: PathBuf,
    amd64: PathBuf,
    arm64: PathBuf,
}

/// arm64 binaries run through binfmt_misc's qemu-aarch64 (installed and
/// enabled by tools/scripts/install-deps.sh).
fn require_binfmt() {
    let reg = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64").unwrap_or_default();
    assert!(
        reg.contains("enabled") && reg.contains("flags: ") && reg.lines().any(|l| l.starts_with("flags:") && l.contains('F')),
        "qemu-aarch64 is not registered with binfmt_misc (flag F); run tools/scripts/install-deps.sh: {reg:?}"
    );
}

/// The default spec's tag (`[image] tag`), the toolset version.
fn tag() -> String {
    let spec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/netshoot.toml"),
    )
    .unwrap();
    spec.lines()
        .find_map(|l| l.strip_prefix("tag = \""))
        .and_then(|r| r.split('"').next())
        .expect("tools/netshoot.toml has a tag")
        .to_string()
}

fn image() -> &'static Image {
    static IMG: OnceLock<Image> = OnceLock::new();
    require_binfmt();
    IMG.get_or_init(|| {
        let dir = suite_dir("image_e2e");
        let spec = relocked_default_spec(&dir);
        let layout = dir.join("netshoot");
        ok(bin()
            .args(["build", "-q", "--locked", "--spec"])
            .arg(&spec)
            .arg("--out")
            .arg(&layout));
        let unpack = |arch: &str| unpack_platform(&layout, &tag(), arch, &dir).join("rootfs");
        let amd64 = unpack("amd64");
        let arm64 = unpack("arm64");
        Image {
            spec,
            layout,
            amd64,
            arm64,
            _dir: dir,
        }
    })
}

/// Runs `script` with bash in a runc container over `rootfs`, in the
/// network namespace at `netns` (None: the host's, like `--net host`).
fn runc(rootfs: &Path, netns: Option<&str>, caps: &[&str], script: &str) -> (bool, String) {
    runc_shell(rootfs, netns, caps, None, "/bin/bash", script)
}

/// As [`runc`], as user `uid:gid` when given.
fn runc_as(
    rootfs: &Path,
    netns: Option<&str>,
    caps: &[&str],
    user: Option<(u32, u32)>,
    script: &str,
) -> (bool, String) {
    runc_shell(rootfs, netns, caps, user, "/bin/bash", script)
}

/// The capabilities `docker run --cap-add NET_ADMIN` gives a container
/// (Docker's default set plus NET_ADMIN, as netshoot's README suggests for
/// iptables and tc).
fn docker_caps_plus_net_admin() -> Vec<&'static str> {
    let mut caps = DOCKER_DEFAULT_CAPS.to_vec();
    caps.push("NET_ADMIN");
    caps
}

const DNS_SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.1", 53))
for _ in range(200):
    q, addr = s.recvfrom(512)
    # Header: same id, QR+RD+RA, 1 question, 1 answer; the question is
    # echoed and answered with an A record 192.0.2.1 (TTL 60).
    end = 12
    while q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([192, 0, 2, 1])
    s.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question + answer, addr)
"#;

/// Makes a test CA and a server certificate it signs for 192.0.2.1 (the
/// subject alternative name websocat checks), with the image's openssl.
const WSS_CERTS: &str = "set -e; cd /srv; \
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=netshoot-test-ca -keyout ca.key -out ca.pem 2>/dev/null; \
openssl req -newkey rsa:2048 -nodes -subj /CN=192.0.2.1 -addext subjectAltName=IP:192.0.2.1 -keyout ws.key -out ws.csr 2>/dev/null; \
openssl x509 -req -in ws.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -copy_extensions copy -out ws.pem 2>/dev/null";

/// A WebSocket echo server (RFC 6455, text and binary frames up to 64 KiB),
/// for `websocat` to reach; it serves a bounded number of connections.
const WS_ECHO_SERVER: &str = r#"
import base64, hashlib, socket
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.1", 8765))
s.listen(4)
def read(c, n):
    b = b""
    while len(b) < n:
        part = c.recv(n - len(b))
        if not part:
            raise EOFError
        b += part
    return b
for _ in range(20):
    c, _ = s.accept()
    c.settimeout(10)
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            head += read(c, 1)
        key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            b0, b1 = read(c, 2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = int.from_bytes(read(c, 2), "big")
            mask = read(c, 4) if b1 & 0x80 else b"\0\0\0\0"
            data = bytes(x ^ mask[i % 4] for i, x in enumerate(read(c, n)))
            if op == 8:
                c.sendall(bytes([0x88, 0]))
                break
            if op in (1, 2):
                hdr = bytes([0x80 | op, len(data)]) if len(data) < 126 else bytes([0x80 | op, 126]) + len(data).to_bytes(2, "big")
                c.sendall(hdr + data)
    except Exception:
        pass
    c.close()
"#;

#[test]
fn net_container_mode_runs_the_readme_scenarios() {
    let img = image();
    let rootfs = &img.amd64;
    let mut net = Net::new("a");
    let nsp = format!("/var/run/netns/{}", net.target);
    // The target's services, run from the image's own binaries.
    std::fs::create_dir_all(rootfs.join("srv/www")).unwrap();
    std::fs::write(rootfs.join("srv/www/index.html"), "netshoot target page\n").unwrap();
    std::fs::write(rootfs.join("srv/dns.py"), DNS_SERVER).unwrap();
    std::fs::write(rootfs.join("srv/ws.py"), WS_ECHO_SERVER).unwrap();
    net.exec(
        &net.target.clone(),
        rootfs,
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=target.example -keyout /srv/k.pem -out /srv/c.pem 2>/dev/null",
    );
    // A test CA and a certificate it signs for 192.0.2.1: the TLS front of
    // the WebSocket echo server, for `websocat wss://`.
    net.exec(&net.target.clone(), rootfs, WSS_CERTS);
    let t = net.target.clone();
    net.spawn(
        &t,
        rootfs,
        "exec python3 -m http.server 8080 --bind 192.0.2.1 --directory /srv/www",
    );
    net.spawn(&t, rootfs, "exec python3 /srv/dns.py");
    net.spawn(
        &t,
        rootfs,
        "exec openssl s_server -quiet -accept 8443 -cert /srv/c.pem -key /srv/k.pem -www",
    );
    net.spawn(&t, rootfs, "exec iperf3 -s -B 192.0.2.1 -p 5201");
    net.spawn(&t, rootfs, "exec python3 /srv/ws.py");
    net.spawn(
        &t,
        rootfs,
        "exec socat OPENSSL-LISTEN:8766,bind=192.0.2.1,reuseaddr,fork,cert=/srv/ws.pem,key=/srv/ws.key,verify=0 TCP:192.0.2.1:8765",
    );
    wait_until("the target's servers", || {
        Command::new("ip")
            .args(["netns", "exec", &t, "chroot"])
            .arg(rootfs)
            .args(["ss", "-tln"])
            .output()
            .map(|o| {
                let s = String::from_utf8_lossy(&o.stdout);
                s.contains(":8080")
                    && s.contains(":8443")
                    && s.contains(":5201")
                    && s.contains(":8765")
                    && s.contains(":8766")
            })
            .unwrap_or(false)
    });

    // Another process (in the peer) talks to the target while netshoot
    // captures: a bounded loop of 30 requests.
    let mut curl = argv(&["chroot"]);
    curl.push(rootfs.clone().into());
    curl.extend(argv(&[
        "curl",
        "-s",
        "-m",
        "2",
        "-o",
        "/dev/null",
        "http://192.0.2.1:8080/",
    ]));
    let traffic = net.requests_from_peer(curl, 30);

    let script = r#"
set -u
echo "== ip route"; ip route
echo "== ss"; ss -tulnp
echo "== tcpdump"; timeout 20 tcpdump -Z root -n -c 5 -i eth0 -w /tmp/cap.pcap tcp port 8080 2>&1
echo "== tshark"; tshark -r /tmp/cap.pcap 2>/dev/null | head -5
echo "== dig"; dig +short @192.0.2.1 target.example
echo "== drill"; drill @192.0.2.1 target.example | grep -A1 'ANSWER SECTION'
echo "== curl"; curl -s http://192.0.2.1:8080/
echo "== nc"; nc -vz -w 3 192.0.2.1 8080 2>&1
echo "== nmap"; nmap -Pn -p 8080 192.0.2.1 | grep 8080
echo "== iperf3"; iperf3 -c 192.0.2.1 -t 1 | tail -3
echo "== mtr"; mtr --report -c 2 192.0.2.2
echo "== trip"; timeout 60 trip --mode pretty --report-cycles 2 192.0.2.2 2>&1
echo "== websocat"; echo echo-through-websocat | timeout 10 websocat -1 ws://192.0.2.1:8765/ 2>&1
echo "== websocat-mirror"; websocat -t ws-l:127.0.0.1:9100 mirror: 2>/dev/null &
listening() { for i in $(seq 50); do ss -tln | grep -q "127.0.0.1:$1 " && return 0; sleep 0.1; done; return 1; }
listening 9100; echo hi-mirror | timeout 10 websocat -1 ws://127.0.0.1:9100/ 2>&1; kill %1
echo "== websocat-s"; (echo from-s-server; sleep 3) | timeout 10 websocat -s 9101 >/tmp/s.out 2>&1 &
listening 9101; echo to-s-server | timeout 10 websocat -1 ws://127.0.0.1:9101/ 2>&1; sleep 0.5; cat /tmp/s.out
echo "== wss"; echo secure-hello | SSL_CERT_FILE=/srv/ca.pem timeout 10 websocat -1 wss://192.0.2.1:8766/ 2>&1
echo "== wss-untrusted"; echo x | timeout 10 strace -f -e trace=open,openat -o /tmp/wss.trace websocat -1 wss://192.0.2.1:8766/ 2>&1; echo "rc=$?"
b=$(grep -oE '"[^"]*(cert\.pem|ca-certificates\.crt)"' /tmp/wss.trace | head -1 | tr -d '"'); echo "bundle $b -> $(readlink -f "$b")"
echo "== oha"; oha -n 20 -c 2 --no-tui http://192.0.2.1:8080/ 2>&1
echo "== openssl"; echo | timeout 10 openssl s_client -connect 192.0.2.1:8443 2>&1 | grep -E 'CONNECTED|Cipher is'
echo "== iptables"; iptables -L -n | head -3
echo "== nft"; nft list ruleset; echo "nft rc=$?"
echo "== http"; http --version
echo "== swaks"; swaks --help >/dev/null; echo "help rc=$?"; swaks --version
echo "== end"
"#;
    let (okay, out) = runc(rootfs, Some(&nsp), &docker_caps_plus_net_admin(), script);
    traffic.join().unwrap();
    let section = |name: &str| section(&out, name);
    assert!(okay, "{out}");
    assert!(
        section("ip route").contains("192.0.2.0/24 dev eth0"),
        "{out}"
    );
    let ss = section("ss");
    for port in [":8080", ":8443", ":5201", ":53"] {
        assert!(
            ss.contains(port),
            "ss does not list the target's {port}: {ss}"
        );
    }
    assert!(section("tcpdump").contains("5 packets captured"), "{out}");
    assert!(section("tshark").lines().count() >= 5, "{out}");
    assert!(section("tshark").contains("192.0.2.2"), "{out}");
    assert_eq!(section("dig").trim(), "192.0.2.1", "{out}");
    assert!(section("drill").contains("192.0.2.1"), "{out}");
    assert_eq!(section("curl").trim(), "netshoot target page", "{out}");
    assert!(section("nc").contains("succeeded"), "{out}");
    assert!(section("nmap").contains("8080/tcp open"), "{out}");
    assert!(section("iperf3").contains("receiver"), "{out}");
    assert!(section("mtr").contains("192.0.2.2"), "{out}");
    assert!(section("trip").contains("192.0.2.2"), "{out}");
    assert!(
        section("websocat").contains("echo-through-websocat"),
        "{out}"
    );
    // websocat 1.x's own server forms: `-t ws-l: mirror:` and `-s PORT`.
    assert!(section("websocat-mirror").contains("hi-mirror"), "{out}");
    let simple = section("websocat-s");
    assert!(
        simple.contains("from-s-server") && simple.contains("to-s-server"),
        "{out}"
    );
    // wss:// with the test CA verifies; without it the handshake fails on
    // the certificate, after reading the image's CA bundle.
    assert_eq!(section("wss").trim(), "secure-hello", "{out}");
    let untrusted = section("wss-untrusted");
    assert!(
        untrusted.contains("certificate verify failed") && !untrusted.contains("rc=0"),
        "{out}"
    );
    // openssl-probe finds the image's bundle (Debian's /usr/lib/ssl/cert.pem
    // is a link to it).
    assert!(
        untrusted.contains("-> /etc/ssl/certs/ca-certificates.crt"),
        "{out}"
    );
    let oha = section("oha");
    assert!(
        oha.contains("Success rate") && oha.contains("100.00%"),
        "{out}"
    );
    assert!(oha.contains("[200] 20 responses"), "{out}");
    let tls = section("openssl");
    assert!(
        tls.contains("CONNECTED") && tls.contains("Cipher is"),
        "{out}"
    );
    assert!(section("iptables").contains("Chain INPUT"), "{out}");
    assert!(section("nft").contains("nft rc=0"), "{out}");
    assert!(section("http").trim().starts_with('3'), "{out}");
    let swaks = section("swaks");
    assert!(
        swaks.contains("help rc=0") && swaks.contains("swaks version"),
        "{out}"
    );
}

#[test]
fn host_mode_and_kubectl_run_form() {
    let img = image();
    // `--net host`: the container sees the host's interfaces.
    let host = ok(Command::new("ip").args(["-brief", "link"]));
    let first = host.split_whitespace().next().unwrap().to_string();
    let (okay, out) = runc(
        &img.amd64,
        None,
        &docker_caps_plus_net_admin(),
        "ip -brief link",
    );
    assert!(okay, "{out}");
    assert!(
        out.contains(&first),
        "host interface {first} not seen: {out}"
    );
    // `kubectl run tmp-shell --image netshoot -- /bin/bash -c CMD`.
    let (okay, out) = runc(
        &img.amd64,
        None,
        &[],
        "echo kubectl-form-ok; test -x /bin/bash",
    );
    assert!(okay && out.contains("kubectl-form-ok"), "{out}");
    // The default command is zsh, in /root, as netshoot has it.
    let cfg = ok(Command::new("skopeo")
        .args(["inspect", "--config", "--override-arch", "amd64"])
        .arg(format!("oci:{}:{}", img.layout.display(), tag())));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["zsh"]));
    assert_eq!(cfg["config"]["WorkingDir"], "/root");
    // /root is group 0 and group-writable (the spec's [[dir]]) although
    // base-files ships it 0700 and the image adds /root/.zshrc.
    let (okay, out) = runc(
        &img.amd64,
        None,
        &[],
        "stat -c '%a %U %G' /root /root/.zshrc",
    );
    assert!(
        okay && out.starts_with("770 root root\n644 root root"),
        "{out}"
    );
    // OpenShift's restricted SCC: an arbitrary uid in group 0, HOME=/root.
    let (okay, out) = runc_as(
        &img.amd64,
        None,
        &[],
        Some((1000680000, 0)),
        "touch /root/.zsh_history && mkdir -p /root/work && echo written > /root/work/f && \
         cat /root/work/f && zsh -ic 'echo zsh-as-arbitrary-uid' 2>&1",
    );
    assert!(
        okay && out.contains("written") && out.contains("zsh-as-arbitrary-uid"),
        "{out}"
    );
    let (okay, out) = runc(&img.amd64, None, &[], "zsh -ic 'echo zsh-ok' 2>&1");
    assert!(okay && out.contains("zsh-ok"), "{out}");
}

/// Lists ELF executables on PATH whose libraries the dynamic loader
/// cannot find, running the image's own loader (`--list`), under
/// `qemu` for a foreign architecture.
fn missing_libraries(rootfs: &Path, loader: &str, qemu: Option<&str>) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut bad = Vec::new();
    for dir in ["usr/bin", "usr/sbin", "usr/local/bin"] {
        let Ok(rd) = std::fs::read_dir(rootfs.join(dir)) else {
            continue;
        };
        let mut names: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let real = match std::fs::canonicalize(&p) {
                Ok(r) if r.starts_with(rootfs) => r,
                // Links through /etc/alternatives resolve inside the image.
                _ => {
                    let Ok(t) = std::fs::read_link(&p) else {
                        continue;
                    };
                    let t = if t.is_absolute() {
                        rootfs.join(t.strip_prefix("/").unwrap())
                    } else {
                        p.parent().unwrap().join(t)
                    };
                    match std::fs::canonicalize(&t) {
                        Ok(r) => r,
                        Err(_) => continue,
                    }
                }
            };
            let Ok(head) = std::fs::read(&real).map(|b| b.get(..4).map(|h| h.to_vec())) else {
                continue;
            };
            if head.as_deref() != Some(b"\x7fELF") {
                continue;
            }
            let inside = format!("/{}", real.strip_prefix(rootfs).unwrap_or(&real).display());
            // A foreign loader runs through binfmt_misc's qemu (registered
            // with the F flag, so it works inside the chroot, and absolute
            // symlinks such as /etc/alternatives resolve in the image).
            let _ = qemu;
            let out = Command::new("chroot")
                .arg(rootfs)
                .args([loader, "--list", &inside])
                .output();
            let Ok(out) = out else { continue };
            checked += 1;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if text.contains("not found") {
                bad.push(format!(
                    "{inside}: {}",
                    text.lines()
                        .filter(|l| l.contains("not found"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
        }
    }
    (checked, bad)
}

#[test]
fn every_elf_on_path_finds_its_libraries_on_both_arches() {
    let img = image();
    let (n, bad) = missing_libraries(&img.amd64, "/lib64/ld-linux-x86-64.so.2", None);
    assert!(n > 300, "only {n} ELF files checked on amd64");
    assert!(
        bad.is_empty(),
        "amd64 missing libraries:\n{}",
        bad.join("\n")
    );
    let (n, bad) = missing_libraries(
        &img.arm64,
        "/lib/ld-linux-aarch64.so.1",
        Some("qemu-aarch64-static"),
    );
    assert!(n > 300, "only {n} ELF files checked on arm64");
    assert!(
        bad.is_empty(),
        "arm64 missing libraries:\n{}",
        bad.join("\n")
    );
    // And the main tools really run on arm64 under qemu-user.
    for cmd in [
        &["/usr/bin/curl", "--version"][..],
        &["/usr/bin/ip", "-V"],
        &["/usr/bin/tcpdump", "--version"],
        &["/usr/bin/nmap", "--version"],
        &["/usr/bin/bash", "-c", "uname -m"],
    ] {
        let out = ok(Command::new("chroot").arg(&img.arm64).args(cmd));
        assert!(!out.is_empty(), "{cmd:?} printed nothing");
    }
    let arch = ok(Command::new("chroot")
        .arg(&img.arm64)
        .args(["/usr/bin/uname", "-m"]));
    assert_eq!(arch.trim(), "aarch64");
}

/// The non-root variant of the default spec (amd64), built once for this
/// test binary and unpacked: its root filesystem.
fn nonroot() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = suite_dir("image_e2e_nonroot");
        let spec = relocked_default_spec(&dir);
        let layout = dir.join("nonroot");
        ok(bin()
            .args([
                "build",
                "-q",
                "--locked",
                "--variant",
                "nonroot",
                "--platform",
                "linux/amd64",
                "--spec",
            ])
            .arg(&spec)
            .arg("--out")
            .arg(&layout));
        let cfg = ok(Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:{}-nonroot", layout.display(), tag())));
        assert!(cfg.contains("\"User\": \"65532:65532\""), "{cfg}");
        umoci_bundle(&layout, &format!("{}-nonroot", tag()), &dir).join("rootfs")
    })
}

#[test]
fn nonroot_variant_captures_with_net_raw() {
    let rootfs = nonroot();
    // Capability-aware programs without the effective bit; the others
    // guarded: the real file moved aside with `=ep`, a launcher in place.
    for (file, caps) in [
        ("usr/bin/ping", "cap_net_raw=p"),
        ("usr/local/bin/trip", "cap_net_raw=p"),
        ("usr/libexec/netshoot/guarded/tcpdump", "cap_net_raw=ep"),
        ("usr/libexec/netshoot/guarded/mtr-packet", "cap_net_raw=ep"),
    ] {
        let getcap = ok(Command::new("getcap").arg(rootfs.join(file)));
        assert!(getcap.trim_end().ends_with(caps), "{file}: {getcap}");
    }
    let launcher = std::fs::read_to_string(rootfs.join("usr/bin/tcpdump")).unwrap();
    assert!(launcher.starts_with("#!/bin/sh\n"), "{launcher}");
    let getcap = ok(Command::new("getcap").arg(rootfs.join("usr/bin/tcpdump")));
    assert!(getcap.is_empty(), "the launcher has capabilities: {getcap}");

    let net = Net::new("n");
    let nsp = format!("/var/run/netns/{}", net.target);
    // Connection attempts to a closed port of the peer, from inside the
    // container once it runs (runc may wait for another test's container):
    // SYNs and resets to capture.
    let (okay, out) = runc_as(
        rootfs,
        Some(&nsp),
        &["NET_RAW"],
        Some((65532, 65532)),
        "id -u; echo home=$HOME; grep -c '^nonroot:' /etc/passwd; (for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.5; curl -s -m 1 http://192.0.2.2:9/; done) & timeout 20 tcpdump -n -c 3 -i eth0 -w /tmp/nr.pcap tcp 2>&1; wait",
    );
    assert!(okay, "{out}");
    assert!(out.starts_with("65532\n"), "{out}");
    assert!(out.contains("3 packets captured"), "{out}");
    // Without NET_RAW granted, the capability is refused, as it must be.
    let (okay, out) = runc_as(
        rootfs,
        Some(&nsp),
        &[],
        Some((65532, 65532)),
        "tcpdump -n -c 1 -i eth0 2>&1; echo rc=$?",
    );
    assert!(okay, "{out}");
    assert!(!out.contains("1 packet captured"), "{out}");
}

/// Docker's default capability set (`docker run` without `--cap-*`).
const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// `net.ipv4.ping_group_range` as Docker and containerd 2 set it (every
/// group may open ICMP datagram sockets), and the kernel's default (none).
const PING_ANY_GROUP: &str = "0 2147483647";
const PING_NO_GROUP: &str = "1 0";

/// The ways the variant is run, by name: what `docker run --user 65532`,
/// `--cap-drop ALL`, Kubernetes' restricted standard (on a runtime that
/// opens ICMP datagram sockets, and on one that does not), and NET_RAW
/// alone with and without no_new_privs give the process.
fn modes() -> Vec<(&'static str, Confinement)> {
    let mode = |bounding: &[&'static str], no_new_privs, ping_group_range| Confinement {
        bounding: bounding.to_vec(),
        no_new_privs,
        ping_group_range,
    };
    vec![
        ("docker", mode(DOCKER_DEFAULT_CAPS, false, PING_ANY_GROUP)),
        ("drop-all", mode(&[], false, PING_ANY_GROUP)),
        ("restricted", mode(&[], true, PING_ANY_GROUP)),
        ("restricted-no-ping-group", mode(&[], true, PING_NO_GROUP)),
        ("net-raw", mode(&["NET_RAW"], false, PING_ANY_GROUP)),
        ("net-raw-nnp", mode(&["NET_RAW"], true, PING_ANY_GROUP)),
    ]
}

/// What a tool must do in a mode: exit 0, or exit non-zero with a line
/// containing the text.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Works,
    Says(&'static str),
}

/// The guarded launchers' lines: the capability is outside the bounding
/// set, or no_new_privs ignores the file capability.
const NO_NET_RAW: &str = "CAP_NET_RAW is not among this container's capabilities";
const NNP: &str = "no_new_privs is set, so the file capability CAP_NET_RAW is ignored";

/// Each network tool's command (in a namespace whose eth0 is 192.0.2.1,
/// with a peer at 192.0.2.2), and what it does in each mode of [`modes`],
/// in that order.
fn tool_cases() -> Vec<(&'static str, &'static str, [Expect; 6])> {
    use Expect::*;
    // A raw socket or a capture: only where the file capability works.
    let raw = [
        Works,
        Says(NO_NET_RAW),
        Says(NO_NET_RAW),
        Says(NO_NET_RAW),
        Works,
        Says(NNP),
    ];
    // trip raises CAP_NET_RAW itself (`=p`, so it starts everywhere) and
    // says it lacks privileges where it cannot.
    let privileges = Says("Error: privileges are required");
    vec![
        // iputils ping: an ICMP datagram socket where the ping group allows.
        (
            "ping",
            "ping -n -c 1 -W 3 192.0.2.2",
            [
                Works,
                Works,
                Works,
                Says("missing cap_net_raw+p capability"),
                Works,
                Works,
            ],
        ),
        ("fping", "fping -c 1 -t 1000 192.0.2.2", raw),
        ("arping", "arping -c 1 -w 3 -I eth0 192.0.2.2", raw),
        ("oping", "oping -c 1 -w 3 192.0.2.2", raw),
        (
            "tcpdump",
            "udp_to_peer & timeout 20 tcpdump -n -c 1 -i eth0 udp",
            raw,
        ),
        // What needs no capability works everywhere.
        (
            "tcpdump -r",
            "tcpdump -n -r /tmp/none.pcap; [ $? = 1 ] && tcpdump --version >/dev/null",
            [Works; 6],
        ),
        (
            "dumpcap",
            "udp_to_peer & timeout 20 dumpcap -q -i eth0 -c 1 -f udp -w /tmp/d.pcapng",
            raw,
        ),
        (
            "tshark",
            "udp_to_peer & timeout 20 tshark -n -i eth0 -c 1 -f udp",
            raw,
        ),
        (
            "nmap -sT",
            "timeout 60 nmap -n -Pn -sT -p 9 192.0.2.2",
            [Works; 6],
        ),
        (
            "nmap -sS",
            "timeout 60 nmap --privileged -n -Pn -sS -p 9 192.0.2.2",
            raw,
        ),
        ("hping3", "timeout 20 hping3 -c 1 -S -p 9 192.0.2.2", raw),
        // mtr-packet falls back to ICMP datagram sockets.
        (
            "mtr",
            "timeout 60 mtr -n -r -c 1 192.0.2.2",
            [Works, Works, Works, Says(NO_NET_RAW), Works, Works],
        ),
        (
            "trip",
            "timeout 60 trip -m json -C 1 192.0.2.2",
            [Works, privileges, privileges, privileges, Works, privileges],
        ),
    ]
}

/// The script run in every mode: the user, then each tool's section with
/// its output and exit status.
fn modes_script() -> String {
    // Eight datagrams to a closed port of the peer, for the captures.
    let mut script = String::from(
        "udp_to_peer() { for i in 1 2 3 4 5 6 7 8; do sleep 0.5; bash -c 'echo x > /dev/udp/192.0.2.2/9'; done 2>/dev/null; }\necho \"== id\"; id -u\n",
    );
    for (name, cmd, _) in tool_cases() {
        // rc on a line of its own, whether or not the output ended one.
        script.push_str(&format!(
            "echo \"== {name}\"; ( {cmd} ) 2>&1; printf '\\nrc=%s\\n' $?; wait\n"
        ));
    }
    script
}

#[test]
fn nonroot_variant_starts_every_tool_in_every_capability_mode() {
    let rootfs = nonroot();
    let net = Net::new("m");
    let nsp = format!("/var/run/netns/{}", net.target);
    let script = modes_script();
    let mut failures = Vec::new();
    for (m, (mode, confinement)) in modes().into_iter().enumerate() {
        let (okay, out) = runc_confined(rootfs, &nsp, &confinement, &script);
        assert!(okay, "{mode}: {out}");
        // The user comes from the image's config, not from the test.
        assert_eq!(section(&out, "id").trim(), "65532", "{mode}: {out}");
        for (tool, _, expect) in tool_cases() {
            let text = section(&out, tool);
            if let Err(why) = check(&text, expect[m]) {
                failures.push(format!("{mode} / {tool}: {why}\n{text}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// Whether a tool's section (its output, then `rc=N`) shows `expect`.
fn check(text: &str, expect: Expect) -> Result<(), String> {
    let rc = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("rc="))
        .ok_or("no exit status")?;
    match expect {
        Expect::Works if rc == "0" => Ok(()),
        Expect::Works => Err(format!("exit {rc}, expected 0")),
        Expect::Says(_) if rc == "0" => Err("exit 0, expected a failure".into()),
        Expect::Says(line) if text.lines().any(|l| l.contains(line)) => Ok(()),
        Expect::Says(line) => Err(format!("exit {rc} without a line saying {line:?}")),
    }
}

#[test]
fn podman_network_container_and_host() {
    let img = image();
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("netshoot.tar");
    ok(bin()
        .args([
            "export",
            "--format",
            "docker",
            "--platform",
            "linux/amd64",
            "--layout",
        ])
        .arg(&img.layout)
        .arg("-o")
        .arg(&archive));
    let podman = Podman::new(&t.path().join("podman"));
    ok(podman.cmd().args(["load", "-i"]).arg(&archive));
    let image_ref = format!("localhost/netshoot:{}", tag());
    let name = format!("nsb-target-{}", std::process::id());
    // The "target container": its own namespace with only loopback, a
    // web server on 127.0.0.1.
    ok(podman.cmd().args([
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        &image_ref,
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        "127.0.0.1",
        "--directory",
        "/etc",
    ]));
    let curl = |extra: &[&str]| {
        let mut c = podman.cmd();
        c.args(["run", "--rm", "--network", &format!("container:{name}")])
            .arg(&image_ref)
            .args(extra);
        c.output().unwrap()
    };
    // The server may take a while on a loaded machine: bounded by time,
    // not by a count of tries.
    let mut page = String::new();
    let mut last_err = String::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let o = curl(&["curl", "-s", "-S", "-m", "5", "http://127.0.0.1:8080/motd"]);
        page = String::from_utf8_lossy(&o.stdout).to_string();
        last_err = String::from_utf8_lossy(&o.stderr).to_string();
        if o.status.success() && !page.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs = podman.cmd().args(["logs", &name]).output().unwrap();
    assert!(
        page.contains("netshoot-build"),
        "curl into the target's namespace: {page:?}; last error: {last_err}; target's log: {}",
        String::from_utf8_lossy(&logs.stderr)
    );
    let addr = String::from_utf8_lossy(&curl(&["ip", "-brief", "addr"]).stdout).to_string();
    assert!(addr.contains("lo") && !addr.contains("eth0"), "{addr}");
    let _ = podman.cmd().args(["rm", "-f", &name]).output();
    // --network host sees the host's interfaces.
    let host = ok(Command::new("ip").args(["-brief", "link"]));
    let first = host.split_whitespace().next().unwrap().to_string();
    let o = ok(podman.cmd().args([
        "run",
        "--rm",
        "--network",
        "host",
        &image_ref,
        "ip",
        "-brief",
        "link",
    ]));
    assert!(o.contains(&first), "{o}");
}

/// The motd names the version the config's labels carry, and every tool
/// it lists is on PATH.
#[test]
fn motd_lists_tools_that_exist_and_the_version() {
    let img = image();
    let cfg = ok(Command::new("skopeo")
        .args(["inspect", "--config", "--override-arch", "arm64"])
        .arg(format!("oci:{}:{}", img.layout.display(), tag())));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    let labels = &cfg["config"]["Labels"];
    let version = labels["org.opencontainers.image.version"].as_str().unwrap();
    assert_eq!(version, tag());
    for k in ["title", "description", "licenses", "created"] {
        assert!(
            labels[format!("org.opencontainers.image.{k}")].is_string(),
            "label {k} missing: {labels}"
        );
    }
    let motd = std::fs::read_to_string(img.amd64.join("etc/motd")).unwrap();
    assert!(motd.contains(&format!("netshoot {version} ")), "{motd}");
    let tools: Vec<&str> = motd
        .lines()
        .skip_while(|l| !l.starts_with("netshoot "))
        .filter(|l| l.starts_with(' ') && l.len() > 17)
        .flat_map(|l| l[17..].split_whitespace())
        .filter(|w| !w.starts_with('('))
        .collect();
    assert!(tools.len() > 60, "{tools:?}");
    let script = tools
        .iter()
        .map(|t| format!("command -v {t} >/dev/null || echo missing {t}"))
        .collect::<Vec<_>>()
        .join("\n");
    let (okay, out) = runc(&img.amd64, None, &[], &script);
    assert!(okay && !out.contains("missing"), "{out}");
}

/// The Rust tools compiled from the crate registry: static executables of
/// the right machine (as `file` sees them) that run on amd64 (runc) and on
/// arm64 (qemu-user).
#[test]
fn rust_tools_are_static_and_run_on_both_arches() {
    let img = image();
    let tools = [
        ("trip", "trip 0.13.0"),
        ("websocat", "websocat 1.14.1"),
        ("oha", "oha 1.16.0"),
    ];
    for (root, machine) in [(&img.amd64, "x86-64"), (&img.arm64, "ARM aarch64")] {
        for (bin, _) in tools {
            let p = root.join("usr/local/bin").join(bin);
            let f = ok(Command::new("file").arg("-b").arg(&p));
            assert!(
                f.contains(machine)
                    && (f.contains("statically linked") || f.contains("static-pie linked"))
                    && !f.contains("interpreter")
                    && !f.contains("dynamically"),
                "{}: {f}",
                p.display()
            );
        }
    }
    let script = tools
        .iter()
        .map(|(b, _)| format!("{b} --version"))
        .collect::<Vec<_>>()
        .join("; ");
    let (okay, out) = runc(&img.amd64, None, &[], &script);
    assert!(okay, "{out}");
    for (_, want) in tools {
        assert!(out.contains(want), "amd64: {want} not in {out}");
    }
    for (bin, want) in tools {
        let out = ok(Command::new("qemu-aarch64-static")
            .arg(img.arm64.join("usr/local/bin").join(bin))
            .arg("--version"));
        assert!(out.contains(want), "arm64: {want} not in {out}");
    }
}

/// The SBOMs attached to the default image pass the SPDX and CycloneDX
/// reference validators, and list exactly what is installed: the dpkg
/// database (as dpkg-query reads it from the image) plus every compiled
/// crate and its locked dependencies (from the lockfile).
#[test]
fn sboms_of_the_image_validate_and_count_what_is_installed() {
    let img = image();
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(img.spec.with_extension("lock")).unwrap()).unwrap();
    // The crates the default build compiles: those outside a profile.
    let spec: toml::Value = toml::from_str(&std::fs::read_to_string(&img.spec).unwrap()).unwrap();
    let built: Vec<&str> = spec["cargo"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("profile").is_none())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(built, ["trippy", "websocat", "oha"]);
    let dir = tempfile::tempdir().unwrap();
    for (arch, rootfs) in [("amd64", &img.amd64), ("arm64", &img.arm64)] {
        // The crates the target's build uses, as the lock records them from
        // cargo metadata for that target.
        let triple = if arch == "amd64" {
            "x86_64-unknown-linux-musl"
        } else {
            "aarch64-unknown-linux-musl"
        };
        let mut crates = std::collections::BTreeSet::new();
        let mut in_lock_only = std::collections::BTreeSet::new();
        for name in &built {
            let c = &lock["crates"][*name];
            for p in c["packages"].as_array().unwrap() {
                let key = (
                    p["name"].as_str().unwrap().to_string(),
                    p["version"].as_str().unwrap().to_string(),
                );
                // `targets` is left out for packages no target uses.
                let used = p["targets"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|t| t == triple));
                if used {
                    crates.insert(key);
                } else {
                    in_lock_only.insert(key);
                }
            }
        }
        in_lock_only.retain(|k| !crates.contains(k));
        // Cargo.lock files list Windows-only crates; the Linux build has none.
        assert!(
            in_lock_only.iter().any(|(n, _)| n == "windows-sys"),
            "{in_lock_only:?}"
        );
        assert!(!crates
            .iter()
            .any(|(n, _)| n == "windows-sys" || n == "winapi"));
        let dpkg = ok(Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                rootfs.join("var/lib/dpkg").display()
            ))
            .args(["-W", "-f", "${db:Status-Abbrev}${Package}\\n"]));
        let debs = dpkg.lines().filter(|l| l.starts_with("ii")).count();
        assert!(debs > 250, "{dpkg}");
        let platform = format!("linux/{arch}");
        let spdx_path = dir.path().join(format!("{arch}.spdx.json"));
        let cdx_path = dir.path().join(format!("{arch}.cdx.json"));
        for (format, path) in [("spdx", &spdx_path), ("cyclonedx", &cdx_path)] {
            let doc = ok(bin()
                .args([
                    "sbom",
                    "--platform",
                    &platform,
                    "--format",
                    format,
                    "--layout",
                ])
                .arg(&img.layout));
            std::fs::write(path, doc).unwrap();
        }
        let (valid, log) = validate_spdx(&spdx_path);
        assert!(valid, "pyspdxtools rejects the {arch} SPDX: {log}");
        let (valid, log) = validate_cdx(&cdx_path);
        assert!(valid, "the {arch} CycloneDX fails its schema: {log}");
        let spdx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&spdx_path).unwrap()).unwrap();
        let cdx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cdx_path).unwrap()).unwrap();
        let want = debs + crates.len();
        // SPDX also describes the image itself as a package.
        assert_eq!(
            spdx["packages"].as_array().unwrap().len(),
            want + 1,
            "{arch}"
        );
        assert_eq!(cdx["components"].as_array().unwrap().len(), want, "{arch}");
        let purls: Vec<String> = cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["purl"].as_str().unwrap().to_string())
            .collect();
        assert!(
            purls.iter().any(|p| p.starts_with("pkg:deb/debian/bash@")
                && p.contains(&format!("arch={arch}"))
                && p.contains("distro=debian-13")),
            "{purls:?}"
        );
        for tool in [
            "trippy@0.13.0",
            "websocat@1.14.1",
            "oha@1.16.0",
            "rustls@",
            // websocat's OpenSSL, compiled from openssl-src.
            "openssl-src@300.",
        ] {
            assert!(
                purls
                    .iter()
                    .any(|p| p.starts_with(&format!("pkg:cargo/{tool}"))),
                "{tool} missing"
            );
        }
        assert!(
            !purls
                .iter()
                .any(|p| p.starts_with("pkg:cargo/windows-sys@")),
            "{purls:?}"
        );
        let rels = spdx["relationships"].as_array().unwrap();
        assert!(rels.iter().any(|r| r["relationshipType"] == "DEPENDS_ON"));
        assert!(rels.iter().any(|r| r["relationshipType"] == "CONTAINS"));
    }
}

/// The compiled tools sit in a layer of their own below a small top layer
/// (dpkg status, accounts, generated files), so a package bump re-pushes
/// about 1 MB and not the tools (tests/layering_e2e.rs bumps a package).
#[test]
fn compiled_tools_have_their_own_layer_below_a_small_top() {
    let img = image();
    let blob = |d: &str| {
        img.layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(&layout_tag_digest(&img.layout, &tag()))).unwrap(),
    )
    .unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let arch = m["platform"]["architecture"].as_str().unwrap();
        let man: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob(m["digest"].as_str().unwrap())).unwrap())
                .unwrap();
        let layers = man["layers"].as_array().unwrap();
        let n = layers.len();
        assert!(n >= 3, "{arch}: {man}");
        let list = |l: &serde_json::Value| {
            ok(Command::new("tar")
                .arg("-tzf")
                .arg(blob(l["digest"].as_str().unwrap())))
        };
        let (tools, top) = (list(&layers[n - 2]), list(&layers[n - 1]));
        for prog in ["trip", "websocat", "oha"] {
            let p = format!("usr/local/bin/{prog}");
            assert!(
                tools.lines().any(|l| l == p),
                "{arch}: {prog} not in the tools layer:\n{tools}"
            );
            assert!(
                !top.lines().any(|l| l == p),
                "{arch}: {prog} in the top layer"
            );
        }
        assert!(
            !tools.contains("var/lib/dpkg"),
            "{arch}: dpkg files in the tools layer"
        );
        assert!(top.contains("var/lib/dpkg/status"), "{arch}: {top}");
        let top_size = layers[n - 1]["size"].as_u64().unwrap();
        assert!(
            top_size < 2_000_000,
            "{arch}: top layer of {top_size} bytes"
        );
    }
}
