//! `netshoot-build build`: the pipeline, spec in, multi-arch OCI layout
//! out. A [`Recipe`] names the sources; each is locked, pinned and
//! prepared (fetched, verified, compiled) for every target before anything
//! is written; each platform's contributions are assembled into one tree,
//! split into layers and written with its config, manifest and SBOMs; the
//! staged layout is moved into `--out` only when everything succeeded.

use crate::cache::Cache;
use crate::error::{bad_input, Result};
use crate::image::recipe::{Layers, Recipe};
use crate::image::stage::{commit_images, Stage};
use crate::image::write::{rfc3339, write_image, BuiltImage};
use crate::lockfile::Lockfile;
use crate::source::{Context, Contribution, Owners, Placement, Source};
use crate::spec::Spec;
use crate::target::Target;
use image_layout::layout::BlobRef;
use image_layout::{Compression, Digest, LayerOptions, Platform, Tree};
use std::path::PathBuf;

/// What to build and where.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The spec file.
    pub spec: PathBuf,
    /// The OCI layout folder to write.
    pub out: PathBuf,
    /// A subset of the spec's platforms (all when empty).
    pub platforms: Vec<Platform>,
    /// Tags for the image in `index.json` (the spec's tag when empty).
    pub tags: Vec<String>,
    /// Cache folder (default: see [`Cache::open`]).
    pub cache: Option<PathBuf>,
    /// Layer compression.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: created time and the mtime ceiling.
    pub source_date_epoch: u64,
    /// Worker threads for compression (never changes the bytes).
    pub threads: usize,
    /// No progress on stderr (overrides `progress`).
    pub quiet: bool,
    /// How progress is shown on stderr: plain lines, or bars on a
    /// terminal (see [`crate::progress`]).
    pub progress: crate::progress::Progress,
    /// Mirrors from flags and the host.
    pub mirrors: crate::apt::MirrorConfig,
    /// Fail instead of relocking when the lock is missing or stale.
    pub locked: bool,
    /// Maximum number of layers per image (see `layering`).
    pub max_layers: usize,
    /// A variant of the spec to build (`--variant nonroot`).
    pub variant: Option<String>,
    /// Profiles whose entries are built too (`--profile full`).
    pub profiles: Vec<String>,
    /// Config labels from the command line (`--label KEY=VALUE`); they
    /// override the spec's and the ones filled in.
    pub labels: Vec<(String, String)>,
}

/// The outcome of a build.
#[derive(Clone, Debug)]
pub struct BuildResult {
    /// The multi-arch index blob.
    pub index: BlobRef,
    /// The tags written.
    pub tags: Vec<String>,
    /// The per-platform images.
    pub images: Vec<BuiltImage>,
    /// The output folder.
    pub out: PathBuf,
}

/// Reads `SOURCE_DATE_EPOCH` (default 0); a malformed value is bad input.
pub fn source_date_epoch_from_env() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
            bad_input(format!(
                "SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970"
            ))
        }),
        _ => Ok(0),
    }
}

/// Runs a build: the pipeline, one step a line.
pub fn build(opts: &BuildOptions) -> Result<BuildResult> {
    let spec = Spec::load(&opts.spec)?;
    let targets = select_targets(&spec, &opts.platforms)?;
    let bars = if opts.quiet {
        crate::progress::Progress::quiet()
    } else {
        opts.progress.clone()
    };
    let cache = Cache::open(opts.cache.as_deref())?.with_progress(bars.clone());
    let recipe = Recipe::for_build(
        spec,
        &crate::image::recipe::Options {
            variant: opts.variant.as_deref(),
            tags: &opts.tags,
            labels: &opts.labels,
            source_date_epoch: opts.source_date_epoch,
            max_layers: opts.max_layers,
        },
    )?;
    let log = |msg: String| bars.step(msg);
    let cx = Context {
        spec: &recipe.spec,
        cache: &cache,
        mirrors: &opts.mirrors,
        profiles: &opts.profiles,
        locked: opts.locked,
        epoch: opts.source_date_epoch,
        log: &log,
        progress: &bars,
    };
    let lock = current_lock(&cx, &recipe.sources, &targets)?;
    let parts = prepare(&cx, &recipe.sources, &lock, &targets)?;
    let stage = Stage::prepare(&opts.out)?;
    let images = write_images(&recipe, &targets, parts, &stage, opts, &cache, &bars)?;
    let index = commit_images(stage, &recipe.spec, &images, &recipe.tags, &opts.out, &log)?;
    Ok(BuildResult {
        index,
        tags: recipe.tags,
        images,
        out: opts.out.clone(),
    })
}

/// The lock the build uses (relocked when stale, unless `--locked`), with
/// the first downloads of unpinned urls pinned and written into it.
fn current_lock(cx: &Context, sources: &[Box<dyn Source>], targets: &[Target]) -> Result<Lockfile> {
    let spec = cx.spec;
    for (profile, names) in crate::urls::check_profiles(spec, cx.profiles)? {
        (cx.log)(format!(
            "left out (profile {profile}): {}; add them with --profile {profile}",
            names.join(", ")
        ));
    }
    let needs_lock = spec.apt.is_some()
        || !spec.cargo.is_empty()
        || !spec.source.is_empty()
        || crate::urls::needs_pins(spec, cx.profiles);
    let mut lock = if needs_lock {
        ensure_lock(spec, cx.mirrors, cx.locked, cx.profiles, cx.cache, cx.log)?
    } else {
        Lockfile::default()
    };
    let mut changed = false;
    for s in sources {
        changed |= s.pin(cx, targets, &mut lock)?;
    }
    if changed {
        let path = crate::lockfile::path_for(&spec.path);
        lock.write(&path)?;
        (cx.log)(format!("recorded new pins in {}", path.display()));
    }
    Ok(lock)
}

/// Every source's contribution, per target: `out[target][source]`.
fn prepare(
    cx: &Context,
    sources: &[Box<dyn Source>],
    lock: &Lockfile,
    targets: &[Target],
) -> Result<Vec<Vec<Contribution>>> {
    let mut out: Vec<Vec<Contribution>> = targets.iter().map(|_| Vec::new()).collect();
    for s in sources {
        let parts = s.prepare(cx, lock, targets)?;
        for (per_target, part) in out.iter_mut().zip(parts) {
            for n in &part.notes {
                (cx.log)(n.clone());
            }
            per_target.push(part);
        }
    }
    Ok(out)
}

/// Assembles and writes each platform's image, side by side; the results
/// come back in target order, so the index never depends on which
/// finished first.
fn write_images(
    recipe: &Recipe,
    targets: &[Target],
    parts: Vec<Vec<Contribution>>,
    stage: &Stage,
    opts: &BuildOptions,
    cache: &Cache,
    bars: &crate::progress::Progress,
) -> Result<Vec<BuiltImage>> {
    let layout = stage.layout();
    let lopts = LayerOptions {
        compression: opts.compression,
        source_date_epoch: opts.source_date_epoch,
        threads: opts.threads.max(1),
    };
    let note = bars.clone();
    let layer_cache = crate::layercache::LayerCache::open(
        cache.root(),
        opts.out
            .join("oci-layout")
            .is_file()
            .then_some(opts.out.as_path()),
        move |m| note.step(m),
    )
    .ok();
    let log = |msg: String| bars.step(msg);
    std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .zip(parts)
            .map(|(t, parts)| {
                let (layout, lopts, layer_cache, log) = (&layout, &lopts, &layer_cache, &log);
                s.spawn(move || -> Result<BuiltImage> {
                    let p = t.oci();
                    let (groups, sbom) = assemble(recipe, parts, opts.source_date_epoch)?;
                    let mut img = write_image(
                        &recipe.spec,
                        &p,
                        groups,
                        layout,
                        lopts,
                        log,
                        bars,
                        recipe.user.clone(),
                        layer_cache.as_ref(),
                    )?;
                    let input = crate::sbom::SbomInput {
                        image_name: recipe.sbom_name.clone(),
                        image_version: recipe.sbom_version.clone(),
                        platform: p.to_string(),
                        subject_digest: img.manifest.digest.to_string(),
                        created: rfc3339(opts.source_date_epoch),
                        distro: recipe.distro.clone(),
                        packages: sbom,
                    };
                    img.referrers =
                        crate::image::referrers::write_sboms(layout, &img.manifest, &input)?;
                    log(format!(
                        "sbom {p}: {} packages (SPDX 2.3, CycloneDX 1.5)",
                        input.packages.len()
                    ));
                    Ok(img)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a platform build thread panicked")))
            })
            .collect()
    })
}

/// Named trees, one per layer, bottom first.
type Layered = Vec<(String, Tree)>;

/// One platform's contributions as layers and SBOM packages: the package
/// manager's tree is the base (with the spec's folders and the variant
/// applied), the other sources' files go on top in source order.
fn assemble(
    recipe: &Recipe,
    parts: Vec<Contribution>,
    epoch: u64,
) -> Result<(Layered, Vec<crate::sbom::SbomPackage>)> {
    let mut base = Tree::new();
    let mut owners: Option<Owners> = None;
    let mut extra: Vec<(Placement, Tree)> = Vec::new();
    let mut sbom = Vec::new();
    for part in parts {
        sbom.extend(part.sbom);
        match (part.owners, &owners) {
            (Some(o), None) => {
                base = part.tree;
                owners = Some(o);
            }
            _ => extra.push((part.placement, part.tree)),
        }
    }
    if recipe.dirs {
        crate::variant::apply_dirs(&mut base, &recipe.spec.dir, epoch)?;
    }
    if let Some((name, v)) = &recipe.variant {
        // Capabilities may name compiled or downloaded tools (trip), which
        // live in the other sources' trees.
        let mut others: Vec<&mut Tree> = extra.iter_mut().map(|(_, t)| t).collect();
        crate::variant::apply(&mut base, name, v, epoch, &mut others)?;
    }
    let sbom = crate::image::referrers::packages(&base, sbom);
    let owners = owners.unwrap_or_default();
    let placed = |p: Placement| -> Vec<&Tree> {
        extra
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, t)| t)
            .collect()
    };
    let (tools, top) = (placed(Placement::Tools), placed(Placement::Top));
    let groups = match recipe.layers {
        Layers::Split(max) => {
            let max = if owners.origin.is_empty() { 1 } else { max };
            crate::layering::split(&base, &owners, max, &tools, &top)
        }
        Layers::One(name) => crate::layering::split(&base, &owners, 1, &tools, &top)
            .into_iter()
            .map(|(_, t)| (name.to_string(), t))
            .collect(),
    };
    Ok((groups, sbom))
}

/// The digest of everything in the spec that decides the lock.
pub fn spec_digest(spec: &Spec) -> Result<String> {
    let apt = match &spec.apt {
        Some(a) => crate::apt::spec_digest_part(spec, a)?,
        None => serde_json::Value::Null,
    };
    let mut cargo = Vec::new();
    for c in &spec.cargo {
        // An in-repo crate's own sources decide its lock too: an edit relocks.
        let tree = match &c.path {
            Some(p) => Some(crate::source::cargo::compile::tree_digest(
                &spec.base_dir().join(p),
            )?),
            None => None,
        };
        cargo.push(serde_json::json!({"spec": c, "tree": tree}));
    }
    let mut v = serde_json::json!({
        "platforms": spec.platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "apt": apt,
    });
    // Only present when used, so locks made before cargo sources existed
    // stay current.
    if !cargo.is_empty() {
        v["cargo"] = serde_json::Value::Array(cargo);
    }
    if !spec.source.is_empty() {
        // Which package from where; recipes decide builds, not the lock.
        let st = spec.statics.as_ref();
        v["sources"] = serde_json::json!({
            "repository": st.map(|s| &s.repository),
            "suite": st.map(|s| &s.suite),
            "component": st.map(|s| &s.component),
            "entries": spec.source.iter().map(|s| (s.name.clone(), s.suite.clone(), s.version.clone())).collect::<Vec<_>>(),
        });
    }
    Ok(Digest::of(&image_layout::canonical_json(&v)?)
        .hex()
        .to_string())
}

/// Resolves every platform of the spec and writes the lockfile.
pub fn lock(
    spec: &Spec,
    mirrors: &crate::apt::MirrorConfig,
    profiles: &[String],
    cache: &Cache,
    log: &(dyn Fn(String) + Sync),
) -> Result<Lockfile> {
    crate::urls::check_profiles(spec, profiles)?;
    let path = crate::lockfile::path_for(&spec.path);
    // Pins of downloads outside the requested profiles survive a relock.
    let previous = Lockfile::read(&path).ok().flatten();
    let mut lock = Lockfile {
        version: crate::lockfile::LOCK_VERSION,
        spec_digest: spec_digest(spec)?,
        ..Default::default()
    };
    let bars = crate::progress::Progress::quiet();
    let cx = Context {
        spec,
        cache,
        mirrors,
        profiles,
        locked: false,
        epoch: 0,
        log,
        progress: &bars,
    };
    // Every kind locks, whatever a build of one recipe would use.
    let kinds: [Box<dyn Source>; 4] = [
        Box::new(crate::source::apt::Apt),
        Box::new(crate::source::cargo::Cargo),
        Box::new(crate::source::debsrc::DebianSources(
            crate::source::debsrc::Layout::Image,
        )),
        Box::new(crate::source::url::Url),
    ];
    for k in &kinds {
        k.lock(&cx, previous.as_ref(), &mut lock)?;
    }
    lock.write(&path)?;
    log(format!("wrote {}", path.display()));
    Ok(lock)
}

/// The current lock: the one on disk when it matches the spec, else a new
/// one (or an error with `--locked`).
pub(crate) fn ensure_lock(
    spec: &Spec,
    mirrors: &crate::apt::MirrorConfig,
    locked: bool,
    profiles: &[String],
    cache: &Cache,
    log: &(dyn Fn(String) + Sync),
) -> Result<Lockfile> {
    let path = crate::lockfile::path_for(&spec.path);
    let want = spec_digest(spec)?;
    let current = Lockfile::read(&path)?;
    match current {
        Some(l) if l.spec_digest == want => Ok(l),
        other => {
            let why = if other.is_some() {
                "is out of date with the spec"
            } else {
                "does not exist"
            };
            if locked {
                return Err(bad_input(format!(
                    "{} {why} and --locked was given: run `netshoot-build lock --spec {}{}`",
                    path.display(),
                    spec.path.display(),
                    profiles
                        .iter()
                        .map(|p| format!(" --profile {p}"))
                        .collect::<String>()
                )));
            }
            log(format!("{} {why}: locking", path.display()));
            lock(spec, mirrors, profiles, cache, log)
        }
    }
}

pub(crate) fn select_platforms(spec: &Spec, wanted: &[Platform]) -> Result<Vec<Platform>> {
    if wanted.is_empty() {
        return Ok(spec.platforms.clone());
    }
    for w in wanted {
        if !spec.platforms.contains(w) {
            return Err(bad_input(format!(
                "--platform {w}: not in {} (platforms: {})",
                spec.path.display(),
                spec.platforms
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    // Keep the spec's order whatever order the flags came in.
    Ok(spec
        .platforms
        .iter()
        .filter(|p| wanted.contains(p))
        .cloned()
        .collect())
}

/// The targets of the selected platforms, in the spec's order.
pub(crate) fn select_targets(spec: &Spec, wanted: &[Platform]) -> Result<Vec<Target>> {
    select_platforms(spec, wanted)?
        .iter()
        .map(Target::of)
        .collect()
}
