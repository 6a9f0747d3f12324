//! Binary package records from a repository's `Packages` index.

use std::fmt;

use crate::control::{parse_paragraphs, Paragraph};
use crate::relation::{parse_relation_list, parse_relations, Relation, RelationGroup};
use crate::version::Version;

/// The `Multi-Arch` field: how a package may be co-installed with, or
/// satisfy dependencies of, packages of other architectures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MultiArch {
    /// Absent or `no`: only same-architecture dependents, one arch at a time.
    #[default]
    No,
    /// `same`: co-installable with itself for other architectures.
    Same,
    /// `foreign`: satisfies dependencies of packages of any architecture.
    Foreign,
    /// `allowed`: satisfies `pkg:any` dependencies from any architecture.
    Allowed,
}

/// The `Priority` field. Ordered from most to least important, so the
/// smallest value is `Required`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// `required`: needed for the system to work at all.
    Required,
    /// `important`.
    Important,
    /// `standard`.
    Standard,
    /// `optional`.
    Optional,
    /// `extra` (deprecated alias of optional, still sorted after it).
    Extra,
    /// Any other value, kept verbatim; sorts last.
    Other(String),
}

impl Priority {
    /// Reads a `Priority` value (case-insensitive).
    pub fn parse(s: &str) -> Priority {
        match s.trim().to_ascii_lowercase().as_str() {
            "required" => Priority::Required,
            "important" => Priority::Important,
            "standard" => Priority::Standard,
            "optional" => Priority::Optional,
            "extra" => Priority::Extra,
            _ => Priority::Other(s.trim().to_string()),
        }
    }
}

/// One binary package as described by a `Packages` index paragraph.
#[derive(Clone, Debug)]
pub struct Package {
    /// `Package`.
    pub name: String,
    /// `Version`.
    pub version: Version,
    /// `Architecture` (`amd64`, `arm64`, `all`, ...).
    pub architecture: String,
    /// `Multi-Arch`.
    pub multi_arch: MultiArch,
    /// `Essential: yes`.
    pub essential: bool,
    /// `Priority`, if present.
    pub priority: Option<Priority>,
    /// Source package name: from `Source`, else the package name.
    pub source: String,
    /// Source version: from `Source: name (version)`, else `version`
    /// (binNMUs like `1.0-1+b1` carry the source version in parentheses).
    pub source_version: Version,
    /// `Depends`.
    pub depends: Vec<RelationGroup>,
    /// `Pre-Depends`.
    pub pre_depends: Vec<RelationGroup>,
    /// `Recommends`.
    pub recommends: Vec<RelationGroup>,
    /// `Provides` (no alternatives allowed).
    pub provides: Vec<Relation>,
    /// `Conflicts`.
    pub conflicts: Vec<Relation>,
    /// `Breaks`.
    pub breaks: Vec<Relation>,
    /// `Replaces`.
    pub replaces: Vec<Relation>,
    /// `Filename`: path of the `.deb` relative to the repository base URL.
    pub filename: String,
    /// `Size` of the `.deb` in bytes.
    pub size: u64,
    /// `SHA256` of the `.deb`, lowercase hex.
    pub sha256: String,
    /// The whole paragraph, kept to write the dpkg status database.
    pub paragraph: Paragraph,
}

/// A `Packages` paragraph that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    /// The document is not valid deb822.
    #[error("Packages index: {0}")]
    Syntax(#[from] crate::control::ParseError),
    /// A paragraph lacks `Package`.
    #[error("Packages index: paragraph {index} has no Package field")]
    NoName {
        /// 1-based position of the paragraph in the index (0 when it was
        /// given alone to [`Package::from_paragraph`]).
        index: usize,
    },
    /// A field of a named package is missing or malformed.
    #[error("package {package} {version}: field {field}: {reason}")]
    Field {
        /// The package name.
        package: String,
        /// Its version as written (may be empty when that is what's wrong).
        version: String,
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Package {
    /// Builds a package from one `Packages` paragraph. `Filename`, `Size`
    /// and `SHA256` are required: a package we cannot verify is useless.
    pub fn from_paragraph(p: Paragraph) -> Result<Package, PackagesError> {
        let name = p
            .get("Package")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(PackagesError::NoName { index: 0 })?
            .to_string();
        let raw_version = p.get("Version").unwrap_or("").trim().to_string();
        let field_err = |field: &'static str, reason: String| PackagesError::Field {
            package: name.clone(),
            version: raw_version.clone(),
            field,
            reason,
        };
        let required = |field: &'static str| {
            p.get(field)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| field_err(field, "missing".into()))
        };
        let version =
            Version::parse(required("Version")?).map_err(|e| field_err("Version", e.reason))?;
        let architecture = required("Architecture")?.to_string();
        let multi_arch = match p.get("Multi-Arch").map(|s| s.trim().to_ascii_lowercase()) {
            None => MultiArch::No,
            Some(s) => match s.as_str() {
                "no" | "" => MultiArch::No,
                "same" => MultiArch::Same,
                "foreign" => MultiArch::Foreign,
                "allowed" => MultiArch::Allowed,
                _ => return Err(field_err("Multi-Arch", format!("unknown value {s:?}"))),
            },
        };
        let essential = p
            .get("Essential")
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("yes"));
        let priority = p.get("Priority").map(Priority::parse);
        let (source, source_version) = match p.get("Source").map(str::trim) {
            None | Some("") => (name.clone(), version.clone()),
            Some(s) => match s.split_once('(') {
                None => (s.to_string(), version.clone()),
                Some((n, v)) => {
                    let v = v.strip_suffix(')').ok_or_else(|| {
                        field_err("Source", format!("unterminated version in {s:?}"))
                    })?;
                    let sv = Version::parse(v).map_err(|e| field_err("Source", e.reason))?;
                    (n.trim().to_string(), sv)
                }
            },
        };
        let groups = |field: &'static str| -> Result<Vec<RelationGroup>, PackagesError> {
            match p.get(field) {
                None => Ok(Vec::new()),
                Some(v) => parse_relations(v).map_err(|e| field_err(field, e.to_string())),
            }
        };
        let list = |field: &'static str| -> Result<Vec<Relation>, PackagesError> {
            match p.get(field) {
                None => Ok(Vec::new()),
                Some(v) => parse_relation_list(v).map_err(|e| field_err(field, e.to_string())),
            }
        };
        let depends = groups("Depends")?;
        let pre_depends = groups("Pre-Depends")?;
        let recommends = groups("Recommends")?;
        let provides = list("Provides")?;
        let conflicts = list("Conflicts")?;
        let breaks = list("Breaks")?;
        let replaces = list("Replaces")?;
        let filename = required("Filename")?.to_string();
        if filename.starts_with('/') || filename.split('/').any(|c| c == "..") {
            // The path is joined to a base URL and used as a cache name.
            return Err(field_err("Filename", format!("unsafe path {filename:?}")));
        }
        let size = required("Size")?
            .parse::<u64>()
            .map_err(|e| field_err("Size", e.to_string()))?;
        let sha256 = required("SHA256")?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(field_err(
                "SHA256",
                format!("not a sha256 hex digest: {sha256:?}"),
            ));
        }
        Ok(Package {
            name,
            version,
            architecture,
            multi_arch,
            essential,
            priority,
            source,
            source_version,
            depends,
            pre_depends,
            recommends,
            provides,
            conflicts,
            breaks,
            replaces,
            filename,
            size,
            sha256,
            paragraph: p,
        })
    }
}

impl fmt::Display for Package {
    /// `name:arch (version)`, the form used in error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} ({})", self.name, self.architecture, self.version)
    }
}

/// Parses a whole (decompressed) `Packages` index.
pub fn parse_packages(text: &str) -> Result<Vec<Package>, PackagesError> {
    parse_paragraphs(text)?
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            Package::from_paragraph(p).map_err(|e| match e {
                PackagesError::NoName { .. } => PackagesError::NoName { index: i + 1 },
                other => other,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_a_record() {
        let text = format!(
            "Package: libpcap0.8t64\nSource: libpcap (1.10.5-2)\nVersion: 1.10.5-2+b1\nArchitecture: amd64\n\
             Multi-Arch: same\nPriority: optional\nPre-Depends: multiarch-support\n\
             Depends: libc6 (>= 2.34), libdbus-1-3 (>= 1.9.14)\nProvides: libpcap0.8 (= 1.10.5-2+b1)\n\
             Breaks: libpcap0.8 (<< 1.10.5-2)\nReplaces: libpcap0.8\nFilename: pool/main/libp/libpcap/x.deb\n\
             Size: 155012\nSHA256: {SHA}\n\nPackage: bash\nVersion: 5.2.37-2\nArchitecture: amd64\n\
             Essential: yes\nPriority: required\nFilename: pool/main/b/bash/bash.deb\nSize: 1\nSHA256: {SHA}\n"
        );
        let ps = parse_packages(&text).unwrap();
        assert_eq!(ps.len(), 2);
        let p = &ps[0];
        assert_eq!(p.source, "libpcap");
        assert_eq!(p.source_version.as_str(), "1.10.5-2");
        assert_eq!(p.multi_arch, MultiArch::Same);
        assert_eq!(p.depends.len(), 2);
        assert_eq!(p.provides[0].name, "libpcap0.8");
        assert_eq!(p.size, 155012);
        assert_eq!(p.paragraph.get("Replaces"), Some("libpcap0.8"));
        let b = &ps[1];
        assert!(b.essential);
        assert_eq!(b.priority, Some(Priority::Required));
        assert_eq!(
            (b.source.as_str(), b.source_version.as_str()),
            ("bash", "5.2.37-2")
        );
    }

    #[test]
    fn errors_name_the_package() {
        let text = format!(
            "Package: foo\nVersion: 1.0\nArchitecture: amd64\nDepends: bar (>= )\nFilename: a.deb\nSize: 1\nSHA256: {SHA}\n"
        );
        let e = parse_packages(&text).unwrap_err().to_string();
        assert!(e.contains("foo") && e.contains("Depends"), "{e}");
        let e = parse_packages("Package: foo\nVersion: 1.0\nArchitecture: amd64\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("foo") && e.contains("Filename"), "{e}");
        let e = parse_packages("Version: 1\n\n").unwrap_err().to_string();
        assert!(e.contains("paragraph 1"), "{e}");
    }
}
