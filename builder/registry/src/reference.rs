//! Image references as users write them
//! (`registry.example.com:5000/team/netshoot:v1`, `localhost:5000/x@sha256:...`).

use image_layout::Digest;
use std::fmt;
use std::str::FromStr;

/// The registry a reference without a registry part names.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed image reference: registry, repository and a tag and/or digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port if any (`127.0.0.1:5000`, `docker.io`).
    pub registry: String,
    /// Repository path (`team/netshoot`, `library/alpine`).
    pub repository: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest, if given.
    pub digest: Option<Digest>,
}

/// A string that is not a valid image reference.
#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    input: String,
    reason: String,
}

fn valid_tag(t: &str) -> bool {
    // Per the distribution spec: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
    let mut b = t.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphanumeric() || c == b'_')
        && t.len() <= 128
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* — checked loosely: lowercase
    // alphanumerics and separators, starting and ending alphanumeric.
    !c.is_empty()
        && c.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| ReferenceError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|_| bad("the digest is not sha256:<64 hex digits>"))?,
                ),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/', so a
        // registry port is never taken for a tag.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad("the tag must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}"));
            }
        }
        // The first component is a registry when it looks like a host:
        // it has a dot or a port, or is `localhost` (docker's rule).
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if registry.is_empty() || registry.contains(|c: char| c.is_whitespace()) {
            return Err(bad("empty registry"));
        }
        if !repository.split('/').all(valid_component) {
            return Err(bad(
                "repository path components must be lowercase letters, digits and . _ -",
            ));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl Reference {
    /// What to ask the registry for: the digest when known, else the tag,
    /// else `latest`.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// The same repository, without tag, at `digest` (`reg/repo@sha256:...`).
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host to contact for the API: Docker Hub's API is not served
    /// at `docker.io` itself.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

/// True when `host` (with optional port) is a loopback name or address,
/// where plain HTTP is allowed without `--insecure`.
pub fn is_loopback(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    if bare == "localhost" {
        return true;
    }
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let r: Reference = "registry.example.com:5000/team/netshoot:v1"
            .parse()
            .unwrap();
        assert_eq!(r.registry, "registry.example.com:5000");
        assert_eq!(r.repository, "team/netshoot");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.to_string(), "registry.example.com:5000/team/netshoot:v1");

        let d = format!("sha256:{}", "a".repeat(64));
        let r: Reference = format!("localhost:5000/x@{d}").parse().unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "x");
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_ref(), d);

        let r: Reference = "alpine".parse().unwrap();
        assert_eq!(r.to_string(), "docker.io/library/alpine");
        assert_eq!(r.manifest_ref(), "latest");
        let r: Reference = "nicolaka/netshoot:latest".parse().unwrap();
        assert_eq!(r.repository, "nicolaka/netshoot");
        let r: Reference = "localhost/x:1".parse().unwrap();
        assert_eq!(r.registry, "localhost");

        assert!("Upper/case".parse::<Reference>().is_err());
        assert!("x@sha256:12".parse::<Reference>().is_err());
        assert!("x:bad tag".parse::<Reference>().is_err());
    }

    #[test]
    fn loopback() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:1",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "192.0.2.1"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
