//! `debian::deb::read_deb` on packages built by the real `dpkg-deb`, and on
//! hostile archives crafted by hand.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use debian::deb::{read_deb, DebError, EntryKind};

const TOOL_BODY: &[u8] = b"#!/bin/sh\necho demo tool\n";
const CONF_BODY: &[u8] = b"# demo configuration\nverbose = yes\n";
const POSTINST: &[u8] = b"#!/bin/sh\nset -e\nsetcap cap_net_raw+ep /usr/bin/demo-tool || true\n";

fn long_dir() -> String {
    // 150 characters of path below the root, in 10 components.
    let comp = "abcdefghijklm"; // 13 chars + '/' = 14
    let mut p = String::from("usr/share/demo");
    while p.len() + 14 < 140 {
        p.push('/');
        p.push_str(comp);
    }
    let fill = 150 - p.len() - 1 - "/f.txt".len();
    p.push('/');
    p.push_str(&"x".repeat(fill));
    p
}

fn long_path() -> String {
    format!("{}/f.txt", long_dir())
}

fn md5_hex(data: &[u8]) -> String {
    let out = Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..32].to_string()
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds `demo_1.0_all.deb` with `dpkg-deb -Z<comp>` and returns its bytes.
fn build_deb(comp: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pkg");
    let d = |p: &str| root.join(p);
    for sub in ["DEBIAN", "usr/bin", "etc", "usr/share/demo"] {
        std::fs::create_dir_all(d(sub)).unwrap();
    }
    std::fs::create_dir_all(d(&long_dir())).unwrap();
    std::fs::write(d("usr/bin/demo-tool"), TOOL_BODY).unwrap();
    set_mode(&d("usr/bin/demo-tool"), 0o4755);
    std::fs::hard_link(d("usr/bin/demo-tool"), d("usr/bin/demo-tool2")).unwrap();
    std::os::unix::fs::symlink("demo-tool", d("usr/bin/demo-link")).unwrap();
    std::os::unix::fs::symlink("/etc/demo.conf", d("usr/share/demo/abs-link")).unwrap();
    std::fs::write(d("etc/demo.conf"), CONF_BODY).unwrap();
    set_mode(&d("etc/demo.conf"), 0o644);
    std::fs::write(d(&long_path()), b"long").unwrap();
    std::fs::write(
        d("DEBIAN/control"),
        "Package: demo\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Test <t@example.invalid>\nDescription: demo package\n long description\n",
    )
    .unwrap();
    std::fs::write(d("DEBIAN/conffiles"), "/etc/demo.conf\n").unwrap();
    let md5 = format!(
        "{}  usr/bin/demo-tool\n{}  etc/demo.conf\n{}  {}\n",
        md5_hex(TOOL_BODY),
        md5_hex(CONF_BODY),
        md5_hex(b"long"),
        long_path()
    );
    std::fs::write(d("DEBIAN/md5sums"), md5).unwrap();
    std::fs::write(d("DEBIAN/postinst"), POSTINST).unwrap();
    set_mode(&d("DEBIAN/postinst"), 0o755);
    std::fs::write(d("DEBIAN/shlibs"), "libdemo 1 demo\n").unwrap();
    for p in ["", "DEBIAN", "usr", "usr/bin", "etc"] {
        set_mode(&d(p), 0o755);
    }
    let out = dir.path().join("demo.deb");
    let st = Command::new("dpkg-deb")
        .args(["--root-owner-group", &format!("-Z{comp}"), "--build"])
        .arg(&root)
        .arg(&out)
        .output()
        .expect("dpkg-deb must be installed");
    assert!(
        st.status.success(),
        "dpkg-deb: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read(out).unwrap()
}

fn members(deb: &[u8]) -> Vec<String> {
    let mut a = ar::Archive::new(deb);
    let mut names = Vec::new();
    while let Some(e) = a.next_entry() {
        names.push(String::from_utf8_lossy(e.unwrap().header().identifier()).into_owned());
    }
    names
}

#[test]
fn reads_dpkg_built_packages_in_every_compression() {
    for (comp, suffix) in [
        ("xz", ".xz"),
        ("zstd", ".zst"),
        ("gzip", ".gz"),
        ("none", ""),
    ] {
        let deb = build_deb(comp);
        let names = members(&deb);
        assert_eq!(names[2], format!("data.tar{suffix}"), "{comp}: {names:?}");
        let mut tar_copy = Vec::new();
        let (control, entries) =
            read_deb(deb.as_slice(), &mut tar_copy).unwrap_or_else(|e| panic!("-Z{comp}: {e}"));

        assert_eq!(control.control.get("Package"), Some("demo"));
        assert_eq!(control.control.get("Version"), Some("1.0-1"));
        assert_eq!(control.package(), "demo");
        assert_eq!(control.conffiles, ["/etc/demo.conf"]);
        assert_eq!(control.md5sums.len(), 3);
        assert_eq!(
            control.md5sums[0],
            ("usr/bin/demo-tool".to_string(), md5_hex(TOOL_BODY))
        );
        assert_eq!(control.md5sums[2].0, long_path());
        assert_eq!(
            control.scripts.keys().collect::<Vec<_>>(),
            ["postinst"],
            "{comp}"
        );
        assert_eq!(control.scripts["postinst"], POSTINST);
        assert_eq!(control.other["shlibs"], b"libdemo 1 demo\n");
        assert!(!control.other.contains_key("control"));

        // The copy is an uncompressed tar, padded to whole records.
        assert_eq!(tar_copy.len() % 512, 0);
        let find = |p: &str| {
            entries
                .iter()
                .find(|e| e.path == p)
                .unwrap_or_else(|| panic!("{comp}: no entry {p}"))
        };
        assert!(entries
            .iter()
            .all(|e| !e.path.is_empty() && !e.path.starts_with('/') && !e.path.starts_with("./")));

        let tool = find("usr/bin/demo-tool");
        assert_eq!(tool.mode, 0o4755);
        assert_eq!((tool.uid, tool.gid), (0, 0));
        assert_eq!((tool.uname.as_str(), tool.gname.as_str()), ("root", "root"));
        assert!(tool.mtime > 0);
        let EntryKind::File { offset, size } = tool.kind else {
            panic!("{comp}: demo-tool is {:?}", tool.kind)
        };
        assert_eq!(size, TOOL_BODY.len() as u64);
        assert_eq!(
            &tar_copy[offset as usize..(offset + size) as usize],
            TOOL_BODY
        );

        let conf = find("etc/demo.conf");
        assert_eq!(conf.mode, 0o644);
        let EntryKind::File { offset, size } = conf.kind else {
            panic!()
        };
        assert_eq!(
            &tar_copy[offset as usize..(offset + size) as usize],
            CONF_BODY
        );

        // One of the two names is stored as a hard link to the other.
        let t2 = find("usr/bin/demo-tool2");
        match (&tool.kind, &t2.kind) {
            (EntryKind::File { .. }, EntryKind::Hardlink { target }) => {
                assert_eq!(target, "usr/bin/demo-tool")
            }
            other => panic!("{comp}: hard link not recorded: {other:?}"),
        }
        assert_eq!(
            find("usr/bin/demo-link").kind,
            EntryKind::Symlink {
                target: "demo-tool".into()
            }
        );
        assert_eq!(
            find("usr/share/demo/abs-link").kind,
            EntryKind::Symlink {
                target: "/etc/demo.conf".into()
            }
        );
        assert_eq!(find("usr/bin").kind, EntryKind::Dir);
        assert_eq!(find("usr/bin").mode, 0o755);

        let long = find(&long_path());
        assert_eq!(long_path().len(), 150);
        let EntryKind::File { offset, size } = long.kind else {
            panic!()
        };
        assert_eq!(
            &tar_copy[offset as usize..(offset + size) as usize],
            b"long"
        );

        // The copy is a valid tar that lists the same paths.
        let mut a = tar::Archive::new(tar_copy.as_slice());
        let n = a.entries().unwrap().count();
        assert_eq!(n, entries.len() + 1, "{comp}: plus the ./ root entry");
    }
}

#[test]
fn truncated_deb_is_an_error_not_a_panic() {
    let deb = build_deb("xz");
    let len = deb.len();
    for cut in [
        0,
        7,
        8,
        60,
        68,
        100,
        200,
        len / 2,
        len - 100,
        len - 10,
        len - 1,
    ] {
        let mut sink = Vec::new();
        let r = read_deb(&deb[..cut], &mut sink);
        assert!(r.is_err(), "cut at {cut} of {len} was accepted");
    }
    let mut garbage = deb.clone();
    let mid = garbage.len() - 200;
    for b in &mut garbage[mid..mid + 50] {
        *b ^= 0x55;
    }
    assert!(read_deb(garbage.as_slice(), &mut Vec::new()).is_err());
}

/// A tar header for `path` written into the raw name field, so paths the
/// `tar` crate would refuse to build (`..`) can be made.
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    path: &str,
    ty: tar::EntryType,
    link: Option<&str>,
    body: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(ty);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(body.len() as u64);
    h.set_mtime(1);
    h.set_cksum();
    b.append(&h, body).unwrap();
}

fn crafted_deb(data: Vec<u8>) -> Vec<u8> {
    let mut control = tar::Builder::new(Vec::new());
    let text = b"Package: evil\nVersion: 1\nArchitecture: all\n";
    raw_entry(
        &mut control,
        "./control",
        tar::EntryType::Regular,
        None,
        text,
    );
    let control = control.into_inner().unwrap();
    let mut ar = ar::Builder::new(Vec::new());
    for (name, body) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar", control),
        ("data.tar", data),
    ] {
        let h = ar::Header::new(name.as_bytes().to_vec(), body.len() as u64);
        ar.append(&h, body.as_slice()).unwrap();
    }
    ar.into_inner().unwrap()
}

fn data_tar(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "./", tar::EntryType::Directory, None, b"");
    f(&mut b);
    b.into_inner().unwrap()
}

#[test]
fn hostile_entries_are_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "./../../etc/passwd",
            data_tar(|b| raw_entry(b, "./../../etc/passwd", tar::EntryType::Regular, None, b"x")),
        ),
        (
            "./usr/../../x",
            data_tar(|b| raw_entry(b, "./usr/../../x", tar::EntryType::Regular, None, b"x")),
        ),
        (
            "./dev/sda",
            data_tar(|b| raw_entry(b, "./dev/sda", tar::EntryType::Block, None, b"")),
        ),
        (
            "./dev/null",
            data_tar(|b| raw_entry(b, "./dev/null", tar::EntryType::Char, None, b"")),
        ),
        (
            "./run/fifo",
            data_tar(|b| raw_entry(b, "./run/fifo", tar::EntryType::Fifo, None, b"")),
        ),
        (
            "./usr/bin/h",
            data_tar(|b| {
                raw_entry(
                    b,
                    "./usr/bin/h",
                    tar::EntryType::Link,
                    Some("../../../etc/shadow"),
                    b"",
                )
            }),
        ),
        (
            "./usr/bin/h2",
            data_tar(|b| {
                raw_entry(b, "./etc", tar::EntryType::Directory, None, b"");
                raw_entry(b, "./usr/bin/h2", tar::EntryType::Link, Some("./etc"), b"")
            }),
        ),
        (
            "./usr/bin/h3",
            data_tar(|b| {
                raw_entry(
                    b,
                    "./usr/bin/h3",
                    tar::EntryType::Link,
                    Some("./usr/bin/later"),
                    b"",
                );
                raw_entry(b, "./usr/bin/later", tar::EntryType::Regular, None, b"x")
            }),
        ),
    ];
    for (entry, data) in cases {
        let deb = crafted_deb(data);
        let err = read_deb(deb.as_slice(), &mut Vec::new()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, DebError::UnsafeEntry { .. }),
            "{entry}: {msg}"
        );
        assert!(msg.contains("evil"), "names the package: {msg}");
        assert!(msg.contains(entry), "names the entry: {msg}");
    }
}

#[test]
fn absolute_paths_become_relative_and_inner_dotdot_is_resolved() {
    let data = data_tar(|b| {
        raw_entry(b, "/etc/abs.conf", tar::EntryType::Regular, None, b"abs");
        raw_entry(
            b,
            "./usr/lib/../share/x",
            tar::EntryType::Regular,
            None,
            b"x",
        );
        raw_entry(
            b,
            "./usr/share/y",
            tar::EntryType::Link,
            Some("/usr/share/x"),
            b"",
        );
        raw_entry(
            b,
            "./usr/share/z",
            tar::EntryType::Symlink,
            Some("../../etc/abs.conf"),
            b"",
        );
    });
    let deb = crafted_deb(data);
    let mut copy = Vec::new();
    let (c, entries) = read_deb(deb.as_slice(), &mut copy).unwrap();
    assert_eq!(c.package(), "evil");
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["etc/abs.conf", "usr/share/x", "usr/share/y", "usr/share/z"]
    );
    assert_eq!(
        entries[2].kind,
        EntryKind::Hardlink {
            target: "usr/share/x".into()
        }
    );
    assert_eq!(
        entries[3].kind,
        EntryKind::Symlink {
            target: "../../etc/abs.conf".into()
        }
    );
}

/// One PAX extended header record: `LEN key=value\n`, where LEN counts
/// the whole record including its own digits.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while (len.to_string().len() + body.len()) != len {
        len += 1;
    }
    format!("{len}{body}")
}

#[test]
fn pax_long_path_is_read() {
    let long = format!("./opt/{}/{}", "p".repeat(120), "q".repeat(90));
    let data = data_tar(|b| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(3);
        h.set_mtime(5);
        let rec = pax_record("path", &long);
        let mut x = tar::Header::new_ustar();
        x.set_entry_type(tar::EntryType::XHeader);
        x.set_path("./PaxHeaders/short").unwrap();
        x.set_size(rec.len() as u64);
        x.set_mode(0o644);
        x.set_uid(0);
        x.set_gid(0);
        x.set_cksum();
        b.append(&x, rec.as_bytes()).unwrap();
        // The ustar name is a truncated stand-in; the PAX record wins.
        h.set_path("./opt/short").unwrap();
        h.set_cksum();
        b.append(&h, &b"pax"[..]).unwrap();
    });
    let deb = crafted_deb(data);
    let mut copy = Vec::new();
    let (_, entries) = read_deb(deb.as_slice(), &mut copy).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].path, long[2..]);
    assert_eq!(entries[0].mode, 0o755);
    let EntryKind::File { offset, size } = entries[0].kind else {
        panic!()
    };
    assert_eq!(&copy[offset as usize..(offset + size) as usize], b"pax");
}

#[test]
fn not_a_deb() {
    let err = read_deb(&b"hello world, not an ar archive"[..], &mut Vec::new()).unwrap_err();
    assert!(!err.to_string().is_empty());
    let mut ar = ar::Builder::new(Vec::new());
    let h = ar::Header::new(b"debian-binary".to_vec(), 4);
    ar.append(&h, &b"3.0\n"[..]).unwrap();
    let deb = ar.into_inner().unwrap();
    let err = read_deb(deb.as_slice(), &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("3.0"), "{err}");
}
