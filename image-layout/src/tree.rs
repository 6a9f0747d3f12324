//! The in-memory model of a root filesystem: a sorted map of entries whose
//! file bodies stay where they are (in memory, in a file, or at an offset of
//! a cached file) until a layer is written.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a regular file's bytes come from.
#[derive(Clone, Debug)]
pub enum Body {
    /// Bytes held in memory (generated files, small configs).
    Bytes(Arc<[u8]>),
    /// A whole file on the host.
    File(Arc<PathBuf>),
    /// `len` bytes at `offset` of a file on the host (for example a file
    /// inside a decompressed package payload kept in a cache).
    Range {
        /// The file holding the bytes.
        path: Arc<PathBuf>,
        /// Start of the body.
        offset: u64,
        /// Length of the body.
        len: u64,
    },
}

impl Body {
    /// Opens the body for reading.
    pub fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        match self {
            Body::Bytes(b) => Ok(Box::new(&b[..])),
            Body::File(p) => Ok(Box::new(
                File::open(p.as_path()).map_err(|e| annotate(e, p))?,
            )),
            Body::Range { path, offset, len } => {
                let mut f = File::open(path.as_path()).map_err(|e| annotate(e, path))?;
                f.seek(SeekFrom::Start(*offset))?;
                Ok(Box::new(f.take(*len)))
            }
        }
    }
}

fn annotate(e: io::Error, p: &std::path::Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// What kind of filesystem object an entry is.
#[derive(Clone, Debug)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes.
    File {
        /// Where its bytes are read from.
        body: Body,
        /// Its length; checked when the layer is written.
        size: u64,
    },
    /// A symbolic link to `target` (kept verbatim).
    Symlink(String),
    /// A hard link to another entry of the same tree (a relative path).
    Hardlink(String),
}

/// Ownership, permissions, time and extended attributes of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (no type bits).
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name written in the tar header.
    pub uname: String,
    /// Group name written in the tar header.
    pub gname: String,
    /// Modification time in seconds; clamped when written.
    pub mtime: u64,
    /// Extended attributes (for example `security.capability`).
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Meta {
    /// root:root with the given mode and time 0.
    pub fn root(mode: u32) -> Self {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            mtime: 0,
            xattrs: BTreeMap::new(),
        }
    }
}

/// One path of the tree.
#[derive(Clone, Debug)]
pub struct Entry {
    /// What it is.
    pub node: Node,
    /// Its metadata.
    pub meta: Meta,
}

/// A path that cannot be placed in an image root.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The path is empty, or leaves the root through `..`.
    #[error("path {0:?} is outside the image root")]
    OutsideRoot(String),
    /// A parent of the path is not a directory in the tree.
    #[error("cannot place {path:?}: its parent {parent:?} is not a directory")]
    ParentNotDir {
        /// The path being placed.
        path: String,
        /// The ancestor that is a file or link.
        parent: String,
    },
}

/// Normalises `path` to a relative form without `.`, `..` or repeated
/// slashes (`/usr//bin/./x` → `usr/bin/x`). A path that climbs above the
/// root is refused rather than clamped, so nothing lands where its source
/// did not mean it to.
pub fn normalize_path(path: &str) -> Result<String, TreeError> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(TreeError::OutsideRoot(path.to_string()));
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(TreeError::OutsideRoot(path.to_string()));
    }
    Ok(parts.join("/"))
}

/// A root filesystem: entries by normalised relative path, kept sorted so
/// that every walk, and so every layer, has one order.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `entry` at `path`, replacing what was there (a later source
    /// wins, as a later layer would). Missing parent directories are added
    /// as root-owned 0755 directories; an existing parent that is not a
    /// directory is an error.
    pub fn insert(&mut self, path: &str, entry: Entry) -> Result<(), TreeError> {
        let path = normalize_path(path)?;
        self.ensure_parents(&path)?;
        if let (Some(old), Node::Dir) = (self.entries.get_mut(&path), &entry.node) {
            if matches!(old.node, Node::Dir) {
                // A directory listed again keeps its children; take the
                // newer metadata.
                old.meta = entry.meta;
                return Ok(());
            }
        }
        if let Some(old) = self.entries.get(&path) {
            if matches!(old.node, Node::Dir) && !matches!(entry.node, Node::Dir) {
                // Replacing a directory removes what was under it.
                let prefix = format!("{path}/");
                self.entries.retain(|k, _| !k.starts_with(&prefix));
            }
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    fn ensure_parents(&mut self, path: &str) -> Result<(), TreeError> {
        let mut idx = 0;
        while let Some(pos) = path[idx..].find('/') {
            let parent = &path[..idx + pos];
            match self.entries.get(parent) {
                Some(Entry {
                    node: Node::Dir, ..
                }) => {}
                Some(_) => {
                    return Err(TreeError::ParentNotDir {
                        path: path.to_string(),
                        parent: parent.to_string(),
                    })
                }
                None => {
                    self.entries.insert(
                        parent.to_string(),
                        Entry {
                            node: Node::Dir,
                            meta: Meta::root(0o755),
                        },
                    );
                }
            }
            idx += pos + 1;
        }
        Ok(())
    }

    /// The entry at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        normalize_path(path).ok().and_then(|p| self.entries.get(&p))
    }

    /// The entry at `path` for changing its metadata.
    pub fn get_mut(&mut self, path: &str) -> Option<&mut Entry> {
        let p = normalize_path(path).ok()?;
        self.entries.get_mut(&p)
    }

    /// Removes `path` and everything under it.
    pub fn remove(&mut self, path: &str) {
        if let Ok(p) = normalize_path(path) {
            let prefix = format!("{p}/");
            self.entries.remove(&p);
            self.entries.retain(|k, _| !k.starts_with(&prefix));
        }
    }

    /// Entries in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Resolves symbolic links among the *parents* of `path` (not the last
    /// component), as the kernel would when a package writes `bin/sh`
    /// into a tree where `bin` links to `usr/bin`. Links are followed
    /// inside the tree only; at most 40 are followed.
    pub fn resolve_parents(&self, path: &str) -> Result<String, TreeError> {
        let mut path = normalize_path(path)?;
        let mut hops = 0;
        'restart: loop {
            let mut idx = 0;
            while let Some(pos) = path[idx..].find('/') {
                let prefix = &path[..idx + pos];
                if let Some(Entry {
                    node: Node::Symlink(target),
                    ..
                }) = self.entries.get(prefix)
                {
                    hops += 1;
                    if hops > 40 {
                        return Err(TreeError::OutsideRoot(format!(
                            "{path} (too many symlinks)"
                        )));
                    }
                    let dir = prefix.rsplit_once('/').map_or("", |(d, _)| d);
                    let base = if target.starts_with('/') {
                        target.clone()
                    } else {
                        format!("{dir}/{target}")
                    };
                    path = normalize_path(&format!("{base}/{}", &path[idx + pos + 1..]))?;
                    continue 'restart;
                }
                idx += pos + 1;
            }
            return Ok(path);
        }
    }

    /// A tree holding the entries at `paths` plus all their parents, the
    /// parents with the metadata they have here (so a layer never resets
    /// `/tmp`'s sticky bit with a default directory).
    pub fn subtree<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> Tree {
        let mut out = Tree::new();
        for p in paths {
            let Some(e) = self.entries.get(p) else {
                continue;
            };
            let mut idx = 0;
            while let Some(pos) = p[idx..].find('/') {
                let parent = &p[..idx + pos];
                if !out.entries.contains_key(parent) {
                    let meta = self
                        .entries
                        .get(parent)
                        .map(|e| e.meta.clone())
                        .unwrap_or_else(|| Meta::root(0o755));
                    out.entries.insert(
                        parent.to_string(),
                        Entry {
                            node: Node::Dir,
                            meta,
                        },
                    );
                }
                idx += pos + 1;
            }
            out.entries.insert(p.to_string(), e.clone());
        }
        out
    }

    /// Total size of the regular files' bodies.
    pub fn content_size(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match e.node {
                Node::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(b: &'static [u8]) -> Entry {
        Entry {
            node: Node::File {
                body: Body::Bytes(Arc::from(b)),
                size: b.len() as u64,
            },
            meta: Meta::root(0o644),
        }
    }

    #[test]
    fn normalises_and_confines() {
        assert_eq!(normalize_path("/usr//bin/./x").unwrap(), "usr/bin/x");
        assert_eq!(normalize_path("a/b/../c").unwrap(), "a/c");
        assert!(normalize_path("../etc/passwd").is_err());
        assert!(normalize_path("a/../../b").is_err());
        assert!(normalize_path("/").is_err());
    }

    #[test]
    fn parents_are_created_and_checked() {
        let mut t = Tree::new();
        t.insert("/usr/bin/x", file(b"x")).unwrap();
        let paths: Vec<_> = t.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(paths, ["usr", "usr/bin", "usr/bin/x"]);
        let err = t.insert("usr/bin/x/y", file(b"y")).unwrap_err();
        assert!(err.to_string().contains("usr/bin/x"), "{err}");
        t.insert("usr/bin", file(b"z")).unwrap();
        assert!(t.get("usr/bin/x").is_none());
    }

    #[test]
    fn resolves_symlinked_parents_and_keeps_parent_meta() {
        let mut t = Tree::new();
        let link = |to: &str| Entry {
            node: Node::Symlink(to.into()),
            meta: Meta::root(0o777),
        };
        t.insert("usr/bin/bash", file(b"b")).unwrap();
        t.insert("bin", link("usr/bin")).unwrap();
        t.insert("lib64", link("/usr/lib64")).unwrap();
        t.insert("a/loop", link("../a/loop")).unwrap();
        assert_eq!(t.resolve_parents("/bin/sh").unwrap(), "usr/bin/sh");
        assert_eq!(t.resolve_parents("lib64/ld.so").unwrap(), "usr/lib64/ld.so");
        assert_eq!(t.resolve_parents("bin").unwrap(), "bin");
        assert!(t.resolve_parents("a/loop/x").is_err());
        let mut tmp = Meta::root(0o1777);
        tmp.uid = 0;
        t.insert(
            "tmp",
            Entry {
                node: Node::Dir,
                meta: tmp,
            },
        )
        .unwrap();
        t.insert("tmp/x", file(b"x")).unwrap();
        let sub = t.subtree(["tmp/x"]);
        assert_eq!(sub.get("tmp").unwrap().meta.mode, 0o1777);
        assert_eq!(sub.len(), 2);
    }
}
