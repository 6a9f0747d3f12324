//! Source package records from a repository's `Sources` index, and the
//! file list of a `.dsc`: what a source build downloads and verifies.

use crate::control::{parse_paragraphs, Paragraph};
use crate::version::Version;

/// One file of a source package (`.dsc`, `.orig.tar.*`, `.debian.tar.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// File name in the package's pool folder.
    pub name: String,
    /// sha256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One source package as a `Sources` paragraph describes it.
#[derive(Clone, Debug)]
pub struct SourcePackage {
    /// `Package` (the source name).
    pub name: String,
    /// `Version`.
    pub version: Version,
    /// `Directory`: the pool folder under the repository's base URL.
    pub directory: String,
    /// `Format` (`3.0 (quilt)`, `1.0`, ...).
    pub format: String,
    /// `Checksums-Sha256`: every file, the `.dsc` among them.
    pub files: Vec<SourceFile>,
    /// The whole paragraph.
    pub paragraph: Paragraph,
}

impl SourcePackage {
    /// The `.dsc` among the files.
    pub fn dsc(&self) -> Option<&SourceFile> {
        self.files.iter().find(|f| f.name.ends_with(".dsc"))
    }
}

/// Why a `Sources` index or a `.dsc` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourcesIndexError {
    /// Not control-file syntax.
    #[error("{0}")]
    Syntax(String),
    /// A paragraph lacks a field or has a malformed one.
    #[error("source package {package:?}: {reason}")]
    Field {
        /// The paragraph's `Package`/`Source` (or `?`).
        package: String,
        /// What is wrong.
        reason: String,
    },
}

/// Reads a `Checksums-Sha256` field: ` SHA256 SIZE NAME` per line.
pub fn parse_checksums(package: &str, field: &str) -> Result<Vec<SourceFile>, SourcesIndexError> {
    let bad = |reason: String| SourcesIndexError::Field {
        package: package.to_string(),
        reason,
    };
    let mut files = Vec::new();
    for line in field.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [sha256, size, name] = parts[..] else {
            return Err(bad(format!(
                "Checksums-Sha256 line {line:?} is not `SHA256 SIZE NAME`"
            )));
        };
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("{name}: {sha256:?} is not a sha256")));
        }
        let size = size
            .parse()
            .map_err(|_| bad(format!("{name}: size {size:?} is not a number")))?;
        // A file name with a path in it would escape the pool folder (or
        // the unpack folder).
        if name.contains('/') || name.starts_with('.') {
            return Err(bad(format!("file name {name:?} is not a plain name")));
        }
        files.push(SourceFile {
            name: name.to_string(),
            sha256: sha256.to_ascii_lowercase(),
            size,
        });
    }
    if files.is_empty() {
        return Err(bad("no Checksums-Sha256 entries".into()));
    }
    Ok(files)
}

/// Parses a `Sources` index.
pub fn parse_sources(text: &str) -> Result<Vec<SourcePackage>, SourcesIndexError> {
    let paragraphs =
        parse_paragraphs(text).map_err(|e| SourcesIndexError::Syntax(e.to_string()))?;
    let mut out = Vec::new();
    for p in paragraphs {
        let name = p.get("Package").unwrap_or("?").to_string();
        let field = |f: &str| {
            p.get(f)
                .map(str::to_string)
                .ok_or_else(|| SourcesIndexError::Field {
                    package: name.clone(),
                    reason: format!("no {f} field"),
                })
        };
        let version_text = field("Version")?;
        let version = Version::parse(&version_text).map_err(|e| SourcesIndexError::Field {
            package: name.clone(),
            reason: format!("Version {version_text:?}: {e}"),
        })?;
        let directory = field("Directory")?;
        if directory.split('/').any(|c| c == "..") || directory.starts_with('/') {
            return Err(SourcesIndexError::Field {
                package: name,
                reason: format!("Directory {directory:?} leaves the repository"),
            });
        }
        let format = p.get("Format").unwrap_or("1.0").to_string();
        let files = parse_checksums(&name, &field("Checksums-Sha256")?)?;
        out.push(SourcePackage {
            name,
            version,
            directory,
            format,
            files,
            paragraph: p,
        });
    }
    Ok(out)
}

/// The newest version of source package `name` in `packages`.
pub fn newest<'a>(packages: &'a [SourcePackage], name: &str) -> Option<&'a SourcePackage> {
    packages
        .iter()
        .filter(|p| p.name == name)
        .max_by(|a, b| a.version.cmp(&b.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "Package: hello
Binary: hello
Version: 2.10-2
Format: 3.0 (quilt)
Directory: pool/main/h/hello
Checksums-Sha256:
 aa5c4e9d2a5a8e4a1b2d1c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a 1000 hello_2.10-2.dsc
 bb5c4e9d2a5a8e4a1b2d1c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a 725946 hello_2.10.orig.tar.gz

Package: hello
Binary: hello
Version: 2.10-3
Format: 3.0 (quilt)
Directory: pool/main/h/hello
Checksums-Sha256:
 cc5c4e9d2a5a8e4a1b2d1c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a 1001 hello_2.10-3.dsc
";

    #[test]
    fn picks_the_newest_and_lists_files() {
        let all = parse_sources(INDEX).unwrap();
        let h = newest(&all, "hello").unwrap();
        assert_eq!(h.version.to_string(), "2.10-3");
        assert_eq!(h.dsc().unwrap().name, "hello_2.10-3.dsc");
        let old = &all[0];
        assert_eq!(old.files.len(), 2);
        assert_eq!(old.files[1].size, 725946);
        assert!(newest(&all, "nope").is_none());
    }

    #[test]
    fn refuses_paths_in_file_names_and_directories() {
        let evil = INDEX.replace("hello_2.10.orig.tar.gz", "../../etc/passwd");
        let e = parse_sources(&evil).unwrap_err().to_string();
        assert!(e.contains("not a plain name"), "{e}");
        let evil = INDEX.replace("Directory: pool/main/h/hello", "Directory: pool/../../x");
        let e = parse_sources(&evil).unwrap_err().to_string();
        assert!(e.contains("leaves the repository"), "{e}");
        let evil = INDEX.replace(" 1000 ", " ten ");
        assert!(parse_sources(&evil).is_err());
    }
}
