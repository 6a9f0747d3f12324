//! `netshoot-build push` and `netshoot-build pull`: the command-line side
//! of the `registry` crate. Progress goes to stderr, the result to stdout.

use crate::error::{bad_input, network, verification};
// Byte counts for people: `0 B`, `512 B`, `1.5 KiB`, `210.3 MiB`.
use crate::inspect::human_binary as human_bytes;
use crate::progress::{Progress, Task};
use anyhow::Context;
use clap::Args;
use image_layout::{OciLayout, Platform};
use registry::{BlobOutcome, Client, ClientOptions, ProgressEvent, Reference};
use std::cell::OnceCell;
use std::io::BufRead;
use std::path::PathBuf;

/// Options shared by push and pull: transport, TLS and credentials.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Blobs transferred in parallel.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Allow plain HTTP and unverified TLS for this registry (loopback
    /// registries may use plain HTTP without it).
    #[arg(long)]
    pub insecure: bool,
    /// Extra CA certificate (PEM) to trust; may be repeated.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// User name (the password is read from stdin with --password-stdin).
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Another repository of the same registry that may hold the blobs
    /// (tried for cross-repository mounts); may be repeated.
    #[arg(long = "mount-from", value_name = "REPO")]
    pub mount_from: Vec<String>,
    /// Seconds without data from the registry before an attempt fails
    /// (connecting: at most 10 s); 3 attempts. Default 20.
    #[arg(long, env = crate::net::TIMEOUT_ENV, value_name = "SECONDS", value_parser = crate::net::parse_timeout)]
    pub timeout: Option<std::time::Duration>,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `netshoot-build push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// The OCI layout to push.
    #[arg(long, conflicts_with = "archive", required_unless_present = "archive")]
    pub layout: Option<PathBuf>,
    /// The tag in the layout to push (default: the only one).
    #[arg(long, requires = "layout")]
    pub source_tag: Option<String>,
    /// An oci-archive or docker-archive to push instead of a layout.
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// More tags to give the pushed image; may be repeated.
    #[arg(long)]
    pub tag: Vec<String>,
    /// Push only these platforms (a new index lists them); may be repeated.
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Print a JSON summary on stdout (reference, digest, tags, blob
    /// counts, bytes) instead of the `REF@digest` line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Where to push: `registry[:port]/repository[:tag]`.
    pub reference: String,
}

/// `netshoot-build pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// What to pull: `registry[:port]/repository[:tag|@digest]`.
    pub reference: String,
    /// OCI layout folder to pull into (created if missing; other tags kept).
    #[arg(long, conflicts_with = "archive", required_unless_present = "archive")]
    pub out: Option<PathBuf>,
    /// Write an oci-archive instead of a layout folder.
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// Pull only these platforms; may be repeated.
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// The tag to record in the layout (default: the reference's tag, or `latest`).
    #[arg(long)]
    pub tag: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

fn parse_platforms(list: &[String]) -> anyhow::Result<Vec<Platform>> {
    list.iter()
        .map(|p| {
            p.parse::<Platform>()
                .map_err(|e| bad_input(format!("--platform: {e}")))
        })
        .collect()
}

/// Gives a registry error its exit-code class: the registry or the
/// network (4), content that did not verify (3), or our own input (2).
fn classify(e: registry::Error) -> anyhow::Error {
    use registry::Error as E;
    match e {
        E::Verify { .. } => verification(e.to_string()),
        E::Layout(l) => crate::error::layout(l),
        E::Io { context, source } => crate::error::io(context, source),
        E::Invalid(_) => bad_input(e.to_string()),
        _ => network(e.to_string()),
    }
}

fn reference(s: &str) -> anyhow::Result<Reference> {
    s.parse::<Reference>().map_err(|e| bad_input(e.to_string()))
}

fn client(c: &ConnectArgs) -> anyhow::Result<Client> {
    let password = if c.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let p = line.trim_end_matches(['\n', '\r']).to_string();
        if p.is_empty() {
            return Err(bad_input("--password-stdin: stdin gave an empty password"));
        }
        Some(p)
    } else {
        None
    };
    Client::new(crate::net::registry_options(ClientOptions {
        insecure: c.insecure,
        ca_certs: c.ca_cert.clone(),
        jobs: c.jobs.max(1),
        username: c.username.clone(),
        password,
        mount_from: c.mount_from.clone(),
        ..ClientOptions::default()
    }))
    .map_err(classify)
}

fn short(d: &image_layout::Digest) -> &str {
    &d.hex()[..12]
}

/// Shows a transfer's events on `progress`: a step line per blob and
/// manifest, and (on a terminal) a bytes bar over all blobs, `prefix`
/// naming the direction. The bar is removed when the returned closure is
/// dropped.
fn show_progress<'a>(progress: &'a Progress, prefix: &'static str) -> impl Fn(ProgressEvent) + 'a {
    let bar: OnceCell<Task> = OnceCell::new();
    move |ev| {
        if progress.is_quiet() {
            return;
        }
        match ev {
            ProgressEvent::BlobStarted { size, .. } => {
                bar.get_or_init(|| progress.bytes(Some(0), prefix))
                    .inc_length(size);
            }
            ProgressEvent::BlobDone {
                digest,
                size,
                outcome,
            } => {
                if let Some(b) = bar.get() {
                    b.inc(size);
                }
                let how = match outcome {
                    BlobOutcome::Uploaded => "pushed".to_string(),
                    BlobOutcome::Skipped => "exists".to_string(),
                    BlobOutcome::Mounted { from } => format!("mounted from {from}"),
                    BlobOutcome::Downloaded => "pulled".to_string(),
                };
                progress.step(format!("  {} {:>10} bytes  {how}", short(&digest), size));
            }
            ProgressEvent::ManifestPushed { reference, digest } => {
                if reference.starts_with("sha256:") {
                    progress.step(format!("  {} manifest", short(&digest)));
                } else if reference.starts_with("sha256-") {
                    progress.step(format!("  {} referrers index {reference}", short(&digest)));
                } else {
                    progress.step(format!("  tagged {reference}"));
                }
            }
            ProgressEvent::Retrying {
                what,
                attempt,
                error,
                delay,
            } => progress.step(format!("  retry {attempt} of {what} in {delay:?}: {error}")),
        }
    }
}

/// The `push --json` document.
fn push_json(r: &registry::PushReport) -> serde_json::Value {
    serde_json::json!({
        "reference": r.reference.to_string(),
        "digest": r.digest.to_string(),
        "media_type": r.media_type,
        "tags": r.tags,
        "blobs": {
            "pushed": r.blobs_uploaded,
            "present": r.blobs_skipped,
            "mounted": r.blobs_mounted,
        },
        "bytes_pushed": r.blob_bytes_uploaded,
        "bytes_sent": r.bytes_sent,
        "manifests_pushed": r.manifests_pushed,
        "referrers_tags": r.referrers_tags,
    })
}

/// The one-line summary of a push on stderr, e.g.
/// `pushed 0 blobs (0 B), 5 already present, 0 mounted; tags: v1`.
/// Tests and scripts read it to check that a re-push sent no blob.
fn summary(r: &registry::PushReport) -> String {
    let mut line = format!(
        "pushed {} blobs ({}), {} already present, {} mounted; tags: {}",
        r.blobs_uploaded,
        human_bytes(r.blob_bytes_uploaded),
        r.blobs_skipped,
        r.blobs_mounted,
        r.tags.join(", ")
    );
    if !r.referrers_tags.is_empty() {
        line.push_str(&format!(
            "; referrers tags: {}",
            r.referrers_tags.join(", ")
        ));
    }
    line
}

/// Runs `netshoot-build push`: prints `REF@sha256:...` on stdout, or with
/// `--json` a JSON summary.
pub fn run_push(args: PushArgs) -> anyhow::Result<()> {
    let progress = Progress::detect(args.connect.quiet);
    crate::net::configure(args.connect.timeout, progress.clone());
    let target = reference(&args.reference)?;
    let platforms = parse_platforms(&args.platform)?;
    // An archive is unpacked into a temporary layout that lives until the
    // push is over.
    let _tmp;
    let (layout, tag) = match (&args.layout, &args.archive) {
        (Some(dir), _) => (
            OciLayout::open(dir).map_err(crate::error::layout)?,
            args.source_tag.clone(),
        ),
        (None, Some(archive)) => {
            let tmp = tempfile::tempdir().context("creating a temporary folder")?;
            let layout = image_layout::archive::read_archive(archive, tmp.path())
                .map_err(crate::error::archive)?;
            _tmp = tmp;
            (layout, None)
        }
        (None, None) => return Err(bad_input("push: give --layout DIR or --archive FILE")),
    };
    let top = match layout.resolve(tag.as_deref()) {
        Ok(d) => d,
        // An archive with several tags and none asked for: push the first.
        Err(e) if tag.is_none() => layout
            .read_index()
            .ok()
            .and_then(|i| i.manifests().first().cloned())
            .ok_or_else(|| bad_input(e.to_string()))?,
        Err(e) => return Err(bad_input(e.to_string())),
    };
    check_before_push(&layout, &top, &platforms)?;
    let client = client(&args.connect)?;
    let report = client
        .push_layout(
            &layout,
            &top,
            (!platforms.is_empty()).then_some(platforms.as_slice()),
            &target,
            &args.tag,
            &show_progress(&progress, "push"),
        )
        .map_err(classify)?;
    progress.step(summary(&report));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&push_json(&report))?);
    } else {
        println!("{}", report.reference);
    }
    Ok(())
}

/// Every blob the push would send exists and hashes to its name: a damaged
/// layout is refused here (exit 3), before a byte leaves the machine.
fn check_before_push(
    layout: &OciLayout,
    top: &image_layout::oci_spec::image::Descriptor,
    platforms: &[image_layout::Platform],
) -> anyhow::Result<()> {
    let mut roots = if platforms.is_empty() {
        vec![top.clone()]
    } else {
        layout
            .images(top)
            .map_err(crate::error::layout)?
            .into_iter()
            .filter(|(p, _)| platforms.iter().any(|w| p.matches(w)))
            .map(|(_, d)| d)
            .collect()
    };
    // The SBOMs and other referrers that go with the images.
    if let Ok(index) = layout.read_index() {
        roots.extend(
            index
                .manifests()
                .iter()
                .filter(|d| {
                    d.annotations().as_ref().is_some_and(|a| {
                        a.contains_key(crate::image::referrers::SUBJECT_ANNOTATION)
                    })
                })
                .cloned(),
        );
    }
    let problems = layout
        .check_blobs(Some(&roots))
        .map_err(crate::error::layout)?;
    if let Some(first) = problems.first() {
        return Err(verification(format!(
            "push: {}: {} blob{} damaged or missing, nothing was sent: {first}{}",
            layout.root().display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            if problems.len() > 1 {
                " (and more)"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// Runs `netshoot-build pull`: prints `REF@sha256:...` on stdout.
pub fn run_pull(args: PullArgs) -> anyhow::Result<()> {
    let progress = Progress::detect(args.connect.quiet);
    crate::net::configure(args.connect.timeout, progress.clone());
    let source = reference(&args.reference)?;
    let platforms = parse_platforms(&args.platform)?;
    let tag = args
        .tag
        .clone()
        .or_else(|| source.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let client = client(&args.connect)?;
    let pull_into = |layout: &OciLayout| -> anyhow::Result<image_layout::Digest> {
        let desc = client
            .pull_with_progress(
                &source,
                (!platforms.is_empty()).then_some(platforms.as_slice()),
                layout,
                &tag,
                &show_progress(&progress, "pull"),
            )
            .map_err(classify)?;
        Ok(image_layout::Digest::from(desc.digest()))
    };
    let digest = match (&args.out, &args.archive) {
        (Some(dir), _) => {
            // A folder this pull creates is removed again if the pull
            // fails, so a failure leaves nothing half-written behind.
            let fresh = !dir.exists();
            let layout =
                OciLayout::create(dir).with_context(|| format!("--out {}", dir.display()))?;
            match pull_into(&layout) {
                Ok(d) => d,
                Err(e) => {
                    if fresh {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    return Err(e);
                }
            }
        }
        (None, Some(archive)) => {
            // Pull into a scratch layout, then write the archive through a
            // temporary file: no half-written archive on failure.
            let tmp = tempfile::tempdir().context("creating a temporary folder")?;
            let layout = OciLayout::create(tmp.path()).context("creating a temporary layout")?;
            let d = pull_into(&layout)?;
            image_layout::archive::write_oci_archive(&layout, std::slice::from_ref(&tag), archive)
                .with_context(|| format!("writing {}", archive.display()))?;
            d
        }
        (None, None) => return Err(bad_input("pull: give --out DIR or --archive FILE")),
    };
    println!("{}", source.with_digest(&digest));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 20), "5.0 MiB");
    }
}
