//! Referrers (SBOMs, signatures, attestations) on registries with and
//! without the OCI 1.1 referrers API.
//!
//! A registry that implements `GET /v2/<name>/referrers/<digest>` indexes
//! a manifest's `subject` by itself. One that does not (distribution 2.8,
//! most registries deployed before 2024) is served by the *referrers tag
//! schema* of the distribution spec 1.1: an image index tagged
//! `sha256-<hex of the subject digest>` lists the referrers; clients read
//! it, add what they pushed, and put it back.

use crate::client::{Client, Registry, Req};
use crate::error::{Error, Result, Target};
use crate::manifest::MANIFEST_ACCEPT;
use image_layout::layout::MT_INDEX;
use image_layout::{canonical_json, Digest};
use reqwest::Method;
use std::io::Read;

/// Largest referrers index (or referrers API answer) read; the spec's
/// suggested manifest limit.
const MAX_INDEX: u64 = 4 << 20;

/// The tag under which the referrers of `subject` are listed on a
/// registry without the referrers API: `sha256-<hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// The descriptor a referrers list holds for the manifest `bytes`
/// (`mediaType`, `digest`, `size`, `artifactType`, `annotations`), as the
/// referrers API would answer it. `artifactType` falls back to the
/// config's media type, as the spec says.
pub fn referrer_descriptor(bytes: &[u8], media_type: &str) -> Result<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::Invalid(format!("referrer manifest: not JSON: {e}")))?;
    let mut d = serde_json::json!({
        "mediaType": media_type,
        "digest": Digest::of(bytes).to_string(),
        "size": bytes.len(),
    });
    let artifact_type = v
        .get("artifactType")
        .or_else(|| v.pointer("/config/mediaType"))
        .and_then(|t| t.as_str());
    if let Some(t) = artifact_type {
        d["artifactType"] = serde_json::Value::from(t);
    }
    if let Some(a) = v.get("annotations").filter(|a| a.is_object()) {
        d["annotations"] = a.clone();
    }
    Ok(d)
}

/// Adds `referrers` to the referrers index `existing` (or to an empty
/// one), skipping digests it already lists. Returns the new index, or
/// `None` when nothing was added. Other fields of `existing` are kept.
pub fn merge_referrers(
    existing: Option<serde_json::Value>,
    referrers: &[serde_json::Value],
) -> Result<Option<serde_json::Value>> {
    let fresh = existing.is_none();
    let mut index = existing.unwrap_or_else(
        || serde_json::json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []}),
    );
    let Some(list) = index.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
        return Err(Error::Invalid(
            "referrers index: no manifests list".to_string(),
        ));
    };
    let mut added = false;
    for r in referrers {
        let digest = r.get("digest").and_then(|d| d.as_str());
        if digest.is_none()
            || list
                .iter()
                .any(|m| m.get("digest").and_then(|d| d.as_str()) == digest)
        {
            continue;
        }
        list.push(r.clone());
        added = true;
    }
    Ok((added || fresh).then_some(index))
}

impl Client {
    /// Whether the registry answers the referrers API for `subject` in
    /// `repo`: a 200 says yes; 404 (the spec's signal) and the 400/405
    /// some registries give for unknown routes say no.
    pub(crate) fn has_referrers_api(
        &self,
        reg: &Registry,
        repo: &str,
        scopes: &[String],
        subject: &Digest,
    ) -> Result<bool> {
        let target = Target {
            registry: reg.host.clone(),
            repository: repo.to_string(),
            object: format!("referrers of {subject}"),
        };
        let url = reg
            .base
            .join(&format!("{repo}/referrers/{subject}"))
            .map_err(|e| Error::Invalid(format!("{target}: {e}")))?;
        let req = Req::new(Method::GET, url).header("accept", MT_INDEX);
        let resp = self.send(reg, &req, scopes, &target, true)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            400 | 404 | 405 => Ok(false),
            _ => Err(crate::client::status_error(resp, &target)),
        }
    }

    /// Reads the referrers index tagged `sha256-<subject hex>` in `repo`,
    /// `None` when the tag does not exist. Anything but an OCI image
    /// index under that tag is an error: it is not ours to overwrite.
    pub(crate) fn fetch_referrers_tag(
        &self,
        reg: &Registry,
        repo: &str,
        scopes: &[String],
        subject: &Digest,
    ) -> Result<Option<serde_json::Value>> {
        let tag = referrers_tag(subject);
        let target = Target {
            registry: reg.host.clone(),
            repository: repo.to_string(),
            object: format!("manifest {tag}"),
        };
        let url = reg
            .base
            .join(&format!("{repo}/manifests/{tag}"))
            .map_err(|e| Error::Invalid(format!("{target}: {e}")))?;
        // Accept every manifest type: a registry asked only for an index
        // answers 404 for another kind of manifest under the tag (2.8
        // does), which would be taken for "no tag" and overwritten.
        let req = Req::new(Method::GET, url).header("accept", MANIFEST_ACCEPT);
        let resp = self.send(reg, &req, scopes, &target, true)?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(crate::client::status_error(resp, &target)),
        }
        let mut bytes = Vec::new();
        let url = resp.url().clone();
        resp.take(MAX_INDEX + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error(&target, &url, &e))?;
        let protocol = |detail: String| Error::Protocol {
            target: target.clone(),
            detail,
        };
        if bytes.len() as u64 > MAX_INDEX {
            return Err(protocol(format!("larger than {MAX_INDEX} bytes")));
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| protocol(format!("the referrers tag is not JSON: {e}")))?;
        if v.get("mediaType").and_then(|m| m.as_str()) != Some(MT_INDEX)
            || !v.get("manifests").is_some_and(|m| m.is_array())
        {
            return Err(protocol(
                "the referrers tag holds something other than an OCI image index; not overwriting it"
                    .into(),
            ));
        }
        Ok(Some(v))
    }

    /// The referrers index of `subject` with `referrers` (descriptors
    /// from [`referrer_descriptor`]) added, as bytes to put under
    /// [`referrers_tag`], or `None` when the tag already lists them all.
    pub(crate) fn merged_referrers_index(
        &self,
        reg: &Registry,
        repo: &str,
        scopes: &[String],
        subject: &Digest,
        referrers: &[serde_json::Value],
    ) -> Result<Option<Vec<u8>>> {
        let existing = self.fetch_referrers_tag(reg, repo, scopes, subject)?;
        let Some(index) = merge_referrers(existing, referrers)? else {
            return Ok(None);
        };
        canonical_json(&index)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("referrers index of {subject}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_takes_artifact_type_or_config_type() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json"},"annotations":{"a":"b"}}"#;
        let d = referrer_descriptor(m, image_layout::layout::MT_MANIFEST).unwrap();
        assert_eq!(d["artifactType"], "application/spdx+json");
        assert_eq!(d["annotations"]["a"], "b");
        assert_eq!(d["size"], m.len());
        assert_eq!(d["digest"], Digest::of(m).to_string());
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.example.sig"}}"#;
        let d = referrer_descriptor(m, image_layout::layout::MT_MANIFEST).unwrap();
        assert_eq!(d["artifactType"], "application/vnd.example.sig");
        assert!(d.get("annotations").is_none());
    }

    #[test]
    fn merge_keeps_existing_and_skips_duplicates() {
        let a = serde_json::json!({"digest": format!("sha256:{}", "a".repeat(64))});
        let b = serde_json::json!({"digest": format!("sha256:{}", "b".repeat(64))});
        let fresh = merge_referrers(None, std::slice::from_ref(&a))
            .unwrap()
            .unwrap();
        assert_eq!(fresh["mediaType"], MT_INDEX);
        assert_eq!(fresh["manifests"].as_array().unwrap().len(), 1);
        // Nothing new: no put needed.
        assert!(
            merge_referrers(Some(fresh.clone()), std::slice::from_ref(&a))
                .unwrap()
                .is_none()
        );
        let both = merge_referrers(Some(fresh), &[b.clone(), a.clone()])
            .unwrap()
            .unwrap();
        let list = both["manifests"].as_array().unwrap();
        assert_eq!(list, &vec![a, b]);
        // An empty fresh list is still put (the tag is created).
        assert!(merge_referrers(None, &[]).unwrap().is_some());
        assert!(merge_referrers(Some(serde_json::json!({})), &[]).is_err());
    }

    #[test]
    fn tag_form() {
        let d = Digest::of(b"x");
        assert_eq!(referrers_tag(&d), format!("sha256-{}", d.hex()));
        assert!(referrers_tag(&d).len() <= 128);
    }
}
