//! Maintainer scripts' file operations applied to the in-memory root
//! filesystem, in script order, as the commands would have changed a
//! real one: each operation's file tests are decided on the tree as it is
//! when the operation comes, and what cannot be done (a missing file, an
//! unknown account) becomes a note, as the command would have failed.

use crate::error::{bad_input, Result};
use debian::fileop::{apply_mode, FileCap, FileOp, FileTest, PathTest, ScriptOp, StatOverride};
use image_layout::{Body, Entry, Meta, Node, Tree};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

/// The umask dpkg runs maintainer scripts with.
const UMASK: u32 = 0o022;

/// The bytes of the regular file at `path`, if it is one.
pub(crate) fn read_body(tree: &Tree, path: &str) -> Option<Vec<u8>> {
    match &tree.get(path)?.node {
        Node::File { body, .. } => {
            let mut v = Vec::new();
            body.open().ok()?.read_to_end(&mut v).ok()?;
            Some(v)
        }
        _ => None,
    }
}

/// Follows symlinks (inside the tree) to the entry a path names.
pub(crate) fn resolve_full(tree: &Tree, path: &str) -> Option<String> {
    let mut p = tree.resolve_parents(path).ok()?;
    for _ in 0..40 {
        match &tree.get(&p)?.node {
            Node::Symlink(t) => {
                let dir = p.rsplit_once('/').map_or("", |(d, _)| d);
                let next = if t.starts_with('/') {
                    t.clone()
                } else {
                    format!("{dir}/{t}")
                };
                p = tree.resolve_parents(&next).ok()?;
            }
            _ => return Some(p),
        }
    }
    None
}

/// As [`resolve_full`], and through a hard link to the entry holding the
/// shared inode's metadata.
fn resolve_inode(tree: &Tree, path: &str) -> Option<String> {
    let p = resolve_full(tree, path)?;
    match &tree.get(&p)?.node {
        Node::Hardlink(t) => resolve_full(tree, t),
        _ => Some(p),
    }
}

/// Name → id of passwd or group rows (`name:x:id:...`).
fn ids(tree: &Tree, file: &str) -> BTreeMap<String, u32> {
    let text = read_body(tree, file).unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.to_string();
            Some((name, f.nth(1)?.parse().ok()?))
        })
        .collect()
}

/// The tree and what applying needs beside it.
pub(crate) struct Applier<'t> {
    tree: &'t mut Tree,
    origin: &'t mut BTreeMap<String, String>,
    notes: &'t mut Vec<String>,
    /// The package whose operations are applied, for the notes.
    pkg: String,
    /// The current script's umask.
    umask: u32,
    /// Answers of the current script's file tests by (point, path, test).
    answers: BTreeMap<(usize, String, u8), bool>,
    users: BTreeMap<String, u32>,
    groups: BTreeMap<String, u32>,
}

/// Applies every package's operations, packages in the given order.
pub(crate) fn apply_all(
    tree: &mut Tree,
    origin: &mut BTreeMap<String, String>,
    actions: &[(String, Vec<ScriptOp>)],
    notes: &mut Vec<String>,
) -> Result<()> {
    let users = ids(tree, "etc/passwd");
    let groups = ids(tree, "etc/group");
    let mut a = Applier {
        tree,
        origin,
        notes,
        pkg: String::new(),
        answers: BTreeMap::new(),
        umask: UMASK,
        users,
        groups,
    };
    for (pkg, ops) in actions {
        a.pkg.clone_from(pkg);
        a.answers.clear();
        a.umask = UMASK;
        for op in ops {
            if !op.decided {
                a.note(format!(
                    "{:?}: its condition is not known statically",
                    op.op
                ));
                continue;
            }
            if op.when.iter().all(|t| a.holds(t)) {
                a.apply(&op.op)
                    .map_err(|e| bad_input(format!("package {pkg}: {e}")))?;
            }
        }
    }
    Ok(())
}

impl Applier<'_> {
    /// Whether a file test gives its expected answer: on the tree now the
    /// first time its condition is met, then as it was then.
    fn holds(&mut self, t: &PathTest) -> bool {
        let key = (t.point, t.path.clone(), t.test as u8);
        if let Some(answer) = self.answers.get(&key) {
            return *answer == t.holds;
        }
        let answer = self.test(t);
        self.answers.insert(key, answer);
        answer == t.holds
    }

    fn test(&self, t: &PathTest) -> bool {
        match t.test {
            FileTest::Symlink => self
                .tree
                .resolve_parents(&t.path)
                .ok()
                .and_then(|p| self.tree.get(&p))
                .is_some_and(|e| matches!(e.node, Node::Symlink(_))),
            test => resolve_inode(self.tree, &t.path)
                .and_then(|p| self.tree.get(&p))
                .is_some_and(|e| match test {
                    FileTest::Dir => matches!(e.node, Node::Dir),
                    FileTest::File => matches!(e.node, Node::File { .. }),
                    FileTest::Executable => e.meta.mode & 0o111 != 0,
                    _ => true,
                }),
        }
    }

    fn note(&mut self, what: String) {
        let pkg = &self.pkg;
        self.notes.push(format!(
            "{pkg}: maintainer script operation not applied: {what}"
        ));
    }

    fn apply(&mut self, op: &FileOp) -> Result<()> {
        match op {
            FileOp::Chmod { path, mode } => self.chmod(path, mode),
            FileOp::Chown { path, user, group } => {
                self.chown(path, user.as_deref(), group.as_deref())
            }
            FileOp::Mkdir {
                path,
                parents,
                mode,
            } => return self.mkdir(path, *parents, mode.as_deref()),
            FileOp::Symlink {
                target,
                link,
                force,
            } => return self.symlink(target, link, *force),
            FileOp::Rmdir { path } => self.rmdir(path),
            FileOp::Copy { src, dst, preserve } => return self.copy(src, dst, *preserve),
            FileOp::Truncate { path } => return self.truncate(path),
            FileOp::Touch { path } if resolve_full(self.tree, path).is_none() => {
                return self.truncate(path)
            }
            FileOp::Touch { .. } => {}
            FileOp::Rename { src, dst } => return self.rename(src, dst),
            FileOp::SetCap(cap) => self.setcap(cap),
            FileOp::Umask(m) => self.umask = *m,
            FileOp::StatOverride(so) => self.stat_override(so),
        }
        Ok(())
    }

    /// The entry a path names (links followed), or a note saying which
    /// command found nothing there.
    fn target(&mut self, what: &str, path: &str) -> Option<&mut Entry> {
        match resolve_inode(self.tree, path) {
            Some(p) => self.tree.get_mut(&p),
            None => {
                self.note(format!("{what} on missing {path}"));
                None
            }
        }
    }

    fn chmod(&mut self, path: &str, mode: &str) {
        let Some(e) = self.target("chmod", path) else {
            return;
        };
        let is_dir = matches!(e.node, Node::Dir);
        match apply_mode(mode, e.meta.mode, is_dir) {
            Some(m) => e.meta.mode = m,
            None => self.note(format!("chmod {mode} {path}: not a mode")),
        }
    }

    /// `chown`: as the kernel does, a new owner or group drops a file's
    /// capabilities, and set-id bits of an executable file.
    fn chown(&mut self, path: &str, user: Option<&str>, group: Option<&str>) {
        let uid = user.map(|u| (u, lookup(&self.users, u)));
        let gid = group.map(|g| (g, lookup(&self.groups, g)));
        if let Some((name, _)) = [uid, gid]
            .into_iter()
            .flatten()
            .find(|(_, id)| id.is_none())
        {
            return self.note(format!("chown on {path}: unknown account {name}"));
        }
        let Some(e) = self.target("chown", path) else {
            return;
        };
        if let Some((name, Some(id))) = uid {
            (e.meta.uid, e.meta.uname) = (id, name.to_string());
        }
        if let Some((name, Some(id))) = gid {
            (e.meta.gid, e.meta.gname) = (id, name.to_string());
        }
        if !matches!(e.node, Node::Dir) {
            e.meta.xattrs.remove("security.capability");
            if e.meta.mode & 0o111 != 0 {
                let sgid = if e.meta.mode & 0o010 != 0 { 0o2000 } else { 0 };
                e.meta.mode &= !(0o4000 | sgid);
            }
        }
    }

    fn mkdir(&mut self, path: &str, parents: bool, mode: Option<&str>) -> Result<()> {
        let at = self
            .tree
            .resolve_parents(path)
            .map_err(|e| bad_input(e.to_string()))?;
        if self.tree.get(&at).is_some() {
            return Ok(());
        }
        let parent = at.rsplit_once('/').map_or("", |(d, _)| d);
        if !parents && !parent.is_empty() && resolve_full(self.tree, parent).is_none() {
            self.note(format!("mkdir {path}: no parent folder"));
            return Ok(());
        }
        let mode = match mode {
            Some(m) => match apply_mode(m, 0o777 & !self.umask, true) {
                Some(m) => m,
                None => {
                    self.note(format!("mkdir -m {m} {path}: not a mode"));
                    return Ok(());
                }
            },
            None => 0o777 & !self.umask,
        };
        self.place(&at, Node::Dir, Meta::root(mode))
    }

    fn symlink(&mut self, target: &str, link: &str, force: bool) -> Result<()> {
        let mut at = self
            .tree
            .resolve_parents(link)
            .map_err(|e| bad_input(e.to_string()))?;
        let into_dir = resolve_full(self.tree, &at)
            .and_then(|p| self.tree.get(&p))
            .is_some_and(|e| matches!(e.node, Node::Dir));
        if into_dir {
            // `ln -s TARGET DIR` makes DIR/basename(TARGET).
            let base = target
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(target);
            at = self
                .tree
                .resolve_parents(&format!("{at}/{base}"))
                .map_err(|e| bad_input(e.to_string()))?;
        }
        match self.tree.get(&at).map(|e| &e.node) {
            Some(Node::Dir) => Ok(()),
            Some(_) if !force => Ok(()),
            _ => self.place(&at, Node::Symlink(target.to_string()), Meta::root(0o777)),
        }
    }

    fn rmdir(&mut self, path: &str) {
        let Ok(at) = self.tree.resolve_parents(path) else {
            return;
        };
        let is_dir = matches!(self.tree.get(&at).map(|e| &e.node), Some(Node::Dir));
        let prefix = format!("{at}/");
        if is_dir && !self.tree.iter().any(|(p, _)| p.starts_with(&prefix)) {
            self.tree.remove(&at);
            self.origin.remove(&at);
        } else {
            self.note(format!("rmdir {path}: not an empty folder"));
        }
    }

    fn copy(&mut self, src: &str, dst: &str, preserve: bool) -> Result<()> {
        let from = resolve_inode(self.tree, src).and_then(|p| self.tree.get(&p).cloned());
        let Some(
            from @ Entry {
                node: Node::File { .. },
                ..
            },
        ) = from
        else {
            self.note(format!("cp {src}: not a file"));
            return Ok(());
        };
        let mut at = self
            .tree
            .resolve_parents(dst)
            .map_err(|e| bad_input(e.to_string()))?;
        if let Some(p) = resolve_full(self.tree, &at) {
            if matches!(self.tree.get(&p).map(|e| &e.node), Some(Node::Dir)) {
                let base = src.rsplit('/').next().unwrap_or(src);
                at = format!("{p}/{base}");
            } else {
                at = p;
            }
        }
        let mut meta = match (preserve, self.tree.get(&at)) {
            (true, _) => from.meta.clone(),
            (false, Some(old)) => old.meta.clone(),
            (false, None) => Meta::root(from.meta.mode & 0o777 & !self.umask),
        };
        meta.xattrs.clear();
        self.place(&at, from.node, meta)
    }

    /// `mv SRC DST`: the entry and what is under it move; DST a folder
    /// (links followed) takes it inside.
    fn rename(&mut self, src: &str, dst: &str) -> Result<()> {
        let from = self
            .tree
            .resolve_parents(src)
            .map_err(|e| bad_input(e.to_string()))?;
        if self.tree.get(&from).is_none() {
            self.note(format!("mv {src}: missing"));
            return Ok(());
        }
        let mut to = self
            .tree
            .resolve_parents(dst)
            .map_err(|e| bad_input(e.to_string()))?;
        if let Some(p) = resolve_full(self.tree, &to) {
            if matches!(self.tree.get(&p).map(|e| &e.node), Some(Node::Dir)) {
                let base = from.rsplit('/').next().unwrap_or(&from);
                to = format!("{p}/{base}");
            }
        }
        let prefix = format!("{from}/");
        let moved: Vec<(String, Entry)> = self
            .tree
            .iter()
            .filter(|(p, _)| *p == from || p.starts_with(&prefix))
            .map(|(p, e)| (format!("{to}{}", &p[from.len()..]), e.clone()))
            .collect();
        self.tree.remove(&from);
        self.origin.remove(&from);
        for (p, e) in moved {
            self.place(&p, e.node, e.meta)?;
        }
        Ok(())
    }

    /// `: > FILE`: an existing file keeps its owner and mode.
    fn truncate(&mut self, path: &str) -> Result<()> {
        let at = match resolve_full(self.tree, path) {
            Some(p) => p,
            None => self
                .tree
                .resolve_parents(path)
                .map_err(|e| bad_input(e.to_string()))?,
        };
        let meta = match self.tree.get(&at) {
            Some(e) if matches!(e.node, Node::File { .. }) => e.meta.clone(),
            Some(_) => return Ok(()),
            None => Meta::root(0o666 & !self.umask),
        };
        let empty = Node::File {
            body: Body::Bytes(Arc::from(Vec::new())),
            size: 0,
        };
        self.place(&at, empty, meta)
    }

    fn setcap(&mut self, cap: &FileCap) {
        if let Some(e) = self.target("setcap", &cap.path) {
            e.meta.xattrs.insert(
                "security.capability".into(),
                debian::caps::security_capability_xattr(&cap.caps),
            );
        }
    }

    fn stat_override(&mut self, so: &StatOverride) {
        let (uid, gid) = (self.users.get(&so.user), self.groups.get(&so.group));
        let (Some(&uid), Some(&gid)) = (uid, gid) else {
            let who = format!("{}:{}", so.user, so.group);
            return self.note(format!("dpkg-statoverride names unknown {who}"));
        };
        if let Some(e) = self.target("dpkg-statoverride", &so.path) {
            e.meta.uid = uid;
            e.meta.gid = gid;
            e.meta.uname = so.user.clone();
            e.meta.gname = so.group.clone();
            e.meta.mode = so.mode & 0o7777;
        }
    }

    /// Puts a new entry at `at`; what a script makes belongs to no package.
    fn place(&mut self, at: &str, node: Node, meta: Meta) -> Result<()> {
        self.tree
            .insert(at, Entry { node, meta })
            .map_err(|e| bad_input(e.to_string()))?;
        self.origin.remove(at);
        Ok(())
    }
}

/// An account by name, or by number as chown also takes.
fn lookup(ids: &BTreeMap<String, u32>, name: &str) -> Option<u32> {
    ids.get(name).copied().or_else(|| name.parse().ok())
}
