//! The resolver against real apt on the real Debian trixie index.
//!
//! The index is fetched from the mirror configured in the host's own apt
//! sources (never a hostname written here), verified with the host's
//! Debian archive keyring through `load_index`, then served to a
//! throwaway apt as a local `file:` repository holding exactly the bytes
//! we verified. `apt-get install --simulate --no-install-recommends` on an
//! empty dpkg status must then install exactly the set our resolver
//! chooses with `Base::None`.
//!
//! Needs the network: skipped only when `NETSHOOT_OFFLINE=1`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use debian::repository::{load_index, HttpFetch};
use debian::resolver::{Base, Request, Resolver};
use debian::sources_list::{mirror_for_suite, read_sources};

const SUITE: &str = "trixie";
const TOOLS: &[&str] = &[
    "bash",
    "coreutils",
    "iproute2",
    "curl",
    "tcpdump",
    "iptables",
    "netcat-openbsd",
    "ca-certificates",
];

#[test]
fn resolver_matches_apt_on_real_trixie_index() {
    if std::env::var("NETSHOOT_OFFLINE").as_deref() == Ok("1") {
        eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("!!! NETSHOOT_OFFLINE=1: SKIPPING resolver_matches_apt_on_real_trixie_index");
        eprintln!("!!! (the resolver is NOT being compared with real apt in this run)");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
        return;
    }
    let entries = read_sources(Path::new("/")).expect("host apt sources readable");
    let mirror = mirror_for_suite(&entries, SUITE)
        .expect("the host's apt sources name a Debian archive (set NETSHOOT_OFFLINE=1 to skip)");
    let keyring = fs::read("/usr/share/keyrings/debian-archive-keyring.gpg")
        .expect("debian-archive-keyring installed");
    let fetch = HttpFetch::new(Duration::from_secs(300)).expect("HTTP client");
    let index = load_index(
        &fetch,
        &mirror,
        SUITE,
        "main",
        "amd64",
        &keyring,
        SystemTime::now(),
    )
    .unwrap_or_else(|e| panic!("loading the {SUITE} index: {e}"));
    assert!(index.packages.len() > 30_000, "suspiciously small index");

    // apt's side: a local repository with the verified bytes. Only the
    // files apt will read are laid out; by-hash is switched off so that
    // the plain paths are used.
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let repo = t.join("repo");
    let dists = repo.join("dists").join(SUITE);
    let bytes = fetch_again(&fetch, &index.packages_url, &index.packages_sha256);
    fs::create_dir_all(dists.join("main/binary-amd64")).unwrap();
    fs::write(dists.join(&index.packages_path), &bytes).unwrap();
    let inrelease = fetch_again(
        &fetch,
        &format!("{}/dists/{SUITE}/InRelease", index.base_url),
        &index.release_digest,
    );
    fs::write(dists.join("InRelease"), inrelease).unwrap();
    for d in [
        "etc/apt.conf.d",
        "etc/preferences.d",
        "etc/sources.list.d",
        "lists/partial",
        "cache/archives/partial",
        "log",
    ] {
        fs::create_dir_all(t.join(d)).unwrap();
    }
    fs::write(t.join("status"), "").unwrap();
    fs::write(
        t.join("etc/sources.list"),
        format!(
            "deb [trusted=yes arch=amd64] file:{} {SUITE} main\n",
            repo.display()
        ),
    )
    .unwrap();
    // APT_CONFIG is read before /etc/apt/apt.conf.d, so pointing the parts
    // directory elsewhere here keeps the host's apt configuration out.
    let conf = format!(
        r#"Dir::Etc "{t}/etc";
Dir::Etc::parts "{t}/etc/apt.conf.d";
Dir::Etc::main "{t}/etc/apt.conf";
Dir::Etc::sourcelist "{t}/etc/sources.list";
Dir::Etc::sourceparts "{t}/etc/sources.list.d";
Dir::Etc::preferencesparts "{t}/etc/preferences.d";
Dir::Etc::trusted "{t}/etc/trusted.gpg";
Dir::Etc::trustedparts "{t}/etc/trusted.gpg.d";
Dir::State "{t}";
Dir::State::lists "{t}/lists";
Dir::State::status "{t}/status";
Dir::Cache "{t}/cache";
Dir::Log "{t}/log";
APT::Architecture "amd64";
APT::Architectures {{ "amd64"; }};
Acquire::Languages "none";
Acquire::By-Hash "no";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Debug::NoLocking "true";
"#,
        t = t.display()
    );
    let conf_path = t.join("apt.conf");
    fs::write(&conf_path, conf).unwrap();
    let apt = |args: &[&str]| {
        let out = Command::new("apt-get")
            .env("APT_CONFIG", &conf_path)
            .env("LC_ALL", "C")
            .args(args)
            .output()
            .expect("apt-get runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "apt-get {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    };
    apt(&["update"]);

    let resolver = Resolver::new(index.packages.clone(), "amd64", &[]);
    let essential: Vec<&str> = {
        let names: BTreeSet<&str> = index
            .packages
            .iter()
            .filter(|p| p.essential && (p.architecture == "amd64" || p.architecture == "all"))
            .map(|p| p.name.as_str())
            .collect();
        names.into_iter().collect()
    };
    assert!(essential.len() > 10, "no Essential packages in the index?");

    // 1. The brief's tool list on an empty system.
    compare(&resolver, &apt, TOOLS, &Base::None, &[]);
    // 2. The same with the Essential set: apt on an empty status does not
    //    add Essential packages by itself, so they are named to it
    //    explicitly, after the tools (our resolver also handles requests
    //    before the base set).
    compare(&resolver, &apt, TOOLS, &Base::Essential, &essential);
    // 3. A wider netshoot-like set, with more alternatives and virtual
    //    packages (awk, debconf-2.0, ...) on the way.
    compare(&resolver, &apt, WIDER, &Base::None, &[]);
}

/// Tools closer to the netshoot image, for a broader comparison.
const WIDER: &[&str] = &[
    "bash",
    "nmap",
    "tshark",
    "iperf3",
    "socat",
    "mtr-tiny",
    "bind9-dnsutils",
    "strace",
    "nftables",
    "openssh-client",
    "jq",
    "ethtool",
    "conntrack",
    "iputils-ping",
    "traceroute",
    "ngrep",
    "tcptraceroute",
    "fping",
    "bridge-utils",
    "ipvsadm",
    "net-tools",
    "swaks",
    "vim-tiny",
    "git",
    "python3",
    "apache2-utils",
];

/// Resolves `tools` (+ `base`) with ours and with apt (`tools` + `apt_extra`)
/// and asserts the same `name version` sets.
fn compare(
    resolver: &Resolver,
    apt: &dyn Fn(&[&str]) -> String,
    tools: &[&str],
    base: &Base,
    apt_extra: &[&str],
) {
    let requests: Vec<Request> = tools.iter().map(|t| t.parse().expect("request")).collect();
    let ours: BTreeSet<String> = resolver
        .resolve(&requests, base)
        .unwrap_or_else(|e| panic!("resolver: {e}"))
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();

    let mut args = vec!["install", "--simulate", "--no-install-recommends", "-q"];
    args.extend_from_slice(tools);
    args.extend_from_slice(apt_extra);
    let sim = apt(&args);
    // `Inst NAME (VERSION SUITE [ARCH])`; single-arch apt prints no `:arch`.
    let theirs: BTreeSet<String> = sim
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once(' ')?;
            let version = rest.strip_prefix('(')?.split_whitespace().next()?;
            Some(format!(
                "{} {version}",
                name.split(':').next().unwrap_or(name)
            ))
        })
        .collect();
    assert!(theirs.len() > 20, "apt simulated too little:\n{sim}");
    eprintln!(
        "{base:?} {tools:?}: resolver {} packages, apt {} packages",
        ours.len(),
        theirs.len()
    );

    // Differences explained here would be removed before comparing; none
    // remain: on an empty status apt installs exactly the dependency
    // closure, as we do.
    let only_ours: Vec<&String> = ours.difference(&theirs).collect();
    let only_theirs: Vec<&String> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "resolver and apt differ for {tools:?} with {base:?}\nonly ours:   {only_ours:?}\nonly apt's:  {only_theirs:?}\n(both: {} packages)",
        ours.intersection(&theirs).count()
    );
}

/// The verified bytes again. `load_index` keeps only their digests;
/// re-fetching and checking against those digests is cheaper than
/// widening its API for one test, and catches a mirror that changed in
/// between (apt would then see a Release not matching its index).
fn fetch_again(fetch: &HttpFetch, url: &str, sha256: &str) -> Vec<u8> {
    use debian::repository::Fetch;
    use sha2::{Digest, Sha256};
    let bytes = fetch
        .get(url)
        .unwrap_or_else(|e| panic!("re-fetching {url}: {e}"));
    let got = hex::encode(Sha256::digest(&bytes));
    assert_eq!(got, sha256, "{url} changed since it was verified; rerun");
    bytes
}
