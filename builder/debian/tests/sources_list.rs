//! Reading apt sources from a fake root, and choosing mirrors from them.

use std::fs;
use std::path::Path;

use debian::sources_list::{mirror_for_suite, read_sources};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

#[test]
fn reads_one_line_and_deb822_in_apt_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "etc/apt/sources.list",
        "# comment\n\ndeb [arch=amd64 signed-by=/k.gpg] http://registry.example.com/debian/ bookworm main contrib # tail\n\
         deb-src http://registry.example.com/debian bookworm main\n",
    );
    write(
        root,
        "etc/apt/sources.list.d/b.sources",
        "Types: deb deb-src\nURIs: http://registry.example.com/debian\nSuites: bookworm-updates bookworm-backports\n\
         Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
         Enabled: no\nTypes: deb\nURIs: http://disabled.example.com/x\nSuites: sid\nComponents: main\n",
    );
    write(
        root,
        "etc/apt/sources.list.d/a.list",
        "deb http://registry.example.com/debian-security bookworm-security main\n",
    );
    write(
        root,
        "etc/apt/sources.list.d/c.list.disabled",
        "deb http://ignored.example.com/ x main\n",
    );
    write(
        root,
        "etc/apt/sources.list.d/d.list.save",
        "garbage that would not parse\n",
    );

    let entries = read_sources(root).unwrap();
    let summary: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e.kind,
                e.uri,
                e.suite,
                e.components.join(",")
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "deb http://registry.example.com/debian bookworm main,contrib",
            "deb-src http://registry.example.com/debian bookworm main",
            "deb http://registry.example.com/debian-security bookworm-security main",
            "deb http://registry.example.com/debian bookworm-updates main",
            "deb http://registry.example.com/debian bookworm-backports main",
            "deb-src http://registry.example.com/debian bookworm-updates main",
            "deb-src http://registry.example.com/debian bookworm-backports main",
        ]
    );
    assert_eq!(entries[0].signed_by(), Some("/k.gpg"));
    assert_eq!(
        entries[0].options.get("arch").map(String::as_str),
        Some("amd64")
    );
    assert_eq!(
        entries[3].signed_by(),
        Some("/usr/share/keyrings/debian-archive-keyring.gpg")
    );
    assert!(entries[2].file.ends_with("a.list"));
}

#[test]
fn missing_files_are_fine_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read_sources(dir.path()).unwrap().is_empty());
    write(
        dir.path(),
        "etc/apt/sources.list.d/bad.list",
        "deb http://registry.example.com/debian\n",
    );
    let e = read_sources(dir.path()).unwrap_err().to_string();
    assert!(e.contains("bad.list") && e.contains("line 1"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "etc/apt/sources.list.d/bad.sources",
        "Types: deb\nSuites: sid\n",
    );
    let e = read_sources(dir.path()).unwrap_err().to_string();
    assert!(e.contains("bad.sources") && e.contains("URIs"), "{e}");
}

#[test]
fn mirror_for_suite_maps_security_and_main_archive() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A third-party repo first, with a codename-like suite and `main`.
    write(
        root,
        "etc/apt/sources.list.d/00-vendor.list",
        "deb https://vendor.example.com/apt cloud-sdk-bookworm main\n\
         deb https://vendor.example.com/node nodistro main\n",
    );
    write(
        root,
        "etc/apt/sources.list.d/debian.sources",
        "Types: deb\nURIs: http://registry.example.com/debian/\nSuites: bookworm-updates bookworm\nComponents: main\n\n\
         Types: deb\nURIs: http://registry.example.com/debian-security\nSuites: bookworm-security\nComponents: main\n",
    );
    let entries = read_sources(root).unwrap();
    assert_eq!(
        mirror_for_suite(&entries, "trixie").as_deref(),
        Some("http://registry.example.com/debian")
    );
    assert_eq!(
        mirror_for_suite(&entries, "trixie-updates").as_deref(),
        Some("http://registry.example.com/debian")
    );
    assert_eq!(
        mirror_for_suite(&entries, "trixie-security").as_deref(),
        Some("http://registry.example.com/debian-security")
    );
    // Only -updates configured: still the main archive.
    let only_updates: Vec<_> = entries
        .iter()
        .filter(|e| e.suite != "bookworm")
        .cloned()
        .collect();
    assert_eq!(
        mirror_for_suite(&only_updates, "trixie").as_deref(),
        Some("http://registry.example.com/debian")
    );
    // No security entry, no vendor fallback.
    let no_sec: Vec<_> = entries
        .iter()
        .filter(|e| !e.suite.ends_with("-security"))
        .cloned()
        .collect();
    assert_eq!(mirror_for_suite(&no_sec, "trixie-security"), None);
    let vendors: Vec<_> = entries
        .iter()
        .filter(|e| e.uri.contains("vendor"))
        .cloned()
        .collect();
    assert_eq!(mirror_for_suite(&vendors, "trixie"), None);
}
