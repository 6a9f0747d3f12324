//! Network time-outs of a command. `--timeout SECONDS` (or
//! `NETSHOOT_TIMEOUT`) is the idle time-out (no byte for that long fails
//! an attempt) of every download the builder makes itself (mirror indexes
//! and `.deb`s, url sources) and of the registry client; the connect
//! time-out is the smaller of it and 10 s, and a failed attempt is tried
//! again up to 3 times in all, each retry said in one line on the
//! command's progress (see [`debian::net`] for the policy).
//!
//! The setting is process-wide, made once by `main` for the command: the
//! downloads are reached from many places (locking, fetching, static
//! sources, url pins), and a field would have to travel through all of
//! them.

use crate::progress::Progress;
use debian::net::NetPolicy;
use std::sync::RwLock;
use std::time::Duration;

/// The environment variable `--timeout` falls back to.
pub const TIMEOUT_ENV: &str = "NETSHOOT_TIMEOUT";

struct Settings {
    policy: NetPolicy,
    progress: Progress,
}

static SETTINGS: RwLock<Option<Settings>> = RwLock::new(None);

/// Sets this process's time-outs (`timeout` is the idle time-out; `None`
/// keeps the default, 20 s) and where retry lines go.
pub fn configure(timeout: Option<Duration>, progress: Progress) {
    let policy = timeout.map(NetPolicy::with_timeout).unwrap_or_default();
    *SETTINGS.write().unwrap_or_else(|p| p.into_inner()) = Some(Settings { policy, progress });
}

/// The time-outs and retries of downloads: as configured, else from
/// `NETSHOOT_TIMEOUT` when it is valid, else the defaults.
pub fn policy() -> NetPolicy {
    if let Some(s) = SETTINGS.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return s.policy;
    }
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| debian::net::parse_timeout(&v).ok())
        .map(NetPolicy::with_timeout)
        .unwrap_or_default()
}

/// Says a retry line on the configured progress (on stderr when nothing
/// was configured; nothing with `--quiet`).
pub fn note_retry(line: &str) {
    match SETTINGS.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(s) => s.progress.step(line),
        None => eprintln!("{line}"),
    }
}

/// Parses `--timeout` (and `NETSHOOT_TIMEOUT`): whole seconds, 1 to 86400.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    debian::net::parse_timeout(s)
}

/// The registry client's share of the policy: its idle and connect
/// time-outs, how many attempts may time out, and the retry lines.
pub fn registry_options(opts: registry::ClientOptions) -> registry::ClientOptions {
    let p = policy();
    registry::ClientOptions {
        timeout: p.idle_timeout,
        connect_timeout: p.connect_timeout,
        retry: registry::RetryPolicy {
            max_timeouts: p.attempts,
            ..opts.retry
        },
        on_retry: Some(std::sync::Arc::new(note_retry)),
        ..opts
    }
}
