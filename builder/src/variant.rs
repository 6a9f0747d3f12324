//! Image variants applied to the assembled root filesystem: another user
//! (with its account and home) and file capabilities, so a non-root
//! container can still capture when the runtime grants the capability.

use crate::error::{bad_input, Result};
use crate::spec::{DirSpec, VariantSpec};
use image_layout::{Body, Entry, Meta, Node, Tree};
use std::sync::Arc;

fn read(tree: &Tree, path: &str) -> String {
    crate::rootfs::read_body(tree, path)
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .unwrap_or_default()
}

fn write(tree: &mut Tree, path: &str, text: String, mode: u32) -> Result<()> {
    let meta = tree
        .get(path)
        .map(|e| e.meta.clone())
        .unwrap_or_else(|| Meta::root(mode));
    let data: Vec<u8> = text.into_bytes();
    tree.insert(
        path,
        Entry {
            node: Node::File {
                size: data.len() as u64,
                body: Body::Bytes(Arc::from(data)),
            },
            meta,
        },
    )
    .map_err(|e| bad_input(e.to_string()))
}

/// Applies `v` (named `name`) to `tree`: account, home, capabilities. A
/// capability's file may also be in one of `extra` (compiled or
/// downloaded tools laid over the tree).
pub fn apply(
    tree: &mut Tree,
    name: &str,
    v: &VariantSpec,
    epoch: u64,
    extra: &mut [&mut Tree],
) -> Result<()> {
    let (uid, gid) = v.user;
    let mut passwd = read(tree, "etc/passwd");
    if !passwd
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&uid.to_string()))
    {
        passwd.push_str(&format!(
            "{}:x:{uid}:{gid}:{}:{}:/bin/bash\n",
            v.username, v.username, v.home
        ));
        write(tree, "etc/passwd", passwd, 0o644)?;
        let mut shadow = read(tree, "etc/shadow");
        shadow.push_str(&format!(
            "{}:*:{}:0:99999:7:::\n",
            v.username,
            epoch / 86400
        ));
        write(tree, "etc/shadow", shadow, 0o640)?;
    }
    let mut group = read(tree, "etc/group");
    if !group
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&gid.to_string()))
    {
        group.push_str(&format!("{}:x:{gid}:\n", v.username));
        write(tree, "etc/group", group, 0o644)?;
        let mut gshadow = read(tree, "etc/gshadow");
        gshadow.push_str(&format!("{}:*::\n", v.username));
        write(tree, "etc/gshadow", gshadow, 0o640)?;
    }
    let mut home = Meta::root(0o755);
    home.uid = uid;
    home.gid = gid;
    home.uname = v.username.clone();
    home.gname = v.username.clone();
    home.mtime = epoch;
    tree.insert(
        &v.home,
        Entry {
            node: Node::Dir,
            meta: home,
        },
    )
    .map_err(|e| bad_input(format!("variant {name}: home: {e}")))?;
    for (path, text) in &v.capabilities {
        let caps = debian::caps::parse_capabilities(text)
            .map_err(|e| bad_input(format!("variant {name}: {path}: {e}")))?;
        let xattr = debian::caps::security_capability_xattr(&caps);
        let mut set = false;
        for t in std::iter::once(&mut *tree).chain(extra.iter_mut().map(|t| &mut **t)) {
            if let Some(p) = crate::rootfs::resolve_full(t, path) {
                if let Some(e) = t.get_mut(&p) {
                    e.meta
                        .xattrs
                        .insert("security.capability".into(), xattr.clone());
                    set = true;
                    break;
                }
            }
        }
        if !set {
            return Err(bad_input(format!(
                "variant {name}: capabilities for {path}, which is not in the image"
            )));
        }
    }
    Ok(())
}

/// Sets the mode and owner of the spec's `[[dir]]` folders, creating those
/// that are missing (their parents must exist).
pub fn apply_dirs(tree: &mut Tree, dirs: &[DirSpec], epoch: u64) -> Result<()> {
    for d in dirs {
        let (uid, gid) = d.owner.unwrap_or((0, 0));
        let mode = d.mode.unwrap_or(0o755);
        let path = image_layout::tree::normalize_path(&d.path)
            .map_err(|e| bad_input(format!("dir {:?}: {e}", d.path)))?;
        match tree.get_mut(&path) {
            Some(e) if matches!(e.node, Node::Dir) => {
                // The folder keeps its mtime and xattrs.
                let m = crate::image::write::meta(mode, uid, gid, e.meta.mtime);
                e.meta = Meta {
                    xattrs: std::mem::take(&mut e.meta.xattrs),
                    ..m
                };
            }
            Some(_) => {
                return Err(bad_input(format!(
                    "dir {:?}: the image has a file there, not a folder",
                    d.path
                )))
            }
            None => {
                tree.insert(
                    &path,
                    Entry {
                        node: Node::Dir,
                        meta: crate::image::write::meta(mode, uid, gid, epoch),
                    },
                )
                .map_err(|e| bad_input(format!("dir {:?}: {e}", d.path)))?;
            }
        }
    }
    Ok(())
}
