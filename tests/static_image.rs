//! The static toolbox of the default spec (`build --variant static`,
//! `export --static-bundle`): every program compiled from its Debian
//! source package for amd64 and arm64, checked static for the right
//! machine by `file` and `readelf`, run under runc (amd64) and qemu-user
//! (arm64), built twice in separate caches to the same bytes, and used
//! the way netshoot is: joined to a target container's network namespace,
//! and copied into a container that has nothing else. The image's Rust
//! tools (trip, websocat, oha) are part of it, listed in /etc/motd and in
//! the bundle's README.
//!
//! Addresses come from 192.0.2.0/24 inside namespaces these tests make and
//! remove; every loop is bounded.

mod common;
use common::netns::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Every program of the toolbox and an argument that makes it print its
/// version and exit 0.
const PROGRAMS: &[(&str, &str)] = &[
    ("busybox", "--help"),
    ("tcpdump", "--version"),
    ("socat", "-V"),
    ("iperf3", "--version"),
    ("curl", "--version"),
    ("ip", "-V"),
    ("ss", "-V"),
    ("ethtool", "--version"),
    ("strace", "-V"),
    ("drill", "-v"),
    // The Rust tools of the image, the same cache entries.
    ("trip", "--version"),
    ("websocat", "--version"),
    ("oha", "--version"),
];

/// busybox applets the toolbox relies on, linked to busybox.
const APPLETS: &[&str] = &[
    "sh",
    "nc",
    "wget",
    "nslookup",
    "ping",
    "traceroute",
    "ps",
    "vi",
];

struct Toolbox {
    dir: PathBuf,
    spec: PathBuf,
    layout: PathBuf,
    tag: String,
    /// umoci bundles' root filesystems.
    amd64: PathBuf,
    arm64: PathBuf,
}

fn toolbox() -> &'static Toolbox {
    static TB: OnceLock<Toolbox> = OnceLock::new();
    TB.get_or_init(|| {
        let dir = suite_dir("static_image");
        let spec = relocked_default_spec(&dir);
        let layout = dir.join("static");
        ok(bin()
            .args(["build", "-q", "--locked", "--variant", "static", "--spec"])
            .arg(&spec)
            .arg("--out")
            .arg(&layout));
        let text = std::fs::read_to_string(&spec).unwrap();
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("tag = \""))
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string();
        let tag = format!("{version}-static");
        let mut roots = Vec::new();
        for arch in ["amd64", "arm64"] {
            let work = dir.join(format!("unpack-{arch}"));
            std::fs::create_dir_all(&work).unwrap();
            roots.push(unpack_platform(&layout, &tag, arch, &work).join("rootfs"));
        }
        let arm64 = roots.pop().unwrap();
        let amd64 = roots.pop().unwrap();
        Toolbox {
            dir,
            spec,
            layout,
            tag,
            amd64,
            arm64,
        }
    })
}

#[test]
fn every_program_is_static_for_its_machine_and_runs() {
    let tb = toolbox();
    for (arch, root, machine) in [
        ("amd64", &tb.amd64, "x86-64"),
        ("arm64", &tb.arm64, "ARM aarch64"),
    ] {
        for (prog, version_arg) in PROGRAMS {
            let p = root.join("usr/bin").join(prog);
            let what = ok(Command::new("file").arg("-b").arg(&p));
            // Rust's musl targets link static PIEs: no loader either.
            assert!(
                what.contains("statically linked") || what.contains("static-pie linked"),
                "{arch} {prog}: {what}"
            );
            assert!(what.contains(machine), "{arch} {prog}: {what}");
            let headers = ok(Command::new("readelf").args(["-lW"]).arg(&p));
            assert!(
                !headers.contains("INTERP"),
                "{arch} {prog} asks for a loader"
            );
            let dynamic = ok(Command::new("readelf").args(["-dW"]).arg(&p));
            assert!(!dynamic.contains("NEEDED"), "{arch} {prog}: {dynamic}");
            // arm64 through binfmt_misc's qemu-aarch64.
            let out = run(Command::new(&p).arg(version_arg));
            assert!(
                out.status.success(),
                "{arch} {prog} {version_arg}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // busybox's shell and applets, linked where busybox lists them.
        for applet in APPLETS {
            let link = ["bin", "sbin", "usr/bin", "usr/sbin"]
                .iter()
                .map(|d| root.join(d).join(applet))
                .find(|p| p.symlink_metadata().is_ok())
                .unwrap_or_else(|| panic!("{arch}: no {applet}"));
            assert_eq!(
                std::fs::read_link(&link).unwrap(),
                Path::new("/usr/bin/busybox"),
                "{arch}: {}",
                link.display()
            );
        }
        let cfg: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.parent().unwrap().join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["process"]["args"], serde_json::json!(["sh"]));
        let bundle =
            std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
        assert!(
            bundle.matches("BEGIN CERTIFICATE").count() > 100,
            "{arch}: CA bundle"
        );
        let motd = std::fs::read_to_string(root.join("etc/motd")).unwrap();
        for (prog, _) in PROGRAMS {
            assert!(
                motd.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{prog} "))),
                "{arch}: {prog} not in /etc/motd:\n{motd}"
            );
        }
    }
    // Nothing in the image but the toolbox: no libc, no package database.
    for gone in ["lib", "usr/lib", "var/lib/dpkg"] {
        assert!(
            !tb.amd64.join(gone).exists(),
            "{gone} is in the static image"
        );
    }
    // The amd64 image runs its own shell under runc.
    let (okay, out) = runc_shell(
        &tb.amd64,
        None,
        &[],
        None,
        "/bin/sh",
        "echo $((6*7)); ls /usr/bin | wc -l",
    );
    assert!(okay, "{out}");
    assert!(out.starts_with("42\n"), "{out}");
}

/// The digest of `arch`'s manifest under `tag` in a layout.
fn platform_manifest(layout: &Path, tag: &str, arch: &str) -> String {
    let index = layout_tag_digest(layout, tag);
    let blob = layout
        .join("blobs/sha256")
        .join(index.trim_start_matches("sha256:"));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap_or_else(|| panic!("no {arch} in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A second build from nothing (its own cache, its own build folders)
/// gives the same image bytes. amd64 only, to keep CI's time in bounds:
/// both arches go through the same zig toolchain and recipes, the fixture
/// suite (static_e2e) checks both, and `make bench` rebuilds both.
#[test]
fn a_second_cold_build_gives_the_same_bytes() {
    let tb = toolbox();
    let layout2 = tb.dir.join("static-again");
    let cache2 = tb.dir.join("cache-again");
    // zig's own cache (its musl builds) is fresh too.
    let zig2 = tb.dir.join("zig-cache-again");
    let again = || {
        run(bin()
            .env("NETSHOOT_ZIG_CACHE", &zig2)
            .args([
                "build",
                "--locked",
                "--variant",
                "static",
                "--platform",
                "linux/amd64",
                "--spec",
            ])
            .arg(&tb.spec)
            .arg("--out")
            .arg(&layout2)
            .arg("--cache")
            .arg(&cache2))
    };
    // The Rust tools are the image's cache entries (their reproducibility
    // is cargo_e2e's concern): taken over, so that only the C sources
    // compile again here.
    std::fs::create_dir_all(&cache2).unwrap();
    ok(Command::new("cp")
        .arg("-a")
        .arg(default_cache().join("crates"))
        .arg(&cache2));
    let r = again();
    let log = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{log}");
    assert!(!log.contains("cargo build "), "{log}");
    // Every entry was compiled again here.
    let entries = std::fs::read_to_string(&tb.spec)
        .unwrap()
        .matches("\n[[source]]")
        .count();
    assert_eq!(log.matches("compiled source").count(), entries, "{log}");
    assert_eq!(
        platform_manifest(&layout2, &tb.tag, "amd64"),
        platform_manifest(&tb.layout, &tb.tag, "amd64"),
        "the amd64 static image differs between two builds"
    );
    // And a warm build in that cache compiles nothing.
    let r = again();
    let log = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{log}");
    assert!(!log.contains("compile source"), "{log}");
}

#[test]
fn static_image_joined_to_a_target_namespace() {
    let tb = toolbox();
    let root = &tb.amd64;
    let mut net = Net::new("s");
    let nsp = format!("/var/run/netns/{}", net.target);
    let t = net.target.clone();
    // The target's services, from the toolbox's own static programs.
    std::fs::create_dir_all(root.join("srv/www")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::write(root.join("srv/www/index.html"), "static target page\n").unwrap();
    net.spawn(
        &t,
        root,
        "exec busybox httpd -f -p 192.0.2.1:8080 -h /srv/www",
    );
    net.spawn(&t, root, "exec iperf3 -s -B 192.0.2.1 -p 5201");
    net.spawn(
        &t,
        root,
        "exec socat TCP-LISTEN:7000,bind=192.0.2.1,fork,reuseaddr SYSTEM:'echo socat-answer'",
    );
    wait_until("the target's servers", || {
        Command::new("ip")
            .args(["netns", "exec", &t])
            .arg(root.join("usr/bin/ss"))
            .arg("-tln")
            .output()
            .map(|o| {
                let s = String::from_utf8_lossy(&o.stdout);
                s.contains(":8080") && s.contains(":5201") && s.contains(":7000")
            })
            .unwrap_or(false)
    });
    let script = r#"
echo "== ip"; ip addr show eth0
echo "== ss"; ss -tln
echo "== curl"; curl -s http://192.0.2.1:8080/
echo "== tcpdump"; timeout 30 tcpdump -n -c 3 -i eth0 tcp port 8080 2>&1
echo "== iperf3"; iperf3 -c 192.0.2.1 -p 5201 -t 1 2>&1 | tail -3
echo "== socat"; echo hi | socat -T 5 - TCP:192.0.2.1:7000
echo "== nc"; nc -vz -w 3 192.0.2.1 8080 2>&1
echo "== ethtool"; ethtool -i eth0
echo "== strace"; strace -f -e trace=connect curl -s -o /dev/null http://192.0.2.1:8080/ 2>&1 | grep -c 'connect('
echo "== end"
"#;
    // A peer talks to the target while the toolbox captures there: a
    // bounded run of requests with the toolbox's own curl.
    let mut curl = vec![root.join("usr/bin/curl").into()];
    curl.extend(argv(&[
        "-s",
        "-m",
        "2",
        "-o",
        "/dev/null",
        "http://192.0.2.1:8080/",
    ]));
    let traffic = net.requests_from_peer(curl, 30);
    let caps = ["NET_RAW", "NET_ADMIN", "SYS_PTRACE", "SETUID", "SETGID"];
    let (okay, out) = runc_shell(root, Some(&nsp), &caps, None, "/bin/sh", script);
    traffic.join().unwrap();
    let section = |name: &str| section(&out, name);
    assert!(okay, "{out}");
    assert!(section("ip").contains("192.0.2.1/24"), "{out}");
    for port in [":8080", ":5201", ":7000"] {
        assert!(section("ss").contains(port), "ss misses {port}: {out}");
    }
    assert_eq!(section("curl").trim(), "static target page", "{out}");
    let cap = section("tcpdump");
    assert!(cap.contains("3 packets captured"), "{out}");
    assert!(cap.contains("192.0.2.2."), "{out}");
    assert!(cap.contains("192.0.2.1.8080"), "{out}");
    assert!(section("iperf3").contains("receiver"), "{out}");
    assert_eq!(section("socat").trim(), "socat-answer", "{out}");
    // busybox's nc: "192.0.2.1 (192.0.2.1:8080) open".
    assert!(section("nc").contains("8080) open"), "{out}");
    assert!(section("ethtool").contains("driver: veth"), "{out}");
    assert!(
        section("strace").trim().parse::<u32>().unwrap_or(0) >= 1,
        "{out}"
    );
    assert!(out.contains("== end"), "{out}");
    drop(net);
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
fn bundle_alone_in_a_container_without_libc() {
    let tb = toolbox();
    let tarball = tb.dir.join("netshoot-static-amd64.tar.gz");
    ok(bin()
        .args([
            "export",
            "--static-bundle",
            "--platform",
            "linux/amd64",
            "-q",
            "--locked",
            "--spec",
        ])
        .arg(&tb.spec)
        .arg("-o")
        .arg(&tarball));
    // A scratch container: the bundle and nothing else, no shell, no libc.
    let bundle = scratch_bundle(&tarball, &tb.dir);
    let rootfs = bundle.join("rootfs");
    for (prog, _) in PROGRAMS {
        assert!(
            rootfs.join("netshoot/bin").join(prog).is_file(),
            "{prog} missing"
        );
    }
    let mut net = Net::new("b");
    let nsp = format!("/var/run/netns/{}", net.target);
    let t = net.target.clone();
    // The server side from the image's copy, run by the host in the target.
    std::fs::create_dir_all(tb.amd64.join("srv/bundle")).unwrap();
    std::fs::create_dir_all(tb.amd64.join("dev")).unwrap();
    std::fs::write(
        tb.amd64.join("srv/bundle/index.html"),
        "bundle target page\n",
    )
    .unwrap();
    net.spawn(
        &t,
        &tb.amd64,
        "exec busybox httpd -f -p 192.0.2.1:8081 -h /srv/bundle",
    );
    wait_until("the target's web server", || {
        Command::new("ip")
            .args(["netns", "exec", &t])
            .arg(tb.amd64.join("usr/bin/ss"))
            .arg("-tln")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(":8081"))
            .unwrap_or(false)
    });
    // The bundle's own shell drives the bundle's tools.
    let script = "export PATH=/netshoot/bin; ip -o addr show eth0; ss -tln; curl -s http://192.0.2.1:8081/; nc -vz -w 3 192.0.2.1 8081 2>&1";
    let (okay, out) = runc_shell(
        &rootfs,
        Some(&nsp),
        &["NET_RAW"],
        None,
        "/netshoot/bin/sh",
        script,
    );
    assert!(okay, "{out}");
    assert!(out.contains("192.0.2.1/24"), "{out}");
    assert!(out.contains(":8081"), "{out}");
    assert!(out.contains("bundle target page"), "{out}");
    assert!(out.contains("8081) open"), "{out}");
    // oha from the bundle, against the same page.
    let (okay, out) = runc_shell(
        &rootfs,
        Some(&nsp),
        &[],
        None,
        "/netshoot/bin/sh",
        "/netshoot/bin/oha -n 5 -c 1 --no-tui http://192.0.2.1:8081/",
    );
    assert!(okay, "{out}");
    assert!(
        out.contains("Success rate:") && out.contains("[200] 5 responses"),
        "{out}"
    );
    // The README lists every program with what it was built from.
    let readme = std::fs::read_to_string(rootfs.join("netshoot/README")).unwrap();
    for (prog, _) in PROGRAMS {
        assert!(
            readme
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{prog} "))),
            "{prog} not in the bundle's README:\n{readme}"
        );
    }
    assert!(
        readme.contains("trippy ") && readme.contains("(Rust crate)"),
        "{readme}"
    );
}
