//! Software bills of materials for one platform image, in SPDX 2.3 JSON and
//! CycloneDX 1.5 JSON.
//!
//! Both documents are deterministic: the same [`SbomInput`] always gives the
//! same bytes. The only time stamp is the caller's `created`; the SPDX
//! document namespace and the CycloneDX serial number are derived from a
//! sha256 of the document's own content, never drawn at random.
//!
//! The package lists come from the image's `/var/lib/dpkg/status` (with the
//! licenses read from Debian's machine-readable copyright files), from a
//! `Cargo.lock`, and from the spec's plain downloads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Where a package comes from; decides its purl type and its id prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PackageKind {
    /// A Debian binary package installed by dpkg.
    Deb,
    /// A Rust crate compiled into one of the image's binaries.
    Cargo,
    /// A file downloaded from a URL.
    Generic,
}

impl PackageKind {
    fn as_str(&self) -> &'static str {
        match self {
            PackageKind::Deb => "deb",
            PackageKind::Cargo => "cargo",
            PackageKind::Generic => "generic",
        }
    }
}

/// One package of the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomPackage {
    /// Origin of the package.
    pub kind: PackageKind,
    /// Package name.
    pub name: String,
    /// Package version, as its ecosystem writes it.
    pub version: String,
    /// Debian: the `Architecture` field (`amd64`, `all`, ...).
    pub arch: Option<String>,
    /// Debian: the source package name, when it differs from `name`.
    pub source: Option<String>,
    /// A valid SPDX license expression; `None` is written as NOASSERTION.
    pub license: Option<String>,
    /// Hex sha256: the `.crate` checksum for cargo, the download's for generic.
    pub sha256: Option<String>,
    /// Where a generic package was downloaded from.
    pub download_url: Option<String>,
    /// [`pkg_ref`]s of other packages of the same SBOM this one needs.
    pub depends_on: Vec<String>,
}

/// Everything one platform image's SBOM is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomInput {
    /// Image name, e.g. `netshoot`.
    pub image_name: String,
    /// Image version, e.g. `1.0.0`.
    pub image_version: String,
    /// OCI platform, e.g. `linux/amd64`.
    pub platform: String,
    /// `sha256:<hex>` of the platform's image manifest.
    pub subject_digest: String,
    /// RFC 3339 creation time, e.g. `2025-11-28T00:00:00Z`.
    pub created: String,
    /// Distribution qualifier of Debian purls, e.g. `debian-13`.
    pub distro: String,
    /// The packages of the image.
    pub packages: Vec<SbomPackage>,
}

const TOOL_NAME: &str = "netshoot-build";
const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
const SPDX_IMAGE_ID: &str = "SPDXRef-image";
const CDX_IMAGE_REF: &str = "image";
const NOASSERTION: &str = "NOASSERTION";

/// The stable id of a package: its SPDXID, its CycloneDX `bom-ref`, and
/// what [`SbomPackage::depends_on`] lists, e.g.
/// `SPDXRef-deb-bash-5.2.37-2-amd64`. Only `[A-Za-z0-9.-]` is kept; when
/// another character had to be replaced, a short hash of the exact
/// (kind, name, version, arch) is appended so that different packages
/// never share an id.
pub fn pkg_ref(kind: &PackageKind, name: &str, version: &str, arch: Option<&str>) -> String {
    let arch = arch.filter(|a| !a.is_empty());
    let mut raw = format!("{}-{}-{}", kind.as_str(), name, version);
    if let Some(a) = arch {
        raw.push('-');
        raw.push_str(a);
    }
    let mut out = String::from("SPDXRef-");
    let mut lossy = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            out.push(c);
        } else {
            out.push('.');
            lossy = true;
        }
    }
    if lossy {
        let mut h = Sha256::new();
        for part in [kind.as_str(), name, version, arch.unwrap_or("")] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        out.push('-');
        out.push_str(&hex::encode(&h.finalize()[..4]));
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A hex sha256 in canonical (lowercase) form, or `None` when `s` is not
/// one. A leading `sha256:` is accepted.
fn clean_sha256(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// `name@version` of a purl, the version left out when empty.
fn purl_name_version(name: &str, version: &str) -> String {
    if version.is_empty() {
        pct(name)
    } else {
        format!("{}@{}", pct(name), pct(version))
    }
}

fn with_qualifiers(mut base: String, qualifiers: &[String]) -> String {
    if !qualifiers.is_empty() {
        base.push('?');
        base.push_str(&qualifiers.join("&"));
    }
    base
}

/// The package URL of `p`:
/// - deb: `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=DISTRO`
/// - cargo: `pkg:cargo/NAME@VERSION`
/// - generic: `pkg:generic/NAME@VERSION?checksum=sha256:HEX&download_url=URL`
///
/// Names, versions and qualifier values are percent-encoded (an epoch's
/// `:` becomes `%3A`, `+` becomes `%2B`); qualifiers are sorted by key.
pub fn purl(p: &SbomPackage, distro: &str) -> String {
    match p.kind {
        PackageKind::Deb => {
            let base = format!(
                "pkg:deb/debian/{}",
                purl_name_version(&p.name.to_ascii_lowercase(), &p.version)
            );
            let mut q = Vec::new();
            if let Some(a) = p.arch.as_deref().filter(|a| !a.is_empty()) {
                q.push(format!("arch={}", pct(a)));
            }
            if !distro.is_empty() {
                q.push(format!("distro={}", pct(distro)));
            }
            with_qualifiers(base, &q)
        }
        PackageKind::Cargo => format!("pkg:cargo/{}", purl_name_version(&p.name, &p.version)),
        PackageKind::Generic => {
            let base = format!("pkg:generic/{}", purl_name_version(&p.name, &p.version));
            let mut q = Vec::new();
            if let Some(h) = p.sha256.as_deref().and_then(clean_sha256) {
                q.push(format!("checksum=sha256:{h}"));
            }
            if let Some(u) = p.download_url.as_deref().filter(|u| !u.is_empty()) {
                q.push(format!("download_url={}", pct(u)));
            }
            with_qualifiers(base, &q)
        }
    }
}

/// The purl of the image itself: `pkg:oci/NAME@DIGEST?arch=ARCH`.
fn image_purl(input: &SbomInput) -> String {
    let arch = input.platform.split('/').nth(1).unwrap_or(&input.platform);
    let base = format!(
        "pkg:oci/{}",
        purl_name_version(
            &input.image_name.to_ascii_lowercase(),
            &input.subject_digest
        )
    );
    if arch.is_empty() {
        base
    } else {
        with_qualifiers(base, &[format!("arch={}", pct(arch))])
    }
}

// ---------------------------------------------------------------------------
// License expressions

#[derive(Clone, Debug, PartialEq, Eq)]
enum LicTok {
    Open,
    Close,
    And,
    Or,
    With,
    Id(String),
}

fn tokenize_expression(expr: &str) -> Vec<LicTok> {
    let mut toks = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, toks: &mut Vec<LicTok>| {
        if word.is_empty() {
            return;
        }
        let w = std::mem::take(word);
        toks.push(if w.eq_ignore_ascii_case("and") {
            LicTok::And
        } else if w.eq_ignore_ascii_case("or") {
            LicTok::Or
        } else if w.eq_ignore_ascii_case("with") {
            LicTok::With
        } else {
            LicTok::Id(w)
        });
    };
    for c in expr.chars() {
        match c {
            '(' | ')' => {
                flush(&mut word, &mut toks);
                toks.push(if c == '(' {
                    LicTok::Open
                } else {
                    LicTok::Close
                });
            }
            c if c.is_whitespace() => flush(&mut word, &mut toks),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut toks);
    toks
}

/// A license id: `[A-Za-z0-9.-]+`, optionally ending in one `+`.
fn valid_license_id(id: &str) -> bool {
    let core = id.strip_suffix('+').unwrap_or(id);
    !core.is_empty()
        && core
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Recursive-descent check of `expr := and (OR and)*`,
/// `and := unary (AND unary)*`, `unary := '(' expr ')' | id [WITH id]`,
/// writing the normalised text into `out`.
struct ExprParser<'a> {
    toks: &'a [LicTok],
    pos: usize,
    out: String,
}

impl ExprParser<'_> {
    fn peek(&self) -> Option<&LicTok> {
        self.toks.get(self.pos)
    }

    fn expr(&mut self, depth: usize) -> Option<()> {
        if depth > 32 {
            return None;
        }
        self.and_expr(depth)?;
        while self.peek() == Some(&LicTok::Or) {
            self.pos += 1;
            self.out.push_str(" OR ");
            self.and_expr(depth)?;
        }
        Some(())
    }

    fn and_expr(&mut self, depth: usize) -> Option<()> {
        self.unary(depth)?;
        while self.peek() == Some(&LicTok::And) {
            self.pos += 1;
            self.out.push_str(" AND ");
            self.unary(depth)?;
        }
        Some(())
    }

    fn unary(&mut self, depth: usize) -> Option<()> {
        match self.peek()?.clone() {
            LicTok::Open => {
                self.pos += 1;
                self.out.push('(');
                self.expr(depth + 1)?;
                if self.peek() != Some(&LicTok::Close) {
                    return None;
                }
                self.pos += 1;
                self.out.push(')');
                Some(())
            }
            LicTok::Id(id) if valid_license_id(&id) => {
                self.pos += 1;
                match id.strip_suffix('+') {
                    // The deprecated `+` suffix: the GNU licenses have an
                    // `-or-later` id; validators reject it on the others.
                    Some(core) => {
                        let gnu = ["GPL-", "LGPL-", "AGPL-", "GFDL-"]
                            .iter()
                            .any(|f| core.starts_with(f));
                        if !gnu || core.ends_with("-only") || core.ends_with("-or-later") {
                            return None;
                        }
                        self.out.push_str(core);
                        self.out.push_str("-or-later");
                    }
                    None => self.out.push_str(&id),
                }
                if self.peek() == Some(&LicTok::With) {
                    self.pos += 1;
                    let toks = self.toks;
                    match toks.get(self.pos) {
                        Some(LicTok::Id(exc)) if valid_license_id(exc) && !exc.ends_with('+') => {
                            self.out.push_str(" WITH ");
                            self.out.push_str(exc);
                            self.pos += 1;
                        }
                        _ => return None,
                    }
                }
                Some(())
            }
            _ => None,
        }
    }
}

/// `expr` when it is a well-formed SPDX expression (operators upper-cased,
/// spacing normalised), else `None`.
fn normalize_expression(expr: &str) -> Option<String> {
    let toks = tokenize_expression(expr);
    if toks.is_empty() {
        return None;
    }
    let mut p = ExprParser {
        toks: &toks,
        pos: 0,
        out: String::new(),
    };
    p.expr(0)?;
    (p.pos == toks.len()).then_some(p.out)
}

/// The SPDX expression of a crate's `license` field: the old
/// `MIT/Apache-2.0` form becomes `MIT OR Apache-2.0`; an expression is
/// kept when every id is `[A-Za-z0-9.+-]+` and the operators are
/// AND/OR/WITH with balanced parentheses. Anything else gives `None`.
pub fn cargo_license(expr: &str) -> Option<String> {
    let expr = expr.trim();
    if expr.contains('/') {
        normalize_expression(&expr.replace('/', " OR "))
    } else {
        normalize_expression(expr)
    }
}

/// Debian short license names (compared without regard to case) that are
/// not a GPL-family name, with their SPDX equivalent.
const DEBIAN_LICENSES: &[(&str, &str)] = &[
    ("0bsd", "0BSD"),
    ("afl-2.1", "AFL-2.1"),
    ("apache-1.0", "Apache-1.0"),
    ("apache-1.1", "Apache-1.1"),
    ("apache-2", "Apache-2.0"),
    ("apache-2.0", "Apache-2.0"),
    ("apache-2-llvm-exceptions", "Apache-2.0 WITH LLVM-exception"),
    ("artistic", "Artistic-1.0"),
    ("artistic-1", "Artistic-1.0"),
    ("artistic-1.0", "Artistic-1.0"),
    ("artistic-2", "Artistic-2.0"),
    ("artistic-2.0", "Artistic-2.0"),
    ("bsd-2-clause", "BSD-2-Clause"),
    ("bsd-3-clause", "BSD-3-Clause"),
    ("bsd-3-clause-clear", "BSD-3-Clause-Clear"),
    ("bsd-4-clause", "BSD-4-Clause"),
    ("bsl-1.0", "BSL-1.0"),
    ("cc-by-3.0", "CC-BY-3.0"),
    ("cc-by-4.0", "CC-BY-4.0"),
    ("cc-by-sa-3.0", "CC-BY-SA-3.0"),
    ("cc-by-sa-4.0", "CC-BY-SA-4.0"),
    ("cc0-1.0", "CC0-1.0"),
    ("cddl-1.0", "CDDL-1.0"),
    ("curl", "curl"),
    ("epl-1.0", "EPL-1.0"),
    ("epl-2.0", "EPL-2.0"),
    ("expat", "MIT"),
    ("fsfap", "FSFAP"),
    ("fsful", "FSFUL"),
    ("fsfullr", "FSFULLR"),
    ("ftl", "FTL"),
    ("icu", "ICU"),
    ("ijg", "IJG"),
    ("isc", "ISC"),
    ("libpng", "Libpng"),
    ("lppl-1.3c", "LPPL-1.3c"),
    ("mit", "MIT"),
    ("mit-0", "MIT-0"),
    ("mpl-1.0", "MPL-1.0"),
    ("mpl-1.1", "MPL-1.1"),
    ("mpl-2.0", "MPL-2.0"),
    ("ncsa", "NCSA"),
    ("ofl-1.1", "OFL-1.1"),
    ("openldap-2.8", "OLDAP-2.8"),
    ("openssl", "OpenSSL"),
    ("postgresql", "PostgreSQL"),
    ("psf-2", "PSF-2.0"),
    ("psf-2.0", "PSF-2.0"),
    ("python-2.0", "Python-2.0"),
    ("sleepycat", "Sleepycat"),
    ("tcl", "TCL"),
    ("unicode-dfs-2015", "Unicode-DFS-2015"),
    ("unicode-dfs-2016", "Unicode-DFS-2016"),
    ("unlicense", "Unlicense"),
    ("vim", "Vim"),
    ("w3c", "W3C"),
    ("wtfpl", "WTFPL"),
    ("x11", "X11"),
    ("zlib", "Zlib"),
    ("zpl-2.1", "ZPL-2.1"),
];

/// A GPL-family Debian name (`GPL-2`, `GPL-2+`, `LGPL-2.1+`, `AGPL-3`,
/// `GFDL-1.3+`, or the SPDX spellings `GPL-2.0`, `GPL-2.0+`,
/// `GPL-2.0-only`, `GPL-2.0-or-later`) in SPDX form.
fn map_gnu_license(name: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    let (family, rest) = upper.split_once('-')?;
    let family = match family {
        "GPL" => "GPL",
        "LGPL" => "LGPL",
        "AGPL" => "AGPL",
        "GFDL" => "GFDL",
        _ => return None,
    };
    let (ver, later) = if let Some(v) = rest.strip_suffix("-OR-LATER") {
        (v, true)
    } else if let Some(v) = rest.strip_suffix("-ONLY") {
        (v, false)
    } else if let Some(v) = rest.strip_suffix('+') {
        (v, true)
    } else {
        (rest, false)
    };
    let ver = match ver {
        "1" | "1.0" => "1.0",
        "2" | "2.0" => "2.0",
        "2.1" => "2.1",
        "3" | "3.0" => "3.0",
        "1.1" => "1.1",
        "1.2" => "1.2",
        "1.3" => "1.3",
        _ => return None,
    };
    let known = match family {
        "GPL" => ["1.0", "2.0", "3.0"].contains(&ver),
        "LGPL" => ["2.0", "2.1", "3.0"].contains(&ver),
        "AGPL" => ["1.0", "3.0"].contains(&ver),
        _ => ["1.1", "1.2", "1.3"].contains(&ver),
    };
    known.then(|| format!("{family}-{ver}-{}", if later { "or-later" } else { "only" }))
}

/// One Debian short license name in SPDX form.
fn map_debian_license(name: &str) -> Option<String> {
    if let Some(spdx) = map_gnu_license(name) {
        return Some(spdx);
    }
    let lower = name.to_ascii_lowercase();
    DEBIAN_LICENSES
        .iter()
        .find(|(deb, _)| *deb == lower)
        .map(|(_, spdx)| spdx.to_string())
}

/// One comma-free part of a DEP-5 `License:` line (`A or B and C`) in SPDX
/// form, and whether it holds an operator. `and` binds tighter than `or`
/// in both languages, so the operators carry over as they are.
fn map_debian_segment(seg: &str) -> Option<(String, bool)> {
    let words: Vec<&str> = seg.split_whitespace().collect();
    // Names and operators alternate, starting and ending with a name.
    if words.len() % 2 != 1 {
        return None;
    }
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i % 2 == 1 {
            if w.eq_ignore_ascii_case("and") {
                out.push_str(" AND ");
            } else if w.eq_ignore_ascii_case("or") {
                out.push_str(" OR ");
            } else {
                return None;
            }
        } else {
            let spdx = map_debian_license(w)?;
            if spdx.contains(' ') && words.len() > 1 {
                let _ = write!(out, "({spdx})");
            } else {
                out.push_str(&spdx);
            }
        }
    }
    Some((out, words.len() > 1))
}

/// A DEP-5 `License:` short-name line (`GPL-2+ or Artistic, and BSD-3-clause`)
/// as an SPDX expression; `None` when any part has no SPDX equivalent.
fn map_debian_expression(line: &str) -> Option<String> {
    let mut out = String::new();
    let parts: Vec<&str> = line.split(',').collect();
    let many = parts.len() > 1;
    for (i, part) in parts.iter().enumerate() {
        let part = part.trim();
        let seg = if i == 0 {
            part
        } else {
            let (op, rest) = part.split_once(char::is_whitespace)?;
            if op.eq_ignore_ascii_case("and") {
                out.push_str(" AND ");
            } else if op.eq_ignore_ascii_case("or") {
                out.push_str(" OR ");
            } else {
                return None;
            }
            rest
        };
        let (spdx, compound) = map_debian_segment(seg)?;
        if many && compound {
            let _ = write!(out, "({spdx})");
        } else {
            out.push_str(&spdx);
        }
    }
    // Never hand out something that is not a well-formed expression.
    normalize_expression(&out)
}

/// deb822 paragraphs read leniently by [`debian::control::parse_paragraphs`]:
/// a line that fits no field (a comment included) is dropped first, with
/// the continuation lines after it, rather than failing the whole text.
fn lenient_paragraphs(text: &str) -> Vec<debian::control::Paragraph> {
    let mut kept = String::with_capacity(text.len());
    let mut in_field = false;
    for raw in text.lines() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let keep = if line.trim().is_empty() {
            in_field = false;
            true
        } else if line.starts_with([' ', '\t']) {
            in_field
        } else {
            in_field = !line.starts_with('#')
                && line
                    .split_once(':')
                    .is_some_and(|(n, _)| !n.is_empty() && !n.contains(char::is_whitespace));
            in_field
        };
        if keep {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    // What is left always parses.
    debian::control::parse_paragraphs(&kept).unwrap_or_default()
}

/// The license of a package from its Debian machine-readable copyright file
/// (DEP-5): the short name on the first line of the `License:` field of the
/// `Files: *` paragraph, in SPDX form. `None` when the file is not
/// machine-readable, has no such paragraph, names public domain, or names
/// anything without an SPDX equivalent.
pub fn license_from_copyright(text: &str) -> Option<String> {
    let paras = lenient_paragraphs(text);
    let header = paras.first()?;
    let format = header
        .get("Format")
        .or_else(|| header.get("Format-Specification"))?;
    if format.trim().is_empty() {
        return None;
    }
    let files_star = paras.iter().skip(1).find(|p| {
        p.get("Files")
            .is_some_and(|f| f.split_whitespace().any(|t| t == "*"))
    })?;
    let license = files_star.get("License")?;
    let short = license.lines().next()?.trim();
    map_debian_expression(short)
}

// ---------------------------------------------------------------------------
// dpkg status

/// The deb822 paragraphs of `text`; when the whole does not parse, each
/// blank-line separated chunk is parsed alone and the bad ones are dropped.
fn status_paragraphs(text: &str) -> Vec<debian::control::Paragraph> {
    if let Ok(ps) = debian::control::parse_paragraphs(text) {
        return ps;
    }
    let mut out = Vec::new();
    let mut chunk = String::new();
    let take = |chunk: &mut String, out: &mut Vec<debian::control::Paragraph>| {
        if let Ok(ps) = debian::control::parse_paragraphs(chunk) {
            out.extend(ps);
        }
        chunk.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            take(&mut chunk, &mut out);
        } else {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    take(&mut chunk, &mut out);
    out
}

/// The package name of one relation alternative (`libc6:any (>= 2.36)`):
/// no arch qualifier, version constraint, arch list or profile.
fn relation_name(alt: &str) -> (&str, Option<&str>) {
    let alt = alt.trim();
    let end = alt
        .find(|c: char| c.is_whitespace() || "([<".contains(c))
        .unwrap_or(alt.len());
    let full = &alt[..end];
    match full.split_once(':') {
        Some((n, q)) => (n, Some(q)),
        None => (full, None),
    }
}

/// One installed package of a dpkg `status` file.
struct Installed {
    name: String,
    version: String,
    arch: Option<String>,
    source: Option<String>,
    /// `Pre-Depends` and `Depends`, joined by a comma.
    relations: String,
    id: String,
}

impl Installed {
    /// The package of one `status` paragraph and the names it provides;
    /// `None` unless its `Status` ends in `installed` and it has a name and
    /// a version.
    fn from_status(para: &debian::control::Paragraph) -> Option<(Installed, Vec<String>)> {
        let installed = para
            .get("Status")
            .and_then(|s| s.split_whitespace().last())
            .is_some_and(|w| w == "installed");
        let (name, version) = (para.get("Package")?.trim(), para.get("Version")?.trim());
        if !installed || name.is_empty() || version.is_empty() {
            return None;
        }
        let arch = para
            .get("Architecture")
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        let source = para
            .get("Source")
            .and_then(|s| s.split_whitespace().next())
            .filter(|s| *s != name)
            .map(str::to_string);
        let mut relations = String::new();
        for field in ["Pre-Depends", "Depends"] {
            if let Some(v) = para.get(field) {
                if !relations.is_empty() {
                    relations.push(',');
                }
                relations.push_str(v);
            }
        }
        let provides = para
            .get("Provides")
            .unwrap_or("")
            .split(',')
            .map(|prov| relation_name(prov).0)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        let id = pkg_ref(&PackageKind::Deb, name, version, arch.as_deref());
        let pkg = Installed {
            name: name.to_string(),
            version: version.to_string(),
            arch,
            source,
            relations,
            id,
        };
        Some((pkg, provides))
    }
}

/// The installed packages, found by name and by the names they provide.
struct DebIndex<'a> {
    pkgs: &'a [Installed],
    by_name: BTreeMap<&'a str, Vec<usize>>,
    by_provides: BTreeMap<&'a str, Vec<usize>>,
}

impl<'a> DebIndex<'a> {
    /// `provides` holds (name, index in `pkgs`) pairs.
    fn new(pkgs: &'a [Installed], provides: &'a [(String, usize)]) -> Self {
        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, p) in pkgs.iter().enumerate() {
            by_name.entry(p.name.as_str()).or_default().push(i);
        }
        let mut by_provides: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (n, i) in provides {
            by_provides.entry(n.as_str()).or_default().push(*i);
        }
        DebIndex {
            pkgs,
            by_name,
            by_provides,
        }
    }

    /// Among several candidates, prefer the one whose architecture is the
    /// qualifier's, then the depender's, then `all`, then the lowest name.
    fn choose(&self, cands: &[usize], want: Option<&str>, from: Option<&str>) -> Option<usize> {
        cands.iter().copied().min_by_key(|&i| {
            let a = self.pkgs[i].arch.as_deref();
            let rank = if want.is_some() && a == want {
                0
            } else if a == from {
                1
            } else if a == Some("all") {
                2
            } else {
                3
            };
            (
                rank,
                self.pkgs[i].name.as_str(),
                self.pkgs[i].version.as_str(),
                i,
            )
        })
    }

    /// The ids of what package `me` depends on: each alternative group goes
    /// to its first alternative that is installed, by name or through
    /// `Provides`, other than `me`; unresolvable groups are dropped.
    fn depends_on(&self, me: usize) -> Vec<String> {
        let p = &self.pkgs[me];
        let mut deps = BTreeSet::new();
        for group in p.relations.split(',') {
            for alt in group.split('|') {
                let (name, qual) = relation_name(alt);
                if name.is_empty() {
                    continue;
                }
                let want = qual.filter(|q| *q != "any" && *q != "native");
                let from = p.arch.as_deref();
                let hit = self
                    .by_name
                    .get(name)
                    .and_then(|c| self.choose(c, want, from))
                    .or_else(|| {
                        let c = self.by_provides.get(name)?;
                        self.choose(c, want, from)
                    });
                if let Some(i) = hit {
                    if i != me {
                        deps.insert(self.pkgs[i].id.clone());
                    }
                    break;
                }
            }
        }
        deps.into_iter().collect()
    }
}

/// The Debian packages installed according to a dpkg `status` file. Only
/// paragraphs whose `Status` ends in `installed` count. `Depends` and
/// `Pre-Depends` become `depends_on` edges: each alternative group goes to
/// its first alternative that is installed, by name or through `Provides`;
/// unresolvable groups are dropped. `copyright_of(name)` gives the text of
/// `/usr/share/doc/NAME/copyright`, whose DEP-5 license is used.
pub fn debs_from_dpkg_status(
    status: &str,
    copyright_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<SbomPackage> {
    let mut pkgs: Vec<Installed> = Vec::new();
    let mut provides: Vec<(String, usize)> = Vec::new();
    for (pkg, names) in status_paragraphs(status)
        .iter()
        .filter_map(Installed::from_status)
    {
        provides.extend(names.into_iter().map(|n| (n, pkgs.len())));
        pkgs.push(pkg);
    }
    let index = DebIndex::new(&pkgs, &provides);
    let mut out: Vec<SbomPackage> = pkgs
        .iter()
        .enumerate()
        .map(|(me, p)| SbomPackage {
            kind: PackageKind::Deb,
            name: p.name.clone(),
            version: p.version.clone(),
            arch: p.arch.clone(),
            source: p.source.clone(),
            license: copyright_of(&p.name).and_then(|t| license_from_copyright(&t)),
            sha256: None,
            download_url: None,
            depends_on: index.depends_on(me),
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.version, &a.arch).cmp(&(&b.name, &b.version, &b.arch)));
    out
}

// ---------------------------------------------------------------------------
// Cargo.lock

#[derive(Deserialize, Default)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// The `[[package]]` tables of a Cargo.lock; when the whole does not parse,
/// each table is parsed alone and the bad ones are dropped.
fn lock_packages(text: &str) -> Vec<LockPackage> {
    if let Ok(lock) = toml::from_str::<LockFile>(text) {
        return lock.package;
    }
    let mut out = Vec::new();
    let mut chunk = String::new();
    let take = |chunk: &mut String, out: &mut Vec<LockPackage>| {
        if chunk.starts_with("[[package]]") {
            if let Ok(lock) = toml::from_str::<LockFile>(chunk) {
                out.extend(lock.package);
            }
        }
        chunk.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with('[') {
            take(&mut chunk, &mut out);
        }
        chunk.push_str(line);
        chunk.push('\n');
    }
    take(&mut chunk, &mut out);
    out
}

/// The crates of a Cargo.lock (v3/v4). Each `dependencies` entry (`name`,
/// `name version` or `name version (source)`) becomes a `depends_on` edge
/// to the package it names. `sha256` is the `.crate` checksum. The crate
/// named `root_crate` gets `root_license`; every other one
/// `license_of(name, version)`; both go through [`cargo_license`].
pub fn cargo_packages(
    cargo_lock_text: &str,
    root_crate: &str,
    root_license: Option<&str>,
    license_of: &dyn Fn(&str, &str) -> Option<String>,
) -> Vec<SbomPackage> {
    let lock = lock_packages(cargo_lock_text);
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in lock.iter().enumerate() {
        by_name.entry(p.name.as_str()).or_default().push(i);
    }
    let resolve = |entry: &str| -> Option<usize> {
        let mut words = entry.split_whitespace();
        let name = words.next()?;
        let version = words.next();
        let source = entry
            .split_once('(')
            .map(|(_, s)| s.trim_end().trim_end_matches(')'));
        let cands: Vec<usize> = by_name
            .get(name)?
            .iter()
            .copied()
            .filter(|&i| version.is_none_or(|v| lock[i].version == v))
            .collect();
        match (cands.len(), source) {
            (0, _) => None,
            (1, _) | (_, None) => cands.first().copied(),
            (_, Some(src)) => cands
                .iter()
                .copied()
                .find(|&i| lock[i].source.as_deref() == Some(src))
                .or_else(|| cands.first().copied()),
        }
    };
    let mut out = Vec::with_capacity(lock.len());
    for p in &lock {
        let mut deps = BTreeSet::new();
        for d in &p.dependencies {
            if let Some(i) = resolve(d) {
                deps.insert(pkg_ref(
                    &PackageKind::Cargo,
                    &lock[i].name,
                    &lock[i].version,
                    None,
                ));
            }
        }
        let license = if p.name == root_crate {
            root_license.and_then(cargo_license)
        } else {
            license_of(&p.name, &p.version).and_then(|l| cargo_license(&l))
        };
        out.push(SbomPackage {
            kind: PackageKind::Cargo,
            name: p.name.clone(),
            version: p.version.clone(),
            arch: None,
            source: None,
            license,
            sha256: p.checksum.as_deref().and_then(clean_sha256),
            download_url: None,
            depends_on: deps.into_iter().collect(),
        });
    }
    out
}

// ---------------------------------------------------------------------------
// Documents

/// A package ready to be written: sorted, deduplicated by id, with the
/// edges to packages outside the SBOM (or to itself) dropped.
struct Prepared<'a> {
    pkg: &'a SbomPackage,
    id: String,
    purl: String,
    license: Option<String>,
    sha256: Option<String>,
    deps: Vec<String>,
}

fn prepare(input: &SbomInput) -> Vec<Prepared<'_>> {
    let mut list: Vec<(&SbomPackage, String)> = input
        .packages
        .iter()
        .filter(|p| !p.name.trim().is_empty())
        .map(|p| {
            let id = pkg_ref(&p.kind, &p.name, &p.version, p.arch.as_deref());
            (p, id)
        })
        .collect();
    list.sort_by(|(a, ia), (b, ib)| {
        (
            &a.name,
            &a.version,
            a.arch.as_deref().unwrap_or(""),
            a.kind,
            ia,
        )
            .cmp(&(
                &b.name,
                &b.version,
                b.arch.as_deref().unwrap_or(""),
                b.kind,
                ib,
            ))
    });
    let mut seen = BTreeSet::new();
    list.retain(|(_, id)| seen.insert(id.clone()));
    list.into_iter()
        .map(|(pkg, id)| {
            let deps: BTreeSet<String> = pkg
                .depends_on
                .iter()
                .filter(|d| **d != id && seen.contains(*d))
                .cloned()
                .collect();
            Prepared {
                purl: purl(pkg, &input.distro),
                license: pkg.license.as_deref().and_then(normalize_expression),
                sha256: pkg.sha256.as_deref().and_then(clean_sha256),
                deps: deps.into_iter().collect(),
                pkg,
                id,
            }
        })
        .collect()
}

/// Pretty JSON (two-space indent) ending in a newline.
fn finish(doc: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(doc).unwrap_or_default();
    out.push(b'\n');
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An RFC 4122 UUID (version 5 and variant bits set) made of the first
/// 16 bytes of sha256(`bytes`).
fn uuid_from(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn spdx_purl_ref(purl: String) -> Value {
    json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    }])
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({
        "spdxElementId": from,
        "relationshipType": kind,
        "relatedSpdxElement": to,
    })
}

/// The SPDX 2.3 JSON document of the image.
pub fn spdx_json(input: &SbomInput) -> Vec<u8> {
    let prepared = prepare(input);
    let doc_name = format!(
        "{}-{}-{}",
        input.image_name,
        input.image_version,
        input.platform.replace('/', "-")
    );
    let mut packages = vec![json!({
        "SPDXID": SPDX_IMAGE_ID,
        "name": input.image_name,
        "versionInfo": input.image_version,
        "primaryPackagePurpose": "CONTAINER",
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "supplier": NOASSERTION,
        "externalRefs": spdx_purl_ref(image_purl(input)),
    })];
    for p in &prepared {
        let mut m = Map::new();
        m.insert("SPDXID".into(), json!(p.id));
        m.insert("name".into(), json!(p.pkg.name));
        m.insert("versionInfo".into(), json!(p.pkg.version));
        let download = p
            .pkg
            .download_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(NOASSERTION);
        m.insert("downloadLocation".into(), json!(download));
        m.insert("filesAnalyzed".into(), json!(false));
        m.insert("licenseConcluded".into(), json!(NOASSERTION));
        m.insert(
            "licenseDeclared".into(),
            json!(p.license.as_deref().unwrap_or(NOASSERTION)),
        );
        m.insert("copyrightText".into(), json!(NOASSERTION));
        let supplier = match p.pkg.kind {
            PackageKind::Deb => "Organization: Debian",
            _ => NOASSERTION,
        };
        m.insert("supplier".into(), json!(supplier));
        if let Some(h) = &p.sha256 {
            m.insert(
                "checksums".into(),
                json!([{ "algorithm": "SHA256", "checksumValue": h }]),
            );
        }
        m.insert("externalRefs".into(), spdx_purl_ref(p.purl.clone()));
        if p.pkg.kind == PackageKind::Deb {
            if let Some(src) = p.pkg.source.as_deref().filter(|s| !s.is_empty()) {
                m.insert(
                    "sourceInfo".into(),
                    json!(format!("built package from: {src}")),
                );
            }
        }
        packages.push(Value::Object(m));
    }

    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", SPDX_IMAGE_ID)];
    for p in &prepared {
        relationships.push(relationship(SPDX_IMAGE_ID, "CONTAINS", &p.id));
    }
    let mut depends: Vec<(&str, &str)> = prepared
        .iter()
        .flat_map(|p| p.deps.iter().map(move |d| (p.id.as_str(), d.as_str())))
        .collect();
    depends.sort();
    for (from, to) in depends {
        relationships.push(relationship(from, "DEPENDS_ON", to));
    }

    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": doc_name,
        "creationInfo": {
            "created": input.created,
            "creators": [format!("Tool: {TOOL_NAME}-{TOOL_VERSION}")],
        },
        "packages": packages,
        "relationships": relationships,
    });
    let digest = sha256_hex(&finish(&doc));
    doc["documentNamespace"] = json!(format!(
        "https://spdx.org/spdxdocs/{TOOL_NAME}/{}/{digest}",
        pct(&doc_name)
    ));
    finish(&doc)
}

/// The CycloneDX 1.5 JSON document of the image.
pub fn cyclonedx_json(input: &SbomInput) -> Vec<u8> {
    let prepared = prepare(input);
    let mut components = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let mut m = Map::new();
        m.insert("type".into(), json!("library"));
        m.insert("bom-ref".into(), json!(p.id));
        m.insert("name".into(), json!(p.pkg.name));
        m.insert("version".into(), json!(p.pkg.version));
        m.insert("purl".into(), json!(p.purl));
        if let Some(h) = &p.sha256 {
            m.insert("hashes".into(), json!([{ "alg": "SHA-256", "content": h }]));
        }
        if let Some(l) = &p.license {
            m.insert("licenses".into(), json!([{ "expression": l }]));
        }
        if p.pkg.kind == PackageKind::Deb {
            m.insert("supplier".into(), json!({ "name": "Debian" }));
            if let Some(src) = p.pkg.source.as_deref().filter(|s| !s.is_empty()) {
                m.insert(
                    "properties".into(),
                    json!([{ "name": "netshoot-build:deb:source", "value": src }]),
                );
            }
        }
        components.push(Value::Object(m));
    }

    let all_refs: Vec<&str> = prepared.iter().map(|p| p.id.as_str()).collect();
    let mut dependencies = vec![json!({ "ref": CDX_IMAGE_REF, "dependsOn": all_refs })];
    for p in &prepared {
        dependencies.push(json!({ "ref": p.id, "dependsOn": p.deps }));
    }

    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": input.created,
            "tools": {
                "components": [{
                    "type": "application",
                    "name": TOOL_NAME,
                    "version": TOOL_VERSION,
                }],
            },
            "component": {
                "type": "container",
                "bom-ref": CDX_IMAGE_REF,
                "name": input.image_name,
                "version": input.image_version,
                "purl": image_purl(input),
            },
            "properties": [
                { "name": "netshoot-build:platform", "value": input.platform },
                { "name": "netshoot-build:subject-digest", "value": input.subject_digest },
            ],
        },
        "components": components,
        "dependencies": dependencies,
    });
    let serial = uuid_from(&finish(&doc));
    doc["serialNumber"] = json!(format!("urn:uuid:{serial}"));
    finish(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(name: &str, version: &str, arch: &str) -> SbomPackage {
        SbomPackage {
            kind: PackageKind::Deb,
            name: name.into(),
            version: version.into(),
            arch: Some(arch.into()),
            source: None,
            license: None,
            sha256: None,
            download_url: None,
            depends_on: Vec::new(),
        }
    }

    #[test]
    fn purl_encodes_epoch_and_plus() {
        let p = deb("libstdc++6", "1:2.3-4+b1", "amd64");
        assert_eq!(
            purl(&p, "debian-13"),
            "pkg:deb/debian/libstdc%2B%2B6@1%3A2.3-4%2Bb1?arch=amd64&distro=debian-13"
        );
        let p = deb("bash", "5.2.37-2", "amd64");
        assert_eq!(
            purl(&p, "debian-13"),
            "pkg:deb/debian/bash@5.2.37-2?arch=amd64&distro=debian-13"
        );
        let c = SbomPackage {
            kind: PackageKind::Cargo,
            arch: None,
            ..deb("serde", "1.0.0+meta", "")
        };
        assert_eq!(purl(&c, "debian-13"), "pkg:cargo/serde@1.0.0%2Bmeta");
        let g = SbomPackage {
            kind: PackageKind::Generic,
            arch: None,
            sha256: Some("AB".repeat(32)),
            download_url: Some("https://example.org/a b/x.tgz?v=1".into()),
            ..deb("tool", "2.0", "")
        };
        assert_eq!(
            purl(&g, "debian-13"),
            format!(
                "pkg:generic/tool@2.0?checksum=sha256:{}&download_url=https%3A%2F%2Fexample.org%2Fa%20b%2Fx.tgz%3Fv%3D1",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn pkg_ref_is_sanitized_and_unique() {
        assert_eq!(
            pkg_ref(&PackageKind::Deb, "bash", "5.2.37-2", Some("amd64")),
            "SPDXRef-deb-bash-5.2.37-2-amd64"
        );
        let a = pkg_ref(&PackageKind::Deb, "x", "1:2.3", Some("all"));
        let b = pkg_ref(&PackageKind::Deb, "x", "1+2.3", Some("all"));
        assert_ne!(a, b);
        for r in [&a, &b] {
            assert!(r.starts_with("SPDXRef-deb-x-1.2.3-all-"), "{r}");
            assert!(r[8..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-'));
        }
        assert_eq!(
            pkg_ref(&PackageKind::Cargo, "serde", "1.0.1", None),
            "SPDXRef-cargo-serde-1.0.1"
        );
    }

    const DEP5: &str = "Format: copyright-format/1.0
Upstream-Name: bash
Source: https://example.org/bash

Files: *
Copyright: 1987-2024 Free Software Foundation, Inc.
License: GPL-3+

Files: lib/glob/*
Copyright: 1991 The Regents
License: BSD-3-clause

License: GPL-3+
 This program is free software; you can redistribute it and/or modify
 it under the terms of the GNU General Public License as published by
 .
 On Debian systems, the complete text is in /usr/share/common-licenses/GPL-3.
";

    #[test]
    fn license_from_dep5() {
        assert_eq!(
            license_from_copyright(DEP5).as_deref(),
            Some("GPL-3.0-or-later")
        );
        let perl = "Format: copyright-format/1.0\n\n\
                    Files: *\nCopyright: Larry Wall\nLicense: GPL-1+ or Artistic\n\n";
        assert_eq!(
            license_from_copyright(perl).as_deref(),
            Some("GPL-1.0-or-later OR Artistic-1.0")
        );
        let inline = "Format: copyright-format/1.0\n\n\
                      Files: *\nCopyright: someone\nLicense: GPL-2+\n This program is free software\n .\n more\n";
        assert_eq!(
            license_from_copyright(inline).as_deref(),
            Some("GPL-2.0-or-later")
        );
        let comma = "Format: x\n\nFiles: *\nLicense: GPL-2+ or Expat, and BSD-3-clause\n";
        assert_eq!(
            license_from_copyright(comma).as_deref(),
            Some("(GPL-2.0-or-later OR MIT) AND BSD-3-Clause")
        );
        let and = "Format: x\n\nFiles: *\nLicense: LGPL-2.1+ and ISC\n";
        assert_eq!(
            license_from_copyright(and).as_deref(),
            Some("LGPL-2.1-or-later AND ISC")
        );
        let llvm = "Format: x\n\nFiles: *\nLicense: APACHE-2-LLVM-EXCEPTIONS or GPL-2\n";
        assert_eq!(
            license_from_copyright(llvm).as_deref(),
            Some("(Apache-2.0 WITH LLVM-exception) OR GPL-2.0-only")
        );
        // Unmappable parts poison the whole expression.
        for bad in [
            "Format: x\n\nFiles: *\nLicense: GPL-2+ or Tcl-BSDish\n",
            "Format: x\n\nFiles: *\nLicense: public-domain\n",
            "Format: x\n\nFiles: *\nLicense: GPL-2+ with OpenSSL exception\n",
            "Format: x\n\nFiles: *\nLicense: GPL\n",
            "Format: x\n\nFiles: *\nLicense:\n",
            "Format: x\n\nFiles: debian/*\nLicense: MIT\n",
        ] {
            assert_eq!(license_from_copyright(bad), None, "{bad}");
        }
    }

    #[test]
    fn license_from_non_dep5_is_none() {
        let text = "This is the Debian prepackaged version of GNU Bash.\n\n\
                    Copyright (C) 1987-2022 Free Software Foundation, Inc.\n\n\
                    License: GPL-3+\n";
        assert_eq!(license_from_copyright(text), None);
        assert_eq!(license_from_copyright(""), None);
        assert_eq!(license_from_copyright(" \n\t\n:::\n"), None);
    }

    #[test]
    fn cargo_license_forms() {
        assert_eq!(
            cargo_license("MIT/Apache-2.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            cargo_license("Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT").as_deref(),
            Some("Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT")
        );
        assert_eq!(
            cargo_license("(MIT or Apache-2.0) AND Unicode-3.0").as_deref(),
            Some("(MIT OR Apache-2.0) AND Unicode-3.0")
        );
        assert_eq!(
            cargo_license("GPL-2.0+").as_deref(),
            Some("GPL-2.0-or-later")
        );
        // Validators reject `+` on licenses without an -or-later id.
        assert_eq!(cargo_license("MPL-2.0+"), None);
        for bad in [
            "",
            "MIT OR",
            "(MIT",
            "MIT)",
            "MIT AND AND ISC",
            "see LICENSE file",
            "MIT,Apache",
            "MIT WITH",
            "A+B",
        ] {
            assert_eq!(cargo_license(bad), None, "{bad:?}");
        }
    }

    const STATUS: &str = "\
Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.37-2
Pre-Depends: libc6 (>= 2.36), libtinfo6 (>= 6)
Depends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1)

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc (2.41-12)
Version: 2.41-12
Depends: libgcc-s1

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-14 (14.2.0-19)
Version: 14.2.0-19
Depends: gcc-14-base (= 14.2.0-19), libc6 (>= 2.35)

Package: libtinfo6
Status: deinstall ok config-files
Architecture: amd64
Version: 6.5-2

Package: ncurses-base
Status: install ok half-installed
Architecture: all
Version: 6.5-2

Package: mawk
Status: install ok installed
Architecture: amd64
Version: 1.3.4.20250131-1
Provides: awk
Depends: libc6:any (>= 2.38)

Package: debianutils
Status: install ok installed
Architecture: amd64
Version: 5.23.1
Depends: gawk | awk, nonexistent (>= 1), libc6:amd64, bash

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 13.8
Depends: mawk | original-awk
";

    #[test]
    fn dpkg_status_with_alternatives_and_provides() {
        let copyright =
            |name: &str| -> Option<String> { (name == "bash").then(|| DEP5.to_string()) };
        let pkgs = debs_from_dpkg_status(STATUS, &copyright);
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "base-files",
                "bash",
                "debianutils",
                "libc6",
                "libgcc-s1",
                "mawk"
            ]
        );
        let get = |n: &str| pkgs.iter().find(|p| p.name == n).unwrap();
        let r = |n: &str| {
            let p = get(n);
            pkg_ref(&p.kind, &p.name, &p.version, p.arch.as_deref())
        };
        // libtinfo6 is not installed: dropped.
        assert_eq!(
            get("bash").depends_on,
            vec![r("base-files"), r("debianutils"), r("libc6")]
        );
        assert_eq!(get("bash").license.as_deref(), Some("GPL-3.0-or-later"));
        assert_eq!(get("libc6").license, None);
        // gawk is missing, awk is provided by mawk; nonexistent is dropped.
        assert_eq!(
            get("debianutils").depends_on,
            vec![r("bash"), r("libc6"), r("mawk")]
        );
        assert_eq!(get("mawk").depends_on, vec![r("libc6")]);
        assert_eq!(get("base-files").depends_on, vec![r("mawk")]);
        // gcc-14-base is not installed.
        assert_eq!(get("libgcc-s1").depends_on, vec![r("libc6")]);
        assert_eq!(get("libgcc-s1").source.as_deref(), Some("gcc-14"));
        assert_eq!(get("libc6").source.as_deref(), Some("glibc"));
        assert_eq!(get("bash").source, None);
        assert_eq!(get("bash").arch.as_deref(), Some("amd64"));
    }

    #[test]
    fn dpkg_status_garbage_keeps_what_parses() {
        let text = format!(" orphan continuation\n\n{STATUS}\nnot a field line\n");
        let pkgs = debs_from_dpkg_status(&text, &|_| None);
        assert_eq!(pkgs.len(), 6);
        assert!(debs_from_dpkg_status("", &|_| None).is_empty());
        assert!(debs_from_dpkg_status("\u{0}\u{1}::\n \n", &|_| None).is_empty());
    }

    const LOCK: &str = r#"
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = [
 "bitflags 2.6.0",
 "serde",
 "missing",
]

[[package]]
name = "bitflags"
version = "1.3.2"
source = "registry+https://example.org/index"
checksum = "bef38d45163c2f1dde094a7dfd33ccf595c92905c8f8f4fdc18d06fb1037718a"

[[package]]
name = "bitflags"
version = "2.6.0"
source = "registry+https://example.org/index"
checksum = "b048fb63fd8b5923fc5aa7b340d8e156aec7ec02f0c78fa8a6ddc2613f6f71de"

[[package]]
name = "serde"
version = "1.0.210"
source = "registry+https://example.org/index"
checksum = "c8e3592472072e6e22e0a54d5904d9febf8508f65fb8552499a1abc7d1078c3a"
dependencies = [
 "bitflags 1.3.2 (registry+https://example.org/index)",
]
"#;

    #[test]
    fn cargo_lock_packages() {
        let lic = |name: &str, _v: &str| -> Option<String> {
            match name {
                "serde" => Some("MIT/Apache-2.0".into()),
                "bitflags" => Some("not a license".into()),
                _ => None,
            }
        };
        let pkgs = cargo_packages(LOCK, "app", Some("Apache-2.0"), &lic);
        assert_eq!(pkgs.len(), 4);
        let app = &pkgs[0];
        assert_eq!(app.license.as_deref(), Some("Apache-2.0"));
        assert_eq!(app.sha256, None);
        assert_eq!(
            app.depends_on,
            vec![
                "SPDXRef-cargo-bitflags-2.6.0".to_string(),
                "SPDXRef-cargo-serde-1.0.210".to_string()
            ]
        );
        let serde = &pkgs[3];
        assert_eq!(serde.license.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(serde.depends_on, vec!["SPDXRef-cargo-bitflags-1.3.2"]);
        assert_eq!(
            serde.sha256.as_deref(),
            Some("c8e3592472072e6e22e0a54d5904d9febf8508f65fb8552499a1abc7d1078c3a")
        );
        assert_eq!(pkgs[1].license, None);
        // A broken table does not lose the others.
        let broken = LOCK.replace("name = \"serde\"", "name = serde");
        assert_eq!(cargo_packages(&broken, "app", None, &lic).len(), 3);
        assert!(cargo_packages("garbage [[[", "app", None, &lic).is_empty());
    }

    fn sample_input() -> SbomInput {
        let mut packages =
            debs_from_dpkg_status(STATUS, &|n: &str| (n == "bash").then(|| DEP5.to_string()));
        packages.extend(cargo_packages(LOCK, "app", Some("Apache-2.0"), &|_, _| {
            Some("MIT".into())
        }));
        packages.push(SbomPackage {
            kind: PackageKind::Generic,
            name: "tool".into(),
            version: "1.0".into(),
            arch: None,
            source: None,
            license: Some("MIT".into()),
            sha256: Some("0".repeat(64)),
            download_url: Some("https://example.org/tool-1.0.tgz".into()),
            depends_on: vec!["SPDXRef-not-here".into()],
        });
        SbomInput {
            image_name: "netshoot".into(),
            image_version: "1.0.0".into(),
            platform: "linux/amd64".into(),
            subject_digest: format!("sha256:{}", "a".repeat(64)),
            created: "2025-11-28T00:00:00Z".into(),
            distro: "debian-13".into(),
            packages,
        }
    }

    #[test]
    fn documents_are_deterministic() {
        let input = sample_input();
        let s1 = spdx_json(&input);
        let s2 = spdx_json(&input);
        assert_eq!(s1, s2);
        let c1 = cyclonedx_json(&input);
        assert_eq!(c1, cyclonedx_json(&input));
        // Input order does not matter.
        let mut shuffled = input.clone();
        shuffled.packages.reverse();
        assert_eq!(spdx_json(&shuffled), s1);
        assert_eq!(cyclonedx_json(&shuffled), c1);
        // Content does.
        let mut other = input.clone();
        other.image_version = "1.0.1".into();
        assert_ne!(spdx_json(&other), s1);
        assert_ne!(cyclonedx_json(&other), c1);
        assert!(s1.ends_with(b"}\n") && c1.ends_with(b"}\n"));
    }

    #[test]
    fn spdx_document_shape() {
        let input = sample_input();
        let doc: Value = serde_json::from_slice(&spdx_json(&input)).unwrap();
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["name"], "netshoot-1.0.0-linux-amd64");
        let ns = doc["documentNamespace"].as_str().unwrap();
        assert!(
            ns.starts_with("https://spdx.org/spdxdocs/netshoot-build/netshoot-1.0.0-linux-amd64/")
        );
        assert!(!ns.contains('#'));
        let pkgs = doc["packages"].as_array().unwrap();
        assert_eq!(pkgs.len(), 1 + 6 + 4 + 1);
        assert_eq!(pkgs[0]["SPDXID"], "SPDXRef-image");
        assert_eq!(
            pkgs[0]["externalRefs"][0]["referenceLocator"],
            format!("pkg:oci/netshoot@sha256%3A{}?arch=amd64", "a".repeat(64))
        );
        let ids: BTreeSet<&str> = pkgs.iter().map(|p| p["SPDXID"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), pkgs.len());
        for r in doc["relationships"].as_array().unwrap() {
            let to = r["relatedSpdxElement"].as_str().unwrap();
            assert!(ids.contains(to), "dangling {to}");
        }
        let libc = pkgs.iter().find(|p| p["name"] == "libc6").unwrap();
        assert_eq!(libc["sourceInfo"], "built package from: glibc");
        assert_eq!(libc["supplier"], "Organization: Debian");
        let tool = pkgs.iter().find(|p| p["name"] == "tool").unwrap();
        assert_eq!(tool["downloadLocation"], "https://example.org/tool-1.0.tgz");
        assert_eq!(tool["checksums"][0]["algorithm"], "SHA256");
    }

    #[test]
    fn cyclonedx_document_shape() {
        let input = sample_input();
        let doc: Value = serde_json::from_slice(&cyclonedx_json(&input)).unwrap();
        let serial = doc["serialNumber"].as_str().unwrap();
        let uuid = serial.strip_prefix("urn:uuid:").unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "5");
        assert!("89ab".contains(&uuid[19..20]));
        let comps = doc["components"].as_array().unwrap();
        assert_eq!(comps.len(), 6 + 4 + 1);
        let mut refs: BTreeSet<&str> = comps
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .collect();
        refs.insert("image");
        for d in doc["dependencies"].as_array().unwrap() {
            assert!(refs.contains(d["ref"].as_str().unwrap()));
            for t in d["dependsOn"].as_array().unwrap() {
                assert!(refs.contains(t.as_str().unwrap()), "dangling {t}");
            }
        }
        let bash = comps.iter().find(|c| c["name"] == "bash").unwrap();
        assert_eq!(bash["licenses"][0]["expression"], "GPL-3.0-or-later");
        assert!(bash["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:deb/debian/bash@"));
    }
}
