//! `export --static-bundle`: the static toolbox's programs of one
//! platform, with their applet links and a CA bundle, as `netshoot/...` in
//! a gzip tarball to copy into any container of that architecture (the
//! image is the static recipe of the build pipeline, `image/recipe.rs`).

use crate::cache::Cache;
use crate::error::{bad_input, Result};
use crate::source::debsrc::{DebianSources, Layout};
use crate::source::{Context, Source};
use crate::spec::Spec;
use image_layout::{Compression, LayerOptions, Platform};
use std::path::PathBuf;

pub use crate::source::debsrc::BUNDLE_DIR;

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
    let target = crate::build::select_targets(&spec, std::slice::from_ref(&o.platform))?;
    if spec.source.is_empty() {
        return Err(bad_input(format!(
            "{}: --static-bundle needs [[source]] entries",
            spec.path.display()
        )));
    }
    let cache = Cache::open(o.cache.as_deref())?.with_progress(o.progress.clone());
    let progress = |msg: String| o.progress.step(msg);
    let lock = crate::build::ensure_lock(&spec, &o.mirrors, o.locked, &[], &cache, &progress)?;
    let cx = Context {
        spec: &spec,
        cache: &cache,
        mirrors: &o.mirrors,
        profiles: &[],
        locked: o.locked,
        epoch: o.source_date_epoch,
        log: &progress,
        progress: &o.progress,
    };
    let source = DebianSources(Layout::Bundle);
    let tree = source
        .prepare(&cx, &lock, &target)?
        .pop()
        .map(|c| c.tree)
        .unwrap_or_default();
    let p = &o.platform;
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
