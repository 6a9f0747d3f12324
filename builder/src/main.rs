//! The `netshoot-build` command line: parses arguments and hands over to
//! the library. Every failure prints one line and exits non-zero.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use image_layout::{Compression, OciLayout, Platform};
use netshoot_build::error::{bad_input, exit_code, one_line, Result};
use netshoot_build::progress::Progress;
use netshoot_build::{build, inspect};
use std::path::PathBuf;

/// Build, inspect and export the netshoot image without a container daemon.
#[derive(Parser, Debug)]
#[command(name = "netshoot-build", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build the multi-arch image into an OCI layout.
    Build(BuildArgs),
    /// Write a layout as an archive (oci: all platforms; docker: one).
    Export(ExportArgs),
    /// Show each platform's layers and config.
    Inspect(InspectArgs),
    /// Resolve the spec's packages and write the lockfile next to it.
    Lock(LockArgs),
    /// Rebuild from the lock with fresh caches and compare with a layout.
    Verify(VerifyArgs),
    /// Manage the cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Push an image (layout or archive) to a registry.
    Push(netshoot_build::push::PushArgs),
    /// Pull an image from a registry into a layout or an oci-archive.
    Pull(netshoot_build::push::PullArgs),
    /// Print the SBOM attached to one platform of a layout.
    Sbom(SbomArgs),
    /// Print a shell completion script on stdout.
    Completions(CompletionsArgs),
    /// Print the man page on stdout, or write one per command into a folder.
    Man(ManArgs),
}

#[derive(Args, Debug)]
struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
struct ManArgs {
    /// Write netshoot-build.1 and netshoot-build-<command>.1 pages into
    /// this folder (created if missing) instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SbomArgs {
    /// The OCI layout.
    #[arg(long, default_value = "out/netshoot")]
    layout: PathBuf,
    /// The tag (default: the only one).
    #[arg(long)]
    tag: Option<String>,
    /// The platform (default: the first the image lists).
    #[arg(long)]
    platform: Option<String>,
    /// SPDX 2.3 or CycloneDX 1.5 JSON.
    #[arg(long, value_enum, default_value_t = SbomFormatArg::Spdx)]
    format: SbomFormatArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SbomFormatArg {
    Spdx,
    Cyclonedx,
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Remove entries unused for a while (and leftovers of interrupted builds).
    Prune {
        /// Cache folder (default $NETSHOOT_CACHE, $XDG_CACHE_HOME/netshoot-build).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Keep entries used in the last N days (0 empties the cache).
        #[arg(long, default_value_t = 30)]
        keep_days: u64,
    },
    /// Re-hash every cached object, remove the damaged ones and report.
    Verify {
        /// Cache folder (default $NETSHOOT_CACHE, $XDG_CACHE_HOME/netshoot-build).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The toolset spec the layout was built from.
    #[arg(long, default_value = "tools/netshoot.toml")]
    spec: PathBuf,
    /// The OCI layout to check.
    #[arg(long, default_value = "out/netshoot")]
    layout: PathBuf,
    /// The tag to check (default: the spec's tag).
    #[arg(long)]
    tag: Option<String>,
    /// Platforms the layout holds (default: all the spec's).
    #[arg(long, value_delimiter = ',')]
    platform: Vec<String>,
    /// Mirror for a repository of the spec, NAME=URL.
    #[arg(long)]
    mirror: Vec<String>,
    /// Seconds without data from a mirror or server before an attempt
    /// fails (connecting: at most 10 s); 3 attempts. Default 20.
    #[arg(long, env = netshoot_build::net::TIMEOUT_ENV, value_name = "SECONDS", value_parser = netshoot_build::net::parse_timeout)]
    timeout: Option<std::time::Duration>,
    /// Download cache to reuse verified packages from.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Layer budget the layout was built with.
    #[arg(long, default_value_t = netshoot_build::layering::DEFAULT_LAYERS)]
    layers: usize,
    /// Variant the layout was built as.
    #[arg(long)]
    variant: Option<String>,
    /// Labels the layout was built with, KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    label: Vec<(String, String)>,
    /// Also build the entries of this profile (repeatable; e.g. `full`).
    #[arg(long = "profile")]
    profile: Vec<String>,
    /// Compression the layout was built with.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    compression: CompressionArg,
}

#[derive(Args, Debug)]
struct LockArgs {
    /// The toolset spec.
    #[arg(long, default_value = "tools/netshoot.toml")]
    spec: PathBuf,
    /// Mirror for a repository of the spec, NAME=URL (repeatable; NAME-security for its security suites).
    #[arg(long)]
    mirror: Vec<String>,
    /// Seconds without data from a mirror or server before an attempt
    /// fails (connecting: at most 10 s); 3 attempts. Default 20.
    #[arg(long, env = netshoot_build::net::TIMEOUT_ENV, value_name = "SECONDS", value_parser = netshoot_build::net::parse_timeout)]
    timeout: Option<std::time::Duration>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Also download and pin the entries of this profile (repeatable).
    #[arg(long = "profile")]
    profile: Vec<String>,
    /// Cache folder (default $NETSHOOT_CACHE, $XDG_CACHE_HOME/netshoot-build).
    #[arg(long)]
    cache: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct BuildArgs {
    /// The toolset spec.
    #[arg(long, default_value = "tools/netshoot.toml")]
    spec: PathBuf,
    /// Output OCI layout folder.
    #[arg(long, default_value = "out/netshoot")]
    out: PathBuf,
    /// Build only these platforms (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    platform: Vec<String>,
    /// Tags to give the image (default: the spec's tag).
    #[arg(long)]
    tag: Vec<String>,
    /// Cache folder (default $NETSHOOT_CACHE, $XDG_CACHE_HOME/netshoot-build).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Layer compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    compression: CompressionArg,
    /// Compression level (gzip 1-9, default 6; zstd 1-19, default 3).
    #[arg(long)]
    level: Option<i32>,
    /// Worker threads (default: the number of cores). Never changes the bytes.
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
    /// Mirror for a repository of the spec, NAME=URL (repeatable; NAME-security for its security suites).
    #[arg(long)]
    mirror: Vec<String>,
    /// Seconds without data from a mirror or server before an attempt
    /// fails (connecting: at most 10 s); 3 attempts. Default 20.
    #[arg(long, env = netshoot_build::net::TIMEOUT_ENV, value_name = "SECONDS", value_parser = netshoot_build::net::parse_timeout)]
    timeout: Option<std::time::Duration>,
    /// Fail if the lockfile is missing or out of date instead of relocking.
    #[arg(long)]
    locked: bool,
    /// Build a variant of the spec (e.g. `nonroot`); its tag suffix is appended to every tag.
    #[arg(long)]
    variant: Option<String>,
    /// Set a config label, KEY=VALUE (repeatable); overrides the spec's.
    #[arg(long = "label", value_parser = parse_label)]
    label: Vec<(String, String)>,
    /// Also build the entries of this profile (repeatable; e.g. `full`).
    #[arg(long = "profile")]
    profile: Vec<String>,
    /// Maximum number of layers per image (1 puts everything in one layer).
    #[arg(long, default_value_t = netshoot_build::layering::DEFAULT_LAYERS, value_parser = clap::value_parser!(usize))]
    layers: usize,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CompressionArg {
    Gzip,
    Zstd,
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ExportFormat {
    Oci,
    Docker,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The OCI layout to export.
    #[arg(long, default_value = "out/netshoot")]
    layout: PathBuf,
    /// oci: the whole multi-arch layout; docker: one platform for `docker load`.
    #[arg(long, value_enum, default_value_t = ExportFormat::Oci)]
    format: ExportFormat,
    /// The tag to export (default: all tags for oci, the only one for docker).
    #[arg(long)]
    tag: Option<String>,
    /// Platform for --format docker (default: this host's).
    #[arg(long)]
    platform: Option<String>,
    /// The image name for `docker load` (default: netshoot).
    #[arg(long, default_value = "netshoot")]
    name: String,
    /// Archive to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Write the static toolbox's programs for --platform as a .tar.gz
    /// (netshoot/bin/...), to copy into a running container; builds them
    /// from the spec's [[source]] entries when the cache lacks them.
    #[arg(long, requires = "platform", conflicts_with_all = ["format", "tag", "name"])]
    static_bundle: bool,
    /// The toolset spec (with --static-bundle).
    #[arg(long, default_value = "tools/netshoot.toml")]
    spec: PathBuf,
    /// Cache folder (with --static-bundle).
    #[arg(long, env = "NETSHOOT_CACHE")]
    cache: Option<PathBuf>,
    /// Mirror for a repository of the spec, NAME=URL (with --static-bundle).
    #[arg(long)]
    mirror: Vec<String>,
    /// Seconds without data from a mirror or server before an attempt
    /// fails (connecting: at most 10 s); 3 attempts. Default 20 (with
    /// --static-bundle).
    #[arg(long, env = netshoot_build::net::TIMEOUT_ENV, value_name = "SECONDS", value_parser = netshoot_build::net::parse_timeout)]
    timeout: Option<std::time::Duration>,
    /// Fail instead of relocking when the lock is missing or stale (with --static-bundle).
    #[arg(long)]
    locked: bool,
    /// No progress output.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// The OCI layout to inspect.
    #[arg(long, default_value = "out/netshoot")]
    layout: PathBuf,
    /// The tag to inspect (default: the only one).
    #[arg(long)]
    tag: Option<String>,
    /// Also decompress each layer to report its unpacked size.
    #[arg(long)]
    sizes: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

fn parse_platform(s: &str) -> Result<Platform> {
    s.parse::<Platform>()
        .map_err(|e| bad_input(format!("--platform: {e}")))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(a) => build_cmd(a),
        Command::Export(a) if a.static_bundle => bundle_cmd(a),
        Command::Export(a) => export_cmd(a),
        Command::Verify(a) => verify_cmd(a),
        Command::Cache(CacheCommand::Prune { cache, keep_days }) => {
            cache_prune_cmd(cache, keep_days)
        }
        Command::Cache(CacheCommand::Verify { cache, json }) => cache_verify_cmd(cache, json),
        Command::Push(a) => netshoot_build::push::run_push(a),
        Command::Sbom(a) => sbom_cmd(a),
        Command::Pull(a) => netshoot_build::push::run_pull(a),
        Command::Lock(a) => lock_cmd(a),
        Command::Completions(a) => completions_cmd(a),
        Command::Man(a) => man(a.out.as_deref()),
        Command::Inspect(a) => inspect_cmd(a),
    }
}

/// `build`: the pipeline, then the index digest (or `--json`) on stdout.
fn build_cmd(a: BuildArgs) -> Result<()> {
    let progress = Progress::detect(a.quiet);
    netshoot_build::net::configure(a.timeout, progress.clone());
    let compression = match a.compression {
        CompressionArg::Gzip => Compression::Gzip {
            level: a.level.unwrap_or(6).clamp(0, 9) as u32,
        },
        CompressionArg::Zstd => Compression::Zstd {
            level: a.level.unwrap_or(3).clamp(1, 22),
        },
        CompressionArg::None => Compression::None,
    };
    let platforms = a
        .platform
        .iter()
        .map(|p| parse_platform(p))
        .collect::<Result<Vec<_>>>()?;
    let opts = build::BuildOptions {
        spec: a.spec,
        out: a.out,
        platforms,
        tags: a.tag,
        cache: a.cache,
        compression,
        source_date_epoch: build::source_date_epoch_from_env()?,
        threads: a
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        quiet: a.quiet,
        progress,
        mirrors: netshoot_build::apt::MirrorConfig::from_flags(&a.mirror)?,
        locked: a.locked,
        max_layers: a.layers,
        variant: a.variant,
        profiles: a.profile,
        labels: a.label,
    };
    let r = build::build(&opts)?;
    if a.json {
        let v = serde_json::json!({
            "layout": r.out,
            "index": r.index.digest.to_string(),
            "tags": r.tags,
            "images": r.images.iter().map(|i| serde_json::json!({
                "platform": i.platform.to_string(),
                "manifest": i.manifest.digest.to_string(),
                "layers": i.layers.iter().map(|l| serde_json::json!({
                    "name": l.name, "digest": l.blob.digest.to_string(),
                    "size": l.blob.size, "diff_id": l.diff_id.to_string(),
                    "uncompressed_size": l.uncompressed_size,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", r.index.digest);
    }
    Ok(())
}

/// `export --static-bundle`: the static programs of one platform as a tarball.
fn bundle_cmd(a: ExportArgs) -> Result<()> {
    let progress = Progress::detect(a.quiet);
    netshoot_build::net::configure(a.timeout, progress.clone());
    let platform = parse_platform(a.platform.as_deref().unwrap_or_default())?;
    netshoot_build::bundle::export_bundle(&netshoot_build::bundle::BundleOptions {
        spec: a.spec,
        platform,
        output: a.output,
        cache: a.cache,
        mirrors: netshoot_build::apt::MirrorConfig::from_flags(&a.mirror)?,
        locked: a.locked,
        source_date_epoch: build::source_date_epoch_from_env()?,
        progress,
    })
}

/// `export`: a layout as an oci or docker archive.
fn export_cmd(a: ExportArgs) -> Result<()> {
    use netshoot_build::error::{archive, layout as layout_err};
    let layout = OciLayout::open(&a.layout).map_err(layout_err)?;
    match a.format {
        ExportFormat::Oci => {
            let tags: Vec<String> = a.tag.into_iter().collect();
            image_layout::archive::write_oci_archive(&layout, &tags, &a.output).map_err(archive)?;
        }
        ExportFormat::Docker => {
            let top = layout.resolve(a.tag.as_deref()).map_err(layout_err)?;
            let tag = a.tag.clone().unwrap_or_else(|| {
                top.annotations()
                    .as_ref()
                    .and_then(|x| x.get(image_layout::layout::REF_NAME).cloned())
                    .unwrap_or_else(|| "latest".into())
            });
            let platform = match &a.platform {
                Some(p) => parse_platform(p)?,
                None => Platform::host(),
            };
            image_layout::archive::write_docker_archive(
                &layout,
                &top,
                &platform,
                &format!("{}:{tag}", a.name),
                &a.output,
            )
            .map_err(archive)?;
        }
    }
    eprintln!("wrote {}", a.output.display());
    Ok(())
}

/// `verify`: the layout checked, then rebuilt from the lock and compared.
fn verify_cmd(a: VerifyArgs) -> Result<()> {
    netshoot_build::net::configure(a.timeout, Progress::detect(false));
    let spec = netshoot_build::spec::Spec::load(&a.spec)?;
    let compression = match a.compression {
        CompressionArg::Gzip => Compression::Gzip { level: 6 },
        CompressionArg::Zstd => Compression::Zstd { level: 3 },
        CompressionArg::None => Compression::None,
    };
    let opts = build::BuildOptions {
        spec: a.spec,
        out: PathBuf::new(),
        platforms: a
            .platform
            .iter()
            .map(|p| parse_platform(p))
            .collect::<Result<Vec<_>>>()?,
        tags: Vec::new(),
        cache: a.cache,
        compression,
        source_date_epoch: build::source_date_epoch_from_env()?,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        quiet: true,
        progress: Progress::quiet(),
        mirrors: netshoot_build::apt::MirrorConfig::from_flags(&a.mirror)?,
        locked: true,
        max_layers: a.layers,
        variant: a.variant.clone(),
        profiles: a.profile,
        labels: a.label,
    };
    let suffix = a
        .variant
        .as_ref()
        .and_then(|v| spec.variant.get(v))
        .map(|v| v.tag_suffix.clone())
        .unwrap_or_default();
    let tag = a
        .tag
        .unwrap_or_else(|| format!("{}{suffix}", spec.image.tag));
    let line = netshoot_build::verify::verify(&opts, &a.layout, &tag)?;
    println!("{line}");
    Ok(())
}

/// `cache prune`: entries unused for `keep_days` removed.
fn cache_prune_cmd(cache: Option<PathBuf>, keep_days: u64) -> Result<()> {
    let c = netshoot_build::cache::Cache::open(cache.as_deref())?;
    let r = c.prune(std::time::Duration::from_secs(keep_days * 86400))?;
    println!(
        "pruned {} entries ({}) from {}",
        r.removed,
        inspect::human(r.bytes),
        c.root().display()
    );
    Ok(())
}

/// `cache verify`: every object re-hashed, the damaged removed.
fn cache_verify_cmd(cache: Option<PathBuf>, json: bool) -> Result<()> {
    let c = netshoot_build::cache::Cache::open(cache.as_deref())?;
    let r = c.verify_all()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for (path, why) in &r.removed {
            println!("removed {path}: {why}");
        }
        println!(
            "checked {} objects ({}) in {}: {} damaged, removed",
            r.checked,
            inspect::human(r.bytes),
            c.root().display(),
            r.removed.len()
        );
    }
    Ok(())
}

/// `sbom`: one platform's SBOM on stdout.
fn sbom_cmd(a: SbomArgs) -> Result<()> {
    let platform = a.platform.as_deref().map(parse_platform).transpose()?;
    let format = match a.format {
        SbomFormatArg::Spdx => netshoot_build::image::referrers::SbomFormat::Spdx,
        SbomFormatArg::Cyclonedx => netshoot_build::image::referrers::SbomFormat::CycloneDx,
    };
    let doc = netshoot_build::image::referrers::read_sbom(
        &a.layout,
        a.tag.as_deref(),
        platform.as_ref(),
        format,
    )?;
    use std::io::Write;
    std::io::stdout().write_all(&doc)?;
    Ok(())
}

/// `lock`: the spec resolved into its lockfile.
fn lock_cmd(a: LockArgs) -> Result<()> {
    let spec = netshoot_build::spec::Spec::load(&a.spec)?;
    let mirrors = netshoot_build::apt::MirrorConfig::from_flags(&a.mirror)?;
    let progress = Progress::detect(a.quiet);
    netshoot_build::net::configure(a.timeout, progress.clone());
    let log = |m: String| progress.step(m);
    let cache =
        netshoot_build::cache::Cache::open(a.cache.as_deref())?.with_progress(progress.clone());
    build::lock(&spec, &mirrors, &a.profile, &cache, &log)?;
    Ok(())
}

/// `completions`: a shell completion script on stdout.
fn completions_cmd(a: CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "netshoot-build", &mut std::io::stdout());
    Ok(())
}

/// `inspect`: each platform's layers and config.
fn inspect_cmd(a: InspectArgs) -> Result<()> {
    let r = inspect::inspect(&a.layout, a.tag.as_deref(), a.sizes)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        inspect::print_text(&r);
    }
    Ok(())
}

/// `netshoot-build man`: the main page on stdout, or every page into `out`.
fn man(out: Option<&std::path::Path>) -> Result<()> {
    // No page for `help`: `--help` covers it.
    let cmd = Cli::command().disable_help_subcommand(true);
    let Some(dir) = out else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        use std::io::Write;
        std::io::stdout().write_all(&page)?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(|e| bad_input(format!("--out {}: {e}", dir.display())))?;
    // One page per command, nested ones included (netshoot-build-cache-prune.1).
    fn pages(cmd: clap::Command, dir: &std::path::Path, wrote: &mut Vec<PathBuf>) -> Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            pages(sub, dir, wrote)?;
        }
        let man = clap_mangen::Man::new(cmd);
        let path = dir.join(man.get_filename());
        let mut page = Vec::new();
        man.render(&mut page)?;
        std::fs::write(&path, page).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        wrote.push(path);
        Ok(())
    }
    let mut cmd = cmd;
    cmd.build();
    let mut wrote = Vec::new();
    pages(cmd, dir, &mut wrote)?;
    eprintln!("wrote {} man pages to {}", wrote.len(), dir.display());
    Ok(())
}

fn parse_label(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("netshoot-build: error: {}", one_line(&e));
        std::process::exit(exit_code(&e));
    }
}
