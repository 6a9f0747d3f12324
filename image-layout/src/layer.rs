//! The deterministic layer writer: a [`Tree`] in, a tar stream out, with
//! every header field filled by us (the `tar` crate's deterministic mode
//! would reset modes and drop setuid bits).

use crate::compress::{Compression, Compressor};
use crate::digest::{Digest, HashingWriter};
use crate::tree::{Entry, Node, Tree};
use std::collections::BTreeMap;
use std::io::{self, Write};
use tar::{EntryType, Header};

/// Settings that decide a layer's bytes.
#[derive(Clone, Copy, Debug)]
pub struct LayerOptions {
    /// Compression of the blob.
    pub compression: Compression,
    /// Upper bound for every mtime (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: u64,
    /// Compression workers; changes speed, never bytes.
    pub threads: usize,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            compression: Compression::default(),
            source_date_epoch: 0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// What a written layer is, for its descriptor and the config's diff_ids.
#[derive(Clone, Debug)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Length of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Entries written.
    pub entries: usize,
}

/// Writes `tree` as a tar layer, compressed as `opts` says, into `out`, and
/// returns the diff_id. The caller hashes the compressed bytes (the blob
/// store does so while writing). The layer is streamed: it is never held
/// whole in memory.
pub fn write_layer<W: Write + Send>(
    tree: &Tree,
    opts: &LayerOptions,
    out: W,
) -> io::Result<(LayerInfo, W)> {
    let comp = Compressor::new(out, opts.compression, opts.threads)?;
    let mut tar = HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, comp));
    let links = hardlink_leaders(tree);
    let mut count = 0;
    for (path, entry) in tree.iter() {
        write_entry(&mut tar, tree, path, entry, &links, opts.source_date_epoch)?;
        count += 1;
    }
    tar.write_all(&[0u8; 1024])?;
    let (buf, diff_id, size) = tar.finish();
    let comp = buf.into_inner().map_err(|e| e.into_error())?;
    let out = comp.finish()?;
    Ok((
        LayerInfo {
            diff_id,
            uncompressed_size: size,
            entries: count,
        },
        out,
    ))
}

/// For every group of hard links, the path that carries the body in the
/// tar: the first of the group in write order, so a link never points
/// forward to a file not yet extracted.
fn hardlink_leaders(tree: &Tree) -> BTreeMap<String, String> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, e) in tree.iter() {
        if let Node::Hardlink(target) = &e.node {
            groups
                .entry(target.clone())
                .or_default()
                .push(path.to_string());
        }
    }
    let mut leader_of = BTreeMap::new();
    for (target, mut members) in groups {
        members.push(target.clone());
        members.sort();
        let leader = members[0].clone();
        for m in members {
            leader_of.insert(m, leader.clone());
        }
    }
    leader_of
}

fn write_entry<W: Write>(
    out: &mut W,
    tree: &Tree,
    path: &str,
    entry: &Entry,
    links: &BTreeMap<String, String>,
    epoch: u64,
) -> io::Result<()> {
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    let mut h = Header::new_ustar();
    let mut name = path.to_string();
    // Hard links are reordered so the first member of a group in write
    // order carries the body (with the shared inode's metadata) and every
    // other member links to it.
    let mut meta = &entry.meta;
    let node = match links.get(path) {
        Some(leader) if leader != path => Node::Hardlink(leader.clone()),
        Some(_) => match &entry.node {
            Node::Hardlink(target) => {
                let t = tree.get(target).ok_or_else(|| {
                    io::Error::other(format!("{path}: hard link to missing {target}"))
                })?;
                if !matches!(t.node, Node::File { .. }) {
                    return Err(io::Error::other(format!(
                        "{path}: hard link to {target}, which is not a regular file"
                    )));
                }
                meta = &t.meta;
                t.node.clone()
            }
            n => n.clone(),
        },
        None => entry.node.clone(),
    };
    let mut size = 0;
    match &node {
        Node::Dir => {
            h.set_entry_type(EntryType::Directory);
            name.push('/');
        }
        Node::File { size: s, .. } => {
            h.set_entry_type(EntryType::Regular);
            size = *s;
        }
        Node::Symlink(t) => {
            h.set_entry_type(EntryType::Symlink);
            set_link(&mut h, t, &mut pax)?;
        }
        Node::Hardlink(t) => {
            h.set_entry_type(EntryType::Link);
            set_link(&mut h, t, &mut pax)?;
        }
    }
    set_name(&mut h, &name, &mut pax)?;
    h.set_mode(meta.mode & 0o7777);
    set_id(&mut h, meta.uid, "uid", &mut pax, Header::set_uid);
    set_id(&mut h, meta.gid, "gid", &mut pax, Header::set_gid);
    set_owner_name(&mut h, &meta.uname, "uname", &mut pax, true)?;
    set_owner_name(&mut h, &meta.gname, "gname", &mut pax, false)?;
    h.set_mtime(meta.mtime.min(epoch));
    if size > 0o777_7777_7777 {
        pax.push(("size".into(), size.to_string().into_bytes()));
        h.set_size(0);
    } else {
        h.set_size(size);
    }
    for (k, v) in &meta.xattrs {
        pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
    }
    if !pax.is_empty() {
        write_pax(out, path, &pax, meta.mtime.min(epoch))?;
    }
    h.set_cksum();
    out.write_all(h.as_bytes())?;
    if let Node::File { body, size } = &node {
        let mut r = body.open()?;
        let n = io::copy(&mut r, out)?;
        if n != *size {
            return Err(io::Error::other(format!(
                "{path}: body is {n} bytes, expected {size} (source changed while building?)"
            )));
        }
        pad(out, n)?;
    }
    Ok(())
}

fn set_id(
    h: &mut Header,
    id: u32,
    key: &str,
    pax: &mut Vec<(String, Vec<u8>)>,
    set: fn(&mut Header, u64),
) {
    // ustar's 8-byte octal field holds up to 2097151.
    if id as u64 > 0o7777777 {
        pax.push((key.into(), id.to_string().into_bytes()));
        set(h, 0);
    } else {
        set(h, id as u64);
    }
}

fn set_owner_name(
    h: &mut Header,
    name: &str,
    key: &str,
    pax: &mut Vec<(String, Vec<u8>)>,
    user: bool,
) -> io::Result<()> {
    if name.len() > 32 {
        pax.push((key.into(), name.as_bytes().to_vec()));
        return Ok(());
    }
    if user {
        h.set_username(name)
    } else {
        h.set_groupname(name)
    }
}

fn set_link(h: &mut Header, target: &str, pax: &mut Vec<(String, Vec<u8>)>) -> io::Result<()> {
    if target.len() > 100 {
        pax.push(("linkpath".into(), target.as_bytes().to_vec()));
        let cut = truncate_at_char(target, 100);
        h.as_old_mut().linkname[..cut.len()].copy_from_slice(cut.as_bytes());
        Ok(())
    } else {
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        Ok(())
    }
}

/// Sets the ustar name (splitting into prefix/name at a slash when it fits)
/// or, for longer names, a PAX `path` record plus a truncated name.
fn set_name(h: &mut Header, name: &str, pax: &mut Vec<(String, Vec<u8>)>) -> io::Result<()> {
    let bytes = name.as_bytes();
    let ustar = h
        .as_ustar_mut()
        .ok_or_else(|| io::Error::other("not a ustar header"))?;
    if bytes.len() <= 100 {
        ustar.name[..bytes.len()].copy_from_slice(bytes);
        return Ok(());
    }
    // Split at a '/' so that the prefix is <= 155 bytes and the rest <= 100.
    let split = (0..bytes.len())
        .rfind(|&i| bytes[i] == b'/' && i <= 155 && bytes.len() - i - 1 <= 100 && i > 0);
    if let Some(i) = split {
        if bytes.len() - i - 1 > 0 {
            ustar.prefix[..i].copy_from_slice(&bytes[..i]);
            ustar.name[..bytes.len() - i - 1].copy_from_slice(&bytes[i + 1..]);
            return Ok(());
        }
    }
    pax.push(("path".into(), bytes.to_vec()));
    let cut = truncate_at_char(name, 100);
    ustar.name[..cut.len()].copy_from_slice(cut.as_bytes());
    Ok(())
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Writes a PAX extended header (type `x`) carrying `records` for the
/// entry that follows; its own fields are fixed so it never varies.
fn write_pax<W: Write>(
    out: &mut W,
    path: &str,
    records: &[(String, Vec<u8>)],
    mtime: u64,
) -> io::Result<()> {
    let mut data = Vec::new();
    for (k, v) in records {
        // The length prefix counts itself: find the fixed point.
        let rest = k.len() + v.len() + 3; // ' ' '=' '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        data.extend_from_slice(len.to_string().as_bytes());
        data.push(b' ');
        data.extend_from_slice(k.as_bytes());
        data.push(b'=');
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::XHeader);
    let base = path.rsplit('/').next().unwrap_or(path);
    let pname = format!("PaxHeaders/{}", truncate_at_char(base, 80));
    let ustar = h
        .as_ustar_mut()
        .ok_or_else(|| io::Error::other("not a ustar header"))?;
    ustar.name[..pname.len()].copy_from_slice(pname.as_bytes());
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.write_all(h.as_bytes())?;
    out.write_all(&data)?;
    pad(out, data.len() as u64)
}

fn pad<W: Write>(out: &mut W, n: u64) -> io::Result<()> {
    let rem = (n % 512) as usize;
    if rem != 0 {
        out.write_all(&[0u8; 512][..512 - rem])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Body, Meta};
    use std::io::Read;
    use std::sync::Arc;

    fn file(data: &[u8], mode: u32) -> Entry {
        Entry {
            node: Node::File {
                body: Body::Bytes(Arc::from(data)),
                size: data.len() as u64,
            },
            meta: Meta::root(mode),
        }
    }

    fn layer_bytes(t: &Tree) -> Vec<u8> {
        let opts = LayerOptions {
            compression: Compression::None,
            source_date_epoch: 100,
            threads: 1,
        };
        write_layer(t, &opts, Vec::new()).unwrap().1
    }

    #[test]
    fn modes_links_long_names_and_xattrs_survive() {
        let mut t = Tree::new();
        let mut ping = file(b"ELF", 0o4755);
        ping.meta.xattrs.insert(
            "security.capability".into(),
            vec![
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        );
        ping.meta.mtime = 5000;
        t.insert("bin/ping", ping).unwrap();
        let long = format!("usr/share/{}/{}", "d".repeat(120), "f".repeat(120));
        t.insert(&long, file(b"long", 0o644)).unwrap();
        t.insert(
            "bin/sh",
            Entry {
                node: Node::Symlink("bash".into()),
                meta: Meta::root(0o777),
            },
        )
        .unwrap();
        // A link that sorts before its target: the writer must reorder.
        t.insert("zz/real", file(b"body", 0o755)).unwrap();
        t.insert(
            "aa/link",
            Entry {
                node: Node::Hardlink("zz/real".into()),
                meta: Meta::root(0o755),
            },
        )
        .unwrap();
        let bytes = layer_bytes(&t);
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().to_string();
            let h = e.header().clone();
            if p == "bin/ping" {
                assert_eq!(h.mode().unwrap(), 0o4755);
                assert_eq!(h.mtime().unwrap(), 100, "clamped");
                let ext: Vec<_> = e
                    .pax_extensions()
                    .unwrap()
                    .unwrap()
                    .map(|x| x.unwrap().key().unwrap().to_string())
                    .collect();
                assert_eq!(ext, ["SCHILY.xattr.security.capability"]);
            }
            if p == long {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                assert_eq!(s, "long");
            }
            if p == "aa/link" {
                assert_eq!(h.entry_type(), EntryType::Regular);
            }
            if p == "zz/real" {
                assert_eq!(h.entry_type(), EntryType::Link);
                assert_eq!(h.link_name().unwrap().unwrap().to_str(), Some("aa/link"));
            }
            seen.push(p);
        }
        assert!(seen.contains(&long));
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert_eq!(layer_bytes(&t), bytes, "deterministic");
    }
}
