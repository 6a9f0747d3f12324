//! The HTTP side: options, TLS, scheme choice, auth handshake, retries.
//!
//! Blocking `reqwest` on plain threads rather than async: the work is a
//! handful of large, independent transfers (`jobs`, default 4), the rest
//! of the builder is synchronous, and `reqwest::blocking` still pools
//! connections on one internal runtime. Threads keep the upload state
//! machines (resume, session restart) as straight-line code.

use crate::auth::{parse_challenge, Challenge, CredentialSources, Credentials, Secret};
use crate::error::{parse_error_body, Error, Result, Target};
use crate::reference::is_loopback;
use reqwest::blocking::{Body, RequestBuilder, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Request bodies from files up to this size are read into memory and
/// handed to the HTTP stack whole; larger ones are streamed. Uploads are
/// cut into pieces no larger than this by default (`chunk_threshold`,
/// `chunk_size`), so memory stays bounded by `jobs` times this.
pub const MAX_BUFFERED_BODY: u64 = 64 << 20;

/// How failed requests are retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per request or blob, the first included (at least 1).
    pub max_attempts: u32,
    /// Of those, how many may end in a time-out (connect or idle; at
    /// least 1). Each costs a whole time-out, so a stalled registry is
    /// given up on after this many (default 3: about a minute with the
    /// default time-outs), counting those a request inside a blob's
    /// transfer already made.
    pub max_timeouts: u32,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Upper bound for one delay (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            max_timeouts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1-based): exponential with
    /// "full jitter" between half and all of it, so parallel uploads that
    /// failed together do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        half + half.mul_f64(jitter())
    }
}

/// A number in [0, 1) that differs between calls and threads; no need
/// for cryptographic quality.
fn jitter() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// What [`ClientOptions::on_retry`] calls.
pub type RetryHook = Arc<dyn Fn(&str) + Send + Sync>;

/// The slowest upload a request with a body is given time for: 128 KiB/s
/// (1 Mbit/s). The blocking HTTP stack has no idle timer for sending, so
/// the answer to an upload is awaited for the idle time-out plus the
/// body's size at this rate.
pub const MIN_UPLOAD_RATE: u64 = 128 << 10;

/// `reqwest`'s blocking client starts its clock before the connection is
/// opened; this much more lets a connect time-out of the same length fire
/// first, so that it is reported as what it is.
const TIMEOUT_SLACK: Duration = Duration::from_millis(500);

/// Settings of a [`Client`].
#[derive(Clone)]
pub struct ClientOptions {
    /// Allow plain HTTP, and HTTPS with unverified certificates, for any
    /// registry (loopback registries may always use plain HTTP).
    pub insecure: bool,
    /// PEM files with extra CA certificates to trust, besides the system's.
    pub ca_certs: Vec<PathBuf>,
    /// Blobs transferred in parallel (default 4).
    pub jobs: usize,
    /// User name; with `password`, overrides every credential file.
    pub username: Option<String>,
    /// Password (never printed).
    pub password: Option<String>,
    /// Blobs larger than this are uploaded in chunks (default 64 MiB).
    pub chunk_threshold: u64,
    /// Size of one chunk when chunking (raised to the registry's
    /// `OCI-Chunk-Min-Length`; default 32 MiB).
    pub chunk_size: u64,
    /// Retries of failed requests.
    pub retry: RetryPolicy,
    /// `User-Agent` header.
    pub user_agent: String,
    /// The idle time-out: no byte from the registry for this long, while
    /// waiting for its answer or reading one, fails the attempt, which is
    /// retried (default 20 s). There is no limit on a whole download, so
    /// big blobs on slow links finish. A request with a body is given
    /// this plus the time to send it at [`MIN_UPLOAD_RATE`] for its
    /// answer.
    pub timeout: Duration,
    /// Time allowed to open a connection, TLS handshake included
    /// (default 10 s).
    pub connect_timeout: Duration,
    /// Called with one line before each retry of a request, e.g.
    /// `retrying GET https://registry.example.com/v2/ (attempt 2 of 3):
    /// no data for 20 s`. Retries of whole blobs are reported as
    /// [`ProgressEvent::Retrying`](crate::ProgressEvent::Retrying) instead.
    pub on_retry: Option<RetryHook>,
    /// Other repositories of the target registry that may hold the blobs,
    /// tried for cross-repository mounts (as well as those this client
    /// has seen).
    pub mount_from: Vec<String>,
    /// Where credentials are looked up when no username is given.
    pub credentials: CredentialSources,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("insecure", &self.insecure)
            .field("ca_certs", &self.ca_certs)
            .field("jobs", &self.jobs)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("chunk_threshold", &self.chunk_threshold)
            .field("chunk_size", &self.chunk_size)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("on_retry", &self.on_retry.as_ref().map(|_| "<hook>"))
            .field("mount_from", &self.mount_from)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            ca_certs: Vec::new(),
            jobs: 4,
            username: None,
            password: None,
            chunk_threshold: 64 << 20,
            chunk_size: 32 << 20,
            retry: RetryPolicy::default(),
            user_agent: concat!("netshoot-build/", env!("CARGO_PKG_VERSION")).to_string(),
            timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            on_retry: None,
            mount_from: Vec::new(),
            credentials: CredentialSources::from_env(),
        }
    }
}

/// A request body that can be produced again for a retry.
#[derive(Clone)]
pub(crate) enum BodySpec {
    /// No body.
    Empty,
    /// Bytes in memory (manifests).
    Bytes(Arc<Vec<u8>>),
    /// `len` bytes of a file from `offset` (blobs, chunks).
    File {
        /// The file.
        path: PathBuf,
        /// Where to start.
        offset: u64,
        /// How much.
        len: u64,
    },
}

impl BodySpec {
    fn len(&self) -> u64 {
        match self {
            BodySpec::Empty => 0,
            BodySpec::Bytes(b) => b.len() as u64,
            BodySpec::File { len, .. } => *len,
        }
    }
}

/// A request, kept as data so it can be sent again after a 401 or a
/// transient failure.
#[derive(Clone)]
pub(crate) struct Req {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: BodySpec,
}

impl Req {
    pub fn new(method: Method, url: Url) -> Self {
        Req {
            method,
            url,
            headers: Vec::new(),
            body: BodySpec::Empty,
        }
    }
    pub fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    pub fn body(mut self, b: BodySpec) -> Self {
        self.body = b;
        self
    }
}

/// Counts bytes as the HTTP stack pulls them from a file.
struct CountingReader<R> {
    inner: R,
    sent: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Access tokens by scope set, with their expiry.
    tokens: HashMap<String, (Secret, Instant)>,
    /// A refresh token learnt from the token service.
    refresh: Option<Secret>,
}

/// One registry as this client talks to it.
pub(crate) struct Registry {
    pub host: String,
    pub base: Url,
    http: reqwest::blocking::Client,
    creds: Option<Credentials>,
    auth: Mutex<AuthState>,
    token_fetch: Mutex<()>,
}

/// A registry client: holds connections, tokens and what it has learnt
/// about where blobs live. Cheap to share between threads by reference.
pub struct Client {
    pub(crate) opts: ClientOptions,
    verified: reqwest::blocking::Client,
    unverified: Option<reqwest::blocking::Client>,
    registries: Mutex<HashMap<String, Arc<Registry>>>,
    /// Repositories where a blob was seen, by registry and digest, for
    /// cross-repository mounts.
    pub(crate) known_blobs: Mutex<HashMap<(String, String), String>>,
    /// Bytes of request bodies handed to the network (retries included).
    pub(crate) bytes_sent: Arc<AtomicU64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("opts", &self.opts).finish()
    }
}

fn is_tls_cert_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if s.contains("certificate") || s.contains("UnknownIssuer") {
            return Some(s);
        }
        cur = err.source();
    }
    None
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

impl Client {
    /// A client with `opts`; reads the CA files now so that a bad path
    /// fails early.
    pub fn new(opts: ClientOptions) -> Result<Client> {
        let build = |verify: bool| -> Result<reqwest::blocking::Client> {
            let mut b = reqwest::blocking::Client::builder()
                .http1_only()
                .user_agent(opts.user_agent.clone())
                .connect_timeout(opts.connect_timeout)
                // The blocking client applies this to the wait for an
                // answer's head and then to each read of its body: an idle
                // timer, not a limit on a whole transfer.
                .timeout(opts.timeout + TIMEOUT_SLACK)
                .pool_max_idle_per_host(opts.jobs.max(1) * 2);
            for path in &opts.ca_certs {
                let pem = std::fs::read(path).map_err(|e| Error::Io {
                    context: format!("CA certificate file {}", path.display()),
                    source: e,
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    Error::Invalid(format!(
                        "CA certificate file {}: not PEM certificates: {e}",
                        path.display()
                    ))
                })?;
                for c in certs {
                    b = b.add_root_certificate(c);
                }
            }
            if !verify {
                b = b.danger_accept_invalid_certs(true);
            }
            b.build().map_err(|e| {
                Error::Invalid(format!("cannot set up the HTTP client: {}", chain(&e)))
            })
        };
        let verified = build(true)?;
        let unverified = if opts.insecure {
            Some(build(false)?)
        } else {
            None
        };
        Ok(Client {
            verified,
            unverified,
            registries: Mutex::new(HashMap::new()),
            known_blobs: Mutex::new(HashMap::new()),
            bytes_sent: Arc::new(AtomicU64::new(0)),
            opts,
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    fn credentials_for(&self, host: &str) -> Result<Option<Credentials>> {
        if let (Some(u), Some(p)) = (&self.opts.username, &self.opts.password) {
            return Ok(Some(Credentials::Basic {
                username: u.clone(),
                password: Secret::new(p.clone()),
            }));
        }
        self.opts.credentials.lookup(host)
    }

    /// Finds out how to talk to `host` (HTTPS or, where allowed, HTTP) and
    /// how it wants to be authenticated, once per client.
    pub(crate) fn registry(&self, host: &str) -> Result<Arc<Registry>> {
        if let Some(r) = self.lock_registries().get(host) {
            return Ok(r.clone());
        }
        let creds = self.credentials_for(host)?;
        let plain_ok = self.opts.insecure || is_loopback(host);
        let target = Target {
            registry: host.to_string(),
            repository: String::new(),
            object: "/v2/".into(),
        };
        let url = |scheme: &str| {
            Url::parse(&format!("{scheme}://{host}/v2/")).map_err(|e| {
                Error::Invalid(format!("registry host {host:?} does not make a URL: {e}"))
            })
        };
        let mut chosen = None;
        let mut last_err: Option<Error> = None;
        // One count for all schemes: a registry that stalls over HTTPS
        // and then over HTTP is given up on after `max_timeouts` in all.
        let mut tries = Tries::new(&self.opts.retry, 0);
        // HTTPS first everywhere; a loopback registry that speaks plain
        // HTTP answers the TLS hello with garbage, which is not a
        // certificate problem, so fall back to HTTP for it.
        for (scheme, http) in [
            ("https", &self.verified),
            (
                "https-insecure",
                self.unverified.as_ref().unwrap_or(&self.verified),
            ),
            ("http", &self.verified),
        ] {
            if scheme == "https-insecure" && self.unverified.is_none() {
                continue;
            }
            if scheme == "http" && !plain_ok {
                continue;
            }
            let base = url(if scheme == "http" { "http" } else { "https" })?;
            // Over HTTPS to a registry that may be plain HTTP, one try is
            // enough: a protocol mismatch does not heal with time.
            let attempts = if scheme != "http" && plain_ok {
                1
            } else {
                self.opts.retry.max_attempts
            };
            if !self.may_try_next_scheme(&mut tries, attempts, last_err.as_ref(), &base) {
                break;
            }
            let resp = self.with_retries(&target, &mut tries, &Method::GET, &base, || {
                http.get(base.clone()).send()
            });
            match resp {
                Ok(r) => {
                    let challenge = r
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_challenge);
                    chosen = Some((base, http.clone(), challenge));
                    break;
                }
                Err(e) => {
                    let fatal_tls = matches!(e, Error::Tls { .. });
                    last_err = Some(e);
                    // A certificate that does not verify is a hard stop
                    // unless --insecure: never downgrade silently.
                    if fatal_tls && !self.opts.insecure {
                        break;
                    }
                }
            }
        }
        let Some((base, http, challenge)) = chosen else {
            return Err(last_err.unwrap_or_else(|| Error::Transport {
                target,
                detail: "cannot reach the registry".into(),
            }));
        };
        let reg = Arc::new(Registry {
            host: host.to_string(),
            base,
            http,
            creds,
            auth: Mutex::new(AuthState {
                challenge,
                ..Default::default()
            }),
            token_fetch: Mutex::new(()),
        });
        self.lock_registries().insert(host.to_string(), reg.clone());
        Ok(reg)
    }

    /// Before probing the next scheme (`attempts` of them) after
    /// `last_err`: after a time-out it is one more attempt, said as such
    /// (false when the time-outs are spent); after an answer that is not
    /// HTTPS (or none), the count starts over.
    fn may_try_next_scheme(
        &self,
        tries: &mut Tries,
        attempts: u32,
        last_err: Option<&Error>,
        base: &Url,
    ) -> bool {
        let Some(err @ Error::TimedOut { .. }) = last_err else {
            tries.restart(attempts);
            return true;
        };
        tries.allow(attempts);
        let Some((next, of)) = tries.next(err, true) else {
            return false;
        };
        self.note_retry(&Method::GET, base, next, of, err);
        std::thread::sleep(self.opts.retry.delay(tries.made()));
        true
    }

    fn lock_registries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Registry>>> {
        self.registries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` (a `method` request to `url`) until it gives a
    /// non-transient answer or `tries` are spent, sleeping with backoff
    /// in between and saying so before each retry.
    fn with_retries(
        &self,
        target: &Target,
        tries: &mut Tries,
        method: &Method,
        url: &Url,
        mut f: impl FnMut() -> std::result::Result<Response, reqwest::Error>,
    ) -> Result<Response> {
        loop {
            let started = Instant::now();
            let r = f();
            trace(|| {
                format!(
                    "{target} -> {} in {:?}",
                    r.as_ref()
                        .map(|r| r.status().as_u16().to_string())
                        .unwrap_or_else(|e| chain(e)),
                    started.elapsed()
                )
            });
            let outcome = match r {
                Ok(r) => classify_status(r, target),
                Err(e) => Err((self.transport_error(target, &e, 0), None)),
            };
            match outcome {
                Ok(r) => return Ok(r),
                Err((err, retry_after)) => {
                    let Some((next, of)) = tries.failed(&err, err.is_transient()) else {
                        return Err(tries.give_up(err));
                    };
                    self.note_retry(method, url, next, of, &err);
                    let delay = retry_after
                        .unwrap_or_else(|| self.opts.retry.delay(tries.made()))
                        .min(self.opts.retry.max_delay);
                    std::thread::sleep(delay);
                }
            }
        }
    }

    /// [`Client::with_retries`] with a fresh count of attempts.
    fn retried(
        &self,
        target: &Target,
        method: &Method,
        url: &Url,
        f: impl FnMut() -> std::result::Result<Response, reqwest::Error>,
    ) -> Result<Response> {
        self.with_retries(target, &mut self.tries(), method, url, f)
    }

    /// A fresh count of attempts for one request.
    pub(crate) fn tries(&self) -> Tries {
        Tries::new(&self.opts.retry, self.opts.retry.max_attempts.max(1))
    }

    /// Says on [`ClientOptions::on_retry`] that attempt `next` of at most
    /// `of` follows the failure `err`.
    pub(crate) fn note_retry(&self, method: &Method, url: &Url, next: u32, of: u32, err: &Error) {
        if let Some(hook) = &self.opts.on_retry {
            hook(&format!(
                "retrying {method} {url} (attempt {next} of {of}): {}",
                err.reason()
            ));
        }
    }

    /// The error for a request (with a body of `body_len` bytes) that got
    /// no answer; a time-out says which one and how long.
    pub(crate) fn transport_error(
        &self,
        target: &Target,
        e: &reqwest::Error,
        body_len: u64,
    ) -> Error {
        if let Some(detail) = is_tls_cert_error(e) {
            return Error::Tls {
                registry: target.registry.clone(),
                detail,
            };
        }
        if e.is_timeout() {
            let connect = e.is_connect();
            let reason = if connect {
                let host = e
                    .url()
                    .map(|u| {
                        format!(
                            "{}:{}",
                            u.host_str().unwrap_or("?"),
                            u.port_or_known_default().unwrap_or(0)
                        )
                    })
                    .unwrap_or_else(|| target.registry.clone());
                format!(
                    "could not connect to {host} within {}",
                    seconds(self.opts.connect_timeout)
                )
            } else if body_len > 0 {
                format!(
                    "no answer within {} of starting to send {body_len} bytes",
                    seconds(self.upload_timeout(body_len))
                )
            } else {
                format!("no data for {}", seconds(self.opts.timeout))
            };
            return Error::TimedOut {
                target: target.clone(),
                reason,
                url: e.url().map(|u| u.to_string()).unwrap_or_default(),
                connect,
                attempts: 1,
            };
        }
        let what = if e.is_connect() {
            format!("cannot connect: {}", chain(e))
        } else {
            chain(e)
        };
        Error::Transport {
            target: target.clone(),
            detail: what,
        }
    }

    /// The error for a body that stopped coming (or broke) while read.
    pub(crate) fn read_error(&self, target: &Target, url: &Url, e: &std::io::Error) -> Error {
        let timed_out = e.kind() == std::io::ErrorKind::TimedOut
            || e.get_ref()
                .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
                .is_some_and(|r| r.is_timeout());
        if timed_out {
            return Error::TimedOut {
                target: target.clone(),
                reason: format!("no data for {}", seconds(self.opts.timeout)),
                url: url.to_string(),
                connect: false,
                attempts: 1,
            };
        }
        Error::Transport {
            target: target.clone(),
            detail: format!("reading the body: {e}"),
        }
    }

    /// How long the answer to a request with a body of `body_len` bytes
    /// is awaited, from the start: the idle time-out plus the time to
    /// send the body at [`MIN_UPLOAD_RATE`].
    fn upload_timeout(&self, body_len: u64) -> Duration {
        self.opts.timeout + TIMEOUT_SLACK + Duration::from_secs(body_len / MIN_UPLOAD_RATE)
    }

    fn build(&self, reg: &Registry, req: &Req, auth: Option<&str>) -> Result<RequestBuilder> {
        let mut b = reg.http.request(req.method.clone(), req.url.clone());
        // Requests without a body keep the client's idle timer; a
        // per-request time-out would also bound the whole answer.
        if req.body.len() > 0 {
            b = b.timeout(self.upload_timeout(req.body.len()));
        }
        for (k, v) in &req.headers {
            b = b.header(*k, v);
        }
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b = match &req.body {
            BodySpec::Empty => b,
            BodySpec::Bytes(bytes) => {
                self.bytes_sent
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                b.body(bytes.as_ref().clone())
            }
            BodySpec::File { path, offset, len } => {
                let io = |e: std::io::Error| Error::Io {
                    context: path.display().to_string(),
                    source: e,
                };
                let mut f = File::open(path).map_err(io)?;
                f.seek(SeekFrom::Start(*offset)).map_err(io)?;
                if *len <= MAX_BUFFERED_BODY {
                    // One read into memory, one body handed to the HTTP
                    // stack: a streamed body crosses to reqwest's runtime
                    // thread 8 KiB at a time, and on a busy machine every
                    // crossing waits for the scheduler (3x slower here).
                    let mut buf = Vec::with_capacity(*len as usize);
                    f.take(*len).read_to_end(&mut buf).map_err(io)?;
                    if buf.len() as u64 != *len {
                        return Err(io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("{} of {len} bytes from offset {offset}", buf.len()),
                        )));
                    }
                    self.bytes_sent.fetch_add(*len, Ordering::Relaxed);
                    b.body(buf)
                } else {
                    let reader = CountingReader {
                        inner: f.take(*len),
                        sent: self.bytes_sent.clone(),
                    };
                    b.body(Body::sized(reader, *len))
                }
            }
        };
        Ok(b)
    }

    /// The `Authorization` value to send now for `scopes`, fetching a
    /// token when the registry is known to want one.
    fn auth_header(
        &self,
        reg: &Registry,
        scopes: &[String],
        target: &Target,
    ) -> Result<Option<String>> {
        let challenge = lock(&reg.auth).challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(reg.creds.as_ref().and_then(|c| c.basic_header())),
            Some(Challenge::Bearer { .. }) => {
                let key = scope_key(scopes);
                // One fetch at a time per registry: parallel uploads that
                // start together would otherwise each ask for the same
                // token (and each send the password).
                let _one = lock(&reg.token_fetch);
                if let Some((tok, exp)) = lock(&reg.auth).tokens.get(&key) {
                    if *exp > Instant::now() {
                        return Ok(Some(format!("Bearer {}", tok.expose())));
                    }
                }
                let tok = self.fetch_token(reg, scopes, target)?;
                Ok(Some(format!("Bearer {}", tok.expose())))
            }
        }
    }

    /// Asks the token realm for a token covering `scopes`.
    fn fetch_token(&self, reg: &Registry, scopes: &[String], target: &Target) -> Result<Secret> {
        let req = TokenRequest::new(reg, scopes, target)?;
        let reply = match self.oauth_token(&req)? {
            Some(r) => r,
            None => self.get_token(&req)?,
        };
        Ok(store_token(reg, scopes, reply))
    }

    /// OAuth2 POST first when we hold a refresh token or a password: it
    /// yields a refresh token, so that the password is sent once. `None`
    /// when we hold neither or the service does not do OAuth2 POST.
    fn oauth_token(&self, req: &TokenRequest) -> Result<Option<TokenReply>> {
        let refresh = lock(&req.reg.auth)
            .refresh
            .clone()
            .or(match &req.reg.creds {
                Some(Credentials::IdentityToken(t)) => Some(t.clone()),
                _ => None,
            });
        if let Some(rt) = &refresh {
            return self.post_token_form(
                req,
                vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", rt.expose().to_string()),
                ],
            );
        }
        if let Some(Credentials::Basic { username, password }) = &req.reg.creds {
            return self.post_token_form(
                req,
                vec![
                    ("grant_type", "password".into()),
                    ("username", username.clone()),
                    ("password", password.expose().to_string()),
                ],
            );
        }
        Ok(None)
    }

    /// POSTs the OAuth2 token form with `grant` to the realm. `None` when
    /// the service answers neither success nor 401: it does not do OAuth2
    /// POST, and the token is to be asked for with GET.
    fn post_token_form(
        &self,
        req: &TokenRequest,
        grant: Vec<(&str, String)>,
    ) -> Result<Option<TokenReply>> {
        let mut form: Vec<(&str, String)> = vec![
            ("service", req.service.clone().unwrap_or_default()),
            ("client_id", "netshoot-build".into()),
            ("access_type", "offline".into()),
        ];
        let scope_str = req.scopes.join(" ");
        if !scope_str.is_empty() {
            form.push(("scope", scope_str));
        }
        form.extend(grant);
        let r = self.retried(&req.realm_target, &Method::POST, &req.realm_url, || {
            req.reg.http.post(req.realm_url.clone()).form(&form).send()
        });
        match r {
            Ok(resp) if resp.status().is_success() => {
                parse_token(resp, &req.realm_target).map(Some)
            }
            Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                Err(self.refused(&req.realm_target, req.reg, resp))
            }
            // The service does not do OAuth2 POST: use GET.
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GETs a token from the realm, the service and scopes in the query,
    /// with Basic credentials when we have them (anonymous otherwise):
    /// the classic docker token protocol every token service speaks.
    fn get_token(&self, req: &TokenRequest) -> Result<TokenReply> {
        let mut u = req.realm_url.clone();
        {
            let mut q = u.query_pairs_mut();
            if let Some(s) = &req.service {
                q.append_pair("service", s);
            }
            for s in req.scopes {
                q.append_pair("scope", s);
            }
        }
        let basic = req.reg.creds.as_ref().and_then(|c| c.basic_header());
        let resp = self.retried(&req.realm_target, &Method::GET, &u, || {
            let mut b = req.reg.http.get(u.clone());
            if let Some(h) = &basic {
                b = b.header(AUTHORIZATION, h);
            }
            b.send()
        })?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(self.refused(&req.realm_target, req.reg, resp));
        }
        if !resp.status().is_success() {
            return Err(status_error(resp, &req.realm_target));
        }
        parse_token(resp, &req.realm_target)
    }

    fn refused(&self, target: &Target, reg: &Registry, resp: Response) -> Error {
        let body = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
        let (code, message) = parse_error_body(&body);
        let reason = match &reg.creds {
            Some(c) => format!("the credentials for user {:?} were refused", c.username()),
            None => "anonymous access was refused; log in (docker/podman login) or pass --username and --password-stdin".into(),
        };
        Error::Unauthorized {
            target: target.clone(),
            reason,
            code,
            message,
        }
    }

    /// Sends `req` with auth; answers a 401 challenge once; with
    /// `retry`, repeats on transient failures. Returns any response that
    /// is not 401 or transient; the caller checks the status.
    pub(crate) fn send(
        &self,
        reg: &Registry,
        req: &Req,
        scopes: &[String],
        target: &Target,
        retry: bool,
    ) -> Result<Response> {
        let max = if retry {
            self.opts.retry.max_attempts.max(1)
        } else {
            1
        };
        let mut tries = Tries::new(&self.opts.retry, max);
        let mut reauthed = false;
        loop {
            let auth = self.auth_header(reg, scopes, target)?;
            let started = Instant::now();
            let sent = self.build(reg, req, auth.as_deref())?.send();
            trace(|| {
                format!(
                    "{} {} -> {} in {:?}",
                    req.method,
                    req.url,
                    sent.as_ref()
                        .map(|r| r.status().as_u16().to_string())
                        .unwrap_or_else(|e| chain(e)),
                    started.elapsed()
                )
            });
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    let err = self.transport_error(target, &e, req.body.len());
                    let retryable = !matches!(err, Error::Tls { .. });
                    let Some((next, of)) = tries.failed(&err, retryable) else {
                        return Err(tries.give_up(err));
                    };
                    self.note_retry(&req.method, &req.url, next, of, &err);
                    std::thread::sleep(self.opts.retry.delay(tries.made()));
                    continue;
                }
            };
            if resp.status() == StatusCode::UNAUTHORIZED {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                if reauthed || challenge.is_none() {
                    return Err(self.refused(target, reg, resp));
                }
                reauthed = true;
                let mut scopes_now = scopes.to_vec();
                if let Some(Challenge::Bearer { scope: Some(s), .. }) = &challenge {
                    for one in s.split(' ') {
                        if !scopes_now.iter().any(|x| x == one) {
                            scopes_now.push(one.to_string());
                        }
                    }
                }
                {
                    let mut st = lock(&reg.auth);
                    st.challenge = challenge.clone();
                    st.tokens.remove(&scope_key(scopes));
                }
                match challenge {
                    Some(Challenge::Basic)
                        if reg.creds.as_ref().and_then(|c| c.basic_header()).is_none() =>
                    {
                        return Err(self.refused(target, reg, resp));
                    }
                    Some(Challenge::Bearer { .. }) => {
                        let tok = self.fetch_token(reg, &scopes_now, target)?;
                        // File it under the scopes the caller will ask for.
                        lock(&reg.auth).tokens.insert(
                            scope_key(scopes),
                            (tok, Instant::now() + Duration::from_secs(50)),
                        );
                    }
                    _ => {}
                }
                continue;
            }
            match classify_status(resp, target) {
                Ok(r) => return Ok(r),
                Err((err, retry_after)) => {
                    let Some((next, of)) = tries.failed(&err, true) else {
                        return Err(err);
                    };
                    self.note_retry(&req.method, &req.url, next, of, &err);
                    let delay = retry_after
                        .unwrap_or_else(|| self.opts.retry.delay(tries.made()))
                        .min(self.opts.retry.max_delay);
                    std::thread::sleep(delay);
                }
            }
        }
    }
}

/// The attempts of one request (or one blob) so far, against the
/// policy: at most `max` attempts, and at most `max_timeouts` time-outs,
/// counting those a request inside it already retried (an inner loop's
/// [`Error::TimedOut`] carries how many it had), so that nested retry
/// loops do not multiply a stall.
pub(crate) struct Tries {
    max: u32,
    max_timeouts: u32,
    made: u32,
    timeouts: u32,
}

impl Tries {
    /// `max` attempts under `policy`.
    pub fn new(policy: &RetryPolicy, max: u32) -> Tries {
        Tries {
            max,
            max_timeouts: policy.max_timeouts.max(1),
            made: 0,
            timeouts: 0,
        }
    }

    /// Allows `n` more attempts from now (the next scheme of a probe).
    pub fn allow(&mut self, n: u32) {
        self.max = self.made + n.max(1);
    }

    /// Starts the count of attempts over with at most `n`, keeping the
    /// count of time-outs.
    pub fn restart(&mut self, n: u32) {
        self.made = 0;
        self.max = n.max(1);
    }

    /// Attempts made so far.
    pub fn made(&self) -> u32 {
        self.made
    }

    /// Counts the failed attempt `err`; then as [`Tries::next`].
    pub fn failed(&mut self, err: &Error, retryable: bool) -> Option<(u32, u32)> {
        self.made += 1;
        if let Error::TimedOut { attempts, .. } = err {
            self.timeouts += (*attempts).max(1);
        }
        self.next(err, retryable)
    }

    /// After the failure `err`: the number of the next attempt and the
    /// most there can be (for the retry line), or `None` when `err` is
    /// final (see [`Tries::give_up`]).
    pub fn next(&self, err: &Error, retryable: bool) -> Option<(u32, u32)> {
        if !retryable || self.made >= self.max || self.timeouts >= self.max_timeouts {
            return None;
        }
        let of = if matches!(err, Error::TimedOut { .. }) {
            self.max
                .min(self.made - self.timeouts.min(self.made) + self.max_timeouts)
        } else {
            self.max
        };
        Some((self.made + 1, of))
    }

    /// `err` as given up with: a time-out carries the count of time-outs.
    pub fn give_up(&self, err: Error) -> Error {
        match err {
            Error::TimedOut {
                target,
                reason,
                url,
                connect,
                ..
            } => Error::TimedOut {
                target,
                reason,
                url,
                connect,
                attempts: self.timeouts.max(1),
            },
            e => e,
        }
    }
}

/// `20 s`, `2.5 s`.
pub(crate) fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// A token to ask for: the realm of the registry's Bearer challenge, and
/// the service and scopes it is for.
struct TokenRequest<'a> {
    reg: &'a Registry,
    scopes: &'a [String],
    realm_url: Url,
    /// What errors are about: the token service's host, so that a failing
    /// token service is not taken for a failing registry.
    realm_target: Target,
    service: Option<String>,
}

impl<'a> TokenRequest<'a> {
    /// The request for `scopes` from the realm `reg` last challenged with;
    /// errors when that was no Bearer challenge or its realm no URL.
    fn new(reg: &'a Registry, scopes: &'a [String], target: &Target) -> Result<Self> {
        let (realm, service) = match &lock(&reg.auth).challenge {
            Some(Challenge::Bearer { realm, service, .. }) => (realm.clone(), service.clone()),
            _ => return Err(Error::Invalid("internal: no bearer challenge".into())),
        };
        let realm_url = Url::parse(&realm).map_err(|e| Error::Protocol {
            target: target.clone(),
            detail: format!("token realm {realm:?} is not a URL: {e}"),
        })?;
        let realm_target = Target {
            registry: target.registry.clone(),
            repository: target.repository.clone(),
            object: format!("token from {}", realm_url.host_str().unwrap_or("?")),
        };
        Ok(TokenRequest {
            reg,
            scopes,
            realm_url,
            realm_target,
            service,
        })
    }
}

/// Keeps `reply`'s token for `scopes`, and its refresh token if any, in
/// `reg`'s auth state; returns the token. The token is kept a little less
/// long than it lives, so that it does not expire between our check and
/// the registry's.
fn store_token(reg: &Registry, scopes: &[String], reply: TokenReply) -> Secret {
    let ttl = Duration::from_secs(reply.expires_in.max(60)).saturating_sub(Duration::from_secs(10));
    let mut st = lock(&reg.auth);
    if let Some(r) = reply.refresh {
        st.refresh = Some(r);
    }
    st.tokens.insert(
        scope_key(scopes),
        (reply.token.clone(), Instant::now() + ttl),
    );
    reply.token
}

struct TokenReply {
    token: Secret,
    refresh: Option<Secret>,
    expires_in: u64,
}

fn parse_token(resp: Response, target: &Target) -> Result<TokenReply> {
    let body = resp.bytes().map_err(|e| Error::Transport {
        target: target.clone(),
        detail: chain(&e),
    })?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|_| Error::Protocol {
        target: target.clone(),
        detail: "the token reply is not JSON".into(),
    })?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|t| !t.is_empty());
    let token = s("token")
        .or_else(|| s("access_token"))
        .ok_or_else(|| Error::Protocol {
            target: target.clone(),
            detail: "the token reply has no token".into(),
        })?;
    Ok(TokenReply {
        token: Secret::new(token),
        refresh: s("refresh_token").map(Secret::new),
        expires_in: v.get("expires_in").and_then(|x| x.as_u64()).unwrap_or(60),
    })
}

/// Prints one line per request on stderr when `NETSHOOT_REGISTRY_TRACE`
/// is set: method, URL (which never holds a secret), status and time.
/// Headers are never printed.
pub(crate) fn trace(line: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("NETSHOOT_REGISTRY_TRACE").is_some()) {
        eprintln!("registry: {}", line());
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn scope_key(scopes: &[String]) -> String {
    let mut s = scopes.to_vec();
    s.sort();
    s.dedup();
    s.join(" ")
}

/// Splits transient statuses (with their `Retry-After`) from answers.
fn classify_status(
    resp: Response,
    target: &Target,
) -> std::result::Result<Response, (Error, Option<Duration>)> {
    let st = resp.status().as_u16();
    if matches!(st, 408 | 429 | 500 | 502 | 503 | 504) {
        let ra = retry_after(resp.headers());
        return Err((status_error(resp, target), ra));
    }
    Ok(resp)
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The error for an unexpected status, with the registry's JSON error.
pub(crate) fn status_error(resp: Response, target: &Target) -> Error {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    // Bodies of errors are small; cap what we read anyway.
    let mut body = Vec::new();
    let _ = resp.take(64 * 1024).read_to_end(&mut body);
    let (code, message) = parse_error_body(&body);
    Error::Status {
        target: target.clone(),
        status,
        code,
        message,
        retry_after,
    }
}

/// Checks that `resp` has one of `ok` statuses.
pub(crate) fn expect(resp: Response, ok: &[u16], target: &Target) -> Result<Response> {
    if ok.contains(&resp.status().as_u16()) {
        Ok(resp)
    } else {
        Err(status_error(resp, target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RetryPolicy {
            max_attempts: 5,
            max_timeouts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for a in 1..10 {
            let d = p.delay(a);
            assert!(d <= Duration::from_secs(1), "{d:?}");
        }
        assert!(p.delay(1) <= Duration::from_millis(100));
        assert!(p.delay(4) >= Duration::from_millis(400));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(100);
        h.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(90) && d <= Duration::from_secs(100),
            "{d:?}"
        );
    }
}
