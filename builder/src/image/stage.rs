//! The output being written: a staging layout beside `--out`, moved in
//! only when everything succeeded, so a failed build leaves the previous
//! layout as it was.

use crate::error::{bad_input, Result};
use crate::image::write::{write_index, BuiltImage};
use crate::spec::Spec;
use image_layout::layout::{BlobRef, MT_INDEX, MT_MANIFEST, REF_NAME};
use image_layout::oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};
use image_layout::{Digest, OciLayout};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
                .and_then(|a| a.get(crate::image::referrers::SUBJECT_ANNOTATION))
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
                crate::image::referrers::SUBJECT_ANNOTATION.to_string(),
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
