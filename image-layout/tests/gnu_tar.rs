//! The layers this crate writes, read by GNU tar (an independent reader):
//! setuid bits, owners, symlinks, hard links, long names and the
//! `security.capability` xattr all survive extraction.

use image_layout::{write_layer, Body, Compression, Entry, LayerOptions, Meta, Node, Tree};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::Arc;

fn file(data: &'static [u8], mode: u32) -> Entry {
    Entry {
        node: Node::File {
            body: Body::Bytes(Arc::from(data)),
            size: data.len() as u64,
        },
        meta: Meta::root(mode),
    }
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn gnu_tar_extracts_what_we_wrote() {
    let t = tempfile::tempdir().unwrap();
    // The capability value comes from the real setcap, not from us.
    let probe = t.path().join("probe");
    std::fs::write(&probe, b"x").unwrap();
    sh(Command::new("setcap").arg("cap_net_raw+ep").arg(&probe));
    let cap = sh(Command::new("python3").arg("-c").arg(format!(
        "import os,sys; sys.stdout.write(os.getxattr('{}', 'security.capability').hex())",
        probe.display()
    )));
    let cap = (0..cap.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cap[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>();

    let mut tree = Tree::new();
    let mut ping = file(b"\x7fELF ping", 0o755);
    ping.meta.xattrs.insert("security.capability".into(), cap);
    tree.insert("bin/ping", ping).unwrap();
    tree.insert("usr/bin/su", file(b"su", 0o4755)).unwrap();
    let mut owned = file(b"owned", 0o640);
    owned.meta.uid = 1234;
    owned.meta.gid = 4321;
    owned.meta.uname = String::new();
    owned.meta.gname = String::new();
    tree.insert("etc/owned", owned).unwrap();
    tree.insert(
        "bin/sh",
        Entry {
            node: Node::Symlink("dash".into()),
            meta: Meta::root(0o777),
        },
    )
    .unwrap();
    tree.insert("usr/bin/b", file(b"shared", 0o755)).unwrap();
    tree.insert(
        "usr/bin/a",
        Entry {
            node: Node::Hardlink("usr/bin/b".into()),
            meta: Meta::root(0o755),
        },
    )
    .unwrap();
    let long = format!("usr/share/{}/{}", "x".repeat(130), "y".repeat(140));
    tree.insert(&long, file(b"deep", 0o644)).unwrap();

    let opts = LayerOptions {
        compression: Compression::Gzip { level: 6 },
        source_date_epoch: 1_000_000,
        threads: 2,
    };
    let (_, bytes) = write_layer(&tree, &opts, Vec::new()).unwrap();
    let layer = t.path().join("layer.tar.gz");
    std::fs::write(&layer, &bytes).unwrap();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    sh(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--same-owner", "-xpzf"])
        .arg(&layer)
        .arg("-C")
        .arg(&root));

    let getcap = sh(Command::new("getcap").arg(root.join("bin/ping")));
    assert!(getcap.contains("cap_net_raw=ep"), "{getcap}");
    let su = std::fs::metadata(root.join("usr/bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755);
    let owned = std::fs::metadata(root.join("etc/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o777),
        (1234, 4321, 0o640)
    );
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap().to_str(),
        Some("dash")
    );
    let a = std::fs::metadata(root.join("usr/bin/a")).unwrap();
    let b = std::fs::metadata(root.join("usr/bin/b")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link kept");
    assert_eq!(std::fs::read(root.join(&long)).unwrap(), b"deep");
    assert_eq!(
        su.mtime(),
        0,
        "mtime of generated files is 0, below the clamp"
    );

    // GNU tar's listing is sorted the way we wrote it.
    let list = sh(Command::new("tar").arg("-tzf").arg(&layer));
    let names: Vec<&str> = list.lines().collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // gzip -t agrees the stream is well-formed.
    sh(Command::new("gzip").arg("-t").arg(&layer));
}
