//! Targets for signed repository metadata. A throwaway key made here with
//! rpgp (deterministic RNG, made once per process) signs the seeds and,
//! for the `release` target, every input, so the fuzzer reaches the
//! Release parsing behind a valid signature as well as the OpenPGP
//! parsing in front of it.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use debian::release::{
    format_rfc2822, parse_rfc2822, verify_detached, verify_inrelease, ReleaseError,
};
use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, DetachedSignature, KeyType, SecretKeyParamsBuilder,
    SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::ser::Serialize;
use pgp::types::{Password, Timestamp};
use rand::SeedableRng;

/// Everything the OpenPGP targets share.
pub struct Fixture {
    /// The secret key: a signing primary and a signing subkey.
    pub key: SignedSecretKey,
    /// Its public key, armored.
    pub keyring_armored: Vec<u8>,
    /// Its public key, binary (as `Signed-By` `.gpg` files are).
    pub keyring_binary: Vec<u8>,
    /// A small Release paragraph.
    pub release: String,
    /// `release` clearsigned by the primary key.
    pub inrelease: Vec<u8>,
    /// `release` clearsigned by the subkey.
    pub inrelease_subkey: Vec<u8>,
    /// A detached signature of `release`, armored.
    pub release_gpg_armored: Vec<u8>,
    /// The same, binary.
    pub release_gpg_binary: Vec<u8>,
}

/// The fixture, made on first use.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(make_fixture)
}

fn rng() -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(14)
}

fn make_fixture() -> Fixture {
    // Created well in the past so every signature made now is after it.
    let created = Timestamp::from_secs(1_600_000_000);
    let sub = SubkeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_sign(true)
        .created_at(created)
        .build()
        .expect("subkey params");
    let params = SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id("netshoot fuzz <fuzz@example.invalid>".into())
        .created_at(created)
        .subkeys(vec![sub])
        .build()
        .expect("key params");
    let key = params.generate(rng()).expect("generating the fuzz key");
    let public = key.to_public_key();
    let keyring_armored = public
        .to_armored_bytes(ArmorOptions::default())
        .expect("armoring the key");
    let keyring_binary = public.to_bytes().expect("serialising the key");
    let release = sample_release();
    let inrelease = clearsign(&key, &release, false);
    let inrelease_subkey = clearsign(&key, &release, true);
    let sig = detached(&key, release.as_bytes());
    Fixture {
        release_gpg_armored: sig
            .to_armored_bytes(ArmorOptions::default())
            .expect("armoring the signature"),
        release_gpg_binary: sig.to_bytes().expect("serialising the signature"),
        key,
        keyring_armored,
        keyring_binary,
        release,
        inrelease,
        inrelease_subkey,
    }
}

/// A Release paragraph shaped like an archive's, dated now and valid for
/// a week.
pub fn sample_release() -> String {
    let now = SystemTime::now();
    format!(
        "Origin: Fuzz\nLabel: Fuzz\nSuite: stable\nCodename: fuzz\n\
         Date: {}\nValid-Until: {}\nAcquire-By-Hash: yes\n\
         Architectures: amd64 arm64\nComponents: main\nDescription: fuzz seed\n\
         SHA256:\n 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 1234 main/binary-amd64/Packages.xz\n \
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-arm64/Packages\n",
        format_rfc2822(now),
        format_rfc2822(now + Duration::from_secs(7 * 86_400)),
    )
}

/// `text` clearsigned (an InRelease), by the primary key or the subkey.
pub fn clearsign(key: &SignedSecretKey, text: &str, subkey: bool) -> Vec<u8> {
    let pw = Password::empty();
    let msg = if subkey {
        CleartextSignedMessage::sign(rng(), text, &key.secret_subkeys[0].key, &pw)
    } else {
        CleartextSignedMessage::sign(rng(), text, &key.primary_key, &pw)
    }
    .expect("clearsigning");
    msg.to_armored_bytes(ArmorOptions::default())
        .expect("armoring the InRelease")
}

/// A binary detached signature of `data` by the primary key.
pub fn detached(key: &SignedSecretKey, data: &[u8]) -> DetachedSignature {
    DetachedSignature::sign_binary_data(
        rng(),
        &key.primary_key,
        &Password::empty(),
        HashAlgorithm::Sha256,
        data,
    )
    .expect("signing")
}

/// The moment verification is asked for: a little after the signatures
/// were made.
fn now() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

/// The Release text behind a valid signature, both forms. The signature
/// must verify, whatever the text (short of line ends and trailing blanks,
/// which the cleartext framework normalises): only the Release checks may
/// refuse it. Each line is also a date for `parse_rfc2822`, whose result
/// must survive `format_rfc2822`.
pub fn release_body(data: &[u8]) {
    let f = fixture();
    for line in String::from_utf8_lossy(data).lines() {
        if let Ok(t) = parse_rfc2822(line) {
            let shown = format_rfc2822(t);
            assert_eq!(
                parse_rfc2822(&shown),
                Ok(t),
                "date {line:?} formats as {shown:?}, which reads differently"
            );
        }
    }
    // Detached: the bytes exactly as given.
    let sig = detached(&f.key, data).to_bytes().expect("serialising");
    match verify_detached(data, &sig, &f.keyring_binary, now()) {
        Err(
            e @ (ReleaseError::BadSignature { .. }
            | ReleaseError::Format { .. }
            | ReleaseError::Keyring(_)),
        ) => {
            panic!("a valid detached signature was refused: {e}")
        }
        _ => {}
    }
    // Clearsigned: text whose lines have no trailing blanks or CR.
    let text: String = String::from_utf8_lossy(data)
        .split('\n')
        .map(|l| l.trim_end_matches([' ', '\t', '\r']).replace('\r', ""))
        .collect::<Vec<_>>()
        .join("\n");
    let signed = clearsign(&f.key, &text, false);
    match verify_inrelease(&signed, &f.keyring_armored, now()) {
        Err(
            e @ (ReleaseError::BadSignature { .. }
            | ReleaseError::Format { .. }
            | ReleaseError::Keyring(_)),
        ) => {
            panic!(
                "a valid InRelease was refused: {e}\n{}",
                String::from_utf8_lossy(&signed)
            )
        }
        _ => {}
    }
}

/// An InRelease as fetched, against the fuzz key.
pub fn inrelease(data: &[u8]) {
    let _ = verify_inrelease(data, &fixture().keyring_armored, now());
}

/// A Release.gpg as fetched, for the fixture's Release.
pub fn release_gpg(data: &[u8]) {
    let f = fixture();
    let _ = verify_detached(f.release.as_bytes(), data, &f.keyring_binary, now());
}

/// A keyring, checking the fixture's InRelease (primary or subkey
/// signature, by the input's first byte) and its Release.gpg.
pub fn keyring(data: &[u8]) {
    let f = fixture();
    let signed = if data.first().is_some_and(|b| b & 1 == 1) {
        &f.inrelease_subkey
    } else {
        &f.inrelease
    };
    let _ = verify_inrelease(signed, data, now());
    let _ = verify_detached(f.release.as_bytes(), &f.release_gpg_binary, data, now());
}
