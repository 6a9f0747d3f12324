//! The static toolbox: the `[[source]]` programs alone, as a `FROM
//! scratch`-style multi-arch image (`build --variant static`) or as a
//! tarball to copy into a running container (`export --static-bundle`).
//! Neither carries a libc: every program is checked to be static.

use crate::build::{BuildOptions, BuildResult};
use crate::cache::Cache;
use crate::error::{bad_input, Result};
use crate::sources::BuiltSource;
use crate::spec::Spec;
use image_layout::{Body, Compression, Entry, LayerOptions, Node, Platform, Tree};
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the programs go in the image.
const BIN_DIR: &str = "/usr/bin";
/// The top folder of a bundle.
pub const BUNDLE_DIR: &str = "netshoot";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

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
    prog: &crate::progress::Progress,
) -> Result<Vec<PlatformBuild>> {
    // Platforms compile side by side: much of a C build is a serial
    // configure script, so two of them keep two cores busier than one
    // after the other. Results come back in spec order.
    let results: Vec<Result<PlatformBuild>> = std::thread::scope(|s| {
        let handles: Vec<_> = platforms
            .iter()
            .map(|p| {
                s.spawn(move || {
                    let built = crate::sources::build_all(
                        spec,
                        &lock.sources,
                        opts_mirrors,
                        p,
                        cache,
                        epoch,
                        log,
                        prog,
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
        meta: crate::build::meta(mode, 0, 0, epoch),
    })
}

fn data_entry(data: impl Into<Vec<u8>>, mode: u32, epoch: u64) -> Entry {
    let data = data.into();
    Entry {
        node: Node::File {
            size: data.len() as u64,
            body: Body::Bytes(Arc::from(data)),
        },
        meta: crate::build::meta(mode, 0, 0, epoch),
    }
}

fn link_entry(target: &str, epoch: u64) -> Entry {
    Entry {
        node: Node::Symlink(target.to_string()),
        meta: crate::build::meta(0o777, 0, 0, epoch),
    }
}

fn dir_entry(mode: u32, epoch: u64) -> Entry {
    Entry {
        node: Node::Dir,
        meta: crate::build::meta(mode, 0, 0, epoch),
    }
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
fn image_tree(built: &[BuiltSource], ca: &[u8], epoch: u64) -> Result<Tree> {
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
    // Applets at the paths their program lists (/bin/sh, /sbin/ifconfig...),
    // where no real program of the same name is.
    for (path, _, prog) in applet_links(built) {
        if t.get(path.trim_start_matches('/')).is_none() {
            t.insert(&path, link_entry(&format!("{BIN_DIR}/{prog}"), epoch))
                .map_err(err)?;
        }
    }
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
fn bundle_tree(built: &[BuiltSource], ca: &[u8], epoch: u64) -> Result<Tree> {
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

/// `build --variant static`: the static image, `NAME:TAG-static`.
pub(crate) fn build_image(
    opts: &BuildOptions,
    mut spec: Spec,
    platforms: &[Platform],
    cache: &Cache,
    prog: &crate::progress::Progress,
) -> Result<BuildResult> {
    let st = spec
        .statics
        .clone()
        .ok_or_else(|| bad_input(format!("{}: has no [static] table", spec.path.display())))?;
    if spec.source.is_empty() {
        return Err(bad_input(format!(
            "{}: --variant static needs [[source]] entries",
            spec.path.display()
        )));
    }
    let tags: Vec<String> = if opts.tags.is_empty() {
        vec![spec.image.tag.clone()]
    } else {
        opts.tags.clone()
    }
    .into_iter()
    .map(|t| format!("{t}{}", st.tag_suffix))
    .collect();
    let version = spec.image.tag.clone();
    spec.image.labels =
        crate::build::image_labels(&spec, &version, &opts.labels, opts.source_date_epoch)?;
    spec.image.labels.insert(
        "org.opencontainers.image.title".into(),
        format!("{}-static", spec.image.name),
    );
    spec.image.cmd = Some(st.cmd.clone());
    spec.image.entrypoint = None;
    spec.image.env = vec![PATH_ENV.to_string()];
    spec.image.workdir = Some("/".into());
    spec.image.user = Some("0:0".into());
    let spec = spec;
    let progress = |msg: String| prog.step(msg);
    let lock = crate::build::ensure_lock(
        &spec,
        &opts.mirrors,
        opts.locked,
        &opts.profiles,
        cache,
        &progress,
    )?;
    // Everything compiled and checked before anything is written.
    let built = build_platforms(
        &spec,
        &opts.mirrors,
        &lock,
        platforms,
        cache,
        opts.source_date_epoch,
        &progress,
        prog,
    )?;
    let stage = crate::build::Stage::prepare(&opts.out)?;
    let layout = stage.layout();
    let lopts = LayerOptions {
        compression: opts.compression,
        source_date_epoch: opts.source_date_epoch,
        threads: opts.threads.max(1),
    };
    let mut images = Vec::new();
    for (p, b, ca) in &built {
        summary(p, b, &progress);
        let tree = image_tree(b, ca, opts.source_date_epoch)?;
        let mut img = crate::build::write_image(
            &spec,
            p,
            vec![("static".to_string(), tree)],
            &layout,
            &lopts,
            &progress,
            prog,
            Some("0:0".into()),
            None,
        )?;
        // The SBOM lists the source packages the programs were compiled
        // from (purl `pkg:deb/debian/NAME@VERSION?arch=source`).
        let input = crate::sbom::SbomInput {
            image_name: format!("{}-static", spec.image.name),
            image_version: format!("{version}{}", st.tag_suffix),
            platform: p.to_string(),
            subject_digest: img.manifest.digest.to_string(),
            created: crate::build::rfc3339(opts.source_date_epoch),
            distro: crate::build::debian_distro(&st.suite),
            packages: b
                .iter()
                .map(|s| crate::sbom::SbomPackage {
                    kind: crate::sbom::PackageKind::Deb,
                    name: s.name.clone(),
                    version: s.version.clone(),
                    arch: Some("source".into()),
                    source: None,
                    license: None,
                    sha256: None,
                    download_url: None,
                    depends_on: Vec::new(),
                })
                .collect(),
        };
        img.referrers = crate::attach::write_sboms(&layout, &img.manifest, &input)?;
        images.push(img);
    }
    let index_blob =
        crate::build::commit_images(stage, &spec, &images, &tags, &opts.out, &progress)?;
    Ok(BuildResult {
        index: index_blob,
        tags,
        images,
        out: opts.out.clone(),
    })
}

/// What `export --static-bundle` needs.
#[derive(Clone, Debug)]
pub struct BundleOptions {
    /// The spec file.
    pub spec: PathBuf,
    /// The platform whose programs to bundle.
    pub platform: Platform,
    /// The `.tar.gz` to write.
    pub output: PathBuf,
    /// Cache folder.
    pub cache: Option<PathBuf>,
    /// Mirrors.
    pub mirrors: crate::apt::MirrorConfig,
    /// Refuse to relock.
    pub locked: bool,
    /// mtimes in the archive.
    pub source_date_epoch: u64,
    /// Progress on stderr.
    pub progress: crate::progress::Progress,
}

/// `export --static-bundle`: the programs of one platform, with their
/// applet links and a CA bundle, as `netshoot/...` in a gzip tarball.
/// Written to a temporary file beside `output` and renamed, so a failure
/// leaves no partial archive (and an existing one untouched).
pub fn export_bundle(o: &BundleOptions) -> Result<()> {
    let spec = Spec::load(&o.spec)?;
    crate::build::select_platforms(&spec, std::slice::from_ref(&o.platform))?;
    if spec.source.is_empty() {
        return Err(bad_input(format!(
            "{}: --static-bundle needs [[source]] entries",
            spec.path.display()
        )));
    }
    let cache = Cache::open(o.cache.as_deref())?.with_progress(o.progress.clone());
    let progress = |msg: String| o.progress.step(msg);
    let lock = crate::build::ensure_lock(&spec, &o.mirrors, o.locked, &[], &cache, &progress)?;
    let built = build_platforms(
        &spec,
        &o.mirrors,
        &lock,
        std::slice::from_ref(&o.platform),
        &cache,
        o.source_date_epoch,
        &progress,
        &o.progress,
    )?;
    let (p, b, ca) = &built[0];
    summary(p, b, &progress);
    let tree = bundle_tree(b, ca, o.source_date_epoch)?;
    let parent = match o.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".netshoot-bundle-")
        .tempfile_in(&parent)
        .map_err(|e| bad_input(format!("-o {}: {e}", o.output.display())))?;
    let lopts = LayerOptions {
        compression: Compression::Gzip { level: 9 },
        source_date_epoch: o.source_date_epoch,
        threads: 1,
    };
    let (info, file) = image_layout::write_layer(&tree, &lopts, tmp)
        .map_err(|e| bad_input(format!("-o {}: {e}", o.output.display())))?;
    file.persist(&o.output)
        .map_err(|e| bad_input(format!("-o {}: {}", o.output.display(), e.error)))?;
    progress(format!(
        "wrote {}: {} entries for {p} ({} bytes unpacked)",
        o.output.display(),
        info.entries,
        info.uncompressed_size
    ));
    Ok(())
}
