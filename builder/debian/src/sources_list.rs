//! The host's apt sources, read to find a Debian mirror without naming one
//! in the repository: the project's rule is that mirrors come from the
//! spec, a flag, the environment or the host's own configuration.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::control::parse_paragraphs;

/// One repository line as apt sees it: a single type, URI and suite
/// (a deb822 stanza with several of each gives several entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// `deb` or `deb-src`.
    pub kind: String,
    /// Base URI, without a trailing `/`.
    pub uri: String,
    /// Suite (codename like `bookworm-security`, or an exact path ending in `/`).
    pub suite: String,
    /// Components (`main`, `contrib`, ...).
    pub components: Vec<String>,
    /// Options (`arch`, `signed-by`, `trusted`, ...), keys lowercased;
    /// deb822 fields other than the five structural ones land here too.
    pub options: BTreeMap<String, String>,
    /// The file it came from.
    pub file: PathBuf,
}

impl SourceEntry {
    /// The `Signed-By` / `signed-by=` value, if any.
    pub fn signed_by(&self) -> Option<&str> {
        self.options.get("signed-by").map(String::as_str)
    }
}

/// A sources file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// The file exists but cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A line or stanza is malformed.
    #[error("{}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line number where there is one.
        reason: String,
    },
}

/// Reads `ROOT/etc/apt/sources.list`, then `ROOT/etc/apt/sources.list.d/`
/// `*.list` and `*.sources` in file-name order (apt's order). Files with
/// other suffixes (`.disabled`, `.save`) are ignored, as apt does. Pass
/// `/` for the host.
pub fn read_sources(root: &Path) -> Result<Vec<SourceEntry>, SourcesError> {
    let etc = root.join("etc/apt");
    let mut out = Vec::new();
    let main = etc.join("sources.list");
    if let Some(text) = read_optional(&main)? {
        out.extend(parse_one_line(&text, &main)?);
    }
    let dir = etc.join("sources.list.d");
    let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|source| SourcesError::Io {
                path: dir.clone(),
                source,
            })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(SourcesError::Io { path: dir, source }),
    };
    files.sort();
    for f in files {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext != "list" && ext != "sources" {
            continue;
        }
        let Some(text) = read_optional(&f)? else {
            continue;
        };
        if ext == "list" {
            out.extend(parse_one_line(&text, &f)?);
        } else {
            out.extend(parse_deb822(&text, &f)?);
        }
    }
    Ok(out)
}

fn read_optional(path: &Path) -> Result<Option<String>, SourcesError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SourcesError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn norm_uri(u: &str) -> String {
    u.trim_end_matches('/').to_string()
}

/// Parses the one-line format: `deb [opt=val ...] URI SUITE [COMP...]`.
pub fn parse_one_line(text: &str, file: &Path) -> Result<Vec<SourceEntry>, SourcesError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let syntax = |reason: &str| SourcesError::Syntax {
            path: file.to_path_buf(),
            reason: format!("line {}: {reason}: {raw:?}", n + 1),
        };
        let (kind, mut rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| syntax("expected `deb URI SUITE [COMPONENTS]`"))?;
        if kind != "deb" && kind != "deb-src" {
            return Err(syntax("type must be deb or deb-src"));
        }
        rest = rest.trim_start();
        let mut options = BTreeMap::new();
        if let Some(r) = rest.strip_prefix('[') {
            let (opts, after) = r
                .split_once(']')
                .ok_or_else(|| syntax("unterminated [options]"))?;
            for o in opts.split_whitespace() {
                let (k, v) = o
                    .split_once('=')
                    .ok_or_else(|| syntax("option without `=`"))?;
                // `arch+=x` / `arch-=x` adjust defaults; keep the value.
                let k = k.trim_end_matches(['+', '-']).to_ascii_lowercase();
                options.insert(k, v.to_string());
            }
            rest = after;
        }
        let mut words = rest.split_whitespace();
        let uri = words.next().ok_or_else(|| syntax("missing URI"))?;
        let suite = words.next().ok_or_else(|| syntax("missing suite"))?;
        let components: Vec<String> = words.map(str::to_string).collect();
        if components.is_empty() && !suite.ends_with('/') {
            return Err(syntax("missing components"));
        }
        out.push(SourceEntry {
            kind: kind.to_string(),
            uri: norm_uri(uri),
            suite: suite.to_string(),
            components,
            options,
            file: file.to_path_buf(),
        });
    }
    Ok(out)
}

/// Parses the deb822 format (`*.sources`); stanzas with `Enabled: no`
/// are skipped.
pub fn parse_deb822(text: &str, file: &Path) -> Result<Vec<SourceEntry>, SourcesError> {
    let paras = parse_paragraphs(text).map_err(|e| SourcesError::Syntax {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, p) in paras.iter().enumerate() {
        if p.get("Enabled")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let syntax = |reason: String| SourcesError::Syntax {
            path: file.to_path_buf(),
            reason: format!("stanza {}: {reason}", i + 1),
        };
        let words = |f: &str| -> Vec<String> {
            p.get(f)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let types = words("Types");
        let uris = words("URIs");
        let suites = words("Suites");
        let components = words("Components");
        if types.is_empty() || uris.is_empty() || suites.is_empty() {
            return Err(syntax("needs Types, URIs and Suites".into()));
        }
        if let Some(t) = types.iter().find(|t| *t != "deb" && *t != "deb-src") {
            return Err(syntax(format!("unknown type {t:?}")));
        }
        let mut options = BTreeMap::new();
        for (k, v) in p.fields() {
            let k = k.to_ascii_lowercase();
            if !["types", "uris", "suites", "components", "enabled"].contains(&k.as_str()) {
                options.insert(k, v.trim().to_string());
            }
        }
        for t in &types {
            for u in &uris {
                for s in &suites {
                    if components.is_empty() && !s.ends_with('/') {
                        return Err(syntax(format!("suite {s:?} needs Components")));
                    }
                    out.push(SourceEntry {
                        kind: t.clone(),
                        uri: norm_uri(u),
                        suite: s.clone(),
                        components: components.clone(),
                        options: options.clone(),
                        file: file.to_path_buf(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Debian codenames and suite aliases, used to tell the Debian archive
/// from third-party repositories (which also tend to use `main`).
const DEBIAN_SUITES: &[&str] = &[
    "stretch",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "stable",
    "testing",
    "unstable",
    "oldstable",
    "oldoldstable",
    "experimental",
];

fn is_http_like(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("file:")
}

/// The base URI to fetch `suite` from, taken from the host's entries.
///
/// A security suite (`*-security`) maps to the host's security entry,
/// whatever its codename: the host may run bookworm while the image wants
/// trixie-security, and both live under the same base URI. Any other suite
/// maps to the host's main Debian archive: the entry whose suite is a
/// plain Debian codename (preferred) or a derived one (`-updates`,
/// `-backports`). Only `deb` entries over http(s) or file count.
pub fn mirror_for_suite(entries: &[SourceEntry], suite: &str) -> Option<String> {
    let usable = entries
        .iter()
        .filter(|e| e.kind == "deb" && is_http_like(&e.uri));
    if suite.ends_with("-security") {
        return usable
            .clone()
            .find(|e| e.suite.ends_with("-security"))
            .or_else(|| usable.clone().find(|e| e.suite.ends_with("/updates")))
            .map(|e| e.uri.clone());
    }
    let debian = |e: &&SourceEntry| {
        let base = e.suite.split('-').next().unwrap_or("");
        DEBIAN_SUITES.contains(&base) && !e.suite.ends_with("-security")
    };
    usable
        .clone()
        .filter(debian)
        .find(|e| !e.suite.contains('-'))
        .or_else(|| usable.clone().find(debian))
        .map(|e| e.uri.clone())
}
