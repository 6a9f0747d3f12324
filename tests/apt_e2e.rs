//! End-to-end tests of the Debian package source, offline: a small signed
//! apt repository built by the tests (real `dpkg-deb`, real GnuPG) is
//! served on 127.0.0.1, the real `netshoot-build` locks and builds from
//! it, and the result is read back by the real consumers: skopeo + umoci
//! for the image, dpkg-query / dpkg / update-alternatives for the package
//! database, getcap and GNU tar for file capabilities.

#[path = "common/aptrepo.rs"]
mod aptrepo;
mod common;

use aptrepo::*;
use common::*;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PLATFORMS: [(&str, &str, &str); 2] = [
    ("linux/amd64", "amd64", "x86_64-linux-gnu"),
    ("linux/arm64", "arm64", "aarch64-linux-gnu"),
];

const PASSWD_MASTER: &str = "root:*:0:0:root:/root:/bin/bash
daemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:*:2:2:bin:/bin:/usr/sbin/nologin
nsbmark:*:77:77:marker from the test master file:/nonexistent:/usr/sbin/nologin
nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
const GROUP_MASTER: &str = "root:*:0:
daemon:*:1:
bin:*:2:
nsbmark:*:77:
nogroup:*:65534:
";

const MYTOOL_POSTINST: &str = r#"#!/bin/sh
set -e
if [ "$1" = configure ]; then
    adduser --system --group --home /var/lib/svc svcuser
    update-alternatives --install /usr/bin/tool tool /usr/bin/mytool 50 \
        --slave /usr/share/man/man1/tool.1.gz tool.1.gz /usr/share/man/man1/mytool.1.gz
fi
"#;

fn othertool_postinst() -> String {
    "#!/bin/sh\nset -e\nupdate-alternatives --install /usr/bin/tool tool /usr/bin/othertool 20 \\\n    --slave /usr/share/man/man1/tool.1.gz tool.1.gz /usr/share/man/man1/othertool.1.gz\n".into()
}

fn libfoo_body(version: &str, arch: &str) -> Vec<u8> {
    format!("libfoo {version} for {arch}\n").into_bytes()
}

fn mytool_body(arch: &str) -> Vec<u8> {
    format!("#!/bin/sh\necho mytool for {arch}\n").into_bytes()
}

/// The test repository, its server and a spec using it.
struct Fixture {
    // Field order is drop order: the server stops before the folders go.
    server: DirServer,
    repo: Repo,
    t: tempfile::TempDir,
}

const SPEC_PACKAGES: &[&str] = &["mytool", "othertool=1.0-1", "pinger"];

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let mut repo = Repo::new(t.path(), &["amd64", "arm64"]);
    let now = now_secs();
    let main = "trixie";
    for (_, arch, triplet) in PLATFORMS {
        repo.add(
            main,
            &DebSpec::new("base-passwd", "3.6.7", arch)
                .field("Essential", "yes")
                .field("Priority", "required")
                .file(
                    "/usr/share/base-passwd/passwd.master",
                    PASSWD_MASTER.as_bytes(),
                    0o644,
                )
                .file(
                    "/usr/share/base-passwd/group.master",
                    GROUP_MASTER.as_bytes(),
                    0o644,
                )
                .file(
                    "/usr/share/doc/base-passwd/copyright",
                    b"public domain\n",
                    0o644,
                ),
        );
        // Listed before provider-a: index order must not decide.
        repo.add(
            main,
            &DebSpec::new("provider-b", "1.0-1", arch)
                .field("Priority", "optional")
                .field("Provides", "virtual-thing")
                .file("/usr/share/provider-b/b", b"b\n", 0o644),
        );
        repo.add(
            main,
            &DebSpec::new("mytool", "1.0-1", arch)
                .field("Priority", "optional")
                .field(
                    "Depends",
                    "libfoo1 (>= 1.0) | libfoo-alt, virtual-thing, data-pkg",
                )
                .file("/usr/bin/mytool", &mytool_body(arch), 0o755)
                .file("/usr/bin/mysuid", b"#!/bin/sh\necho setuid\n", 0o4755)
                .file("/usr/share/man/man1/mytool.1.gz", b"mytool manual\n", 0o644)
                .file(
                    "/usr/share/doc/mytool/copyright",
                    b"mytool copyright\n",
                    0o644,
                )
                .file("/usr/share/doc/mytool/README", b"mytool readme\n", 0o644)
                .file("/usr/share/info/mytool.info", b"mytool info\n", 0o644)
                .conffile(
                    "/etc/mytool.conf",
                    b"# mytool configuration\nverbose = yes\n",
                )
                .postinst(MYTOOL_POSTINST),
        );
        for v in ["1.0-1", "1.1-1"] {
            repo.add(
                main,
                &DebSpec::new("othertool", v, arch)
                    .file(
                        "/usr/bin/othertool",
                        format!("othertool {v}\n").as_bytes(),
                        0o755,
                    )
                    .file(
                        "/usr/share/man/man1/othertool.1.gz",
                        b"othertool manual\n",
                        0o644,
                    )
                    .postinst(&othertool_postinst()),
            );
        }
        repo.add(
            main,
            &DebSpec::new("libfoo1", "1.0-1", arch)
                .field("Source", "foo")
                .field("Multi-Arch", "same")
                .file(
                    &format!("/usr/lib/{triplet}/libfoo.so.1"),
                    &libfoo_body("1.0-1", arch),
                    0o644,
                ),
        );
        repo.add(
            main,
            &DebSpec::new("libfoo-alt", "1.0-1", arch).file("/usr/lib/libfoo-alt", b"alt\n", 0o644),
        );
        repo.add(
            main,
            &DebSpec::new("provider-a", "1.0-1", arch)
                .field("Priority", "optional")
                .field("Provides", "virtual-thing")
                .file("/usr/share/provider-a/a", b"a\n", 0o644),
        );
        repo.add(
            main,
            &DebSpec::new("pinger", "1.0-1", arch)
                .file(
                    "/usr/bin/pinger",
                    format!("pinger for {arch}\n").as_bytes(),
                    0o755,
                )
                .postinst("#!/bin/sh\nset -e\nsetcap cap_net_raw+ep /usr/bin/pinger\n"),
        );
        // The newer libfoo1 only in the updates suite.
        repo.add(
            "trixie-updates",
            &DebSpec::new("libfoo1", "1.2-1", arch)
                .field("Source", "foo (1.2-1)")
                .field("Multi-Arch", "same")
                .file(
                    &format!("/usr/lib/{triplet}/libfoo.so.1"),
                    &libfoo_body("1.2-1", arch),
                    0o644,
                ),
        );
    }
    repo.add(
        main,
        &DebSpec::new("data-pkg", "1.0", "all")
            .field("Multi-Arch", "foreign")
            .file("/usr/share/data-pkg/data.txt", b"shared data\n", 0o644),
    );
    // A hostile package, properly indexed and signed: its data climbs out
    // of the root.
    let evil = crafted_deb(
        "Package: evil\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@example.invalid>\nDescription: path traversal\n",
        &[
            ("./usr/", tar::EntryType::Directory, b""),
            ("./usr/../../../etc/evil-escape", tar::EntryType::Regular, b"escaped\n"),
        ],
    );
    repo.add_bytes(main, "evil", "1.0", "all", evil);
    repo.publish(main, now - 3600, Some(now + 7 * DAY));
    repo.publish("trixie-updates", now - 3600, Some(now + 7 * DAY));
    let server = DirServer::start(&repo.root);
    Fixture { server, repo, t }
}

impl Fixture {
    fn path(&self) -> &Path {
        self.t.path()
    }

    /// Writes `DIR/netshoot.toml` (and `DIR/keyring.gpg`) requesting
    /// `packages`; `url` is the spec's repository url, if any; `extra`
    /// lands in the `[apt]` table.
    fn spec_in(&self, dir: &str, packages: &[&str], url: Option<&str>, armor: bool) -> PathBuf {
        let d = self.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        let keyring = if armor { "keyring.asc" } else { "keyring.gpg" };
        self.repo.write_keyring(&d.join(keyring), armor);
        let pk: Vec<String> = packages.iter().map(|p| format!("{p:?}")).collect();
        let url_line = url.map(|u| format!("url = \"{u}\"\n")).unwrap_or_default();
        let text = format!(
            r#"platforms = ["linux/amd64", "linux/arm64"]

[image]
name = "aptest"
tag = "t"

[apt]
packages = [{}]
base = ["base-passwd"]
path_exclude = ["/usr/share/doc/*", "/usr/share/info/*"]
path_include = ["/usr/share/doc/*/copyright"]

[[apt.repository]]
name = "test"
suites = ["trixie", "trixie-updates"]
components = ["main"]
keyring = "{keyring}"
{url_line}"#,
            pk.join(", ")
        );
        let p = d.join("netshoot.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn spec(&self, dir: &str) -> PathBuf {
        self.spec_in(dir, SPEC_PACKAGES, Some(&self.server.url()), false)
    }

    /// What the lock must hold for `arch`: (name, version, architecture).
    fn expected(&self, arch: &str) -> BTreeSet<(String, String, String)> {
        [
            ("base-passwd", "3.6.7", arch),
            ("data-pkg", "1.0", "all"),
            // 1.2-1 from trixie-updates beats 1.0-1 from trixie; the
            // first alternative (libfoo1) beats libfoo-alt.
            ("libfoo1", "1.2-1", arch),
            ("mytool", "1.0-1", arch),
            // othertool=1.0-1 pins the older of two versions.
            ("othertool", "1.0-1", arch),
            ("pinger", "1.0-1", arch),
            // Two providers of virtual-thing with the same Priority: the
            // smaller name wins, whatever the index order.
            ("provider-a", "1.0-1", arch),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
    }

    fn published(&self, name: &str, version: &str, arch: &str) -> &Published {
        self.repo
            .published
            .values()
            .flatten()
            .find(|p| p.name == name && p.version == version && p.arch == arch)
            .unwrap_or_else(|| panic!("{name} {version} {arch} not published"))
    }
}

fn lock_cmd(spec: &Path) -> Command {
    let mut c = bin();
    c.env_remove("NETSHOOT_MIRROR_TEST")
        .arg("lock")
        .arg("--spec")
        .arg(spec);
    c
}

fn build_cmd(spec: &Path, out: &Path, cache: &Path) -> Command {
    let mut c = bin();
    c.env_remove("NETSHOOT_MIRROR_TEST")
        .args(["build", "-q", "--spec"])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(cache);
    c
}

fn lock_path(spec: &Path) -> PathBuf {
    spec.with_extension("lock")
}

fn read_lock(spec: &Path) -> serde_json::Value {
    let p = lock_path(spec);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("lock is not JSON: {e}\n{text}"))
}

/// Checks a lockfile against the repository: the exact expected set per
/// platform, each pin equal to what the test itself published.
fn check_lock(f: &Fixture, spec: &Path) {
    let lock = read_lock(spec);
    let text = std::fs::read_to_string(lock_path(spec)).unwrap();
    let per = lock_packages(&lock);
    assert_eq!(
        per.keys().map(String::as_str).collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"],
        "platforms of the lock"
    );
    for (plat, arch, _) in PLATFORMS {
        let pkgs = &per[plat];
        let got: BTreeSet<(String, String, String)> = pkgs
            .iter()
            .map(|p| (p.name.clone(), p.version.clone(), p.architecture.clone()))
            .collect();
        assert_eq!(got, f.expected(arch), "{plat}: resolved set");
        assert_eq!(got.len(), pkgs.len(), "{plat}: a package listed twice");
        // Sorted by name, then architecture.
        let keys: Vec<(String, String)> = pkgs
            .iter()
            .map(|p| (p.name.clone(), p.architecture.clone()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "{plat}: lock packages are not sorted");
        for p in pkgs {
            let pb = f.published(&p.name, &p.version, &p.architecture);
            assert_eq!(p.filename, pb.filename, "{plat} {}: filename", p.name);
            assert_eq!(p.size, pb.size, "{plat} {}: size", p.name);
            assert_eq!(p.sha256, pb.sha256, "{plat} {}: sha256", p.name);
            assert_eq!(p.source, pb.source, "{plat} {}: source", p.name);
        }
    }
    // The Release files used are pinned by their digest.
    for suite in ["trixie", "trixie-updates"] {
        let d = sha256_hex(&f.repo.inrelease(suite));
        assert!(
            text.contains(&d),
            "the lock does not pin {suite}/InRelease ({d})"
        );
    }
    // `all` packages are the same file on both platforms.
    let dp = |plat: &str| {
        per[plat]
            .iter()
            .find(|p| p.name == "data-pkg")
            .unwrap()
            .clone()
    };
    assert_eq!(dp("linux/amd64"), dp("linux/arm64"));
}

/// Runs `cmd`, which must fail: non-zero exit, one line on stderr that
/// contains every one of `culprits`, no panic, `out` byte-for-byte as
/// before, and no staging folder left beside it.
fn assert_fails_cleanly(cmd: Command, out: &Path, culprits: &[&str]) -> String {
    fails_cleanly(cmd, out, culprits).1
}

/// [`assert_fails_cleanly`], also returning the exit code.
fn fails_cleanly(mut cmd: Command, out: &Path, culprits: &[&str]) -> (Option<i32>, String) {
    let before = snapshot(out);
    let r = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&r.stderr).to_string();
    eprintln!("expected failure ({}): {}", r.status, stderr.trim_end());
    assert!(
        !r.status.success(),
        "{cmd:?} succeeded but should fail on {culprits:?}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    for c in culprits {
        assert!(stderr.contains(c), "{stderr:?} does not name {c:?}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(snapshot(out), before, "the previous output changed");
    if let Some(parent) = out.parent() {
        let leftovers: Vec<_> = std::fs::read_dir(parent)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    (r.status.code(), stderr)
}

// ---------------------------------------------------------------------------

/// The fixture itself, checked by the real apt: signatures (gpgv), index
/// and package hashes, Valid-Until; and apt resolves the same request to
/// the same set. apt is told the provider of `virtual-thing`: the
/// resolver's documented rule for several providers (most important
/// Priority, then the smallest name) is not apt's. If this test fails,
/// the other tests' failures are the fixture's fault, not the builder's.
#[test]
fn fixture_repository_satisfies_real_apt() {
    let f = fixture();
    for (_, arch, _) in PLATFORMS {
        let keyring = f.path().join(format!("apt-keyring-{arch}.gpg"));
        f.repo.write_keyring(&keyring, false);
        let sources = format!(
            "deb [signed-by={k}] {u} trixie main\ndeb [signed-by={k}] {u} trixie-updates main\n",
            k = keyring.display(),
            u = f.server.url(),
        );
        let apt = AptSandbox::new(&f.path().join(format!("apt-{arch}")), &sources, arch);
        apt.run(
            "apt-get",
            &["-q", "update", "-o", "APT::Update::Error-Mode=any"],
        );
        let mut request: Vec<&str> = SPEC_PACKAGES.to_vec();
        request.push("base-passwd");
        request.push("provider-a");
        let theirs = apt.simulate(&request);
        let want: BTreeSet<String> = f
            .expected(arch)
            .into_iter()
            .map(|(n, v, a)| format!("{n} {v} {a}"))
            .collect();
        assert_eq!(theirs, want, "{arch}: apt's resolution of the fixture");
        // apt downloads every package and checks it against the index.
        let mut dl = vec!["-q", "install", "--download-only", "-y"];
        dl.extend_from_slice(&request);
        apt.run("apt-get", &dl);
        // And it refuses an expired Release, as the builder must.
        let now = now_secs();
        f.repo
            .publish("trixie", now - 10 * DAY, Some(now - 3 * DAY));
        let out = Command::new("apt-get")
            .env("APT_CONFIG", apt.dir.join("apt.conf"))
            .env("LC_ALL", "C")
            .args(["-q", "update", "-o", "APT::Update::Error-Mode=any"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("expired"),
            "apt accepted an expired Release:\n{text}"
        );
        f.repo.publish("trixie", now - 3600, Some(now + 7 * DAY));
    }
}

#[test]
fn lock_pins_the_expected_set_sorted_and_stable() {
    let mut f = fixture();
    let spec = f.spec("a");
    ok(&mut lock_cmd(&spec));
    assert!(lock_path(&spec).ends_with("a/netshoot.lock"));
    check_lock(&f, &spec);
    let first = std::fs::read(lock_path(&spec)).unwrap();
    assert!(first.ends_with(b"\n"));

    // Locking again gives the same bytes.
    ok(&mut lock_cmd(&spec));
    assert_eq!(
        std::fs::read(lock_path(&spec)).unwrap(),
        first,
        "relock changed the lock"
    );

    // The resolution does not depend on the order of the index: with
    // every stanza listed the other way round (and so new Release
    // digests), the same packages are pinned.
    let now = now_secs();
    f.repo.reverse_index("trixie");
    f.repo.publish("trixie", now - 3600, Some(now + 7 * DAY));
    let spec2 = f.spec("b");
    ok(&mut lock_cmd(&spec2));
    check_lock(&f, &spec2);
    assert_eq!(
        lock_packages(&read_lock(&spec2)),
        lock_packages(&serde_json::from_slice(&first).unwrap()),
        "index order changed the resolution"
    );
    assert_ne!(
        std::fs::read(lock_path(&spec2)).unwrap(),
        first,
        "the new Release digest is pinned"
    );
}

#[test]
fn build_from_lock_downloads_only_debs_and_lays_out_a_dpkg_rootfs() {
    let f = fixture();
    let spec = f.spec("s");
    // The lock keeps the signed indexes it used in the cache, where the
    // build checks the lock against them.
    ok(lock_cmd(&spec).env("NETSHOOT_CACHE", f.path().join("cache")));
    let lock = read_lock(&spec);
    let per = lock_packages(&lock);

    // With a matching lock, a cold build fetches exactly the locked .debs
    // and nothing else (no InRelease, no Packages: those the lock was
    // made from are in the cache).
    f.server.clear();
    let out = f.path().join("out/aptest");
    let digest = ok(&mut build_cmd(&spec, &out, &f.path().join("cache")))
        .trim()
        .to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let requested: BTreeSet<String> = f.server.requests().into_iter().collect();
    let locked: BTreeSet<String> = per
        .values()
        .flatten()
        .map(|p| format!("/debian/{}", p.filename))
        .collect();
    assert_eq!(
        requested, locked,
        "a build from the lock must fetch only the locked .debs"
    );
    // The lock is left as it was.
    assert_eq!(read_lock(&spec), lock);

    let work = f.path().join("unpacked");
    std::fs::create_dir_all(&work).unwrap();
    let mut complaints = Vec::new();
    for (plat, arch, triplet) in PLATFORMS {
        let bundle = unpack(&out, "t", arch, &work);
        let root = bundle.join("rootfs");
        complaints.extend(check_rootfs(&f, &root, plat, arch, triplet, &per[plat]));
        check_capability(&work, &root, arch);
    }
    // dpkg itself reads the amd64 database.
    let amd = work.join("bundle-amd64/rootfs");
    check_with_real_dpkg(&amd, &per["linux/amd64"]);

    // A rebuild from a cold cache into another folder is bit-for-bit the
    // same image, so the system user's ids are stable too.
    let out2 = f.path().join("out2/aptest");
    let digest2 = ok(&mut build_cmd(&spec, &out2, &f.path().join("cache2")))
        .trim()
        .to_string();
    assert_eq!(digest2, digest, "a rebuild gave another image");
    let work2 = f.path().join("unpacked2");
    std::fs::create_dir_all(&work2).unwrap();
    let root2 = unpack(&out2, "t", "amd64", &work2).join("rootfs");
    let svc = |r: &Path| {
        std::fs::read_to_string(r.join("etc/passwd"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("svcuser:"))
            .map(str::to_string)
    };
    assert_eq!(svc(&root2), svc(&amd));
    assert!(
        complaints.is_empty(),
        "pwck/grpck:\n{}",
        complaints.join("\n")
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn check_rootfs(
    f: &Fixture,
    root: &Path,
    plat: &str,
    arch: &str,
    triplet: &str,
    locked: &[LockedPkg],
) -> Vec<String> {
    let r = |p: &str| root.join(p.trim_start_matches('/'));
    let read = |p: &str| std::fs::read(r(p)).unwrap_or_else(|e| panic!("{plat}: {p}: {e}"));

    // Files at their paths, from the right package and architecture.
    assert_eq!(read("/usr/bin/mytool"), mytool_body(arch));
    assert_eq!(mode(&r("/usr/bin/mytool")), 0o755, "{plat}");
    assert_eq!(mode(&r("/usr/bin/mysuid")), 0o4755, "{plat}: setuid bit");
    let md = std::fs::metadata(r("/usr/bin/mysuid")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    assert_eq!(
        read(&format!("/usr/lib/{triplet}/libfoo.so.1")),
        libfoo_body("1.2-1", arch)
    );
    assert_eq!(read("/usr/share/data-pkg/data.txt"), b"shared data\n");
    assert_eq!(read("/usr/bin/othertool"), b"othertool 1.0-1\n");
    assert_eq!(
        read("/etc/mytool.conf"),
        b"# mytool configuration\nverbose = yes\n"
    );
    assert!(r("/usr/share/provider-a/a").exists());
    for absent in [
        "/usr/share/provider-b/b",
        "/usr/lib/libfoo-alt",
        "/etc/evil-escape",
    ] {
        assert!(
            !r(absent).exists(),
            "{plat}: {absent} must not be installed"
        );
    }

    // path_exclude, with the path_include exception.
    assert!(
        !r("/usr/share/doc/mytool/README").exists(),
        "{plat}: excluded doc installed"
    );
    assert!(
        !r("/usr/share/info/mytool.info").exists(),
        "{plat}: excluded info installed"
    );
    assert_eq!(
        read("/usr/share/doc/mytool/copyright"),
        b"mytool copyright\n"
    );
    assert_eq!(read("/usr/share/man/man1/mytool.1.gz"), b"mytool manual\n");

    // The dpkg status: one paragraph per locked package, its control
    // fields and `Status: install ok installed`.
    let status = String::from_utf8(read("/var/lib/dpkg/status")).unwrap();
    let paras = paragraphs(&status);
    let names: Vec<(String, String, String)> = paras
        .iter()
        .map(|p| {
            (
                field(p, "Package").unwrap().to_string(),
                field(p, "Version").unwrap_or("").to_string(),
                field(p, "Architecture").unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = locked
        .iter()
        .map(|p| (p.name.clone(), p.version.clone(), p.architecture.clone()))
        .collect();
    assert_eq!(
        names.iter().cloned().collect::<BTreeSet<_>>(),
        want,
        "{plat}: status vs lock"
    );
    assert_eq!(names.len(), want.len(), "{plat}: a package twice in status");
    for p in &paras {
        let name = field(p, "Package").unwrap();
        assert_eq!(
            field(p, "Status"),
            Some("install ok installed"),
            "{plat} {name}"
        );
        assert!(
            field(p, "Maintainer").is_some(),
            "{plat} {name}: control fields lost"
        );
        assert!(
            field(p, "Filename").is_none(),
            "{plat} {name}: index-only field in status"
        );
    }
    let para = |n: &str| {
        paras
            .iter()
            .find(|p| field(p, "Package") == Some(n))
            .unwrap()
    };
    assert_eq!(
        field(para("mytool"), "Depends"),
        Some("libfoo1 (>= 1.0) | libfoo-alt, virtual-thing, data-pkg")
    );
    assert_eq!(field(para("libfoo1"), "Multi-Arch"), Some("same"));
    assert_eq!(field(para("provider-a"), "Provides"), Some("virtual-thing"));

    // Per-package file lists and md5sums; `:arch` for Multi-Arch: same.
    let info = |f: &str| String::from_utf8(read(&format!("/var/lib/dpkg/info/{f}"))).unwrap();
    let list = info("mytool.list");
    for p in [
        "/usr/bin/mytool",
        "/usr/bin/mysuid",
        "/etc/mytool.conf",
        "/usr/share/man/man1/mytool.1.gz",
    ] {
        assert!(
            list.lines().any(|l| l == p),
            "{plat}: mytool.list lacks {p}:\n{list}"
        );
    }
    let lib = info(&format!("libfoo1:{arch}.list"));
    assert!(
        lib.lines()
            .any(|l| l == format!("/usr/lib/{triplet}/libfoo.so.1")),
        "{lib}"
    );
    assert!(
        !r("/var/lib/dpkg/info/libfoo1.list").exists(),
        "Multi-Arch: same uses pkg:arch"
    );
    let md5 = info("mytool.md5sums");
    assert!(
        md5.lines()
            .any(|l| l == format!("{}  usr/bin/mytool", md5_hex(&mytool_body(arch)))),
        "{plat}: mytool.md5sums:\n{md5}"
    );
    assert_eq!(info("mytool.conffiles").trim(), "/etc/mytool.conf");
    assert!(
        !r("/var/lib/dpkg/info/pinger.conffiles").exists(),
        "no conffiles, no file"
    );

    // update-alternatives: the highest priority wins; the links go through
    // /etc/alternatives; the database is what the real tool writes.
    let link = |p: &str| {
        std::fs::read_link(r(p))
            .unwrap_or_else(|e| panic!("{plat}: {p} is not a symlink: {e}"))
            .to_string_lossy()
            .to_string()
    };
    assert_eq!(link("/usr/bin/tool"), "/etc/alternatives/tool");
    assert_eq!(link("/etc/alternatives/tool"), "/usr/bin/mytool");
    assert_eq!(
        link("/usr/share/man/man1/tool.1.gz"),
        "/etc/alternatives/tool.1.gz"
    );
    assert_eq!(
        link("/etc/alternatives/tool.1.gz"),
        "/usr/share/man/man1/mytool.1.gz"
    );
    let ours = String::from_utf8(read("/var/lib/dpkg/alternatives/tool")).unwrap();
    assert_eq!(
        ours,
        real_update_alternatives_db(&f.path().join(format!("ua-{arch}"))),
        "{plat}"
    );
    let q = ok(Command::new("update-alternatives")
        .arg("--root")
        .arg(root)
        .args(["--query", "tool"]));
    assert!(q.contains("Status: auto"), "{q}");
    assert!(q.contains("Best: /usr/bin/mytool"), "{q}");
    assert!(q.contains("Value: /usr/bin/mytool"), "{q}");
    assert!(q.contains("Priority: 20"), "{q}");

    // Accounts: base-passwd's master files, then the postinst's system
    // user and group with ids from the system range.
    let passwd = String::from_utf8(read("/etc/passwd")).unwrap();
    let group = String::from_utf8(read("/etc/group")).unwrap();
    let shadow = String::from_utf8(read("/etc/shadow")).unwrap();
    let gshadow = String::from_utf8(read("/etc/gshadow")).unwrap();
    let fields = |text: &str, name: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split(':').next() == Some(name))
            .unwrap_or_else(|| panic!("{plat}: no {name} in:\n{text}"))
            .split(':')
            .map(str::to_string)
            .collect()
    };
    for l in PASSWD_MASTER.lines() {
        let m: Vec<&str> = l.split(':').collect();
        let got = fields(&passwd, m[0]);
        assert_eq!(got.len(), 7, "{plat}: {got:?}");
        assert_eq!(&got[2..], &m[2..], "{plat}: passwd entry of {}", m[0]);
        assert_eq!(
            fields(&shadow, m[0]).len(),
            9,
            "{plat}: shadow entry of {}",
            m[0]
        );
    }
    for l in GROUP_MASTER.lines() {
        let m: Vec<&str> = l.split(':').collect();
        assert_eq!(fields(&group, m[0])[2], m[2], "{plat}: group {}", m[0]);
        fields(&gshadow, m[0]);
    }
    let svc = fields(&passwd, "svcuser");
    let uid: u32 = svc[2].parse().unwrap();
    let gid: u32 = svc[3].parse().unwrap();
    assert!(
        (100..1000).contains(&uid),
        "{plat}: svcuser uid {uid} is not a system uid"
    );
    assert_eq!(svc[5], "/var/lib/svc");
    assert_eq!(svc[6], "/usr/sbin/nologin");
    let g = fields(&group, "svcuser");
    assert_eq!(
        g[2],
        gid.to_string(),
        "{plat}: --group makes the user's own group primary"
    );
    assert!((100..1000).contains(&gid));
    fields(&shadow, "svcuser");
    fields(&gshadow, "svcuser");
    let uids: Vec<&str> = passwd.lines().filter_map(|l| l.split(':').nth(2)).collect();
    assert_eq!(
        uids.iter().collect::<BTreeSet<_>>().len(),
        uids.len(),
        "{plat}: duplicate uid in passwd:\n{passwd}"
    );
    // adduser creates the home, owned by the user.
    let home = std::fs::metadata(r("/var/lib/svc")).expect("svcuser's home");
    assert!(home.is_dir());
    assert_eq!((home.uid(), home.gid()), (uid, gid), "{plat}: home owner");
    // The shadow tools agree the files are consistent; checked last by
    // the caller, so that every other check has run.
    let mut complaints = Vec::new();
    for (tool, files) in [
        ("pwck", ["etc/passwd", "etc/shadow"]),
        ("grpck", ["etc/group", "etc/gshadow"]),
    ] {
        let out = run(Command::new(tool)
            .arg("-r")
            .arg(root.join(files[0]))
            .arg(root.join(files[1])));
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        // Missing home folders and groups are looked up on the host, so
        // those warnings mean nothing here; what must not appear are
        // malformed or inconsistent entries, or passwords left in
        // passwd/group next to a shadow file (Debian's `shadowconfig on`
        // leaves `x` there and the `*` in shadow/gshadow).
        for line in text.lines() {
            if [
                "invalid",
                "duplicate",
                "no matching",
                "is not set to 'x'",
                "bad",
            ]
            .iter()
            .any(|b| line.contains(b))
            {
                complaints.push(format!("{plat}: {tool}: {line}"));
            }
        }
    }
    complaints
}

/// The alternatives database the real update-alternatives writes for the
/// two packages' calls, in a scratch root.
fn real_update_alternatives_db(scratch: &Path) -> String {
    for d in [
        "usr/bin",
        "usr/share/man/man1",
        "etc/alternatives",
        "var/lib/dpkg/alternatives",
    ] {
        std::fs::create_dir_all(scratch.join(d)).unwrap();
    }
    for f in [
        "usr/bin/mytool",
        "usr/bin/othertool",
        "usr/share/man/man1/mytool.1.gz",
        "usr/share/man/man1/othertool.1.gz",
    ] {
        std::fs::write(scratch.join(f), b"").unwrap();
    }
    for (path, prio, man) in [
        ("/usr/bin/mytool", "50", "mytool"),
        ("/usr/bin/othertool", "20", "othertool"),
    ] {
        ok(Command::new("update-alternatives")
            .arg("--root")
            .arg(scratch)
            .args([
                "--log",
                "/dev/null",
                "--quiet",
                "--install",
                "/usr/bin/tool",
                "tool",
                path,
                prio,
            ])
            .args(["--slave", "/usr/share/man/man1/tool.1.gz", "tool.1.gz"])
            .arg(format!("/usr/share/man/man1/{man}.1.gz")));
    }
    std::fs::read_to_string(scratch.join("var/lib/dpkg/alternatives/tool")).unwrap()
}

/// pinger's `setcap cap_net_raw+ep` became a security.capability xattr:
/// getcap reads it from the umoci rootfs (umoci restores xattrs as root)
/// and from the layers extracted by GNU tar.
fn check_capability(work: &Path, root: &Path, arch: &str) {
    let tarred = gnu_tar_extract(work, arch);
    for (how, p) in [
        ("GNU tar", tarred.join("usr/bin/pinger")),
        ("umoci", root.join("usr/bin/pinger")),
    ] {
        let out = ok(Command::new("getcap").arg(&p));
        assert!(
            out.contains("cap_net_raw=ep"),
            "{arch} via {how}: getcap {}: {out:?}",
            p.display()
        );
    }
    let out = ok(Command::new("getcap").arg(tarred.join("usr/bin/mytool")));
    assert!(out.trim().is_empty(), "mytool got capabilities: {out}");
}

/// dpkg-query, dpkg -L and dpkg --verify read our database.
fn check_with_real_dpkg(root: &Path, locked: &[LockedPkg]) {
    let admin = root.join("var/lib/dpkg");
    let admindir = format!("--admindir={}", admin.display());
    let q = ok(Command::new("dpkg-query").arg(&admindir).args([
        "-W",
        "-f",
        "${Package} ${Version} ${Architecture} ${Status}\n",
    ]));
    let got: BTreeSet<String> = q.lines().map(str::to_string).collect();
    let want: BTreeSet<String> = locked
        .iter()
        .map(|p| {
            format!(
                "{} {} {} install ok installed",
                p.name, p.version, p.architecture
            )
        })
        .collect();
    assert_eq!(got, want, "dpkg-query -W on our database");
    let files = |pkg: &str| {
        let o = run(Command::new("dpkg").arg(&admindir).args(["-L", pkg]));
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
    };
    let l = files("mytool");
    assert!(
        l.lines().any(|x| x == "/usr/bin/mytool"),
        "dpkg -L mytool:\n{l}"
    );
    // Multi-Arch: same needs the database format 1 (`info/format`) for
    // dpkg to find `libfoo1:amd64.list`.
    let l = files("libfoo1:amd64");
    assert!(
        l.lines()
            .any(|x| x == "/usr/lib/x86_64-linux-gnu/libfoo.so.1"),
        "dpkg -L libfoo1:amd64:\n{l}"
    );
    let s = ok(Command::new("dpkg-query")
        .arg(&admindir)
        .args(["-S", "/usr/bin/pinger"]));
    assert_eq!(s.trim(), "pinger: /usr/bin/pinger");
    // dpkg --verify checks the installed files against the md5sums:
    // nothing but excluded paths may be reported.
    let v = run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--verify",
            "mytool",
            "othertool",
            "pinger",
            "libfoo1",
            "data-pkg",
        ]));
    let text = String::from_utf8_lossy(&v.stdout).to_string();
    for line in text.lines() {
        assert!(
            line.contains("/usr/share/doc/") || line.contains("/usr/share/info/"),
            "dpkg --verify: {line}\n{text}{}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
}

#[test]
fn build_relocks_when_needed_and_locked_refuses_a_stale_lock() {
    let f = fixture();
    let spec = f.spec("s");
    let out = f.path().join("out/aptest");
    let cache = f.path().join("cache");
    // No lock yet: build resolves and writes it, the same as `lock` would.
    ok(&mut build_cmd(&spec, &out, &cache));
    check_lock(&f, &spec);
    let written = std::fs::read(lock_path(&spec)).unwrap();
    let spec_b = f.spec("b");
    ok(&mut lock_cmd(&spec_b));
    assert_eq!(std::fs::read(lock_path(&spec_b)).unwrap(), written);

    // The spec asks for more: --locked refuses the stale lock and says
    // what to run, touching neither the lock nor the output.
    let mut more = SPEC_PACKAGES.to_vec();
    more.push("libfoo-alt");
    f.spec_in("s", &more, Some(&f.server.url()), false);
    let mut c = build_cmd(&spec, &out, &cache);
    c.arg("--locked");
    let e = assert_fails_cleanly(c, &out, &["netshoot-build lock"]);
    assert!(
        e.contains("netshoot.lock") || e.contains("netshoot.toml"),
        "names the lock or spec: {e}"
    );
    assert_eq!(
        std::fs::read(lock_path(&spec)).unwrap(),
        written,
        "--locked changed the lock"
    );

    // Without --locked the stale lock is replaced.
    ok(&mut build_cmd(&spec, &out, &cache));
    let per = lock_packages(&read_lock(&spec));
    for (plat, arch, _) in PLATFORMS {
        let alt: Vec<_> = per[plat]
            .iter()
            .filter(|p| p.name == "libfoo-alt")
            .collect();
        assert_eq!(alt.len(), 1, "{plat}: relock lacks libfoo-alt");
        assert_eq!(alt[0].architecture, arch);
    }
    // A fresh, matching lock works with --locked.
    let mut c = build_cmd(&spec, &out, &cache);
    c.arg("--locked");
    ok(&mut c);

    // A locked .deb the mirror no longer serves: a cold build fails,
    // naming the file and the ways out (relock, a snapshot mirror).
    let gone = f.published("pinger", "1.0-1", "amd64").filename.clone();
    let _swap = Swap::remove(&f.repo.path(&gone));
    let stderr = assert_fails_cleanly(
        build_cmd(&spec, &out, &f.path().join("cold")),
        &out,
        &["pinger_1.0-1_amd64.deb"],
    );
    assert!(stderr.contains("lock"), "{stderr}");
    assert!(stderr.contains("snapshot"), "{stderr}");
    // The platform's architecture and the way around it: --platform.
    assert!(
        stderr.contains("(amd64)") && stderr.contains("--platform"),
        "{stderr}"
    );
}

#[test]
fn tampered_or_hostile_repository_fails_cleanly() {
    let f = fixture();
    let spec = f.spec("good");
    let out = f.path().join("out/aptest");
    ok(&mut build_cmd(&spec, &out, &f.path().join("cache")));
    let now = now_secs();
    let mut n = 0;
    let mut case = |packages: &[&str], culprits: &[&str], lock_too: bool| {
        n += 1;
        let dir = format!("case{n}");
        let s = f.spec_in(&dir, packages, Some(&f.server.url()), false);
        let (code, stderr) = fails_cleanly(
            build_cmd(&s, &out, &f.path().join(format!("cache-{dir}"))),
            &out,
            culprits,
        );
        // A verification failure (error.rs: exit code 3), as in build_e2e.
        assert_eq!(code, Some(3), "{stderr}");
        if lock_too {
            // Nothing was resolved from unverified data: no lock appears,
            // and `lock` fails the same way.
            assert!(
                !lock_path(&s).exists(),
                "a lock was written from unverified indexes"
            );
            let r = run(&mut lock_cmd(&s));
            let e = String::from_utf8_lossy(&r.stderr);
            assert!(!r.status.success());
            assert!(
                e.trim_end()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .contains(culprits[0]),
                "{e}"
            );
            assert!(!lock_path(&s).exists());
        }
        stderr
    };

    // 1. A Packages index changed after the Release was signed (both forms).
    {
        let dir = "dists/trixie/main/binary-amd64";
        let text = std::fs::read_to_string(f.repo.path(&format!("{dir}/Packages"))).unwrap();
        let evil = text.replace("Package: pinger\n", "Package: pinger\nPre-Depends: evil\n");
        assert_ne!(evil, text);
        let xz = {
            let mut c = Command::new("xz")
                .args(["-c"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            c.stdin.take().unwrap().write_all(evil.as_bytes()).unwrap();
            c.wait_with_output().unwrap().stdout
        };
        let _a = Swap::write(&f.repo.path(&format!("{dir}/Packages")), evil.as_bytes());
        let _b = Swap::write(&f.repo.path(&format!("{dir}/Packages.xz")), &xz);
        case(SPEC_PACKAGES, &["binary-amd64/Packages"], true);
    }

    // 1b. The same with the size kept (one version digit changed) and
    // only the uncompressed index served: the digest must catch it.
    {
        let dir = "dists/trixie/main/binary-arm64";
        let text = std::fs::read_to_string(f.repo.path(&format!("{dir}/Packages"))).unwrap();
        let evil = text.replacen("Version: 1.0-1\n", "Version: 9.0-1\n", 1);
        assert_ne!(evil, text);
        assert_eq!(evil.len(), text.len());
        let _a = Swap::write(&f.repo.path(&format!("{dir}/Packages")), evil.as_bytes());
        let _b = Swap::remove(&f.repo.path(&format!("{dir}/Packages.xz")));
        let e = case(SPEC_PACKAGES, &["binary-arm64/Packages"], true);
        assert!(
            e.contains("sha256") || e.contains("digest") || e.contains("hash"),
            "{e}"
        );
    }

    // 2. A .deb changed after it was indexed: same size, one byte flipped.
    {
        let p = f
            .repo
            .path(&f.published("mytool", "1.0-1", "arm64").filename);
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        let _s = Swap::write(&p, &bytes);
        let e = case(SPEC_PACKAGES, &["mytool_1.0-1_arm64.deb"], false);
        assert!(
            e.contains("sha256") || e.contains("digest") || e.contains("hash"),
            "{e}"
        );
    }

    // 3. An InRelease signed by another key.
    {
        let other = Gpg::new();
        let key = other.gen("Mallory <mallory@example.invalid>");
        f.repo.publish_signed_by(
            "trixie-updates",
            now - 3600,
            Some(now + 7 * DAY),
            &other,
            &key,
        );
        case(SPEC_PACKAGES, &["trixie-updates/InRelease"], true);
        f.repo
            .publish("trixie-updates", now - 3600, Some(now + 7 * DAY));
    }

    // 4. An expired Valid-Until (properly signed).
    {
        f.repo
            .publish("trixie", now - 10 * DAY, Some(now - 3 * DAY));
        let e = case(SPEC_PACKAGES, &["trixie/InRelease"], true);
        assert!(e.contains("expired"), "{e}");
        f.repo.publish("trixie", now - 3600, Some(now + 7 * DAY));
    }

    // 5. A signed, indexed .deb whose data climbs out of the root.
    {
        let mut p = SPEC_PACKAGES.to_vec();
        p.push("evil");
        let e = case(&p, &["evil_1.0_all.deb"], false);
        assert!(e.contains(".."), "the message names the entry: {e}");
    }

    // The repository is good again: the same spec builds.
    let s = f.spec_in("after", SPEC_PACKAGES, Some(&f.server.url()), false);
    ok(&mut build_cmd(
        &s,
        &f.path().join("out-after/aptest"),
        &f.path().join("cache-after"),
    ));
}

#[test]
fn mirror_comes_from_flag_env_or_host_sources_else_the_error_names_the_flag() {
    let f = fixture();
    let empty_root = f.path().join("empty-root");
    std::fs::create_dir_all(&empty_root).unwrap();
    // No url in the spec, an armored keyring.
    let spec = f.spec_in("nourl", SPEC_PACKAGES, None, true);
    let out = f.path().join("out/aptest");
    let url = f.server.url();

    // Nowhere to fetch from: the error names the flag to pass.
    let mut c = build_cmd(&spec, &out, &f.path().join("cache"));
    c.env("NETSHOOT_APT_ROOT", &empty_root);
    assert_fails_cleanly(c, &out, &["--mirror", "test"]);
    let mut c = lock_cmd(&spec);
    c.env("NETSHOOT_APT_ROOT", &empty_root);
    let r = run(&mut c);
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && e.contains("--mirror"), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(!lock_path(&spec).exists());

    // The flag.
    let mut c = lock_cmd(&spec);
    c.env("NETSHOOT_APT_ROOT", &empty_root)
        .arg("--mirror")
        .arg(format!("test={url}"));
    ok(&mut c);
    check_lock(&f, &spec);
    let by_flag = std::fs::read(lock_path(&spec)).unwrap();
    std::fs::remove_file(lock_path(&spec)).unwrap();

    // The environment.
    let mut c = lock_cmd(&spec);
    c.env("NETSHOOT_APT_ROOT", &empty_root)
        .env("NETSHOOT_MIRROR_TEST", &url);
    ok(&mut c);
    assert_eq!(std::fs::read(lock_path(&spec)).unwrap(), by_flag);
    std::fs::remove_file(lock_path(&spec)).unwrap();

    // The host's apt sources (here a root the test owns).
    let host = f.path().join("host-root");
    std::fs::create_dir_all(host.join("etc/apt/sources.list.d")).unwrap();
    std::fs::write(
        host.join("etc/apt/sources.list.d/debian.sources"),
        format!("Types: deb\nURIs: {url}\nSuites: trixie trixie-updates\nComponents: main\n"),
    )
    .unwrap();
    let mut c = lock_cmd(&spec);
    c.env("NETSHOOT_APT_ROOT", &host);
    ok(&mut c);
    assert_eq!(std::fs::read(lock_path(&spec)).unwrap(), by_flag);

    // ... and a build from it, with the mirror from the flag overriding a
    // spec url that points nowhere.
    let dead = "http://127.0.0.1:9/debian";
    let spec2 = f.spec_in("deadurl", SPEC_PACKAGES, Some(dead), true);
    let mut c = build_cmd(&spec2, &out, &f.path().join("cache"));
    c.env("NETSHOOT_APT_ROOT", &empty_root)
        .arg("--mirror")
        .arg(format!("test={url}"));
    ok(&mut c);
    check_lock(&f, &spec2);
    // Without the flag, the dead url is what fails, and it is named.
    std::fs::remove_file(lock_path(&spec2)).unwrap();
    let mut c = build_cmd(&spec2, &out, &f.path().join("cache-dead"));
    c.env("NETSHOOT_APT_ROOT", &empty_root);
    assert_fails_cleanly(c, &out, &["127.0.0.1:9"]);
}
