//! `netshoot-build inspect`: what a layout holds, per platform.

use crate::error::{bad_input, Result};
use image_layout::{Digest, OciLayout};
use serde::Serialize;
use std::path::Path;

/// One layer as `inspect` reports it.
#[derive(Debug, Serialize)]
pub struct LayerReport {
    /// Compressed digest.
    pub digest: String,
    /// Media type.
    pub media_type: String,
    /// Compressed size.
    pub size: u64,
    /// Uncompressed digest from the config.
    pub diff_id: Option<String>,
    /// Uncompressed size (read by decompressing when `--sizes` is asked, else None).
    pub uncompressed_size: Option<u64>,
    /// The history line of this layer.
    pub created_by: Option<String>,
}

/// One platform image.
#[derive(Debug, Serialize)]
pub struct ImageReport {
    /// `linux/amd64`...
    pub platform: String,
    /// Manifest digest.
    pub manifest: String,
    /// Config digest.
    pub config: String,
    /// Sum of compressed layer sizes.
    pub compressed_size: u64,
    /// Sum of uncompressed layer sizes, when measured.
    pub uncompressed_size: Option<u64>,
    /// Layers, bottom first.
    pub layers: Vec<LayerReport>,
    /// The runtime config in short.
    pub config_summary: serde_json::Value,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Layout folder.
    pub layout: String,
    /// Tag inspected.
    pub tag: Option<String>,
    /// Digest of the tag's target.
    pub digest: String,
    /// Images.
    pub images: Vec<ImageReport>,
}

/// Builds the report for `tag` (or the only image) of the layout at `dir`.
pub fn inspect(dir: &Path, tag: Option<&str>, measure: bool) -> Result<Report> {
    let layout = OciLayout::open(dir).map_err(|e| bad_input(e.to_string()))?;
    let top = layout.resolve(tag).map_err(|e| bad_input(e.to_string()))?;
    let mut images = Vec::new();
    for (platform, desc) in layout.images(&top)? {
        let man = layout.read_manifest(&desc)?;
        let cfg_bytes = layout.read_blob(&Digest::from(man.config().digest()))?;
        let cfg: serde_json::Value = serde_json::from_slice(&cfg_bytes)?;
        let diff_ids: Vec<String> = cfg["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let history: Vec<String> = cfg["history"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|h| !h["empty_layer"].as_bool().unwrap_or(false))
                    .map(|h| h["created_by"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut layers = Vec::new();
        for (i, l) in man.layers().iter().enumerate() {
            let d = Digest::from(l.digest());
            let uncompressed_size = if measure {
                Some(uncompressed_len(&layout, &d, l.media_type().as_ref())?)
            } else {
                None
            };
            layers.push(LayerReport {
                digest: d.to_string(),
                media_type: l.media_type().to_string(),
                size: l.size(),
                diff_id: diff_ids.get(i).cloned(),
                uncompressed_size,
                created_by: history.get(i).cloned(),
            });
        }
        let c = &cfg["config"];
        images.push(ImageReport {
            platform: platform.to_string(),
            manifest: desc.digest().to_string(),
            config: man.config().digest().to_string(),
            compressed_size: layers.iter().map(|l| l.size).sum(),
            uncompressed_size: if measure {
                Some(layers.iter().filter_map(|l| l.uncompressed_size).sum())
            } else {
                None
            },
            layers,
            config_summary: serde_json::json!({
                "created": cfg["created"],
                "entrypoint": c["Entrypoint"],
                "cmd": c["Cmd"],
                "env": c["Env"],
                "workdir": c["WorkingDir"],
                "user": c["User"],
                "labels": c["Labels"],
            }),
        });
    }
    Ok(Report {
        layout: dir.display().to_string(),
        tag: tag.map(str::to_string),
        digest: top.digest().to_string(),
        images,
    })
}

fn uncompressed_len(layout: &OciLayout, d: &Digest, media_type: &str) -> Result<u64> {
    let f = std::io::BufReader::new(layout.open_blob(d)?);
    let mut r: Box<dyn std::io::Read> = if media_type.ends_with("+gzip") {
        Box::new(flate2::read::GzDecoder::new(f))
    } else if media_type.ends_with("+zstd") {
        Box::new(zstd::stream::read::Decoder::new(f)?)
    } else {
        Box::new(f)
    };
    Ok(std::io::copy(&mut r, &mut std::io::sink())?)
}

/// Human units (`12.3 MB`), decimal like registries show.
pub fn human(n: u64) -> String {
    scaled(n, 1000, &["kB", "MB", "GB"])
}

/// Binary human units (`0 B`, `1023 B`, `1.5 KiB`, `210.3 MiB`).
pub fn human_binary(n: u64) -> String {
    scaled(n, 1024, &["KiB", "MiB", "GiB", "TiB"])
}

/// `n` bytes, below `base` as is, else in the largest of `units` (each
/// `base` times the one before) that keeps the number at or above 1.
fn scaled(n: u64, base: u64, units: &[&str]) -> String {
    if n < base {
        return format!("{n} B");
    }
    let base = base as f64;
    let mut v = n as f64 / base;
    let mut u = 0;
    while v >= base && u + 1 < units.len() {
        v /= base;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

/// Prints the report for people.
pub fn print_text(r: &Report) {
    println!("{} {}", r.layout, r.digest);
    for i in &r.images {
        let unc = i
            .uncompressed_size
            .map(|u| format!(", {} unpacked", human(u)))
            .unwrap_or_default();
        println!(
            "{}  manifest {}  {} layers, {} compressed{unc}",
            i.platform,
            i.manifest,
            i.layers.len(),
            human(i.compressed_size)
        );
        for l in &i.layers {
            let unc = l
                .uncompressed_size
                .map(|u| format!(" / {}", human(u)))
                .unwrap_or_default();
            println!(
                "  {}  {:>10}{unc}  {}",
                l.digest,
                human(l.size),
                l.created_by.as_deref().unwrap_or("")
            );
        }
        let c = &i.config_summary;
        println!(
            "  config: cmd={} entrypoint={} workdir={} user={}",
            c["cmd"], c["entrypoint"], c["workdir"], c["user"]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{human, human_binary};

    #[test]
    fn sizes_for_people() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1000), "1.0 kB");
        assert_eq!(human(12_345_678), "12.3 MB");
        assert_eq!(human(5_000_000_000_000), "5000.0 GB");
        assert_eq!(human_binary(1023), "1023 B");
        assert_eq!(human_binary(1536), "1.5 KiB");
        assert_eq!(human_binary(3 << 40), "3.0 TiB");
        assert_eq!(human_binary(u64::MAX), "16777216.0 TiB");
    }
}
