//! Signed repository metadata: `InRelease` (clearsigned) and
//! `Release` + `Release.gpg` (detached), verified with OpenPGP against a
//! keyring before a single field is trusted.
//!
//! What is checked, in order:
//!
//! 1. The keyring parses (binary `.gpg`, i.e. concatenated transferable
//!    public keys, or one or more ASCII-armored blocks). Every key in it is
//!    trusted: the keyring is the trust anchor, as with apt's `Signed-By`.
//! 2. For every key, the primary key and each subkey is a candidate signer.
//!    A subkey counts only through a subkey binding signature that verifies
//!    against the primary key, carries the signing flag and, as RFC 9580
//!    requires for signing subkeys, an embedded back-signature that verifies
//!    too. Third-party certifications are ignored (that is why
//!    `SignedPublicKey::verify_bindings`, which demands that *every*
//!    signature on a user id verify with the key itself, fails on Debian's
//!    keys; we never call it).
//! 3. Expiry: the primary key's expiry comes from its newest verifying
//!    self-signature (user id certification or direct key signature), a
//!    subkey's from its newest verifying binding. A signature counts only if
//!    it was made at or after the key's creation and before the key's
//!    expiry (both of the subkey and of its primary): an archive key that
//!    expired *after* signing still validates that old signature, which is
//!    what gpgv does too, while the Release's own `Valid-Until` bounds replay.
//!    A primary key none of whose self-signatures verify is taken as
//!    non-expiring: it is in the trusted keyring, and its expiry cannot be
//!    read from unverified data.
//! 4. Revocation: a key revocation (primary) or subkey revocation that
//!    verifies makes the key unusable; when its reason is "superseded",
//!    "retired" or "user id invalid" (a soft revocation) only signatures
//!    made at or after the revocation are refused. Revocations that do not
//!    verify are ignored, as gpg ignores them.
//! 5. The data signature itself: its type must be binary or text, its hash
//!    not MD5, SHA-1 or RIPEMD-160 (apt refuses those too), it must not have
//!    expired before `now`, and it must verify cryptographically.
//! 6. At least one signature must pass all of the above.
//! 7. The signed text is one deb822 paragraph; `Valid-Until` must not be
//!    before `now` and `Date` must not be more than a day after `now`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{RevocationCode, Signature, SignatureType};
use pgp::types::{KeyDetails, Tag, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::control::{parse_paragraphs, Paragraph};

/// How far in the future a Release's `Date` may lie before we call the
/// clock (ours or the archive's) wrong: one day, as apt's default.
const MAX_FUTURE_DATE: Duration = Duration::from_secs(24 * 3600);

/// A verified `Release` / `InRelease` file.
#[derive(Clone, Debug)]
pub struct Release {
    /// The signed deb822 paragraph, every field as written.
    pub paragraph: Paragraph,
    /// sha256 (lowercase hex) of the signed file exactly as fetched: the
    /// `InRelease` bytes, or the `Release` bytes for the detached form.
    pub digest: String,
    /// `Suite` (e.g. `stable`).
    pub suite: Option<String>,
    /// `Codename` (e.g. `trixie`).
    pub codename: Option<String>,
    /// `Date`, when the archive generated the file.
    pub date: Option<SystemTime>,
    /// `Valid-Until`, after which the file must not be trusted any more.
    pub valid_until: Option<SystemTime>,
    /// `Architectures`, split on whitespace.
    pub architectures: Vec<String>,
    /// `Components`, split on whitespace.
    pub components: Vec<String>,
    /// `Acquire-By-Hash: yes`: indexes may be fetched by their sha256.
    pub acquire_by_hash: bool,
    /// Fingerprint (uppercase hex) of the (sub)key whose signature was
    /// accepted.
    pub signer: String,
}

impl Release {
    /// The sha256 (hex) and size of index `path` (relative to the
    /// Release's directory, e.g. `main/binary-amd64/Packages.xz`) from the
    /// `SHA256` field, if listed.
    pub fn sha256(&self, path: &str) -> Option<(&str, u64)> {
        self.sha256_entries()
            .find(|(_, _, p)| *p == path)
            .map(|(h, s, _)| (h, s))
    }

    /// Every well-formed `SHA256` line as `(hex, size, path)`; malformed
    /// lines are skipped (they can only make a lookup fail, never pass).
    pub fn sha256_entries(&self) -> impl Iterator<Item = (&str, u64, &str)> {
        self.paragraph
            .get("SHA256")
            .unwrap_or("")
            .lines()
            .filter_map(|line| {
                let mut it = line.split_whitespace();
                let hash = it.next()?;
                let size = it.next()?.parse::<u64>().ok()?;
                let path = it.next()?;
                if it.next().is_some()
                    || hash.len() != 64
                    || !hash.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return None;
                }
                Some((hash, size, path))
            })
    }
}

/// Why a Release could not be trusted.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The keyring holds no usable public key.
    #[error("keyring: {0}")]
    Keyring(String),
    /// The signed file or the signature is not valid OpenPGP.
    #[error("{what}: not a valid OpenPGP {kind}: {reason}")]
    Format {
        /// `InRelease`, `Release.gpg`, ...
        what: &'static str,
        /// What was expected there.
        kind: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// No signature verified with a key of the keyring.
    #[error("{what}: no valid signature from a key in the keyring ({})", reasons.join("; "))]
    BadSignature {
        /// `InRelease` or `Release`.
        what: &'static str,
        /// Why each signature was refused.
        reasons: Vec<String>,
    },
    /// The signed content is not a single deb822 paragraph or has a bad
    /// date.
    #[error("{what}: {reason}")]
    Malformed {
        /// `InRelease` or `Release`.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `Valid-Until` is in the past.
    #[error("{what} expired: Valid-Until {valid_until} is before now ({now})")]
    Expired {
        /// `InRelease` or `Release`.
        what: &'static str,
        /// The file's `Valid-Until`, RFC 2822 in UTC.
        valid_until: String,
        /// The time checked against, RFC 2822 in UTC.
        now: String,
    },
    /// `Date` is more than a day ahead of `now`.
    #[error("{what} is from the future: Date {date} is more than a day after now ({now})")]
    FromFuture {
        /// `InRelease` or `Release`.
        what: &'static str,
        /// The file's `Date`, RFC 2822 in UTC.
        date: String,
        /// The time checked against, RFC 2822 in UTC.
        now: String,
    },
}

/// Verifies a clearsigned `InRelease` against `keyring` (binary or armored)
/// at time `now`, and parses it. See the module documentation for the
/// checks.
pub fn verify_inrelease(
    data: &[u8],
    keyring: &[u8],
    now: SystemTime,
) -> Result<Release, ReleaseError> {
    const WHAT: &str = "InRelease";
    let keys = load_keyring(keyring)?;
    let text = std::str::from_utf8(data).map_err(|e| ReleaseError::Format {
        what: WHAT,
        kind: "clearsigned message",
        reason: format!("not UTF-8: {e}"),
    })?;
    let (msg, _headers) =
        CleartextSignedMessage::from_string(text).map_err(|e| ReleaseError::Format {
            what: WHAT,
            kind: "clearsigned message",
            reason: e.to_string(),
        })?;
    // What was signed is the dash-unescaped text with CRLF line ends; the
    // Release paragraph is that same text with LF.
    let signed = msg.signed_text();
    let signer = verify_any(WHAT, msg.signatures(), signed.as_bytes(), &keys, now)?;
    let body = signed.replace("\r\n", "\n");
    finish(WHAT, &body, data, signer, now)
}

/// Verifies `Release` with its detached signature `Release.gpg` (armored or
/// binary, possibly several signatures) against `keyring` at time `now`,
/// and parses it.
pub fn verify_detached(
    release: &[u8],
    signature: &[u8],
    keyring: &[u8],
    now: SystemTime,
) -> Result<Release, ReleaseError> {
    const WHAT: &str = "Release";
    let keys = load_keyring(keyring)?;
    let format_err = |e: pgp::errors::Error| ReleaseError::Format {
        what: "Release.gpg",
        kind: "detached signature",
        reason: e.to_string(),
    };
    let sigs: Vec<DetachedSignature> = if is_armored(signature) {
        let (it, _) = DetachedSignature::from_armor_many(signature).map_err(format_err)?;
        it.collect::<Result<_, _>>().map_err(format_err)?
    } else {
        DetachedSignature::from_bytes_many(signature)
            .map_err(format_err)?
            .collect::<Result<_, _>>()
            .map_err(format_err)?
    };
    if sigs.is_empty() {
        return Err(ReleaseError::Format {
            what: "Release.gpg",
            kind: "detached signature",
            reason: "no signature packet".into(),
        });
    }
    let sigs: Vec<Signature> = sigs.into_iter().map(|s| s.signature).collect();
    let signer = verify_any(WHAT, &sigs, release, &keys, now)?;
    let body = std::str::from_utf8(release).map_err(|e| ReleaseError::Malformed {
        what: WHAT,
        reason: format!("not UTF-8: {e}"),
    })?;
    finish(WHAT, body, release, signer, now)
}

fn is_armored(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes[start..].starts_with(b"-----BEGIN PGP")
}

/// Parses every public key of a keyring. Armored keyrings may hold several
/// armor blocks one after another (as `cat a.asc b.asc` gives), each
/// parsed on its own.
fn load_keyring(keyring: &[u8]) -> Result<Vec<SignedPublicKey>, ReleaseError> {
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    if is_armored(keyring) {
        let text = std::str::from_utf8(keyring)
            .map_err(|e| ReleaseError::Keyring(format!("armored keyring is not UTF-8: {e}")))?;
        const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
        let starts: Vec<usize> = text.match_indices(BEGIN).map(|(i, _)| i).collect();
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(text.len());
            match SignedPublicKey::from_armor_many(&keyring[start..end]) {
                Ok((it, _)) => {
                    for k in it {
                        match k {
                            Ok(k) => keys.push(k),
                            Err(e) => errors.push(e.to_string()),
                        }
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
    } else {
        match SignedPublicKey::from_bytes_many(keyring) {
            Ok(it) => {
                for k in it {
                    match k {
                        Ok(k) => keys.push(k),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if keys.is_empty() {
        let why = if errors.is_empty() {
            "no public key found".to_string()
        } else {
            errors.join("; ")
        };
        return Err(ReleaseError::Keyring(why));
    }
    Ok(keys)
}

/// When a key may make signatures, in seconds since the epoch.
#[derive(Clone, Copy, Debug)]
struct Window {
    created: u64,
    expires: Option<u64>,
    /// Hard revocation: never valid.
    hard_revoked: bool,
    /// Soft revocation: valid only for signatures made before this time.
    soft_revoked_at: Option<u64>,
}

impl Window {
    /// Why a signature made at `t` by this key is not acceptable, if so.
    fn refuse(&self, t: u64) -> Option<String> {
        if self.hard_revoked {
            return Some("the key is revoked".into());
        }
        if let Some(r) = self.soft_revoked_at {
            if t >= r {
                return Some(format!("the key was retired at {}", fmt_secs(r)));
            }
        }
        if t < self.created {
            return Some(format!(
                "the signature ({}) predates the key ({})",
                fmt_secs(t),
                fmt_secs(self.created)
            ));
        }
        if let Some(e) = self.expires {
            if t >= e {
                return Some(format!(
                    "the key expired at {}, before the signature was made ({})",
                    fmt_secs(e),
                    fmt_secs(t)
                ));
            }
        }
        None
    }

    /// A subkey is bounded by its primary key too.
    fn within(self, primary: &Window) -> Window {
        Window {
            created: self.created.max(primary.created),
            expires: match (self.expires, primary.expires) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            hard_revoked: self.hard_revoked || primary.hard_revoked,
            soft_revoked_at: match (self.soft_revoked_at, primary.soft_revoked_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

fn sig_time(sig: &Signature) -> Option<u64> {
    sig.created().map(|t| u64::from(t.as_secs()))
}

/// Applies the verified revocation signatures among `sigs` to `w`.
fn apply_revocations<'a>(
    w: &mut Window,
    sigs: impl Iterator<Item = &'a Signature>,
    verifies: impl Fn(&Signature) -> bool,
) {
    for sig in sigs {
        if !verifies(sig) {
            continue;
        }
        let soft = matches!(
            sig.revocation_reason_code(),
            Some(RevocationCode::KeySuperseded)
                | Some(RevocationCode::KeyRetired)
                | Some(RevocationCode::CertUserIdInvalid)
        );
        match (soft, sig_time(sig)) {
            (true, Some(t)) => {
                w.soft_revoked_at = Some(w.soft_revoked_at.map_or(t, |r| r.min(t)));
            }
            _ => w.hard_revoked = true,
        }
    }
}

/// The signature with the latest creation time (the last one listed on a
/// tie), which is the one that states a key's current properties.
fn newest_sig<'a>(sigs: impl IntoIterator<Item = &'a Signature>) -> Option<&'a Signature> {
    let mut newest: Option<(u64, &Signature)> = None;
    for sig in sigs {
        let t = sig_time(sig).unwrap_or(0);
        if newest.is_none_or(|(nt, _)| t >= nt) {
            newest = Some((t, sig));
        }
    }
    newest.map(|(_, s)| s)
}

fn expiry(created: u64, sig: &Signature) -> Option<u64> {
    match sig.key_expiration_time() {
        Some(d) if d.as_secs() > 0 => Some(created + u64::from(d.as_secs())),
        _ => None,
    }
}

fn primary_window(key: &SignedPublicKey) -> Window {
    let primary = &key.primary_key;
    let created = u64::from(primary.created_at().as_secs());
    // The newest self-signature that verifies says when the key expires.
    let mut valid: Vec<&Signature> = Vec::new();
    for user in &key.details.users {
        for sig in &user.signatures {
            if sig.is_certification()
                && sig
                    .verify_certification(primary, Tag::UserId, &user.id)
                    .is_ok()
            {
                valid.push(sig);
            }
        }
    }
    for sig in &key.details.direct_signatures {
        if sig.typ() == Some(SignatureType::Key) && sig.verify_key(primary).is_ok() {
            valid.push(sig);
        }
    }
    let newest = newest_sig(valid);
    let mut w = Window {
        created,
        expires: newest.and_then(|s| expiry(created, s)),
        hard_revoked: false,
        soft_revoked_at: None,
    };
    apply_revocations(&mut w, key.details.revocation_signatures.iter(), |s| {
        s.typ() == Some(SignatureType::KeyRevocation) && s.verify_key(primary).is_ok()
    });
    w
}

/// The window of a signing subkey, or why it cannot sign.
fn subkey_window(
    key: &SignedPublicKey,
    sub: &pgp::composed::SignedPublicSubKey,
) -> Result<Window, String> {
    let primary = &key.primary_key;
    let created = u64::from(sub.key.created_at().as_secs());
    let bindings = sub.signatures.iter().filter(|sig| {
        sig.typ() == Some(SignatureType::SubkeyBinding)
            && sig.verify_subkey_binding(primary, &sub.key).is_ok()
    });
    let Some(binding) = newest_sig(bindings) else {
        return Err("no valid subkey binding signature".into());
    };
    if !binding.key_flags().sign() {
        return Err("the subkey is not marked for signing".into());
    }
    let backsig_ok = binding
        .embedded_signature()
        .is_some_and(|b| b.verify_primary_key_binding(&sub.key, primary).is_ok());
    if !backsig_ok {
        return Err("the signing subkey has no valid back-signature".into());
    }
    let mut w = Window {
        created,
        expires: expiry(created, binding),
        hard_revoked: false,
        soft_revoked_at: None,
    };
    apply_revocations(&mut w, sub.signatures.iter(), |s| {
        s.typ() == Some(SignatureType::SubkeyRevocation)
            && s.verify_subkey_binding(primary, &sub.key).is_ok()
    });
    Ok(w)
}

fn fingerprint(k: &impl KeyDetails) -> String {
    format!("{:X}", k.fingerprint())
}

/// Checks `sig` over `data` against one candidate key: `Ok(true)` when it
/// verifies and the key may sign at that time, `Ok(false)` when the key
/// is not the signer, `Err(reason)` when it is the signer but not valid.
fn try_key(
    sig: &Signature,
    data: &[u8],
    key: &impl VerifyingKey,
    window: Result<Window, String>,
    sig_at: u64,
) -> Result<bool, String> {
    if sig.verify(key, data).is_err() {
        return Ok(false);
    }
    let fp = fingerprint(key);
    let w = window.map_err(|why| format!("signature by {fp}: {why}"))?;
    match w.refuse(sig_at) {
        Some(why) => Err(format!("signature by {fp}: {why}")),
        None => Ok(true),
    }
}

/// Returns the fingerprint of the first key that made a valid signature.
fn verify_any(
    what: &'static str,
    sigs: &[Signature],
    data: &[u8],
    keys: &[SignedPublicKey],
    now: SystemTime,
) -> Result<String, ReleaseError> {
    let now_s = secs(now);
    let mut reasons = Vec::new();
    if sigs.is_empty() {
        reasons.push("the file carries no signature".to_string());
    }
    'sigs: for sig in sigs {
        let issuer = sig
            .issuer_fingerprint()
            .first()
            .map(|f| format!("{f:X}"))
            .or_else(|| sig.issuer_key_id().first().map(hex::encode_upper))
            .unwrap_or_else(|| "unknown issuer".into());
        if !matches!(
            sig.typ(),
            Some(SignatureType::Binary) | Some(SignatureType::Text)
        ) {
            reasons.push(format!(
                "signature by {issuer}: type {:?} is not a document signature",
                sig.typ()
            ));
            continue;
        }
        if let Some(h) = sig.hash_alg() {
            if matches!(
                h,
                HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160
            ) {
                reasons.push(format!("signature by {issuer}: weak hash {h}"));
                continue;
            }
        }
        let Some(sig_at) = sig_time(sig) else {
            reasons.push(format!("signature by {issuer}: no creation time"));
            continue;
        };
        if let Some(d) = sig.signature_expiration_time() {
            let exp = sig_at + u64::from(d.as_secs());
            if d.as_secs() > 0 && exp <= now_s {
                reasons.push(format!(
                    "signature by {issuer}: expired at {}",
                    fmt_secs(exp)
                ));
                continue;
            }
        }
        let mut matched = false;
        for key in keys {
            let pw = primary_window(key);
            match try_key(sig, data, &key.primary_key, Ok(pw), sig_at) {
                Ok(true) => return Ok(fingerprint(&key.primary_key)),
                Ok(false) => {}
                Err(why) => {
                    reasons.push(why);
                    continue 'sigs;
                }
            }
            for sub in &key.public_subkeys {
                let w = subkey_window(key, sub).map(|w| w.within(&pw));
                match try_key(sig, data, &sub.key, w, sig_at) {
                    Ok(true) => return Ok(fingerprint(&sub.key)),
                    Ok(false) => {}
                    Err(why) => {
                        reasons.push(why);
                        matched = true;
                    }
                }
            }
        }
        if !matched {
            let why = if issuer_in_keyring(sig, keys) {
                "bad signature (the signed data was altered, or the signature belongs to other data)"
            } else {
                "its key is not in the keyring"
            };
            reasons.push(format!("signature by {issuer}: {why}"));
        }
    }
    Err(ReleaseError::BadSignature { what, reasons })
}

/// Whether the signature names a key (primary or subkey) of the keyring
/// as its issuer, to tell a bad signature from an unknown signer.
fn issuer_in_keyring(sig: &Signature, keys: &[SignedPublicKey]) -> bool {
    let ids = sig.issuer_key_id();
    let fps = sig.issuer_fingerprint();
    let matches = |k: &dyn KeyDetails| {
        ids.iter().any(|id| **id == k.legacy_key_id())
            || fps.iter().any(|fp| **fp == k.fingerprint())
    };
    keys.iter()
        .any(|k| matches(&k.primary_key) || k.public_subkeys.iter().any(|s| matches(&s.key)))
}

fn finish(
    what: &'static str,
    body: &str,
    fetched: &[u8],
    signer: String,
    now: SystemTime,
) -> Result<Release, ReleaseError> {
    let mut paragraphs = parse_paragraphs(body).map_err(|e| ReleaseError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    if paragraphs.len() != 1 {
        return Err(ReleaseError::Malformed {
            what,
            reason: format!("expected one paragraph, found {}", paragraphs.len()),
        });
    }
    let paragraph = paragraphs.remove(0);
    let date_field = |name: &str| -> Result<Option<SystemTime>, ReleaseError> {
        paragraph
            .get(name)
            .map(|v| {
                parse_rfc2822(v).map_err(|e| ReleaseError::Malformed {
                    what,
                    reason: format!("field {name}: {e}"),
                })
            })
            .transpose()
    };
    let date = date_field("Date")?;
    let valid_until = date_field("Valid-Until")?;
    if let Some(v) = valid_until {
        if v < now {
            return Err(ReleaseError::Expired {
                what,
                valid_until: format_rfc2822(v),
                now: format_rfc2822(now),
            });
        }
    }
    if let Some(d) = date {
        if now
            .checked_add(MAX_FUTURE_DATE)
            .is_some_and(|limit| d > limit)
        {
            return Err(ReleaseError::FromFuture {
                what,
                date: format_rfc2822(d),
                now: format_rfc2822(now),
            });
        }
    }
    let words = |name: &str| -> Vec<String> {
        paragraph
            .get(name)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    Ok(Release {
        suite: paragraph.get("Suite").map(str::to_string),
        codename: paragraph.get("Codename").map(str::to_string),
        architectures: words("Architectures"),
        components: words("Components"),
        acquire_by_hash: paragraph
            .get("Acquire-By-Hash")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
        date,
        valid_until,
        digest: hex::encode(Sha256::digest(fetched)),
        signer,
        paragraph,
    })
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn fmt_secs(s: u64) -> String {
    format_rfc2822(UNIX_EPOCH + Duration::from_secs(s))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`), so we need no date crate for two fields.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Parses a date as Debian's archive tools write it, RFC 2822 style:
/// `Sat, 08 Nov 2025 09:17:06 UTC` (the weekday is optional and not
/// checked; the zone is `UTC`, `GMT`, `Z` or a `+hhmm`/`-hhmm` offset;
/// seconds may be omitted).
pub fn parse_rfc2822(text: &str) -> Result<SystemTime, String> {
    let bad = |why: &str| format!("date {text:?}: {why}");
    let mut s = text.trim();
    if let Some((head, rest)) = s.split_once(',') {
        if head.trim().chars().all(|c| c.is_ascii_alphabetic()) {
            s = rest;
        }
    }
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(bad("expected `[Day,] DD Mon YYYY HH:MM[:SS] ZONE`"));
    }
    let day: u32 = parts[0].parse().map_err(|_| bad("bad day"))?;
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(parts[1]))
        .ok_or_else(|| bad("bad month"))? as u32
        + 1;
    let year: i64 = parts[2].parse().map_err(|_| bad("bad year"))?;
    if !(1970..=9999).contains(&year) {
        return Err(bad("year out of range"));
    }
    let hms: Vec<&str> = parts[3].split(':').collect();
    if !(2..=3).contains(&hms.len()) {
        return Err(bad("bad time of day"));
    }
    let mut t = [0u32; 3];
    for (slot, v) in t.iter_mut().zip(&hms) {
        *slot = v.parse().map_err(|_| bad("bad time of day"))?;
    }
    let offset: i64 = match parts[4] {
        z if ["UTC", "GMT", "Z", "UT"]
            .iter()
            .any(|u| u.eq_ignore_ascii_case(z)) =>
        {
            0
        }
        z if (z.starts_with('+') || z.starts_with('-'))
            && z.len() == 5
            && z[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let hh: i64 = z[1..3].parse().map_err(|_| bad("bad zone"))?;
            let mm: i64 = z[3..5].parse().map_err(|_| bad("bad zone"))?;
            sign * (hh * 3600 + mm * 60)
        }
        _ => return Err(bad("unknown time zone")),
    };
    let days_in_month = match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day == 0 || day > days_in_month || t[0] > 23 || t[1] > 59 || t[2] > 60 {
        return Err(bad("field out of range"));
    }
    let epoch = days_from_civil(year, month, day) * 86_400
        + i64::from(t[0]) * 3600
        + i64::from(t[1]) * 60
        + i64::from(t[2])
        - offset;
    let epoch = u64::try_from(epoch).map_err(|_| bad("before 1970"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(epoch))
}

/// Formats `t` as Debian does: `Sat, 08 Nov 2025 09:17:06 UTC`.
pub fn format_rfc2822(t: SystemTime) -> String {
    let s = secs(t) as i64;
    let days = s.div_euclid(86_400);
    let rem = s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} UTC",
        WEEKDAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_roundtrip() {
        let t = parse_rfc2822("Sat, 08 Nov 2025 09:17:06 UTC").unwrap();
        assert_eq!(secs(t), 1_762_593_426);
        assert_eq!(format_rfc2822(t), "Sat, 08 Nov 2025 09:17:06 UTC");
        let t2 = parse_rfc2822("08 Nov 2025 10:17:06 +0100").unwrap();
        assert_eq!(t, t2);
        assert_eq!(
            format_rfc2822(parse_rfc2822("Thu, 29 Feb 2024 23:59:59 GMT").unwrap()),
            "Thu, 29 Feb 2024 23:59:59 UTC"
        );
        assert!(parse_rfc2822("Fri, 30 Feb 2024 00:00:00 UTC").is_err());
        assert!(parse_rfc2822("yesterday").is_err());
        assert!(parse_rfc2822("Sat, 08 Nov 99999999999999999 09:17:06 UTC").is_err());
        assert!(parse_rfc2822("Sat, 08 Nov 2025 09:17:06 CEST").is_err());
    }
}
