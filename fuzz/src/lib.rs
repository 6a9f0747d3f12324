//! Fuzz harnesses for every parser of outside input in netshoot-build.
//!
//! Each target is a plain `fn(&[u8])` in [`TARGETS`]: it feeds the bytes to
//! the parser through its public entry point and panics only on a bug (a
//! panic inside the parser, or a broken invariant checked here, such as a
//! written value that does not read back). The libFuzzer binaries in
//! `fuzz_targets/` call these functions; `cargo test` in this folder
//! replays the seeds and the kept inputs through them without libFuzzer.
//!
//! Parsers that only take a path (the spec, the lockfile, an OCI layout
//! or archive) are fed through files in a temporary folder.

use std::borrow::Cow;
use std::path::Path;

pub mod deb;
pub mod oci;
pub mod openpgp;
pub mod seeds;

/// A fuzz target: its name (also the binary's and the corpus folder's)
/// and its harness.
pub struct Target {
    /// `deb822`, `packages`, ...
    pub name: &'static str,
    /// What it feeds, for the summary and the README.
    pub parser: &'static str,
    /// The harness.
    pub run: fn(&[u8]),
}

/// Every target, in the order `make fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "deb822",
        parser: "debian::control::parse_paragraphs (control, status, Release, Sources) and its writer",
        run: deb822,
    },
    Target {
        name: "packages",
        parser: "debian::packages::parse_packages (Packages index, relations, versions)",
        run: packages,
    },
    Target {
        name: "sources",
        parser: "debian::sources::parse_sources (Sources index, Checksums-Sha256)",
        run: sources,
    },
    Target {
        name: "version_relation",
        parser: "debian::version::Version ordering and debian::relation parse/display",
        run: version_relation,
    },
    Target {
        name: "sources_list",
        parser: "debian::sources_list one-line and deb822 apt sources",
        run: sources_list,
    },
    Target {
        name: "release",
        parser: "Release fields and dates behind a valid signature (InRelease and Release.gpg)",
        run: openpgp::release_body,
    },
    Target {
        name: "inrelease",
        parser: "debian::release::verify_inrelease: clearsigned armor and OpenPGP via rpgp",
        run: openpgp::inrelease,
    },
    Target {
        name: "release_gpg",
        parser: "debian::release::verify_detached: Release.gpg, armored or binary",
        run: openpgp::release_gpg,
    },
    Target {
        name: "keyring",
        parser: "keyring loading (binary and armored) in debian::release",
        run: openpgp::keyring,
    },
    Target {
        name: "deb",
        parser: "debian::deb::read_deb: ar, compressed members, both tarballs",
        run: deb::whole,
    },
    Target {
        name: "deb_data_tar",
        parser: "data.tar of a .deb: tar, GNU and PAX headers, links, confinement",
        run: deb::data_tar,
    },
    Target {
        name: "deb_control_tar",
        parser: "control.tar of a .deb: control, md5sums, conffiles, scripts",
        run: deb::control_tar,
    },
    Target {
        name: "oci_layout",
        parser: "OCI index/manifest/config JSON in a layout (open, resolve, images, reachable, check, inspect)",
        run: oci::layout,
    },
    Target {
        name: "oci_archive",
        parser: "image_layout::archive::read_archive: oci-archive and docker-archive tars",
        run: oci::archive,
    },
    Target {
        name: "www_authenticate",
        parser: "registry::auth::parse_challenge (WWW-Authenticate)",
        run: www_authenticate,
    },
    Target {
        name: "registry_body",
        parser: "registry error bodies and referrer manifests/indexes",
        run: registry_body,
    },
    Target {
        name: "spec",
        parser: "netshoot_build::spec::Spec::load (the spec TOML and its checks)",
        run: spec,
    },
    Target {
        name: "lockfile",
        parser: "netshoot_build::lockfile::Lockfile::read and its writer",
        run: lockfile,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> &'static Target {
    TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fuzz target {name:?}"))
}

/// Called once by each libFuzzer binary before fuzzing. With
/// `NETSHOOT_FUZZ_SEEDS=DIR` set it writes the target's seed inputs into
/// DIR and exits instead: the seeds are made by the code they exercise
/// (a signed InRelease, a .deb, an archive) rather than kept as files.
pub fn init(name: &str) {
    let t = target(name);
    if let Some(dir) = std::env::var_os("NETSHOOT_FUZZ_SEEDS") {
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).expect("seed folder");
        for (i, s) in seeds::for_target(t.name).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), s).expect("writing a seed");
        }
        std::process::exit(0);
    }
    // Build the expensive fixtures (keys, signatures) before the clock
    // of the first input starts.
    openpgp::fixture();
}

fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// deb822 paragraphs; what we write back (the dpkg status file is written
/// from parsed paragraphs) must read back as the same paragraph.
pub fn deb822(data: &[u8]) {
    use debian::control::parse_paragraphs;
    let text = text(data);
    let Ok(paragraphs) = parse_paragraphs(&text) else {
        return;
    };
    for p in &paragraphs {
        let written = p.to_string();
        let again = parse_paragraphs(&written)
            .unwrap_or_else(|e| panic!("written paragraph does not parse ({e}): {written:?}"));
        assert_eq!(again.len(), 1, "written paragraph: {written:?}");
        assert_eq!(
            &again[0], p,
            "written paragraph reads back differently: {written:?}"
        );
    }
}

/// A `Packages` index.
pub fn packages(data: &[u8]) {
    let _ = debian::packages::parse_packages(&text(data));
}

/// A `Sources` index; `newest` over what parsed.
pub fn sources(data: &[u8]) {
    if let Ok(all) = debian::sources::parse_sources(&text(data)) {
        for p in &all {
            let _ = debian::sources::newest(&all, &p.name);
            let _ = p.dsc();
        }
    }
}

/// Versions (one per line): dpkg's order must be a total order, and a
/// version's text must parse to an equal version. Relations (the whole
/// input as a `Depends` field): each must read back from its display.
pub fn version_relation(data: &[u8]) {
    use debian::relation::{parse_relations, Relation};
    use debian::version::Version;
    use std::cmp::Ordering;
    let text = text(data);
    let versions: Vec<Version> = text
        .lines()
        .take(8)
        .filter_map(|l| Version::parse(l).ok())
        .collect();
    for a in &versions {
        assert_eq!(a.cmp(a), Ordering::Equal, "{a} vs itself");
        let again = Version::parse(&a.to_string()).expect("a version's text parses");
        assert_eq!(again.cmp(a), Ordering::Equal, "{a} reparsed");
        for b in &versions {
            assert_eq!(
                a.cmp(b),
                b.cmp(a).reverse(),
                "{a} vs {b} is not antisymmetric"
            );
            assert_eq!(
                a == b,
                a.cmp(b) == Ordering::Equal,
                "{a} == {b} disagrees with cmp"
            );
            for c in &versions {
                if a <= b && b <= c {
                    assert!(a <= c, "{a} <= {b} <= {c} but not {a} <= {c}");
                }
            }
        }
    }
    if let Ok(groups) = parse_relations(&text) {
        for r in groups.iter().flatten() {
            let shown = r.to_string();
            let again = Relation::parse(&shown)
                .unwrap_or_else(|e| panic!("displayed relation {shown:?} does not parse: {e}"));
            assert_eq!(&again, r, "relation {shown:?} reads back differently");
        }
    }
}

/// The host's apt sources in both formats.
pub fn sources_list(data: &[u8]) {
    use debian::sources_list::{mirror_for_suite, parse_deb822, parse_one_line};
    let text = text(data);
    for entries in [
        parse_one_line(&text, Path::new("fuzz.list")),
        parse_deb822(&text, Path::new("fuzz.sources")),
    ]
    .into_iter()
    .flatten()
    {
        for e in &entries {
            let _ = e.signed_by();
            let _ = mirror_for_suite(&entries, &e.suite);
        }
    }
}

/// A `WWW-Authenticate` header value.
pub fn www_authenticate(data: &[u8]) {
    let _ = registry::auth::parse_challenge(&text(data));
}

/// A registry's error body, and the same bytes as a referrer manifest and
/// as an existing referrers index merged with it.
pub fn registry_body(data: &[u8]) {
    let _ = registry::error::parse_error_body(data);
    let d = registry::referrers::referrer_descriptor(data, image_layout::layout::MT_MANIFEST);
    let existing = serde_json::from_slice::<serde_json::Value>(data).ok();
    let refs: Vec<serde_json::Value> = d.into_iter().collect();
    let _ = registry::referrers::merge_referrers(existing, &refs);
}

/// A temporary folder, in memory where the machine has `/dev/shm`: the
/// parsers behind paths write with `fsync`, which on a disk would make
/// those targets a hundred times slower. Named after the process, so
/// `run.sh` removes what a crashed run left.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let prefix = format!("netshoot-fuzz-{}-", std::process::id());
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix);
    if shm.is_dir() {
        if let Ok(d) = b.tempdir_in(shm) {
            return d;
        }
    }
    b.tempdir().expect("scratch folder")
}

thread_local! {
    static SCRATCH: tempfile::TempDir = scratch_dir();
}

/// The spec, loaded from a file as `netshoot-build` does.
pub fn spec(data: &[u8]) {
    SCRATCH.with(|dir| {
        let p = dir.path().join("netshoot.toml");
        std::fs::write(&p, data).expect("writing the spec");
        let _ = netshoot_build::spec::Spec::load(&p);
    });
}

/// The lockfile; what we write must read back as the same lockfile.
pub fn lockfile(data: &[u8]) {
    use netshoot_build::lockfile::Lockfile;
    SCRATCH.with(|dir| {
        let p = dir.path().join("netshoot.lock");
        std::fs::write(&p, data).expect("writing the lockfile");
        let Ok(Some(lock)) = Lockfile::read(&p) else {
            return;
        };
        let written = lock.to_text().expect("a read lockfile can be written");
        let q = dir.path().join("again.lock");
        lock.write(&q).expect("writing the lockfile back");
        let again = Lockfile::read(&q)
            .unwrap_or_else(|e| panic!("written lockfile does not read ({e:#}): {written}"))
            .expect("written lockfile exists");
        assert_eq!(
            again.to_text().expect("write again"),
            written,
            "lockfile changes when written and read again"
        );
    });
}
