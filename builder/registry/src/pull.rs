//! Pulling an image into an OCI layout, checking the digest and size of
//! everything received before it gets a name in the store.

use crate::client::{expect, lock, Client, Registry, Req};
use crate::error::{Error, Result, Target};
use crate::manifest::{filter_index, is_manifest_type};
use crate::progress::{BlobOutcome, ProgressEvent};
use crate::reference::Reference;
use image_layout::layout::{MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_INDEX, MT_MANIFEST, REF_NAME};
use image_layout::oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use image_layout::{canonical_json, Digest, OciLayout, Platform};
use reqwest::Method;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};

pub use crate::manifest::MANIFEST_ACCEPT;

/// Manifests larger than this are refused (the distribution spec's
/// suggested limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;

/// A fetched manifest: its bytes, exactly as received, and its media type.
type Fetched = (Vec<u8>, String);

/// A blob an image manifest names: its digest and its descriptor's size.
type BlobRef = (Digest, u64);

impl Client {
    /// Fetches a manifest or index: its exact bytes, media type and digest.
    /// When `reference` is a digest the bytes must hash to it.
    pub fn get_manifest(&self, source: &Reference) -> Result<(Vec<u8>, String, Digest)> {
        let reg = self.registry(source.api_host())?;
        let scopes = vec![format!("repository:{}:pull", source.repository)];
        self.fetch_manifest(
            &reg,
            &source.repository,
            &scopes,
            &source.manifest_ref(),
            source.digest.as_ref(),
            None,
        )
    }

    fn fetch_manifest(
        &self,
        reg: &Registry,
        repo: &str,
        scopes: &[String],
        reference: &str,
        expect_digest: Option<&Digest>,
        expect_size: Option<u64>,
    ) -> Result<(Vec<u8>, String, Digest)> {
        let target = Target {
            registry: reg.host.clone(),
            repository: repo.to_string(),
            object: format!("manifest {reference}"),
        };
        let url = reg
            .base
            .join(&format!("{repo}/manifests/{reference}"))
            .map_err(|e| Error::Invalid(format!("{target}: {e}")))?;
        let req = Req::new(Method::GET, url).header("accept", MANIFEST_ACCEPT);
        // A body that stops coming is asked for again, like an answer
        // that does not come (which `send` retries).
        let mut tries = self.tries();
        let (header_digest, content_type, bytes) = loop {
            let resp = expect(
                self.send(reg, &req, scopes, &target, true)?,
                &[200],
                &target,
            )?;
            let header_digest = resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let content_type = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
            let mut bytes = Vec::new();
            let url = resp.url().clone();
            match resp.take(MAX_MANIFEST + 1).read_to_end(&mut bytes) {
                Ok(_) => break (header_digest, content_type, bytes),
                Err(e) => {
                    let err = self.read_error(&target, &url, &e);
                    let Some((next, of)) = tries.failed(&err, true) else {
                        return Err(tries.give_up(err));
                    };
                    self.note_retry(&Method::GET, &url, next, of, &err);
                    std::thread::sleep(self.opts.retry.delay(tries.made()));
                }
            }
        };
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(Error::Verify {
                target,
                detail: format!("larger than {MAX_MANIFEST} bytes"),
            });
        }
        let digest = Digest::of(&bytes);
        let verify = |detail: String| Error::Verify {
            target: target.clone(),
            detail,
        };
        if let Some(want) = expect_digest {
            if &digest != want {
                return Err(verify(format!(
                    "content has digest {digest}, expected {want}"
                )));
            }
        }
        if let Some(want) = expect_size {
            if bytes.len() as u64 != want {
                return Err(verify(format!("{} bytes, expected {want}", bytes.len())));
            }
        }
        if let Some(h) = header_digest {
            if h != digest.to_string() {
                return Err(verify(format!(
                    "content has digest {digest}, the registry says {h}"
                )));
            }
        }
        // The mediaType inside the content is covered by the digest; the
        // header is not, so prefer the former.
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| verify(format!("not JSON: {e}")))?;
        let mt = v
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .or(content_type)
            .ok_or_else(|| verify("no media type".into()))?;
        if !is_manifest_type(&mt) {
            return Err(verify(format!("unsupported manifest media type {mt}")));
        }
        Ok((bytes, mt, digest))
    }

    /// Pulls `source` into `dest` and tags it `tag` in `dest`'s
    /// `index.json` (replacing an entry with that tag, keeping the others).
    /// With `platforms`, only those platforms are fetched and a new index
    /// listing them is stored. Every manifest and blob is checked against
    /// its digest and size before it is stored. Returns the descriptor
    /// added to `index.json`.
    pub fn pull(
        &self,
        source: &Reference,
        platforms: Option<&[Platform]>,
        dest: &OciLayout,
        tag: &str,
    ) -> Result<Descriptor> {
        self.pull_with_progress(source, platforms, dest, tag, &|_| {})
    }

    /// [`Client::pull`] reporting progress on the calling thread.
    pub fn pull_with_progress(
        &self,
        source: &Reference,
        platforms: Option<&[Platform]>,
        dest: &OciLayout,
        tag: &str,
        progress: &dyn Fn(ProgressEvent),
    ) -> Result<Descriptor> {
        let reg = self.registry(source.api_host())?;
        let repo = source.repository.as_str();
        let scopes = vec![format!("repository:{repo}:pull")];
        let (top, top_mt, _) = self.fetch_manifest(
            &reg,
            repo,
            &scopes,
            &source.manifest_ref(),
            source.digest.as_ref(),
            None,
        )?;
        let top = narrow_top(top, &top_mt, platforms, source)?;
        let (manifests, mut blobs) =
            self.walk_manifests(&reg, repo, &scopes, source, &top, &top_mt)?;
        let mut seen = std::collections::HashSet::new();
        blobs.retain(|(d, _)| seen.insert(d.clone()));
        blobs.retain(|(d, _)| !dest.has_blob(d));
        self.download_blobs(&reg, repo, &scopes, dest, blobs, progress)?;
        store_manifests(dest, &manifests)?;
        tag_top(dest, &top, &top_mt, tag)
    }

    /// Fetches the manifests from `top` down, breadth-first, following
    /// nested indexes (each child checked against its descriptor's digest
    /// and size). Returns every manifest with its media type, `top` first,
    /// and the blobs the image manifests name, config then layers, with
    /// repeats. A bound on the count stops an index that never ends.
    fn walk_manifests(
        &self,
        reg: &Registry,
        repo: &str,
        scopes: &[String],
        source: &Reference,
        top: &[u8],
        top_mt: &str,
    ) -> Result<(Vec<Fetched>, Vec<BlobRef>)> {
        let mut manifests: Vec<Fetched> = Vec::new();
        let mut blobs: Vec<BlobRef> = Vec::new();
        let mut pending: VecDeque<Fetched> = VecDeque::new();
        pending.push_back((top.to_vec(), top_mt.to_string()));
        let mut guard = 0;
        while let Some((bytes, mt)) = pending.pop_front() {
            guard += 1;
            if guard > 10_000 {
                return Err(Error::Invalid(format!("{source}: too many manifests")));
            }
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Invalid(format!("{source}: {e}")))?;
            if mt == MT_INDEX || mt == MT_DOCKER_LIST {
                for m in json_list(&v, "manifests") {
                    let (d, size) = descriptor(m, source)?;
                    let (child, cmt, _) = self.fetch_manifest(
                        reg,
                        repo,
                        scopes,
                        &d.to_string(),
                        Some(&d),
                        Some(size),
                    )?;
                    pending.push_back((child, cmt));
                }
            } else if mt == MT_MANIFEST || mt == MT_DOCKER_MANIFEST {
                image_blobs(&v, source, &mut blobs)?;
            }
            manifests.push((bytes, mt));
        }
        Ok((manifests, blobs))
    }

    fn download_blobs(
        &self,
        reg: &Registry,
        repo: &str,
        scopes: &[String],
        dest: &OciLayout,
        blobs: Vec<(Digest, u64)>,
        progress: &dyn Fn(ProgressEvent),
    ) -> Result<()> {
        crate::parallel::run(self.opts.jobs, blobs, progress, |(d, size), tx| {
            let (d, size) = (d.clone(), *size);
            let _ = tx.send(ProgressEvent::BlobStarted {
                digest: d.clone(),
                size,
            });
            self.download(reg, repo, scopes, dest, &d, size, tx)?;
            lock(&self.known_blobs).insert((reg.host.clone(), d.to_string()), repo.to_string());
            let _ = tx.send(ProgressEvent::BlobDone {
                digest: d,
                size,
                outcome: BlobOutcome::Downloaded,
            });
            Ok(())
        })?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn download(
        &self,
        reg: &Registry,
        repo: &str,
        scopes: &[String],
        dest: &OciLayout,
        d: &Digest,
        size: u64,
        tx: &std::sync::mpsc::Sender<ProgressEvent>,
    ) -> Result<()> {
        let target = Target {
            registry: reg.host.clone(),
            repository: repo.to_string(),
            object: format!("blob {d}"),
        };
        let url = reg
            .base
            .join(&format!("{repo}/blobs/{d}"))
            .map_err(|e| Error::Invalid(format!("{target}: {e}")))?;
        let mut tries = self.tries();
        loop {
            let r = self.download_once(reg, scopes, dest, &url, d, size, &target);
            let err = match r {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let attempt = tries.made() + 1;
            if tries.failed(&err, err.is_transient()).is_none() {
                return Err(tries.give_up(err));
            }
            let delay = self.opts.retry.delay(attempt);
            let _ = tx.send(ProgressEvent::Retrying {
                what: target.to_string(),
                attempt,
                error: err.to_string(),
                delay,
            });
            std::thread::sleep(delay);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn download_once(
        &self,
        reg: &Registry,
        scopes: &[String],
        dest: &OciLayout,
        url: &reqwest::Url,
        d: &Digest,
        size: u64,
        target: &Target,
    ) -> Result<()> {
        let req = Req::new(Method::GET, url.clone());
        let resp = expect(self.send(reg, &req, scopes, target, true)?, &[200], target)?;
        let io = |e: std::io::Error| Error::Io {
            context: dest.root().display().to_string(),
            source: e,
        };
        let mut w = dest.blob_writer().map_err(io)?;
        // Read one byte past the size, to notice a body that is too long.
        let mut body = resp.take(size + 1);
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            let k = body
                .read(&mut buf)
                .map_err(|e| self.read_error(target, url, &e))?;
            if k == 0 {
                break;
            }
            n += k as u64;
            if n > size {
                return Err(Error::Verify {
                    target: target.clone(),
                    detail: format!("more than the {size} bytes its descriptor says"),
                });
            }
            w.write_all(&buf[..k]).map_err(io)?;
        }
        if n != size {
            // A short body is a broken transfer: worth another attempt.
            return Err(Error::Transport {
                target: target.clone(),
                detail: format!("got {n} of {size} bytes"),
            });
        }
        // BlobWriter::commit names the file after what was written, so
        // check the digest first by committing into a check: the writer
        // hashes as it goes; a mismatch leaves a stray blob under its true
        // name, which we remove.
        let got = w.commit().map_err(io)?;
        if &got.digest != d {
            let _ = std::fs::remove_file(dest.blob_path(&got.digest));
            return Err(Error::Verify {
                target: target.clone(),
                detail: format!("content has digest {}, expected {d}", got.digest),
            });
        }
        Ok(())
    }
}

/// The top-level object to store: with `platforms`, an index narrowed to
/// them (canonical JSON, so under a new digest); otherwise `top` as
/// fetched.
fn narrow_top(
    top: Vec<u8>,
    top_mt: &str,
    platforms: Option<&[Platform]>,
    source: &Reference,
) -> Result<Vec<u8>> {
    let is_index = top_mt == MT_INDEX || top_mt == MT_DOCKER_LIST;
    let Some(ps) = platforms.filter(|p| is_index && !p.is_empty()) else {
        return Ok(top);
    };
    let mut v: serde_json::Value =
        serde_json::from_slice(&top).map_err(|e| Error::Invalid(format!("{source}: {e}")))?;
    filter_index(&mut v, ps, &source.to_string())?;
    canonical_json(&v).map_err(|e| Error::Invalid(format!("{source}: {e}")))
}

/// The elements of the JSON array `v[key]`; none when it is missing or
/// not an array.
fn json_list<'a>(
    v: &'a serde_json::Value,
    key: &str,
) -> impl Iterator<Item = &'a serde_json::Value> {
    v.get(key).and_then(|m| m.as_array()).into_iter().flatten()
}

/// The digest and size of the descriptor `d`: what everything fetched
/// for it is checked against, so both must be there.
fn descriptor(d: &serde_json::Value, source: &Reference) -> Result<(Digest, u64)> {
    let digest = d
        .get("digest")
        .and_then(|x| x.as_str())
        .and_then(|x| x.parse::<Digest>().ok())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{source}: a descriptor without a valid sha256 digest"
            ))
        })?;
    let size = d
        .get("size")
        .and_then(|x| x.as_u64())
        .ok_or_else(|| Error::Invalid(format!("{source}: descriptor {digest} has no size")))?;
    Ok((digest, size))
}

/// Adds to `blobs` the config and then the layers of the image manifest
/// `v`; a manifest without config is refused.
fn image_blobs(v: &serde_json::Value, source: &Reference, blobs: &mut Vec<BlobRef>) -> Result<()> {
    let config = v
        .get("config")
        .ok_or_else(|| Error::Invalid(format!("{source}: a manifest without config")))?;
    blobs.push(descriptor(config, source)?);
    for l in json_list(v, "layers") {
        blobs.push(descriptor(l, source)?);
    }
    Ok(())
}

/// Stores the fetched manifests, once the blobs they name are in: the
/// store never holds a manifest whose parts are missing.
fn store_manifests(dest: &OciLayout, manifests: &[Fetched]) -> Result<()> {
    for (bytes, _) in manifests {
        dest.put_blob(bytes).map_err(|e| Error::Io {
            context: dest.root().display().to_string(),
            source: e,
        })?;
    }
    Ok(())
}

/// Names the pulled `top` `tag` in `dest`'s `index.json`, replacing the
/// entry that had that tag and keeping the others; returns its entry.
fn tag_top(dest: &OciLayout, top: &[u8], top_mt: &str, tag: &str) -> Result<Descriptor> {
    let mut desc = Descriptor::new(
        MediaType::from(top_mt),
        top.len() as u64,
        Digest::of(top).to_oci(),
    );
    desc.set_annotations(Some(HashMap::from([(
        REF_NAME.to_string(),
        tag.to_string(),
    )])));
    let mut index = read_or_new_index(dest)?;
    let mut entries: Vec<Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_none_or(|n| n != tag)
        })
        .cloned()
        .collect();
    entries.push(desc.clone());
    index.set_manifests(entries);
    dest.write_index(&index).map_err(|e| Error::Io {
        context: dest.root().join("index.json").display().to_string(),
        source: e,
    })?;
    Ok(desc)
}

/// `dest`'s `index.json`, or an empty index when there is none yet (a
/// fresh layout); one that is there but unreadable is an error, not
/// something to overwrite.
fn read_or_new_index(dest: &OciLayout) -> Result<ImageIndex> {
    match dest.read_index() {
        Ok(i) => Ok(i),
        Err(_) if !dest.root().join("index.json").exists() => ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(Vec::<Descriptor>::new())
            .build()
            .map_err(|e| Error::Invalid(format!("{}: {e}", dest.root().display()))),
        Err(e) => Err(e.into()),
    }
}
