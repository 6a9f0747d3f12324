//! The content-addressed download cache. A file gets its name (its sha256)
//! only after its bytes were checked, through a rename, so concurrent
//! builds and a kill at any point never leave a wrong file under a digest.

use crate::error::{bad_input, network, verification, Result};
use image_layout::HashingWriter;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The cache folder.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
    /// Where download bars go (none unless [`Cache::with_progress`]).
    progress: crate::progress::Progress,
    /// What was verified, so an unchanged object is not hashed again.
    stamps: crate::store::Stamps,
}

impl Cache {
    /// Opens (creating) the cache: `dir` if given, else `$NETSHOOT_CACHE`,
    /// `$XDG_CACHE_HOME/netshoot-build` or `~/.cache/netshoot-build`.
    pub fn open(dir: Option<&Path>) -> Result<Cache> {
        let root = match dir {
            Some(d) => d.to_path_buf(),
            None => default_dir(),
        };
        std::fs::create_dir_all(root.join("blobs/sha256"))
            .map_err(|e| bad_input(format!("cache {}: {e}", root.display())))?;
        Ok(Cache {
            stamps: crate::store::Stamps::open(&root),
            root,
            progress: crate::progress::Progress::quiet(),
        })
    }

    /// The same cache, showing a bar per download on `progress`.
    pub fn with_progress(mut self, progress: crate::progress::Progress) -> Cache {
        self.progress = progress;
        self
    }

    /// The cache's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with sha256 `hex` lives.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }

    /// The stamps of verified objects (see [`crate::store`]).
    pub fn stamps(&self) -> &crate::store::Stamps {
        &self.stamps
    }

    /// Says one line on the build's progress (an eviction, a refetch).
    pub fn note(&self, msg: impl AsRef<str>) {
        self.progress.step(msg);
    }

    /// Whether `path` still holds the bytes `hex` names. A damaged object
    /// is removed, with a line saying so, and `Ok(false)` returned, so the
    /// caller fetches or rebuilds it once; a missing one is `Ok(false)`.
    pub fn check(&self, path: &Path, hex: &str) -> Result<bool> {
        if !path.exists() {
            return Ok(false);
        }
        match self.stamps.verify(path, hex) {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.evict(path, &format!("does not hash to {hex}"));
                Ok(false)
            }
            Err(e) => {
                self.evict(path, &format!("cannot be read ({e})"));
                Ok(false)
            }
        }
    }

    /// Removes a damaged object (a file or a folder), saying why.
    pub fn evict(&self, path: &Path, why: &str) {
        self.note(format!(
            "cache: {} {why}: removed, fetching or rebuilding it again",
            path.display()
        ));
        self.stamps.forget(path);
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
    }

    /// The cached blob for `sha256` when it is there and intact (a damaged
    /// one is evicted); `None` when it must be fetched.
    pub fn verified_blob(&self, sha256: &str) -> Result<Option<PathBuf>> {
        let path = self.blob_path(sha256);
        Ok(self.check(&path, sha256)?.then_some(path))
    }

    /// Keeps a temporary file whose bytes were hashed to `sha256` as the
    /// blob of that name, stamped as verified.
    pub fn keep(&self, tmp: tempfile::NamedTempFile, sha256: &str) -> Result<PathBuf> {
        let dest = self.blob_path(sha256);
        tmp.persist(&dest)
            .map_err(|e| anyhow::anyhow!("cache {}: {}", dest.display(), e.error))?;
        self.stamps.record(&dest, sha256);
        Ok(dest)
    }

    /// Returns the cached file for `sha256`, downloading `url` first when
    /// it is not cached or no longer hashes to its name. The download is
    /// checked against `sha256` before it is kept; a mismatch is an error
    /// naming the URL and both digests.
    pub fn fetch(&self, url: &str, sha256: &str) -> Result<PathBuf> {
        if let Some(p) = self.verified_blob(sha256)? {
            return Ok(p);
        }
        let (tmp, got) = self.download(url)?;
        if got != sha256 {
            return Err(verification(format!(
                "{url}: sha256 mismatch: downloaded {got}, spec pins {sha256}"
            )));
        }
        self.keep(tmp, sha256)
    }

    /// Downloads `url` into a temporary file of the cache and returns it
    /// with its sha256, for callers that learn the digest (a lock's first
    /// download).
    pub fn download(&self, url: &str) -> Result<(tempfile::NamedTempFile, String)> {
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(self.root.join("blobs/sha256"))
            .map_err(|e| bad_input(format!("cache {}: {e}", self.root.display())))?;
        let mut w = HashingWriter::new(io::BufWriter::new(tmp));
        get_into_with(url, &mut w, &self.progress)?;
        let (buf, digest, _) = w.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| bad_input(format!("cache write: {}", e.error())))?;
        Ok((tmp, digest.hex().to_string()))
    }
}

fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NETSHOOT_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("netshoot-build");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache/netshoot-build")
}

/// A blocking HTTP client for downloads: HTTP/1.1, rustls with the system
/// roots, and the connect and idle time-outs of [`crate::net::policy`]
/// rather than a limit on the whole transfer, so that a big file on a slow
/// link finishes while a stalled server fails the attempt.
pub fn http_client() -> Result<reqwest::blocking::Client> {
    client_for(&crate::net::policy())
}

fn client_for(policy: &debian::net::NetPolicy) -> Result<reqwest::blocking::Client> {
    policy
        .client_builder()
        .user_agent(concat!("netshoot-build/", env!("CARGO_PKG_VERSION")))
        .http1_only()
        .build()
        .map_err(|e| network(format!("cannot start an HTTP client: {e}")))
}

/// Streams the body of `url` into `out`. A `file://` URL is read from disk.
pub fn get_into(url: &str, out: &mut impl Write) -> Result<u64> {
    get_into_with(url, out, &crate::progress::Progress::quiet())
}

/// [`get_into`] with a bytes bar on `progress` while an HTTP body comes in.
///
/// A failed attempt (no connection, no data for the idle time-out, a 5xx)
/// is retried as [`crate::net`] says, with a line on the command's
/// progress. What was written stays written: a download that broke midway
/// is resumed with a range request, and only if the server answers with
/// the rest of the same file (`If-Range` with its `ETag` or
/// `Last-Modified`); otherwise it fails. Callers check the sha256 of the
/// whole anyway.
pub fn get_into_with(
    url: &str,
    out: &mut impl Write,
    progress: &crate::progress::Progress,
) -> Result<u64> {
    use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
    if let Some(path) = url.strip_prefix("file://") {
        let mut f = std::fs::File::open(path).map_err(|e| bad_input(format!("{url}: {e}")))?;
        return io::copy(&mut f, out).map_err(|e| bad_input(format!("{url}: {e}")));
    }
    let policy = crate::net::policy();
    let client = client_for(&policy)?;
    let mut total = 0u64;
    // What names this version of the file, from the first answer.
    let mut validator: Option<String> = None;
    let mut bar: Option<crate::progress::Task> = None;
    let mut write_err = None;
    // Why the body stopped coming, for when it cannot be resumed.
    let mut broke: Option<String> = None;
    let fetched = policy.retry("GET", url, &crate::net::note_retry, || {
        let mut req = client.get(url);
        if total > 0 {
            req = req.header(RANGE, format!("bytes={total}-"));
            if let Some(v) = &validator {
                req = req.header(IF_RANGE, v.as_str());
            }
        }
        let mut resp = req.send().map_err(|e| policy.explain(&e))?;
        let status = resp.status();
        if total > 0 {
            let from = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if status != reqwest::StatusCode::PARTIAL_CONTENT || from != Some(total) {
                return Err(debian::net::Problem::fatal(format!(
                    "{} after {total} bytes, and the server does not send the rest (HTTP {status} to a range request)",
                    broke.as_deref().unwrap_or("the download stopped")
                )));
            }
        } else {
            if !status.is_success() {
                return Err(debian::net::Problem::status(status));
            }
            validator = [ETAG, LAST_MODIFIED]
                .iter()
                .find_map(|h| resp.headers().get(h)?.to_str().ok())
                .map(str::to_string);
        }
        let bar = bar.get_or_insert_with(|| {
            let b = progress.bytes(resp.content_length(), "download");
            b.set_message(
                url.rsplit('/')
                    .find(|s| !s.is_empty())
                    .unwrap_or(url)
                    .to_string(),
            );
            b
        });
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = resp.read(&mut buf).map_err(|e| {
                let p = policy.explain_read(&e);
                broke = Some(p.reason.clone());
                p
            })?;
            if n == 0 {
                return Ok(());
            }
            if let Err(e) = out.write_all(&buf[..n]) {
                write_err = Some(bad_input(format!("writing {url} to the cache: {e}")));
                return Err(debian::net::Problem::fatal("writing to the cache failed"));
            }
            total += n as u64;
            bar.inc(n as u64);
        }
    });
    if let Some(e) = write_err {
        return Err(e);
    }
    fetched.map_err(|p| network(format!("{url}: {p}")))?;
    Ok(total)
}

/// What `cache prune` removed.
#[derive(Debug, Default)]
pub struct PruneReport {
    /// Files and folders removed.
    pub removed: u64,
    /// Bytes freed.
    pub bytes: u64,
}

fn size_of(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if md.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| size_of(&e.path())).sum())
            .unwrap_or(0)
    } else {
        md.len()
    }
}

impl Cache {
    /// Removes cache entries not used for `keep` (by modification or
    /// access time, whichever is newer), and leftovers of interrupted
    /// writes older than an hour; `keep = 0` empties the cache. Entries
    /// are whole files or folders, and a build re-creates what it misses,
    /// so pruning while another build runs is safe.
    pub fn prune(&self, keep: std::time::Duration) -> Result<PruneReport> {
        let now = std::time::SystemTime::now();
        let mut report = PruneReport::default();
        let age = |p: &Path| -> Option<std::time::Duration> {
            let md = std::fs::symlink_metadata(p).ok()?;
            let newest = match (md.modified().ok(), md.accessed().ok()) {
                (Some(m), Some(a)) => m.max(a),
                (m, a) => m.or(a)?,
            };
            now.duration_since(newest).ok()
        };
        let areas = [
            "blobs/sha256",
            "payloads/payload-v1",
            "payloads/payload-v2",
            "stamps",
            "checked",
            "layers",
            "layers/blobs",
            "crates",
        ];
        for area in areas {
            let dir = self.root.join(area);
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().to_string();
                if area == "layers" && name == "blobs" {
                    continue;
                }
                let tmp = name.starts_with(".tmp");
                let limit = if tmp {
                    std::time::Duration::from_secs(3600).min(keep)
                } else {
                    keep
                };
                if age(&p).is_some_and(|a| a >= limit) {
                    let bytes = size_of(&p);
                    let gone = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                    if gone.is_ok() {
                        report.removed += 1;
                        report.bytes += bytes;
                    }
                }
            }
        }
        Ok(report)
    }
}

/// What `cache verify` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    /// The cache folder.
    pub cache: PathBuf,
    /// Objects re-hashed (downloads, payloads, layers, compiled tools).
    pub checked: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Damaged objects, removed: path and what was wrong.
    pub removed: Vec<(String, String)>,
}

impl Cache {
    /// Re-hashes every object of the cache whatever its stamp says,
    /// removes those that do not match their digest, and reports. A build
    /// fetches or rebuilds what was removed.
    pub fn verify_all(&self) -> Result<VerifyReport> {
        let mut r = VerifyReport {
            cache: self.root.clone(),
            ..Default::default()
        };
        for area in ["blobs/sha256", "layers/blobs"] {
            for p in entries(&self.root.join(area)) {
                let files = hex_name(&p)
                    .map(|h| vec![(p.clone(), h)])
                    .unwrap_or_default();
                self.check_object(&p, files, &mut r);
            }
        }
        self.drop_orphan_layer_records(&mut r);
        for area in ["payloads/payload-v2", "crates"] {
            for p in entries(&self.root.join(area))
                .into_iter()
                .filter(|p| p.is_dir())
            {
                let list = if area == "crates" {
                    "bins.list"
                } else {
                    "digests"
                };
                let files = std::fs::read_to_string(p.join(list))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.split_once(' '))
                    .map(|(f, d)| (p.join(f), d.to_string()))
                    .collect();
                self.check_object(&p, files, &mut r);
            }
        }
        Ok(r)
    }

    /// Hashes the `files` of one object (a blob, or a folder recording its
    /// files' digests); removes the object when one does not match.
    fn check_object(&self, obj: &Path, files: Vec<(PathBuf, String)>, r: &mut VerifyReport) {
        r.checked += 1;
        let mut bad = files.is_empty().then(|| "records no digests".to_string());
        for (f, want) in &files {
            r.bytes += std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            match crate::store::sha256_file(f) {
                Ok(got) if &got == want => self.stamps.record(f, want),
                Ok(got) => bad = Some(format!("{} has sha256 {got}, expected {want}", f.display())),
                Err(e) => bad = Some(format!("{}: {e}", f.display())),
            }
            if bad.is_some() {
                break;
            }
        }
        let Some(why) = bad else { return };
        for (f, _) in &files {
            self.stamps.forget(f);
        }
        let _ = if obj.is_dir() {
            std::fs::remove_dir_all(obj)
        } else {
            std::fs::remove_file(obj)
        };
        r.removed.push((obj.display().to_string(), why));
    }

    /// A layer record whose blob is gone is useless: drops it too.
    fn drop_orphan_layer_records(&self, r: &mut VerifyReport) {
        for p in entries(&self.root.join("layers")) {
            if p.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let blob = std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["digest"].as_str().map(str::to_string))
                .and_then(|d| d.strip_prefix("sha256:").map(str::to_string));
            if !blob.is_some_and(|h| self.root.join("layers/blobs").join(h).is_file()) {
                let _ = std::fs::remove_file(&p);
                r.removed
                    .push((p.display().to_string(), "names no intact layer".into()));
            }
        }
    }
}

/// The entries of `dir`, sorted, without dot files (temporaries).
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    });
    v.sort();
    v
}

/// The file name of `p` when it is 64 hex digits (a digest).
fn hex_name(p: &Path) -> Option<String> {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
}
