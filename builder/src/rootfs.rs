//! A working Debian system without running maintainer scripts: package
//! payloads placed into the in-memory tree, then what dpkg and the
//! scripts would have left generated in code: the dpkg database,
//! update-alternatives links, accounts, file capabilities, stat
//! overrides and the CA bundle.

use crate::apt::{Payload, PayloadEntry, DEFAULT_EXCLUDE, DEFAULT_INCLUDE};
use crate::error::{bad_input, Result};
use crate::lockfile::LockedPackage;
use crate::spec::AptSpec;
use debian::maintscript::{Alternative, FileOp, ScriptActions, ScriptOp, SystemUser};
use globset::{Glob, GlobSet, GlobSetBuilder};
use image_layout::{Body, Entry, Meta, Node, Tree};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The assembled root filesystem and which package each path came from
/// (generated files have no entry), for layering.
pub struct Assembled {
    /// The tree.
    pub tree: Tree,
    /// Path → package name.
    pub origin: BTreeMap<String, String>,
    /// Warnings for the log (script calls not understood, skipped links).
    pub notes: Vec<String>,
}

fn globs(list: &[String], what: &str) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for g in list {
        // dpkg's path-exclude uses fnmatch without FNM_PATHNAME: `*`
        // crosses `/`, which is globset's default.
        b.add(Glob::new(g).map_err(|e| bad_input(format!("apt.{what}: {g:?}: {e}")))?);
    }
    b.build().map_err(|e| bad_input(format!("apt.{what}: {e}")))
}

fn gen_meta(mode: u32) -> Meta {
    Meta::root(mode)
}

fn gen_file(data: impl Into<Vec<u8>>, mode: u32) -> Entry {
    let data: Vec<u8> = data.into();
    Entry {
        node: Node::File {
            size: data.len() as u64,
            body: Body::Bytes(Arc::from(data)),
        },
        meta: gen_meta(mode),
    }
}

fn symlink(target: &str) -> Entry {
    Entry {
        node: Node::Symlink(target.to_string()),
        meta: gen_meta(0o777),
    }
}

pub(crate) use crate::fileops::{read_body, resolve_full};

/// Places every package's files and generates the system files.
pub fn assemble(
    pkgs: &[(LockedPackage, Payload)],
    apt: &AptSpec,
    arch: &str,
    epoch: u64,
) -> Result<Assembled> {
    let filter = PathFilter::of(apt)?;
    let mut asm = Assembled {
        tree: Tree::new(),
        origin: BTreeMap::new(),
        notes: Vec::new(),
    };
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();
    for (lp, pl) in pkgs {
        let listed = place_payload(&mut asm, lp, pl, &filter)?;
        lists.push((lp.name.clone(), listed));
    }
    let (generated, actions) = dpkg_database(&asm.tree, pkgs, &lists, arch, &mut asm.notes)?;
    generated.apply(&mut asm)?;
    alternatives(&mut asm.tree, &mut asm.origin, &actions, &mut asm.notes)?;
    accounts(&mut asm.tree, &mut asm.origin, &actions, epoch)?;
    let ops: Vec<(String, Vec<ScriptOp>)> = actions
        .into_iter()
        .map(|(pkg, a)| (pkg, a.file_ops))
        .collect();
    crate::fileops::apply_all(&mut asm.tree, &mut asm.origin, &ops, &mut asm.notes)?;
    ca_certificates(&mut asm.tree, &mut asm.origin)?;
    Ok(asm)
}

/// The spec's `path_exclude` / `path_include` globs (dpkg's defaults when
/// absent), so an image leaves out docs and locales as a dpkg configured
/// with the same `path-exclude` lines would.
struct PathFilter {
    exclude: GlobSet,
    include: GlobSet,
}

impl PathFilter {
    /// Compiled once per build, so a bad glob fails before anything is
    /// placed, naming the spec key.
    fn of(apt: &AptSpec) -> Result<PathFilter> {
        let exclude: Vec<String> = apt
            .path_exclude
            .clone()
            .unwrap_or_else(|| DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect());
        let include: Vec<String> = apt
            .path_include
            .clone()
            .unwrap_or_else(|| DEFAULT_INCLUDE.iter().map(|s| s.to_string()).collect());
        Ok(PathFilter {
            exclude: globs(&exclude, "path_exclude")?,
            include: globs(&include, "path_include")?,
        })
    }

    /// Whether dpkg would unpack `abs` (an absolute path): an exclusion
    /// wins unless an inclusion names the path again.
    fn keeps(&self, abs: &str) -> bool {
        !self.exclude.is_match(abs) || self.include.is_match(abs)
    }
}

/// A package's path error, named by package and version so the user knows
/// which `.deb` to look at.
fn in_package(lp: &LockedPackage, err: impl std::fmt::Display) -> anyhow::Error {
    bad_input(format!("package {} {}: {err}", lp.name, lp.version))
}

/// Places one package's data entries (those the path filter keeps) into
/// the tree, first package winning the origin of a path, and returns the
/// absolute paths dpkg would list in its `.list` file, `/.` first.
fn place_payload(
    asm: &mut Assembled,
    lp: &LockedPackage,
    pl: &Payload,
    filter: &PathFilter,
) -> Result<Vec<String>> {
    let tar = Arc::new(pl.data_tar.clone());
    let mut listed = vec!["/.".to_string()];
    for e in &pl.entries {
        let abs = format!("/{}", e.path);
        if !filter.keeps(&abs) {
            continue;
        }
        let at = asm
            .tree
            .resolve_parents(&e.path)
            .map_err(|err| in_package(lp, err))?;
        if let Some(node) = payload_node(&asm.tree, lp, &tar, e, &at)? {
            let meta = payload_meta(e);
            asm.tree
                .insert(&at, Entry { node, meta })
                .map_err(|err| in_package(lp, err))?;
            asm.origin.entry(at).or_insert_with(|| lp.name.clone());
        }
        listed.push(abs);
    }
    Ok(listed)
}

/// The owner, mode and time the `.deb` gives an entry, kept as dpkg
/// would unpack them.
fn payload_meta(e: &PayloadEntry) -> Meta {
    Meta {
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        uname: e.uname.clone(),
        gname: e.gname.clone(),
        mtime: e.mtime,
        xattrs: Default::default(),
    }
}

/// The node for one data entry, its file body read lazily from the
/// package's data tar; `None` for a directory the tree already has as a
/// symlink (the merged-/usr links), which stays a symlink as dpkg leaves it.
fn payload_node(
    tree: &Tree,
    lp: &LockedPackage,
    tar: &Arc<std::path::PathBuf>,
    e: &PayloadEntry,
    at: &str,
) -> Result<Option<Node>> {
    Ok(Some(match e.kind {
        'f' => Node::File {
            body: Body::Range {
                path: tar.clone(),
                offset: e.offset,
                len: e.size,
            },
            size: e.size,
        },
        'd' => {
            if let Some(Entry {
                node: Node::Symlink(_),
                ..
            }) = tree.get(at)
            {
                return Ok(None);
            }
            Node::Dir
        }
        'l' => Node::Symlink(e.target.clone()),
        'h' => Node::Hardlink(
            tree.resolve_parents(&e.target)
                .map_err(|err| in_package(lp, err))?,
        ),
        other => {
            return Err(bad_input(format!(
                "package {}: cached payload has unknown entry kind {other:?}; clear the cache",
                lp.name
            )))
        }
    }))
}

/// Files generated over the placed packages, collected first and applied
/// together so the dpkg database is written from the packages as placed.
/// A package's own dpkg info files belong to it (so they sit in its layer
/// and change only with it); the rest has no owner.
#[derive(Default)]
struct Generated {
    /// Path → entry and owning package; a later entry replaces an earlier.
    files: BTreeMap<String, (Entry, Option<String>)>,
}

impl Generated {
    /// Records `e` at `path` (leading `/` dropped, as the tree keys paths),
    /// owned by `owner`'s layer or, for `None`, by none.
    fn put(&mut self, path: &str, e: Entry, owner: Option<&str>) {
        self.files.insert(
            path.trim_start_matches('/').to_string(),
            (e, owner.map(str::to_string)),
        );
    }

    /// Writes everything into the tree, replacing any package file at the
    /// same path, so the steps after it (alternatives, accounts) see it.
    fn apply(self, asm: &mut Assembled) -> Result<()> {
        for (p, (e, owner)) in self.files {
            asm.tree
                .insert(&p, e)
                .map_err(|e| bad_input(e.to_string()))?;
            match owner {
                Some(o) => asm.origin.insert(p, o),
                None => asm.origin.remove(&p),
            };
        }
        Ok(())
    }
}

/// The script actions of every package, by package name, in the order the
/// database lists the packages: the steps after it apply them in that order.
type Actions = Vec<(String, ScriptActions)>;

/// What dpkg would have recorded for the placed packages: status, per
/// package info files and the database skeleton, plus what their
/// maintainer scripts would have done, read from the scripts. Packages go
/// in name and architecture order, as dpkg sorts its status file.
fn dpkg_database(
    tree: &Tree,
    pkgs: &[(LockedPackage, Payload)],
    lists: &[(String, Vec<String>)],
    arch: &str,
    notes: &mut Vec<String>,
) -> Result<(Generated, Actions)> {
    let mut generated = Generated::default();
    let mut status = String::new();
    let mut sorted: Vec<&(LockedPackage, Payload)> = pkgs.iter().collect();
    sorted.sort_by(|a, b| (&a.0.name, &a.0.architecture).cmp(&(&b.0.name, &b.0.architecture)));
    let mut actions: Actions = Vec::new();
    for (lp, pl) in sorted {
        let (para, info_name) = control_paragraph(tree, lp, pl)?;
        status.push_str(&status_entry(&para));
        status.push('\n');
        // Looked up by name alone: two architectures of one Multi-Arch:
        // same package both get the list of the one placed first.
        let listed = lists
            .iter()
            .find(|(n, _)| n == &lp.name)
            .map(|(_, l)| l.clone())
            .unwrap_or_default();
        info_files(&mut generated, lp, pl, &info_name, &listed);
        script_actions(lp, pl, notes, &mut actions);
    }
    database_skeleton(&mut generated, status, arch);
    Ok((generated, actions))
}

/// The package's control paragraph with the `Conffiles` field dpkg adds,
/// and the name of its info files (`name:arch` for `Multi-Arch: same`,
/// since several architectures of it may be installed together).
fn control_paragraph(
    tree: &Tree,
    lp: &LockedPackage,
    pl: &Payload,
) -> Result<(debian::control::Paragraph, String)> {
    let mut para = debian::control::parse_paragraphs(&pl.control)
        .ok()
        .and_then(|v| v.into_iter().next())
        .ok_or_else(|| bad_input(format!("package {}: unreadable control file", lp.name)))?;
    let multi_same = para
        .get("Multi-Arch")
        .is_some_and(|m| m.eq_ignore_ascii_case("same"));
    let info_name = if multi_same {
        format!("{}:{}", lp.name, lp.architecture)
    } else {
        lp.name.clone()
    };
    if !pl.conffiles.is_empty() {
        para.set("Conffiles", conffiles_field(tree, pl));
    }
    Ok((para, info_name))
}

/// The `Conffiles` field's value: each conffile with its md5, so dpkg can
/// tell a conffile edited later from the one shipped. md5sums usually
/// leave conffiles out, so the shipped file is hashed; one not shipped
/// (excluded or missing) gets dpkg's `newconffile`.
fn conffiles_field(tree: &Tree, pl: &Payload) -> String {
    let md5: BTreeMap<&str, &str> = pl
        .md5sums
        .iter()
        .map(|(p, m)| (p.as_str(), m.as_str()))
        .collect();
    let mut cf = String::new();
    for c in &pl.conffiles {
        let sum = match md5.get(c.trim_start_matches('/')) {
            Some(s) => s.to_string(),
            None => match tree
                .resolve_parents(c)
                .ok()
                .and_then(|p| read_body(tree, &p))
            {
                Some(body) => {
                    use md5::Digest as _;
                    hex::encode(md5::Md5::digest(&body))
                }
                None => "newconffile".to_string(),
            },
        };
        cf.push_str(&format!("\n{c} {sum}"));
    }
    cf
}

/// The package's status paragraph: its control fields with `Status` right
/// after `Package`, where dpkg writes it.
fn status_entry(para: &debian::control::Paragraph) -> String {
    let mut out = debian::control::Paragraph::default();
    for (k, v) in para.fields() {
        out.set(k, v);
        if k.eq_ignore_ascii_case("Package") {
            out.set("Status", "install ok installed");
        }
    }
    out.to_string()
}

/// The package's `.list`, `.md5sums` and `.conffiles` under
/// `var/lib/dpkg/info`, owned by it, so `dpkg -L` and `dpkg --verify` work
/// in the image. md5sums of paths the filter left out are dropped, so
/// verification does not report them missing.
fn info_files(
    generated: &mut Generated,
    lp: &LockedPackage,
    pl: &Payload,
    info_name: &str,
    listed: &[String],
) {
    let own = Some(lp.name.as_str());
    let mut list = listed.join("\n");
    list.push('\n');
    generated.put(
        &format!("var/lib/dpkg/info/{info_name}.list"),
        gen_file(list, 0o644),
        own,
    );
    let kept: BTreeSet<&str> = listed.iter().map(|s| s.trim_start_matches('/')).collect();
    let mut sums = String::new();
    for (p, m) in &pl.md5sums {
        if kept.contains(p.as_str()) {
            sums.push_str(&format!("{m}  {p}\n"));
        }
    }
    if !sums.is_empty() {
        generated.put(
            &format!("var/lib/dpkg/info/{info_name}.md5sums"),
            gen_file(sums, 0o644),
            own,
        );
    }
    if !pl.conffiles.is_empty() {
        let mut c = pl.conffiles.join("\n");
        c.push('\n');
        generated.put(
            &format!("var/lib/dpkg/info/{info_name}.conffiles"),
            gen_file(c, 0o644),
            own,
        );
    }
}

/// What the package's preinst and postinst would do, read statically
/// instead of run; calls the reading cannot apply go to the notes.
fn script_actions(
    lp: &LockedPackage,
    pl: &Payload,
    notes: &mut Vec<String>,
    actions: &mut Actions,
) {
    // A fresh install: `preinst install`, then `postinst configure` with
    // no previously configured version.
    let runs: [(&Option<String>, &[&str]); 2] = [
        (&pl.preinst, &["install"]),
        (&pl.postinst, &["configure", ""]),
    ];
    for (script, args) in runs {
        let Some(script) = script else { continue };
        let mut a = debian::maintscript::analyze_with_args(&lp.name, script, args);
        // A script that asks debconf decides its setcap/statoverride
        // calls on the answer, and the static reading cannot see which
        // branch runs. Leave them out: that is what the default answer
        // gives for iproute2 and wireshark-common (no capabilities),
        // and a capability an image needs is granted by the spec.
        if script.contains("db_get") && (!a.capabilities.is_empty() || !a.stat_overrides.is_empty())
        {
            notes.push(format!(
                "{}: setcap/dpkg-statoverride behind a debconf question not applied (debconf default)",
                lp.name
            ));
            a.capabilities.clear();
            a.stat_overrides.clear();
            a.file_ops
                .retain(|o| !matches!(o.op, FileOp::SetCap(_) | FileOp::StatOverride(_)));
        }
        for u in &a.unresolved {
            notes.push(format!(
                "{}: maintainer script call not applied: {u}",
                lp.name
            ));
        }
        actions.push((lp.name.clone(), a));
    }
}

/// The status file and the rest of dpkg's administrative folder, owned by
/// no package, so dpkg and apt in the image find a database they can read.
fn database_skeleton(generated: &mut Generated, status: String, arch: &str) {
    let mut put = |path: &str, e: Entry| generated.put(path, e, None);
    put("var/lib/dpkg/status", gen_file(status, 0o644));
    put("var/lib/dpkg/available", gen_file(Vec::new(), 0o644));
    // Format 1: info files of Multi-Arch: same packages carry `:arch`.
    put("var/lib/dpkg/info/format", gen_file("1\n", 0o644));
    put("var/lib/dpkg/arch", gen_file(format!("{arch}\n"), 0o644));
    for d in [
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/lib/dpkg/alternatives",
    ] {
        put(
            d,
            Entry {
                node: Node::Dir,
                meta: gen_meta(0o755),
            },
        );
    }
}

fn place(
    tree: &mut Tree,
    origin: &mut BTreeMap<String, String>,
    path: &str,
    e: Entry,
) -> Result<()> {
    let p = path.trim_start_matches('/');
    tree.insert(p, e).map_err(|e| bad_input(e.to_string()))?;
    origin.remove(p);
    Ok(())
}

fn alternatives(
    tree: &mut Tree,
    origin: &mut BTreeMap<String, String>,
    actions: &[(String, ScriptActions)],
    notes: &mut Vec<String>,
) -> Result<()> {
    let mut by_name: BTreeMap<String, Vec<&Alternative>> = BTreeMap::new();
    for (_, a) in actions {
        for alt in &a.alternatives {
            by_name.entry(alt.name.clone()).or_default().push(alt);
        }
    }
    for (name, mut cands) in by_name {
        // Only alternatives whose target exists are registered, as
        // update-alternatives refuses a missing path.
        cands.retain(|c| resolve_full(tree, &c.path).is_some());
        if cands.is_empty() {
            continue;
        }
        cands.sort_by(|a, b| a.path.cmp(&b.path));
        cands.dedup_by(|a, b| a.path == b.path);
        // Highest priority wins; ties go to the first path in order.
        let best = cands
            .iter()
            .max_by(|a, b| a.priority.cmp(&b.priority).then(b.path.cmp(&a.path)))
            .copied()
            .ok_or_else(|| anyhow::anyhow!("no alternative"))?;
        let master = best.link.clone();
        let mut slaves: BTreeMap<String, String> = BTreeMap::new();
        for c in &cands {
            for (link, sname, _) in &c.slaves {
                slaves.entry(sname.clone()).or_insert_with(|| link.clone());
            }
        }
        // The links: LINK -> /etc/alternatives/NAME -> PATH, unless a
        // package put a real file at LINK (update-alternatives leaves it).
        place(
            tree,
            origin,
            &format!("etc/alternatives/{name}"),
            symlink(&best.path),
        )?;
        link_unless_real(
            tree,
            origin,
            &master,
            &format!("/etc/alternatives/{name}"),
            notes,
        )?;
        for (sname, slink) in &slaves {
            let target = best
                .slaves
                .iter()
                .find(|(_, n, _)| n == sname)
                .map(|(_, _, p)| p.clone());
            if let Some(t) = target.filter(|t| resolve_full(tree, t).is_some()) {
                place(
                    tree,
                    origin,
                    &format!("etc/alternatives/{sname}"),
                    symlink(&t),
                )?;
                link_unless_real(
                    tree,
                    origin,
                    slink,
                    &format!("/etc/alternatives/{sname}"),
                    notes,
                )?;
            }
        }
        // dpkg's administrative file.
        let mut f = format!("auto\n{master}\n");
        for (sname, slink) in &slaves {
            f.push_str(&format!("{sname}\n{slink}\n"));
        }
        f.push('\n');
        for c in &cands {
            f.push_str(&format!("{}\n{}\n", c.path, c.priority));
            for sname in slaves.keys() {
                let p = c
                    .slaves
                    .iter()
                    .find(|(_, n, _)| n == sname)
                    .map(|(_, _, p)| p.as_str())
                    .unwrap_or("");
                f.push_str(&format!("{p}\n"));
            }
        }
        f.push('\n');
        place(
            tree,
            origin,
            &format!("var/lib/dpkg/alternatives/{name}"),
            gen_file(f, 0o644),
        )?;
    }
    Ok(())
}

fn link_unless_real(
    tree: &mut Tree,
    origin: &mut BTreeMap<String, String>,
    link: &str,
    target: &str,
    notes: &mut Vec<String>,
) -> Result<()> {
    let at = tree
        .resolve_parents(link)
        .map_err(|e| bad_input(e.to_string()))?;
    match tree.get(&at).map(|e| &e.node) {
        Some(Node::File { .. }) | Some(Node::Dir) => {
            notes.push(format!(
                "alternative link {link} is a real file; left as is"
            ));
            Ok(())
        }
        _ => place(tree, origin, &at, symlink(target)),
    }
}

/// passwd and group as rows of fields, edited in memory so every account
/// a script asks for is added before the files are written once.
struct Accounts {
    passwd: Vec<Vec<String>>,
    group: Vec<Vec<String>>,
}

/// A home folder to create for a new system user, owned by it.
struct Home {
    path: String,
    uid: u32,
    gid: u32,
    user: String,
}

impl Accounts {
    /// base-passwd's master files from the tree, which are what its
    /// postinst copies to /etc; without base-passwd, just root and nobody.
    fn from_masters(tree: &Tree) -> Accounts {
        let passwd_master = read_body(tree, "usr/share/base-passwd/passwd.master");
        let group_master = read_body(tree, "usr/share/base-passwd/group.master");
        Accounts {
            passwd: Accounts::parse(
                &passwd_master
                    .map(|b| String::from_utf8_lossy(&b).to_string())
                    .unwrap_or_else(|| "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n".into()),
            ),
            group: Accounts::parse(
                &group_master
                    .map(|b| String::from_utf8_lossy(&b).to_string())
                    .unwrap_or_else(|| "root:x:0:\nnogroup:x:65534:\n".into()),
            ),
        }
    }
    fn parse(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split(':').map(str::to_string).collect())
            .collect()
    }
    fn gid_of(&self, name: &str) -> Option<u32> {
        self.group
            .iter()
            .find(|g| g.first().map(String::as_str) == Some(name))
            .and_then(|g| g.get(2)?.parse().ok())
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        self.passwd
            .iter()
            .find(|g| g.first().map(String::as_str) == Some(name))
            .and_then(|g| g.get(2)?.parse().ok())
    }
    fn free(used: impl Iterator<Item = u32>) -> Option<u32> {
        let used: BTreeSet<u32> = used.collect();
        // Debian's system range for dynamically allocated ids.
        (100..=999).find(|i| !used.contains(i))
    }
    fn add_group(&mut self, name: &str, gid: Option<u32>) -> u32 {
        if let Some(g) = self.gid_of(name) {
            return g;
        }
        let gid = gid
            .filter(|g| {
                self.group
                    .iter()
                    .all(|x| x.get(2).and_then(|s| s.parse::<u32>().ok()) != Some(*g))
            })
            .or_else(|| Self::free(self.group.iter().filter_map(|g| g.get(2)?.parse().ok())))
            .unwrap_or(65534);
        self.group.push(vec![
            name.into(),
            "x".into(),
            gid.to_string(),
            String::new(),
        ]);
        gid
    }

    /// Adds a system user as adduser/useradd would: an existing name is
    /// left alone (as a rerun postinst leaves it), the asked uid only if it
    /// is free. Returns the home to create, if the call asked for one.
    fn add_user(&mut self, u: &SystemUser) -> Option<Home> {
        if self.uid_of(&u.name).is_some() {
            return None;
        }
        let gid = if u.user_group {
            self.add_group(&u.name, None)
        } else if let Some(g) = &u.primary_group {
            self.add_group(g, None)
        } else {
            self.gid_of("nogroup").unwrap_or(65534)
        };
        let uid = u
            .uid
            .filter(|id| {
                self.passwd
                    .iter()
                    .all(|x| x.get(2).and_then(|s| s.parse::<u32>().ok()) != Some(*id))
            })
            .or_else(|| Self::free(self.passwd.iter().filter_map(|p| p.get(2)?.parse().ok())))
            .unwrap_or(65534);
        let home = u.home.clone().unwrap_or_else(|| "/nonexistent".into());
        let shell = u
            .shell
            .clone()
            .unwrap_or_else(|| "/usr/sbin/nologin".into());
        self.passwd.push(vec![
            u.name.clone(),
            "x".into(),
            uid.to_string(),
            gid.to_string(),
            u.gecos.clone().unwrap_or_default(),
            home.clone(),
            shell,
        ]);
        (u.create_home && home != "/nonexistent").then(|| Home {
            path: home,
            uid,
            gid,
            user: u.name.clone(),
        })
    }
}

/// The accounts base-passwd and the maintainer scripts would have made:
/// passwd, group and their shadow files, and the homes asked for.
fn accounts(
    tree: &mut Tree,
    origin: &mut BTreeMap<String, String>,
    actions: &[(String, ScriptActions)],
    epoch: u64,
) -> Result<()> {
    let mut acc = Accounts::from_masters(tree);
    // Groups first (users may name them), in package order then script order.
    for (_, a) in actions {
        for g in &a.groups {
            acc.add_group(&g.name, g.gid);
        }
    }
    let mut homes = Vec::new();
    for (_, a) in actions {
        for u in &a.users {
            homes.extend(acc.add_user(u));
        }
    }
    write_account_files(tree, origin, &mut acc, epoch)?;
    create_homes(tree, origin, homes)
}

/// Writes passwd, group, shadow and gshadow. The hashes live in
/// shadow/gshadow; passwd and group say `x`, as on a Debian system after
/// `shadowconfig on` (base-passwd's masters say `*`). The shadow files
/// belong to the `shadow` group when there is one, so its tools can read
/// them; password ages start on the build's epoch so rebuilds agree.
fn write_account_files(
    tree: &mut Tree,
    origin: &mut BTreeMap<String, String>,
    acc: &mut Accounts,
    epoch: u64,
) -> Result<()> {
    for row in acc.passwd.iter_mut().chain(acc.group.iter_mut()) {
        if let Some(pw) = row.get_mut(1) {
            *pw = "x".into();
        }
    }
    let days = epoch / 86400;
    let join = |rows: &[Vec<String>]| {
        let mut s = String::new();
        for r in rows {
            s.push_str(&r.join(":"));
            s.push('\n');
        }
        s
    };
    let shadow: String = acc
        .passwd
        .iter()
        .map(|p| format!("{}:*:{days}:0:99999:7:::\n", p[0]))
        .collect();
    let gshadow: String = acc
        .group
        .iter()
        .map(|g| format!("{}:*::\n", g[0]))
        .collect();
    place(
        tree,
        origin,
        "etc/passwd",
        gen_file(join(&acc.passwd), 0o644),
    )?;
    place(tree, origin, "etc/group", gen_file(join(&acc.group), 0o644))?;
    let mut sh = gen_file(shadow, 0o640);
    let mut gsh = gen_file(gshadow, 0o640);
    if let Some(g) = acc.gid_of("shadow") {
        sh.meta.gid = g;
        sh.meta.gname = "shadow".into();
        gsh.meta.gid = g;
        gsh.meta.gname = "shadow".into();
    }
    place(tree, origin, "etc/shadow", sh)?;
    place(tree, origin, "etc/gshadow", gsh)
}

/// The home folders adduser would have made for the new users, owned by
/// them; a folder a package already ships is left as it is.
fn create_homes(
    tree: &mut Tree,
    origin: &mut BTreeMap<String, String>,
    homes: Vec<Home>,
) -> Result<()> {
    for home in homes {
        if tree.get(&home.path).is_none() {
            let mut m = gen_meta(0o755);
            m.uid = home.uid;
            m.gid = home.gid;
            m.uname = home.user;
            m.gname = String::new();
            place(
                tree,
                origin,
                &home.path,
                Entry {
                    node: Node::Dir,
                    meta: m,
                },
            )?;
        }
    }
    Ok(())
}

/// What `update-ca-certificates` leaves: the enabled list, the bundle and
/// a `.pem` link per certificate.
fn ca_certificates(tree: &mut Tree, origin: &mut BTreeMap<String, String>) -> Result<()> {
    let certs: Vec<String> = tree
        .iter()
        .filter(|(p, e)| {
            p.starts_with("usr/share/ca-certificates/")
                && p.ends_with(".crt")
                && matches!(e.node, Node::File { .. })
        })
        .map(|(p, _)| p["usr/share/ca-certificates/".len()..].to_string())
        .collect();
    if certs.is_empty() {
        return Ok(());
    }
    let mut conf = String::from("# Generated by netshoot-build: every certificate enabled, as the\n# ca-certificates postinst does by default.\n");
    let mut bodies = Vec::new();
    hash_links(tree, origin, &certs)?;
    for c in &certs {
        conf.push_str(c);
        conf.push('\n');
        bodies.extend(read_body(tree, &format!("usr/share/ca-certificates/{c}")));
        let name = cert_name(c);
        place(
            tree,
            origin,
            &format!("etc/ssl/certs/{name}.pem"),
            symlink(&format!("/usr/share/ca-certificates/{c}")),
        )?;
    }
    place(
        tree,
        origin,
        "etc/ca-certificates.conf",
        gen_file(conf, 0o644),
    )?;
    place(
        tree,
        origin,
        "etc/ssl/certs/ca-certificates.crt",
        gen_file(bundle(bodies), 0o644),
    )?;
    Ok(())
}

/// The `<subject hash>.N` link to each certificate's `.pem` that
/// `openssl rehash` makes, N counting up among certificates of one hash in
/// the order of their file names, as rehash sorts them.
fn hash_links(
    tree: &mut Tree,
    origin: &mut BTreeMap<String, String>,
    certs: &[String],
) -> Result<()> {
    let mut pems: Vec<(String, &String)> = certs
        .iter()
        .map(|c| (format!("{}.pem", cert_name(c)), c))
        .collect();
    pems.sort();
    let mut used: BTreeMap<String, u32> = BTreeMap::new();
    for (pem, c) in pems {
        let path = format!("usr/share/ca-certificates/{c}");
        let body = read_body(tree, &path).unwrap_or_default();
        let hash =
            crate::certhash::subject_hash(&body).map_err(|e| bad_input(format!("/{path}: {e}")))?;
        let n = used.entry(hash.clone()).or_insert(0);
        place(
            tree,
            origin,
            &format!("etc/ssl/certs/{hash}.{n}"),
            symlink(&pem),
        )?;
        *n += 1;
    }
    Ok(())
}

/// A certificate's name in /etc/ssl/certs: its file name without `.crt`.
fn cert_name(c: &str) -> &str {
    c.rsplit('/').next().unwrap_or(c).trim_end_matches(".crt")
}

/// The certificates concatenated in the given order, each ending in a
/// newline, as `update-ca-certificates` writes its bundle.
pub(crate) fn bundle(certs: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for mut body in certs {
        if !body.ends_with(b"\n") {
            body.push(b'\n');
        }
        out.extend_from_slice(&body);
    }
    out
}
