//! Errors, each one line naming the registry, repository and object at
//! fault. None of them ever carries a credential.

use image_layout::layout::LayoutError;
use std::fmt;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a request was about, for error messages.
#[derive(Clone, Debug)]
pub struct Target {
    /// Registry host.
    pub registry: String,
    /// Repository, when the request is about one.
    pub repository: String,
    /// The object: `blob sha256:...`, `manifest v1`, `upload`, ...
    pub object: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.repository.is_empty() {
            write!(f, "{}", self.registry)?;
        } else {
            write!(f, "{}/{}", self.registry, self.repository)?;
        }
        if !self.object.is_empty() {
            write!(f, " {}", self.object)?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry answered with an unexpected HTTP status.
    #[error("{target}: HTTP {status}{}", registry_says(.code, .message))]
    Status {
        /// What was asked for.
        target: Target,
        /// The status code.
        status: u16,
        /// The first error code of the registry's JSON body, if any.
        code: Option<String>,
        /// Its message.
        message: Option<String>,
        /// How long the registry asked us to wait (`Retry-After`).
        retry_after: Option<std::time::Duration>,
    },
    /// 401 after authenticating (or with nothing to authenticate with).
    #[error("{target}: HTTP 401 unauthorized: {reason}{}", registry_says(.code, .message))]
    Unauthorized {
        /// What was asked for.
        target: Target,
        /// `the credentials for USER were refused`, `no credentials ...`.
        reason: String,
        /// The registry's error code.
        code: Option<String>,
        /// Its message.
        message: Option<String>,
    },
    /// The TLS handshake failed (usually an unknown certificate authority).
    #[error("{registry}: TLS handshake failed: {detail} (if the registry uses a private CA, pass --ca-cert FILE; use --insecure only for a registry you trust)")]
    Tls {
        /// Registry host.
        registry: String,
        /// What the TLS library said.
        detail: String,
    },
    /// No connection or the connection broke.
    #[error("{target}: {detail}")]
    Transport {
        /// What was asked for.
        target: Target,
        /// What happened.
        detail: String,
    },
    /// No answer in time: the connection could not be opened within the
    /// connect time-out, or no byte came for the idle time-out.
    #[error("{target}: {}", timed_out(.reason, .url, *.connect, *.attempts))]
    TimedOut {
        /// What was asked for.
        target: Target,
        /// `no data for 20 s`, `could not connect to HOST:PORT within 10 s`.
        reason: String,
        /// The URL requested.
        url: String,
        /// Whether the connection was never made.
        connect: bool,
        /// Attempts that timed out before this was given up on.
        attempts: u32,
    },
    /// Content whose digest or size is not what was asked for.
    #[error("{target}: {detail}")]
    Verify {
        /// What was fetched.
        target: Target,
        /// How it differs.
        detail: String,
    },
    /// The registry's answer does not follow the distribution spec.
    #[error("{target}: protocol error: {detail}")]
    Protocol {
        /// What was asked for.
        target: Target,
        /// What is wrong.
        detail: String,
    },
    /// The local OCI layout.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Local I/O (a layout file, a CA file, a credential helper).
    #[error("{context}: {source}")]
    Io {
        /// The file or program.
        context: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A caller's request that cannot be met (platform not in the image, ...).
    #[error("{0}")]
    Invalid(String),
    /// Credentials could not be looked up.
    #[error("credentials for {registry}: {detail}")]
    Credentials {
        /// Registry host.
        registry: String,
        /// What went wrong (never the secret itself).
        detail: String,
    },
}

fn timed_out(reason: &str, url: &str, connect: bool, attempts: u32) -> String {
    let mut s = if url.is_empty() {
        reason.to_string()
    } else if connect {
        format!("{reason} ({url})")
    } else {
        format!("{reason} from {url}")
    };
    if attempts > 1 {
        s.push_str(&format!(" (timed out {attempts} times)"));
    } else {
        s.push_str(" (timed out)");
    }
    s
}

fn registry_says(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) if !m.is_empty() => format!(" ({c}: {m})"),
        (Some(c), _) => format!(" ({c})"),
        (None, Some(m)) if !m.is_empty() => format!(" ({m})"),
        _ => String::new(),
    }
}

impl Error {
    /// True for failures worth retrying: connection trouble and the
    /// statuses registries use for overload or a restart.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            Error::Transport { .. } | Error::TimedOut { .. } => true,
            _ => false,
        }
    }

    /// What went wrong, without the target: for retry lines.
    pub fn reason(&self) -> String {
        match self {
            Error::TimedOut { reason, .. } => reason.clone(),
            Error::Transport { detail, .. } => detail.clone(),
            Error::Status {
                status,
                code,
                message,
                ..
            } => format!("HTTP {status}{}", registry_says(code, message)),
            e => e.to_string(),
        }
    }

    /// The HTTP status, when the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}

/// Extracts the first `{code, message}` of a distribution error body
/// (or the first line of a short plain-text one, as a message). Public so
/// the fuzz targets can reach it; the client is its only other caller.
pub fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            // Not JSON: a short plain-text body still helps (proxies).
            let text = String::from_utf8_lossy(body);
            let line = text.lines().next().unwrap_or("").trim();
            if line.is_empty() || line.len() > 200 {
                return (None, None);
            }
            return (None, Some(line.to_string()));
        }
    };
    let first = v.get("errors").and_then(|e| e.get(0));
    let s = |k: &str| {
        first
            .and_then(|e| e.get(k))
            .and_then(|x| x.as_str())
            .map(str::to_string)
    };
    (s("code"), s("message"))
}
