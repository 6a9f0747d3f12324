//! SBOMs attached to each platform image as OCI artifacts: one SPDX and one
//! CycloneDX document per platform manifest, each in an image manifest
//! whose `subject` is that platform manifest (OCI 1.1 referrers), listed
//! untagged in the layout's `index.json` so `push` carries them.

use crate::error::Result;
use crate::sbom::{self, SbomInput, SbomPackage};
use image_layout::layout::{BlobRef, MT_MANIFEST};
use image_layout::{OciLayout, Tree};

/// SPDX 2.3 JSON.
pub const MT_SPDX: &str = "application/spdx+json";
/// CycloneDX JSON.
pub const MT_CYCLONEDX: &str = "application/vnd.cyclonedx+json";
/// The empty config of artifacts without one.
pub const MT_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Annotation on `index.json` entries naming the subject of a referrer,
/// so a rebuild can drop the referrers of images no tag holds any more.
pub const SUBJECT_ANNOTATION: &str = "dev.netshoot-build.subject";

/// The packages of one platform image: the dpkg database of `tree`, then
/// what the sources add (`extra`: compiled crates, downloads), in order.
pub fn packages(tree: &Tree, extra: Vec<SbomPackage>) -> Vec<SbomPackage> {
    let status = crate::rootfs::read_body(tree, "var/lib/dpkg/status")
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .unwrap_or_default();
    let copyright = |name: &str| -> Option<String> {
        crate::rootfs::read_body(tree, &format!("usr/share/doc/{name}/copyright"))
            .map(|b| String::from_utf8_lossy(&b).to_string())
    };
    let mut out = sbom::debs_from_dpkg_status(&status, &copyright);
    out.extend(extra);
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

/// SBOM formats `netshoot-build sbom` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.5 JSON.
    CycloneDx,
}

impl SbomFormat {
    /// The artifact type that carries it.
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Spdx => MT_SPDX,
            SbomFormat::CycloneDx => MT_CYCLONEDX,
        }
    }
}

/// The SBOM of one platform of `layout_dir:tag` (the layout's only tag
/// when None; its first platform when `platform` is None), read from the
/// artifact attached to that platform's manifest, digest-checked.
pub fn read_sbom(
    layout_dir: &std::path::Path,
    tag: Option<&str>,
    platform: Option<&image_layout::Platform>,
    format: SbomFormat,
) -> Result<Vec<u8>> {
    use crate::error::bad_input;
    use image_layout::{Digest, Platform};
    let layout = OciLayout::open(layout_dir)
        .map_err(|e| bad_input(format!("--layout {}: {e}", layout_dir.display())))?;
    let top = layout.resolve(tag)?;
    let index = layout.read_index_blob(&top)?;
    let mut available = Vec::new();
    let mut subject = None;
    for m in index.manifests() {
        let Some(p) = m.platform().as_ref().map(Platform::from_oci) else {
            continue;
        };
        if subject.is_none() && platform.is_none_or(|want| want == &p) {
            subject = Some((Digest::from(m.digest()), p.clone()));
        }
        available.push(p.to_string());
    }
    let (subject, p) = subject.ok_or_else(|| {
        bad_input(format!(
            "--platform {}: not in {} (platforms: {})",
            platform.map(|p| p.to_string()).unwrap_or_default(),
            layout_dir.display(),
            available.join(", ")
        ))
    })?;
    let mt = format.media_type();
    let entry = layout
        .read_index()?
        .manifests()
        .iter()
        .find(|d| {
            d.artifact_type().as_ref().map(|t| t.to_string()).as_deref() == Some(mt)
                && d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(SUBJECT_ANNOTATION))
                    .is_some_and(|s| s == &subject.to_string())
        })
        .cloned()
        .ok_or_else(|| {
            bad_input(format!(
                "{}: no {mt} SBOM is attached to the {p} image ({subject}); \
                 rebuild it with this netshoot-build",
                layout_dir.display()
            ))
        })?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&layout.read_blob(&Digest::from(entry.digest()))?)?;
    if manifest.pointer("/subject/digest").and_then(|d| d.as_str()) != Some(&subject.to_string()) {
        return Err(crate::error::verification(format!(
            "{}: the {mt} artifact {} does not refer to {subject}",
            layout_dir.display(),
            entry.digest()
        )));
    }
    let doc = manifest
        .pointer("/layers/0/digest")
        .and_then(|d| d.as_str())
        .and_then(|d| d.parse::<Digest>().ok())
        .ok_or_else(|| {
            bad_input(format!(
                "{}: the {mt} artifact has no document",
                layout_dir.display()
            ))
        })?;
    Ok(layout.read_blob(&doc)?)
}
