//! `debian::release` against signatures made by the real GnuPG with
//! throwaway keys in a temporary GNUPGHOME.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use debian::release::{format_rfc2822, verify_detached, verify_inrelease, ReleaseError};
use sha2::{Digest, Sha256};

struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Gpg {
        Gpg {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
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

    /// Generates a key and returns its primary fingerprint.
    fn gen(&self, uid: &str, algo: &str, usage: &str, expire: &str, faked: Option<&str>) -> String {
        let mut args = vec![];
        if let Some(t) = faked {
            args.extend(["--faked-system-time", t]);
        }
        args.extend(["--quick-gen-key", uid, algo, usage, expire]);
        self.run(&args);
        self.fpr(uid)
    }

    fn fpr(&self, uid: &str) -> String {
        let out = self.run(&["--list-keys", "--with-colons", uid]);
        let text = String::from_utf8(out).unwrap();
        text.lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap()
            .to_string()
    }

    fn subkey_fprs(&self, uid: &str) -> Vec<String> {
        let text = String::from_utf8(self.run(&["--list-keys", "--with-colons", uid])).unwrap();
        text.lines()
            .filter(|l| l.starts_with("fpr:"))
            .skip(1)
            .filter_map(|l| l.split(':').nth(9).map(str::to_string))
            .collect()
    }

    fn export(&self, fpr: &str, armor: bool) -> Vec<u8> {
        if armor {
            self.run(&["--armor", "--export", fpr])
        } else {
            self.run(&["--export", fpr])
        }
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn clearsign(&self, signers: &[&str], file: &Path, faked: Option<&str>) -> Vec<u8> {
        let mut args: Vec<&str> = vec![];
        if let Some(t) = faked {
            args.extend(["--faked-system-time", t]);
        }
        for s in signers {
            args.extend(["-u", s]);
        }
        let f = file.to_str().unwrap();
        args.extend(["--digest-algo", "SHA512", "--clearsign", "-o", "-", f]);
        self.run(&args)
    }

    fn detach(&self, signer: &str, file: &Path, armor: bool) -> Vec<u8> {
        let f = file.to_str().unwrap();
        let mut args = vec!["-u", signer, "--digest-algo", "SHA256", "--detach-sign"];
        if armor {
            args.push("--armor");
        }
        args.extend(["-o", "-", f]);
        self.run(&args)
    }
}

fn release_text(date: SystemTime, valid_until: Option<SystemTime>) -> String {
    let mut s = String::new();
    s.push_str("Origin: Test\nLabel: Test\nSuite: stable\nCodename: testy\n");
    s.push_str(&format!("Date: {}\n", format_rfc2822(date)));
    if let Some(v) = valid_until {
        s.push_str(&format!("Valid-Until: {}\n", format_rfc2822(v)));
    }
    s.push_str("Acquire-By-Hash: yes\nArchitectures: amd64 arm64\nComponents: main contrib\n");
    s.push_str("Description: test archive\n");
    s.push_str("SHA256:\n");
    s.push_str(" 0000000000000000000000000000000000000000000000000000000000000001 1234 main/binary-amd64/Packages.xz\n");
    s.push_str(" 00000000000000000000000000000000000000000000000000000000000000ff 99 main/binary-arm64/Packages\n");
    s.push_str(" - marks a line we skip\n");
    s
}

fn now() -> SystemTime {
    SystemTime::now()
}

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn inrelease_signed_by_primary_key_verifies() {
    let g = Gpg::new();
    let fpr = g.gen(
        "Archive <archive@example.invalid>",
        "default",
        "default",
        "never",
        None,
    );
    let keyring = g.export(&fpr, false);
    let r = g.write(
        "Release",
        release_text(now(), Some(now() + 7 * DAY)).as_bytes(),
    );
    let inrelease = g.clearsign(&[&fpr], &r, None);

    let rel = verify_inrelease(&inrelease, &keyring, now()).unwrap();
    assert_eq!(rel.signer, fpr);
    assert_eq!(rel.suite.as_deref(), Some("stable"));
    assert_eq!(rel.codename.as_deref(), Some("testy"));
    assert_eq!(rel.architectures, ["amd64", "arm64"]);
    assert_eq!(rel.components, ["main", "contrib"]);
    assert!(rel.acquire_by_hash);
    assert!(rel.date.is_some() && rel.valid_until.is_some());
    assert_eq!(rel.digest, hex::encode(Sha256::digest(&inrelease)));
    assert_eq!(
        rel.sha256("main/binary-amd64/Packages.xz"),
        Some((
            "0000000000000000000000000000000000000000000000000000000000000001",
            1234
        ))
    );
    assert_eq!(
        rel.sha256("main/binary-arm64/Packages").map(|x| x.1),
        Some(99)
    );
    assert_eq!(rel.sha256("main/binary-i386/Packages"), None);
    assert_eq!(rel.sha256_entries().count(), 2);
    assert_eq!(rel.paragraph.get("Description"), Some("test archive"));
}

#[test]
fn signing_subkey_and_armored_multi_key_keyring() {
    let g = Gpg::new();
    let a = g.gen(
        "Other <other@example.invalid>",
        "default",
        "default",
        "never",
        None,
    );
    let p = g.gen(
        "Sub <sub@example.invalid>",
        "ed25519",
        "cert",
        "never",
        None,
    );
    g.run(&["--quick-add-key", &p, "ed25519", "sign", "never"]);
    let sub = g.subkey_fprs("sub@example.invalid");
    assert_eq!(sub.len(), 1);
    // Two armored blocks one after the other, as `cat a.asc b.asc` makes.
    let mut keyring = g.export(&a, true);
    keyring.extend(g.export(&p, true));
    let r = g.write("Release", release_text(now(), None).as_bytes());
    let inrelease = g.clearsign(&[&p], &r, None);
    let rel = verify_inrelease(&inrelease, &keyring, now()).unwrap();
    assert_eq!(rel.signer, sub[0], "the signing subkey made the signature");

    // Binary keyring of the same two keys.
    let mut bin = g.export(&a, false);
    bin.extend(g.export(&p, false));
    assert!(verify_inrelease(&inrelease, &bin, now()).is_ok());
}

#[test]
fn tampered_body_is_refused() {
    let g = Gpg::new();
    let fpr = g.gen(
        "Archive <archive@example.invalid>",
        "default",
        "default",
        "never",
        None,
    );
    let keyring = g.export(&fpr, false);
    let r = g.write("Release", release_text(now(), None).as_bytes());
    let inrelease = String::from_utf8(g.clearsign(&[&fpr], &r, None)).unwrap();
    let tampered = inrelease.replace(" 1234 main/binary-amd64", " 1235 main/binary-amd64");
    assert_ne!(tampered, inrelease);
    let err = verify_inrelease(tampered.as_bytes(), &keyring, now()).unwrap_err();
    assert!(matches!(err, ReleaseError::BadSignature { .. }), "{err}");
    assert!(err.to_string().contains("bad signature"), "{err}");
    // Content appended after the signature is not accepted either.
    let mut trailing = inrelease.clone();
    trailing.push_str("Suite: evil\n");
    assert!(verify_inrelease(trailing.as_bytes(), &keyring, now()).is_err());
}

#[test]
fn signature_by_another_key_is_refused() {
    let g = Gpg::new();
    let trusted = g.gen(
        "Archive <archive@example.invalid>",
        "default",
        "default",
        "never",
        None,
    );
    let other = g.gen(
        "Mallory <mallory@example.invalid>",
        "default",
        "default",
        "never",
        None,
    );
    let keyring = g.export(&trusted, false);
    let r = g.write("Release", release_text(now(), None).as_bytes());
    let bad = g.clearsign(&[&other], &r, None);
    let err = verify_inrelease(&bad, &keyring, now()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("not in the keyring"), "{msg}");
    assert!(msg.contains("InRelease"), "{msg}");

    // With both signatures, the trusted one is enough.
    let both = g.clearsign(&[&other, &trusted], &r, None);
    let rel = verify_inrelease(&both, &keyring, now()).unwrap();
    assert_eq!(rel.signer, trusted);
}

#[test]
fn expired_valid_until_and_future_date_are_refused() {
    let g = Gpg::new();
    let fpr = g.gen(
        "Archive <archive@example.invalid>",
        "default",
        "default",
        "never",
        None,
    );
    let keyring = g.export(&fpr, false);

    let r = g.write(
        "Release",
        release_text(now() - 10 * DAY, Some(now() - 3 * DAY)).as_bytes(),
    );
    let inrelease = g.clearsign(&[&fpr], &r, None);
    let err = verify_inrelease(&inrelease, &keyring, now()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ReleaseError::Expired { .. }), "{msg}");
    assert!(msg.contains("expired"), "{msg}");
    assert!(
        msg.contains(&format_rfc2822(now() - 3 * DAY)[..16]),
        "{msg}"
    );
    // The same file was fine while it was valid.
    assert!(verify_inrelease(&inrelease, &keyring, now() - 4 * DAY).is_ok());

    let r = g.write("Release", release_text(now() + 2 * DAY, None).as_bytes());
    let inrelease = g.clearsign(&[&fpr], &r, None);
    let err = verify_inrelease(&inrelease, &keyring, now()).unwrap_err();
    assert!(matches!(err, ReleaseError::FromFuture { .. }), "{err}");
    assert!(err.to_string().contains("future"));
}

#[test]
fn detached_signature_armored_and_binary() {
    let g = Gpg::new();
    let fpr = g.gen(
        "Archive <archive@example.invalid>",
        "default",
        "default",
        "never",
        None,
    );
    let other = g.gen(
        "Mallory <mallory@example.invalid>",
        "default",
        "default",
        "never",
        None,
    );
    let keyring = g.export(&fpr, true);
    let text = release_text(now(), Some(now() + DAY));
    let r = g.write("Release", text.as_bytes());
    for armor in [true, false] {
        let sig = g.detach(&fpr, &r, armor);
        let rel = verify_detached(text.as_bytes(), &sig, &keyring, now()).unwrap();
        assert_eq!(rel.signer, fpr);
        assert_eq!(rel.digest, hex::encode(Sha256::digest(text.as_bytes())));
        assert_eq!(rel.codename.as_deref(), Some("testy"));

        let tampered = text.replace("Suite: stable", "Suite: stab1e");
        let err = verify_detached(tampered.as_bytes(), &sig, &keyring, now()).unwrap_err();
        assert!(matches!(err, ReleaseError::BadSignature { .. }), "{err}");

        let by_other = g.detach(&other, &r, armor);
        assert!(verify_detached(text.as_bytes(), &by_other, &keyring, now()).is_err());
    }
    let err = verify_detached(text.as_bytes(), b"garbage", &keyring, now()).unwrap_err();
    assert!(err.to_string().contains("Release.gpg"), "{err}");
}

#[test]
fn key_expiry_is_judged_at_signature_time() {
    let g = Gpg::new();
    // Created 2020-01-01, expiring 2021-01-01; signs on 2020-06-01.
    let fpr = g.gen(
        "Old <old@example.invalid>",
        "ed25519",
        "sign",
        "2021-01-01",
        Some("20200101T000000!"),
    );
    let r = g.write("Release", b"Origin: Old\nSuite: old\n");
    let inrelease = g.clearsign(&[&fpr], &r, Some("20200601T000000!"));
    // The key has expired by now, but it was valid when it signed.
    let keyring = g.export(&fpr, false);
    let rel = verify_inrelease(&inrelease, &keyring, now()).unwrap();
    assert_eq!(rel.suite.as_deref(), Some("old"));

    // A newer self-signature (2020-02-01) shortens the life to one day:
    // the 2020-06-01 signature was made by an expired key.
    g.run(&[
        "--faked-system-time",
        "20200201T000000!",
        "--quick-set-expire",
        &fpr,
        "1d",
    ]);
    let keyring = g.export(&fpr, false);
    let err = verify_inrelease(&inrelease, &keyring, now()).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn revoked_key_is_refused() {
    let g = Gpg::new();
    let fpr = g.gen(
        "Archive <archive@example.invalid>",
        "default",
        "default",
        "never",
        None,
    );
    let r = g.write("Release", release_text(now(), None).as_bytes());
    let inrelease = g.clearsign(&[&fpr], &r, None);
    // gpg leaves a ready revocation certificate, defused with a leading ':'.
    let rev = std::fs::read_to_string(g.path(&format!("openpgp-revocs.d/{fpr}.rev"))).unwrap();
    let rev = rev.replace(":-----BEGIN", "-----BEGIN");
    let rev_path = g.write("rev.asc", rev.as_bytes());
    g.run(&["--import", rev_path.to_str().unwrap()]);
    let keyring = g.export(&fpr, false);
    let err = verify_inrelease(&inrelease, &keyring, now()).unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
}

#[test]
fn malformed_inputs_give_errors() {
    let g = Gpg::new();
    let fpr = g.gen(
        "Archive <archive@example.invalid>",
        "default",
        "default",
        "never",
        None,
    );
    let keyring = g.export(&fpr, false);
    let err = verify_inrelease(b"Origin: x\n", &keyring, now()).unwrap_err();
    assert!(matches!(err, ReleaseError::Format { .. }), "{err}");
    let err = verify_inrelease(b"", b"not a key", now()).unwrap_err();
    assert!(matches!(err, ReleaseError::Keyring(_)), "{err}");
    let r = g.write("Release", b"Origin: x\nDate: someday\n");
    let inrelease = g.clearsign(&[&fpr], &r, None);
    let err = verify_inrelease(&inrelease, &keyring, now()).unwrap_err();
    assert!(err.to_string().contains("Date"), "{err}");
}
