//! Integrity end to end: a hostile spec, a damaged cache, an edited lock or
//! a damaged layout never gives a wrong image with exit 0. The inputs are
//! real: a signed apt repository made by the tests (dpkg-deb, GnuPG) on
//! 127.0.0.1, a loopback file server for url sources and a real
//! `docker-registry`; the checks read the layout with their own code
//! (sha256 of every blob, the files inside the layers).

#[path = "common/aptrepo.rs"]
mod aptrepo;
mod common;

use aptrepo::*;
use common::*;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PASSWD: &str = "root:*:0:0:root:/root:/bin/sh\n";
const GROUP: &str = "root:*:0:\n";
const TOOL: &[u8] = b"#!/bin/sh\necho the real tool\n";
const URL_FILE: &[u8] = b"downloaded bytes, pinned by sha256\n";

struct Fixture {
    // Drop order: servers before folders.
    server: Option<DirServer>,
    files: FileServer,
    repo: Repo,
    t: tempfile::TempDir,
    spec: PathBuf,
}

/// A signed repository with `tool` and `tool-static` (another validly
/// signed package), a url source and a local file; the spec is locked.
fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let mut repo = Repo::new(t.path(), &["amd64"]);
    repo.add(
        "trixie",
        &DebSpec::new("base-passwd", "3.6.7", "amd64")
            .field("Essential", "yes")
            .field("Priority", "required")
            .file(
                "/usr/share/base-passwd/passwd.master",
                PASSWD.as_bytes(),
                0o644,
            )
            .file(
                "/usr/share/base-passwd/group.master",
                GROUP.as_bytes(),
                0o644,
            ),
    );
    repo.add(
        "trixie",
        &DebSpec::new("tool", "1.0-1", "amd64").file("/usr/bin/tool", TOOL, 0o755),
    );
    repo.add(
        "trixie",
        &DebSpec::new("tool-static", "1.0-1", "amd64").file(
            "/usr/bin/tool-static",
            b"#!/bin/sh\necho not the tool\n",
            0o755,
        ),
    );
    let now = now_secs();
    repo.publish("trixie", now - 3600, Some(now + 7 * DAY));
    let server = DirServer::start(&repo.root);
    let files = FileServer::start();
    let url = files.put("/pinned.bin", URL_FILE.to_vec());
    let dir = t.path().join("spec");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/motd"), "hello\n").unwrap();
    repo.write_keyring(&dir.join("keyring.gpg"), false);
    let spec = dir.join("netshoot.toml");
    std::fs::write(
        &spec,
        format!(
            r#"platforms = ["linux/amd64"]

[image]
name = "integrity"
tag = "t"

[[local]]
src = "files/motd"
dest = "/etc/motd"

[[url]]
name = "pinned"
dest = "/usr/local/bin/pinned"
[url.platform."linux/amd64"]
url = "{url}"
sha256 = "{}"

[apt]
packages = ["tool"]
base = ["base-passwd"]

[[apt.repository]]
name = "test"
suites = ["trixie"]
components = ["main"]
keyring = "keyring.gpg"
url = "{}"
"#,
            sha256_hex(URL_FILE),
            server.url()
        ),
    )
    .unwrap();
    let f = Fixture {
        server: Some(server),
        files,
        repo,
        t,
        spec,
    };
    let mut lock = f.cmd();
    lock.args(["lock", "-q", "--spec"]).arg(&f.spec);
    ok(&mut lock);
    f
}

impl Fixture {
    fn path(&self) -> &Path {
        self.t.path()
    }

    fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    fn cmd(&self) -> Command {
        let mut c = bin();
        c.env_remove("NETSHOOT_MIRROR_TEST")
            .env("NETSHOOT_CACHE", self.path().join("cache"));
        c
    }

    fn build(&self, out: &str) -> Output {
        let mut c = self.cmd();
        c.args(["build", "--locked", "--spec"])
            .arg(&self.spec)
            .arg("--out")
            .arg(self.path().join(out));
        run(&mut c)
    }

    /// Builds into `out`, which must succeed; returns the index digest and
    /// stderr.
    fn build_ok(&self, out: &str) -> (String, String) {
        let o = self.build(out);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "build {out} failed: {err}");
        (String::from_utf8_lossy(&o.stdout).trim().to_string(), err)
    }

    fn out(&self, out: &str) -> PathBuf {
        self.path().join(out)
    }

    fn lock(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.spec.with_extension("lock")).unwrap()).unwrap()
    }
}

/// Flips one byte in the middle of `path`, in place.
fn flip(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    assert!(!b.is_empty(), "{} is empty", path.display());
    let i = b.len() / 2;
    b[i] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

/// Every blob of a layout hashes to its name (our own sha256, not the
/// builder's), and the files the image holds, read out of its layers.
fn read_image(layout: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    for (p, data) in snapshot(&layout.join("blobs/sha256")) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(
            sha256_hex(&data),
            name,
            "{} does not hash to its name",
            p.display()
        );
    }
    let json = |d: &str| -> serde_json::Value {
        let p = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = json(index["manifests"][0]["digest"].as_str().unwrap());
    let manifest = json(top["manifests"][0]["digest"].as_str().unwrap());
    let mut files = std::collections::BTreeMap::new();
    for l in manifest["layers"].as_array().unwrap() {
        let p = layout
            .join("blobs/sha256")
            .join(l["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap());
        let mut ar = tar::Archive::new(gz);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().to_string();
            if e.header().entry_type().is_file() {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                files.insert(path, v);
            } else if e.header().entry_type().is_symlink() {
                let target = e
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                files.insert(path, format!("-> {target}").into_bytes());
            }
        }
    }
    files
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn hostile_spec_paths_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("spec");
    std::fs::create_dir_all(dir.join("files/tree")).unwrap();
    std::fs::write(t.path().join("secret"), "host secret\n").unwrap();
    std::fs::write(dir.join("files/tree/ok"), "ok\n").unwrap();
    // A symlink inside a local folder that points outside is copied as a
    // symlink, never followed.
    std::os::unix::fs::symlink(t.path().join("secret"), dir.join("files/tree/escape")).unwrap();
    std::os::unix::fs::symlink(t.path().join("secret"), dir.join("files/link")).unwrap();
    let spec = dir.join("netshoot.toml");
    let write = |local: &str| {
        std::fs::write(
            &spec,
            format!(
                "platforms = [\"linux/amd64\"]\n[image]\nname = \"h\"\ntag = \"t\"\n[[local]]\nsrc = \"{local}\"\ndest = \"/x\"\n"
            ),
        )
        .unwrap();
    };
    let out = t.path().join("out");
    for (src, shown) in [
        ("/etc/hostname", "/etc/hostname"),
        ("../secret", "secret"),
        ("files/../../secret", "secret"),
        ("files/link", "secret"),
    ] {
        write(src);
        let o = run(bin()
            .args(["build", "--spec"])
            .arg(&spec)
            .arg("--out")
            .arg(&out)
            .arg("--cache")
            .arg(t.path().join("cache")));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{src}: {err}");
        assert!(
            err.contains("outside the spec's folder") && err.contains(shown),
            "{src}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(
            !out.exists(),
            "{src}: a refused spec wrote {}",
            out.display()
        );
    }
    // A keyring outside the folder is refused the same way, by `lock` too.
    std::fs::write(
        &spec,
        "platforms = [\"linux/amd64\"]\n[image]\nname = \"h\"\ntag = \"t\"\n[apt]\npackages = [\"x\"]\n[[apt.repository]]\nname = \"d\"\nsuites = [\"s\"]\ncomponents = [\"main\"]\nkeyring = \"../secret\"\nurl = \"http://127.0.0.1:9/debian\"\n",
    )
    .unwrap();
    let o = run(bin().args(["lock", "--spec"]).arg(&spec));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("keyring"), "{}", stderr(&o));
    // The folder with the outward symlink builds; the link stays a link.
    // The spec is named without a folder, as `cd tools && build --spec
    // netshoot.toml` does.
    write("files/tree");
    ok(bin()
        .current_dir(&dir)
        .args(["build", "-q", "--spec", "netshoot.toml"])
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(t.path().join("cache")));
    let files = read_image(&out);
    assert_eq!(files["x/ok"], b"ok\n");
    let link = String::from_utf8(files["x/escape"].clone()).unwrap();
    assert!(
        link.starts_with("-> ") && link.ends_with("/secret"),
        "{link}"
    );
    assert!(
        !files.values().any(|v| v == b"host secret\n"),
        "the host file's bytes reached the image"
    );
}

#[test]
fn damaged_downloads_are_fetched_again() {
    let f = fixture();
    let (want, _) = f.build_ok("ref");
    let reference = read_image(&f.out("ref"));
    assert_eq!(reference["usr/local/bin/pinned"], URL_FILE);
    assert_eq!(reference["usr/bin/tool"], TOOL);
    let blob = |hex: &str| f.cache().join("blobs/sha256").join(hex);
    let url_blob = blob(&sha256_hex(URL_FILE));
    // Truncated, then one byte flipped: fetched again, said, same image.
    for (n, damage) in [
        (
            "truncated",
            &(|p: &Path| std::fs::write(p, b"").unwrap()) as &dyn Fn(&Path),
        ),
        ("flipped", &flip),
    ] {
        damage(&url_blob);
        let (got, err) = f.build_ok(n);
        assert_eq!(got, want, "{n}: {err}");
        assert!(
            err.contains("cache:") && err.contains(&url_blob.display().to_string()),
            "{n}: the eviction is not said: {err}"
        );
        assert_eq!(read_image(&f.out(n))["usr/local/bin/pinned"], URL_FILE);
    }
    // The .deb replaced by another validly signed .deb: its payload is
    // dropped too so that the .deb is read again.
    let lock = f.lock();
    let tool = lock["apt"]["linux/amd64"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tool")
        .unwrap()
        .clone();
    let hex = tool["sha256"].as_str().unwrap();
    let other = f
        .repo
        .published
        .values()
        .flatten()
        .find(|p| p.name == "tool-static")
        .unwrap();
    std::fs::copy(f.repo.path(&other.filename), blob(hex)).unwrap();
    std::fs::remove_dir_all(f.cache().join("payloads")).unwrap();
    std::fs::remove_dir_all(f.cache().join("layers")).unwrap();
    let (got, err) = f.build_ok("swapped");
    assert_eq!(got, want, "{err}");
    assert!(err.contains(&blob(hex).display().to_string()), "{err}");
    let files = read_image(&f.out("swapped"));
    assert_eq!(files["usr/bin/tool"], TOOL);
    assert!(!files.contains_key("usr/bin/tool-static"));
    // When the mirror cannot give the right bytes either: exit 3, the
    // file named, nothing written.
    let _gone = Swap::write(
        &f.repo.path(tool["filename"].as_str().unwrap()),
        &std::fs::read(f.repo.path(&other.filename)).unwrap(),
    );
    std::fs::write(blob(hex), b"junk").unwrap();
    std::fs::remove_dir_all(f.cache().join("payloads")).unwrap();
    let o = f.build("refused");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(tool["filename"].as_str().unwrap()),
        "{}",
        stderr(&o)
    );
    assert!(!f.out("refused").exists());
}

#[test]
fn damaged_payloads_and_layers_are_rebuilt_and_layouts_share_no_inode() {
    let f = fixture();
    let (want, _) = f.build_ok("ref");
    // A flipped byte in an unpacked payload.
    let payloads: Vec<PathBuf> = std::fs::read_dir(f.cache().join("payloads/payload-v2"))
        .unwrap()
        .map(|e| e.unwrap().path().join("data.tar"))
        .collect();
    assert!(!payloads.is_empty());
    for p in &payloads {
        flip(p);
    }
    std::fs::remove_dir_all(f.cache().join("layers")).unwrap();
    let (got, err) = f.build_ok("payload");
    assert_eq!(got, want, "{err}");
    assert!(err.contains("payload"), "{err}");
    assert_eq!(read_image(&f.out("payload"))["usr/bin/tool"], TOOL);
    // A flipped byte in every cached compressed layer.
    let layers: Vec<PathBuf> = std::fs::read_dir(f.cache().join("layers/blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(!layers.is_empty());
    for p in &layers {
        flip(p);
    }
    let (got, err) = f.build_ok("layer");
    assert_eq!(got, want, "{err}");
    assert!(err.contains("writing the layer again"), "{err}");
    read_image(&f.out("layer"));
    // No blob of a layout shares an inode with the cache.
    let cache_inodes: std::collections::BTreeSet<u64> = walk(&f.cache())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().ino())
        .collect();
    for out in ["ref", "payload", "layer"] {
        for p in walk(&f.out(out)) {
            let ino = std::fs::metadata(&p).unwrap().ino();
            assert!(
                !cache_inodes.contains(&ino),
                "{} shares its inode with the cache",
                p.display()
            );
        }
    }
    // Editing a layout's blob damages neither the cache nor later builds.
    for p in walk(&f.out("ref").join("blobs/sha256")) {
        flip(&p);
    }
    let (got, err) = f.build_ok("after-edit");
    assert_eq!(got, want, "{err}");
    read_image(&f.out("after-edit"));
    // Rebuilding over the damaged layout repairs it.
    let (got, _) = f.build_ok("ref");
    assert_eq!(got, want);
    read_image(&f.out("ref"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            out.extend(walk(&p));
        } else if md.is_file() {
            out.push(p);
        }
    }
    out
}

/// The largest layer blob of the layout's first tagged image.
fn largest_blob(layout: &Path) -> PathBuf {
    let json = |d: &str| -> serde_json::Value {
        let p = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = json(index["manifests"][0]["digest"].as_str().unwrap());
    let manifest = json(top["manifests"][0]["digest"].as_str().unwrap());
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"))
}

#[test]
fn verify_export_and_push_refuse_a_damaged_layout() {
    let f = fixture();
    f.build_ok("out");
    let layout = f.out("out");
    let verify = || {
        let mut c = f.cmd();
        c.args(["verify", "--spec"])
            .arg(&f.spec)
            .arg("--layout")
            .arg(&layout);
        run(&mut c)
    };
    let o = verify();
    assert!(o.status.success(), "{}", stderr(&o));
    let victim = largest_blob(&layout);
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    let original = std::fs::read(&victim).unwrap();
    flip(&victim);
    let o = verify();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains(&name), "{}", stderr(&o));
    // export refuses it and leaves no archive.
    let archive = f.path().join("x.tar");
    let mut c = f.cmd();
    c.args(["export", "--layout"])
        .arg(&layout)
        .arg("-o")
        .arg(&archive);
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains(&name), "{}", stderr(&o));
    assert!(!archive.exists());
    let mut c = f.cmd();
    c.args([
        "export",
        "--format",
        "docker",
        "--platform",
        "linux/amd64",
        "--layout",
    ])
    .arg(&layout)
    .arg("-o")
    .arg(&archive);
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!archive.exists());
    // push refuses it before sending anything: the registry stays empty.
    let reg = TestRegistry::start();
    let mut c = f.cmd();
    c.args(["push", "--layout"])
        .arg(&layout)
        .arg(format!("{}/integrity/t:v1", reg.host));
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing was sent"), "{}", stderr(&o));
    let catalog = ok(Command::new("curl")
        .arg("-sf")
        .arg(format!("http://{}/v2/_catalog", reg.host)));
    assert!(!catalog.contains("integrity"), "{catalog}");
    // A missing blob is named the same way.
    std::fs::write(&victim, &original).unwrap();
    assert!(verify().status.success());
    std::fs::remove_file(&victim).unwrap();
    let o = verify();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&name) && stderr(&o).contains("missing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_edited_lock_is_refused() {
    let mut f = fixture();
    let lock_path = f.spec.with_extension("lock");
    let text = std::fs::read_to_string(&lock_path).unwrap();
    let mut lock: serde_json::Value = serde_json::from_str(&text).unwrap();
    let other = f
        .repo
        .published
        .values()
        .flatten()
        .find(|p| p.name == "tool-static")
        .unwrap()
        .clone();
    // The name kept, the file, size and sha256 of another signed .deb.
    for p in lock["apt"]["linux/amd64"]["packages"]
        .as_array_mut()
        .unwrap()
    {
        if p["name"] == "tool" {
            p["filename"] = other.filename.clone().into();
            p["sha256"] = other.sha256.clone().into();
            p["size"] = other.size.into();
        }
    }
    std::fs::write(&lock_path, serde_json::to_string_pretty(&lock).unwrap()).unwrap();
    let o = f.build("out");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("lock entry tool 1.0-1"), "{err}");
    assert!(!f.out("out").exists());
    // The same with the mirror gone: the indexes the lock was made from
    // are in the cache, so the check needs no network.
    drop(f.server.take());
    let o = f.build("out");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("lock entry tool 1.0-1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn index_json_is_the_same_over_an_earlier_layout() {
    let f = fixture();
    f.build_ok("fresh");
    f.build_ok("again");
    f.build_ok("again");
    let fresh = std::fs::read_to_string(f.out("fresh/index.json")).unwrap();
    assert_eq!(
        fresh,
        std::fs::read_to_string(f.out("again/index.json")).unwrap()
    );
    // The tagged image comes first, then the SBOMs.
    let index: serde_json::Value = serde_json::from_str(&fresh).unwrap();
    let m = index["manifests"].as_array().unwrap();
    assert_eq!(
        m[0]["annotations"]["org.opencontainers.image.ref.name"],
        "t"
    );
    assert!(m[1..].iter().all(|d| d["artifactType"].is_string()));
}

#[test]
fn cache_verify_removes_damaged_objects() {
    let f = fixture();
    f.build_ok("out");
    let cache_verify = || {
        let mut c = f.cmd();
        c.args(["cache", "verify", "--json"]);
        serde_json::from_str::<serde_json::Value>(&ok(&mut c)).unwrap()
    };
    let clean = cache_verify();
    assert!(clean["checked"].as_u64().unwrap() >= 4, "{clean}");
    assert_eq!(clean["removed"].as_array().unwrap().len(), 0, "{clean}");
    let url_blob = f.cache().join("blobs/sha256").join(sha256_hex(URL_FILE));
    flip(&url_blob);
    let payload = std::fs::read_dir(f.cache().join("payloads/payload-v2"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    flip(&payload.join("data.tar"));
    let layer = walk(&f.cache().join("layers/blobs"))
        .into_iter()
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    flip(&layer);
    let r = cache_verify();
    let removed: Vec<String> = r["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[0].as_str().unwrap().to_string())
        .collect();
    for p in [&url_blob, &payload, &layer] {
        assert!(
            removed.contains(&p.display().to_string()),
            "{p:?} not in {r}"
        );
        assert!(!p.exists());
    }
    assert_eq!(cache_verify()["removed"].as_array().unwrap().len(), 0);
    // The build puts back what was removed.
    f.build_ok("out2");
    assert_eq!(read_image(&f.out("out2"))["usr/local/bin/pinned"], URL_FILE);
}

#[test]
fn exit_codes_follow_the_classes() {
    let f = fixture();
    f.build_ok("out");
    let layout = f.out("out");
    // A missing parent folder is bad input (2) for export and pull.
    let mut c = f.cmd();
    c.args(["export", "--layout"])
        .arg(&layout)
        .arg("-o")
        .arg(f.path().join("no/such/x.tar"));
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let reg = TestRegistry::start();
    let reference = format!("{}/integrity/t:v1", reg.host);
    let mut c = f.cmd();
    c.args(["push", "-q", "--layout"])
        .arg(&layout)
        .arg(&reference);
    ok(&mut c);
    let mut c = f.cmd();
    c.args(["pull", "-q", &reference, "--archive"])
        .arg(f.path().join("no/such/x.tar"));
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A full disk is an unexpected I/O failure (1) for export and build.
    let small = f.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a small tmpfs (tests run as root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    // Fill it: every later write fails with ENOSPC.
    let mut fill = std::fs::File::create(small.join("fill")).unwrap();
    while std::io::Write::write_all(&mut fill, &[0u8; 4096]).is_ok() {}
    drop(fill);
    let mut c = f.cmd();
    c.args(["export", "--layout"])
        .arg(&layout)
        .arg("-o")
        .arg(small.join("x.tar"));
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!small.join("x.tar").exists());
    let mut c = f.cmd();
    c.args(["build", "--locked", "--spec"])
        .arg(&f.spec)
        .arg("--out")
        .arg(small.join("out"));
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // A damaged blob is a verification failure (3), a missing layout bad
    // input (2), for every command that reads one.
    let mut c = f.cmd();
    c.args(["inspect", "--layout"])
        .arg(f.path().join("nothing"));
    assert_eq!(run(&mut c).status.code(), Some(2));
    let mut c = f.cmd();
    c.args(["push", "--layout"])
        .arg(f.path().join("nothing"))
        .arg(&reference);
    assert_eq!(run(&mut c).status.code(), Some(2));
    let mut c = f.cmd();
    c.args(["export", "--layout"])
        .arg(f.path().join("nothing"))
        .arg("-o")
        .arg(f.path().join("y.tar"));
    assert_eq!(run(&mut c).status.code(), Some(2));
    let _ = &f.files;
}
