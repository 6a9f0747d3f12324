//! The OCI image layout on disk: a content-addressed blob store plus
//! `index.json`, written so that a reader never sees a half-written file.

use crate::digest::{Digest, HashingWriter};
use crate::json::canonical_json;
use crate::platform::Platform;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde::Serialize;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Media type of an OCI image index.
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image manifest.
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image config.
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker's manifest list media type (read, never written).
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image manifest media type (read, never written).
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The annotation that names a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A blob that is in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    /// Its digest.
    pub digest: Digest,
    /// Its length.
    pub size: u64,
}

impl BlobRef {
    /// A descriptor for this blob with `media_type`.
    pub fn descriptor(&self, media_type: &str) -> Descriptor {
        Descriptor::new(MediaType::from(media_type), self.size, self.digest.to_oci())
    }
}

/// A layout that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// I/O on a file of the layout.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A file that is not what the OCI layout spec says it must be.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A blob whose bytes do not hash to its name.
    #[error("{path}: {reason}")]
    Mismatch {
        /// The blob.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// No image under the requested name.
    #[error("{layout}: no image tagged {tag:?} (tags: {available})")]
    NoSuchTag {
        /// The layout folder.
        layout: PathBuf,
        /// The tag asked for.
        tag: String,
        /// The tags present.
        available: String,
    },
}

/// An OCI image layout directory.
#[derive(Clone, Debug)]
pub struct OciLayout {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl OciLayout {
    /// Creates the layout's skeleton in `dir` (or reuses an existing one).
    pub fn create(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir.join("blobs/sha256"))?;
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(OciLayout {
            root: dir.to_path_buf(),
        })
    }

    /// Opens an existing layout, checking its `oci-layout` marker.
    pub fn open(dir: &Path) -> Result<Self, LayoutError> {
        let marker = dir.join("oci-layout");
        let text = fs::read(&marker).map_err(|e| LayoutError::Invalid {
            path: dir.to_path_buf(),
            reason: format!("not an OCI image layout (cannot read oci-layout: {e})"),
        })?;
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| LayoutError::Invalid {
                path: marker.clone(),
                reason: format!("not JSON: {e}"),
            })?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(LayoutError::Invalid {
                path: marker,
                reason: "imageLayoutVersion is not 1.0.0".into(),
            });
        }
        Ok(OciLayout {
            root: dir.to_path_buf(),
        })
    }

    /// The layout's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where blob `d` lives (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join(d.blob_path())
    }

    /// True when blob `d` is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Starts writing a blob whose digest is learnt at the end.
    pub fn blob_writer(&self) -> io::Result<BlobWriter> {
        let dir = self.root.join("blobs/sha256");
        let tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir)?;
        Ok(BlobWriter {
            dir,
            out: HashingWriter::new(BufWriter::with_capacity(256 * 1024, tmp)),
        })
    }

    /// Stores `data` as a blob.
    pub fn put_blob(&self, data: &[u8]) -> io::Result<BlobRef> {
        let digest = Digest::of(data);
        let path = self.blob_path(&digest);
        if !path.is_file() {
            let mut w = self.blob_writer()?;
            w.write_all(data)?;
            return w.commit();
        }
        Ok(BlobRef {
            digest,
            size: data.len() as u64,
        })
    }

    /// Stores `value` as canonical JSON and returns its blob.
    pub fn put_json<T: Serialize + ?Sized>(&self, value: &T) -> io::Result<BlobRef> {
        let bytes = canonical_json(value).map_err(io::Error::other)?;
        self.put_blob(&bytes)
    }

    /// Reads blob `d` whole, checking its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(d);
        let data = fs::read(&path).map_err(io_err(&path))?;
        let got = Digest::of(&data);
        if &got != d {
            return Err(LayoutError::Mismatch {
                path,
                reason: format!("content has digest {got}, expected {d}"),
            });
        }
        Ok(data)
    }

    /// Opens blob `d` for streaming (the caller verifies while reading).
    pub fn open_blob(&self, d: &Digest) -> Result<File, LayoutError> {
        let path = self.blob_path(d);
        File::open(&path).map_err(io_err(&path))
    }

    /// The top-level `index.json`.
    pub fn read_index(&self) -> Result<ImageIndex, LayoutError> {
        let path = self.root.join("index.json");
        let data = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&data).map_err(|e| LayoutError::Invalid {
            path,
            reason: format!("not an OCI image index: {e}"),
        })
    }

    /// Replaces `index.json` atomically.
    pub fn write_index(&self, index: &ImageIndex) -> io::Result<()> {
        let bytes = canonical_json(index).map_err(io::Error::other)?;
        write_atomic(&self.root.join("index.json"), &bytes)
    }

    /// The tags in `index.json`, in file order.
    pub fn tags(&self) -> Result<Vec<String>, LayoutError> {
        Ok(self
            .read_index()?
            .manifests()
            .iter()
            .filter_map(|d| d.annotations().as_ref()?.get(REF_NAME).cloned())
            .collect())
    }

    /// The descriptor tagged `tag`, or when `tag` is None the only tagged
    /// entry (or the only entry).
    pub fn resolve(&self, tag: Option<&str>) -> Result<Descriptor, LayoutError> {
        let index = self.read_index()?;
        let tags = self.tags()?;
        let found = match tag {
            Some(t) => index.manifests().iter().find(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .is_some_and(|n| n == t)
            }),
            // The one tagged entry (untagged ones are referrers such as
            // SBOMs), or the one entry of an untagged layout.
            None if tags.len() == 1 => index.manifests().iter().find(|d| {
                d.annotations()
                    .as_ref()
                    .is_some_and(|a| a.contains_key(REF_NAME))
            }),
            None if index.manifests().len() == 1 => index.manifests().first(),
            None => None,
        };
        found.cloned().ok_or_else(|| LayoutError::NoSuchTag {
            layout: self.root.clone(),
            tag: tag.unwrap_or("<none given>").to_string(),
            available: if tags.is_empty() {
                "none".into()
            } else {
                tags.join(", ")
            },
        })
    }

    /// Reads a manifest blob, checking digest and size against `desc`.
    pub fn read_manifest(&self, desc: &Descriptor) -> Result<ImageManifest, LayoutError> {
        let d = Digest::from(desc.digest());
        let bytes = self.read_blob(&d)?;
        serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
            path: self.blob_path(&d),
            reason: format!("not an image manifest: {e}"),
        })
    }

    /// Reads an index blob.
    pub fn read_index_blob(&self, desc: &Descriptor) -> Result<ImageIndex, LayoutError> {
        let d = Digest::from(desc.digest());
        let bytes = self.read_blob(&d)?;
        serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
            path: self.blob_path(&d),
            reason: format!("not an image index: {e}"),
        })
    }

    /// The platform images under `desc` (an index or a single manifest),
    /// with their platforms. Entries that are not images (attestations,
    /// SBOMs: no platform, or an artifactType) are left out.
    pub fn images(&self, desc: &Descriptor) -> Result<Vec<(Platform, Descriptor)>, LayoutError> {
        let mt = desc.media_type().to_string();
        if mt == MT_INDEX || mt == MT_DOCKER_LIST {
            let idx = self.read_index_blob(desc)?;
            let mut out = Vec::new();
            for m in idx.manifests() {
                let mmt = m.media_type().to_string();
                if (mmt == MT_MANIFEST || mmt == MT_DOCKER_MANIFEST) && m.artifact_type().is_none()
                {
                    if let Some(p) = m.platform() {
                        out.push((Platform::from_oci(p), m.clone()));
                    }
                }
            }
            Ok(out)
        } else {
            let man = self.read_manifest(desc)?;
            let cfg = self.read_blob(&Digest::from(man.config().digest()))?;
            let v: serde_json::Value = serde_json::from_slice(&cfg).unwrap_or_default();
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            let p = Platform {
                os: s("os").unwrap_or_else(|| "linux".into()),
                architecture: s("architecture").unwrap_or_default(),
                variant: s("variant"),
            };
            Ok(vec![(p, desc.clone())])
        }
    }

    /// Every blob reachable from `desc`, itself included, in a stable order
    /// (children before the manifest or index that names them).
    ///
    /// Each index or manifest is read once however many parents name it,
    /// and the walk keeps its own stack: with a walk per path, a crafted
    /// archive of a few kilobytes (nine levels of indexes, each naming the
    /// next many times) took exponential time, a timeout of the
    /// `oci_layout` fuzz target; and a long chain of indexes must not
    /// exhaust the thread's stack.
    pub fn reachable(&self, desc: &Descriptor) -> Result<Vec<Descriptor>, LayoutError> {
        enum Step {
            Enter(Descriptor),
            Leave(Descriptor),
        }
        let mut out = Vec::new();
        // By digest and media type: the same bytes named as a layer and
        // later as an index are still walked as an index, as before.
        let mut walked = std::collections::BTreeSet::new();
        let mut stack = vec![Step::Enter(desc.clone())];
        while let Some(step) = stack.pop() {
            let desc = match step {
                Step::Leave(d) => {
                    out.push(d);
                    continue;
                }
                Step::Enter(d) => d,
            };
            let mt = desc.media_type().to_string();
            if !walked.insert((desc.digest().to_string(), mt.clone())) {
                continue;
            }
            if mt == MT_INDEX || mt == MT_DOCKER_LIST {
                let children = self.read_index_blob(&desc)?.manifests().clone();
                stack.push(Step::Leave(desc));
                stack.extend(children.into_iter().rev().map(Step::Enter));
            } else {
                if mt == MT_MANIFEST || mt == MT_DOCKER_MANIFEST {
                    let man = self.read_manifest(&desc)?;
                    out.push(man.config().clone());
                    out.extend(man.layers().iter().cloned());
                }
                out.push(desc);
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|d| seen.insert(d.digest().to_string()));
        Ok(out)
    }
}

/// A blob of a layout that is missing or does not match its descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobProblem {
    /// The digest the descriptor names.
    pub digest: Digest,
    /// Where the blob should be.
    pub path: PathBuf,
    /// What is wrong, in words (`missing`, `is 12 bytes, its descriptor
    /// says 13`, `content has digest sha256:..`).
    pub reason: String,
}

impl std::fmt::Display for BlobProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path.display(), self.reason)
    }
}

impl OciLayout {
    /// Checks every blob reachable from `roots` (by default every entry
    /// of `index.json`): it exists, has the descriptor's size and hashes
    /// to its name. Returns what is wrong, in walk order; the children of
    /// a damaged manifest or index cannot be known and are not listed.
    pub fn check_blobs(
        &self,
        roots: Option<&[Descriptor]>,
    ) -> Result<Vec<BlobProblem>, LayoutError> {
        let mut queue: std::collections::VecDeque<Descriptor> = match roots {
            Some(r) => r.iter().cloned().collect(),
            None => self.read_index()?.manifests().iter().cloned().collect(),
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut problems = Vec::new();
        while let Some(desc) = queue.pop_front() {
            let digest = Digest::from(desc.digest());
            if !seen.insert(digest.to_string()) {
                continue;
            }
            let path = self.blob_path(&digest);
            let problem = |reason: String| BlobProblem {
                digest: digest.clone(),
                path: path.clone(),
                reason,
            };
            let size = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    problems.push(problem("is missing".into()));
                    continue;
                }
                Err(e) => {
                    problems.push(problem(format!("cannot be read: {e}")));
                    continue;
                }
            };
            if size != desc.size() {
                problems.push(problem(format!(
                    "is {size} bytes, its descriptor says {}",
                    desc.size()
                )));
                continue;
            }
            let mt = desc.media_type().to_string();
            let is_json =
                [MT_INDEX, MT_DOCKER_LIST, MT_MANIFEST, MT_DOCKER_MANIFEST].contains(&mt.as_str());
            if !is_json {
                let checked = File::open(&path)
                    .and_then(|f| verify_stream(io::BufReader::with_capacity(1 << 20, f), &digest));
                if let Err(e) = checked {
                    problems.push(problem(e.to_string()));
                }
                continue;
            }
            let bytes = match self.read_blob(&digest) {
                Ok(b) => b,
                Err(LayoutError::Mismatch { reason, .. }) => {
                    problems.push(problem(reason));
                    continue;
                }
                Err(e) => {
                    problems.push(problem(e.to_string()));
                    continue;
                }
            };
            if mt == MT_INDEX || mt == MT_DOCKER_LIST {
                match serde_json::from_slice::<ImageIndex>(&bytes) {
                    Ok(idx) => queue.extend(idx.manifests().iter().cloned()),
                    Err(e) => problems.push(problem(format!("is not an image index: {e}"))),
                }
            } else {
                match serde_json::from_slice::<ImageManifest>(&bytes) {
                    Ok(m) => {
                        queue.push_back(m.config().clone());
                        queue.extend(m.layers().iter().cloned());
                    }
                    Err(e) => problems.push(problem(format!("is not an image manifest: {e}"))),
                }
            }
        }
        Ok(problems)
    }
}

/// A blob being written to a temporary file in the store; it gets its
/// name only when [`BlobWriter::commit`] renames it, so a crash or an error
/// leaves no blob with wrong content.
pub struct BlobWriter {
    dir: PathBuf,
    out: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
}

impl BlobWriter {
    /// Renames the temporary file to its digest and returns the blob.
    pub fn commit(self) -> io::Result<BlobRef> {
        let (buf, digest, size) = self.out.finish();
        let tmp = buf.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_data()?;
        set_mode(tmp.path(), 0o644)?;
        let dest = self.dir.join(digest.hex());
        if !dest.is_file() {
            tmp.persist(&dest).map_err(|e| e.error)?;
        }
        Ok(BlobRef { digest, size })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes `data` to `path` through a temporary file in the same folder
/// and a rename, so readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_data()?;
    // Readable by everyone, like a file written under the usual umask,
    // rather than tempfile's private 0600.
    set_mode(tmp.path(), 0o644)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Reads a blob stream fully, checking it against `expected`.
pub fn verify_stream(mut r: impl Read, expected: &Digest) -> io::Result<u64> {
    let mut h = HashingWriter::new(io::sink());
    let n = io::copy(&mut r, &mut h)?;
    let (_, got, _) = h.finish();
    if &got != expected {
        return Err(io::Error::other(format!(
            "content has digest {got}, expected {expected}"
        )));
    }
    Ok(n)
}
