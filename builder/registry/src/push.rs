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
        let mut plan = PushPlan::new(layout, top, platforms, target)?;

        // Only now the network: a bad layout or platform is reported as
        // such, even when the registry is out of reach.
        let reg = self.registry(target.api_host())?;
        let blobs = std::mem::take(&mut plan.blobs);
        let outcomes = self.upload_blobs(&reg, repo, &scopes, layout, blobs, progress)?;
        let mut report = plan.report(target, outcomes);

        // Then the manifests, so that none names a missing blob, and the
        // tags last, so that no tag names a missing manifest.
        let mut phase = ManifestPhase {
            client: self,
            reg: &reg,
            repo,
            scopes: &scopes,
            layout,
            progress,
            pushed: 0,
        };
        phase.below_top(&plan.manifests)?;
        phase.put(
            &plan.top_bytes,
            &plan.top_mt,
            &plan.pushed_digest.to_string(),
        )?;
        report.referrers_tags = phase.referrers(&plan.referrers)?;
        let tags = tag_list(target, extra_tags);
        for t in &tags {
            phase.put(&plan.top_bytes, &plan.top_mt, t)?;
        }
        report.tags = tags;
        report.manifests_pushed = phase.pushed;
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

/// What a push sends, worked out from the layout alone before any
/// request, so that a bad layout or platform is reported as such even
/// when the registry is out of reach.
struct PushPlan {
    /// The top-level object as pushed: `top`'s bytes, or an index
    /// narrowed to the platforms asked for.
    top_bytes: Vec<u8>,
    /// Its media type.
    top_mt: String,
    /// The digest of `top_bytes`.
    pushed_digest: Digest,
    /// The manifests and indexes below the top, children before parents
    /// (as `reachable()` orders them).
    manifests: Vec<Descriptor>,
    /// The blobs, each once.
    blobs: Vec<BlobJob>,
    /// The referrer manifests to push, each with its subject's digest.
    referrers: Vec<(Descriptor, String)>,
}

impl PushPlan {
    /// Plans the push of `top` from `layout` to `target`: the top-level
    /// bytes, what they reach, and the referrers the layout holds for
    /// any of it. Errors when `target` names a digest other than the one
    /// that would be pushed.
    fn new(
        layout: &OciLayout,
        top: &Descriptor,
        platforms: Option<&[Platform]>,
        target: &Reference,
    ) -> Result<Self> {
        let top_digest = Digest::from(top.digest());
        let top_mt = top.media_type().to_string();
        let (top_bytes, children) = top_and_children(layout, top, platforms)?;
        let pushed_digest = Digest::of(&top_bytes);
        if let Some(d) = &target.digest {
            if d != &pushed_digest {
                return Err(Error::Invalid(format!(
                    "{target}: the image to push has digest {pushed_digest}, not the one in the reference"
                )));
            }
        }
        let mut contents = Contents::default();
        if is_index_type(&top_mt) {
            for c in &children {
                contents.add(layout.reachable(c)?);
            }
        } else {
            let mut r = layout.reachable(top)?;
            r.retain(|d| Digest::from(d.digest()) != top_digest);
            contents.add(r);
        }
        let referrers = contents.add_referrers(layout, &top_digest, &pushed_digest)?;
        Ok(PushPlan {
            top_bytes,
            top_mt,
            pushed_digest,
            manifests: contents.manifests,
            blobs: contents.blobs,
            referrers,
        })
    }

    /// The report of this push with the blob counts from `outcomes` (each
    /// with its blob's size); manifests, tags and bytes are filled in as
    /// they are pushed.
    fn report(&self, target: &Reference, outcomes: Vec<(BlobOutcome, u64)>) -> PushReport {
        let blob_bytes_uploaded = outcomes
            .iter()
            .filter(|(o, _)| *o == BlobOutcome::Uploaded)
            .map(|(_, size)| size)
            .sum();
        let outcomes: Vec<BlobOutcome> = outcomes.into_iter().map(|(o, _)| o).collect();
        let count = |f: fn(&BlobOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        PushReport {
            reference: target.with_digest(&self.pushed_digest),
            digest: self.pushed_digest.clone(),
            media_type: self.top_mt.clone(),
            tags: Vec::new(),
            blobs_uploaded: count(|o| *o == BlobOutcome::Uploaded),
            blob_bytes_uploaded,
            blobs_skipped: count(|o| *o == BlobOutcome::Skipped),
            blobs_mounted: count(|o| matches!(o, BlobOutcome::Mounted { .. })),
            manifests_pushed: 0,
            referrers_tags: Vec::new(),
            bytes_sent: 0,
        }
    }
}

/// The bytes of the top-level object to push and, for an index, the
/// manifests it lists. With `platforms`, an index is narrowed to them,
/// and a single image must be for one of them: pushing something else
/// than what was asked for would go unnoticed.
fn top_and_children(
    layout: &OciLayout,
    top: &Descriptor,
    platforms: Option<&[Platform]>,
) -> Result<(Vec<u8>, Vec<Descriptor>)> {
    let top_digest = Digest::from(top.digest());
    let layout_name = layout.root().display().to_string();
    let original = layout.read_blob(&top_digest)?;
    let platforms = platforms.filter(|p| !p.is_empty());
    if !is_index_type(top.media_type().as_ref()) {
        if let Some(ps) = platforms {
            check_platforms(layout, top, ps, &layout_name)?;
        }
        return Ok((original, Vec::new()));
    }
    match platforms {
        Some(ps) => filtered_index(&original, &top_digest, ps, &layout_name),
        None => Ok((original, layout.read_index_blob(top)?.manifests().clone())),
    }
}

/// The index `original` narrowed to the platforms `ps`, as canonical JSON
/// (the bytes to push, under a new digest), and the manifests it keeps.
fn filtered_index(
    original: &[u8],
    top_digest: &Digest,
    ps: &[Platform],
    layout_name: &str,
) -> Result<(Vec<u8>, Vec<Descriptor>)> {
    let mut v: serde_json::Value = serde_json::from_slice(original)
        .map_err(|e| Error::Invalid(format!("{layout_name}: index {top_digest}: {e}")))?;
    filter_index(&mut v, ps, layout_name)?;
    let bytes = canonical_json(&v).map_err(|e| Error::Invalid(format!("{layout_name}: {e}")))?;
    let idx: image_layout::oci_spec::image::ImageIndex = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("{layout_name}: filtered index: {e}")))?;
    Ok((bytes, idx.manifests().clone()))
}

/// Refuses a single image that is for none of the platforms `ps`; it
/// cannot be narrowed, and pushing it anyway would hide the mistake.
fn check_platforms(
    layout: &OciLayout,
    top: &Descriptor,
    ps: &[Platform],
    layout_name: &str,
) -> Result<()> {
    let images = layout.images(top)?;
    if images.iter().any(|(p, _)| ps.iter().any(|w| w.matches(p))) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
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
    )))
}

/// The manifests and blobs a push sends, sorted by kind, each digest
/// once (an image and its referrers share blobs), in the order first
/// reached.
#[derive(Default)]
struct Contents {
    seen: HashSet<String>,
    manifests: Vec<Descriptor>,
    blobs: Vec<BlobJob>,
}

impl Contents {
    /// Adds the descriptors not seen before: manifests to `manifests`,
    /// everything else to `blobs`.
    fn add(&mut self, descs: Vec<Descriptor>) {
        for d in descs {
            if !self.seen.insert(d.digest().to_string()) {
                continue;
            }
            if is_manifest_type(d.media_type().as_ref()) {
                self.manifests.push(d);
            } else {
                self.blobs.push(BlobJob {
                    digest: Digest::from(d.digest()),
                    size: d.size(),
                });
            }
        }
    }

    /// Adds what the referrers (SBOMs, signatures) listed at the top of
    /// the layout's `index.json` reach, for those whose `subject` is the
    /// pushed top or one of the manifests added so far; returns them with
    /// their subject. Other entries, and unreadable ones, are someone
    /// else's images and are left alone.
    fn add_referrers(
        &mut self,
        layout: &OciLayout,
        top_digest: &Digest,
        pushed_digest: &Digest,
    ) -> Result<Vec<(Descriptor, String)>> {
        let mut subjects: BTreeSet<String> = self
            .manifests
            .iter()
            .map(|d| d.digest().to_string())
            .collect();
        subjects.insert(pushed_digest.to_string());
        let mut referrers = Vec::new();
        for entry in layout.read_index()?.manifests() {
            let d = Digest::from(entry.digest());
            if &d == top_digest || !is_manifest_type(entry.media_type().as_ref()) {
                continue;
            }
            let Ok(bytes) = layout.read_blob(&d) else {
                continue;
            };
            if let Some(subject) = subject_of(&bytes).filter(|s| subjects.contains(s)) {
                let mut r = layout.reachable(entry)?;
                r.retain(|x| Digest::from(x.digest()) != d);
                self.add(r);
                referrers.push((entry.clone(), subject));
            }
        }
        Ok(referrers)
    }
}

/// The `subject` digest a manifest names, if it is JSON and names one.
fn subject_of(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.pointer("/subject/digest")?.as_str().map(str::to_string))
}

/// The tags a push ends with: `target`'s tag (`latest` when it names
/// neither tag nor digest), then `extra_tags`, each once.
fn tag_list(target: &Reference, extra_tags: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    if target.digest.is_none() || target.tag.is_some() {
        tags.push(target.tag.clone().unwrap_or_else(|| "latest".into()));
    }
    for t in extra_tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    tags
}

/// The manifest half of a push: every put is counted and reported as
/// [`ProgressEvent::ManifestPushed`] on the calling thread.
struct ManifestPhase<'a> {
    client: &'a Client,
    reg: &'a Registry,
    repo: &'a str,
    scopes: &'a [String],
    layout: &'a OciLayout,
    progress: &'a dyn Fn(ProgressEvent),
    /// Manifests and indexes put so far.
    pushed: usize,
}

impl ManifestPhase<'_> {
    /// Puts `bytes` under `reference` and reports it; answers the
    /// registry's `OCI-Subject` header, if any.
    fn put(&mut self, bytes: &[u8], mt: &str, reference: &str) -> Result<Option<String>> {
        let (d, subject) = self.client.put_manifest_with_subject(
            self.reg,
            self.repo,
            self.scopes,
            reference,
            bytes,
            mt,
        )?;
        self.pushed += 1;
        (self.progress)(ProgressEvent::ManifestPushed {
            reference: reference.to_string(),
            digest: d,
        });
        Ok(subject)
    }

    /// Puts the manifests below the top, children before parents. Image
    /// manifests depend only on their blobs: they go in parallel. Indexes
    /// follow, in order, as they name manifests.
    fn below_top(&mut self, manifests: &[Descriptor]) -> Result<()> {
        let (images, indexes): (Vec<&Descriptor>, Vec<&Descriptor>) = manifests
            .iter()
            .partition(|m| !is_index_type(m.media_type().as_ref()));
        let digests = self.client.put_manifests_parallel(
            self.reg,
            self.repo,
            self.scopes,
            self.layout,
            &images,
        )?;
        for d in digests {
            self.pushed += 1;
            (self.progress)(ProgressEvent::ManifestPushed {
                reference: d.to_string(),
                digest: d,
            });
        }
        for m in indexes {
            let d = Digest::from(m.digest());
            let bytes = self.layout.read_blob(&d)?;
            self.put(&bytes, m.media_type().as_ref(), &d.to_string())?;
        }
        Ok(())
    }

    /// Puts the referrers by digest, then the referrers tag schema's
    /// indexes for the subjects whose referrers the registry did not
    /// index itself; returns the tags of those indexes.
    fn referrers(&mut self, referrers: &[(Descriptor, String)]) -> Result<Vec<String>> {
        let mut unindexed: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for (r, subject) in referrers {
            let d = Digest::from(r.digest());
            let bytes = self.layout.read_blob(&d)?;
            let mt = r.media_type().to_string();
            let acked = self.put(&bytes, &mt, &d.to_string())?;
            if acked.as_deref() != Some(subject.as_str()) {
                unindexed
                    .entry(subject.clone())
                    .or_default()
                    .push(referrer_descriptor(&bytes, &mt)?);
            }
        }
        self.referrers_tags(&unindexed)
    }

    /// For each subject in `unindexed` (with its referrers' descriptors),
    /// extends the index under its referrers tag, unless the registry
    /// turns out to have the referrers API after all; returns the tags
    /// written.
    fn referrers_tags(
        &mut self,
        unindexed: &BTreeMap<String, Vec<serde_json::Value>>,
    ) -> Result<Vec<String>> {
        let layout_name = self.layout.root().display().to_string();
        let (reg, repo, scopes) = (self.reg, self.repo, self.scopes);
        let mut has_api: Option<bool> = None;
        let mut tags = Vec::new();
        for (subject, descs) in unindexed {
            let subject: Digest = subject.parse().map_err(|_| {
                Error::Invalid(format!(
                    "{layout_name}: a referrer's subject {subject:?} is not a sha256 digest"
                ))
            })?;
            // One probe per push: the API is a property of the registry.
            let api = match has_api {
                Some(a) => a,
                None => {
                    *has_api.insert(self.client.has_referrers_api(reg, repo, scopes, &subject)?)
                }
            };
            if api {
                continue;
            }
            if let Some(bytes) = self
                .client
                .merged_referrers_index(reg, repo, scopes, &subject, descs)?
            {
                let tag = referrers_tag(&subject);
                self.put(&bytes, MT_INDEX, &tag)?;
                tags.push(tag);
            }
        }
        Ok(tags)
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
