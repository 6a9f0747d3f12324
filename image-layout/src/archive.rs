//! Archives for air-gapped transfer: the whole layout in one tar
//! (`oci-archive`), one platform in the form `docker load` and
//! `podman load` read (`docker-archive`), and reading either back.

use crate::digest::Digest;
use crate::json::canonical_json;
use crate::layout::{write_atomic, LayoutError, OciLayout, MT_INDEX, REF_NAME};
use crate::platform::Platform;
use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use tar::{EntryType, Header};

/// An archive that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The source layout is unreadable.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// I/O on the archive.
    #[error("{path}: {source}")]
    Io {
        /// The archive.
        path: String,
        /// What went wrong.
        source: io::Error,
    },
    /// A blob does not match its name or its descriptor's size.
    #[error("{path}: {reason}")]
    Mismatch {
        /// The blob or archive at fault.
        path: String,
        /// What does not match.
        reason: String,
    },
    /// The archive's content is not what it claims.
    #[error("{path}: {reason}")]
    Invalid {
        /// The archive.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn aio(path: &Path) -> impl Fn(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a tar of fixed-metadata entries.
struct TarOut<W: Write> {
    w: W,
}

impl<W: Write> TarOut<W> {
    fn header(name: &str, size: u64, kind: EntryType) -> io::Result<Header> {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_path(name)?;
        h.set_size(size);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        Ok(h)
    }

    fn dir(&mut self, name: &str) -> io::Result<()> {
        let h = Self::header(name, 0, EntryType::Directory)?;
        self.w.write_all(h.as_bytes())
    }

    fn bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.reader(name, data.len() as u64, data)
    }

    fn reader(&mut self, name: &str, size: u64, mut r: impl Read) -> io::Result<()> {
        let h = Self::header(name, size, EntryType::Regular)?;
        self.w.write_all(h.as_bytes())?;
        let n = io::copy(&mut r, &mut self.w)?;
        if n != size {
            return Err(io::Error::other(format!(
                "{name}: {n} bytes, expected {size}"
            )));
        }
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.w.write_all(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 1024])?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Writes `out` through a temporary sibling and renames it into place, so a
/// failure never leaves a half-written archive where the user asked for one.
fn write_file_atomic(
    out: &Path,
    f: impl FnOnce(&mut TarOut<BufWriter<&mut File>>) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(aio(out))?;
    {
        let mut t = TarOut {
            w: BufWriter::with_capacity(1 << 20, tmp.as_file_mut()),
        };
        f(&mut t)?;
        t.finish().map_err(aio(out))?;
    }
    tmp.as_file().sync_data().map_err(aio(out))?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644)).map_err(aio(out))?;
    }
    tmp.persist(out).map_err(|e| ArchiveError::Io {
        path: out.display().to_string(),
        source: e.error,
    })?;
    Ok(())
}

fn copy_blobs<W: Write>(
    layout: &OciLayout,
    t: &mut TarOut<W>,
    blobs: &[Descriptor],
    out: &Path,
) -> Result<(), ArchiveError> {
    // One entry per blob, sorted by digest, so the archive is the same
    // bytes for the same image.
    let mut by_digest: BTreeMap<String, u64> = BTreeMap::new();
    for d in blobs {
        by_digest.insert(Digest::from(d.digest()).hex().to_string(), d.size());
    }
    for (hex, size) in by_digest {
        let d = Digest::from_hex(&hex).map_err(|e| ArchiveError::Invalid {
            path: layout.root().display().to_string(),
            reason: e.to_string(),
        })?;
        let f = layout.open_blob(&d)?;
        let actual = f.metadata().map_err(aio(out))?.len();
        if actual != size {
            return Err(ArchiveError::Mismatch {
                path: layout.blob_path(&d).display().to_string(),
                reason: format!("blob is {actual} bytes, its descriptor says {size}"),
            });
        }
        // Hashed on the way in: an archive never carries a blob that does
        // not match its name (the whole archive is dropped instead).
        let mut r = HashingReader {
            inner: io::BufReader::with_capacity(1 << 20, f),
            hasher: sha2::Sha256::default(),
        };
        t.reader(&d.blob_path(), size, &mut r).map_err(aio(out))?;
        let got = hex::encode(sha2::Digest::finalize(r.hasher));
        if got != hex {
            return Err(ArchiveError::Mismatch {
                path: layout.blob_path(&d).display().to_string(),
                reason: format!("content has digest sha256:{got}, expected {d}"),
            });
        }
    }
    Ok(())
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
}

/// Writes every image of `layout` (all tags, or only `tags` when given)
/// into one OCI archive at `out`: `oci-layout`, `index.json` and the
/// reachable blobs.
pub fn write_oci_archive(
    layout: &OciLayout,
    tags: &[String],
    out: &Path,
) -> Result<(), ArchiveError> {
    let index = layout.read_index()?;
    let mut keep: Vec<Descriptor> = Vec::new();
    for d in index.manifests() {
        let name = d.annotations().as_ref().and_then(|a| a.get(REF_NAME));
        if tags.is_empty() || name.is_some_and(|n| tags.contains(n)) {
            keep.push(d.clone());
        }
    }
    if keep.is_empty() {
        return Err(LayoutError::NoSuchTag {
            layout: layout.root().to_path_buf(),
            tag: tags.join(","),
            available: layout.tags()?.join(", "),
        }
        .into());
    }
    let mut blobs = Vec::new();
    for d in &keep {
        blobs.extend(layout.reachable(d)?);
    }
    let new_index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(keep)
        .build()
        .map_err(|e| ArchiveError::Invalid {
            path: out.display().to_string(),
            reason: e.to_string(),
        })?;
    let index_bytes = canonical_json(&new_index).map_err(|e| ArchiveError::Invalid {
        path: out.display().to_string(),
        reason: e.to_string(),
    })?;
    write_file_atomic(out, |t| {
        t.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(aio(out))?;
        t.bytes("index.json", &index_bytes).map_err(aio(out))?;
        t.dir("blobs/").map_err(aio(out))?;
        t.dir("blobs/sha256/").map_err(aio(out))?;
        copy_blobs(layout, t, &blobs, out)
    })
}

/// Writes one platform of the image `desc` as a docker-archive at `out`:
/// the OCI layout of that single image plus `manifest.json` and
/// `repositories`, the form `docker load`, `podman load` and
/// `skopeo copy docker-archive:` read.
pub fn write_docker_archive(
    layout: &OciLayout,
    desc: &Descriptor,
    platform: &Platform,
    repo_tag: &str,
    out: &Path,
) -> Result<(), ArchiveError> {
    let images = layout.images(desc)?;
    let (_, manifest_desc) = images
        .iter()
        .find(|(p, _)| p.matches(platform))
        .ok_or_else(|| ArchiveError::Invalid {
            path: layout.root().display().to_string(),
            reason: format!(
                "no image for platform {platform} (platforms: {})",
                images
                    .iter()
                    .map(|(p, _)| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    let manifest = layout.read_manifest(manifest_desc)?;
    let blobs = layout.reachable(manifest_desc)?;
    let mut top = manifest_desc.clone();
    let mut ann = HashMap::new();
    ann.insert(REF_NAME.to_string(), tag_of(repo_tag).to_string());
    ann.insert("io.containerd.image.name".to_string(), repo_tag.to_string());
    top.set_annotations(Some(ann));
    let index: ImageIndex = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![top])
        .build()
        .map_err(|e| ArchiveError::Invalid {
            path: out.display().to_string(),
            reason: e.to_string(),
        })?;
    let config_path = Digest::from(manifest.config().digest()).blob_path();
    let layers: Vec<String> = manifest
        .layers()
        .iter()
        .map(|l| Digest::from(l.digest()).blob_path())
        .collect();
    let docker_manifest = serde_json::json!([{
        "Config": config_path,
        "RepoTags": [repo_tag],
        "Layers": layers,
    }]);
    let (repo, tag) = split_repo_tag(repo_tag);
    let top_layer = manifest
        .layers()
        .last()
        .map(|l| Digest::from(l.digest()).hex().to_string())
        .unwrap_or_default();
    let repositories = serde_json::json!({ repo: { tag: top_layer } });
    let enc = |v: &dyn erased::Ser| v.bytes();
    let index_bytes = enc(&index);
    let manifest_bytes = enc(&docker_manifest);
    let repos_bytes = enc(&repositories);
    write_file_atomic(out, |t| {
        t.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(aio(out))?;
        t.bytes("index.json", &index_bytes).map_err(aio(out))?;
        t.bytes("manifest.json", &manifest_bytes)
            .map_err(aio(out))?;
        t.bytes("repositories", &repos_bytes).map_err(aio(out))?;
        t.dir("blobs/").map_err(aio(out))?;
        t.dir("blobs/sha256/").map_err(aio(out))?;
        copy_blobs(layout, t, &blobs, out)
    })
}

mod erased {
    /// Canonical JSON of any serializable value, for building archives.
    pub trait Ser {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn bytes(&self) -> Vec<u8> {
            crate::json::canonical_json(self).unwrap_or_default()
        }
    }
}

fn tag_of(repo_tag: &str) -> &str {
    split_repo_tag(repo_tag).1
}

/// Splits `name:tag` at the last colon after the last slash.
fn split_repo_tag(repo_tag: &str) -> (&str, &str) {
    let slash = repo_tag.rfind('/').map_or(0, |i| i + 1);
    match repo_tag[slash..].rfind(':') {
        Some(i) => (&repo_tag[..slash + i], &repo_tag[slash + i + 1..]),
        None => (repo_tag, "latest"),
    }
}

/// Unpacks an OCI archive (or a docker-archive that carries an OCI layout,
/// as ours and Docker 25+'s do) into `dest`, checking every blob against
/// its name, and opens it as a layout.
pub fn read_archive(archive: &Path, dest: &Path) -> Result<OciLayout, ArchiveError> {
    let f = File::open(archive).map_err(aio(archive))?;
    let mut ar = tar::Archive::new(io::BufReader::with_capacity(1 << 20, f));
    fs::create_dir_all(dest.join("blobs/sha256")).map_err(aio(dest))?;
    let bad = |reason: String| ArchiveError::Invalid {
        path: archive.display().to_string(),
        reason,
    };
    let mut saw_layout = false;
    for e in ar.entries().map_err(aio(archive))? {
        let mut e = e.map_err(aio(archive))?;
        if !matches!(e.header().entry_type(), EntryType::Regular) {
            continue;
        }
        let name = e
            .path()
            .map_err(aio(archive))?
            .to_string_lossy()
            .to_string();
        let name = name.trim_start_matches("./").to_string();
        match name.as_str() {
            "oci-layout" => {
                saw_layout = true;
                let mut data = Vec::new();
                e.read_to_end(&mut data).map_err(aio(archive))?;
                write_atomic(&dest.join("oci-layout"), &data).map_err(aio(dest))?;
            }
            "index.json" => {
                let mut data = Vec::new();
                e.read_to_end(&mut data).map_err(aio(archive))?;
                write_atomic(&dest.join("index.json"), &data).map_err(aio(dest))?;
            }
            n if n.starts_with("blobs/sha256/") => {
                let hex = &n["blobs/sha256/".len()..];
                let d = Digest::from_hex(hex).map_err(|e| bad(format!("{n}: {e}")))?;
                let layout = OciLayout::create(dest).map_err(aio(dest))?;
                let mut w = layout.blob_writer().map_err(aio(dest))?;
                io::copy(&mut e, &mut w).map_err(aio(archive))?;
                let got = w.commit().map_err(aio(dest))?;
                if got.digest != d {
                    let _ = fs::remove_file(layout.blob_path(&got.digest));
                    return Err(ArchiveError::Mismatch {
                        path: archive.display().to_string(),
                        reason: format!("{n}: content has digest {}", got.digest),
                    });
                }
            }
            _ => {}
        }
    }
    if !saw_layout || !dest.join("index.json").is_file() {
        return Err(bad(
            "not an OCI archive: no oci-layout and index.json (legacy docker-archives without an OCI layout are not supported; re-save with a current docker or use skopeo to convert)".into(),
        ));
    }
    let layout = OciLayout::open(dest)?;
    // Check the index's own descriptors point at blobs that came with it.
    let idx = layout.read_index()?;
    for d in idx.manifests() {
        for b in layout.reachable(d)? {
            if !layout.has_blob(&Digest::from(b.digest())) {
                return Err(bad(format!(
                    "blob {} is referenced but missing",
                    b.digest()
                )));
            }
        }
    }
    let _ = MT_INDEX;
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_repo_tags() {
        assert_eq!(split_repo_tag("netshoot:v1"), ("netshoot", "v1"));
        assert_eq!(
            split_repo_tag("registry.example.com:5000/team/netshoot:v1"),
            ("registry.example.com:5000/team/netshoot", "v1")
        );
        assert_eq!(
            split_repo_tag("localhost:5000/x"),
            ("localhost:5000/x", "latest")
        );
    }
}
