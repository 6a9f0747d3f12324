//! End-to-end tests of the Debian package source against the real Debian
//! trixie archive, on the mirror the host's own apt sources name (the
//! builder finds it itself; no mirror hostname is written here).
//!
//! Needs the network: skipped only when `NETSHOOT_OFFLINE=1`.

#[path = "common/aptrepo.rs"]
mod aptrepo;
mod common;

use aptrepo::*;
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const SUITES: [&str; 3] = ["trixie", "trixie-updates", "trixie-security"];
const TOOLS: &[&str] = &[
    "bash",
    "coreutils",
    "iproute2",
    "curl",
    "tcpdump",
    "iptables",
    "netcat-openbsd",
    "ca-certificates",
];

fn offline(test: &str) -> bool {
    if std::env::var("NETSHOOT_OFFLINE").as_deref() == Ok("1") {
        eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("!!! NETSHOOT_OFFLINE=1: SKIPPING {test}");
        eprintln!("!!! (the real Debian archive is NOT exercised in this run)");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
        return true;
    }
    false
}

/// Trixie's archive keyring: the one committed with the project if there
/// is one, else the host's.
fn keyring() -> Vec<u8> {
    let committed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/keyrings/debian-archive-keyring.pgp");
    let p = if committed.exists() {
        committed
    } else {
        PathBuf::from("/usr/share/keyrings/debian-archive-keyring.gpg")
    };
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (install debian-archive-keyring)", p.display()))
}

/// Writes the spec (no url: the builder takes the mirror from the host's
/// apt sources) and its keyring into `dir`.
fn write_spec(dir: &Path, platforms: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("debian-archive-keyring.pgp"), keyring()).unwrap();
    let q = |v: &[&str]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        r#"platforms = [{}]

[image]
name = "netshoot-apt"
tag = "real"
env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

[apt]
packages = [{}]
base = "essential"

[[apt.repository]]
name = "debian"
suites = [{}]
components = ["main"]
keyring = "debian-archive-keyring.pgp"
"#,
        q(platforms),
        q(TOOLS),
        q(&SUITES)
    );
    let p = dir.join("netshoot.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn lock(spec: &Path) -> serde_json::Value {
    ok(bin().arg("lock").arg("--spec").arg(spec));
    let text = std::fs::read_to_string(spec.with_extension("lock")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs `args` in the bundle with runc; returns (success, stdout + stderr).
fn runc(bundle: &Path, id: &str, args: &[&str]) -> (bool, String) {
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
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Runs an arm64 binary of `root` under qemu-user with `root` as prefix.
fn qemu(root: &Path, args: &[&str]) -> (bool, String) {
    qemu_with("qemu-aarch64-static", root, args)
}

/// `path` inside the image at `root`, every symbolic link followed
/// inside the image (absolute targets such as `/etc/alternatives/nc ->
/// /bin/nc.openbsd` must not reach the host's files).
fn resolve_in(root: &Path, path: &str) -> PathBuf {
    let mut todo: std::collections::VecDeque<String> =
        path.split('/').map(str::to_string).collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let cand = root.join(cur.join("/")).join(&c);
        match std::fs::read_link(&cand) {
            Ok(target) => {
                hops += 1;
                assert!(hops < 40, "symlink loop at {}", cand.display());
                let t = target.to_string_lossy().to_string();
                if t.starts_with('/') {
                    cur.clear();
                }
                for (i, part) in t.split('/').enumerate() {
                    todo.insert(i, part.to_string());
                }
            }
            Err(_) => cur.push(c),
        }
    }
    root.join(cur.join("/"))
}

#[test]
fn real_trixie_image_runs_on_amd64_and_under_qemu_on_arm64() {
    if offline("real_trixie_image_runs_on_amd64_and_under_qemu_on_arm64") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let spec = write_spec(&t.path().join("spec"), &["linux/amd64", "linux/arm64"]);
    let lock = lock(&spec);
    let per = lock_packages(&lock);
    assert_eq!(
        per.keys().map(String::as_str).collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"]
    );
    for (plat, arch) in [("linux/amd64", "amd64"), ("linux/arm64", "arm64")] {
        let names: BTreeSet<&str> = per[plat].iter().map(|p| p.name.as_str()).collect();
        for tool in TOOLS
            .iter()
            .chain(["base-files", "dpkg", "libc6", "base-passwd"].iter())
        {
            assert!(names.contains(tool), "{plat}: {tool} not locked");
        }
        for p in &per[plat] {
            assert!(
                p.architecture == arch || p.architecture == "all",
                "{plat}: {p:?}"
            );
            assert!(
                p.filename.starts_with("pool/") && p.filename.ends_with(".deb"),
                "{p:?}"
            );
            assert_eq!(p.sha256.len(), 64);
        }
    }

    let out = t.path().join("out/netshoot");
    ok(bin()
        .args(["build", "-q", "--locked", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(t.path().join("cache")));
    let work = t.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    // amd64 under runc.
    let bundle = unpack(&out, "real", "amd64", &work);
    let root = bundle.join("rootfs");
    let id = |s: &str| format!("nsb-apt-real-{s}-{}", std::process::id());
    let must = |name: &str, args: &[&str]| {
        let (okay, text) = runc(&bundle, &id(name), args);
        assert!(okay, "{args:?} failed in the amd64 image:\n{text}");
        text
    };
    let v = must("curl", &["curl", "--version"]);
    assert!(v.starts_with("curl ") && v.contains("x86_64"), "{v}");
    let v = must("ip", &["ip", "-brief", "addr"]);
    assert!(v.lines().any(|l| l.starts_with("lo ")), "{v}");
    let v = must("tcpdump", &["tcpdump", "--version"]);
    assert!(
        v.contains("tcpdump version") && v.contains("libpcap"),
        "{v}"
    );
    let (_, v) = runc(&bundle, &id("nc"), &["nc", "-h"]);
    assert!(v.contains("OpenBSD netcat"), "nc -h: {v}");
    let v = must("iptables", &["iptables", "-V"]);
    assert!(v.contains("nf_tables"), "{v}");
    let v = must(
        "alternatives",
        &["update-alternatives", "--display", "iptables"],
    );
    assert!(
        v.contains("link currently points to /usr/sbin/iptables-nft"),
        "{v}"
    );
    assert!(v.contains("/usr/sbin/iptables-legacy - priority"), "{v}");
    let v = must("dpkg", &["sh", "-c", "dpkg-query -W | wc -l"]);
    assert_eq!(
        v.trim().parse::<usize>().unwrap(),
        per["linux/amd64"].len(),
        "dpkg-query -W | wc -l"
    );
    let v = must(
        "dpkg-status",
        &["dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Package}\n"],
    );
    assert!(
        v.lines().all(|l| l.starts_with("ii ")),
        "not all installed:\n{v}"
    );
    let v = must("ca", &["ls", "-l", "/etc/ssl/certs/ca-certificates.crt"]);
    let size: u64 = v
        .split_whitespace()
        .nth(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(size > 0, "{v}");
    let bundle_text =
        std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(
        bundle_text.matches("BEGIN CERTIFICATE").count() > 100,
        "a thin CA bundle"
    );
    // Default path_exclude: no manuals, copyright files kept.
    assert!(root.join("usr/share/doc/curl/copyright").exists());
    assert!(!root.join("usr/share/man/man1/curl.1.gz").exists());
    // base-passwd's master files made the accounts, converted to shadow
    // as Debian's `shadowconfig on` leaves them (`x` in passwd, the `*`
    // in shadow). Asserted at the end, so the arm64 checks run anyway.
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let shadow = std::fs::read_to_string(root.join("etc/shadow")).unwrap();
    assert!(shadow.starts_with("root:*:"), "{shadow}");
    let names = |t: &str| {
        t.lines()
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&passwd),
        names(&shadow),
        "passwd and shadow list other users"
    );
    let accounts_ok = passwd.starts_with("root:x:0:0:root:/root:/bin/bash\n")
        && passwd
            .lines()
            .any(|l| l.starts_with("nobody:x:65534:65534:"));
    let v = must("id", &["id", "nobody"]);
    assert!(v.contains("uid=65534(nobody)"), "{v}");

    // arm64 under qemu-user.
    let bundle = unpack(&out, "real", "arm64", &work);
    let root = bundle.join("rootfs");
    let must = |args: &[&str]| {
        let (okay, text) = qemu(&root, args);
        assert!(okay, "{args:?} failed in the arm64 image:\n{text}");
        text
    };
    let v = must(&["/usr/bin/curl", "--version"]);
    assert!(v.starts_with("curl ") && v.contains("aarch64"), "{v}");
    let v = must(&["/usr/bin/tcpdump", "--version"]);
    assert!(v.contains("tcpdump version"), "{v}");
    let v = must(&["/usr/sbin/ip", "-V"]);
    assert!(v.contains("iproute2"), "{v}");
    let (_, v) = qemu(&root, &["/usr/bin/nc", "-h"]);
    assert!(v.contains("OpenBSD netcat"), "nc -h: {v}");
    // qemu-user does not translate NETLINK_NETFILTER sockets, so the nft
    // variant gets as far as the kernel and stops there ("Failed to
    // initialize nft: Protocol not supported"): that still proves the
    // arm64 binary and its libraries load. The legacy variant's -V needs
    // no kernel.
    let (_, v) = qemu(&root, &["/usr/sbin/iptables", "-V"]);
    assert!(
        v.contains("nf_tables") || v.contains("Failed to initialize nft"),
        "iptables -V: {v}"
    );
    let v = must(&["/usr/sbin/iptables-legacy", "-V"]);
    assert!(v.contains("iptables v") && v.contains("legacy"), "{v}");
    assert_eq!(
        std::fs::read_link(root.join("etc/alternatives/iptables")).unwrap(),
        Path::new("/usr/sbin/iptables-nft")
    );
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    let paras = paragraphs(&status);
    assert_eq!(paras.len(), per["linux/arm64"].len());
    assert!(paras
        .iter()
        .all(|p| field(p, "Status") == Some("install ok installed")));
    let v = must(&["/usr/bin/dpkg-query", "--admindir=/var/lib/dpkg", "-W"]);
    assert_eq!(v.lines().count(), per["linux/arm64"].len(), "{v}");
    assert!(
        std::fs::metadata(root.join("etc/ssl/certs/ca-certificates.crt"))
            .unwrap()
            .len()
            > 100_000
    );
    assert!(accounts_ok, "amd64 /etc/passwd:\n{passwd}");
}

/// Our resolution against apt's for the same request on the same
/// indexes: `apt-get install --simulate` with a throwaway configuration
/// (empty dpkg status, a generated sources list for the three suites on
/// the host's mirror, amd64 only).
///
/// Known difference, handled before the exact comparison: apt on an empty
/// status does not add the Essential packages by itself (it assumes they
/// are there), so they are named to it explicitly, after the tools. No
/// other difference is expected.
#[test]
fn lock_matches_apt_on_the_real_archive() {
    if offline("lock_matches_apt_on_the_real_archive") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tp = t.path();
    let spec = write_spec(&tp.join("spec"), &["linux/amd64"]);
    let keyring = tp.join("spec/debian-archive-keyring.pgp");

    // The mirrors the host's apt sources name for each suite, found the way
    // the builder finds them.
    let entries = debian::sources_list::read_sources(Path::new("/")).expect("host apt sources");
    let mut sources = String::new();
    for suite in SUITES {
        let m = debian::sources_list::mirror_for_suite(&entries, suite).unwrap_or_else(|| {
            panic!("the host's apt sources name no mirror for {suite} (NETSHOOT_OFFLINE=1 skips)")
        });
        sources.push_str(&format!(
            "deb [arch=amd64 signed-by={}] {m} {suite} main\n",
            keyring.display()
        ));
    }
    let apt = AptSandbox::new(&tp.join("apt"), &sources, "amd64");

    // apt and the lock must look at the same Release files; the archive
    // may publish in between (a few times a day): then both are redone,
    // at most twice.
    let mut attempt = 0;
    let (lock, lists) = loop {
        attempt += 1;
        apt.run("apt-get", &["-q", "update"]);
        let lock = lock(&spec);
        let lists: BTreeSet<String> = std::fs::read_dir(apt.dir.join("lists"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("_InRelease"))
            .map(|e| sha256_hex(&std::fs::read(e.path()).unwrap()))
            .collect();
        let pinned: BTreeSet<String> = lock["apt"]["linux/amd64"]["indexes"]
            .as_array()
            .expect("lock indexes")
            .iter()
            .map(|i| {
                i["release_sha256"]
                    .as_str()
                    .expect("release_sha256")
                    .to_string()
            })
            .collect();
        assert_eq!(
            lists.len(),
            3,
            "apt fetched {} InRelease files",
            lists.len()
        );
        if lists == pinned || attempt == 3 {
            assert_eq!(
                lists, pinned,
                "apt and the lock saw different Release files"
            );
            break (lock, lists);
        }
    };
    assert_eq!(lists.len(), SUITES.len());

    let ours: BTreeSet<String> = lock_packages(&lock)["linux/amd64"]
        .iter()
        .map(|p| format!("{} {} {}", p.name, p.version, p.architecture))
        .collect();

    // The Essential set, from the records apt itself reads.
    let avail = apt.run("apt-cache", &["dumpavail"]);
    let essential: BTreeSet<String> = paragraphs(&avail)
        .iter()
        .filter(|p| field(p, "Essential") == Some("yes"))
        .filter(|p| matches!(field(p, "Architecture"), Some("amd64") | Some("all")))
        .map(|p| field(p, "Package").unwrap().to_string())
        .collect();
    assert!(essential.len() > 10, "no Essential packages seen by apt?");

    let mut request: Vec<&str> = TOOLS.to_vec();
    request.extend(essential.iter().map(String::as_str));
    let theirs = apt.simulate(&request);
    assert!(theirs.len() > 50, "apt simulated too little: {theirs:?}");
    let only_ours: Vec<&String> = ours.difference(&theirs).collect();
    let only_theirs: Vec<&String> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "the lock and apt differ\nonly ours:  {only_ours:?}\nonly apt's: {only_theirs:?}\n(both: {})",
        ours.intersection(&theirs).count()
    );
}

/// Runs a binary of `root` under `qemu` (a qemu-user program) with `root`
/// as the prefix its loader and libraries come from.
fn qemu_with(qemu: &str, root: &Path, args: &[&str]) -> (bool, String) {
    let out = run(Command::new("timeout")
        .args(["120", qemu, "-L"])
        .arg(root)
        // argv[0] as the image would give it, for multi-call binaries.
        .args(["-0", args[0]])
        .arg(resolve_in(root, args[0]))
        .args(&args[1..]));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// arm/v7 and riscv64: the toolset locked from the real archive for those
/// architectures only, built, and its programs run under qemu-user with
/// the unpacked root as prefix (under a minute here: no compiling).
#[test]
fn real_trixie_toolset_runs_under_qemu_on_arm_v7_and_riscv64() {
    if offline("real_trixie_toolset_runs_under_qemu_on_arm_v7_and_riscv64") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let platforms = ["linux/arm/v7", "linux/riscv64"];
    let spec = write_spec(&t.path().join("spec"), &platforms);
    let per = lock_packages(&lock(&spec));
    assert_eq!(
        per.keys().map(String::as_str).collect::<Vec<_>>(),
        platforms
    );
    let out = t.path().join("out/netshoot");
    ok(bin()
        .args(["build", "-q", "--locked", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(t.path().join("cache")));
    let work = t.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    for (arch, qemu, triplet) in [
        ("arm", "qemu-arm-static", "arm-unknown-linux-gnueabihf"),
        ("riscv64", "qemu-riscv64-static", "riscv64"),
    ] {
        let root = unpack(&out, "real", arch, &work).join("rootfs");
        let must = |args: &[&str]| {
            let (okay, text) = qemu_with(qemu, &root, args);
            assert!(okay, "{arch}: {args:?} failed:\n{text}");
            text
        };
        let v = must(&["/usr/bin/curl", "--version"]);
        assert!(v.starts_with("curl ") && v.contains(triplet), "{v}");
        let v = must(&["/bin/bash", "-c", "echo bash $BASH_VERSION"]);
        assert!(v.starts_with("bash 5."), "{v}");
        let v = must(&["/usr/bin/tcpdump", "--version"]);
        assert!(
            v.contains("tcpdump version") && v.contains("libpcap"),
            "{v}"
        );
        let v = must(&["/usr/bin/ip", "-V"]);
        assert!(v.contains("iproute2"), "{v}");
    }
}
