//! Layering: a one-package update changes only the layer that holds the
//! package (and the small top layer with the dpkg status), every other
//! layer keeps its digest, the tools layer (downloaded and compiled
//! programs) included; `--layers 1` gives a single layer. Uses a signed
//! loopback repository made by the test (see common/aptrepo.rs) and a
//! pinned download from the same loopback server.

#[path = "common/aptrepo.rs"]
mod aptrepo;
mod common;

use aptrepo::*;
use common::*;
use std::path::Path;
use std::process::Command;

const DAY: u64 = 86400;

fn body(name: &str, version: &str) -> Vec<u8> {
    format!("{name} {version}\n").repeat(200).into_bytes()
}

fn layers(layout: &Path) -> Vec<String> {
    let raw = ok(Command::new("skopeo")
        .args(["inspect", "--raw", "--override-arch", "amd64"])
        .arg(format!("oci:{}:t", layout.display())));
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    // The tag points at an index; take the amd64 manifest.
    let m = v["manifests"][0]["digest"].as_str().unwrap().to_string();
    let man: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(m.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    man["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn files_of(layout: &Path, digest: &str) -> String {
    ok(Command::new("tar").arg("-tzf").arg(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    ))
}

#[test]
fn one_package_update_changes_only_its_layer_and_the_top() {
    let t = tempfile::tempdir().unwrap();
    let mut repo = Repo::new(t.path(), &["amd64"]);
    let names: Vec<String> = (0..16).map(|i| format!("pkg-{i:02}")).collect();
    for n in &names {
        repo.add(
            "stable",
            &DebSpec::new(n, "1.0", "amd64").file(
                &format!("/usr/share/{n}/data"),
                &body(n, "1.0"),
                0o644,
            ),
        );
    }
    let now = now_secs();
    repo.publish("stable", now - 3600, Some(now + 7 * DAY));
    let server = DirServer::start(&repo.root);
    // A downloaded program (a `url` source) and a configuration file (a
    // `local` source).
    let tool = repo.root.join("tools/tool-bin");
    std::fs::create_dir_all(tool.parent().unwrap()).unwrap();
    std::fs::write(&tool, "#!/bin/sh\necho tool\n".repeat(500)).unwrap();
    std::fs::write(t.path().join("motd"), "hello\n").unwrap();
    let spec = t.path().join("netshoot.toml");
    repo.write_keyring(&t.path().join("keyring.gpg"), false);
    std::fs::write(
        &spec,
        format!(
            r#"platforms = ["linux/amd64"]
[image]
name = "layers"
tag = "t"
[apt]
packages = [{}]
[[apt.repository]]
name = "test"
suites = ["stable"]
keyring = "keyring.gpg"
url = "{url}"

[[url]]
name = "tool"
dest = "/usr/local/bin/tool"
[url.platform."linux/amd64"]
url = "http://127.0.0.1:{port}/tools/tool-bin"

[[local]]
src = "motd"
dest = "/etc/motd"
"#,
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            url = server.url(),
            port = server.port
        ),
    )
    .unwrap();
    let cache = t.path().join("cache");
    let build = |out: &str, extra: &[&str]| {
        let out = t.path().join(out);
        ok(bin()
            .args(["build", "-q", "--spec"])
            .arg(&spec)
            .arg("--out")
            .arg(&out)
            .arg("--cache")
            .arg(&cache)
            .args(extra));
        out
    };
    let before_dir = build("before", &["--layers", "6"]);
    let before = layers(&before_dir);
    // A budget of 6: the top layer, the tools layer, one slot kept for a
    // large package (none here), so 3 hash buckets hold the 16 packages.
    assert_eq!(before.len(), 5, "{before:?}");
    let (tools, top) = (before.len() - 2, before.len() - 1);
    let tools_listing = files_of(&before_dir, &before[tools]);
    assert!(
        tools_listing.contains("usr/local/bin/tool") && !tools_listing.contains("dpkg"),
        "the layer below the top holds the downloaded program alone: {tools_listing}"
    );
    let top_listing = files_of(&before_dir, &before[top]);
    assert!(
        top_listing.contains("etc/motd") && !top_listing.contains("usr/local/bin/tool"),
        "the top layer holds the local file, not the program: {top_listing}"
    );

    // The same lock again: the same layers.
    assert_eq!(layers(&build("again", &["--layers", "6"])), before);

    // Update one package and relock.
    repo.add(
        "stable",
        &DebSpec::new("pkg-07", "1.1", "amd64").file(
            "/usr/share/pkg-07/data",
            &body("pkg-07", "1.1"),
            0o644,
        ),
    );
    repo.publish("stable", now - 1800, Some(now + 7 * DAY));
    ok(bin().args(["lock", "-q", "--spec"]).arg(&spec));
    let after_dir = build("after", &["--layers", "6"]);
    let after = layers(&after_dir);
    assert_eq!(after.len(), before.len());
    let changed: Vec<usize> = (0..before.len())
        .filter(|i| before[*i] != after[*i])
        .collect();
    assert_eq!(
        changed.len(),
        2,
        "changed layers {changed:?}: expected the package's and the top"
    );
    assert!(
        !changed.contains(&tools),
        "a package bump must not re-push the tools layer"
    );
    assert!(
        changed.contains(&top),
        "the top layer (dpkg status) must change"
    );
    let pkg_layer = changed.iter().find(|i| **i != top).copied().unwrap();
    let listing = files_of(&after_dir, &after[pkg_layer]);
    assert!(listing.contains("usr/share/pkg-07/data"), "{listing}");
    assert!(
        listing.contains("var/lib/dpkg/info/pkg-07.list"),
        "dpkg info travels with the package: {listing}"
    );
    let top_listing = files_of(&after_dir, &after[top]);
    assert!(top_listing.contains("var/lib/dpkg/status"), "{top_listing}");

    // --layers 1: one layer holding everything.
    let one = build("one", &["--layers", "1"]);
    let l = layers(&one);
    assert_eq!(l.len(), 1);
    let all = files_of(&one, &l[0]);
    assert!(all.contains("usr/share/pkg-15/data") && all.contains("var/lib/dpkg/status"));
}
