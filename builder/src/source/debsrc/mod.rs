//! `[[source]]` entries: Debian source packages compiled statically with
//! zig for every target (see `sources.rs` for locking, fetching and the
//! recipes). Their programs, applet links, accounts and the CA bundle of
//! the locked ca-certificates package make the static toolbox, as an
//! image's root filesystem or as a bundle to copy into a container.

pub mod compile;

use super::cargo::Program;
use super::{Context, Contribution, Source};
use crate::cache::Cache;
use crate::error::{bad_input, Result};
use crate::image::write::meta;
use crate::lockfile::Lockfile;
use crate::sbom::{PackageKind, SbomPackage};
use crate::source::debsrc::compile::BuiltSource;
use crate::spec::Spec;
use crate::target::Target;
use image_layout::{Body, Entry, Node, Platform, Tree};
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

/// Where the programs go in the image.
const BIN_DIR: &str = "/usr/bin";
/// The top folder of a bundle.
pub const BUNDLE_DIR: &str = "netshoot";
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// How the programs are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// An image's root filesystem (`/usr/bin`, applets where they list
    /// themselves, `/etc/passwd`).
    Image,
    /// `netshoot/bin/` with relative applet links, to copy anywhere.
    Bundle,
}

/// The spec's `[[source]]` entries, laid out as `Layout` says.
pub struct DebianSources(pub Layout);

impl Source for DebianSources {
    fn kind(&self) -> &'static str {
        "source"
    }

    fn lock(&self, cx: &Context, _: Option<&Lockfile>, lock: &mut Lockfile) -> Result<()> {
        lock.sources =
            crate::source::debsrc::compile::lock_sources(cx.spec, cx.mirrors, cx.cache, cx.log)?;
        Ok(())
    }

    fn prepare(
        &self,
        cx: &Context,
        lock: &Lockfile,
        targets: &[Target],
    ) -> Result<Vec<Contribution>> {
        let platforms: Vec<Platform> = targets.iter().map(Target::oci).collect();
        let built = build_platforms(
            cx.spec,
            cx.mirrors,
            lock,
            &platforms,
            cx.cache,
            cx.epoch,
            cx.log,
            cx.progress,
        )?;
        // The Rust tools of the image, from the same cache entries.
        let (tools, tool_sbom) = crate::source::cargo::programs(cx, lock, targets)?;
        let title = format!("{} {}", cx.spec.image.name, cx.spec.image.tag);
        built
            .iter()
            .zip(tools)
            .zip(tool_sbom)
            .map(|(((p, b, ca), progs), rust_sbom)| {
                summary(p, b, cx.log);
                let listing = listing(&title, p, b, &progs);
                let tree = match self.0 {
                    Layout::Image => image_tree(b, &progs, ca, &listing, cx.epoch)?,
                    Layout::Bundle => bundle_tree(b, &progs, ca, &listing, cx.epoch)?,
                };
                // The SBOM lists the source packages the programs were
                // compiled from (`pkg:deb/debian/NAME@VERSION?arch=source`)
                // and the crates of the Rust tools.
                let mut sbom: Vec<SbomPackage> = b
                    .iter()
                    .map(|s| SbomPackage {
                        kind: PackageKind::Deb,
                        name: s.name.clone(),
                        version: s.version.clone(),
                        arch: Some("source".into()),
                        source: None,
                        license: None,
                        sha256: None,
                        download_url: None,
                        depends_on: Vec::new(),
                    })
                    .collect();
                sbom.extend(rust_sbom);
                Ok(Contribution {
                    tree,
                    placement: super::Placement::Tools,
                    sbom,
                    ..Default::default()
                })
            })
            .collect()
    }
}

/// The toolbox's table of contents, for `/etc/motd` in the image and
/// `netshoot/README` in the bundle: every program and what it was built
/// from.
fn listing(title: &str, p: &Platform, built: &[BuiltSource], tools: &[Program]) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    for b in built {
        for (name, _) in &b.bins {
            rows.push((
                name.clone(),
                format!("{} {} (Debian source package)", b.name, b.version),
            ));
        }
    }
    for t in tools {
        rows.push((
            t.binary.name.clone(),
            format!("{} {} (Rust crate)", t.crate_name, t.version),
        ));
    }
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = format!("{title} static toolbox for {p}: static programs, no libc needed.\n\n");
    for (name, from) in rows {
        out.push_str(&format!("  {name:width$}  {from}\n"));
    }
    let applets: Vec<String> = applet_links(built).into_iter().map(|(_, n, _)| n).collect();
    if !applets.is_empty() {
        out.push_str(&format!(
            "\nApplets ({}): {}\n",
            applets.len(),
            applets.join(" ")
        ));
    }
    out
}

/// One platform's programs and its CA bundle.
type PlatformBuild = (Platform, Vec<BuiltSource>, Vec<u8>);

/// Builds every `[[source]]` entry for each platform and returns them
/// with the platform's CA bundle.
#[allow(clippy::too_many_arguments)]
fn build_platforms(
    spec: &Spec,
    opts_mirrors: &crate::apt::MirrorConfig,
    lock: &crate::lockfile::Lockfile,
    platforms: &[Platform],
    cache: &Cache,
    epoch: u64,
    log: &(dyn Fn(String) + Sync),
    bars: &crate::progress::Progress,
) -> Result<Vec<PlatformBuild>> {
    // Platforms compile side by side: much of a C build is a serial
    // configure script, so two of them keep two cores busier than one
    // after the other. Results come back in spec order.
    let results: Vec<Result<PlatformBuild>> = std::thread::scope(|s| {
        let handles: Vec<_> = platforms
            .iter()
            .map(|p| {
                s.spawn(move || {
                    let built = crate::source::debsrc::compile::build_all(
                        spec,
                        &lock.sources,
                        opts_mirrors,
                        p,
                        cache,
                        epoch,
                        log,
                        bars,
                    )?;
                    let ca = ca_bundle(spec, opts_mirrors, lock, p, cache, log)?;
                    Ok((p.clone(), built, ca))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a static build thread panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// The CA bundle of the locked `ca-certificates` package, as
/// `update-ca-certificates` writes it.
fn ca_bundle(
    spec: &Spec,
    mirrors: &crate::apt::MirrorConfig,
    lock: &crate::lockfile::Lockfile,
    p: &Platform,
    cache: &Cache,
    log: &(dyn Fn(String) + Sync),
) -> Result<Vec<u8>> {
    let missing = || {
        bad_input(format!(
            "{}: the static toolbox takes its CA bundle from the locked ca-certificates \
             package: add \"ca-certificates\" to apt.packages",
            spec.path.display()
        ))
    };
    let apt = spec.apt.as_ref().ok_or_else(missing)?;
    let pl = lock.apt.get(&p.to_string()).ok_or_else(missing)?;
    let mut only = pl.clone();
    only.packages.retain(|x| x.name == "ca-certificates");
    if only.packages.is_empty() {
        return Err(missing());
    }
    let got = crate::apt::fetch_payloads(spec, apt, mirrors, &only, cache, log)?;
    let mut certs = Vec::new();
    for (_, payload) in &got {
        let mut f = std::fs::File::open(&payload.data_tar)
            .map_err(|e| bad_input(format!("{}: {e}", payload.data_tar.display())))?;
        for e in &payload.entries {
            if e.kind == 'f'
                && e.path.starts_with("usr/share/ca-certificates/")
                && e.path.ends_with(".crt")
            {
                let mut body = vec![0u8; e.size as usize];
                f.seek(SeekFrom::Start(e.offset))
                    .and_then(|_| f.read_exact(&mut body))
                    .map_err(|err| bad_input(format!("{}: {err}", payload.data_tar.display())))?;
                certs.push((e.path.clone(), body));
            }
        }
    }
    certs.sort();
    Ok(crate::rootfs::bundle(certs.into_iter().map(|(_, b)| b)))
}

fn file_entry(path: &Path, mode: u32, epoch: u64) -> Result<Entry> {
    let size = std::fs::metadata(path)
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?
        .len();
    Ok(Entry {
        node: Node::File {
            body: Body::File(Arc::new(path.to_path_buf())),
            size,
        },
        meta: meta(mode, 0, 0, epoch),
    })
}

fn data_entry(data: impl Into<Vec<u8>>, mode: u32, epoch: u64) -> Entry {
    let data = data.into();
    Entry {
        node: Node::File {
            size: data.len() as u64,
            body: Body::Bytes(Arc::from(data)),
        },
        meta: meta(mode, 0, 0, epoch),
    }
}

fn link_entry(target: &str, epoch: u64) -> Entry {
    Entry {
        node: Node::Symlink(target.to_string()),
        meta: meta(0o777, 0, 0, epoch),
    }
}

fn dir_entry(mode: u32, epoch: u64) -> Entry {
    Entry {
        node: Node::Dir,
        meta: meta(mode, 0, 0, epoch),
    }
}

/// Puts a Rust tool into `dir` beside the compiled C programs; a name
/// both provide is an error naming both.
fn add_program(t: &mut Tree, prog: &Program, dir: &str, epoch: u64) -> Result<()> {
    let path = format!("{dir}/{}", prog.binary.name);
    if t.get(path.trim_start_matches('/')).is_some() {
        return Err(bad_input(format!(
            "crate {}: its program {} has the name of a [[source]] program",
            prog.crate_name, prog.binary.name
        )));
    }
    t.insert(&path, prog.entry(epoch)?)
        .map_err(|e| bad_input(format!("crate {}: {e}", prog.crate_name)))?;
    Ok(())
}

/// Links of the multi-call programs whose names no real program takes,
/// as (link name, program); the first provider of a name wins.
fn applet_links(built: &[BuiltSource]) -> Vec<(String, String, String)> {
    let real: BTreeSet<&str> = built
        .iter()
        .flat_map(|b| b.bins.iter().map(|(n, _)| n.as_str()))
        .collect();
    let mut taken = BTreeSet::new();
    let mut out = Vec::new();
    for b in built {
        let Some((prog, _)) = b.bins.first() else {
            continue;
        };
        for l in &b.links {
            let name = l.rsplit('/').next().unwrap_or(l);
            if name.is_empty() || real.contains(name) || !taken.insert(name.to_string()) {
                continue;
            }
            out.push((l.clone(), name.to_string(), prog.clone()));
        }
    }
    out
}

/// The image's root filesystem for one platform.
fn image_tree(
    built: &[BuiltSource],
    tools: &[Program],
    ca: &[u8],
    listing: &str,
    epoch: u64,
) -> Result<Tree> {
    let mut t = Tree::new();
    let err = |e: image_layout::tree::TreeError| bad_input(format!("static image: {e}"));
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root"] {
        t.insert(d, dir_entry(if d == "root" { 0o700 } else { 0o755 }, epoch))
            .map_err(err)?;
    }
    t.insert("tmp", dir_entry(0o1777, epoch)).map_err(err)?;
    for b in built {
        for (name, path) in &b.bins {
            t.insert(
                &format!("{BIN_DIR}/{name}"),
                file_entry(path, 0o755, epoch)?,
            )
            .map_err(err)?;
        }
    }
    for prog in tools {
        add_program(&mut t, prog, BIN_DIR, epoch)?;
    }
    // Applets at the paths their program lists (/bin/sh, /sbin/ifconfig...),
    // where no real program of the same name is.
    for (path, _, prog) in applet_links(built) {
        if t.get(path.trim_start_matches('/')).is_none() {
            t.insert(&path, link_entry(&format!("{BIN_DIR}/{prog}"), epoch))
                .map_err(err)?;
        }
    }
    t.insert("etc/motd", data_entry(listing, 0o644, epoch))
        .map_err(err)?;
    t.insert("etc/passwd", data_entry(PASSWD, 0o644, epoch))
        .map_err(err)?;
    t.insert("etc/group", data_entry(GROUP, 0o644, epoch))
        .map_err(err)?;
    t.insert(
        "etc/ssl/certs/ca-certificates.crt",
        data_entry(ca.to_vec(), 0o644, epoch),
    )
    .map_err(err)?;
    Ok(t)
}

/// The bundle's tree: `netshoot/bin/` with the programs and relative
/// applet links, and the CA bundle beside it.
fn bundle_tree(
    built: &[BuiltSource],
    tools: &[Program],
    ca: &[u8],
    listing: &str,
    epoch: u64,
) -> Result<Tree> {
    let mut t = Tree::new();
    let err = |e: image_layout::tree::TreeError| bad_input(format!("static bundle: {e}"));
    t.insert(BUNDLE_DIR, dir_entry(0o755, epoch)).map_err(err)?;
    t.insert(&format!("{BUNDLE_DIR}/bin"), dir_entry(0o755, epoch))
        .map_err(err)?;
    for b in built {
        for (name, path) in &b.bins {
            t.insert(
                &format!("{BUNDLE_DIR}/bin/{name}"),
                file_entry(path, 0o755, epoch)?,
            )
            .map_err(err)?;
        }
    }
    for prog in tools {
        add_program(&mut t, prog, &format!("{BUNDLE_DIR}/bin"), epoch)?;
    }
    t.insert(
        &format!("{BUNDLE_DIR}/README"),
        data_entry(listing, 0o644, epoch),
    )
    .map_err(err)?;
    for (_, name, prog) in applet_links(built) {
        t.insert(
            &format!("{BUNDLE_DIR}/bin/{name}"),
            link_entry(&prog, epoch),
        )
        .map_err(err)?;
    }
    t.insert(
        &format!("{BUNDLE_DIR}/etc/ssl/certs/ca-certificates.crt"),
        data_entry(ca.to_vec(), 0o644, epoch),
    )
    .map_err(err)?;
    Ok(t)
}

fn summary(p: &Platform, built: &[BuiltSource], log: &(dyn Fn(String) + Sync)) {
    let compiled: Vec<String> = built
        .iter()
        .filter(|b| !b.cached)
        .map(|b| format!("{} {:.0}s", b.name, b.seconds))
        .collect();
    log(format!(
        "static {p}: {} programs from {} source packages ({} compiled{}{})",
        built.iter().map(|b| b.bins.len()).sum::<usize>(),
        built.len(),
        compiled.len(),
        if compiled.is_empty() { "" } else { ": " },
        compiled.join(", ")
    ));
}
