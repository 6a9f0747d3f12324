//! OpenSSL's subject-name hash of a certificate, the name of the
//! `<hash>.N` links `update-ca-certificates` (through `openssl rehash`)
//! leaves in `/etc/ssl/certs`, by which `-CApath` and every client given a
//! CA folder find an issuer.
//!
//! The hash is over OpenSSL's canonical form of the subject: each text
//! value turned into UTF-8, its ASCII letters lowercased, leading and
//! trailing white space dropped and inner runs of it made one space, then
//! encoded as a UTF8String; the RDN sets DER-encoded one after the other
//! without the outer SEQUENCE header. The first four bytes of its SHA-1,
//! read little-endian, are the hash.

use sha1::{Digest, Sha1};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::asn1::{Any, SetOfVec};
use x509_cert::der::{Decode, DecodePem, Encode, Tag, Tagged};
use x509_cert::Certificate;

/// The subject hash of the certificate in `data` (PEM or DER), as
/// `openssl x509 -subject_hash` prints it (8 hex digits).
pub fn subject_hash(data: &[u8]) -> Result<String, String> {
    let cert = if data.windows(11).any(|w| w == b"-----BEGIN ") {
        Certificate::from_pem(data).map_err(|e| format!("not a PEM certificate: {e}"))?
    } else {
        Certificate::from_der(data).map_err(|e| format!("not a DER certificate: {e}"))?
    };
    let mut canon = Vec::new();
    for rdn in cert.tbs_certificate.subject.0.iter() {
        let mut set = Vec::new();
        for atv in rdn.0.iter() {
            set.push(canonical_atv(atv)?);
        }
        let set = SetOfVec::try_from(set).map_err(|e| format!("subject: {e}"))?;
        set.encode_to_vec(&mut canon)
            .map_err(|e| format!("subject: {e}"))?;
    }
    let md = Sha1::digest(&canon);
    Ok(format!(
        "{:08x}",
        u32::from_le_bytes([md[0], md[1], md[2], md[3]])
    ))
}

/// An attribute with its text value in canonical form; other values
/// are kept as they are.
fn canonical_atv(atv: &AttributeTypeAndValue) -> Result<AttributeTypeAndValue, String> {
    let Some(text) = as_utf8(atv.value.tag(), atv.value.value()) else {
        return Ok(atv.clone());
    };
    let value = Any::new(Tag::Utf8String, canonical_text(&text))
        .map_err(|e| format!("subject value: {e}"))?;
    Ok(AttributeTypeAndValue {
        oid: atv.oid,
        value,
    })
}

/// The value of a string type as UTF-8 bytes; `None` for other types.
fn as_utf8(tag: Tag, bytes: &[u8]) -> Option<Vec<u8>> {
    match tag {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            Some(bytes.to_vec())
        }
        // OpenSSL reads T61 as one byte a character (Latin-1).
        Tag::TeletexString => Some(bytes.iter().map(|&b| b as char).collect::<String>().into()),
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            Some(String::from_utf16_lossy(&units).into_bytes())
        }
        _ => None,
    }
}

/// OpenSSL's canonical text: ASCII white space trimmed and collapsed to
/// one space, ASCII letters lowercased, other bytes kept.
fn canonical_text(text: &[u8]) -> Vec<u8> {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = text.iter().position(|b| !space(b)).unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|b| !space(b))
        .map_or(start, |i| i + 1);
    let mut out = Vec::with_capacity(end - start);
    let mut in_space = false;
    for b in &text[start..end] {
        if space(b) {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(b.to_ascii_lowercase());
            in_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::subject_hash;
    use std::path::Path;
    use std::process::Command;

    /// What the openssl command line prints for the certificate at `path`.
    fn openssl_hash(path: &Path) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-subject_hash", "-noout", "-in"])
            .arg(path)
            .output()
            .expect("openssl must be installed (tools/scripts/install-deps.sh)");
        assert!(
            out.status.success(),
            "openssl on {}: {out:?}",
            path.display()
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn agrees_with_openssl_on_the_hosts_ca_store() {
        let dir = Path::new("/usr/share/ca-certificates/mozilla");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("the host's ca-certificates package") {
            let path = e.unwrap().path();
            let ours = subject_hash(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(ours, openssl_hash(&path), "{}", path.display());
            n += 1;
        }
        assert!(n > 100, "only {n} certificates in {}", dir.display());
    }

    #[test]
    fn agrees_with_openssl_on_case_spaces_and_non_ascii() {
        let tmp = tempfile::tempdir().unwrap();
        let subjects = [
            "/CN=  Mixed   CASE\tName  /O=Ünïcode Örg/C=DE",
            "/C=US/O=A+OU=b/CN=MULTI valued",
            "/CN=x",
        ];
        for (i, subj) in subjects.iter().enumerate() {
            let pem = tmp.path().join(format!("{i}.pem"));
            let out = Command::new("openssl")
                .args(["req", "-x509", "-utf8", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj"])
                .arg(subj)
                .arg("-keyout")
                .arg(tmp.path().join("key"))
                .arg("-out")
                .arg(&pem)
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl req {subj}: {out:?}");
            let der = Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&pem)
                .output()
                .unwrap()
                .stdout;
            let want = openssl_hash(&pem);
            assert_eq!(subject_hash(&std::fs::read(&pem).unwrap()).unwrap(), want);
            assert_eq!(subject_hash(&der).unwrap(), want, "DER of {subj}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"\x30\x03\x02\x01",
        ] {
            assert!(subject_hash(bad).is_err(), "{bad:?}");
        }
    }
}
