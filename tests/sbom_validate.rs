//! The SBOMs of a real system pass the reference validators.
//!
//! The package list is the host's own: every package of its
//! `/var/lib/dpkg/status` (licenses from `/usr/share/doc/*/copyright`), every
//! crate of this workspace's `Cargo.lock` (licenses from the cargo registry
//! sources, where present) and one plain download. The SPDX document is
//! checked by `pyspdxtools`, the CycloneDX one by cyclonedx-python-lib's
//! JSON schema validator for 1.5, both from the venv that
//! `tools/scripts/install-deps.sh` creates.

mod common;
use common::{sbom_venv_tool, validate_cdx, validate_spdx};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use netshoot_build::sbom::{
    cargo_packages, cyclonedx_json, debs_from_dpkg_status, spdx_json, PackageKind, SbomInput,
    SbomPackage,
};
use serde_json::Value;

const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// The `license` field of a crate's manifest in the local cargo registry
/// sources, when that crate has been downloaded.
fn crate_license(name: &str, version: &str) -> Option<String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let src = home.join("registry").join("src");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&src)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    for d in dirs {
        let manifest = d.join(format!("{name}-{version}")).join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            let v: toml::Value = toml::from_str(&text).ok()?;
            return v
                .get("package")?
                .get("license")?
                .as_str()
                .map(str::to_string);
        }
    }
    None
}

struct Built {
    input: SbomInput,
    installed: usize,
    crates: usize,
}

fn build_input() -> Built {
    let status = std::fs::read_to_string(DPKG_STATUS).expect("read the host's dpkg status");
    // Counted independently of the parser: one `Status:` line per
    // paragraph, "install ok installed" (or "hold ok installed", ...).
    let installed = status
        .lines()
        .filter(|l| l.starts_with("Status:") && l.split_whitespace().last() == Some("installed"))
        .count();
    let copyright_of = |name: &str| -> Option<String> {
        std::fs::read_to_string(Path::new("/usr/share/doc").join(name).join("copyright")).ok()
    };
    let mut packages = debs_from_dpkg_status(&status, &copyright_of);

    let lock_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).expect("read the workspace Cargo.lock");
    let crates = cargo_packages(&lock, "netshoot-build", Some("Apache-2.0"), &crate_license);
    let crate_count = crates.len();
    packages.extend(crates);

    let payload = b"an example download";
    packages.push(SbomPackage {
        kind: PackageKind::Generic,
        name: "example-tool".into(),
        version: "1.2.3".into(),
        arch: None,
        source: None,
        license: Some("MIT".into()),
        sha256: Some(sha256_hex(payload)),
        download_url: Some(
            "https://downloads.example.org/example-tool/v1.2.3/example-tool_1.2.3+x86_64.tar.gz"
                .into(),
        ),
        depends_on: Vec::new(),
    });

    Built {
        input: SbomInput {
            image_name: "netshoot".into(),
            image_version: "1.0.0".into(),
            platform: "linux/amd64".into(),
            subject_digest: format!("sha256:{}", sha256_hex(b"an image manifest")),
            created: "2025-11-28T00:00:00Z".into(),
            distro: "debian-13".into(),
            packages,
        },
        installed,
        crates: crate_count,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn host_sbom_passes_reference_validators() {
    // Fail (not skip) without the validators.
    sbom_venv_tool("pyspdxtools");
    sbom_venv_tool("python");

    let built = build_input();
    assert!(built.installed > 0, "no installed package in {DPKG_STATUS}");
    assert!(built.crates > 0, "no crate in Cargo.lock");
    let expected = built.installed + built.crates + 1;

    let spdx = spdx_json(&built.input);
    let cdx = cyclonedx_json(&built.input);

    // Deterministic: the same call twice, and the whole input built anew.
    assert_eq!(spdx, spdx_json(&built.input));
    assert_eq!(cdx, cyclonedx_json(&built.input));
    let again = build_input();
    assert_eq!(spdx, spdx_json(&again.input), "SPDX differs between runs");
    assert_eq!(
        cdx,
        cyclonedx_json(&again.input),
        "CycloneDX differs between runs"
    );

    let dir = tempfile::tempdir().unwrap();
    let spdx_file = dir.path().join("spdx.json");
    let cdx_file = dir.path().join("cdx.json");
    std::fs::write(&spdx_file, &spdx).unwrap();
    std::fs::write(&cdx_file, &cdx).unwrap();

    let (ok, log) = validate_spdx(&spdx_file);
    assert!(ok, "pyspdxtools rejected the SPDX document:\n{log}");
    let (ok, log) = validate_cdx(&cdx_file);
    assert!(
        ok,
        "the CycloneDX 1.5 validator rejected the document:\n{log}"
    );

    // SPDX content.
    let doc: Value = serde_json::from_slice(&spdx).unwrap();
    let pkgs = doc["packages"].as_array().unwrap();
    assert_eq!(pkgs[0]["SPDXID"], "SPDXRef-image");
    assert_eq!(
        pkgs.len() - 1,
        expected,
        "SPDX packages: {} installed debs + {} crates + 1 download",
        built.installed,
        built.crates
    );
    let mut spdx_debs = 0;
    let mut licensed_debs = 0;
    for p in &pkgs[1..] {
        let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap();
        if p["SPDXID"].as_str().unwrap().starts_with("SPDXRef-deb-") {
            spdx_debs += 1;
            assert!(purl.starts_with("pkg:deb/debian/"), "{purl}");
            if p["licenseDeclared"] != "NOASSERTION" {
                licensed_debs += 1;
            }
        }
    }
    assert_eq!(spdx_debs, built.installed);
    assert!(
        licensed_debs > 0,
        "no Debian package got a license from its copyright file"
    );
    let depends = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "DEPENDS_ON")
        .count();
    assert!(depends > 0, "no DEPENDS_ON relationship");

    // CycloneDX content.
    let bom: Value = serde_json::from_slice(&cdx).unwrap();
    let comps = bom["components"].as_array().unwrap();
    assert_eq!(comps.len(), expected);
    let mut refs: BTreeSet<&str> = BTreeSet::new();
    let mut cdx_debs = 0;
    for c in comps {
        let r = c["bom-ref"].as_str().unwrap();
        assert!(refs.insert(r), "duplicate bom-ref {r}");
        if r.starts_with("SPDXRef-deb-") {
            cdx_debs += 1;
            let purl = c["purl"].as_str().unwrap();
            assert!(purl.starts_with("pkg:deb/debian/"), "{purl}");
        }
    }
    assert_eq!(cdx_debs, built.installed);
    assert_eq!(bom["metadata"]["component"]["bom-ref"], "image");
    refs.insert("image");
    for d in bom["dependencies"].as_array().unwrap() {
        assert!(refs.contains(d["ref"].as_str().unwrap()));
        for t in d["dependsOn"].as_array().unwrap() {
            assert!(refs.contains(t.as_str().unwrap()), "dangling dependsOn {t}");
        }
    }

    // The validators really check: a broken document of each kind fails.
    let mut bad_spdx = doc.clone();
    bad_spdx["packages"][1]["licenseDeclared"] = Value::from("Not-A-Real-License-Id");
    bad_spdx["relationships"][0]["relatedSpdxElement"] = Value::from("SPDXRef-nowhere");
    std::fs::write(&spdx_file, serde_json::to_vec(&bad_spdx).unwrap()).unwrap();
    let (ok, log) = validate_spdx(&spdx_file);
    assert!(!ok, "pyspdxtools accepted a broken document:\n{log}");
    let mut bad_cdx = bom.clone();
    bad_cdx["serialNumber"] = Value::from("not-a-uuid");
    bad_cdx["components"][0]["type"] = Value::from("no-such-type");
    std::fs::write(&cdx_file, serde_json::to_vec(&bad_cdx).unwrap()).unwrap();
    let (ok, log) = validate_cdx(&cdx_file);
    assert!(
        !ok,
        "the CycloneDX validator accepted a broken document:\n{log}"
    );
}
