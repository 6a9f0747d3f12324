//! Debian package versions (`[epoch:]upstream[-revision]`) and dpkg's
//! ordering of them.
//!
//! The ordering follows dpkg's `verrevcmp` exactly, because the resolver
//! must pick the same "highest" version as apt and dpkg would: any drift
//! here silently changes which package lands in the image.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A parsed Debian version.
///
/// Equality is dpkg's: `1.0` and `1.00` or `1.0` and `1.0-0` are equal
/// versions although their text differs, so `Eq` follows `Ord` and the
/// original text is kept separately for display.
#[derive(Clone, Debug)]
pub struct Version {
    epoch: u32,
    upstream: String,
    revision: Option<String>,
    text: String,
}

/// A version string that dpkg would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {input:?}: {reason}")]
pub struct VersionError {
    /// The string as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Version {
    /// Parses a version the way dpkg's `parseversion` does: surrounding
    /// whitespace is ignored, the epoch is everything before the first
    /// `:`, the revision everything after the last `-`.
    pub fn parse(input: &str) -> Result<Version, VersionError> {
        let err = |reason: &str| VersionError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("version string is empty"));
        }
        if s.contains(char::is_whitespace) {
            return Err(err("version string has embedded spaces"));
        }
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) => {
                if e.is_empty() {
                    return Err(err("epoch in version is empty"));
                }
                if !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("epoch in version is not a number"));
                }
                let epoch = e
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n <= i32::MAX as u32)
                    .ok_or_else(|| err("epoch in version is too big"))?;
                (epoch, rest)
            }
            None => (0, s),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => {
                if r.is_empty() {
                    return Err(err("revision number is empty"));
                }
                (u, Some(r))
            }
            None => (rest, None),
        };
        if upstream.is_empty() {
            return Err(err("version number is empty"));
        }
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err("version number does not start with digit"));
        }
        if let Some(c) = upstream
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".-+~:".contains(*c)))
        {
            return Err(err(&format!("invalid character {c:?} in version number")));
        }
        if let Some(c) = revision
            .unwrap_or("")
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".+~".contains(*c)))
        {
            return Err(err(&format!("invalid character {c:?} in revision number")));
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_string(),
            revision: revision.map(str::to_string),
            text: s.to_string(),
        })
    }

    /// The epoch; 0 when the version has none.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream part (between epoch and revision).
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision, if the version has one.
    pub fn revision(&self) -> Option<&str> {
        self.revision.as_deref()
    }

    /// The version as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// dpkg's character weight: `~` sorts before the end of a part, the end
/// before letters, letters before every other non-digit.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(b'~') => -1,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's `verrevcmp`: alternating non-digit and digit runs; non-digit
/// runs compared by `order`, digit runs compared numerically (leading
/// zeros ignored, so arbitrarily long runs never overflow).
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let a = a.as_bytes();
    let b = b.as_bytes();
    let (mut i, mut j) = (0usize, 0usize);
    let at = |s: &[u8], k: usize| s.get(k).copied();
    let is_digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
    while i < a.len() || j < b.len() {
        while (i < a.len() && !is_digit(at(a, i))) || (j < b.len() && !is_digit(at(b, j))) {
            let ac = order(at(a, i));
            let bc = order(at(b, j));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while at(a, i) == Some(b'0') {
            i += 1;
        }
        while at(b, j) == Some(b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while is_digit(at(a, i)) && is_digit(at(b, j)) {
            if first_diff == Ordering::Equal {
                first_diff = at(a, i).cmp(&at(b, j));
            }
            i += 1;
            j += 1;
        }
        if is_digit(at(a, i)) {
            return Ordering::Greater;
        }
        if is_digit(at(b, j)) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // An absent revision compares as the empty string, which
        // verrevcmp treats like "0": `1.0` == `1.0-0`, as in dpkg.
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| {
                verrevcmp(
                    self.revision.as_deref().unwrap_or(""),
                    other.revision.as_deref().unwrap_or(""),
                )
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn splits_parts() {
        let x = v("1:2.30+dfsg-1-2");
        assert_eq!(x.epoch(), 1);
        assert_eq!(x.upstream(), "2.30+dfsg-1");
        assert_eq!(x.revision(), Some("2"));
        assert_eq!(x.to_string(), "1:2.30+dfsg-1-2");
        let y = v("1.0");
        assert_eq!((y.epoch(), y.revision()), (0, None));
    }

    #[test]
    fn rejects_bad_versions() {
        for bad in [
            "", " ", "a1", ":1", "x:1", "1.0-", "1 0", "1_0", "1-a_b", "-1",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = Version::parse("1.0-").unwrap_err();
        assert!(e.to_string().contains("\"1.0-\""), "{e}");
        assert!(e.to_string().contains("revision"), "{e}");
    }

    #[test]
    fn orders_like_dpkg() {
        assert!(v("1.0~rc1") < v("1.0"));
        assert!(v("1.0~~") < v("1.0~"));
        assert!(v("1.0") < v("1.0a"));
        assert!(v("1.0a") < v("1.0+"));
        assert!(v("1:0") > v("9.9"));
        assert!(v("1.0-1~bpo") < v("1.0-1"));
        assert!(v("1.2.3a") < v("1.2.3+b1"));
        assert!(v("1.10") > v("1.9"));
        assert_eq!(v("1.0"), v("1.0-0"));
        assert_eq!(v("1.00"), v("1.0"));
        assert_eq!(v("0:1.0"), v("1.0"));
        assert!(v("99999999999999999999999") > v("99999999999999999999998"));
    }
}
