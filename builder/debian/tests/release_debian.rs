//! `debian::release` against the real Debian trixie archive, reached
//! through the mirror the host's apt uses (read from its sources at run
//! time: no mirror name is written in this repository).
//!
//! Needs the network; set `NETSHOOT_OFFLINE=1` to skip.

use std::io::Read;
use std::process::Command;
use std::time::SystemTime;

use debian::control::parse_paragraphs;
use debian::deb::{read_deb, EntryKind};
use debian::release::{verify_detached, verify_inrelease, ReleaseError};
use sha2::{Digest, Sha256};

const HOST_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

fn offline() -> bool {
    if std::env::var("NETSHOOT_OFFLINE").as_deref() == Ok("1") {
        eprintln!(
            "\n!!!!!!!! NETSHOOT_OFFLINE=1: SKIPPING the real Debian archive test (release_debian) !!!!!!!!\n"
        );
        return true;
    }
    false
}

/// The base URL of the host's Debian mirror: the `URIs` of the first
/// deb822 source whose suites are not `-security` ones, or the first
/// one-line `deb` entry of `sources.list`.
fn mirror_base() -> String {
    let mut files: Vec<_> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sources"))
    {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for p in parse_paragraphs(&text).unwrap_or_default() {
            let (Some(uris), Some(suites)) = (p.get("URIs"), p.get("Suites")) else {
                continue;
            };
            if p.get("Types")
                .is_some_and(|t| !t.split_whitespace().any(|t| t == "deb"))
            {
                continue;
            }
            if suites.split_whitespace().any(|s| !s.ends_with("-security")) {
                if let Some(u) = uris.split_whitespace().next() {
                    return u.trim_end_matches('/').to_string();
                }
            }
        }
    }
    let list = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    for line in list.lines() {
        let w: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.starts_with('['))
            .collect();
        if w.len() >= 3 && w[0] == "deb" && !w[2].ends_with("-security") {
            return w[1].trim_end_matches('/').to_string();
        }
    }
    panic!("no Debian mirror found in the host's apt sources");
}

fn try_fetch(url: &str) -> Option<Vec<u8>> {
    let out = Command::new("curl")
        .args(["-fsSL", "--retry", "2", "--max-time", "300", url])
        .output()
        .expect("curl must be installed");
    out.status.success().then_some(out.stdout)
}

fn fetch(url: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-fsSL", "--retry", "2", "--max-time", "300", url])
        .output()
        .expect("curl must be installed");
    assert!(
        out.status.success(),
        "fetching {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// gpgv's verdict on a detached signature, for comparison.
fn gpgv(keyring: &[u8], sig: &[u8], data: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("keyring.gpg");
    let s = dir.path().join("Release.gpg");
    let d = dir.path().join("Release");
    std::fs::write(&k, keyring).unwrap();
    std::fs::write(&s, sig).unwrap();
    std::fs::write(&d, data).unwrap();
    Command::new("gpgv")
        .arg("--keyring")
        .arg(&k)
        .arg(&s)
        .arg(&d)
        .output()
        .expect("gpgv must be installed")
        .status
        .success()
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn real_trixie_inrelease_verifies() {
    if offline() {
        return;
    }
    let base = mirror_base();
    let dists = format!("{base}/dists/trixie");
    let inrelease = fetch(&format!("{dists}/InRelease"));
    let host_keyring = std::fs::read(HOST_KEYRING)
        .unwrap_or_else(|e| panic!("{HOST_KEYRING}: {e} (package debian-archive-keyring)"));
    let now = SystemTime::now();

    let rel = verify_inrelease(&inrelease, &host_keyring, now)
        .unwrap_or_else(|e| panic!("trixie InRelease with the host keyring: {e}"));
    assert_eq!(rel.codename.as_deref(), Some("trixie"));
    assert_eq!(rel.digest, sha256(&inrelease));
    assert!(rel.architectures.iter().any(|a| a == "arm64"));
    assert!(rel.components.iter().any(|c| c == "main"));
    assert!(rel.date.is_some());
    eprintln!("trixie InRelease signed by {}", rel.signer);

    // Tampering with one index hash breaks every signature.
    let text = String::from_utf8(inrelease.clone()).unwrap();
    let (h, _) = rel.sha256("main/binary-amd64/Packages.xz").unwrap();
    let flipped: String = {
        let mut c: Vec<char> = h.chars().collect();
        c[0] = if c[0] == '0' { '1' } else { '0' };
        c.into_iter().collect()
    };
    let tampered = text.replacen(h, &flipped, 1);
    let err = verify_inrelease(tampered.as_bytes(), &host_keyring, now).unwrap_err();
    assert!(matches!(err, ReleaseError::BadSignature { .. }), "{err}");

    // The detached form: mirrors and caches have been seen serving a
    // Release.gpg older than Release (gpgv calls it BAD too), so the
    // verdict is compared with gpgv's rather than assumed.
    let release = fetch(&format!("{dists}/Release"));
    let release_gpg = fetch(&format!("{dists}/Release.gpg"));
    let ours = verify_detached(&release, &release_gpg, &host_keyring, now);
    let gpgv_ok = gpgv(&host_keyring, &release_gpg, &release);
    match &ours {
        Ok(det) => {
            assert_eq!(det.paragraph, rel.paragraph);
            assert_eq!(det.digest, sha256(&release));
        }
        Err(e) => eprintln!("trixie Release + Release.gpg refused: {e}"),
    }
    assert_eq!(
        ours.is_ok(),
        gpgv_ok,
        "gpgv and verify_detached disagree on trixie Release.gpg"
    );

    // trixie's own keyring package, fetched through the verified chain:
    // InRelease -> Packages.xz (sha256) -> .deb (sha256) -> keyring file.
    // Try by hash first, as apt does, then the plain name; a mirror in the
    // middle of an update (seen here: a stale binary-all) may serve files
    // that do not match, which must be detected and skipped, never used.
    let mut packages_xz = None;
    let mut tried = Vec::new();
    for index in [
        "main/binary-amd64/Packages.xz",
        "main/binary-all/Packages.xz",
    ] {
        let Some((want, size)) = rel.sha256(index) else {
            continue;
        };
        let mut urls = vec![format!("{dists}/{index}")];
        if let (true, Some((dir, _))) = (rel.acquire_by_hash, index.rsplit_once('/')) {
            urls.insert(0, format!("{dists}/{dir}/by-hash/SHA256/{want}"));
        }
        for url in urls {
            match try_fetch(&url) {
                Some(b) if b.len() as u64 == size && sha256(&b) == want => {
                    packages_xz = Some(b);
                    break;
                }
                Some(b) => tried.push(format!("{url}: sha256 {} (want {want})", sha256(&b))),
                None => tried.push(format!("{url}: not fetched")),
            }
        }
        if packages_xz.is_some() {
            break;
        }
    }
    let packages_xz =
        packages_xz.unwrap_or_else(|| panic!("no Packages.xz matching InRelease: {tried:#?}"));
    let mut packages = String::new();
    liblzma::read::XzDecoder::new(packages_xz.as_slice())
        .read_to_string(&mut packages)
        .unwrap();
    let para = parse_paragraphs(&packages)
        .unwrap()
        .into_iter()
        .find(|p| p.get("Package") == Some("debian-archive-keyring"))
        .expect("debian-archive-keyring in trixie");
    let filename = para.get("Filename").unwrap();
    let deb = fetch(&format!("{base}/{filename}"));
    assert_eq!(sha256(&deb), para.get("SHA256").unwrap(), "{filename}");
    let mut tar = Vec::new();
    let (control, entries) = read_deb(deb.as_slice(), &mut tar).unwrap();
    assert_eq!(control.package(), "debian-archive-keyring");
    let entry = entries
        .iter()
        .find(|e| {
            (e.path == "usr/share/keyrings/debian-archive-keyring.gpg"
                || e.path == "usr/share/keyrings/debian-archive-keyring.pgp")
                && matches!(e.kind, EntryKind::File { .. })
        })
        .expect("the archive keyring file in the package");
    let EntryKind::File { offset, size } = entry.kind else {
        unreachable!()
    };
    let trixie_keyring = &tar[offset as usize..(offset + size) as usize];
    let rel2 = verify_inrelease(&inrelease, trixie_keyring, now)
        .unwrap_or_else(|e| panic!("trixie InRelease with {}: {e}", entry.path));
    assert_eq!(rel2.paragraph, rel.paragraph);
    eprintln!(
        "verified with {} from {filename}: signer {}",
        entry.path, rel2.signer
    );

    // A keyring that lacks the archive's keys does not verify it.
    let unrelated = std::fs::read("/usr/share/keyrings/debian-archive-removed-keys.gpg").ok();
    if let Some(k) = unrelated.filter(|k| !k.is_empty()) {
        assert!(verify_inrelease(&inrelease, &k, now).is_err());
    }
}
