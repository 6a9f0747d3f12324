//! `[[local]]` sources: files and folders beside the spec, laid into the
//! image with normalised modes (the checkout's umask never reaches the
//! image). Paths stay inside the spec's folder (see
//! [`Spec::resolve_inside`]); symlinks are copied as symlinks.

use super::{Context, Contribution, Source};
use crate::error::{bad_input, Result};
use crate::image::write::meta;
use crate::lockfile::Lockfile;
use crate::spec::Spec;
use crate::target::Target;
use image_layout::{Body, Entry, Node, Tree};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The `[[local]]` entries.
pub struct Local;

impl Source for Local {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn lock(&self, _: &Context, _: Option<&Lockfile>, _: &mut Lockfile) -> Result<()> {
        Ok(())
    }

    fn prepare(&self, cx: &Context, _: &Lockfile, targets: &[Target]) -> Result<Vec<Contribution>> {
        let tree = local_layer(cx.spec, cx.epoch)?;
        Ok(targets
            .iter()
            .map(|_| Contribution {
                tree: tree.clone(),
                ..Default::default()
            })
            .collect())
    }
}

/// The files of the `local` sources. Modes are normalised (0755 for
/// folders and executables, else 0644, unless the spec sets one) so the
/// checkout's umask never reaches the image.
fn local_layer(spec: &Spec, epoch: u64) -> Result<Tree> {
    let mut tree = Tree::new();
    // Files that are hard links of each other on disk stay hard links in
    // the layer (stored once), as tar would keep them.
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    for l in &spec.local {
        // Checked when the spec was loaded; again here, where it is read.
        let src = spec.resolve_inside(&format!("local {:?}", l.dest), &l.src)?;
        let md = std::fs::symlink_metadata(&src).map_err(|e| {
            bad_input(format!(
                "{}: local source {}: {e}",
                spec.path.display(),
                src.display()
            ))
        })?;
        let (uid, gid) = l.owner.unwrap_or((0, 0));
        if md.is_dir() {
            add_dir(
                &mut tree,
                &mut inodes,
                &src,
                &l.dest,
                l.mode,
                uid,
                gid,
                epoch,
                spec,
            )?;
        } else {
            add_path(
                &mut tree,
                &mut inodes,
                &src,
                &l.dest,
                l.mode,
                uid,
                gid,
                epoch,
                spec,
            )?;
        }
    }
    Ok(tree)
}

#[allow(clippy::too_many_arguments)]
fn add_dir(
    tree: &mut Tree,
    inodes: &mut HashMap<(u64, u64), String>,
    src: &Path,
    dest: &str,
    file_mode: Option<u32>,
    uid: u32,
    gid: u32,
    epoch: u64,
    spec: &Spec,
) -> Result<()> {
    tree.insert(
        dest,
        Entry {
            node: Node::Dir,
            meta: meta(0o755, uid, gid, epoch),
        },
    )
    .map_err(|e| bad_input(format!("local {}: {e}", src.display())))?;
    let mut names: Vec<_> = std::fs::read_dir(src)
        .map_err(|e| bad_input(format!("local source {}: {e}", src.display())))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad_input(format!("local source {}: {e}", src.display())))?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().to_string();
        let child_dest = format!("{}/{name}", dest.trim_end_matches('/'));
        let p = e.path();
        if std::fs::symlink_metadata(&p)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            add_dir(
                tree,
                inodes,
                &p,
                &child_dest,
                file_mode,
                uid,
                gid,
                epoch,
                spec,
            )?;
        } else {
            add_path(
                tree,
                inodes,
                &p,
                &child_dest,
                file_mode,
                uid,
                gid,
                epoch,
                spec,
            )?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn add_path(
    tree: &mut Tree,
    inodes: &mut HashMap<(u64, u64), String>,
    src: &Path,
    dest: &str,
    mode: Option<u32>,
    uid: u32,
    gid: u32,
    epoch: u64,
    spec: &Spec,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::symlink_metadata(src).map_err(|e| {
        bad_input(format!(
            "{}: local source {}: {e}",
            spec.path.display(),
            src.display()
        ))
    })?;
    let entry = if md.file_type().is_symlink() {
        let target = std::fs::read_link(src)
            .map_err(|e| bad_input(format!("local source {}: {e}", src.display())))?;
        Entry {
            node: Node::Symlink(target.to_string_lossy().to_string()),
            meta: meta(0o777, uid, gid, epoch),
        }
    } else if md.is_file() {
        use std::os::unix::fs::MetadataExt;
        let exec = md.permissions().mode() & 0o111 != 0;
        if md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = inodes.get(&key) {
                let entry = Entry {
                    node: Node::Hardlink(first.clone()),
                    meta: meta(
                        mode.unwrap_or(if exec { 0o755 } else { 0o644 }),
                        uid,
                        gid,
                        epoch,
                    ),
                };
                return tree
                    .insert(dest, entry)
                    .map_err(|e| bad_input(format!("local {}: {e}", src.display())));
            }
            if let Ok(norm) = image_layout::tree::normalize_path(dest) {
                inodes.insert(key, norm);
            }
        }
        Entry {
            node: Node::File {
                body: Body::File(Arc::new(src.to_path_buf())),
                size: md.len(),
            },
            meta: meta(
                mode.unwrap_or(if exec { 0o755 } else { 0o644 }),
                uid,
                gid,
                epoch,
            ),
        }
    } else {
        return Err(bad_input(format!(
            "local source {}: not a regular file, folder or symlink",
            src.display()
        )));
    };
    tree.insert(dest, entry)
        .map_err(|e| bad_input(format!("local {}: {e}", src.display())))
}
