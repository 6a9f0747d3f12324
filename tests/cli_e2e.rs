//! End-to-end tests of the command-line experience: progress bars on a
//! real terminal (a tmux pane), plain lines when stderr is a pipe, nothing
//! with `-q`; `--json` on build, inspect and push (against the real
//! `docker-registry`); shell completions loaded by a real bash; man pages
//! rendered by groff.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The fixture spec (served by `server`) in `t`; returns the spec path.
fn fixture(t: &Path, server: &FileServer) -> PathBuf {
    let hello = hello_binary(t);
    write_fixture_spec(t, server, &hello)
}

/// `build --spec SPEC --out T/NAME --cache T/NAME-cache` with `extra`.
fn build_cmd(t: &Path, spec: &Path, name: &str, extra: &[&str]) -> Command {
    let mut c = bin();
    c.arg("build")
        .args(extra)
        .arg("--spec")
        .arg(spec)
        .arg("--out")
        .arg(t.join(name))
        .arg("--cache")
        .arg(t.join(format!("{name}-cache")));
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn success(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// A tmux server of its own (own socket, no user config) holding one
/// session; killed on drop, also when an assertion fails.
struct Tmux {
    socket: PathBuf,
    session: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-f", "/dev/null", "-S"]).arg(&self.socket);
        c
    }

    /// Starts `shell_cmd` in a detached 160x40 session on a real
    /// pseudo-terminal, with the server's socket in `dir`.
    fn start(dir: &Path, shell_cmd: &str) -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let t = Tmux {
            socket: dir.join("tmux.sock"),
            session: format!("nsb{}", nanos % 1_000_000_000),
        };
        let out = run(t
            .cmd()
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("NO_COLOR")
            .args([
                "new-session",
                "-d",
                "-s",
                &t.session,
                "-x",
                "160",
                "-y",
                "40",
            ])
            .arg(shell_cmd));
        success(&out, "tmux new-session");
        t
    }

    /// The pane's visible text.
    fn capture(&self) -> String {
        let out = run(self.cmd().args(["capture-pane", "-p", "-t", &self.session]));
        text(&out.stdout)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["kill-session", "-t", &self.session])
            .output();
        let _ = self.cmd().arg("kill-server").output();
        // tmux leaves its socket file behind.
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Single-quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A download bar as the bytes template draws it:
/// `  download [=====>    ] 120.00 KiB/310.50 KiB ... hello-amd64.tar.gz`.
fn is_download_bar(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix("download [") else {
        return false;
    };
    let Some((bar, after)) = rest.split_once("] ") else {
        return false;
    };
    bar.len() == 30
        && bar.chars().all(|c| matches!(c, '=' | '>' | ' '))
        && after.contains("B/")
        && after.contains(".tar.gz")
}

#[test]
fn progress_bars_on_a_terminal() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let spec = fixture(t.path(), &server);
    // A slow mirror: each download takes about 3 s, long enough to see
    // its bar.
    server.set_delay(Duration::from_secs(3));
    let out = t.path().join("tty");
    let json = t.path().join("tty.json");
    let cmd = format!(
        "{} build --json --spec {} --out {} --cache {} > {}; sleep 30",
        sh_quote(env!("CARGO_BIN_EXE_netshoot-build")),
        sh_quote(&spec.display().to_string()),
        sh_quote(&out.display().to_string()),
        sh_quote(&t.path().join("tty-cache").display().to_string()),
        sh_quote(&json.display().to_string()),
    );
    let tmux = Tmux::start(t.path(), &cmd);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut bar_seen: Option<String> = None;
    let mut last = String::new();
    let wrote = format!("wrote {}", out.display());
    while Instant::now() < deadline {
        last = tmux.capture();
        if bar_seen.is_none() {
            bar_seen = last
                .lines()
                .find(|l| is_download_bar(l))
                .map(str::to_string);
        }
        if last.contains(&wrote) || last.contains("error:") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        bar_seen.is_some(),
        "no download bar was drawn on the terminal; last pane:\n{last}"
    );
    assert!(
        last.contains(&wrote),
        "the build did not finish with {wrote:?} within 60 s; pane:\n{last}"
    );
    // Step lines are printed above the bars, and the bars are gone at the
    // end: no leftover bar on the final screen.
    assert!(last.contains("fetch hello (linux/amd64)"), "pane:\n{last}");
    assert!(
        !last.lines().any(is_download_bar),
        "a bar was left on screen:\n{last}"
    );
    // stdout (redirected) stayed pure JSON while stderr drew bars.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap())
        .unwrap_or_else(|e| panic!("build --json stdout is not JSON: {e}"));
    assert_eq!(v["index"], layout_tag_digest(&out, "test"));
}

#[test]
fn plain_lines_when_stderr_is_not_a_terminal_and_nothing_when_quiet() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let spec = fixture(t.path(), &server);

    // stderr is a pipe: the step lines, no escape sequence, no carriage
    // return (a fresh cache, so the downloads run too).
    let o = run(&mut build_cmd(t.path(), &spec, "plain", &[]));
    success(&o, "build");
    let err = text(&o.stderr);
    let out = t.path().join("plain");
    for want in [
        "fetch hello (linux/amd64) ".to_string(),
        "fetch hello (linux/arm64) ".to_string(),
        "layer linux/amd64 ".to_string(),
        format!("wrote {}: netshoot:test ", out.display()),
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(&want)),
            "no line starting {want:?} in:\n{err}"
        );
    }
    assert!(
        !err.contains("\x1b["),
        "ANSI escapes in plain mode:\n{err:?}"
    );
    assert!(
        !err.contains('\r'),
        "carriage returns in plain mode:\n{err:?}"
    );
    assert_eq!(
        text(&o.stdout),
        format!("{}\n", layout_tag_digest(&out, "test"))
    );

    // -q: nothing at all on stderr, the digest still on stdout.
    let o = run(&mut build_cmd(t.path(), &spec, "quiet", &["-q"]));
    success(&o, "build -q");
    assert_eq!(text(&o.stderr), "", "build -q printed on stderr");
    assert_eq!(
        text(&o.stdout),
        format!("{}\n", layout_tag_digest(&t.path().join("quiet"), "test"))
    );
}

#[test]
fn json_output_of_build_inspect_and_push() {
    let t = tempfile::tempdir().unwrap();
    let server = FileServer::start();
    let spec = fixture(t.path(), &server);
    let out = t.path().join("out");

    // build --json: one JSON document on stdout, progress on stderr.
    let o = run(&mut build_cmd(t.path(), &spec, "out", &["--json"]));
    success(&o, "build --json");
    let digest = layout_tag_digest(&out, "test");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("build --json stdout: {e}:\n{}", text(&o.stdout)));
    assert_eq!(v["index"], digest.as_str());
    assert_eq!(v["tags"], serde_json::json!(["test"]));
    assert_eq!(v["images"].as_array().map(Vec::len), Some(2));
    assert!(text(&o.stderr).contains("fetch hello (linux/amd64)"));

    // inspect --json.
    let o = run(bin().args(["inspect", "--json", "--layout"]).arg(&out));
    success(&o, "inspect --json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("inspect --json stdout: {e}:\n{}", text(&o.stdout)));
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(v["images"].as_array().map(Vec::len), Some(2));

    // push --json: the pushed digest is the layout's tagged index.
    let reg = TestRegistry::start();
    let name = format!("{}/cli/netshoot", reg.host);
    let push = |extra: &[&str]| -> serde_json::Value {
        let o = run(bin()
            .args(["push", "--json", "--layout"])
            .arg(&out)
            .args(extra)
            .arg(format!("{name}:v1")));
        success(&o, "push --json");
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("push --json stdout: {e}:\n{}", text(&o.stdout)))
    };
    let v = push(&["--tag", "v1.0"]);
    assert_eq!(v["digest"], digest.as_str(), "{v:#}");
    assert_eq!(v["reference"], format!("{name}@{digest}"), "{v:#}");
    assert_eq!(v["tags"], serde_json::json!(["v1", "v1.0"]), "{v:#}");
    let pushed = v["blobs"]["pushed"].as_u64().unwrap();
    assert!(pushed > 0, "{v:#}");
    assert_eq!(v["blobs"]["present"], 0, "{v:#}");
    assert_eq!(v["blobs"]["mounted"], 0, "{v:#}");
    assert!(v["bytes_pushed"].as_u64().unwrap() > 0, "{v:#}");
    assert!(v["referrers_tags"].is_array(), "{v:#}");
    // Again, quietly: nothing sent, every blob already present.
    let v = push(&["-q"]);
    assert_eq!(v["digest"], digest.as_str(), "{v:#}");
    assert_eq!(v["blobs"]["pushed"], 0, "{v:#}");
    assert_eq!(v["blobs"]["present"].as_u64(), Some(pushed), "{v:#}");
    assert_eq!(v["bytes_pushed"], 0, "{v:#}");
}

#[test]
fn shell_completions_load() {
    let exe = sh_quote(env!("CARGO_BIN_EXE_netshoot-build"));
    // bash sources the script, registers a completion for the command,
    // and completing `netshoot-build bu` offers `build`.
    let script = format!(
        "source <({exe} completions bash) && complete -p netshoot-build && \
         f=$(complete -p netshoot-build | sed -E 's/.* -F ([^ ]+) .*/\\1/') && \
         COMP_WORDS=(netshoot-build bu) && COMP_CWORD=1 && COMP_LINE='netshoot-build bu' && \
         COMP_POINT=${{#COMP_LINE}} && \"$f\" netshoot-build bu netshoot-build && \
         printf 'reply %s\\n' \"${{COMPREPLY[@]}}\""
    );
    let o = run(Command::new("bash").arg("-c").arg(&script));
    success(&o, "bash completion");
    let s = text(&o.stdout);
    assert!(
        s.lines()
            .any(|l| l.starts_with("complete ") && l.trim_end().ends_with(" netshoot-build")),
        "{s}"
    );
    assert!(s.lines().any(|l| l == "reply build"), "{s}");

    for (shell, marker) in [
        ("zsh", "#compdef netshoot-build"),
        ("fish", "complete -c netshoot-build"),
    ] {
        let o = run(bin().args(["completions", shell]));
        success(&o, shell);
        let s = text(&o.stdout);
        assert!(
            s.contains(marker),
            "{shell} completions lack {marker:?}:\n{s}"
        );
        assert!(s.contains("push") && s.contains("json"), "{shell}:\n{s}");
    }
    // An unknown shell is refused.
    let o = run(bin().args(["completions", "tcsh"]));
    assert!(!o.status.success());
}

/// A man page rendered to text by groff (no overstriking).
fn groff(page: &Path) -> String {
    let o = run(Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(page));
    success(&o, "groff");
    text(&o.stdout)
}

#[test]
fn man_pages_render() {
    let t = tempfile::tempdir().unwrap();
    // On stdout: the main page.
    let o = run(bin().arg("man"));
    success(&o, "man");
    let main_page = text(&o.stdout);
    // roff: after the quote-string preamble (`.ie`/`.el`), the page opens
    // with its title line.
    let first = main_page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap_or_default();
    assert!(first.starts_with(".TH netshoot-build 1"), "{main_page}");

    // Into a folder: the main page and one per command.
    let dir = t.path().join("man1");
    let o = run(bin().arg("man").arg("--out").arg(&dir));
    success(&o, "man --out");
    for sub in [
        "",
        "-build",
        "-push",
        "-pull",
        "-inspect",
        "-export",
        "-lock",
        "-verify",
        "-sbom",
        "-cache",
        "-cache-prune",
        "-completions",
        "-man",
    ] {
        let name = format!("netshoot-build{sub}");
        let page = dir.join(format!("{name}.1"));
        let roff =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            roff.lines()
                .any(|l| l.starts_with(&format!(".TH {name} 1"))),
            "{}: no .TH line",
            page.display()
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("netshoot-build.1")).unwrap(),
        main_page,
        "man and man --out differ for the main page"
    );
    let build = groff(&dir.join("netshoot-build-build.1"));
    assert!(
        build.contains("netshoot-build-build - Build the multi-arch image"),
        "{build}"
    );
    assert!(
        build.contains("--spec") && build.contains("--json"),
        "{build}"
    );
    let top = groff(&dir.join("netshoot-build.1"));
    assert!(
        top.contains("SYNOPSIS") && top.contains("netshoot-build-push(1)"),
        "{top}"
    );
}
