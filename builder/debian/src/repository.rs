//! Fetching a repository's signed metadata and `Packages` index, verified
//! end to end: the `InRelease` signature against a keyring, then the
//! index's sha256 and size against the signed `Release`.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::net::{NetPolicy, Problem, RetryNote};
use crate::packages::{parse_packages, Package, PackagesError};
use crate::release::{verify_detached, verify_inrelease, Release, ReleaseError};

/// A failed download.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The server (or file system) says the resource does not exist;
    /// callers use this to fall back to another file name.
    #[error("{url}: not found")]
    NotFound {
        /// What was requested.
        url: String,
    },
    /// Anything else: connection, timeout, server error, I/O.
    #[error("{url}: {reason}")]
    Other {
        /// What was requested.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// Something that can download a URL in full.
///
/// Tests substitute an in-memory implementation; the builder wraps one
/// with its cache.
pub trait Fetch {
    /// The whole body of `url`.
    fn get(&self, url: &str) -> Result<Vec<u8>, FetchError>;
}

/// [`Fetch`] over HTTP(S) with `reqwest`, plus `file://` URLs read from
/// the local file system (a local mirror, or fixtures in tests). A stalled
/// mirror fails an attempt after the idle time-out of its [`NetPolicy`],
/// and failed attempts are retried (see [`crate::net`]).
#[derive(Clone)]
pub struct HttpFetch {
    client: reqwest::blocking::Client,
    policy: NetPolicy,
    on_retry: Option<RetryNote>,
}

impl std::fmt::Debug for HttpFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFetch")
            .field("policy", &self.policy)
            .finish()
    }
}

impl HttpFetch {
    /// A client whose idle time-out (no byte for that long) is `timeout`,
    /// with the connect time-out and retries of
    /// [`NetPolicy::with_timeout`].
    pub fn new(timeout: Duration) -> Result<HttpFetch, FetchError> {
        HttpFetch::with_policy(NetPolicy::with_timeout(timeout))
    }

    /// A client with `policy`'s time-outs and retries.
    pub fn with_policy(policy: NetPolicy) -> Result<HttpFetch, FetchError> {
        let client = policy
            .client_builder()
            .user_agent(concat!("netshoot-build/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Other {
                url: String::new(),
                reason: format!("cannot build HTTP client: {e}"),
            })?;
        Ok(HttpFetch {
            client,
            policy,
            on_retry: None,
        })
    }

    /// The same client, giving `f` one line before each retry (by default
    /// retries are silent).
    pub fn on_retry(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> HttpFetch {
        self.on_retry = Some(Arc::new(f));
        self
    }

    /// One attempt at `url`: `Ok(None)` for not found.
    fn attempt(&self, url: &str) -> Result<Option<Vec<u8>>, Problem> {
        let mut resp = self
            .client
            .get(url)
            .send()
            .map_err(|e| self.policy.explain(&e))?;
        let status = resp.status();
        // Some mirrors answer 403 or 410 for files they do not carry.
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Problem::status(status));
        }
        // Read by `Read`, whose every call waits at most the idle
        // time-out, rather than `bytes()`, which limits the whole body.
        let mut body =
            Vec::with_capacity(resp.content_length().unwrap_or(0).min(64 << 20) as usize);
        resp.read_to_end(&mut body)
            .map_err(|e| self.policy.explain_read(&e))?;
        Ok(Some(body))
    }
}

impl Fetch for HttpFetch {
    fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        if let Some(path) = url.strip_prefix("file://") {
            return match std::fs::read(path) {
                Ok(b) => Ok(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(FetchError::NotFound {
                    url: url.to_string(),
                }),
                Err(e) => Err(FetchError::Other {
                    url: url.to_string(),
                    reason: e.to_string(),
                }),
            };
        }
        let note = |line: &str| {
            if let Some(f) = &self.on_retry {
                f(line)
            }
        };
        match self.policy.retry("GET", url, &note, || self.attempt(url)) {
            Ok(Some(body)) => Ok(body),
            Ok(None) => Err(FetchError::NotFound {
                url: url.to_string(),
            }),
            Err(p) => Err(FetchError::Other {
                url: url.to_string(),
                reason: p.to_string(),
            }),
        }
    }
}

/// A verified `Packages` index of one suite/component/architecture.
#[derive(Debug, Clone)]
pub struct Index {
    /// Repository base URL (without trailing `/`).
    pub base_url: String,
    /// Suite or codename as requested (`trixie`, `trixie-security`).
    pub suite: String,
    /// Component (`main`).
    pub component: String,
    /// Architecture (`amd64`, `all`, ...).
    pub arch: String,
    /// The verified Release.
    pub release: Release,
    /// sha256 of the `InRelease` (or `Release`) bytes, for the lockfile.
    pub release_digest: String,
    /// URL the `Packages` file was fetched from.
    pub packages_url: String,
    /// Its path relative to `dists/SUITE/` as listed in the Release.
    pub packages_path: String,
    /// sha256 of the fetched (compressed) `Packages` file, as verified.
    pub packages_sha256: String,
    /// Its size in bytes.
    pub packages_size: u64,
    /// The parsed packages.
    pub packages: Vec<Package>,
}

/// Why an index could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// A download failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The Release signature or content did not verify.
    #[error("{url}: {source}")]
    Release {
        /// The Release file's URL.
        url: String,
        /// The verification failure.
        source: ReleaseError,
    },
    /// The Release does not list the index at all.
    #[error("{url}: {path} is not listed in the SHA256 field of the Release")]
    NotListed {
        /// The Release's URL.
        url: String,
        /// The index path looked for.
        path: String,
    },
    /// None of `STEM.xz`, `STEM.gz`, `STEM` exists.
    #[error("{url}: no {stem} index (tried .xz, .gz and uncompressed)")]
    NoIndex {
        /// The directory URL tried.
        url: String,
        /// `Packages` or `Sources`.
        stem: String,
    },
    /// A `Sources` index does not parse.
    #[error("{url}: {reason}")]
    Sources {
        /// The index URL.
        url: String,
        /// The parse failure.
        reason: String,
    },
    /// The downloaded bytes are not what the Release promises.
    #[error("{url}: {what} mismatch: Release says {expected}, got {actual}")]
    Mismatch {
        /// The index URL.
        url: String,
        /// `sha256` or `size`.
        what: &'static str,
        /// From the Release.
        expected: String,
        /// Of the bytes fetched.
        actual: String,
    },
    /// Decompression failed.
    #[error("{url}: cannot decompress: {reason}")]
    Decompress {
        /// The index URL.
        url: String,
        /// The decoder's message.
        reason: String,
    },
    /// The index does not parse.
    #[error("{url}: {source}")]
    Packages {
        /// The index URL.
        url: String,
        /// The parse failure.
        source: PackagesError,
    },
}

/// sha256 of `data`, lowercase hex.
fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Fetches and verifies `dists/SUITE/InRelease` (or `Release` +
/// `Release.gpg` when there is no InRelease) from `base_url`.
pub fn load_release(
    fetch: &dyn Fetch,
    base_url: &str,
    suite: &str,
    keyring: &[u8],
    now: SystemTime,
) -> Result<Release, RepositoryError> {
    let dists = format!("{}/dists/{suite}", base_url.trim_end_matches('/'));
    let inrelease_url = format!("{dists}/InRelease");
    match fetch.get(&inrelease_url) {
        Ok(bytes) => {
            verify_inrelease(&bytes, keyring, now).map_err(|source| RepositoryError::Release {
                url: inrelease_url,
                source,
            })
        }
        Err(FetchError::NotFound { .. }) => {
            let release_url = format!("{dists}/Release");
            let release = fetch.get(&release_url)?;
            let sig = fetch.get(&format!("{dists}/Release.gpg"))?;
            verify_detached(&release, &sig, keyring, now).map_err(|source| {
                RepositoryError::Release {
                    url: release_url,
                    source,
                }
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Fetches, verifies, decompresses and parses
/// `BASE/dists/SUITE/COMPONENT/binary-ARCH/Packages{.xz,.gz,}`.
///
/// The Release is verified with `keyring` at `now` first; each index
/// candidate is then checked against the Release's `SHA256` entry (size
/// and digest) before a byte of it is decompressed. A format the Release
/// does not list, or the server does not have, is skipped; one that is
/// there but does not match the Release is an error rather than a reason
/// to fall back, so that a broken or tampered mirror is seen.
pub fn load_index(
    fetch: &dyn Fetch,
    base_url: &str,
    suite: &str,
    component: &str,
    arch: &str,
    keyring: &[u8],
    now: SystemTime,
) -> Result<Index, RepositoryError> {
    let base = base_url.trim_end_matches('/');
    let release = load_release(fetch, base, suite, keyring, now)?;
    let dir = format!("{component}/binary-{arch}");
    let got = fetch_listed(fetch, &release, base, suite, &dir, "Packages")?;
    let packages = parse_packages(&got.text).map_err(|source| RepositoryError::Packages {
        url: got.url.clone(),
        source,
    })?;
    Ok(Index {
        base_url: base.to_string(),
        suite: suite.to_string(),
        component: component.to_string(),
        arch: arch.to_string(),
        release_digest: release.digest.clone(),
        release,
        packages_url: got.url,
        packages_path: got.path,
        packages_sha256: got.sha256,
        packages_size: got.size,
        packages,
    })
}

/// A verified `Sources` index of one suite/component.
#[derive(Debug, Clone)]
pub struct SourcesIndex {
    /// sha256 of the `InRelease` (or `Release`) bytes.
    pub release_digest: String,
    /// The index's path relative to `dists/SUITE/`.
    pub path: String,
    /// sha256 of the fetched (compressed) index, as verified.
    pub sha256: String,
    /// The parsed source packages.
    pub packages: Vec<crate::sources::SourcePackage>,
}

/// Fetches, verifies and parses `BASE/dists/SUITE/COMPONENT/source/Sources{.xz,.gz,}`,
/// checked as [`load_index`] checks a `Packages` index: the Release's
/// signature first, then the index's size and sha256 against it.
pub fn load_sources_index(
    fetch: &dyn Fetch,
    base_url: &str,
    suite: &str,
    component: &str,
    keyring: &[u8],
    now: SystemTime,
) -> Result<SourcesIndex, RepositoryError> {
    let base = base_url.trim_end_matches('/');
    let release = load_release(fetch, base, suite, keyring, now)?;
    let dir = format!("{component}/source");
    let got = fetch_listed(fetch, &release, base, suite, &dir, "Sources")?;
    let packages =
        crate::sources::parse_sources(&got.text).map_err(|e| RepositoryError::Sources {
            url: got.url.clone(),
            reason: e.to_string(),
        })?;
    Ok(SourcesIndex {
        release_digest: release.digest.clone(),
        path: got.path,
        sha256: got.sha256,
        packages,
    })
}

/// An index file fetched and checked against the Release.
struct Listed {
    url: String,
    path: String,
    sha256: String,
    size: u64,
    text: String,
}

/// Fetches `DIR/STEM.xz`, `.gz` or plain, whichever the Release lists
/// first and the server has, checked by the Release's size and sha256
/// before a byte of it is decompressed. A format the Release does not
/// list, or the server does not have, is skipped; one that is there but
/// does not match the Release is an error rather than a reason to fall
/// back, so that a broken or tampered mirror is seen.
fn fetch_listed(
    fetch: &dyn Fetch,
    release: &Release,
    base: &str,
    suite: &str,
    dir: &str,
    stem: &str,
) -> Result<Listed, RepositoryError> {
    let dists = format!("{base}/dists/{suite}");
    let path_of = |ext: &str| {
        if ext.is_empty() {
            format!("{dir}/{stem}")
        } else {
            format!("{dir}/{stem}.{ext}")
        }
    };
    for ext in ["xz", "gz", ""] {
        let path = path_of(ext);
        let url = format!("{dists}/{path}");
        // Skip formats the Release does not list without asking the server.
        let Some((want_hex, want_size)) = release.sha256(&path) else {
            continue;
        };
        let bytes = match fetch.get(&url) {
            Ok(b) => b,
            Err(FetchError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if bytes.len() as u64 != want_size {
            return Err(RepositoryError::Mismatch {
                url,
                what: "size",
                expected: want_size.to_string(),
                actual: bytes.len().to_string(),
            });
        }
        let got = sha256_hex(&bytes);
        if !got.eq_ignore_ascii_case(want_hex) {
            return Err(RepositoryError::Mismatch {
                url,
                what: "sha256",
                expected: want_hex.to_ascii_lowercase(),
                actual: got,
            });
        }
        let text = decompress(&bytes, ext).map_err(|reason| RepositoryError::Decompress {
            url: url.clone(),
            reason,
        })?;
        return Ok(Listed {
            url,
            path,
            sha256: got,
            size: want_size,
            text,
        });
    }
    // Distinguish "the Release lists none" from "the server has none".
    if !["xz", "gz", ""]
        .iter()
        .any(|ext| release.sha256(&path_of(ext)).is_some())
    {
        return Err(RepositoryError::NotListed {
            url: format!("{dists}/InRelease"),
            path: path_of(""),
        });
    }
    Err(RepositoryError::NoIndex {
        url: format!("{dists}/{dir}/"),
        stem: stem.to_string(),
    })
}

/// Decompresses an index by its file suffix into UTF-8 text.
pub fn decompress(bytes: &[u8], ext: &str) -> Result<String, String> {
    let mut out = Vec::new();
    match ext {
        "xz" => liblzma::read::XzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| format!("xz: {e}"))?,
        "gz" => flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?,
        "" => {
            out.extend_from_slice(bytes);
            out.len()
        }
        other => return Err(format!("unknown compression {other:?}")),
    };
    String::from_utf8(out).map_err(|e| format!("not UTF-8 text: {e}"))
}
