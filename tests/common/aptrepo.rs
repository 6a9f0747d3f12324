//! A throwaway, signed apt repository for the end-to-end tests of the
//! Debian package source: `.deb`s built by the real `dpkg-deb` (and, for
//! hostile cases, crafted by hand), `Packages`/`Packages.xz` indexes, a
//! `Release` clearsigned into `InRelease` by the real GnuPG with a key
//! made in a temporary GNUPGHOME, and a loopback HTTP server that serves
//! the repository folder and logs every request path.
//!
//! Include it next to `common`:
//! `mod common;` and `#[path = "common/aptrepo.rs"] mod aptrepo;`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{ok, sha256_hex};

/// One day in seconds.
pub const DAY: u64 = 86_400;

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `secs` as the RFC 2822 date Debian's Release files carry, by `date`.
pub fn rfc2822(secs: u64) -> String {
    ok(Command::new("date").env("LC_ALL", "C").args([
        "-u",
        "-d",
        &format!("@{secs}"),
        "+%a, %d %b %Y %H:%M:%S UTC",
    ]))
    .trim()
    .to_string()
}

/// md5 hex of `data`, by the system's `md5sum`.
pub fn md5_hex(data: &[u8]) -> String {
    pipe("md5sum", &[], data)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Runs `prog args` with `input` on stdin and returns stdout as text.
fn pipe(prog: &str, args: &[&str], input: &[u8]) -> String {
    String::from_utf8(pipe_bytes(prog, args, input)).unwrap()
}

fn pipe_bytes(prog: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{prog} {args:?} failed");
    out.stdout
}

// ---------------------------------------------------------------------------
// GnuPG

/// GnuPG with a throwaway home; its agent is stopped and the home removed
/// on drop.
pub struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        Gpg {
            home: tempfile::Builder::new()
                .prefix("nsb-gpg")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args([
                "--batch",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .expect("gpg (package gnupg) must be installed");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Generates a signing key for `uid` and returns its fingerprint.
    pub fn gen(&self, uid: &str) -> String {
        self.run(&["--quick-gen-key", uid, "ed25519", "sign", "never"]);
        let text = String::from_utf8(self.run(&["--list-keys", "--with-colons", uid])).unwrap();
        text.lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap()
            .to_string()
    }

    /// The public key, binary or armored.
    pub fn export(&self, fpr: &str, armor: bool) -> Vec<u8> {
        if armor {
            self.run(&["--armor", "--export", fpr])
        } else {
            self.run(&["--export", fpr])
        }
    }

    /// `text` clearsigned by `fpr` (an InRelease).
    pub fn clearsign(&self, fpr: &str, text: &[u8]) -> Vec<u8> {
        let f = self.home.path().join("to-sign");
        std::fs::write(&f, text).unwrap();
        self.run(&[
            "-u",
            fpr,
            "--digest-algo",
            "SHA512",
            "--clearsign",
            "-o",
            "-",
            f.to_str().unwrap(),
        ])
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

// ---------------------------------------------------------------------------
// Packages

/// A file in a package's data.
#[derive(Clone, Debug)]
pub struct PkgFile {
    /// Absolute path in the image.
    pub path: String,
    pub body: Vec<u8>,
    pub mode: u32,
}

/// What `dpkg-deb --build` is given.
#[derive(Clone, Debug)]
pub struct DebSpec {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Further control fields (`Depends`, `Provides`, `Multi-Arch`, ...),
    /// in order.
    pub fields: Vec<(String, String)>,
    pub files: Vec<PkgFile>,
    /// (path, target)
    pub symlinks: Vec<(String, String)>,
    /// Conffile paths (must be among `files`).
    pub conffiles: Vec<String>,
    pub postinst: Option<String>,
}

impl DebSpec {
    pub fn new(name: &str, version: &str, arch: &str) -> DebSpec {
        DebSpec {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            fields: vec![],
            files: vec![],
            symlinks: vec![],
            conffiles: vec![],
            postinst: None,
        }
    }

    pub fn field(mut self, k: &str, v: &str) -> DebSpec {
        self.fields.push((k.into(), v.into()));
        self
    }

    pub fn file(mut self, path: &str, body: &[u8], mode: u32) -> DebSpec {
        self.files.push(PkgFile {
            path: path.into(),
            body: body.to_vec(),
            mode,
        });
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> DebSpec {
        self.symlinks.push((path.into(), target.into()));
        self
    }

    pub fn conffile(mut self, path: &str, body: &[u8]) -> DebSpec {
        self = self.file(path, body, 0o644);
        self.conffiles.push(path.into());
        self
    }

    pub fn postinst(mut self, script: &str) -> DebSpec {
        self.postinst = Some(script.into());
        self
    }

    /// `NAME_VERSION_ARCH.deb` (the epoch-less form the pool uses).
    pub fn file_name(&self) -> String {
        format!("{}_{}_{}.deb", self.name, self.version, self.arch)
    }

    /// The `control` file.
    pub fn control(&self) -> String {
        let mut c = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Test <test@example.invalid>\n",
            self.name, self.version, self.arch
        );
        for (k, v) in &self.fields {
            c.push_str(&format!("{k}: {v}\n"));
        }
        c.push_str(&format!(
            "Description: {} for the netshoot-build tests\n A package made by the test suite.\n",
            self.name
        ));
        c
    }

    /// The md5sums dh_md5sums would write: every regular file but the
    /// conffiles, paths without the leading `/`.
    pub fn md5sums(&self) -> String {
        let mut s = String::new();
        for f in &self.files {
            if !self.conffiles.contains(&f.path) {
                s.push_str(&format!("{}  {}\n", md5_hex(&f.body), &f.path[1..]));
            }
        }
        s
    }

    /// Builds the package with the real `dpkg-deb` in `work`.
    pub fn build(&self, work: &Path) -> Vec<u8> {
        let stage = tempfile::tempdir_in(work).unwrap();
        let root = stage.path().join("root");
        let d = |p: &str| root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(d("DEBIAN")).unwrap();
        for f in &self.files {
            let p = d(&f.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &f.body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode)).unwrap();
        }
        for (path, target) in &self.symlinks {
            let p = d(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, &p).unwrap();
        }
        std::fs::write(d("DEBIAN/control"), self.control()).unwrap();
        if !self.files.is_empty() {
            std::fs::write(d("DEBIAN/md5sums"), self.md5sums()).unwrap();
        }
        if !self.conffiles.is_empty() {
            std::fs::write(d("DEBIAN/conffiles"), self.conffiles.join("\n") + "\n").unwrap();
        }
        if let Some(s) = &self.postinst {
            std::fs::write(d("DEBIAN/postinst"), s).unwrap();
            std::fs::set_permissions(d("DEBIAN/postinst"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        // Directories as a package has them, whatever the umask.
        fn dirs(p: &Path) {
            if p.is_dir() && !p.is_symlink() {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
                for e in std::fs::read_dir(p).unwrap().flatten() {
                    dirs(&e.path());
                }
            }
        }
        dirs(&root);
        let out = stage.path().join(self.file_name());
        ok(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&root)
            .arg(&out));
        std::fs::read(out).unwrap()
    }
}

/// A tar header for `path` written into the raw name field, so entries the
/// `tar` crate refuses to build (`..`) can be made.
pub fn raw_tar_entry(b: &mut tar::Builder<Vec<u8>>, path: &str, ty: tar::EntryType, body: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(ty);
    h.set_mode(if ty == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(body.len() as u64);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    b.append(&h, body).unwrap();
}

/// A `.deb` made by hand (ar + uncompressed tars) whose data holds the
/// given members verbatim, e.g. a `./../../etc/evil` path traversal.
pub fn crafted_deb(control: &str, members: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut c = tar::Builder::new(Vec::new());
    raw_tar_entry(&mut c, "./", tar::EntryType::Directory, b"");
    raw_tar_entry(
        &mut c,
        "./control",
        tar::EntryType::Regular,
        control.as_bytes(),
    );
    let c = c.into_inner().unwrap();
    let mut d = tar::Builder::new(Vec::new());
    raw_tar_entry(&mut d, "./", tar::EntryType::Directory, b"");
    for (p, ty, body) in members {
        raw_tar_entry(&mut d, p, *ty, body);
    }
    let d = d.into_inner().unwrap();
    ar_archive(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar", c),
        ("data.tar", d),
    ])
}

/// A System V `ar` archive, as `.deb`s use (common format, short names).
pub fn ar_archive(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, body) in members {
        let h = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            "0",
            "0",
            "0",
            "100644",
            body.len()
        );
        assert_eq!(h.len(), 60);
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        if body.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The repository

/// A package published in a suite.
#[derive(Clone, Debug)]
pub struct Published {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Pool path below the repository base, e.g. `pool/main/m/mytool_1.0_amd64.deb`.
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// The `Source` field, or the package name.
    pub source: String,
}

/// A signed apt repository in a folder: `ROOT/debian/{dists,pool}`.
pub struct Repo {
    /// The folder the server serves (`debian/` is below it).
    pub root: PathBuf,
    pub gpg: Gpg,
    pub key: String,
    /// Architectures with a `binary-ARCH` index.
    pub arches: Vec<String>,
    /// suite -> index paragraphs (stanza text, arch).
    stanzas: BTreeMap<String, Vec<(String, String)>>,
    pub published: BTreeMap<String, Vec<Published>>,
    work: PathBuf,
    /// suite -> `Sources` paragraphs.
    sources: BTreeMap<String, Vec<String>>,
}

impl Repo {
    /// An empty repository under `dir` signed by a new key.
    pub fn new(dir: &Path, arches: &[&str]) -> Repo {
        let root = dir.join("mirror");
        std::fs::create_dir_all(root.join("debian/pool")).unwrap();
        let work = dir.join("debs");
        std::fs::create_dir_all(&work).unwrap();
        let gpg = Gpg::new();
        let key = gpg.gen("Netshoot Test Archive <archive@example.invalid>");
        Repo {
            root,
            gpg,
            key,
            arches: arches.iter().map(|s| s.to_string()).collect(),
            stanzas: BTreeMap::new(),
            published: BTreeMap::new(),
            work,
            sources: BTreeMap::new(),
        }
    }

    /// Publishes the source package whose `.dsc` is `dsc` (its files
    /// beside it) in `suite`: the files go to the pool and a `Sources`
    /// paragraph made from the `.dsc` (as the archive makes it) to the index.
    /// Returns the pool folder below the base.
    pub fn add_source(&mut self, suite: &str, dsc: &Path) -> String {
        let text = std::fs::read_to_string(dsc).unwrap();
        let body = match text.split_once("\n\n") {
            Some((head, rest)) if head.starts_with("-----BEGIN PGP") => rest
                .split("-----BEGIN PGP SIGNATURE")
                .next()
                .unwrap()
                .to_string(),
            _ => text.clone(),
        };
        let para = &paragraphs(&body)[0];
        let name = field(para, "Source").unwrap().to_string();
        let dir = format!("pool/main/{}/{name}", &name[..1]);
        let pool = self.base().join(&dir);
        std::fs::create_dir_all(&pool).unwrap();
        let dsc_name = dsc.file_name().unwrap().to_string_lossy().to_string();
        let dsc_bytes = std::fs::read(dsc).unwrap();
        let mut sha = format!(
            " {} {} {dsc_name}\n",
            sha256_hex(&dsc_bytes),
            dsc_bytes.len()
        );
        let mut files = format!(" {} {} {dsc_name}\n", md5_hex(&dsc_bytes), dsc_bytes.len());
        std::fs::write(pool.join(&dsc_name), &dsc_bytes).unwrap();
        for line in field(para, "Checksums-Sha256")
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let f = line.split_whitespace().nth(2).unwrap();
            let bytes = std::fs::read(dsc.parent().unwrap().join(f)).unwrap();
            std::fs::write(pool.join(f), &bytes).unwrap();
            sha.push_str(&format!(" {} {} {f}\n", sha256_hex(&bytes), bytes.len()));
            files.push_str(&format!(" {} {} {f}\n", md5_hex(&bytes), bytes.len()));
        }
        let mut stanza = format!("Package: {name}\n");
        for (k, v) in para {
            if ["Source", "Checksums-Sha256", "Checksums-Sha1", "Files"].contains(&k.as_str()) {
                continue;
            }
            if v.contains('\n') {
                stanza.push_str(&format!(
                    "{k}:{}\n",
                    v.lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| format!("\n {}", l.trim()))
                        .collect::<String>()
                ));
            } else {
                stanza.push_str(&format!("{k}: {v}\n"));
            }
        }
        stanza.push_str(&format!(
            "Directory: {dir}\nFiles:\n{files}Checksums-Sha256:\n{sha}"
        ));
        self.sources
            .entry(suite.to_string())
            .or_default()
            .push(stanza);
        dir
    }

    /// The base folder (`.../mirror/debian`).
    pub fn base(&self) -> PathBuf {
        self.root.join("debian")
    }

    /// Writes the armored or binary public key to `path`.
    pub fn write_keyring(&self, path: &Path, armor: bool) {
        std::fs::write(path, self.gpg.export(&self.key, armor)).unwrap();
    }

    /// Builds `spec` with dpkg-deb and publishes it in `suite`.
    pub fn add(&mut self, suite: &str, spec: &DebSpec) -> Published {
        let deb = spec.build(&self.work);
        self.add_bytes(suite, &spec.name, &spec.version, &spec.arch, deb)
    }

    /// Publishes a ready `.deb` in `suite`; its index stanza is made from
    /// what `dpkg-deb -f` reads out of it, plus Filename, Size and hashes.
    pub fn add_bytes(
        &mut self,
        suite: &str,
        name: &str,
        version: &str,
        arch: &str,
        deb: Vec<u8>,
    ) -> Published {
        let filename = format!("pool/main/{name}/{name}_{version}_{arch}.deb");
        let path = self.base().join(&filename);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &deb).unwrap();
        let fields = ok(Command::new("dpkg-deb").arg("-f").arg(&path));
        let source = fields
            .lines()
            .find_map(|l| l.strip_prefix("Source: "))
            .map(|s| s.split_whitespace().next().unwrap().to_string())
            .unwrap_or_else(|| name.to_string());
        let mut stanza = String::new();
        for l in fields.lines() {
            stanza.push_str(l);
            stanza.push('\n');
            // Installed-Size goes in the index after Version, but field
            // order is not significant; append our fields at the end.
        }
        stanza.push_str(&format!(
            "Filename: {filename}\nSize: {}\nMD5sum: {}\nSHA256: {}\n",
            deb.len(),
            md5_hex(&deb),
            sha256_hex(&deb)
        ));
        self.stanzas
            .entry(suite.to_string())
            .or_default()
            .push((stanza, arch.to_string()));
        let p = Published {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            filename,
            size: deb.len() as u64,
            sha256: sha256_hex(&deb),
            source,
        };
        self.published
            .entry(suite.to_string())
            .or_default()
            .push(p.clone());
        p
    }

    /// Lists the packages of `suite` in the reverse order from now on.
    pub fn reverse_index(&mut self, suite: &str) {
        if let Some(v) = self.stanzas.get_mut(suite) {
            v.reverse();
        }
    }

    /// The `Packages` text of `suite` for `arch` (`all` packages in every
    /// architecture's index, as Debian does), in publication order.
    pub fn packages_text(&self, suite: &str, arch: &str) -> String {
        let mut s = String::new();
        for (stanza, a) in self.stanzas.get(suite).map(|v| v.as_slice()).unwrap_or(&[]) {
            if a == arch || a == "all" {
                if !s.is_empty() {
                    s.push('\n');
                }
                s.push_str(stanza);
            }
        }
        s
    }

    fn dists(&self, suite: &str) -> PathBuf {
        self.base().join("dists").join(suite)
    }

    /// Writes every index of `suite` and its Release, and signs it with
    /// the repository key: Date `date`, Valid-Until `valid_until`.
    pub fn publish(&self, suite: &str, date: u64, valid_until: Option<u64>) {
        self.publish_signed_by(suite, date, valid_until, &self.gpg, &self.key.clone())
    }

    /// As [`Repo::publish`], signed with another key.
    pub fn publish_signed_by(
        &self,
        suite: &str,
        date: u64,
        valid_until: Option<u64>,
        gpg: &Gpg,
        key: &str,
    ) {
        let dists = self.dists(suite);
        let mut sums = Vec::new();
        for arch in &self.arches {
            let dir = format!("main/binary-{arch}");
            std::fs::create_dir_all(dists.join(&dir)).unwrap();
            let text = self.packages_text(suite, arch);
            let xz = pipe_bytes("xz", &["-9", "-c"], text.as_bytes());
            for (name, bytes) in [("Packages", text.into_bytes()), ("Packages.xz", xz)] {
                let rel = format!("{dir}/{name}");
                std::fs::write(dists.join(&rel), &bytes).unwrap();
                sums.push((rel, bytes.len(), sha256_hex(&bytes), md5_hex(&bytes)));
            }
        }
        if let Some(stanzas) = self.sources.get(suite) {
            let dir = "main/source";
            std::fs::create_dir_all(dists.join(dir)).unwrap();
            let text = stanzas.join("\n");
            let xz = pipe_bytes("xz", &["-9", "-c"], text.as_bytes());
            for (name, bytes) in [("Sources", text.into_bytes()), ("Sources.xz", xz)] {
                let rel = format!("{dir}/{name}");
                std::fs::write(dists.join(&rel), &bytes).unwrap();
                sums.push((rel, bytes.len(), sha256_hex(&bytes), md5_hex(&bytes)));
            }
        }
        let mut r = format!(
            "Origin: Netshoot Test\nLabel: Netshoot Test\nSuite: {suite}\nCodename: {suite}\nDate: {}\n",
            rfc2822(date)
        );
        if let Some(v) = valid_until {
            r.push_str(&format!("Valid-Until: {}\n", rfc2822(v)));
        }
        r.push_str(&format!(
            "Architectures: {}\nComponents: main\nDescription: netshoot-build test archive\nMD5Sum:\n",
            self.arches.join(" ")
        ));
        for (p, len, _, md5) in &sums {
            r.push_str(&format!(" {md5} {len:>8} {p}\n"));
        }
        r.push_str("SHA256:\n");
        for (p, len, sha, _) in &sums {
            r.push_str(&format!(" {sha} {len:>8} {p}\n"));
        }
        std::fs::write(dists.join("Release"), &r).unwrap();
        std::fs::write(dists.join("InRelease"), gpg.clearsign(key, r.as_bytes())).unwrap();
    }

    /// A file of the repository, by its path below the base.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.base().join(rel)
    }

    /// The InRelease bytes of `suite`.
    pub fn inrelease(&self, suite: &str) -> Vec<u8> {
        std::fs::read(self.dists(suite).join("InRelease")).unwrap()
    }
}

/// Replaces the file at `path` for the life of the guard, then puts the
/// original bytes (or absence) back.
pub struct Swap {
    path: PathBuf,
    original: Option<Vec<u8>>,
}

impl Swap {
    pub fn write(path: &Path, data: &[u8]) -> Swap {
        let original = std::fs::read(path).ok();
        std::fs::write(path, data).unwrap();
        Swap {
            path: path.to_path_buf(),
            original,
        }
    }

    pub fn remove(path: &Path) -> Swap {
        let original = std::fs::read(path).ok();
        let _ = std::fs::remove_file(path);
        Swap {
            path: path.to_path_buf(),
            original,
        }
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        match &self.original {
            Some(b) => std::fs::write(&self.path, b).unwrap(),
            None => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The server

/// A loopback HTTP/1.1 server for a folder, GET only, one request per
/// connection; every request path is logged. It stops when dropped.
pub struct DirServer {
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DirServer {
    pub fn start(root: &Path) -> DirServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Arc<Mutex<Vec<String>>> = Default::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s, root) = (log.clone(), stop.clone(), root.to_path_buf());
        let thread = std::thread::spawn(move || {
            // Bounded: ends when the server is dropped; each connection is
            // served on its own short-lived thread with timeouts.
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (l, root) = (l.clone(), root.clone());
                        std::thread::spawn(move || serve(conn, &root, &l));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        DirServer {
            port,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/debian`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/debian", self.port)
    }

    /// The request paths so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

fn serve(mut conn: std::net::TcpStream, root: &Path, log: &Mutex<Vec<String>>) {
    conn.set_nonblocking(false).ok();
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    conn.set_write_timeout(Some(Duration::from_secs(30))).ok();
    let Ok(clone) = conn.try_clone() else { return };
    let mut reader = BufReader::new(clone);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    for _ in 0..200 {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    let clean = path.split(['?', '#']).next().unwrap_or("/");
    let safe = !clean.split('/').any(|c| c == "..");
    let body = if safe {
        let p = root.join(clean.trim_start_matches('/'));
        if p.is_file() {
            std::fs::read(p).ok()
        } else {
            None
        }
    } else {
        None
    };
    let resp = match body {
        Some(b) => {
            let mut v = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            )
            .into_bytes();
            if method != "HEAD" {
                v.extend_from_slice(&b);
            }
            v
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = conn.write_all(&resp);
    let _ = conn.flush();
    // Drain what the client may still send so the close is clean.
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 512];
    let _ = reader.get_mut().read(&mut sink);
}

impl Drop for DirServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Reading results

/// One package of a lockfile platform.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockedPkg {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub source: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

/// The packages of each platform (`linux/amd64` ...) of a lockfile, in
/// file order.
pub fn lock_packages(lock: &serde_json::Value) -> BTreeMap<String, Vec<LockedPkg>> {
    let mut out = BTreeMap::new();
    let apt = lock["apt"]
        .as_object()
        .unwrap_or_else(|| panic!("lock has no \"apt\" object: {lock}"));
    for (plat, v) in apt {
        let pkgs = v["packages"]
            .as_array()
            .unwrap_or_else(|| panic!("lock apt.{plat} has no packages"));
        let s = |p: &serde_json::Value, k: &str| {
            p[k].as_str()
                .unwrap_or_else(|| panic!("lock apt.{plat}: package without string {k}: {p}"))
                .to_string()
        };
        out.insert(
            plat.clone(),
            pkgs.iter()
                .map(|p| LockedPkg {
                    name: s(p, "name"),
                    version: s(p, "version"),
                    architecture: s(p, "architecture"),
                    source: s(p, "source"),
                    filename: s(p, "filename"),
                    size: p["size"].as_u64().expect("size"),
                    sha256: s(p, "sha256"),
                })
                .collect(),
        );
    }
    out
}

/// Copies platform `arch` of `layout:tag` into a single-image layout with
/// skopeo, unpacks it with umoci (as root: owners, modes and xattrs are
/// restored) and returns the rootfs folder.
pub fn unpack(layout: &Path, tag: &str, arch: &str, work: &Path) -> PathBuf {
    crate::common::unpack_platform(layout, tag, arch, work)
}

/// Extracts every layer of the single-image layout made by [`unpack`]
/// with GNU tar, xattrs included, into a new folder; for the checks that
/// must not depend on what umoci restores.
pub fn gnu_tar_extract(work: &Path, arch: &str) -> PathBuf {
    let single = work.join(format!("single-{arch}"));
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(single.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        single
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let man: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(idx["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let dest = work.join(format!("tar-{arch}"));
    std::fs::create_dir_all(&dest).unwrap();
    for l in man["layers"].as_array().unwrap() {
        ok(Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
            .arg(blob(l["digest"].as_str().unwrap()))
            .arg("-C")
            .arg(&dest));
    }
    dest
}

/// deb822 paragraphs as (field, value) lists; continuation lines are
/// joined to their field with `\n`.
pub fn paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with(' ') || line.starts_with('\t') {
            let last = cur.last_mut().expect("continuation line before any field");
            last.1.push('\n');
            last.1.push_str(line);
        } else {
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("not a field: {line:?}"));
            cur.push((k.to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The value of field `k` in paragraph `p`.
pub fn field<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter()
        .find(|(f, _)| f.eq_ignore_ascii_case(k))
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------
// A throwaway apt

/// The real apt with a configuration of its own under `dir`: an empty
/// dpkg status, the given sources list, one architecture, none of the
/// host's apt configuration.
pub struct AptSandbox {
    pub dir: PathBuf,
    conf: PathBuf,
}

impl AptSandbox {
    pub fn new(dir: &Path, sources: &str, arch: &str) -> AptSandbox {
        for d in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/sources.list.d",
            "etc/trusted.gpg.d",
            "lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("status"), "").unwrap();
        std::fs::write(dir.join("etc/sources.list"), sources).unwrap();
        // APT_CONFIG is read before /etc/apt/apt.conf.d, so pointing the
        // parts folder elsewhere keeps the host's configuration out.
        let conf = format!(
            r#"Dir::Etc "{t}/etc";
Dir::Etc::parts "{t}/etc/apt.conf.d";
Dir::Etc::main "{t}/etc/apt.conf";
Dir::Etc::sourcelist "{t}/etc/sources.list";
Dir::Etc::sourceparts "{t}/etc/sources.list.d";
Dir::Etc::preferencesparts "{t}/etc/preferences.d";
Dir::Etc::trusted "{t}/etc/trusted.gpg";
Dir::Etc::trustedparts "{t}/etc/trusted.gpg.d";
Dir::State "{t}";
Dir::State::lists "{t}/lists";
Dir::State::status "{t}/status";
Dir::Cache "{t}/cache";
Dir::Log "{t}/log";
APT::Architecture "{arch}";
APT::Architectures {{ "{arch}"; }};
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Debug::NoLocking "true";
"#,
            t = dir.display()
        );
        let path = dir.join("apt.conf");
        std::fs::write(&path, conf).unwrap();
        AptSandbox {
            dir: dir.to_path_buf(),
            conf: path,
        }
    }

    /// Runs `prog` (apt-get, apt-cache) with this configuration; it must
    /// succeed; returns stdout.
    pub fn run(&self, prog: &str, args: &[&str]) -> String {
        let out = Command::new(prog)
            .env("APT_CONFIG", &self.conf)
            .env("LC_ALL", "C")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{prog}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{prog} {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `apt-get install --simulate` of `packages`: `name version arch` of
    /// every `Inst` line.
    pub fn simulate(&self, packages: &[&str]) -> BTreeSet<String> {
        let mut args = vec!["install", "--simulate", "--no-install-recommends", "-q"];
        args.extend_from_slice(packages);
        let sim = self.run("apt-get", &args);
        // `Inst NAME (VERSION SUITE [ARCH])`
        sim.lines()
            .filter_map(|l| l.strip_prefix("Inst "))
            .filter_map(|rest| {
                let (name, rest) = rest.split_once(' ')?;
                // `Inst libc6 (2.41-12 Debian:13/stable [amd64]) []`: the
                // architecture is the last `[...]` inside the parentheses.
                let inner = rest.strip_prefix('(')?.split(')').next()?;
                let version = inner.split_whitespace().next()?;
                let arch = inner.rsplit_once('[')?.1.split(']').next()?;
                Some(format!(
                    "{} {version} {arch}",
                    name.split(':').next().unwrap_or(name)
                ))
            })
            .collect()
    }
}
