//! Platforms as users write them (`linux/amd64`, `linux/arm/v7`).

use std::fmt;
use std::str::FromStr;

/// An OS/architecture/variant triple.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// OCI architecture (`amd64`, `arm64`, `arm`, ...).
    pub architecture: String,
    /// Variant (`v7` for arm, `v8` for arm64), if any.
    pub variant: Option<String>,
}

/// A platform string that is not one we know how to build.
#[derive(Debug, thiserror::Error)]
#[error("unknown platform {input:?}: expected one of {}", KNOWN.join(", "))]
pub struct PlatformError {
    input: String,
}

/// The platforms this crate accepts, in the OCI/Go spelling.
pub const KNOWN: &[&str] = &[
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
];

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `linux/arm64/v8` is the same image platform as `linux/arm64`.
        let norm = match s {
            "linux/arm64/v8" => "linux/arm64",
            "linux/arm" => "linux/arm/v7",
            other => other,
        };
        if !KNOWN.contains(&norm) {
            return Err(PlatformError {
                input: s.to_string(),
            });
        }
        let mut it = norm.split('/');
        let os = it.next().unwrap_or_default().to_string();
        let architecture = it.next().unwrap_or_default().to_string();
        let variant = it.next().map(str::to_string);
        Ok(Platform {
            os,
            architecture,
            variant,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// The platform of the running host (for picking one image of an index).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "linux/amd64",
            "aarch64" => "linux/arm64",
            "arm" => "linux/arm/v7",
            "x86" => "linux/386",
            "powerpc64" => "linux/ppc64le",
            "s390x" => "linux/s390x",
            "riscv64" => "linux/riscv64",
            _ => "linux/amd64",
        };
        arch.parse().unwrap_or(Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        })
    }

    /// Conversion to `oci-spec`'s type.
    pub fn to_oci(&self) -> oci_spec::image::Platform {
        let mut p = oci_spec::image::Platform::default();
        p.set_os(oci_spec::image::Os::from(self.os.as_str()));
        p.set_architecture(oci_spec::image::Arch::from(self.architecture.as_str()));
        p.set_variant(self.variant.clone());
        p
    }

    /// Conversion from `oci-spec`'s type.
    pub fn from_oci(p: &oci_spec::image::Platform) -> Platform {
        Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        }
    }

    /// True when `other` names the same platform; a missing variant on
    /// either side matches any variant.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || other.variant.is_none() || self.variant == other.variant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_rejects_unknown() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.architecture, "arm");
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64"
        );
        let e = "linux/sparc".parse::<Platform>().unwrap_err().to_string();
        assert!(
            e.contains("linux/sparc") && e.contains("linux/amd64"),
            "{e}"
        );
        let oci = p.to_oci();
        assert_eq!(Platform::from_oci(&oci), p);
    }
}
