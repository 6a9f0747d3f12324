//! `load_index` against repositories made here and signed with a
//! throwaway key by the real `gpg`: the happy paths (InRelease, detached
//! Release.gpg, .xz/.gz/plain fallbacks) and every refusal.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use debian::release::format_rfc2822;
use debian::repository::{load_index, Fetch, FetchError, HttpFetch, RepositoryError};
use sha2::{Digest, Sha256};

const BASE: &str = "http://registry.example.com/debian";
const SHA: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// A GnuPG home with one fresh signing key; removed on drop.
struct Signer {
    home: tempfile::TempDir,
}

impl Signer {
    fn new(uid: &str) -> Signer {
        let home = tempfile::tempdir().expect("tempdir");
        let s = Signer { home };
        s.gpg(&["--quick-gen-key", uid, "ed25519", "sign", "never"]);
        s
    }

    fn gpg(&self, args: &[&str]) -> Vec<u8> {
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

    fn keyring(&self) -> Vec<u8> {
        self.gpg(&["--export"])
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.home.path().join(name);
        std::fs::write(&p, data).expect("write");
        p
    }

    fn clearsign(&self, text: &str) -> Vec<u8> {
        let p = self.file("Release.in", text.as_bytes());
        self.gpg(&[
            "--clearsign",
            "--digest-algo",
            "SHA256",
            "-o",
            "-",
            p.to_str().unwrap(),
        ])
    }

    fn detach_sign(&self, text: &str) -> Vec<u8> {
        let p = self.file("Release.in2", text.as_bytes());
        self.gpg(&[
            "--detach-sign",
            "--armor",
            "--digest-algo",
            "SHA256",
            "-o",
            "-",
            p.to_str().unwrap(),
        ])
    }
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn packages_text() -> String {
    format!(
        "Package: curl\nVersion: 8.14.1-2\nArchitecture: amd64\nDepends: libc6\nFilename: pool/main/c/curl/curl.deb\nSize: 10\nSHA256: {SHA}\n\n\
         Package: libc6\nVersion: 2.41-12\nArchitecture: amd64\nMulti-Arch: same\nFilename: pool/main/g/glibc/libc6.deb\nSize: 20\nSHA256: {SHA}\n"
    )
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A Release listing `files` (path relative to dists/SUITE, bytes).
fn release_text(files: &[(&str, &[u8])]) -> String {
    let mut s = format!(
        "Origin: Test\nSuite: stable\nCodename: trixie\nDate: {}\nArchitectures: amd64\nComponents: main\nSHA256:\n",
        format_rfc2822(SystemTime::now())
    );
    for (path, data) in files {
        s.push_str(&format!(" {} {} {path}\n", sha256(data), data.len()));
    }
    s
}

/// An in-memory server that records what was asked.
#[derive(Default)]
struct MapFetch {
    files: BTreeMap<String, Vec<u8>>,
    failing: Option<String>,
    asked: RefCell<Vec<String>>,
}

impl MapFetch {
    fn put(&mut self, rel: &str, data: Vec<u8>) {
        self.files
            .insert(format!("{BASE}/dists/trixie/{rel}"), data);
    }
}

impl Fetch for MapFetch {
    fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        self.asked.borrow_mut().push(url.to_string());
        if self.failing.as_deref() == Some(url) {
            return Err(FetchError::Other {
                url: url.into(),
                reason: "connection reset".into(),
            });
        }
        self.files
            .get(url)
            .cloned()
            .ok_or(FetchError::NotFound { url: url.into() })
    }
}

/// A standard repository: InRelease listing .xz, .gz and plain.
fn standard_repo(signer: &Signer) -> (MapFetch, Vec<u8>) {
    let text = packages_text();
    let (x, g) = (xz(text.as_bytes()), gz(text.as_bytes()));
    let release = release_text(&[
        ("main/binary-amd64/Packages", text.as_bytes()),
        ("main/binary-amd64/Packages.gz", &g),
        ("main/binary-amd64/Packages.xz", &x),
    ]);
    let mut f = MapFetch::default();
    f.put("InRelease", signer.clearsign(&release));
    f.put("main/binary-amd64/Packages.xz", x);
    f.put("main/binary-amd64/Packages.gz", g);
    f.put("main/binary-amd64/Packages", text.into_bytes());
    (f, signer.keyring())
}

fn load(f: &MapFetch, keyring: &[u8]) -> Result<debian::repository::Index, RepositoryError> {
    load_index(
        f,
        BASE,
        "trixie",
        "main",
        "amd64",
        keyring,
        SystemTime::now(),
    )
}

#[test]
fn loads_verified_xz_index_from_inrelease() {
    let signer = Signer::new("Repo Test <repo@example.com>");
    let (f, keyring) = standard_repo(&signer);
    let idx = load(&f, &keyring).unwrap();
    assert_eq!(idx.packages.len(), 2);
    assert_eq!(idx.packages[1].name, "libc6");
    assert_eq!(idx.packages_path, "main/binary-amd64/Packages.xz");
    assert_eq!(
        idx.packages_url,
        format!("{BASE}/dists/trixie/main/binary-amd64/Packages.xz")
    );
    let xz_bytes = &f.files[&idx.packages_url];
    assert_eq!(idx.packages_sha256, sha256(xz_bytes));
    assert_eq!(idx.packages_size, xz_bytes.len() as u64);
    assert_eq!(
        idx.release_digest,
        sha256(&f.files[&format!("{BASE}/dists/trixie/InRelease")])
    );
    assert_eq!(idx.release.codename.as_deref(), Some("trixie"));
    // Nothing beyond what was needed was downloaded.
    assert_eq!(f.asked.borrow().len(), 2);
}

#[test]
fn falls_back_to_gz_then_plain() {
    let signer = Signer::new("Repo Test <repo@example.com>");
    let (mut f, keyring) = standard_repo(&signer);
    f.files.remove(&format!(
        "{BASE}/dists/trixie/main/binary-amd64/Packages.xz"
    ));
    let idx = load(&f, &keyring).unwrap();
    assert_eq!(idx.packages_path, "main/binary-amd64/Packages.gz");
    f.files.remove(&format!(
        "{BASE}/dists/trixie/main/binary-amd64/Packages.gz"
    ));
    let idx = load(&f, &keyring).unwrap();
    assert_eq!(idx.packages_path, "main/binary-amd64/Packages");
    assert_eq!(idx.packages.len(), 2);
    f.files
        .remove(&format!("{BASE}/dists/trixie/main/binary-amd64/Packages"));
    let e = load(&f, &keyring).unwrap_err();
    assert!(matches!(e, RepositoryError::NoIndex { .. }), "{e}");
}

#[test]
fn falls_back_to_release_and_detached_signature() {
    let signer = Signer::new("Repo Test <repo@example.com>");
    let text = packages_text();
    let g = gz(text.as_bytes());
    // Only .gz listed: the .xz must not even be asked for.
    let release = release_text(&[("main/binary-amd64/Packages.gz", &g)]);
    let mut f = MapFetch::default();
    f.put("Release", release.clone().into_bytes());
    f.put("Release.gpg", signer.detach_sign(&release));
    f.put("main/binary-amd64/Packages.gz", g);
    let idx = load(&f, &signer.keyring()).unwrap();
    assert_eq!(idx.packages_path, "main/binary-amd64/Packages.gz");
    assert_eq!(idx.release_digest, sha256(release.as_bytes()));
    assert!(
        !f.asked.borrow().iter().any(|u| u.ends_with(".xz")),
        "{:?}",
        f.asked.borrow()
    );
}

#[test]
fn digest_and_size_mismatches_name_the_url_and_both_values() {
    let signer = Signer::new("Repo Test <repo@example.com>");
    let (mut f, keyring) = standard_repo(&signer);
    let url = format!("{BASE}/dists/trixie/main/binary-amd64/Packages.xz");
    let good = f.files[&url].clone();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    f.files.insert(url.clone(), bad.clone());
    let e = load(&f, &keyring).unwrap_err().to_string();
    assert!(
        e.contains(&url) && e.contains(&sha256(&good)) && e.contains(&sha256(&bad)),
        "{e}"
    );
    bad.push(0);
    f.files.insert(url.clone(), bad.clone());
    let e = load(&f, &keyring).unwrap_err().to_string();
    assert!(
        e.contains(&url)
            && e.contains("size")
            && e.contains(&good.len().to_string())
            && e.contains(&bad.len().to_string()),
        "{e}"
    );
}

#[test]
fn refuses_wrong_key_unlisted_index_and_network_errors() {
    let signer = Signer::new("Repo Test <repo@example.com>");
    let other = Signer::new("Someone Else <else@example.com>");
    let (mut f, keyring) = standard_repo(&signer);
    let e = load(&f, &other.keyring()).unwrap_err().to_string();
    assert!(e.contains(&format!("{BASE}/dists/trixie/InRelease")), "{e}");

    let e = load_index(
        &f,
        BASE,
        "trixie",
        "main",
        "arm64",
        &keyring,
        SystemTime::now(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("main/binary-arm64/Packages") && e.contains("not listed"),
        "{e}"
    );

    // A failure other than "not found" must not trigger a fallback.
    f.failing = Some(format!("{BASE}/dists/trixie/main/binary-amd64/Packages.xz"));
    let e = load(&f, &keyring).unwrap_err();
    assert!(e.to_string().contains("connection reset"), "{e}");
    f.failing = Some(format!("{BASE}/dists/trixie/InRelease"));
    let e = load(&f, &keyring).unwrap_err();
    assert!(e.to_string().contains("connection reset"), "{e}");
}

#[test]
fn corrupt_compressed_data_listed_in_release_is_reported() {
    let signer = Signer::new("Repo Test <repo@example.com>");
    let junk = b"this is not xz".to_vec();
    let release = release_text(&[("main/binary-amd64/Packages.xz", &junk)]);
    let mut f = MapFetch::default();
    f.put("InRelease", signer.clearsign(&release));
    f.put("main/binary-amd64/Packages.xz", junk);
    let e = load(&f, &signer.keyring()).unwrap_err().to_string();
    assert!(e.contains("Packages.xz") && e.contains("decompress"), "{e}");
}

#[test]
fn http_fetch_serves_file_urls() {
    let signer = Signer::new("Repo Test <repo@example.com>");
    let (f, keyring) = standard_repo(&signer);
    let dir = tempfile::tempdir().unwrap();
    for (url, data) in &f.files {
        let rel = url.strip_prefix(BASE).unwrap().trim_start_matches('/');
        let path: &Path = &dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    let http = HttpFetch::new(Duration::from_secs(10)).unwrap();
    let base = format!("file://{}", dir.path().display());
    let idx = load_index(
        &http,
        &base,
        "trixie",
        "main",
        "amd64",
        &keyring,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(idx.packages.len(), 2);
    let missing = format!("{base}/nope");
    assert_eq!(
        http.get(&missing),
        Err(FetchError::NotFound {
            url: missing.clone()
        })
    );
}
