//! How a command shows what it is doing, on stderr only (stdout is for
//! results: a digest, a reference, JSON).
//!
//! The mode is chosen once per command:
//!
//! * [`Mode::Quiet`] (`--quiet`): nothing at all.
//! * [`Mode::Plain`] (stderr is not a terminal, or `TERM=dumb`): one line
//!   per step, the lines the tool always printed; no escape sequences, no
//!   carriage returns, so logs and scripts can read them.
//! * [`Mode::Bars`] (stderr is a terminal): the same step lines, printed
//!   above live progress bars and spinners (downloads, package fetches,
//!   `cargo build`, layer compression, blob uploads).
//!
//! [`Progress`] is a cheap, cloneable, `Send + Sync` handle. Step lines go
//! through [`Progress::step`]; bars and spinners are [`Task`]s that do
//! nothing outside Bars mode and disappear when dropped.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing.
    Quiet,
    /// One line per step, no terminal control.
    Plain,
    /// Step lines above live bars and spinners.
    Bars,
}

impl Mode {
    /// The mode for this process: Quiet when asked, Bars when stderr is a
    /// terminal that understands cursor movement, Plain otherwise.
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        {
            Mode::Bars
        } else {
            Mode::Plain
        }
    }
}

/// The progress reporter of one command; clones share the same bars.
#[derive(Clone)]
pub struct Progress {
    mode: Mode,
    multi: Option<MultiProgress>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("mode", &self.mode)
            .finish()
    }
}

impl Default for Progress {
    /// Plain lines: what the library printed before modes existed.
    fn default() -> Self {
        Progress::plain()
    }
}

/// Spinner frames: ASCII, so any terminal (and a tmux without a UTF-8
/// locale) shows them; the last one is shown when finished.
const TICKS: &str = "-\\|/ ";
/// Bar fill: done, head, to do.
const BAR_CHARS: &str = "=> ";
/// Redraws per second of a spinner that waits on something else.
const TICK: Duration = Duration::from_millis(120);

const BAR: &str = "{prefix:>10.cyan.bold} [{bar:30}] {pos}/{len} {wide_msg}";
const BYTES: &str = "{prefix:>10.cyan.bold} [{bar:30}] {binary_bytes}/{binary_total_bytes} \
                     {binary_bytes_per_sec} {wide_msg}";
const SPINNER: &str = "{prefix:>10.cyan.bold} {spinner} [{elapsed}] {wide_msg}";
const BYTE_SPINNER: &str = "{prefix:>10.cyan.bold} {spinner} [{elapsed}] {binary_bytes} {wide_msg}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .tick_chars(TICKS)
        .progress_chars(BAR_CHARS)
}

impl Progress {
    /// A reporter in `mode`.
    pub fn new(mode: Mode) -> Progress {
        let multi = (mode == Mode::Bars)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { mode, multi }
    }

    /// The reporter for this process (see [`Mode::detect`]).
    pub fn detect(quiet: bool) -> Progress {
        Progress::new(Mode::detect(quiet))
    }

    /// A reporter that shows nothing.
    pub fn quiet() -> Progress {
        Progress::new(Mode::Quiet)
    }

    /// A reporter that prints plain step lines.
    pub fn plain() -> Progress {
        Progress::new(Mode::Plain)
    }

    /// Its mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether it shows nothing.
    pub fn is_quiet(&self) -> bool {
        self.mode == Mode::Quiet
    }

    /// One step line on stderr (above the bars in Bars mode).
    pub fn step(&self, msg: impl AsRef<str>) {
        let msg = msg.as_ref();
        match (&self.mode, &self.multi) {
            (Mode::Quiet, _) => {}
            (Mode::Bars, Some(m)) if m.println(msg).is_ok() => {}
            _ => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{msg}");
            }
        }
    }

    /// Runs `f` with the bars hidden, for output written around them.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }

    fn add(&self, bar: impl FnOnce() -> ProgressBar) -> Task {
        Task {
            bar: self.multi.as_ref().map(|m| m.add(bar())),
        }
    }

    /// A bar counting `len` items, e.g. the packages of a platform.
    pub fn bar(&self, len: u64, prefix: impl Into<Cow<'static, str>>) -> Task {
        self.add(|| {
            ProgressBar::new(len)
                .with_style(style(BAR))
                .with_prefix(prefix)
        })
    }

    /// A bar counting bytes; `len` may be learned later
    /// ([`Task::set_length`], [`Task::inc_length`]).
    pub fn bytes(&self, len: Option<u64>, prefix: impl Into<Cow<'static, str>>) -> Task {
        self.add(|| {
            ProgressBar::new(len.unwrap_or(0))
                .with_style(style(BYTES))
                .with_prefix(prefix)
        })
    }

    /// A spinner with the elapsed time, for work of unknown length (a
    /// `cargo build`); it keeps turning while the caller blocks.
    pub fn spinner(&self, prefix: impl Into<Cow<'static, str>>) -> Task {
        let t = self.add(|| {
            ProgressBar::new_spinner()
                .with_style(style(SPINNER))
                .with_prefix(prefix)
        });
        if let Some(b) = &t.bar {
            b.enable_steady_tick(TICK);
        }
        t
    }

    /// A spinner that also shows the bytes counted so far (a layer being
    /// compressed, whose final size is not known in advance).
    pub fn byte_spinner(&self, prefix: impl Into<Cow<'static, str>>) -> Task {
        let t = self.add(|| {
            ProgressBar::new_spinner()
                .with_style(style(BYTE_SPINNER))
                .with_prefix(prefix)
        });
        if let Some(b) = &t.bar {
            b.enable_steady_tick(TICK);
        }
        t
    }
}

/// A bar or spinner; a no-op outside Bars mode. Removed from the screen
/// when dropped.
#[derive(Default)]
pub struct Task {
    bar: Option<ProgressBar>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("shown", &self.bar.is_some())
            .finish()
    }
}

impl Task {
    /// A task that shows nothing.
    pub fn none() -> Task {
        Task { bar: None }
    }

    /// Whether it is drawn.
    pub fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    /// Advances by `n` (items or bytes).
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Sets the total.
    pub fn set_length(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_length(n);
        }
    }

    /// Grows the total by `n`.
    pub fn inc_length(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc_length(n);
        }
    }

    /// Sets the text after the bar.
    pub fn set_message(&self, msg: impl Into<Cow<'static, str>>) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
        }
    }

    /// Wraps a writer so that the bytes written through it advance this
    /// task.
    pub fn writer<W: Write>(&self, inner: W) -> TaskWriter<W> {
        TaskWriter {
            inner,
            bar: self.bar.clone(),
        }
    }

    /// Removes it from the screen (as dropping it does).
    pub fn finish(self) {}
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// A writer that counts what goes through it on a [`Task`].
pub struct TaskWriter<W> {
    inner: W,
    bar: Option<ProgressBar>,
}

impl<W> TaskWriter<W> {
    /// The wrapped writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for TaskWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Progress>();
        send_sync::<Task>();
    }

    #[test]
    fn quiet_forces_quiet() {
        assert_eq!(Mode::detect(true), Mode::Quiet);
        assert!(Progress::detect(true).is_quiet());
    }

    #[test]
    fn tasks_outside_bars_mode_draw_nothing() {
        for p in [Progress::quiet(), Progress::plain()] {
            let t = p.bar(3, "fetch");
            assert!(!t.is_shown());
            t.inc(1);
            let mut w = p.bytes(None, "x").writer(Vec::new());
            w.write_all(b"abc").unwrap();
            assert_eq!(w.into_inner(), b"abc");
            assert!(!p.spinner("cargo").is_shown());
            assert!(!p.byte_spinner("layer").is_shown());
        }
    }

    #[test]
    fn templates_parse() {
        for t in [BAR, BYTES, SPINNER, BYTE_SPINNER] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn bars_mode_tasks_are_shown() {
        // Drawn to a hidden target here (no terminal in tests), but real
        // bars with real counts.
        let p = Progress {
            mode: Mode::Bars,
            multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::hidden())),
        };
        let t = p.bytes(Some(10), "download");
        assert!(t.is_shown());
        let mut w = t.writer(Vec::new());
        w.write_all(b"12345").unwrap();
        assert_eq!(t.bar.as_ref().unwrap().position(), 5);
        t.inc_length(5);
        assert_eq!(t.bar.as_ref().unwrap().length(), Some(15));
        p.step("a line");
    }
}
