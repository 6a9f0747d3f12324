//! The compressed-layer cache: a layer whose content and compression
//! settings were written before is not compressed again.
//!
//! The key is a fingerprint of everything that decides the layer's bytes:
//! every entry's path, kind, metadata (mtime already clamped), xattrs and
//! link target, the identity of every body, the compression and the
//! writer's format version. Bodies are identified without reading them
//! when their source is content-addressed (a range of a cached package
//! payload is named by the package's sha256); other bodies are hashed.
//! Entries are written by rename, so concurrent builds and a kill at any
//! point leave only whole entries; a hit is checked against its digest
//! before it is used (see [`LayerCache::get`]).

use image_layout::layout::BlobRef;
use image_layout::{Body, Digest, LayerInfo, LayerOptions, Node, OciLayout, Tree};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

const FORMAT: &str = "layer-cache-v1";

/// What the cache remembers of a layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cached {
    /// Compressed digest.
    pub digest: String,
    /// Compressed size.
    pub size: u64,
    /// Uncompressed digest.
    pub diff_id: String,
    /// Uncompressed size.
    pub uncompressed_size: u64,
    /// Entries.
    pub entries: usize,
}

/// The fingerprint of `tree` written with `opts`.
pub fn fingerprint(tree: &Tree, opts: &LayerOptions) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut put = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    put(FORMAT.as_bytes());
    put(opts.compression.name().as_bytes());
    put(&opts.source_date_epoch.to_le_bytes());
    for (path, e) in tree.iter() {
        put(path.as_bytes());
        let m = &e.meta;
        put(&m.mode.to_le_bytes());
        put(&m.uid.to_le_bytes());
        put(&m.gid.to_le_bytes());
        put(m.uname.as_bytes());
        put(m.gname.as_bytes());
        put(&m.mtime.min(opts.source_date_epoch).to_le_bytes());
        for (k, v) in &m.xattrs {
            put(k.as_bytes());
            put(v);
        }
        match &e.node {
            Node::Dir => put(b"d"),
            Node::Symlink(t) => {
                put(b"l");
                put(t.as_bytes());
            }
            Node::Hardlink(t) => {
                put(b"h");
                put(t.as_bytes());
            }
            Node::File { body, size } => {
                put(b"f");
                put(&size.to_le_bytes());
                match body {
                    Body::Range { path, offset, len } => {
                        // .../payloads/<format>/<deb sha256>/data.tar: the
                        // folder names the content.
                        put(b"range");
                        put(content_name(path).as_bytes());
                        put(&offset.to_le_bytes());
                        put(&len.to_le_bytes());
                    }
                    other => {
                        put(b"bytes");
                        let mut d = Sha256::new();
                        let mut r = other.open()?;
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = r.read(&mut buf)?;
                            if n == 0 {
                                break;
                            }
                            d.update(&buf[..n]);
                        }
                        put(&d.finalize());
                    }
                }
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

fn content_name(p: &Path) -> String {
    let parts: Vec<_> = p.components().rev().take(3).collect();
    parts
        .iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The cache folder for layers.
pub struct LayerCache {
    dir: PathBuf,
    /// The layout the build replaces (`--out`), whose intact blobs need
    /// no copy.
    existing: Option<PathBuf>,
    stamps: crate::store::Stamps,
    note: Box<dyn Fn(String) + Send + Sync>,
}

impl LayerCache {
    /// Opens (creating) `root/layers`. `existing` is the layout the build
    /// will replace, if any; `note` hears of damaged entries.
    pub fn open(
        root: &Path,
        existing: Option<&Path>,
        note: impl Fn(String) + Send + Sync + 'static,
    ) -> std::io::Result<LayerCache> {
        let dir = root.join("layers");
        std::fs::create_dir_all(dir.join("blobs"))?;
        Ok(LayerCache {
            dir,
            existing: existing.map(|p| p.join("blobs/sha256")),
            stamps: crate::store::Stamps::open(root),
            note: Box::new(note),
        })
    }

    /// Puts the cached layer for `fp` into `layout`, if there is one whose
    /// blob is intact. The blob is checked against its digest before it
    /// is used: when the layout being replaced already holds it intact,
    /// nothing is copied; otherwise the cache's copy is copied (never
    /// linked: a layout and the cache share no inode) and hashed on the
    /// way. A damaged entry is removed, said, and the layer written anew.
    pub fn get(&self, fp: &str, layout: &OciLayout) -> Option<(LayerInfo, BlobRef)> {
        let meta_path = self.dir.join(format!("{fp}.json"));
        let meta: Cached = serde_json::from_slice(&std::fs::read(&meta_path).ok()?).ok()?;
        let digest: Digest = meta.digest.parse().ok()?;
        let diff_id: Digest = meta.diff_id.parse().ok()?;
        let hit = (
            LayerInfo {
                diff_id,
                uncompressed_size: meta.uncompressed_size,
                entries: meta.entries,
            },
            BlobRef {
                digest: digest.clone(),
                size: meta.size,
            },
        );
        let intact = |p: &Path| {
            std::fs::metadata(p).is_ok_and(|m| m.len() == meta.size)
                && self.stamps.verify(p, digest.hex()).unwrap_or(false)
        };
        if let Some(existing) = &self.existing {
            if intact(&existing.join(digest.hex())) {
                return Some(hit);
            }
        }
        let src = self.dir.join("blobs").join(digest.hex());
        let dest = layout.blob_path(&digest);
        if dest.is_file() {
            return Some(hit);
        }
        match crate::store::copy_verified(&src, &dest, digest.hex()) {
            Ok(true) => Some(hit),
            Ok(false) => {
                (self.note)(format!(
                    "cache: {} does not hash to {digest}: removed, writing the layer again",
                    src.display()
                ));
                let _ = std::fs::remove_file(&src);
                let _ = std::fs::remove_file(&meta_path);
                None
            }
            Err(_) => None,
        }
    }

    /// Remembers a layer written to `layout`.
    pub fn put(&self, fp: &str, layout: &OciLayout, info: &LayerInfo, blob: &BlobRef) {
        let store = || -> std::io::Result<()> {
            let dest = self.dir.join("blobs").join(blob.digest.hex());
            if !self.stamps.verify(&dest, blob.digest.hex())? {
                let src = layout.blob_path(&blob.digest);
                if !crate::store::copy_verified(&src, &dest, blob.digest.hex())? {
                    return Ok(());
                }
                self.stamps.record(&dest, blob.digest.hex());
            }
            let meta = Cached {
                digest: blob.digest.to_string(),
                size: blob.size,
                diff_id: info.diff_id.to_string(),
                uncompressed_size: info.uncompressed_size,
                entries: info.entries,
            };
            let mut tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(&self.dir)?;
            std::io::Write::write_all(&mut tmp, &serde_json::to_vec(&meta)?)?;
            tmp.persist(self.dir.join(format!("{fp}.json")))
                .map_err(|e| e.error)?;
            Ok(())
        };
        // The cache is an optimisation: failing to fill it never fails a build.
        let _ = store();
    }
}
