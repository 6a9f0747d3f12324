//! Targets for `.deb` files: the whole package, and each of its two
//! tarballs wrapped in an otherwise valid package so the fuzzer spends its
//! time on tar and PAX headers rather than on the ar and compression
//! framing around them.

use std::io::{self, Write};

use debian::deb::read_deb;

/// An `ar` archive of `members`, as `dpkg-deb` writes one.
pub fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            data.len()
        );
        assert_eq!(header.len(), 60);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// A `.deb` of an uncompressed `control.tar` and `data.tar`.
pub fn deb(control_tar: &[u8], data_tar: &[u8]) -> Vec<u8> {
    ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", control_tar),
        ("data.tar", data_tar),
    ])
}

/// One tar entry for [`tar_of`].
pub enum Item<'a> {
    /// A regular file.
    File(&'a str, &'a [u8], u32),
    /// A directory.
    Dir(&'a str),
    /// A symbolic link to the target.
    Symlink(&'a str, &'a str),
    /// A hard link to an earlier member.
    Hardlink(&'a str, &'a str),
    /// A PAX extended header (`x`) of `key=value` records for the next
    /// entry.
    Pax(&'a [(&'a str, &'a [u8])]),
    /// A PAX global header (`g`).
    PaxGlobal(&'a [(&'a str, &'a [u8])]),
    /// A regular file whose long name goes in a GNU `L` entry.
    GnuLong(&'a str, &'a [u8]),
}

fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in records {
        // "LEN key=value\n" where LEN counts itself.
        let rest = k.len() + v.len() + 3;
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len += 1;
        }
        body.extend_from_slice(format!("{len} {k}=").as_bytes());
        body.extend_from_slice(v);
        body.push(b'\n');
    }
    body
}

/// A tar (ustar and GNU headers as dpkg-deb and tar write them).
pub fn tar_of(items: &[Item<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let head = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_username("root").unwrap();
        h.set_groupname("root").unwrap();
        h
    };
    for item in items {
        match item {
            Item::File(path, data, mode) => {
                let mut h = head(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
            Item::Dir(path) => {
                let mut h = head(tar::EntryType::Directory, 0o755, 0);
                b.append_data(&mut h, path, io::empty()).unwrap();
            }
            Item::Symlink(path, target) => {
                let mut h = head(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, path, target).unwrap();
            }
            Item::Hardlink(path, target) => {
                let mut h = head(tar::EntryType::Link, 0o644, 0);
                b.append_link(&mut h, path, target).unwrap();
            }
            Item::Pax(records) | Item::PaxGlobal(records) => {
                let body = pax_records(records);
                let kind = if matches!(item, Item::Pax(_)) {
                    tar::EntryType::XHeader
                } else {
                    tar::EntryType::XGlobalHeader
                };
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(kind);
                h.set_path("./PaxHeaders/x").unwrap();
                h.set_size(body.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append(&h, &body[..]).unwrap();
            }
            Item::GnuLong(path, data) => {
                // append_data writes the GNU `L` entry itself for a name
                // longer than the header's 100 bytes.
                assert!(path.len() > 100);
                let mut h = head(tar::EntryType::Regular, 0o644, data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A minimal valid `control.tar`.
pub fn make_control_tar() -> Vec<u8> {
    tar_of(&[
        Item::Dir("./"),
        Item::File(
            "./control",
            b"Package: fuzz\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: Fuzz <fuzz@example.invalid>\nDescription: fuzz seed\n long text\n .\n more\n",
            0o644,
        ),
        Item::File(
            "./md5sums",
            b"d41d8cd98f00b204e9800998ecf8427e  usr/bin/fuzz\nd41d8cd98f00b204e9800998ecf8427e *./etc/fuzz.conf\n",
            0o644,
        ),
        Item::File("./conffiles", b"/etc/fuzz.conf\nremove-on-upgrade /etc/old.conf\n", 0o644),
        Item::File("./postinst", b"#!/bin/sh\nset -e\nexit 0\n", 0o755),
        Item::File("./triggers", b"interest-noawait /usr/lib/x\n", 0o644),
        Item::File("./shlibs", b"libfuzz 1 libfuzz1 (>= 1.0)\n", 0o644),
    ])
}

/// A `data.tar` with every entry kind the reader accepts and the PAX and
/// GNU long-name forms.
pub fn make_data_tar() -> Vec<u8> {
    let long = format!("./usr/share/doc/fuzz/{}/file", "d".repeat(120));
    let long_link = format!("/usr/lib/{}", "l".repeat(140));
    tar_of(&[
        Item::Dir("./"),
        Item::Dir("./usr/"),
        Item::Dir("./usr/bin/"),
        Item::File("./usr/bin/fuzz", b"#!/bin/sh\necho fuzz\n", 0o4755),
        Item::Hardlink("./usr/bin/fuzz2", "./usr/bin/fuzz"),
        Item::Symlink("./usr/bin/fz", "fuzz"),
        Item::Symlink("./usr/bin/abs", "/usr/bin/fuzz"),
        Item::Dir("./etc/"),
        Item::File("./etc/fuzz.conf", b"a=1\n", 0o644),
        Item::PaxGlobal(&[("comment", b"fuzz seed")]),
        Item::Pax(&[
            ("path", b"./usr/bin/pax-named-\xc3\xa9"),
            ("uid", b"1000"),
            ("gid", b"1000"),
            ("uname", b"user"),
            ("gname", b"group"),
            ("mtime", b"1700000000.5"),
            (
                "SCHILY.xattr.security.capability",
                b"\x01\x00\x00\x02\x00\x30\x00\x00",
            ),
        ]),
        Item::File("./usr/bin/placeholder", b"pax\n", 0o755),
        Item::Pax(&[("linkpath", long_link.as_bytes()), ("size", b"0")]),
        Item::Symlink("./usr/bin/longlink", "placeholder"),
        Item::GnuLong(&long, b"long name\n"),
    ])
}

/// Compresses `data` for a member suffix (`.gz`, `.xz`, `.zst`, `.bz2`).
pub fn compress(data: &[u8], suffix: &str) -> Vec<u8> {
    match suffix {
        "" => data.to_vec(),
        ".gz" => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        ".xz" => {
            let mut w = liblzma::write::XzEncoder::new(Vec::new(), 6);
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        ".zst" => zstd::encode_all(data, 3).unwrap(),
        ".bz2" => {
            let mut w = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        other => panic!("no compressor for {other:?}"),
    }
}

/// A `.deb` whose control and data members use these compressions.
pub fn deb_compressed(control: &str, data: &str) -> Vec<u8> {
    let c = compress(&make_control_tar(), control);
    let d = compress(&make_data_tar(), data);
    ar(&[
        ("debian-binary", b"2.0\n"),
        (&format!("control.tar{control}"), &c),
        ("_gpgfuzz", b"ignored extension member\n"),
        (&format!("data.tar{data}"), &d),
    ])
}

/// Reads a .deb into a copy, as the cache does, and checks the listing
/// against that copy: every file body lies inside it.
fn read(bytes: &[u8]) {
    let mut copy = Vec::new();
    let Ok((_control, entries)) = read_deb(bytes, &mut copy) else {
        return;
    };
    for e in &entries {
        assert!(!e.path.is_empty(), "empty path listed");
        assert!(
            !e.path
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty()),
            "unnormalised path {:?}",
            e.path
        );
        if let debian::deb::EntryKind::File { offset, size } = e.kind {
            let end = offset.checked_add(size).expect("offset + size overflows");
            assert!(
                end <= copy.len() as u64,
                "{:?}: body {offset}+{size} beyond the {}-byte copy",
                e.path,
                copy.len()
            );
        }
    }
}

/// A whole `.deb`.
pub fn whole(data: &[u8]) {
    read(data);
}

/// The input as the `data.tar` of a valid package.
pub fn data_tar(data: &[u8]) {
    use std::sync::OnceLock;
    static CONTROL: OnceLock<Vec<u8>> = OnceLock::new();
    read(&deb(CONTROL.get_or_init(make_control_tar), data));
}

/// The input as the `control.tar` of a valid package.
pub fn control_tar(data: &[u8]) {
    read(&deb(data, &[0u8; 1024]));
}
