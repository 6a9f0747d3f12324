//! Image variants applied to the assembled root filesystem: another user
//! (with its account and home) and file capabilities, so a non-root
//! container can still capture when the runtime grants the capability.
//! Programs that need a capability's effective bit are guarded: see
//! `guard.rs` for the launcher that takes their place.

use crate::error::{bad_input, Result};
use crate::spec::{DirSpec, VariantSpec, GUARDED_DIR};
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

/// Applies `v` (named `name`) to `tree`: account, home, capabilities and
/// guarded programs. A capability's file may also be in one of `extra`
/// (compiled or downloaded tools laid over the tree).
pub fn apply(
    tree: &mut Tree,
    name: &str,
    v: &VariantSpec,
    epoch: u64,
    extra: &mut [&mut Tree],
) -> Result<()> {
    add_account(tree, v, epoch)?;
    add_home(tree, name, v, epoch)?;
    for (path, text) in &v.capabilities {
        let (t, at) = locate(tree, extra, name, path)?;
        set_capabilities(t, &at, name, path, text)?;
    }
    for (path, text) in &v.guarded {
        if crate::rootfs::resolve_full(tree, "bin/sh").is_none() {
            return Err(bad_input(format!(
                "variant {name}: guarded {path} needs /bin/sh in the image for its launcher"
            )));
        }
        let (t, at) = locate(tree, extra, name, path)?;
        guard(t, &at, name, path, text, epoch)?;
    }
    for t in std::iter::once(&*tree).chain(extra.iter().map(|t| &**t)) {
        refuse_effective_bits(t, name)?;
    }
    Ok(())
}

/// A file left with an effective capability bit (a package's postinst
/// `setcap`, or a tool laid over the tree) would not start where the
/// runtime withholds the capability: the variant must say how it gets it.
fn refuse_effective_bits(tree: &Tree, name: &str) -> Result<()> {
    let guarded = image_layout::tree::normalize_path(GUARDED_DIR).unwrap_or_default();
    for (path, e) in tree.iter() {
        let Some(x) = e.meta.xattrs.get("security.capability") else {
            continue;
        };
        // The first field (magic and flags, little-endian) has the
        // effective bit at 0x1 (VFS_CAP_FLAGS_EFFECTIVE).
        let effective = x.first().is_some_and(|b| b & 1 != 0);
        if effective && !path.starts_with(&format!("{guarded}/")) {
            return Err(bad_input(format!(
                "variant {name}: /{path} has a capability with the effective bit (from its package), so it would not start where the runtime does not grant it: list it under [variant.{name}.capabilities] without `e` if it raises the capability itself, or under [variant.{name}.guarded]"
            )));
        }
    }
    Ok(())
}

/// The user's passwd and shadow lines, and its group's, unless the ids
/// are taken already.
fn add_account(tree: &mut Tree, v: &VariantSpec, epoch: u64) -> Result<()> {
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
    Ok(())
}

fn add_home(tree: &mut Tree, name: &str, v: &VariantSpec, epoch: u64) -> Result<()> {
    let (uid, gid) = v.user;
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
    .map_err(|e| bad_input(format!("variant {name}: home: {e}")))
}

/// The tree holding the file `path` names (links followed), and its path
/// there: the base tree first, then `extra` in order.
fn locate<'t>(
    tree: &'t mut Tree,
    extra: &'t mut [&mut Tree],
    name: &str,
    path: &str,
) -> Result<(&'t mut Tree, String)> {
    for t in std::iter::once(tree).chain(extra.iter_mut().map(|t| &mut **t)) {
        if let Some(p) = crate::rootfs::resolve_full(t, path) {
            if matches!(t.get(&p).map(|e| &e.node), Some(Node::File { .. })) {
                return Ok((t, p));
            }
        }
    }
    Err(bad_input(format!(
        "variant {name}: capabilities for {path}, which is not a file in the image"
    )))
}

fn set_capabilities(tree: &mut Tree, at: &str, name: &str, path: &str, text: &str) -> Result<()> {
    let caps = debian::caps::parse_capabilities(text)
        .map_err(|e| bad_input(format!("variant {name}: {path}: {e}")))?;
    let xattr = debian::caps::security_capability_xattr(&caps);
    if let Some(e) = tree.get_mut(at) {
        e.meta.xattrs.insert("security.capability".into(), xattr);
    }
    Ok(())
}

/// Moves the program at `at` (named `path` in the spec) to
/// [`GUARDED_DIR`] with the capabilities `text`, and puts a launcher in its
/// place; hard links to it then name the launcher, so they start too.
fn guard(tree: &mut Tree, at: &str, name: &str, path: &str, text: &str, epoch: u64) -> Result<()> {
    let who = format!("variant {name}: guarded {path}");
    let caps =
        debian::caps::parse_capabilities(text).map_err(|e| bad_input(format!("{who}: {e}")))?;
    let body = crate::rootfs::read_body(tree, at)
        .ok_or_else(|| bad_input(format!("{who}: cannot read it")))?;
    let loader = crate::elf::interpreter(&body).map_err(|e| bad_input(format!("{who}: {e}")))?;
    let file = at.rsplit('/').next().unwrap_or(at);
    let real = format!("{GUARDED_DIR}/{file}");
    let mut entry = tree.get(at).cloned().expect("located above");
    entry.meta.xattrs.insert(
        "security.capability".into(),
        debian::caps::security_capability_xattr(&caps),
    );
    tree.insert(&real, entry)
        .map_err(|e| bad_input(format!("{who}: {e}")))?;
    let script = crate::guard::launcher(file, &real, &caps, loader.as_deref());
    let mut meta = Meta::root(0o755);
    meta.mtime = epoch;
    let data: Arc<[u8]> = Arc::from(script.into_bytes());
    tree.insert(
        at,
        Entry {
            node: Node::File {
                size: data.len() as u64,
                body: Body::Bytes(data),
            },
            meta,
        },
    )
    .map_err(|e| bad_input(format!("{who}: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn file(data: Vec<u8>, caps: Option<&str>) -> Entry {
        let mut meta = Meta::root(0o755);
        if let Some(c) = caps {
            let set = debian::caps::parse_capabilities(c).unwrap();
            meta.xattrs.insert(
                "security.capability".into(),
                debian::caps::security_capability_xattr(&set),
            );
        }
        Entry {
            node: Node::File {
                size: data.len() as u64,
                body: Body::Bytes(Arc::from(data)),
            },
            meta,
        }
    }

    /// A tree with a shell, a program a package gave `=ep` (the host's
    /// `env`, a real dynamic ELF) and a hard link to it.
    fn tree() -> Tree {
        let mut t = Tree::new();
        t.insert("bin/sh", file(b"#!".to_vec(), None)).unwrap();
        let elf = std::fs::read("/usr/bin/env").unwrap();
        t.insert("usr/bin/fping", file(elf, Some("cap_net_raw=ep")))
            .unwrap();
        t.insert(
            "usr/bin/fping6",
            Entry {
                node: Node::Hardlink("usr/bin/fping".into()),
                meta: Meta::root(0o755),
            },
        )
        .unwrap();
        t
    }

    fn variant(guarded: &[(&str, &str)]) -> VariantSpec {
        VariantSpec {
            tag_suffix: "-nonroot".into(),
            user: (65532, 65532),
            username: "nonroot".into(),
            home: "/home/nonroot".into(),
            capabilities: BTreeMap::new(),
            guarded: guarded
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect(),
        }
    }

    #[test]
    fn an_unguarded_effective_bit_is_refused_by_name() {
        let e = apply(&mut tree(), "nonroot", &variant(&[]), 0, &mut [])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/usr/bin/fping") && e.contains("guarded"), "{e}");
    }

    #[test]
    fn a_guarded_program_moves_behind_its_launcher() {
        let mut t = tree();
        let v = variant(&[("/usr/bin/fping", "cap_net_raw=ep")]);
        apply(&mut t, "nonroot", &v, 0, &mut []).unwrap();
        let launcher =
            String::from_utf8(crate::rootfs::read_body(&t, "usr/bin/fping").unwrap()).unwrap();
        assert!(
            launcher.contains("exec /usr/libexec/netshoot/guarded/fping \"$@\""),
            "{launcher}"
        );
        assert!(t.get("usr/bin/fping").unwrap().meta.xattrs.is_empty());
        let real = t.get("usr/libexec/netshoot/guarded/fping").unwrap();
        assert_eq!(real.meta.xattrs["security.capability"][0] & 1, 1);
        assert!(matches!(
            &t.get("usr/bin/fping6").unwrap().node,
            Node::Hardlink(to) if to == "usr/bin/fping"
        ));
    }
}
