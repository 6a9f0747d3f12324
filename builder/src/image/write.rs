//! Writing one platform's image: its layers (through the layer cache),
//! config, manifest and the index over all platforms; the labels and
//! annotations they carry.

use crate::error::Result;
use crate::spec::Spec;
use anyhow::Context;
use image_layout::layout::{BlobRef, MT_CONFIG, MT_MANIFEST};
use image_layout::oci_spec::image::{
    ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, RootFsBuilder,
};
use image_layout::{write_layer, Digest, LayerOptions, Meta, OciLayout, Platform, Tree};
use std::collections::{BTreeMap, HashMap};

/// The config labels: the spec's, then the OCI ones a user expects filled
/// in when the spec leaves them out (`created` from SOURCE_DATE_EPOCH,
/// `version` from the tag, `revision` and `source` from the git work tree
/// that holds the spec, when there is one), then the command line's.
pub fn image_labels(
    spec: &Spec,
    version: &str,
    cli: &[(String, String)],
    epoch: u64,
) -> Result<BTreeMap<String, String>> {
    const P: &str = "org.opencontainers.image.";
    let mut labels = spec.image.labels.clone();
    let mut fill = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            labels.entry(format!("{P}{k}")).or_insert(v);
        }
    };
    fill("created", Some(rfc3339(epoch)));
    fill("version", Some(version.to_string()));
    let base = spec.base_dir();
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&base)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    fill("revision", git(&["rev-parse", "--verify", "HEAD"]));
    fill(
        "source",
        git(&["remote", "get-url", "origin"]).and_then(|u| public_git_url(&u)),
    );
    for (k, v) in cli {
        labels.insert(k.clone(), v.clone());
    }
    Ok(labels)
}

/// A remote URL as a browsable https URL without credentials, or None for
/// local paths (which would leak a folder name into the image).
fn public_git_url(url: &str) -> Option<String> {
    let url = url.trim();
    let https = if let Some(rest) = url.strip_prefix("https://") {
        // Drop `user:token@`.
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("git@") {
        let (host, path) = rest.split_once(':')?;
        format!("https://{host}/{path}")
    } else if let Some(rest) = url.strip_prefix("ssh://") {
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        format!("https://{}", rest.replacen(':', "/", 1))
    } else {
        return None;
    };
    Some(https.trim_end_matches(".git").to_string())
}

/// One written layer.
#[derive(Clone, Debug)]
pub struct BuiltLayer {
    /// Its group name (`url`, `local`, ...).
    pub name: String,
    /// Compressed blob.
    pub blob: BlobRef,
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Uncompressed size.
    pub uncompressed_size: u64,
    /// Entries in the tar.
    pub entries: usize,
}

/// One platform's image.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// Its platform.
    pub platform: Platform,
    /// Its manifest blob.
    pub manifest: BlobRef,
    /// Its layers, bottom first.
    pub layers: Vec<BuiltLayer>,
    /// Artifacts whose subject is this image (its SBOMs) and their types.
    pub referrers: Vec<(BlobRef, &'static str)>,
}

/// Header metadata for an entry the builder makes: names `root` for id 0,
/// none otherwise (the ids are what count).
pub(crate) fn meta(mode: u32, uid: u32, gid: u32, mtime: u64) -> Meta {
    let name = |id: u32| {
        if id == 0 {
            "root".to_string()
        } else {
            String::new()
        }
    };
    Meta {
        mode,
        uid,
        gid,
        uname: name(uid),
        gname: name(gid),
        mtime,
        xattrs: Default::default(),
    }
}

/// RFC 3339 UTC time for `epoch` seconds (no external date crate needed).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86400) as i64;
    let secs = epoch % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn write_image(
    spec: &Spec,
    platform: &Platform,
    groups: Vec<(String, Tree)>,
    layout: &OciLayout,
    lopts: &LayerOptions,
    progress: &(dyn Fn(String) + Sync),
    bars: &crate::progress::Progress,
    user: Option<String>,
    layer_cache: Option<&crate::layercache::LayerCache>,
) -> Result<BuiltImage> {
    let created = rfc3339(lopts.source_date_epoch);
    let mut layers = Vec::new();
    for (name, tree) in groups {
        let (info, blob) = write_one_layer(
            &name,
            &tree,
            platform,
            layout,
            lopts,
            progress,
            bars,
            layer_cache,
        )?;
        layers.push(BuiltLayer {
            name,
            blob,
            diff_id: info.diff_id,
            uncompressed_size: info.uncompressed_size,
            entries: info.entries,
        });
    }
    let config = image_config(spec, platform, &layers, user, &created)?;
    let config_blob = layout.put_json(&config)?;
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| l.blob.descriptor(lopts.compression.layer_media_type()))
        .collect();
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_blob.descriptor(MT_CONFIG))
        .layers(layer_descs)
        .build()?;
    let ann = annotations(spec);
    if !ann.is_empty() {
        manifest.set_annotations(Some(ann.into_iter().collect()));
    }
    let manifest_blob = layout.put_json(&manifest)?;
    Ok(BuiltImage {
        platform: platform.clone(),
        manifest: manifest_blob,
        layers,
        referrers: Vec::new(),
    })
}

/// One layer of `platform`: from the layer cache when it holds one with
/// the same fingerprint (checked against its digest), else written.
#[allow(clippy::too_many_arguments)]
fn write_one_layer(
    name: &str,
    tree: &Tree,
    platform: &Platform,
    layout: &OciLayout,
    lopts: &LayerOptions,
    progress: &(dyn Fn(String) + Sync),
    bars: &crate::progress::Progress,
    layer_cache: Option<&crate::layercache::LayerCache>,
) -> Result<(image_layout::LayerInfo, BlobRef)> {
    progress(format!(
        "layer {platform} {name}: {} entries, {} bytes",
        tree.len(),
        tree.content_size()
    ));
    let fp = crate::layercache::fingerprint(tree, lopts)
        .with_context(|| format!("reading layer {name} for {platform}"))?;
    if let Some(hit) = layer_cache.and_then(|c| c.get(&fp, layout)) {
        return Ok(hit);
    }
    let spinner = bars.byte_spinner("layer");
    spinner.set_message(format!("{platform} {name}"));
    let w = spinner.writer(layout.blob_writer()?);
    let (info, w) = write_layer(tree, lopts, w)
        .with_context(|| format!("writing layer {name} for {platform}"))?;
    drop(spinner);
    let blob = w.into_inner().commit()?;
    if let Some(c) = layer_cache {
        c.put(&fp, layout, &info, &blob);
    }
    Ok((info, blob))
}

/// The image configuration: the spec's runtime settings (the recipe's
/// user first), and one history entry and diff id per layer.
fn image_config(
    spec: &Spec,
    platform: &Platform,
    layers: &[BuiltLayer],
    user: Option<String>,
    created: &str,
) -> Result<image_layout::oci_spec::image::ImageConfiguration> {
    let img = &spec.image;
    let mut cfg = ConfigBuilder::default();
    if !img.env.is_empty() {
        cfg = cfg.env(img.env.clone());
    }
    if let Some(c) = &img.cmd {
        cfg = cfg.cmd(c.clone());
    }
    if let Some(e) = &img.entrypoint {
        cfg = cfg.entrypoint(e.clone());
    }
    if let Some(w) = &img.workdir {
        cfg = cfg.working_dir(w.clone());
    }
    if let Some(u) = user.as_ref().or(img.user.as_ref()) {
        cfg = cfg.user(u.clone());
    }
    if !img.labels.is_empty() {
        cfg = cfg.labels(img.labels.clone().into_iter().collect::<HashMap<_, _>>());
    }
    let cfg = cfg.build()?;
    let history = layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(created.to_string())
                .created_by(format!("netshoot-build: {} layer", l.name))
                .comment(format!("{} entries", l.entries))
                .build()
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|l| l.diff_id.to_string())
                .collect::<Vec<_>>(),
        )
        .build()?;
    let mut config = ImageConfigurationBuilder::default()
        .created(created.to_string())
        .architecture(platform.architecture.as_str())
        .os(platform.os.as_str())
        .config(cfg)
        .rootfs(rootfs)
        .history(history)
        .build()?;
    config.set_variant(platform.variant.clone());
    Ok(config)
}

/// Annotations of the index and of every manifest: the OCI labels of the
/// config (title, version, created, revision, source, ...) so registries
/// and scanners that read annotations see them, then the spec's own.
fn annotations(spec: &Spec) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = spec
        .image
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with("org.opencontainers.image."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(spec.image.annotations.clone());
    out
}

/// The distribution for Debian package URLs (`debian-13`), from the first
/// suite of the spec's first repository.
pub(crate) fn distro_id(spec: &Spec) -> String {
    let suite = spec
        .apt
        .as_ref()
        .and_then(|a| a.repository.first())
        .and_then(|r| r.suites.first())
        .cloned()
        .unwrap_or_default();
    debian_distro(&suite)
}

/// The purl distro qualifier for a Debian suite (`trixie-updates` →
/// `debian-13`).
pub(crate) fn debian_distro(suite: &str) -> String {
    let number = match suite.split('-').next().unwrap_or(suite) {
        "buster" => "10",
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        "forky" => "14",
        "duke" => "15",
        other => other,
    };
    format!("debian-{number}")
}

pub(crate) fn write_index(
    spec: &Spec,
    images: &[BuiltImage],
    layout: &OciLayout,
) -> Result<BlobRef> {
    let manifests: Vec<Descriptor> = images
        .iter()
        .map(|i| {
            let mut d = i.manifest.descriptor(MT_MANIFEST);
            d.set_platform(Some(i.platform.to_oci()));
            d
        })
        .collect();
    let mut index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()?;
    let ann = annotations(spec);
    if !ann.is_empty() {
        index.set_annotations(Some(ann.into_iter().collect()));
    }
    Ok(layout.put_json(&index)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_322_245), "2025-11-28T09:30:45Z");
    }
}
