//! Time-outs and retries of downloads over HTTP, shared by this crate's
//! `HttpFetch` (mirror downloads) and the builder's url downloads.
//!
//! A stalled server must fail a build in about a minute, while a big file
//! on a slow link must still finish. So there is no limit on a whole
//! transfer: there is a connect time-out, and an idle time-out (no byte
//! for that long, waiting for the answer or reading it), and a failed
//! attempt is retried a few times with a short backoff. With the defaults
//! (connect 10 s, idle 20 s, 3 attempts) a server that never answers is
//! given up on after about 62 s.

use std::time::Duration;

/// The idle time-out when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The connect time-out is the idle time-out, but at most this.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `reqwest`'s blocking client starts its clock before the connection is
/// opened; this much more lets a connect time-out of the same length
/// fire first, so that it is reported as what it is.
pub const TIMEOUT_SLACK: Duration = Duration::from_millis(500);

/// What is told about each retry: one line.
pub type RetryNote = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// How long to wait for a server, and how often to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetPolicy {
    /// Time allowed to open the connection (TLS handshake included).
    pub connect_timeout: Duration,
    /// No byte for this long, waiting for the answer or reading its
    /// body, fails the attempt.
    pub idle_timeout: Duration,
    /// Attempts per download, the first included (at least 1).
    pub attempts: u32,
    /// Delay before the first retry; doubled for each one after.
    pub base_delay: Duration,
}

impl Default for NetPolicy {
    fn default() -> Self {
        NetPolicy::with_timeout(DEFAULT_TIMEOUT)
    }
}

/// Why one attempt failed, and whether another may help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// In words, without the URL: `no data for 20 s`, `could not connect
    /// to HOST:PORT within 10 s`, `HTTP status 503 Service Unavailable`.
    pub reason: String,
    /// Worth another attempt: time-outs, broken connections, 408, 429
    /// and 5xx answers.
    pub transient: bool,
    /// Attempts that timed out, once [`NetPolicy::retry`] gave up (1 for
    /// a single time-out, 0 when the last failure was not a time-out).
    pub timeouts: u32,
}

impl Problem {
    /// A failure that another attempt will not cure.
    pub fn fatal(reason: impl Into<String>) -> Problem {
        Problem {
            reason: reason.into(),
            transient: false,
            timeouts: 0,
        }
    }

    /// An HTTP status that is not success: 408, 429 and 5xx are transient.
    pub fn status(status: reqwest::StatusCode) -> Problem {
        let code = status.as_u16();
        Problem {
            reason: format!("HTTP status {status}"),
            transient: matches!(code, 408 | 429) || status.is_server_error(),
            timeouts: 0,
        }
    }

    /// Whether the attempt timed out.
    pub fn timed_out(&self) -> bool {
        self.timeouts > 0
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        match self.timeouts {
            0 => Ok(()),
            1 => f.write_str(" (timed out)"),
            n => write!(f, " (timed out {n} times)"),
        }
    }
}

impl NetPolicy {
    /// The policy for `--timeout`: idle time-out `timeout`, connect
    /// time-out the smaller of it and [`MAX_CONNECT_TIMEOUT`], 3 attempts.
    pub fn with_timeout(timeout: Duration) -> NetPolicy {
        let idle = timeout.max(Duration::from_secs(1));
        NetPolicy {
            connect_timeout: idle.min(MAX_CONNECT_TIMEOUT),
            idle_timeout: idle,
            attempts: 3,
            base_delay: Duration::from_millis(500),
        }
    }

    /// A blocking client builder with these time-outs. `reqwest`'s
    /// blocking `timeout` bounds the wait for the response head and then
    /// each read of the body separately, which makes it an idle timer for
    /// requests without a body (the only ones downloads send).
    pub fn client_builder(&self) -> reqwest::blocking::ClientBuilder {
        reqwest::blocking::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.idle_timeout + TIMEOUT_SLACK)
    }

    /// The wait before retry number `retry` (1-based): the base delay,
    /// doubled each time, at most 8 s.
    pub fn delay(&self, retry: u32) -> Duration {
        self.base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(Duration::from_secs(8))
    }

    /// A failed request in words; time-outs say which one and how long.
    pub fn explain(&self, e: &reqwest::Error) -> Problem {
        if e.is_timeout() {
            return self.timeout_problem(e.is_connect(), e.url());
        }
        Problem {
            reason: error_chain(e),
            // A request that could not be built or redirected in circles
            // does not heal; a connection that broke may.
            transient: !(e.is_builder() || e.is_redirect() || e.is_decode()),
            timeouts: 0,
        }
    }

    /// A failed read of a response body (through `std::io::Read`).
    pub fn explain_read(&self, e: &std::io::Error) -> Problem {
        let timed_out = e.kind() == std::io::ErrorKind::TimedOut
            || e.get_ref()
                .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
                .is_some_and(|r| r.is_timeout());
        if timed_out {
            return self.timeout_problem(false, None);
        }
        Problem {
            reason: format!("the transfer broke: {e}"),
            transient: true,
            timeouts: 0,
        }
    }

    fn timeout_problem(&self, connect: bool, url: Option<&reqwest::Url>) -> Problem {
        let reason = match (connect, url) {
            (true, Some(u)) => format!(
                "could not connect to {}:{} within {}",
                u.host_str().unwrap_or("?"),
                u.port_or_known_default().unwrap_or(0),
                seconds(self.connect_timeout)
            ),
            (true, None) => format!("could not connect within {}", seconds(self.connect_timeout)),
            (false, _) => format!("no data for {}", seconds(self.idle_timeout)),
        };
        Problem {
            reason,
            transient: true,
            timeouts: 1,
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the attempts
    /// are spent, sleeping with backoff in between. Before each retry
    /// `on_retry` gets one line: `retrying GET URL (attempt 2 of 3): no
    /// data for 20 s`. The error returned counts the attempts that timed
    /// out, for its message.
    pub fn retry<T>(
        &self,
        method: &str,
        url: &str,
        on_retry: &dyn Fn(&str),
        mut attempt: impl FnMut() -> Result<T, Problem>,
    ) -> Result<T, Problem> {
        let max = self.attempts.max(1);
        let mut timeouts = 0;
        let mut n = 1;
        loop {
            let p = match attempt() {
                Ok(v) => return Ok(v),
                Err(p) => p,
            };
            timeouts += p.timeouts;
            if !p.transient || n >= max {
                let timeouts = if p.timed_out() { timeouts } else { 0 };
                return Err(Problem { timeouts, ..p });
            }
            on_retry(&format!(
                "retrying {method} {url} (attempt {} of {max}): {}",
                n + 1,
                p.reason
            ));
            std::thread::sleep(self.delay(n));
            n += 1;
        }
    }
}

/// `20 s`, `1.5 s`.
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// An error and its causes on one line, repeats left out.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Parses a time-out in whole seconds (`--timeout`, `NETSHOOT_TIMEOUT`):
/// a number from 1 to 86400.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=86_400).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(format!(
            "{s:?} is not a time-out in seconds (a whole number from 1 to 86400)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn quick() -> NetPolicy {
        NetPolicy {
            base_delay: Duration::from_millis(1),
            ..NetPolicy::with_timeout(Duration::from_secs(2))
        }
    }

    #[test]
    fn connect_timeout_is_at_most_ten_seconds() {
        let p = NetPolicy::with_timeout(Duration::from_secs(30));
        assert_eq!(p.connect_timeout, Duration::from_secs(10));
        assert_eq!(p.idle_timeout, Duration::from_secs(30));
        let p = NetPolicy::with_timeout(Duration::from_secs(2));
        assert_eq!(p.connect_timeout, Duration::from_secs(2));
        let d = NetPolicy::default();
        // A server that never answers: 3 idle periods plus backoff.
        let worst = (d.idle_timeout + TIMEOUT_SLACK) * d.attempts + d.delay(1) + d.delay(2);
        assert!(worst < Duration::from_secs(75), "{worst:?}");
    }

    #[test]
    fn retries_time_outs_and_counts_them() {
        let lines = RefCell::new(Vec::new());
        let calls = RefCell::new(0);
        let r: Result<(), Problem> = quick().retry(
            "GET",
            "http://registry.example.com/x",
            &|l| lines.borrow_mut().push(l.to_string()),
            || {
                *calls.borrow_mut() += 1;
                Err(quick().timeout_problem(false, None))
            },
        );
        let e = r.unwrap_err();
        assert_eq!(*calls.borrow(), 3);
        assert_eq!(e.to_string(), "no data for 2 s (timed out 3 times)");
        assert_eq!(
            lines.borrow().as_slice(),
            [
                "retrying GET http://registry.example.com/x (attempt 2 of 3): no data for 2 s",
                "retrying GET http://registry.example.com/x (attempt 3 of 3): no data for 2 s",
            ]
        );
    }

    #[test]
    fn fatal_failures_are_not_retried() {
        let calls = RefCell::new(0);
        let r: Result<(), Problem> = quick().retry("GET", "u", &|_| {}, || {
            *calls.borrow_mut() += 1;
            Err(Problem::status(reqwest::StatusCode::FORBIDDEN))
        });
        assert_eq!(*calls.borrow(), 1);
        assert_eq!(r.unwrap_err().to_string(), "HTTP status 403 Forbidden");
        assert!(Problem::status(reqwest::StatusCode::BAD_GATEWAY).transient);
    }

    #[test]
    fn timeouts_parse() {
        assert_eq!(parse_timeout("30"), Ok(Duration::from_secs(30)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("1m").is_err());
    }
}
