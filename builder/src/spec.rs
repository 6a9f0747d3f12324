//! The toolset spec (`tools/netshoot.toml`): what goes into the image and
//! how the image is configured. Parsing is strict: an unknown key, a wrong
//! type or an unknown platform is an error naming the file and the key.

use crate::error::{bad_input, Result};
use anyhow::Context;
use image_layout::Platform;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The whole spec file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Platforms to build, e.g. `["linux/amd64", "linux/arm64"]`.
    #[serde(deserialize_with = "platforms")]
    pub platforms: Vec<Platform>,
    /// Image configuration.
    pub image: ImageSpec,
    /// Files and folders from the repository.
    #[serde(default)]
    pub local: Vec<LocalSource>,
    /// Files or archives fetched by URL, pinned by sha256 per platform.
    #[serde(default)]
    pub url: Vec<UrlSource>,
    /// Debian packages from signed repositories.
    #[serde(default)]
    pub apt: Option<AptSpec>,
    /// Rust tools compiled from source, statically, per platform.
    #[serde(default)]
    pub cargo: Vec<CrateSpec>,
    /// Debian source packages compiled statically for the static toolbox.
    #[serde(default)]
    pub source: Vec<SourceSpec>,
    /// The static toolbox (`--variant static`, `export --static-bundle`).
    #[serde(default, rename = "static")]
    pub statics: Option<StaticSpec>,
    /// Folders whose mode or owner the image sets (created when missing),
    /// applied after every source, e.g. a group-writable `/root`.
    #[serde(default)]
    pub dir: Vec<DirSpec>,
    /// Variants of the image (`--variant NAME`), e.g. a non-root one.
    #[serde(default)]
    pub variant: BTreeMap<String, VariantSpec>,
    /// Where the spec was read from (set after parsing).
    #[serde(skip)]
    pub path: PathBuf,
}

/// The image's name, tag and runtime configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Repository name used for `docker load` tags (`netshoot`).
    pub name: String,
    /// Default tag.
    pub tag: String,
    /// ENTRYPOINT.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// CMD.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Environment, `NAME=value`, in order.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// User (`uid:gid` or a name).
    #[serde(default)]
    pub user: Option<String>,
    /// Config labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Manifest and index annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A file or folder of the repository placed into the image.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSource {
    /// Path relative to the spec file's folder.
    pub src: PathBuf,
    /// Absolute path in the image.
    pub dest: String,
    /// Permission bits; default 0755 for executables and folders, else 0644.
    #[serde(default, deserialize_with = "mode")]
    pub mode: Option<u32>,
    /// `uid:gid`; default `0:0`.
    #[serde(default, deserialize_with = "owner")]
    pub owner: Option<(u32, u32)>,
}

/// A folder's mode and owner in the image.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    /// Absolute path in the image.
    pub path: String,
    /// Permission bits (e.g. "0770").
    #[serde(deserialize_with = "mode")]
    pub mode: Option<u32>,
    /// `uid:gid`; default `0:0`.
    #[serde(default, deserialize_with = "owner")]
    pub owner: Option<(u32, u32)>,
}

/// A variant of the image: another user, and file capabilities that let
/// that user capture when the runtime grants the matching capability,
/// while every program still starts where the runtime grants none.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// Appended to every tag (`-nonroot`).
    pub tag_suffix: String,
    /// The numeric `uid:gid` the image runs as.
    #[serde(deserialize_with = "owner_required")]
    pub user: (u32, u32),
    /// Account name for that uid (and its group).
    pub username: String,
    /// Home folder, created and owned by the user.
    pub home: String,
    /// File capabilities to set, path → setcap text without the effective
    /// bit (`cap_net_raw=p`), for programs that raise the capability from
    /// their permitted set themselves. Such a file starts whatever the
    /// runtime grants; the effective bit is refused here, since the kernel
    /// refuses to start a file with it when the capability is outside the
    /// container's bounding set.
    #[serde(default)]
    pub capabilities: BTreeMap<String, String>,
    /// Programs that need the effective bit (`cap_net_raw=ep`), path →
    /// setcap text: each moves to [`GUARDED_DIR`] with those
    /// capabilities, and a launcher takes its path. The launcher execs it
    /// where the capabilities can be had; elsewhere it prints one line
    /// naming what is missing and runs it without them.
    #[serde(default)]
    pub guarded: BTreeMap<String, String>,
}

/// Where a variant's guarded programs live, under their own names.
pub const GUARDED_DIR: &str = "/usr/libexec/netshoot/guarded";

fn owner_required<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<(u32, u32), D::Error> {
    owner(d)?.ok_or_else(|| serde::de::Error::custom("user must be uid:gid"))
}

/// The Debian part of the spec: what to install and from where.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AptSpec {
    /// Requested packages (`name`, `name=version`, `name:arch`).
    pub packages: Vec<String>,
    /// The base system: `"essential"`, `"required"`, `"none"` or a list.
    #[serde(default)]
    pub base: BaseSpec,
    /// Globs of paths not to install (default: docs, man pages, info,
    /// locales).
    #[serde(default)]
    pub path_exclude: Option<Vec<String>>,
    /// Exceptions to `path_exclude` (default: copyright files).
    #[serde(default)]
    pub path_include: Option<Vec<String>>,
    /// Signed repositories, searched in order.
    pub repository: Vec<AptRepository>,
}

/// `base` in the apt section.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum BaseSpec {
    /// Every `Essential: yes` package.
    Essential,
    /// Every `Priority: required` package.
    Required,
    /// Only the requested packages and their dependencies.
    #[default]
    None,
    /// These packages.
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for BaseSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) => match w.as_str() {
                "essential" => Ok(BaseSpec::Essential),
                "required" => Ok(BaseSpec::Required),
                "none" => Ok(BaseSpec::None),
                other => Err(serde::de::Error::custom(format!(
                    "base {other:?}: expected \"essential\", \"required\", \"none\" or a list of packages"
                ))),
            },
            Raw::List(l) => Ok(BaseSpec::List(l)),
        }
    }
}

/// One signed Debian repository.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AptRepository {
    /// Name used by `--mirror NAME=URL` and `NETSHOOT_MIRROR_NAME`.
    pub name: String,
    /// Suites (default: trixie, trixie-updates, trixie-security).
    #[serde(default = "default_suites")]
    pub suites: Vec<String>,
    /// Components (default: main).
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// OpenPGP keyring (binary or armored), relative to the spec's folder.
    pub keyring: PathBuf,
    /// Base URL for the non-security suites (else flag, env, host apt sources).
    #[serde(default)]
    pub url: Option<String>,
    /// Base URL for `*-security` suites.
    #[serde(default)]
    pub security_url: Option<String>,
}

fn default_suites() -> Vec<String> {
    ["trixie", "trixie-updates", "trixie-security"]
        .map(String::from)
        .to_vec()
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

/// A pinned download, one per platform.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlSource {
    /// A name for messages and the layer history.
    pub name: String,
    /// Absolute install path in the image.
    pub dest: String,
    /// Permission bits (default 0755).
    #[serde(default, deserialize_with = "mode")]
    pub mode: Option<u32>,
    /// `uid:gid`; default `0:0`.
    #[serde(default, deserialize_with = "owner")]
    pub owner: Option<(u32, u32)>,
    /// Per platform: where to fetch and what to expect.
    pub platform: BTreeMap<String, UrlArtifact>,
    /// The upstream version, for the SBOM.
    #[serde(default)]
    pub version: Option<String>,
    /// A profile the entry belongs to: left out unless the build names it
    /// (`--profile full`). Entries without one are always built.
    #[serde(default)]
    pub profile: Option<String>,
}

impl UrlSource {
    /// Whether the entry is part of a build with these profiles.
    pub fn active(&self, profiles: &[String]) -> bool {
        self.profile.as_ref().is_none_or(|p| profiles.contains(p))
    }
}

/// One platform's download of a [`UrlSource`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlArtifact {
    /// The URL.
    pub url: String,
    /// sha256 (hex) of the downloaded bytes. When absent, the first
    /// download records it in the lockfile and later builds verify it.
    #[serde(default)]
    pub sha256: Option<String>,
    /// For a `.tar.gz`: the member to install.
    #[serde(default)]
    pub path: Option<String>,
    /// `file` or `tar.gz`; guessed from the URL when absent.
    #[serde(default)]
    pub format: Option<UrlFormat>,
}

/// How a downloaded artifact is unpacked.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum UrlFormat {
    /// The download is the file itself.
    #[serde(rename = "file")]
    File,
    /// A gzip-compressed tar holding the file at `path`.
    #[serde(rename = "tar.gz")]
    TarGz,
}

impl UrlArtifact {
    /// The artifact's format, from `format` or the URL's suffix.
    pub fn format(&self) -> UrlFormat {
        self.format.unwrap_or_else(|| {
            let u = self.url.split(['?', '#']).next().unwrap_or("");
            if u.ends_with(".tar.gz") || u.ends_with(".tgz") {
                UrlFormat::TarGz
            } else {
                UrlFormat::File
            }
        })
    }
}

fn platforms<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<Platform>, D::Error> {
    let raw: Vec<String> = Vec::deserialize(d)?;
    if raw.is_empty() {
        return Err(serde::de::Error::custom("at least one platform is needed"));
    }
    let mut out: Vec<Platform> = Vec::new();
    for s in raw {
        let p: Platform = s.parse().map_err(serde::de::Error::custom)?;
        if out.contains(&p) {
            return Err(serde::de::Error::custom(format!(
                "platform {p} listed twice"
            )));
        }
        out.push(p);
    }
    Ok(out)
}

/// Accepts `0o755` (a TOML integer) or `"0755"` (an octal string).
fn mode<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Str(String),
    }
    let v = match Raw::deserialize(d)? {
        Raw::Int(i) => {
            u32::try_from(i).map_err(|_| serde::de::Error::custom("mode out of range"))?
        }
        Raw::Str(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).map_err(|_| {
            serde::de::Error::custom(format!("mode {s:?} is not an octal number like \"0755\""))
        })?,
    };
    if v > 0o7777 {
        return Err(serde::de::Error::custom(format!(
            "mode {v:o} has bits beyond 07777"
        )));
    }
    Ok(Some(v))
}

fn owner<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<(u32, u32)>, D::Error> {
    let s = String::deserialize(d)?;
    let parse = |x: &str| x.parse::<u32>().ok();
    match s.split_once(':') {
        Some((u, g)) if parse(u).is_some() && parse(g).is_some() => {
            Ok(Some((parse(u).unwrap_or(0), parse(g).unwrap_or(0))))
        }
        _ => Err(serde::de::Error::custom(format!(
            "owner {s:?} must be numeric uid:gid, like \"0:0\""
        ))),
    }
}

/// `p` as an absolute, normal path in the image, or an error naming `what`.
fn image_path(what: &str, p: &str) -> Result<()> {
    if !p.starts_with('/') {
        return Err(bad_input(format!(
            "{what} {p:?} must be an absolute path in the image"
        )));
    }
    image_layout::tree::normalize_path(p).map_err(|e| bad_input(format!("{what}: {e}")))?;
    Ok(())
}

impl Spec {
    /// Reads and checks the spec at `path`.
    pub fn load(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad_input(format!("{}: cannot read spec: {e}", path.display())))?;
        let mut spec: Spec = toml::from_str(&text).map_err(|e| {
            // toml's message carries the line, column and key; keep it on one line.
            let msg = e.message().to_string();
            let loc = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            bad_input(format!("{}{loc}: {msg}", path.display()))
        })?;
        spec.path = path.to_path_buf();
        spec.check()
            .with_context(|| format!("{}", path.display()))?;
        Ok(spec)
    }

    fn check(&self) -> Result<()> {
        for l in &self.local {
            image_path("local.dest", &l.dest)?;
        }
        for d in &self.dir {
            image_path("dir.path", &d.path)?;
            if d.mode.is_none_or(|m| m > 0o7777) {
                return Err(bad_input(format!(
                    "dir {:?}: mode must be octal permission bits such as \"0770\"",
                    d.path
                )));
            }
        }
        self.check_urls()?;
        self.check_apt()?;
        let mut crate_names = std::collections::BTreeSet::new();
        for c in &self.cargo {
            c.check()?;
            image_path(&format!("cargo {:?} dest", c.name), &c.dest)?;
            if !crate_names.insert(c.name.clone()) {
                return Err(bad_input(format!("cargo {:?} is listed twice", c.name)));
            }
        }
        check_sources(self)?;
        self.check_variants()?;
        if self.image.name.is_empty() || self.image.tag.is_empty() {
            return Err(bad_input("image.name and image.tag must not be empty"));
        }
        self.check_paths()
    }

    /// `[[url]]`: unique names, profiles, platform keys, pins, members.
    fn check_urls(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for u in &self.url {
            image_path(&format!("url {:?} dest", u.name), &u.dest)?;
            if !names.insert(u.name.as_str()) {
                return Err(bad_input(format!(
                    "url {:?}: two [[url]] entries have this name (the lockfile pins by name)",
                    u.name
                )));
            }
            if let Some(p) = &u.profile {
                if p.is_empty()
                    || !p
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    return Err(bad_input(format!(
                        "url {:?}: profile {p:?} must be lowercase letters, digits and '-'",
                        u.name
                    )));
                }
            }
            for (p, a) in &u.platform {
                let plat: Platform = p
                    .parse()
                    .map_err(|e| bad_input(format!("url {:?}: platform key: {e}", u.name)))?;
                if let Some(sha) = a
                    .sha256
                    .as_deref()
                    .filter(|s| image_layout::Digest::from_hex(s).is_err())
                {
                    return Err(bad_input(format!(
                        "url {:?} for {plat}: sha256 {sha:?} is not 64 lowercase hex digits",
                        u.name
                    )));
                }
                if a.format() == UrlFormat::TarGz && a.path.is_none() {
                    return Err(bad_input(format!(
                        "url {:?} for {plat}: a .tar.gz needs `path`, the member to install",
                        u.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// `[apt]`: repositories with suites and components, package requests
    /// that parse.
    fn check_apt(&self) -> Result<()> {
        let Some(apt) = &self.apt else {
            return Ok(());
        };
        if apt.repository.is_empty() {
            return Err(bad_input("apt: at least one [[apt.repository]] is needed"));
        }
        for r in &apt.repository {
            if r.suites.is_empty() || r.components.is_empty() {
                return Err(bad_input(format!(
                    "apt.repository {:?}: suites and components must not be empty",
                    r.name
                )));
            }
        }
        for p in &apt.packages {
            p.parse::<debian::resolver::Request>()
                .map_err(|e| bad_input(format!("apt.packages: {e}")))?;
        }
        Ok(())
    }

    /// `[variant.NAME]`: capabilities that parse, an absolute home, no
    /// clash with the static toolbox's name.
    fn check_variants(&self) -> Result<()> {
        if self.statics.is_some() && self.variant.contains_key("static") {
            return Err(bad_input(
                "[variant.static] and [static] both name the variant `static`",
            ));
        }
        for (name, v) in &self.variant {
            check_variant(name, v)?;
        }
        Ok(())
    }

    /// The folder local sources are relative to.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// `rel`, a path the spec names for `what` (`local "files/motd"`,
    /// `patch ...`), resolved inside the spec's folder: relative, and still
    /// inside after `..` and every symlink are followed. A spec from an
    /// untrusted change must not carry a host file (`/etc/shadow`,
    /// `../../secret`) into an image. A path that does not exist is
    /// returned joined, for the caller to report as missing.
    pub fn resolve_inside(&self, what: &str, rel: &Path) -> Result<PathBuf> {
        let outside = |real: &Path| {
            bad_input(format!(
                "{}: {what}: {} resolves to {}, outside the spec's folder; paths in a spec must stay inside it",
                self.path.display(),
                rel.display(),
                real.display()
            ))
        };
        if rel.is_absolute() {
            return Err(outside(rel));
        }
        let base = self.base_dir();
        // `--spec netshoot.toml` has an empty parent: the current folder.
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let joined = base.join(rel);
        let real_base = std::fs::canonicalize(&base)
            .map_err(|e| bad_input(format!("{}: its folder: {e}", self.path.display())))?;
        match std::fs::canonicalize(&joined) {
            Ok(real) if real.starts_with(&real_base) => Ok(joined),
            Ok(real) => Err(outside(&real)),
            Err(_) => {
                // Missing: judge the words alone, so `../x` is refused even
                // before it exists.
                let mut depth = 0i32;
                for c in rel.components() {
                    match c {
                        std::path::Component::ParentDir => depth -= 1,
                        std::path::Component::Normal(_) => depth += 1,
                        _ => {}
                    }
                    if depth < 0 {
                        return Err(outside(&joined));
                    }
                }
                Ok(joined)
            }
        }
    }

    /// Every path the spec names, checked by [`Spec::resolve_inside`].
    fn check_paths(&self) -> Result<()> {
        for l in &self.local {
            self.resolve_inside(&format!("local {:?}", l.dest), &l.src)?;
        }
        if let Some(apt) = &self.apt {
            for r in &apt.repository {
                self.resolve_inside(&format!("apt.repository {:?} keyring", r.name), &r.keyring)?;
            }
        }
        for s in &self.source {
            for p in &s.patches {
                self.resolve_inside(&format!("source {:?} patch", s.name), p)?;
            }
        }
        for c in &self.cargo {
            if let Some(p) = &c.path {
                self.resolve_inside(&format!("cargo {:?} path", c.name), p)?;
            }
        }
        for u in &self.url {
            for (plat, a) in &u.platform {
                if let Some(file) = a.url.strip_prefix("file://") {
                    let base = std::fs::canonicalize(self.base_dir()).unwrap_or_default();
                    let rel = Path::new(file)
                        .strip_prefix(&base)
                        .unwrap_or(Path::new(file));
                    self.resolve_inside(&format!("url {:?} for {plat}", u.name), rel)?;
                }
            }
        }
        Ok(())
    }
}

/// One `[[source]]` entry: a Debian source package and how to build it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The Debian source package name (`tcpdump`).
    pub name: String,
    /// Suite to take it from (default: `[static].suite`).
    #[serde(default)]
    pub suite: Option<String>,
    /// An exact Debian version to lock instead of the suite's newest
    /// (for a suite that lists several, like sid).
    #[serde(default)]
    pub version: Option<String>,
    /// Other `[[source]]` entries (libraries) whose installed files the
    /// build sees under `$DEPS`.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Programs the entry provides: each must be installed by the recipe
    /// as `$OUT/usr/bin/NAME` and is checked to be static.
    #[serde(default)]
    pub bins: Vec<String>,
    /// A file under `$OUT` listing absolute paths, one a line, that become
    /// links to the first of `bins` (busybox's applets).
    #[serde(default)]
    pub links_file: Option<String>,
    /// Patches (relative to the spec's folder) applied with `patch -p1`
    /// after Debian's own.
    #[serde(default)]
    pub patches: Vec<PathBuf>,
    /// Commands run in order by `bash -euo pipefail -c` in the unpacked
    /// source tree, with a cleared environment: `CC`, `CXX`, `AR`, `RANLIB`
    /// (zig for the target), `HOST` (`x86_64-linux-musl`...), `BUILD`,
    /// `ARCH` (Debian's name), `JOBS`, `SRC`, `DEPS` (the `needs`'
    /// installed files), `OUT` (install here, with `DESTDIR=$OUT` and
    /// prefix `/usr`), `ROOT` (scratch space), `CFLAGS`, `CPPFLAGS`,
    /// `LDFLAGS` (`-static -s`), pkg-config pointed at `$DEPS`,
    /// `SOURCE_DATE_EPOCH`, `LC_ALL=C`, `TZ=UTC`.
    pub steps: Vec<String>,
}

/// One `[variant.NAME]`: an absolute home; `capabilities` without the
/// effective bit; `guarded` with it, at absolute paths whose file names
/// differ (they share [`GUARDED_DIR`]).
fn check_variant(name: &str, v: &VariantSpec) -> Result<()> {
    if !v.home.starts_with('/') {
        return Err(bad_input(format!("variant.{name}.home must be absolute")));
    }
    for (path, text) in &v.capabilities {
        let caps = variant_caps(name, "capabilities", path, text)?;
        if caps.effective != 0 {
            return Err(bad_input(format!(
                "variant.{name}.capabilities {path:?}: {text:?} has the effective bit, so the program would not start where the runtime does not grant the capability: give it without `e` if the program raises the capability itself, or list it under [variant.{name}.guarded]"
            )));
        }
    }
    let mut names = BTreeMap::new();
    for (path, text) in &v.guarded {
        let caps = variant_caps(name, "guarded", path, text)?;
        if v.capabilities.contains_key(path) {
            return Err(bad_input(format!(
                "variant.{name}: {path:?} is under both capabilities and guarded"
            )));
        }
        if caps.effective == 0 {
            return Err(bad_input(format!(
                "variant.{name}.guarded {path:?}: {text:?} has no effective bit: a program that raises the capability itself belongs under [variant.{name}.capabilities]"
            )));
        }
        let file = path.rsplit('/').next().unwrap_or_default();
        if !path.starts_with('/') || file.is_empty() {
            return Err(bad_input(format!(
                "variant.{name}.guarded {path:?}: not an absolute path to a program"
            )));
        }
        if let Some(other) = names.insert(file, path) {
            return Err(bad_input(format!(
                "variant.{name}.guarded: {other:?} and {path:?} have the same file name, and both would move to {GUARDED_DIR}/{file}"
            )));
        }
    }
    Ok(())
}

fn variant_caps(name: &str, table: &str, path: &str, text: &str) -> Result<debian::caps::CapSet> {
    debian::caps::parse_capabilities(text)
        .map_err(|e| bad_input(format!("variant.{name}.{table} {path:?}: {e}")))
}

/// `[static]`: the fully static toolbox (`build --variant static`,
/// `export --static-bundle`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSpec {
    /// Appended to the image tag (`-static`).
    pub tag_suffix: String,
    /// The `[[apt.repository]]` (mirror and keyring) sources come from.
    pub repository: String,
    /// Default suite of the `[[source]]` entries.
    pub suite: String,
    /// Component (default `main`).
    #[serde(default = "main_component")]
    pub component: String,
    /// The image's CMD.
    #[serde(default = "default_cmd")]
    pub cmd: Vec<String>,
}

fn main_component() -> String {
    "main".into()
}

fn default_cmd() -> Vec<String> {
    vec!["sh".into()]
}

impl SourceSpec {
    fn check(&self) -> Result<()> {
        let who = format!("source {:?}", self.name);
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
        {
            return Err(bad_input(format!(
                "{who}: name must be a Debian source package name"
            )));
        }
        if self.steps.is_empty() {
            return Err(bad_input(format!(
                "{who}: needs `steps`, the build commands"
            )));
        }
        for b in &self.bins {
            if b.is_empty() || b.contains('/') || b.starts_with('.') {
                return Err(bad_input(format!(
                    "{who}: bins entry {b:?} must be a plain file name"
                )));
            }
        }
        if self.links_file.is_some() && self.bins.is_empty() {
            return Err(bad_input(format!(
                "{who}: links_file needs a program in `bins` to link to"
            )));
        }
        for p in &self.patches {
            if p.is_absolute() {
                return Err(bad_input(format!(
                    "{who}: patch {} must be relative to the spec's folder",
                    p.display()
                )));
            }
        }
        Ok(())
    }
}

/// Checks the `[[source]]` entries and `[static]` of a spec: names,
/// `needs` that exist and form no cycle, a repository that exists.
pub(crate) fn check_sources(spec: &Spec) -> Result<()> {
    let mut names = BTreeSet::new();
    for s in &spec.source {
        s.check()?;
        if !names.insert(s.name.as_str()) {
            return Err(bad_input(format!("source {:?} is listed twice", s.name)));
        }
    }
    for s in &spec.source {
        for n in &s.needs {
            if !names.contains(n.as_str()) {
                return Err(bad_input(format!(
                    "source {:?}: needs {n:?}, which is no [[source]] entry",
                    s.name
                )));
            }
        }
    }
    build_order(spec)?;
    if !spec.source.is_empty() {
        let st = spec.statics.as_ref().ok_or_else(|| {
            bad_input("[[source]] entries need a [static] table (repository and suite)")
        })?;
        static_repository(spec, st)?;
    }
    Ok(())
}

/// The `[[apt.repository]]` the `[static]` table names.
pub fn static_repository<'a>(spec: &'a Spec, st: &StaticSpec) -> Result<&'a AptRepository> {
    spec.apt
        .as_ref()
        .and_then(|a| a.repository.iter().find(|r| r.name == st.repository))
        .ok_or_else(|| {
            bad_input(format!(
                "static.repository {:?}: no [[apt.repository]] has that name",
                st.repository
            ))
        })
}

/// The entries in an order where every entry comes after what it needs
/// (spec order otherwise); an error names a cycle.
pub fn build_order(spec: &Spec) -> Result<Vec<&SourceSpec>> {
    let by_name: BTreeMap<&str, &SourceSpec> =
        spec.source.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut done: Vec<&SourceSpec> = Vec::new();
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        s: &'a SourceSpec,
        by_name: &BTreeMap<&str, &'a SourceSpec>,
        state: &mut BTreeMap<&'a str, u8>,
        done: &mut Vec<&'a SourceSpec>,
        path: &mut Vec<&'a str>,
    ) -> Result<()> {
        match state.get(s.name.as_str()) {
            Some(2) => return Ok(()),
            Some(1) => {
                path.push(&s.name);
                return Err(bad_input(format!(
                    "[[source]] needs form a cycle: {}",
                    path.join(" -> ")
                )));
            }
            _ => {}
        }
        state.insert(&s.name, 1);
        path.push(&s.name);
        for n in &s.needs {
            if let Some(d) = by_name.get(n.as_str()) {
                visit(d, by_name, state, done, path)?;
            }
        }
        path.pop();
        state.insert(&s.name, 2);
        done.push(s);
        Ok(())
    }
    for s in &spec.source {
        visit(s, &by_name, &mut state, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

/// One `[[cargo]]` entry of the spec: a crate whose binaries go into the
/// image.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CrateSpec {
    /// The crate's (package's) name.
    pub name: String,
    /// The exact version (`"0.13.0"` or `"=0.13.0"`); required for a crate
    /// from the registry, optional for a `path` crate (then it must match).
    #[serde(default)]
    pub version: Option<String>,
    /// A local crate folder, relative to the spec's folder, used instead of
    /// the registry (tests, in-repo tools). It must be its own workspace.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Cargo features to enable.
    #[serde(default)]
    pub features: Vec<String>,
    /// Builds without the crate's default features.
    #[serde(default, alias = "no-default-features")]
    pub no_default_features: bool,
    /// The binaries to install; all binaries of the crate when empty.
    #[serde(default)]
    pub bins: Vec<String>,
    /// The folder in the image the binaries go to.
    #[serde(default = "default_dest")]
    pub dest: String,
    /// Platforms this crate is not built for (it does not support them).
    #[serde(default)]
    pub skip_platforms: Vec<String>,
    /// A profile the crate belongs to: locked always, built only when the
    /// build names the profile (`--profile full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

fn default_dest() -> String {
    "/usr/local/bin".to_string()
}

impl CrateSpec {
    /// The pinned version without a leading `=`, if any.
    pub fn exact_version(&self) -> Option<&str> {
        self.version
            .as_deref()
            .map(|v| v.trim().trim_start_matches('='))
    }

    /// Whether the spec asks not to build this crate for `platform`.
    /// Whether the crate is part of a build with these profiles.
    pub fn active(&self, profiles: &[String]) -> bool {
        self.profile.as_ref().is_none_or(|p| profiles.contains(p))
    }

    pub fn skips(&self, platform: &Platform) -> bool {
        self.skip_platforms
            .iter()
            .any(|s| s.parse::<Platform>().is_ok_and(|p| &p == platform))
    }

    /// Checks the entry on its own (names, version, paths); the error names
    /// the crate and the field.
    pub fn check(&self) -> Result<()> {
        let who = format!("cargo crate {:?}", self.name);
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad_input(format!(
                "{who}: name must be a crate name (letters, digits, - and _)"
            )));
        }
        match (self.exact_version(), &self.path) {
            (None, None) => {
                return Err(bad_input(format!(
                    "{who}: needs an exact `version` (or a local `path`)"
                )))
            }
            (Some(v), _) if !is_exact_version(v) => {
                return Err(bad_input(format!(
                    "{who}: version {v:?} must be one exact version like \"1.2.3\""
                )))
            }
            _ => {}
        }
        if let Some(p) = &self.path {
            if p.is_absolute() {
                return Err(bad_input(format!(
                    "{who}: path {} must be relative to the spec's folder",
                    p.display()
                )));
            }
        }
        if !self.dest.starts_with('/') {
            return Err(bad_input(format!(
                "{who}: dest {:?} must be an absolute folder in the image",
                self.dest
            )));
        }
        for f in self.features.iter().chain(&self.bins) {
            if f.is_empty() || f.contains(|c: char| c.is_whitespace() || c == ',') {
                return Err(bad_input(format!(
                    "{who}: feature or bin name {f:?} is not a single name"
                )));
            }
        }
        for s in &self.skip_platforms {
            s.parse::<Platform>()
                .map_err(|e| bad_input(format!("{who}: skip_platforms: {e}")))?;
        }
        Ok(())
    }
}

/// `1.2.3`, `1.2.3-rc.1`, `1.2.3+build`: what a `=` requirement pins (a
/// SemVer version, as cargo reads it; `1.2` or `^1` are ranges).
pub(crate) fn is_exact_version(v: &str) -> bool {
    semver::Version::parse(v).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Spec> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, text).unwrap();
        Spec::load(&p)
    }

    const OK: &str = r#"
platforms = ["linux/amd64", "linux/arm/v7"]
[image]
name = "netshoot"
tag = "t"
cmd = ["zsh"]
[[local]]
src = "f"
dest = "/etc/f"
mode = "0600"
owner = "1:2"
[[url]]
name = "x"
dest = "/usr/bin/x"
mode = 0o755
[url.platform."linux/amd64"]
url = "http://127.0.0.1/x.tar.gz"
sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
path = "x"
"#;

    #[test]
    fn parses_a_full_spec() {
        let s = load(OK).unwrap();
        assert_eq!(s.platforms.len(), 2);
        assert_eq!(s.local[0].mode, Some(0o600));
        assert_eq!(s.local[0].owner, Some((1, 2)));
        assert_eq!(s.url[0].mode, Some(0o755));
        assert_eq!(s.url[0].platform["linux/amd64"].format(), UrlFormat::TarGz);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load(&OK.replace("cmd =", "cmdd ="))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cmdd") && e.contains("s.toml"), "{e}");
        let e = load(&OK.replace("linux/arm/v7", "linux/sparc"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux/sparc"), "{e}");
        let e = load(&OK.replace("\"0600\"", "\"9\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mode"), "{e}");
        let e = load(&OK.replace("tag = \"t\"", "tag = 3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line") && e.contains("string"), "{e}");
    }

    /// The whole chain of `text`'s error.
    fn load_err(text: &str) -> String {
        format!("{:#}", load(text).unwrap_err())
    }

    const VARIANT: &str = r#"
[variant.nonroot]
tag_suffix = "-nonroot"
user = "65532:65532"
username = "nonroot"
home = "/home/nonroot"
[variant.nonroot.capabilities]
"/usr/bin/ping" = "cap_net_raw=p"
[variant.nonroot.guarded]
"/usr/bin/tcpdump" = "cap_net_raw=ep"
"#;

    #[test]
    fn variant_capabilities_without_effective_bit_guarded_with_it() {
        let s = load(&format!("{OK}{VARIANT}")).unwrap();
        assert_eq!(
            s.variant["nonroot"].guarded["/usr/bin/tcpdump"],
            "cap_net_raw=ep"
        );
        let e = load_err(&format!(
            "{OK}{}",
            VARIANT.replace("cap_net_raw=p\"", "cap_net_raw=ep\"")
        ));
        assert!(
            e.contains("\"/usr/bin/ping\"") && e.contains("effective bit"),
            "{e}"
        );
        let e = load_err(&format!(
            "{OK}{}",
            VARIANT.replace("cap_net_raw=ep", "cap_net_raw=p")
        ));
        assert!(
            e.contains("/usr/bin/tcpdump") && e.contains("no effective bit"),
            "{e}"
        );
        let twice = format!("{VARIANT}\"/usr/sbin/tcpdump\" = \"cap_net_raw=ep\"\n");
        let e = load_err(&format!("{OK}{twice}"));
        assert!(
            e.contains("same file name") && e.contains("/usr/sbin/tcpdump"),
            "{e}"
        );
        let both = format!("{VARIANT}\"/usr/bin/ping\" = \"cap_net_raw=ep\"\n");
        let e = load_err(&format!("{OK}{both}"));
        assert!(e.contains("both"), "{e}");
    }
}
