//! sha256 digests and writers that hash what passes through them.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

/// A content digest in OCI form (`sha256:<64 lowercase hex>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

/// A string that is not a valid `sha256:` digest.
#[derive(Debug, thiserror::Error)]
#[error("invalid digest {input:?}: expected sha256:<64 lowercase hex digits>")]
pub struct DigestError {
    input: String,
}

impl Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::from_sha256(Sha256::digest(data).into())
    }

    /// Wraps a finished sha256 state.
    pub fn from_sha256(bytes: [u8; 32]) -> Self {
        Digest {
            hex: hex::encode(bytes),
        }
    }

    /// Builds a digest from its bare hex part, checking it.
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        format!("sha256:{hex}").parse()
    }

    /// The hex part, as used in blob file names.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The path of this blob inside an OCI layout (`blobs/sha256/<hex>`).
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex)
    }

    /// The same digest as `oci-spec`'s type.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // Safe: our own format is always a valid sha256 digest.
        oci_spec::image::Digest::from_str(&self.to_string())
            .expect("a checked sha256 digest is a valid OCI digest")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DigestError {
            input: s.to_string(),
        };
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl From<&oci_spec::image::Digest> for Digest {
    fn from(d: &oci_spec::image::Digest) -> Self {
        Digest {
            hex: d.digest().to_string(),
        }
    }
}

/// A writer that computes the sha256 and length of everything written
/// through it, so digests come for free while streaming.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Returns the inner writer, the digest and the length.
    pub fn finish(self) -> (W, Digest, u64) {
        (
            self.inner,
            Digest::from_sha256(self.hasher.finalize().into()),
            self.len,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d = Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("sha256:ABC".parse::<Digest>().is_err());
        assert!("md5:00".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "g".repeat(64))
            .parse::<Digest>()
            .is_err());
    }
}
