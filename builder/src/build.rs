//! `netshoot-build build`: spec in, multi-arch OCI layout out.
//!
//! Sources are fetched and verified, each platform's root filesystem is
//! assembled as an in-memory [`Tree`], written as deterministic layers, and
//! tied together by a config, a manifest per platform and an image index.
//! The result is staged beside the output folder and moved in only when
//! everything succeeded, so a failed build leaves the previous output as it
//! was.

use crate::cache::Cache;
use crate::error::{bad_input, verification, Result};
use crate::lockfile::{LockedPackage, Lockfile};
use crate::spec::Spec;
use anyhow::Context;
use image_layout::layout::{BlobRef, MT_CONFIG, MT_INDEX, MT_MANIFEST, REF_NAME};
use image_layout::oci_spec::image::{
    ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, RootFsBuilder,
};
use image_layout::{
    write_layer, Body, Compression, Digest, Entry, LayerOptions, Meta, Node, OciLayout, Platform,
    Tree,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// The config labels: the spec's, then the OCI ones a user expects filled
/// in when the spec leaves them out (`created` from SOURCE_DATE_EPOCH,
/// `version` from the tag, `revision` and `source` from the git work tree
/// that holds the spec, when there is one), then the command line's.
pub fn image_labels(
    spec: &Spec,
    version: &str,
    cli: &[(String, String)],
    epoch: u64,
) -> Result<BTreeMap<String, String>> {
    const P: &str = "org.opencontainers.image.";
    let mut labels = spec.image.labels.clone();
    let mut fill = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            labels.entry(format!("{P}{k}")).or_insert(v);
        }
    };
    fill("created", Some(rfc3339(epoch)));
    fill("version", Some(version.to_string()));
    let base = spec.base_dir();
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&base)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    fill("revision", git(&["rev-parse", "--verify", "HEAD"]));
    fill(
        "source",
        git(&["remote", "get-url", "origin"]).and_then(|u| public_git_url(&u)),
    );
    for (k, v) in cli {
        labels.insert(k.clone(), v.clone());
    }
    Ok(labels)
}

/// A remote URL as a browsable https URL without credentials, or None for
/// local paths (which would leak a folder name into the image).
fn public_git_url(url: &str) -> Option<String> {
    let url = url.trim();
    let https = if let Some(rest) = url.strip_prefix("https://") {
        // Drop `user:token@`.
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("git@") {
        let (host, path) = rest.split_once(':')?;
        format!("https://{host}/{path}")
    } else if let Some(rest) = url.strip_prefix("ssh://") {
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        format!("https://{}", rest.replacen(':', "/", 1))
    } else {
        return None;
    };
    Some(https.trim_end_matches(".git").to_string())
}

/// One written layer.
#[derive(Clone, Debug)]
pub struct BuiltLayer {
    /// Its group name (`url`, `local`, ...).
    pub name: String,
    /// Compressed blob.
    pub blob: BlobRef,
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Uncompressed size.
    pub uncompressed_size: u64,
    /// Entries in the tar.
    pub entries: usize,
}

/// One platform's image.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// Its platform.
    pub platform: Platform,
    /// Its manifest blob.
    pub manifest: BlobRef,
    /// Its layers, bottom first.
    pub layers: Vec<BuiltLayer>,
    /// Artifacts whose subject is this image (its SBOMs) and their types.
    pub referrers: Vec<(BlobRef, &'static str)>,
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

/// Runs a build.
pub fn build(opts: &BuildOptions) -> Result<BuildResult> {
    let mut spec = Spec::load(&opts.spec)?;
    let platforms = select_platforms(&spec, &opts.platforms)?;
    let prog = if opts.quiet {
        crate::progress::Progress::quiet()
    } else {
        opts.progress.clone()
    };
    let cache = Cache::open(opts.cache.as_deref())?.with_progress(prog.clone());
    if opts.variant.as_deref() == Some("static") && spec.statics.is_some() {
        return crate::toolbox::build_image(opts, spec, &platforms, &cache, &prog);
    }
    let variant = match &opts.variant {
        None => None,
        Some(v) => Some((
            v.clone(),
            spec.variant.get(v).cloned().ok_or_else(|| {
                bad_input(format!(
                    "--variant {v}: {} has no [variant.{v}] (variants: {})",
                    spec.path.display(),
                    if spec.variant.is_empty() {
                        "none".to_string()
                    } else {
                        spec.variant.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ))
            })?,
        )),
    };
    let suffix = variant
        .as_ref()
        .map(|(_, v)| v.tag_suffix.clone())
        .unwrap_or_default();
    let tags: Vec<String> = if opts.tags.is_empty() {
        vec![spec.image.tag.clone()]
    } else {
        opts.tags.clone()
    }
    .into_iter()
    .map(|t| format!("{t}{suffix}"))
    .collect();
    // The spec's tag is the toolset's version; --tag only names the image
    // (a second tag for the same build gives the same bytes).
    let version = spec.image.tag.clone();
    spec.image.labels = image_labels(&spec, &version, &opts.labels, opts.source_date_epoch)?;
    let spec = spec;
    let progress = |msg: String| prog.step(msg);

    let local_tree = local_layer(&spec, opts.source_date_epoch)?;

    // Debian packages: the lock decides what is installed; only the .debs
    // are downloaded when it is current.
    let mut payloads: HashMap<Platform, Vec<(LockedPackage, crate::apt::Payload)>> = HashMap::new();
    let left_out = crate::urls::check_profiles(&spec, &opts.profiles)?;
    for (profile, names) in &left_out {
        progress(format!(
            "left out (profile {profile}): {}; add them with --profile {profile}",
            names.join(", ")
        ));
    }
    let needs_lock = spec.apt.is_some()
        || !spec.cargo.is_empty()
        || !spec.source.is_empty()
        || crate::urls::needs_pins(&spec, &opts.profiles);
    let mut lockfile = if needs_lock {
        Some(ensure_lock(
            &spec,
            &opts.mirrors,
            opts.locked,
            &opts.profiles,
            &cache,
            &progress,
        )?)
    } else {
        None
    };
    // Downloads, each verified against the spec's sha256 or the lock's pin
    // (a first download pins it, unless --locked), before anything is written.
    let url_files = crate::urls::fetch_all(
        &spec,
        &platforms,
        &opts.profiles,
        &cache,
        lockfile.as_mut(),
        opts.locked,
        &progress,
    )?;
    // Compiled tools, per platform, before anything is written: a compile
    // error leaves no output.
    let mut binaries: HashMap<Platform, Vec<crate::crates::BuiltBinary>> = HashMap::new();
    let mut crate_locks: Vec<(crate::crates::CrateSpec, crate::crates::CrateLock)> = Vec::new();
    if let Some(lock) = &lockfile {
        for c in spec.cargo.iter().filter(|c| c.active(&opts.profiles)) {
            let cl = lock.crates.get(&c.name).ok_or_else(|| {
                bad_input(format!(
                    "{}: has no entry for crate {:?}; run `netshoot-build lock`",
                    crate::lockfile::path_for(&spec.path).display(),
                    c.name
                ))
            })?;
            let cl: crate::crates::CrateLock = serde_json::from_value(cl.clone()).map_err(|e| {
                bad_input(format!(
                    "lock entry for crate {:?}: {e}; run `netshoot-build lock`",
                    c.name
                ))
            })?;
            crate_locks.push((c.clone(), cl.clone()));
            for p in &platforms {
                let built = crate::crates::build_crate_with(
                    c,
                    &cl,
                    &spec.base_dir(),
                    p,
                    cache.root(),
                    opts.source_date_epoch,
                    &progress,
                    &prog,
                )?;
                binaries.entry(p.clone()).or_default().extend(built);
            }
        }
    }
    if let (Some(apt), Some(lock)) = (&spec.apt, &lockfile) {
        for p in &platforms {
            let pl = lock.apt.get(&p.to_string()).ok_or_else(|| {
                bad_input(format!(
                    "{}: has no packages for {p}; run `netshoot-build lock`",
                    crate::lockfile::path_for(&spec.path).display()
                ))
            })?;
            let bar = prog.bar(pl.packages.len() as u64, "packages");
            bar.set_message(p.to_string());
            let got = crate::apt::fetch_payloads_with(
                &spec,
                apt,
                &opts.mirrors,
                pl,
                &cache,
                &progress,
                &bar,
            )?;
            drop(bar);
            payloads.insert(p.clone(), got);
        }
    }

    let stage = Stage::prepare(&opts.out)?;
    let note = prog.clone();
    let layer_cache = crate::layercache::LayerCache::open(
        cache.root(),
        opts.out
            .join("oci-layout")
            .is_file()
            .then_some(opts.out.as_path()),
        move |m| note.step(m),
    )
    .ok();
    let layer_cache = &layer_cache;
    let layout = stage.layout();
    let lopts = LayerOptions {
        compression: opts.compression,
        source_date_epoch: opts.source_date_epoch,
        threads: opts.threads.max(1),
    };

    // Platforms are assembled concurrently; each writes its own blobs, and
    // the results are put back in spec order so the index never depends on
    // which finished first.
    let results: Vec<Result<BuiltImage>> = std::thread::scope(|s| {
        let handles: Vec<_> = platforms
            .iter()
            .map(|p| {
                let spec = &spec;
                let url_files = &url_files;
                let local_tree = &local_tree;
                let layout = &layout;
                let progress = &progress;
                let prog = &prog;
                let payloads = &payloads;
                let binaries = &binaries;
                let crate_locks = &crate_locks;
                let variant = variant.as_ref();
                s.spawn(move || {
                    let mut url_tree = Tree::new();
                    for (i, u) in spec.url.iter().enumerate() {
                        let Some(crate::urls::Fetched { file, .. }) =
                            url_files.get(&(i, p.clone()))
                        else {
                            continue;
                        };
                        let size = std::fs::metadata(file)?.len();
                        let (uid, gid) = u.owner.unwrap_or((0, 0));
                        url_tree
                            .insert(
                                &u.dest,
                                Entry {
                                    node: Node::File {
                                        body: Body::File(Arc::new(file.clone())),
                                        size,
                                    },
                                    meta: meta(
                                        u.mode.unwrap_or(0o755),
                                        uid,
                                        gid,
                                        opts.source_date_epoch,
                                    ),
                                },
                            )
                            .map_err(|e| bad_input(format!("url {:?}: {e}", u.name)))?;
                    }
                    let mut cargo_tree = Tree::new();
                    for b in binaries.get(p).map(Vec::as_slice).unwrap_or(&[]) {
                        let size = std::fs::metadata(&b.path)?.len();
                        cargo_tree
                            .insert(
                                &b.dest,
                                Entry {
                                    node: Node::File {
                                        body: Body::File(Arc::new(b.path.clone())),
                                        size,
                                    },
                                    meta: meta(0o755, 0, 0, opts.source_date_epoch),
                                },
                            )
                            .map_err(|e| bad_input(format!("cargo binary {}: {e}", b.name)))?;
                    }
                    // What the SBOM lists besides the dpkg database.
                    let crates_here: Vec<&crate::crates::CrateLock> = crate_locks
                        .iter()
                        .filter(|(c, _)| !c.skips(p))
                        .map(|(_, l)| l)
                        .collect();
                    let urls_here: Vec<crate::attach::UrlInstalled> = spec
                        .url
                        .iter()
                        .enumerate()
                        .filter_map(|(i, u)| {
                            let f = url_files.get(&(i, p.clone()))?;
                            Some(crate::attach::UrlInstalled {
                                name: u.name.clone(),
                                version: u.version.clone(),
                                url: f.url.clone(),
                                sha256: f.sha256.clone(),
                            })
                        })
                        .collect();
                    let with_apt = spec.apt.is_some() && payloads.contains_key(p);
                    let (mut asm, sources) = match (&spec.apt, payloads.get(p)) {
                        (Some(apt), Some(pkgs)) => {
                            let arch = crate::apt::debian_arch(p)?;
                            let asm =
                                crate::rootfs::assemble(pkgs, apt, arch, opts.source_date_epoch)?;
                            for n in &asm.notes {
                                progress(format!("note {p}: {n}"));
                            }
                            let sources: BTreeMap<String, String> = pkgs
                                .iter()
                                .map(|(l, _)| (l.name.clone(), l.source.clone()))
                                .collect();
                            (asm, sources)
                        }
                        _ => (
                            crate::rootfs::Assembled {
                                tree: Tree::new(),
                                origin: Default::default(),
                                notes: Vec::new(),
                            },
                            BTreeMap::new(),
                        ),
                    };
                    crate::variant::apply_dirs(&mut asm.tree, &spec.dir, opts.source_date_epoch)?;
                    if let Some((name, v)) = variant {
                        // Capabilities may name compiled or downloaded tools
                        // (trip), which live in their own trees.
                        crate::variant::apply(
                            &mut asm.tree,
                            name,
                            v,
                            opts.source_date_epoch,
                            &mut [&mut cargo_tree, &mut url_tree],
                        )?;
                    }
                    let extra = [&cargo_tree, &url_tree, local_tree];
                    let sbom_packages = crate::attach::packages(
                        &asm.tree,
                        &crates_here,
                        crate::crates::musl_triple(p),
                        &urls_here,
                    );
                    let groups = crate::layering::split(
                        &asm,
                        &sources,
                        if with_apt { opts.max_layers } else { 1 },
                        &extra,
                    );
                    let mut img = write_image(
                        spec,
                        p,
                        groups,
                        layout,
                        &lopts,
                        progress,
                        prog,
                        variant.map(|(_, v)| format!("{}:{}", v.user.0, v.user.1)),
                        layer_cache.as_ref(),
                    )?;
                    let input = crate::sbom::SbomInput {
                        image_name: spec.image.name.clone(),
                        image_version: spec
                            .image
                            .labels
                            .get("org.opencontainers.image.version")
                            .cloned()
                            .unwrap_or_else(|| spec.image.tag.clone()),
                        platform: p.to_string(),
                        subject_digest: img.manifest.digest.to_string(),
                        created: rfc3339(opts.source_date_epoch),
                        distro: distro_id(spec),
                        packages: sbom_packages,
                    };
                    img.referrers = crate::attach::write_sboms(layout, &img.manifest, &input)?;
                    progress(format!(
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
    });
    let mut images = Vec::new();
    for r in results {
        images.push(r?);
    }

    let index_blob = commit_images(stage, &spec, &images, &tags, &opts.out, &progress)?;
    Ok(BuildResult {
        index: index_blob,
        tags,
        images,
        out: opts.out.clone(),
    })
}

/// Writes the index of `images`, moves the staged layout into `out` with
/// `tags` and the images' referrers, and says so.
pub(crate) fn commit_images(
    stage: Stage,
    spec: &Spec,
    images: &[BuiltImage],
    tags: &[String],
    out: &Path,
    progress: &(dyn Fn(String) + Sync),
) -> Result<BlobRef> {
    let layout = stage.layout();
    let index_blob = write_index(spec, images, &layout)?;
    let referrers: Vec<(BlobRef, &'static str, Digest)> = images
        .iter()
        .flat_map(|i| {
            i.referrers
                .iter()
                .map(|(b, mt)| (b.clone(), *mt, i.manifest.digest.clone()))
        })
        .collect();
    stage.commit(&index_blob, tags, &referrers)?;
    progress(format!(
        "wrote {}: {} {} ({} platform{})",
        out.display(),
        tags.iter()
            .map(|t| format!("{}:{t}", spec.image.name))
            .collect::<Vec<_>>()
            .join(", "),
        index_blob.digest,
        images.len(),
        if images.len() == 1 { "" } else { "s" }
    ));
    Ok(index_blob)
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
            Some(p) => Some(crate::crates::tree_digest(&spec.base_dir().join(p))?),
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
    progress: &(dyn Fn(String) + Sync),
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
    if let Some(apt) = &spec.apt {
        for p in &spec.platforms {
            let l = crate::apt::lock_platform(spec, apt, mirrors, p, cache, progress)?;
            progress(format!("locked {p}: {} packages", l.packages.len()));
            lock.apt.insert(p.to_string(), l);
        }
    }
    if !spec.cargo.is_empty() {
        let work = tempfile::tempdir()?;
        for c in &spec.cargo {
            progress(format!("lock crate {}", c.name));
            let l = crate::crates::lock_crate(c, &spec.base_dir(), work.path())?;
            lock.crates
                .insert(c.name.clone(), serde_json::to_value(&l)?);
        }
    }
    lock.sources = crate::sources::lock_sources(spec, mirrors, cache, progress)?;
    lock.url = crate::urls::pin_all(spec, profiles, cache, previous.as_ref(), progress)?;
    lock.write(&path)?;
    progress(format!("wrote {}", path.display()));
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
    progress: &(dyn Fn(String) + Sync),
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
            progress(format!("{} {why}: locking", path.display()));
            lock(spec, mirrors, profiles, cache, progress)
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

/// Header metadata for an entry the builder makes: names `root` for id 0,
/// none otherwise (the ids are what count).
pub(crate) fn meta(mode: u32, uid: u32, gid: u32, mtime: u64) -> Meta {
    let name = |id: u32| {
        if id == 0 {
            "root".to_string()
        } else {
            String::new()
        }
    };
    Meta {
        mode,
        uid,
        gid,
        uname: name(uid),
        gname: name(gid),
        mtime,
        xattrs: Default::default(),
    }
}

/// The files of the `local` sources. Modes are normalised (0755 for
/// folders and executables, else 0644, unless the spec sets one) so the
/// checkout's umask never reaches the image.
fn local_layer(spec: &Spec, epoch: u64) -> Result<Tree> {
    let mut tree = Tree::new();
    // Files that are hard links of each other on disk stay hard links in
    // the layer (stored once), as tar would keep them.
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    for l in &spec.local {
        // Checked when the spec was loaded; again here, where it is read.
        let src = spec.resolve_inside(&format!("local {:?}", l.dest), &l.src)?;
        let md = std::fs::symlink_metadata(&src).map_err(|e| {
            bad_input(format!(
                "{}: local source {}: {e}",
                spec.path.display(),
                src.display()
            ))
        })?;
        let (uid, gid) = l.owner.unwrap_or((0, 0));
        if md.is_dir() {
            add_dir(
                &mut tree,
                &mut inodes,
                &src,
                &l.dest,
                l.mode,
                uid,
                gid,
                epoch,
                spec,
            )?;
        } else {
            add_path(
                &mut tree,
                &mut inodes,
                &src,
                &l.dest,
                l.mode,
                uid,
                gid,
                epoch,
                spec,
            )?;
        }
    }
    Ok(tree)
}

#[allow(clippy::too_many_arguments)]
fn add_dir(
    tree: &mut Tree,
    inodes: &mut HashMap<(u64, u64), String>,
    src: &Path,
    dest: &str,
    file_mode: Option<u32>,
    uid: u32,
    gid: u32,
    epoch: u64,
    spec: &Spec,
) -> Result<()> {
    tree.insert(
        dest,
        Entry {
            node: Node::Dir,
            meta: meta(0o755, uid, gid, epoch),
        },
    )
    .map_err(|e| bad_input(format!("local {}: {e}", src.display())))?;
    let mut names: Vec<_> = std::fs::read_dir(src)
        .map_err(|e| bad_input(format!("local source {}: {e}", src.display())))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad_input(format!("local source {}: {e}", src.display())))?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().to_string();
        let child_dest = format!("{}/{name}", dest.trim_end_matches('/'));
        let p = e.path();
        if std::fs::symlink_metadata(&p)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            add_dir(
                tree,
                inodes,
                &p,
                &child_dest,
                file_mode,
                uid,
                gid,
                epoch,
                spec,
            )?;
        } else {
            add_path(
                tree,
                inodes,
                &p,
                &child_dest,
                file_mode,
                uid,
                gid,
                epoch,
                spec,
            )?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn add_path(
    tree: &mut Tree,
    inodes: &mut HashMap<(u64, u64), String>,
    src: &Path,
    dest: &str,
    mode: Option<u32>,
    uid: u32,
    gid: u32,
    epoch: u64,
    spec: &Spec,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::symlink_metadata(src).map_err(|e| {
        bad_input(format!(
            "{}: local source {}: {e}",
            spec.path.display(),
            src.display()
        ))
    })?;
    let entry = if md.file_type().is_symlink() {
        let target = std::fs::read_link(src)
            .map_err(|e| bad_input(format!("local source {}: {e}", src.display())))?;
        Entry {
            node: Node::Symlink(target.to_string_lossy().to_string()),
            meta: meta(0o777, uid, gid, epoch),
        }
    } else if md.is_file() {
        use std::os::unix::fs::MetadataExt;
        let exec = md.permissions().mode() & 0o111 != 0;
        if md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = inodes.get(&key) {
                let entry = Entry {
                    node: Node::Hardlink(first.clone()),
                    meta: meta(
                        mode.unwrap_or(if exec { 0o755 } else { 0o644 }),
                        uid,
                        gid,
                        epoch,
                    ),
                };
                return tree
                    .insert(dest, entry)
                    .map_err(|e| bad_input(format!("local {}: {e}", src.display())));
            }
            if let Ok(norm) = image_layout::tree::normalize_path(dest) {
                inodes.insert(key, norm);
            }
        }
        Entry {
            node: Node::File {
                body: Body::File(Arc::new(src.to_path_buf())),
                size: md.len(),
            },
            meta: meta(
                mode.unwrap_or(if exec { 0o755 } else { 0o644 }),
                uid,
                gid,
                epoch,
            ),
        }
    } else {
        return Err(bad_input(format!(
            "local source {}: not a regular file, folder or symlink",
            src.display()
        )));
    };
    tree.insert(dest, entry)
        .map_err(|e| bad_input(format!("local {}: {e}", src.display())))
}

/// Extracts `member` from a cached `.tar.gz` into the cache (named by its
/// own digest) and returns its path.
pub(crate) fn extract_member(cache: &Cache, archive: &Path, member: &str) -> Result<PathBuf> {
    let want = image_layout::tree::normalize_path(member)
        .map_err(|e| bad_input(format!("path {member:?}: {e}")))?;
    let f = std::fs::File::open(archive)?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)));
    let entries = ar
        .entries()
        .map_err(|e| verification(format!("not a .tar.gz: {e}")))?;
    for e in entries {
        let mut e = e.map_err(|e| verification(format!("corrupt .tar.gz: {e}")))?;
        let p = e
            .path()
            .map_err(|e| verification(format!("corrupt .tar.gz: {e}")))?
            .to_string_lossy()
            .to_string();
        if image_layout::tree::normalize_path(&p).ok().as_deref() == Some(want.as_str()) {
            if !e.header().entry_type().is_file() {
                return Err(bad_input(format!(
                    "{member:?} in the archive is not a regular file"
                )));
            }
            let tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(cache.root().join("blobs/sha256"))?;
            let mut w = image_layout::HashingWriter::new(std::io::BufWriter::new(tmp));
            std::io::copy(&mut e, &mut w)
                .map_err(|e| verification(format!("corrupt .tar.gz: {e}")))?;
            let (buf, digest, _) = w.finish();
            let tmp = buf
                .into_inner()
                .map_err(|e| anyhow::anyhow!("{}", e.error()))?;
            let dest = cache.blob_path(digest.hex());
            tmp.persist(&dest)
                .map_err(|e| anyhow::anyhow!("{}", e.error))?;
            return Ok(dest);
        }
    }
    Err(bad_input(format!("the archive has no member {member:?}")))
}

/// RFC 3339 UTC time for `epoch` seconds (no external date crate needed).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86400) as i64;
    let secs = epoch % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn write_image(
    spec: &Spec,
    platform: &Platform,
    groups: Vec<(String, Tree)>,
    layout: &OciLayout,
    lopts: &LayerOptions,
    progress: &(dyn Fn(String) + Sync),
    bars: &crate::progress::Progress,
    user: Option<String>,
    layer_cache: Option<&crate::layercache::LayerCache>,
) -> Result<BuiltImage> {
    let created = rfc3339(lopts.source_date_epoch);
    let mut layers = Vec::new();
    for (name, tree) in groups {
        progress(format!(
            "layer {platform} {name}: {} entries, {} bytes",
            tree.len(),
            tree.content_size()
        ));
        let fp = crate::layercache::fingerprint(&tree, lopts)
            .with_context(|| format!("reading layer {name} for {platform}"))?;
        let (info, blob) = match layer_cache.and_then(|c| c.get(&fp, layout)) {
            Some(hit) => hit,
            None => {
                let spinner = bars.byte_spinner("layer");
                spinner.set_message(format!("{platform} {name}"));
                let w = spinner.writer(layout.blob_writer()?);
                let (info, w) = write_layer(&tree, lopts, w)
                    .with_context(|| format!("writing layer {name} for {platform}"))?;
                drop(spinner);
                let blob = w.into_inner().commit()?;
                if let Some(c) = layer_cache {
                    c.put(&fp, layout, &info, &blob);
                }
                (info, blob)
            }
        };
        layers.push(BuiltLayer {
            name,
            blob,
            diff_id: info.diff_id,
            uncompressed_size: info.uncompressed_size,
            entries: info.entries,
        });
    }
    let img = &spec.image;
    let mut cfg = ConfigBuilder::default();
    if !img.env.is_empty() {
        cfg = cfg.env(img.env.clone());
    }
    if let Some(c) = &img.cmd {
        cfg = cfg.cmd(c.clone());
    }
    if let Some(e) = &img.entrypoint {
        cfg = cfg.entrypoint(e.clone());
    }
    if let Some(w) = &img.workdir {
        cfg = cfg.working_dir(w.clone());
    }
    if let Some(u) = user.as_ref().or(img.user.as_ref()) {
        cfg = cfg.user(u.clone());
    }
    if !img.labels.is_empty() {
        cfg = cfg.labels(img.labels.clone().into_iter().collect::<HashMap<_, _>>());
    }
    let cfg = cfg.build()?;
    let history = layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(format!("netshoot-build: {} layer", l.name))
                .comment(format!("{} entries", l.entries))
                .build()
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|l| l.diff_id.to_string())
                .collect::<Vec<_>>(),
        )
        .build()?;
    let mut config = ImageConfigurationBuilder::default()
        .created(created.clone())
        .architecture(platform.architecture.as_str())
        .os(platform.os.as_str())
        .config(cfg)
        .rootfs(rootfs)
        .history(history)
        .build()?;
    config.set_variant(platform.variant.clone());
    let config_blob = layout.put_json(&config)?;
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| l.blob.descriptor(lopts.compression.layer_media_type()))
        .collect();
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_blob.descriptor(MT_CONFIG))
        .layers(layer_descs)
        .build()?;
    let ann = annotations(spec);
    if !ann.is_empty() {
        manifest.set_annotations(Some(ann.into_iter().collect()));
    }
    let manifest_blob = layout.put_json(&manifest)?;
    Ok(BuiltImage {
        platform: platform.clone(),
        manifest: manifest_blob,
        layers,
        referrers: Vec::new(),
    })
}

/// Annotations of the index and of every manifest: the OCI labels of the
/// config (title, version, created, revision, source, ...) so registries
/// and scanners that read annotations see them, then the spec's own.
fn annotations(spec: &Spec) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = spec
        .image
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with("org.opencontainers.image."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(spec.image.annotations.clone());
    out
}

/// The distribution for Debian package URLs (`debian-13`), from the first
/// suite of the spec's first repository.
fn distro_id(spec: &Spec) -> String {
    let suite = spec
        .apt
        .as_ref()
        .and_then(|a| a.repository.first())
        .and_then(|r| r.suites.first())
        .cloned()
        .unwrap_or_default();
    debian_distro(&suite)
}

/// The purl distro qualifier for a Debian suite (`trixie-updates` →
/// `debian-13`).
pub(crate) fn debian_distro(suite: &str) -> String {
    let number = match suite.split('-').next().unwrap_or(suite) {
        "buster" => "10",
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        "forky" => "14",
        "duke" => "15",
        other => other,
    };
    format!("debian-{number}")
}

fn write_index(spec: &Spec, images: &[BuiltImage], layout: &OciLayout) -> Result<BlobRef> {
    let manifests: Vec<Descriptor> = images
        .iter()
        .map(|i| {
            let mut d = i.manifest.descriptor(MT_MANIFEST);
            d.set_platform(Some(i.platform.to_oci()));
            d
        })
        .collect();
    let mut index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()?;
    let ann = annotations(spec);
    if !ann.is_empty() {
        index.set_annotations(Some(ann.into_iter().collect()));
    }
    Ok(layout.put_json(&index)?)
}

/// File in a staging folder naming the process that writes it.
const STAGE_OWNER: &str = ".netshoot-build-pid";

/// Removes staging folders under `parent` named `prefix*` whose writer is
/// gone (a build killed with SIGKILL cannot clean up after itself).
fn remove_dead_stages(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let owner = std::fs::read_to_string(e.path().join(STAGE_OWNER))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        // A stage without an owner file is a moment old or from an older
        // version: leave it unless it is old.
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600));
        let dead = match owner {
            Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
            None => old,
        };
        if dead {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The output being written: a staging layout beside the destination,
/// merged into it only on success.
pub(crate) struct Stage {
    dest: PathBuf,
    dir: tempfile::TempDir,
}

impl Stage {
    pub(crate) fn prepare(dest: &Path) -> Result<Stage> {
        if dest.exists() {
            let is_layout = dest.join("oci-layout").is_file();
            let is_empty = std::fs::read_dir(dest)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !is_layout && !is_empty {
                return Err(bad_input(format!(
                    "--out {}: exists and is not an OCI layout; choose another folder or remove it",
                    dest.display()
                )));
            }
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| bad_input(format!("--out {}: {e}", dest.display())))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "out".into());
        let prefix = format!(".{name}.tmp-");
        remove_dead_stages(&parent, &prefix);
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&parent)
            .map_err(|e| bad_input(format!("--out {}: {e}", dest.display())))?;
        // Whose stage this is, so a later build can tell a killed build's
        // leftovers from a concurrent build's work.
        std::fs::write(dir.path().join(STAGE_OWNER), std::process::id().to_string())?;
        OciLayout::create(dir.path())?;
        Ok(Stage {
            dest: dest.to_path_buf(),
            dir,
        })
    }

    pub(crate) fn layout(&self) -> OciLayout {
        OciLayout::create(self.dir.path()).expect("staging layout was created in prepare")
    }

    /// Moves the staged blobs into the destination (keeping those already
    /// there), then points `index.json` at the new image: the only step a
    /// reader can observe, and it is one rename.
    pub(crate) fn commit(
        self,
        index_blob: &BlobRef,
        tags: &[String],
        referrers: &[(BlobRef, &'static str, Digest)],
    ) -> Result<()> {
        let dest_layout = OciLayout::create(&self.dest)
            .map_err(|e| bad_input(format!("--out {}: {e}", self.dest.display())))?;
        let staged = self.dir.path().join("blobs/sha256");
        for e in std::fs::read_dir(&staged)? {
            let e = e?;
            let name = e.file_name();
            // Every staged blob was hashed as it was written or copied, so
            // it replaces whatever the layout held under its name (which a
            // user or a disk may have damaged); a rename is atomic.
            std::fs::rename(e.path(), self.dest.join("blobs/sha256").join(&name))?;
        }
        let before: Vec<Descriptor> = match dest_layout.read_index() {
            Ok(idx) => idx.manifests().clone(),
            Err(_) => Vec::new(),
        };
        let tag_of = |d: &Descriptor| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .cloned()
        };
        let subject_of = |d: &Descriptor| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(crate::attach::SUBJECT_ANNOTATION))
                .cloned()
        };
        // The order is a function of the inputs, so a rebuild over an
        // earlier layout writes the same index.json as a fresh one: this
        // build's tags first (a consumer taking the first manifest gets
        // the image), then other tags kept from before, then this build's
        // referrers, then earlier referrers whose subject is still tagged.
        let mut manifests: Vec<Descriptor> = Vec::new();
        for t in tags {
            let mut d = index_blob.descriptor(MT_INDEX);
            let mut ann = HashMap::new();
            ann.insert(REF_NAME.to_string(), t.clone());
            d.set_annotations(Some(ann));
            manifests.push(d);
        }
        manifests.extend(
            before
                .iter()
                .filter(|d| tag_of(d).is_some_and(|t| !tags.contains(&t)))
                .cloned(),
        );
        let mut live: std::collections::BTreeSet<String> = Default::default();
        for d in &manifests {
            live.insert(d.digest().to_string());
            if let Ok(bytes) = dest_layout.read_blob(&Digest::from(d.digest())) {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    for m in v["manifests"].as_array().into_iter().flatten() {
                        if let Some(x) = m["digest"].as_str() {
                            live.insert(x.to_string());
                        }
                    }
                }
            }
        }
        let mut seen: std::collections::BTreeSet<String> = Default::default();
        for (blob, mt, subject) in referrers {
            if !seen.insert(blob.digest.to_string()) {
                continue;
            }
            let mut d = blob.descriptor(MT_MANIFEST);
            d.set_artifact_type(Some((*mt).into()));
            let mut ann = HashMap::new();
            ann.insert(
                crate::attach::SUBJECT_ANNOTATION.to_string(),
                subject.to_string(),
            );
            d.set_annotations(Some(ann));
            manifests.push(d);
        }
        for d in &before {
            let keep = subject_of(d).is_some_and(|s| live.contains(&s))
                && seen.insert(d.digest().to_string());
            if keep {
                manifests.push(d.clone());
            }
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()?;
        dest_layout.write_index(&index)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_322_245), "2025-11-28T09:30:45Z");
    }
}
