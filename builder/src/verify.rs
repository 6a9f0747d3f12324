//! `netshoot-build verify`: rebuild from the lock with fresh caches and
//! compare with a layout, naming the first difference when there is one.

use crate::build::{build, BuildOptions};
use crate::error::{bad_input, verification, Result};
use image_layout::{Digest, OciLayout};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One tar entry as compared.
#[derive(Debug, PartialEq)]
struct Item {
    path: String,
    kind: String,
    mode: u32,
    owner: (u64, u64, String, String),
    mtime: u64,
    link: String,
    xattrs: BTreeMap<String, Vec<u8>>,
    content: String,
}

fn entries(layout: &OciLayout, digest: &Digest, media_type: &str) -> Result<Vec<Item>> {
    let f = std::io::BufReader::new(layout.open_blob(digest)?);
    let r: Box<dyn Read> = if media_type.ends_with("+gzip") {
        Box::new(flate2::read::GzDecoder::new(f))
    } else if media_type.ends_with("+zstd") {
        Box::new(zstd::stream::read::Decoder::new(f)?)
    } else {
        Box::new(f)
    };
    let mut ar = tar::Archive::new(r);
    let mut out = Vec::new();
    for e in ar.entries()? {
        let mut e = e?;
        let h = e.header().clone();
        let mut xattrs = BTreeMap::new();
        if let Ok(Some(ext)) = e.pax_extensions() {
            for x in ext.flatten() {
                if let (Ok(k), v) = (x.key(), x.value_bytes()) {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        xattrs.insert(name.to_string(), v.to_vec());
                    }
                }
            }
        }
        let path = e.path()?.to_string_lossy().to_string();
        let link = e
            .link_name()?
            .map(|l| l.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = e.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        out.push(Item {
            path,
            kind: format!("{:?}", h.entry_type()),
            mode: h.mode().unwrap_or(0),
            owner: (
                h.uid().unwrap_or(0),
                h.gid().unwrap_or(0),
                h.username().ok().flatten().unwrap_or("").to_string(),
                h.groupname().ok().flatten().unwrap_or("").to_string(),
            ),
            mtime: h.mtime().unwrap_or(0),
            link,
            xattrs,
            content: hex::encode(hasher.finalize()),
        });
    }
    Ok(out)
}

/// The first difference between two layers' entry lists, in words.
fn first_difference(a: &[Item], b: &[Item]) -> String {
    for (x, y) in a.iter().zip(b.iter()) {
        if x.path != y.path {
            return format!("order: {} in the layout, {} in the rebuild", x.path, y.path);
        }
        let field = if x.kind != y.kind {
            format!("type {} vs {}", x.kind, y.kind)
        } else if x.content != y.content {
            "content".to_string()
        } else if x.mode != y.mode {
            format!("mode {:o} vs {:o}", x.mode, y.mode)
        } else if x.owner != y.owner {
            format!("owner {:?} vs {:?}", x.owner, y.owner)
        } else if x.mtime != y.mtime {
            format!("mtime {} vs {}", x.mtime, y.mtime)
        } else if x.xattrs != y.xattrs {
            "xattr".to_string()
        } else if x.link != y.link {
            format!("link target {} vs {}", x.link, y.link)
        } else {
            continue;
        };
        return format!("{}: {field}", x.path);
    }
    match a.len().cmp(&b.len()) {
        std::cmp::Ordering::Greater => format!("{}: only in the layout", a[b.len()].path),
        std::cmp::Ordering::Less => format!("{}: only in the rebuild", b[a.len()].path),
        std::cmp::Ordering::Equal => "same entries; the compressed bytes differ".into(),
    }
}

/// Rebuilds `opts` (locked, fresh caches) and compares with `layout`'s
/// `tag`. Returns the report line on success; a mismatch is an error.
pub fn verify(opts: &BuildOptions, layout_dir: &Path, tag: &str) -> Result<String> {
    let layout = OciLayout::open(layout_dir).map_err(|e| bad_input(e.to_string()))?;
    let want = layout
        .resolve(Some(tag))
        .map_err(|e| bad_input(e.to_string()))?;
    // The layout itself first: a rebuild that matches the index proves
    // nothing about blobs that were damaged or deleted since.
    check_layout(&layout, layout_dir)?;
    let work = tempfile::tempdir()?;
    let fresh_cache = work.path().join("cache");
    // Downloads are content-addressed: those whose bytes still match
    // their digest are linked in (saving the network); every payload and
    // layer is derived anew.
    if let Some(user_cache) = &opts.cache {
        seed_downloads(user_cache, &fresh_cache)?;
    } else if let Ok(c) = crate::cache::Cache::open(None) {
        seed_downloads(c.root(), &fresh_cache)?;
    }
    let mut o = opts.clone();
    o.out = work.path().join("rebuild");
    o.cache = Some(fresh_cache);
    o.locked = true;
    o.quiet = true;
    o.tags = vec!["verify".to_string()];
    let r = build(&o)?;
    let got = r.index.digest.to_string();
    if got == want.digest().to_string() {
        return Ok(format!(
            "verified {}:{tag} {got}: the rebuild is identical",
            layout_dir.display()
        ));
    }
    let rebuilt = OciLayout::open(&o.out).map_err(|e| bad_input(e.to_string()))?;
    let top = rebuilt
        .resolve(r.tags.first().map(String::as_str))
        .map_err(|e| bad_input(e.to_string()))?;
    let ours: BTreeMap<String, _> = layout
        .images(&want)?
        .into_iter()
        .map(|(p, d)| (p.to_string(), d))
        .collect();
    for (p, d) in rebuilt.images(&top)? {
        let Some(theirs) = ours.get(&p.to_string()) else {
            return Err(verification(format!(
                "verify: {p} is missing from the layout"
            )));
        };
        if theirs.digest() == d.digest() {
            continue;
        }
        let a = layout.read_manifest(theirs)?;
        let b = rebuilt.read_manifest(&d)?;
        for (i, (la, lb)) in a.layers().iter().zip(b.layers().iter()).enumerate() {
            if la.digest() == lb.digest() {
                continue;
            }
            let ea = entries(
                &layout,
                &Digest::from(la.digest()),
                la.media_type().as_ref(),
            )?;
            let eb = entries(
                &rebuilt,
                &Digest::from(lb.digest()),
                lb.media_type().as_ref(),
            )?;
            return Err(verification(format!(
                "verify: {p} layer {i} differs (layout {}, rebuild {}): {}",
                la.digest(),
                lb.digest(),
                first_difference(&ea, &eb)
            )));
        }
        return Err(verification(format!(
            "verify: {p} manifest differs ({} vs {}): layer count or config",
            theirs.digest(),
            d.digest()
        )));
    }
    Err(verification(format!(
        "verify: index differs ({} vs {got})",
        want.digest()
    )))
}

/// Every blob reachable from the layout's `index.json` exists, has its
/// descriptor's size and hashes to its name; otherwise a verification
/// error naming the blobs at fault.
pub fn check_layout(layout: &OciLayout, dir: &Path) -> Result<()> {
    let problems = layout
        .check_blobs(None)
        .map_err(|e| verification(format!("{}: {e}", dir.display())))?;
    if problems.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = problems.iter().take(5).map(|p| p.to_string()).collect();
    let more = problems.len().saturating_sub(shown.len());
    Err(verification(format!(
        "{}: {} blob{} damaged or missing: {}{}",
        dir.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        shown.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    )))
}

fn seed_downloads(from: &Path, to: &Path) -> Result<()> {
    let src = from.join("blobs/sha256");
    let dst = to.join("blobs/sha256");
    std::fs::create_dir_all(&dst)?;
    let Ok(rd) = std::fs::read_dir(&src) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.len() == 64 && !name.starts_with('.') {
            // Only a blob whose bytes still hash to its name is reused.
            let Ok(f) = std::fs::File::open(e.path()) else {
                continue;
            };
            let Ok(d) = Digest::from_hex(&name) else {
                continue;
            };
            if image_layout::layout::verify_stream(std::io::BufReader::new(f), &d).is_err() {
                continue;
            }
            let target = dst.join(&name);
            if std::fs::hard_link(e.path(), &target).is_err() {
                let _ = std::fs::copy(e.path(), &target);
            }
        }
    }
    Ok(())
}
