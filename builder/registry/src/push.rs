//! Pushing an image from an OCI layout: blobs in parallel (HEAD, mount,
//! monolithic or chunked upload), then manifests children first, the top
//! index by digest, referrers, and only then the tags, so a tag never
//! points at something whose parts are missing.

use crate::client::{expect, lock, BodySpec, Client, Registry, Req};
use crate::error::{Error, Result, Target};
use crate::manifest::{filter_index, is_index_type, is_manifest_type};
use crate::reference::Reference;
use crate::referrers::{referrer_descriptor, referrers_tag};
use image_layout::layout::MT_INDEX;
use image_layout::oci_spec::image::Descriptor;
use image_layout::{canonical_json, Digest, OciLayout, Platform};
use reqwest::{Method, Url};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

pub use crate::progress::{BlobOutcome, ProgressEvent};

/// The result of a push.
#[derive(Clone, Debug)]
pub struct PushReport {
    /// `registry/repository@digest` of what was pushed.
    pub reference: Reference,
    /// Digest of the pushed top-level index (or manifest).
    pub digest: Digest,
    /// Media type of the pushed top-level object.
    pub media_type: String,
    /// Tags that now point at it.
    pub tags: Vec<String>,
    /// Blobs whose bytes were sent.
    pub blobs_uploaded: usize,
    /// Total size of the blobs whose bytes were sent (retries not
    /// counted twice; see `bytes_sent` for what went on the wire).
    pub blob_bytes_uploaded: u64,
    /// Blobs the repository already had.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Manifests and indexes put (referrers and tags included).
    pub manifests_pushed: usize,
    /// Referrers tags (`sha256-<hex>`) created or extended because the
    /// registry has no referrers API.
    pub referrers_tags: Vec<String>,
    /// Bytes of request bodies sent (blob and manifest bodies, retries
    /// included; a shared client's concurrent transfers count too).
    pub bytes_sent: u64,
}

/// Resolves a `Location` header against the URL it answered.
pub(crate) fn location(resp: &reqwest::blocking::Response, target: &Target) -> Result<Url> {
    let loc = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Protocol {
            target: target.clone(),
            detail: format!("HTTP {} without a Location header", resp.status().as_u16()),
        })?;
    resp.url().join(loc).map_err(|e| Error::Protocol {
        target: target.clone(),
        detail: format!("Location {loc:?} is not a URL: {e}"),
    })
}

/// The registry's `Range: 0-N` answer as the next offset (N+1).
fn range_end(resp: &reqwest::blocking::Response) -> Option<u64> {
    let v = resp.headers().get("range")?.to_str().ok()?;
    let v = v.trim().trim_start_matches("bytes=");
    let (_, end) = v.split_once('-')?;
    end.trim().parse::<u64>().ok().map(|e| e + 1)
}

struct BlobJob {
    digest: Digest,
    size: u64,
}

struct Upload<'a> {
    client: &'a Client,
    reg: &'a Registry,
    repo: &'a str,
    scopes: Vec<String>,
    layout: &'a OciLayout,
    tx: mpsc::Sender<ProgressEvent>,
}

impl Client {
    /// Pushes the image `top` of `layout` (from `layout.resolve(tag)`) to
    /// `target`, then tags it with `target`'s tag (`latest` if none) and
    /// each of `extra_tags`. With `platforms`, a new index listing only
    /// those platforms' manifests is pushed instead of `top`. Referrer
    /// manifests in the layout's `index.json` (entries whose manifest has
    /// a `subject` among the pushed manifests) are pushed by digest.
    /// `progress` is called on the calling thread.
    pub fn push_layout(
        &self,
        layout: &OciLayout,
        top: &Descriptor,
        platforms: Option<&[Platform]>,
        target: &Reference,
        extra_tags: &[String],
        progress: &dyn Fn(ProgressEvent),
    ) -> Result<PushReport> {
        let sent_before = self.bytes_sent.load(Ordering::Relaxed);
        let repo = target.repository.as_str();
        let scopes = vec![format!("repository:{repo}:pull,push")];
        let top_digest = Digest::from(top.digest());
        let top_mt = top.media_type().to_string();
        let layout_name = layout.root().display().to_string();

        // Plan: the top-level bytes, the manifests below it, the blobs.
        let original = layout.read_blob(&top_digest)?;
        let (top_bytes, children): (Vec<u8>, Vec<Descriptor>) = if is_index_type(&top_mt) {
            match platforms {
                Some(ps) if !ps.is_empty() => {
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&original).map_err(|e| {
                            Error::Invalid(format!("{layout_name}: index {top_digest}: {e}"))
                        })?;
                    filter_index(&mut v, ps, &layout_name)?;
                    let bytes = canonical_json(&v)
                        .map_err(|e| Error::Invalid(format!("{layout_name}: {e}")))?;
                    let idx: image_layout::oci_spec::image::ImageIndex =
                        serde_json::from_slice(&bytes).map_err(|e| {
                            Error::Invalid(format!("{layout_name}: filtered index: {e}"))
                        })?;
                    (bytes, idx.manifests().clone())
                }
                _ => (
                    original.clone(),
                    layout.read_index_blob(top)?.manifests().clone(),
                ),
            }
        } else {
            if let Some(ps) = platforms.filter(|p| !p.is_empty()) {
                let images = layout.images(top)?;
                if !images.iter().any(|(p, _)| ps.iter().any(|w| w.matches(p))) {
                    return Err(Error::Invalid(format!(
                        "{layout_name}: no image for platform(s) {} (the image is for {})",
                        ps.iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        images
                            .iter()
                            .map(|(p, _)| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            (original.clone(), Vec::new())
        };
        let pushed_digest = Digest::of(&top_bytes);
        if let Some(d) = &target.digest {
            if d != &pushed_digest {
                return Err(Error::Invalid(format!(
                    "{target}: the image to push has digest {pushed_digest}, not the one in the reference"
                )));
            }
        }

        let mut manifests: Vec<Descriptor> = Vec::new();
        let mut blobs: Vec<BlobJob> = Vec::new();
        let mut seen = HashSet::new();
        let mut add =
            |descs: Vec<Descriptor>, manifests: &mut Vec<Descriptor>, blobs: &mut Vec<BlobJob>| {
                for d in descs {
                    if !seen.insert(d.digest().to_string()) {
                        continue;
                    }
                    if is_manifest_type(d.media_type().as_ref()) {
                        manifests.push(d);
                    } else {
                        blobs.push(BlobJob {
                            digest: Digest::from(d.digest()),
                            size: d.size(),
                        });
                    }
                }
            };
        if is_index_type(&top_mt) {
            for c in &children {
                add(layout.reachable(c)?, &mut manifests, &mut blobs);
            }
        } else {
            let mut r = layout.reachable(top)?;
            r.retain(|d| Digest::from(d.digest()) != top_digest);
            add(r, &mut manifests, &mut blobs);
        }
        // Referrers (SBOMs, signatures) that the layout lists at top level.
        let mut subjects: BTreeSet<String> =
            manifests.iter().map(|d| d.digest().to_string()).collect();
        subjects.insert(pushed_digest.to_string());
        let mut referrers: Vec<(Descriptor, String)> = Vec::new();
        for entry in layout.read_index()?.manifests() {
            let d = Digest::from(entry.digest());
            if d == top_digest || !is_manifest_type(entry.media_type().as_ref()) {
                continue;
            }
            let Ok(bytes) = layout.read_blob(&d) else {
                continue;
            };
            let subject = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.pointer("/subject/digest")?.as_str().map(str::to_string));
            if let Some(subject) = subject.filter(|s| subjects.contains(s)) {
                let mut r = layout.reachable(entry)?;
                r.retain(|x| Digest::from(x.digest()) != d);
                add(r, &mut manifests, &mut blobs);
                referrers.push((entry.clone(), subject));
            }
        }

        // Only now the network: a bad layout or platform is reported as
        // such, even when the registry is out of reach.
        let reg = self.registry(target.api_host())?;

        // Blobs, in parallel.
        let outcomes = self.upload_blobs(&reg, repo, &scopes, layout, blobs, progress)?;
        let blob_bytes_uploaded = outcomes
            .iter()
            .filter(|(o, _)| *o == BlobOutcome::Uploaded)
            .map(|(_, size)| size)
            .sum();
        let outcomes: Vec<BlobOutcome> = outcomes.into_iter().map(|(o, _)| o).collect();
        let mut report = PushReport {
            reference: target.with_digest(&pushed_digest),
            digest: pushed_digest.clone(),
            media_type: top_mt.clone(),
            tags: Vec::new(),
            blobs_uploaded: outcomes
                .iter()
                .filter(|o| **o == BlobOutcome::Uploaded)
                .count(),
            blob_bytes_uploaded,
            blobs_skipped: outcomes
                .iter()
                .filter(|o| **o == BlobOutcome::Skipped)
                .count(),
            blobs_mounted: outcomes
                .iter()
                .filter(|o| matches!(o, BlobOutcome::Mounted { .. }))
                .count(),
            manifests_pushed: 0,
            referrers_tags: Vec::new(),
            bytes_sent: 0,
        };

        // Manifests: children before parents (reachable() orders them so).
        // Image manifests depend only on their blobs: put them in
        // parallel. Indexes follow, in order, as they name manifests.
        let (images, indexes): (Vec<&Descriptor>, Vec<&Descriptor>) = manifests
            .iter()
            .partition(|m| !is_index_type(m.media_type().as_ref()));
        for d in self.put_manifests_parallel(&reg, repo, &scopes, layout, &images)? {
            report.manifests_pushed += 1;
            progress(ProgressEvent::ManifestPushed {
                reference: d.to_string(),
                digest: d,
            });
        }
        // `put` answers the registry's `OCI-Subject` header, if any.
        let mut put = |bytes: &[u8], mt: &str, reference: &str| -> Result<Option<String>> {
            let (d, subject) =
                self.put_manifest_with_subject(&reg, repo, &scopes, reference, bytes, mt)?;
            report.manifests_pushed += 1;
            progress(ProgressEvent::ManifestPushed {
                reference: reference.to_string(),
                digest: d,
            });
            Ok(subject)
        };
        for m in indexes {
            let d = Digest::from(m.digest());
            let bytes = layout.read_blob(&d)?;
            put(&bytes, m.media_type().as_ref(), &d.to_string())?;
        }
        put(&top_bytes, &top_mt, &pushed_digest.to_string())?;
        // Referrers, then the referrers tag schema for the subjects whose
        // referrers the registry did not index itself.
        let mut unindexed: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for (r, subject) in &referrers {
            let d = Digest::from(r.digest());
            let bytes = layout.read_blob(&d)?;
            let mt = r.media_type().to_string();
            let acked = put(&bytes, &mt, &d.to_string())?;
            if acked.as_deref() != Some(subject.as_str()) {
                unindexed
                    .entry(subject.clone())
                    .or_default()
                    .push(referrer_descriptor(&bytes, &mt)?);
            }
        }
        let mut has_api: Option<bool> = None;
        let mut referrers_tags = Vec::new();
        for (subject, descs) in &unindexed {
            let subject: Digest = subject.parse().map_err(|_| {
                Error::Invalid(format!(
                    "{layout_name}: a referrer's subject {subject:?} is not a sha256 digest"
                ))
            })?;
            // One probe per push: the API is a property of the registry.
            let api = match has_api {
                Some(a) => a,
                None => *has_api.insert(self.has_referrers_api(&reg, repo, &scopes, &subject)?),
            };
            if api {
                continue;
            }
            if let Some(bytes) =
                self.merged_referrers_index(&reg, repo, &scopes, &subject, descs)?
            {
                let tag = referrers_tag(&subject);
                put(&bytes, MT_INDEX, &tag)?;
                referrers_tags.push(tag);
            }
        }
        let mut tags: Vec<String> = Vec::new();
        if target.digest.is_none() || target.tag.is_some() {
            tags.push(target.tag.clone().unwrap_or_else(|| "latest".into()));
        }
        for t in extra_tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        for t in &tags {
            put(&top_bytes, &top_mt, t)?;
        }
        report.tags = tags;
        report.referrers_tags = referrers_tags;
        report.bytes_sent = self.bytes_sent.load(Ordering::Relaxed) - sent_before;
        Ok(report)
    }

    /// PUTs manifest `bytes` byte-exact under `reference`; returns its
    /// digest and the `OCI-Subject` header by which a registry with the
    /// referrers API says it indexed the manifest's subject.
    pub(crate) fn put_manifest_with_subject(
        &self,
        reg: &Registry,
        repo: &str,
        scopes: &[String],
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(Digest, Option<String>)> {
        let digest = Digest::of(bytes);
        let target = Target {
            registry: reg.host.clone(),
            repository: repo.to_string(),
            object: format!("manifest {reference}"),
        };
        let url = reg
            .base
            .join(&format!("{repo}/manifests/{reference}"))
            .map_err(|e| Error::Invalid(format!("{target}: {e}")))?;
        let req = Req::new(Method::PUT, url)
            .header("content-type", media_type)
            .body(BodySpec::Bytes(Arc::new(bytes.to_vec())));
        let resp = self.send(reg, &req, scopes, &target, true)?;
        let resp = expect(resp, &[200, 201, 202, 204], &target)?;
        if let Some(got) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if got != digest.to_string() {
                return Err(Error::Verify {
                    target,
                    detail: format!("the registry stored it as {got}, we sent {digest}"),
                });
            }
        }
        let subject = resp
            .headers()
            .get("oci-subject")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((digest, subject))
    }

    /// PUTs the manifests `list` by digest, up to `jobs` at a time;
    /// returns their digests in `list` order.
    fn put_manifests_parallel(
        &self,
        reg: &Registry,
        repo: &str,
        scopes: &[String],
        layout: &OciLayout,
        list: &[&Descriptor],
    ) -> Result<Vec<Digest>> {
        crate::parallel::run(self.opts.jobs, list.to_vec(), &|_| {}, |m, _| {
            let d = Digest::from(m.digest());
            let bytes = layout.read_blob(&d).map_err(Error::from)?;
            self.put_manifest_with_subject(
                reg,
                repo,
                scopes,
                &d.to_string(),
                &bytes,
                m.media_type().as_ref(),
            )
            .map(|(d, _)| d)
        })
    }

    fn upload_blobs(
        &self,
        reg: &Registry,
        repo: &str,
        scopes: &[String],
        layout: &OciLayout,
        blobs: Vec<BlobJob>,
        progress: &dyn Fn(ProgressEvent),
    ) -> Result<Vec<(BlobOutcome, u64)>> {
        // Largest first: the biggest blob is the critical path, and small
        // ones fill in around it.
        let mut blobs = blobs;
        blobs.sort_by_key(|b| std::cmp::Reverse(b.size));
        crate::parallel::run(self.opts.jobs, blobs, progress, |job, tx| {
            let up = Upload {
                client: self,
                reg,
                repo,
                scopes: scopes.to_vec(),
                layout,
                tx: tx.clone(),
            };
            let _ = tx.send(ProgressEvent::BlobStarted {
                digest: job.digest.clone(),
                size: job.size,
            });
            let o = up.blob(job)?;
            let _ = tx.send(ProgressEvent::BlobDone {
                digest: job.digest.clone(),
                size: job.size,
                outcome: o.clone(),
            });
            Ok((o, job.size))
        })
    }
}

impl Upload<'_> {
    fn target(&self, d: &Digest) -> Target {
        Target {
            registry: self.reg.host.clone(),
            repository: self.repo.to_string(),
            object: format!("blob {d}"),
        }
    }

    fn url(&self, path: &str, target: &Target) -> Result<Url> {
        self.reg
            .base
            .join(&format!("{}/{path}", self.repo))
            .map_err(|e| Error::Invalid(format!("{target}: {e}")))
    }

    fn remember(&self, d: &Digest) {
        lock(&self.client.known_blobs).insert(
            (self.reg.host.clone(), d.to_string()),
            self.repo.to_string(),
        );
    }

    fn blob(&self, job: &BlobJob) -> Result<BlobOutcome> {
        let target = self.target(&job.digest);
        // Read the file's length now: a missing or short blob in the
        // layout is our fault, not the registry's.
        let path = self.layout.blob_path(&job.digest);
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::Io {
                context: path.display().to_string(),
                source: e,
            })?
            .len();
        if len != job.size {
            return Err(Error::Invalid(format!(
                "{}: blob is {len} bytes, its descriptor says {}",
                path.display(),
                job.size
            )));
        }
        let head = Req::new(
            Method::HEAD,
            self.url(&format!("blobs/{}", job.digest), &target)?,
        );
        let resp = self
            .client
            .send(self.reg, &head, &self.scopes, &target, true)?;
        if resp.status().as_u16() == 200 {
            self.remember(&job.digest);
            return Ok(BlobOutcome::Skipped);
        }
        let mut session = None;
        let mut candidates: Vec<String> = Vec::new();
        if let Some(r) =
            lock(&self.client.known_blobs).get(&(self.reg.host.clone(), job.digest.to_string()))
        {
            candidates.push(r.clone());
        }
        candidates.extend(self.client.opts.mount_from.iter().cloned());
        candidates.retain(|r| r != self.repo);
        candidates.dedup();
        for from in candidates {
            let mut url = self.url("blobs/uploads/", &target)?;
            url.query_pairs_mut()
                .append_pair("mount", &job.digest.to_string())
                .append_pair("from", &from);
            let mut scopes = self.scopes.clone();
            scopes.push(format!("repository:{from}:pull"));
            let req = Req::new(Method::POST, url).header("content-length", "0");
            match self.client.send(self.reg, &req, &scopes, &target, true) {
                Ok(r) if r.status().as_u16() == 201 => {
                    self.remember(&job.digest);
                    return Ok(BlobOutcome::Mounted { from });
                }
                // 202: the registry opened an upload session instead;
                // use it rather than leaving it dangling.
                Ok(r) if r.status().as_u16() == 202 => {
                    session = location(&r, &target).ok();
                    break;
                }
                _ => continue,
            }
        }
        self.upload(job, &path, &target, session)?;
        self.remember(&job.digest);
        Ok(BlobOutcome::Uploaded)
    }

    /// Starts an upload session: its URL and the registry's minimum chunk.
    fn start(&self, target: &Target) -> Result<(Url, u64)> {
        let req = Req::new(Method::POST, self.url("blobs/uploads/", target)?)
            .header("content-length", "0");
        let resp = self
            .client
            .send(self.reg, &req, &self.scopes, target, true)?;
        let resp = expect(resp, &[202], target)?;
        let min = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        Ok((location(&resp, target)?, min))
    }

    fn with_digest(url: &Url, d: &Digest) -> Url {
        let mut u = url.clone();
        u.query_pairs_mut().append_pair("digest", &d.to_string());
        u
    }

    /// Uploads one blob with bounded attempts. Every attempt either
    /// resumes a session from the offset the registry reports or starts
    /// a new one; the registry checks the digest at the end, so a
    /// confused attempt cannot store wrong content.
    fn upload(
        &self,
        job: &BlobJob,
        path: &std::path::Path,
        target: &Target,
        mut session: Option<Url>,
    ) -> Result<()> {
        let opts = &self.client.opts;
        let mut chunked = job.size > opts.chunk_threshold;
        let mut fell_back = false;
        let mut min_chunk = 0u64;
        // Some(offset) when the offset of `session` is known.
        let mut offset: Option<u64> = session.as_ref().map(|_| 0);
        let mut tries = self.client.tries();
        loop {
            let r = if chunked {
                self.chunked(job, path, target, &mut session, &mut offset, &mut min_chunk)
            } else {
                let r = self.monolithic(job, path, target, session.take());
                offset = None;
                r
            };
            let err = match r {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            // A registry that rejects one-shot uploads (some proxies cap
            // body size) may still take chunks: try that once, at once.
            if !chunked && !fell_back && !err.is_transient() && matches!(err, Error::Status { .. })
            {
                chunked = true;
                fell_back = true;
                session = None;
                continue;
            }
            let resync = matches!(err, Error::Status { status: 416, .. });
            let attempt = tries.made() + 1;
            if tries.failed(&err, err.is_transient() || resync).is_none() {
                return Err(tries.give_up(err));
            }
            let delay = match &err {
                Error::Status {
                    retry_after: Some(d),
                    ..
                } => *d,
                _ => opts.retry.delay(attempt),
            }
            .min(opts.retry.max_delay);
            let _ = self.tx.send(ProgressEvent::Retrying {
                what: target.to_string(),
                attempt,
                error: err.to_string(),
                delay,
            });
            std::thread::sleep(delay);
        }
    }

    fn monolithic(
        &self,
        job: &BlobJob,
        path: &std::path::Path,
        target: &Target,
        session: Option<Url>,
    ) -> Result<()> {
        let url = match session {
            Some(u) => u,
            None => self.start(target)?.0,
        };
        let req = Req::new(Method::PUT, Self::with_digest(&url, &job.digest))
            .header("content-type", "application/octet-stream")
            .body(BodySpec::File {
                path: path.to_path_buf(),
                offset: 0,
                len: job.size,
            });
        let resp = self
            .client
            .send(self.reg, &req, &self.scopes, target, false)?;
        self.check_done(resp, job, target)
    }

    fn check_done(
        &self,
        resp: reqwest::blocking::Response,
        job: &BlobJob,
        target: &Target,
    ) -> Result<()> {
        let resp = expect(resp, &[201, 204], target)?;
        if let Some(got) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if got != job.digest.to_string() {
                return Err(Error::Verify {
                    target: target.clone(),
                    detail: format!("the registry stored it as {got}"),
                });
            }
        }
        Ok(())
    }

    fn chunked(
        &self,
        job: &BlobJob,
        path: &std::path::Path,
        target: &Target,
        session: &mut Option<Url>,
        offset: &mut Option<u64>,
        min_chunk: &mut u64,
    ) -> Result<()> {
        // Where are we? Ask the registry after a failure (GET on the
        // upload URL answers 204 with Range), else start over.
        if let (Some(url), None) = (session.as_ref(), *offset) {
            let req = Req::new(Method::GET, url.clone());
            match self
                .client
                .send(self.reg, &req, &self.scopes, target, false)
            {
                Ok(r) if r.status().as_u16() == 204 => {
                    let next = location(&r, target).unwrap_or_else(|_| url.clone());
                    // "0-0" is ambiguous (nothing or one byte): restart.
                    let end = range_end(&r).filter(|e| *e > 1 && *e <= job.size);
                    *offset = Some(end.unwrap_or(0));
                    *session = Some(next);
                    if end.is_none() {
                        *session = None;
                    }
                }
                _ => *session = None,
            }
        }
        if session.is_none() {
            let (u, min) = self.start(target)?;
            *session = Some(u);
            *min_chunk = min;
            *offset = Some(0);
        }
        let chunk = self.client.opts.chunk_size.max(*min_chunk).max(1);
        let mut url = session
            .clone()
            .ok_or_else(|| Error::Invalid("internal: no session".into()))?;
        let mut pos = offset.unwrap_or(0);
        while pos < job.size {
            let len = chunk.min(job.size - pos);
            let req = Req::new(Method::PATCH, url.clone())
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{pos}-{}", pos + len - 1))
                .body(BodySpec::File {
                    path: path.to_path_buf(),
                    offset: pos,
                    len,
                });
            // After this point the offset is unknown until the registry
            // confirms it.
            *offset = None;
            let resp = self
                .client
                .send(self.reg, &req, &self.scopes, target, false)?;
            let resp = expect(resp, &[202, 204], target)?;
            url = location(&resp, target)?;
            *session = Some(url.clone());
            pos = range_end(&resp).unwrap_or(pos + len);
            *offset = Some(pos);
        }
        let req = Req::new(Method::PUT, Self::with_digest(&url, &job.digest))
            .header("content-length", "0")
            .header("content-type", "application/octet-stream");
        let resp = self
            .client
            .send(self.reg, &req, &self.scopes, target, false)?;
        let r = self.check_done(resp, job, target);
        if r.is_err() {
            *offset = None;
        }
        r
    }
}
