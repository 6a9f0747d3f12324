//! Manifest media types and index filtering, shared by push, pull and the
//! referrers code: it sits below them so that they need not import each
//! other for it.

use crate::error::{Error, Result};
use image_layout::layout::{MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_INDEX, MT_MANIFEST};
use image_layout::Platform;

/// The `Accept` list for manifests: OCI and Docker v2, index and image.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Whether `mt` is one of the manifest or index types this crate handles.
pub(crate) fn is_manifest_type(mt: &str) -> bool {
    matches!(
        mt,
        MT_MANIFEST | MT_DOCKER_MANIFEST | MT_INDEX | MT_DOCKER_LIST
    )
}

/// Whether `mt` is an index (OCI image index or Docker manifest list).
pub(crate) fn is_index_type(mt: &str) -> bool {
    mt == MT_INDEX || mt == MT_DOCKER_LIST
}

/// Drops the index entries whose platform is not asked for; errors when
/// none is left. Entries are kept as JSON so that unknown fields survive.
pub(crate) fn filter_index(
    index: &mut serde_json::Value,
    platforms: &[Platform],
    what: &str,
) -> Result<()> {
    let Some(list) = index.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
        return Err(Error::Invalid(format!(
            "{what}: the index has no manifests"
        )));
    };
    let mut available = Vec::new();
    list.retain(|m| {
        let Some(p) = m.get("platform") else {
            return false;
        };
        let s = |k: &str| p.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let plat = Platform {
            os: s("os").unwrap_or_default(),
            architecture: s("architecture").unwrap_or_default(),
            variant: s("variant"),
        };
        available.push(plat.to_string());
        platforms.iter().any(|want| want.matches(&plat))
    });
    if list.is_empty() {
        return Err(Error::Invalid(format!(
            "{what}: no image for platform(s) {} (the image has {})",
            platforms
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            available.join(", ")
        )));
    }
    Ok(())
}
