//! SBOMs attached to each platform image as OCI artifacts: one SPDX and one
//! CycloneDX document per platform manifest, each in an image manifest
//! whose `subject` is that platform manifest (OCI 1.1 referrers), listed
//! untagged in the layout's `index.json` so `push` carries them.

use crate::crates::CrateLock;
use crate::error::Result;
use crate::sbom::{self, PackageKind, SbomInput, SbomPackage};
use image_layout::layout::{BlobRef, MT_MANIFEST};
use image_layout::{OciLayout, Tree};
use std::collections::BTreeMap;

/// SPDX 2.3 JSON.
pub const MT_SPDX: &str = "application/spdx+json";
/// CycloneDX JSON.
pub const MT_CYCLONEDX: &str = "application/vnd.cyclonedx+json";
/// The empty config of artifacts without one.
pub const MT_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Annotation on `index.json` entries naming the subject of a referrer,
/// so a rebuild can drop the referrers of images no tag holds any more.
pub const SUBJECT_ANNOTATION: &str = "dev.netshoot-build.subject";

/// A download of a `url` source as installed, for the SBOM.
#[derive(Clone, Debug)]
pub struct UrlInstalled {
    /// The entry's name.
    pub name: String,
    /// Its version, when the spec gives one.
    pub version: Option<String>,
    /// Where it came from.
    pub url: String,
    /// sha256 of the download.
    pub sha256: String,
}

/// The packages of one platform image: the dpkg database of `tree`, every
/// compiled crate with its locked dependencies, and the url downloads.
pub fn packages(tree: &Tree, crates: &[&CrateLock], urls: &[UrlInstalled]) -> Vec<SbomPackage> {
    let status = crate::rootfs::read_body(tree, "var/lib/dpkg/status")
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .unwrap_or_default();
    let copyright = |name: &str| -> Option<String> {
        crate::rootfs::read_body(tree, &format!("usr/share/doc/{name}/copyright"))
            .map(|b| String::from_utf8_lossy(&b).to_string())
    };
    let mut out = sbom::debs_from_dpkg_status(&status, &copyright);

    // Crates: tools share dependencies; one package per name and version,
    // with the union of their edges.
    let mut cargo: BTreeMap<String, SbomPackage> = BTreeMap::new();
    for c in crates {
        let licenses: BTreeMap<(&str, &str), &str> = c
            .packages
            .iter()
            .filter_map(|p| {
                p.license
                    .as_deref()
                    .map(|l| ((p.name.as_str(), p.version.as_str()), l))
            })
            .collect();
        let license_of = |n: &str, v: &str| -> Option<String> {
            licenses.get(&(n, v)).and_then(|l| sbom::cargo_license(l))
        };
        let root_license = licenses
            .get(&(c.name.as_str(), c.version.as_str()))
            .and_then(|l| sbom::cargo_license(l));
        for p in sbom::cargo_packages(&c.lockfile, &c.name, root_license.as_deref(), &license_of) {
            let key = sbom::pkg_ref(&p.kind, &p.name, &p.version, p.arch.as_deref());
            match cargo.get_mut(&key) {
                Some(existing) => {
                    for d in p.depends_on {
                        if !existing.depends_on.contains(&d) {
                            existing.depends_on.push(d);
                        }
                    }
                    existing.depends_on.sort();
                }
                None => {
                    cargo.insert(key, p);
                }
            }
        }
    }
    out.extend(cargo.into_values());
    for u in urls {
        out.push(SbomPackage {
            kind: PackageKind::Generic,
            name: u.name.clone(),
            version: u.version.clone().unwrap_or_else(|| "unversioned".into()),
            arch: None,
            source: None,
            license: None,
            sha256: Some(u.sha256.clone()),
            download_url: Some(u.url.clone()),
            depends_on: Vec::new(),
        });
    }
    out
}

/// Writes the SPDX and CycloneDX artifacts for `input` into `layout` and
/// returns their manifests, for `index.json`.
pub fn write_sboms(
    layout: &OciLayout,
    subject: &BlobRef,
    input: &SbomInput,
) -> Result<Vec<(BlobRef, &'static str)>> {
    let empty = layout.put_blob(b"{}")?;
    let mut out = Vec::new();
    for (mt, bytes) in [
        (MT_SPDX, sbom::spdx_json(input)),
        (MT_CYCLONEDX, sbom::cyclonedx_json(input)),
    ] {
        let doc = layout.put_blob(&bytes)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "artifactType": mt,
            "config": {
                "mediaType": MT_EMPTY,
                "digest": empty.digest.to_string(),
                "size": empty.size,
                "data": "e30=",
            },
            "layers": [{
                "mediaType": mt,
                "digest": doc.digest.to_string(),
                "size": doc.size,
            }],
            "subject": {
                "mediaType": MT_MANIFEST,
                "digest": subject.digest.to_string(),
                "size": subject.size,
            },
            "annotations": {
                "org.opencontainers.image.created": input.created,
            },
        });
        let bytes = image_layout::canonical_json(&manifest)?;
        out.push((layout.put_blob(&bytes)?, mt));
    }
    Ok(out)
}
