//! The file operations `debian::maintscript` reads from scripts: real
//! postinsts of the image's packages (fixtures copied from their trixie
//! `.deb`s) and hand-written scripts for the shell forms, and `apply_mode`
//! against GNU chmod itself.

use debian::fileop::{FileTest, PathTest};
use debian::maintscript::{analyze, analyze_with_args, apply_mode, FileOp, ScriptActions};
use std::process::Command;

const CONFIGURE: &[&str] = &["configure", ""];

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The operations without their conditions, as compact text.
fn ops(a: &ScriptActions) -> Vec<String> {
    a.file_ops
        .iter()
        .map(|o| match &o.op {
            FileOp::SetCap(c) => format!("setcap {} {}", c.text, c.path),
            FileOp::StatOverride(s) => format!("statoverride {:o} {}", s.mode, s.path),
            other => format!("{other:?}"),
        })
        .collect()
}

fn test(path: &str, test: FileTest, holds: bool, point: usize) -> PathTest {
    PathTest {
        path: path.into(),
        test,
        holds,
        point,
    }
}

#[test]
fn fping_gets_its_capability_and_not_the_setuid_fallback() {
    let a = analyze_with_args("fping", &fixture("fping.postinst"), CONFIGURE);
    // The statoverride to 4755 runs only when setcap fails; setcap is
    // always applied, so it never does.
    assert_eq!(ops(&a), ["setcap cap_net_raw+ep /usr/bin/fping"]);
    assert!(a.stat_overrides.is_empty(), "{:?}", a.stat_overrides);
}

#[test]
fn oping_drops_setuid_after_setcap_in_script_order() {
    let a = analyze_with_args("oping", &fixture("oping.postinst"), CONFIGURE);
    let want = [
        "setcap cap_net_raw+ep /usr/bin/oping",
        r#"Chmod { path: "/usr/bin/oping", mode: "u-s" }"#,
        "setcap cap_net_raw+ep /usr/bin/noping",
        r#"Chmod { path: "/usr/bin/noping", mode: "u-s" }"#,
    ];
    assert_eq!(ops(&a), want);
    assert!(a.file_ops.iter().all(|o| o.when.is_empty()));
}

#[test]
fn ssh_agent_is_made_setgid_ssh_through_a_function() {
    let a = analyze_with_args(
        "openssh-client",
        &fixture("openssh-client.postinst"),
        CONFIGURE,
    );
    let want = [
        "Umask(18)",
        r#"Chown { path: "/usr/bin/ssh-agent", user: None, group: Some("_ssh") }"#,
        r#"Chmod { path: "/usr/bin/ssh-agent", mode: "2755" }"#,
    ];
    assert_eq!(ops(&a), want);
    assert_eq!(a.groups.len(), 1, "{:?}", a.groups);
    assert_eq!(a.groups[0].name, "_ssh");
}

#[test]
fn file_tests_guard_operations_and_string_tests_are_decided() {
    let script = r#"#!/bin/sh
set -e
make_dir() {
  if [ ! -d "$DPKG_ROOT$1" ]; then
    mkdir -m 0750 "$DPKG_ROOT$1"
    chown "root:$2" "$DPKG_ROOT$1"
  fi
}
if [ "$1" = configure ] && [ -z "$2" ]; then
  make_dir /var/lib/demo adm
  [ -L /var/tmp/x ] || ln -sf /tmp /var/tmp/x
  : > /var/log/demo.log
  umask 066
  touch /etc/subuid
fi
if [ "$1" = configure ] && [ "$2" != "" ]; then
  chmod 600 /etc/upgrade-only
elif [ -e /etc/flag ]; then
  rmdir /var/old
else
  cp -p /usr/share/demo/conf /etc/demo.conf
fi
"#;
    let a = analyze_with_args("demo", script, CONFIGURE);
    let when: Vec<&Vec<PathTest>> = a.file_ops.iter().map(|o| &o.when).collect();
    // The condition's number aside, as the tests are written below.
    let at = |i: usize, point: usize| -> Vec<PathTest> {
        when[i]
            .iter()
            .map(|t| PathTest { point, ..t.clone() })
            .collect()
    };
    assert_eq!(
        ops(&a),
        [
            r#"Mkdir { path: "/var/lib/demo", parents: false, mode: Some("0750") }"#,
            r#"Chown { path: "/var/lib/demo", user: Some("root"), group: Some("adm") }"#,
            r#"Symlink { target: "/tmp", link: "/var/tmp/x", force: true }"#,
            r#"Truncate { path: "/var/log/demo.log" }"#,
            "Umask(54)",
            r#"Touch { path: "/etc/subuid" }"#,
            r#"Rmdir { path: "/var/old" }"#,
            r#"Copy { src: "/usr/share/demo/conf", dst: "/etc/demo.conf", preserve: true }"#,
        ]
    );
    // Both operations under one `if` share its point: it is tested once;
    // the `else` of another `if` has that one's point.
    assert_eq!(when[0][0].point, when[1][0].point);
    assert_eq!(when[6][0].point, when[7][0].point);
    assert_ne!(when[0][0].point, when[6][0].point);
    let not_dir = vec![test("/var/lib/demo", FileTest::Dir, false, 0)];
    assert_eq!(at(0, 0), not_dir);
    assert_eq!(at(1, 0), not_dir);
    assert_eq!(at(2, 0), [test("/var/tmp/x", FileTest::Symlink, false, 0)]);
    assert!(when[3].is_empty() && when[4].is_empty() && when[5].is_empty());
    assert_eq!(at(6, 0), [test("/etc/flag", FileTest::Exists, true, 0)]);
    assert_eq!(at(7, 0), [test("/etc/flag", FileTest::Exists, false, 0)]);
    assert!(a.unresolved.is_empty(), "{:?}", a.unresolved);
}

#[test]
fn unknown_operands_are_reported_not_guessed() {
    let script = "chmod $(stat -c %a /usr/local) /usr/local/x\nmkdir rel\nln /a /b\nchown -R root /srv\ncp /a\n";
    let a = analyze("demo", script);
    assert!(a.file_ops.is_empty(), "{:?}", a.file_ops);
    assert_eq!(a.unresolved.len(), 5, "{:#?}", a.unresolved);
}

#[test]
fn uncalled_functions_have_no_effect() {
    let script = "never() {\n  chmod 4755 /usr/bin/x\n}\nlater() { chmod \"$1\" /usr/bin/y; }\n";
    let a = analyze_with_args("demo", script, CONFIGURE);
    assert!(a.file_ops.is_empty(), "{:?}", a.file_ops);
    // Without the arguments, a function may be called in a way the
    // reading misses: what it cannot resolve is still reported.
    let a = analyze("demo", script);
    assert!(a.file_ops.is_empty(), "{:?}", a.file_ops);
    assert_eq!(a.unresolved.len(), 1, "{:?}", a.unresolved);
}

/// The mode GNU chmod gives a file of mode `old` for argument `spec`.
fn gnu_chmod(spec: &str, old: u32, dir: bool) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("f");
    if dir {
        std::fs::create_dir(&p).unwrap();
    } else {
        std::fs::write(&p, b"").unwrap();
    }
    let set = format!("{old:o}");
    for m in [set.as_str(), spec] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("umask 022; chmod -- {m} \"$0\""))
            .arg(&p)
            .output()
            .unwrap();
        assert!(out.status.success(), "chmod {m}: {out:?}");
    }
    std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn apply_mode_agrees_with_gnu_chmod() {
    let cases = [
        ("u-s", 0o4755, false),
        ("u+s", 0o755, false),
        ("2755", 0o755, false),
        ("g+s", 0o755, true),
        ("755", 0o2775, true),
        ("0755", 0o2775, true),
        ("00755", 0o2775, true),
        ("u=rwx,go=rx", 0o600, false),
        ("go-w", 0o777, false),
        ("a+X", 0o644, true),
        ("a+X", 0o644, false),
        ("a+X", 0o744, false),
        ("+t", 0o777, true),
        ("o=", 0o777, false),
        ("+x", 0o644, false),
        ("-w", 0o666, false),
        ("=r", 0o777, false),
        ("1777", 0o755, true),
    ];
    for (spec, old, dir) in cases {
        assert_eq!(
            apply_mode(spec, old, dir),
            Some(gnu_chmod(spec, old, dir)),
            "chmod {spec} on {old:o} (dir: {dir})"
        );
    }
}

#[test]
fn apply_mode_refuses_what_is_not_a_mode() {
    for bad in ["", "u", "x+r", "u+q", "8755", "77777", "u+s,", "rwx"] {
        assert_eq!(apply_mode(bad, 0o755, false), None, "{bad:?}");
    }
}

#[test]
fn operations_under_an_unknown_condition_are_marked_undecided() {
    let script = r#"if [ "$(readlink /lib64)" != usr/lib64 ]; then ln -sf usr/lib64 /lib64; fi
if ! dpkg-statoverride --list /usr/bin/x; then chmod 2755 /usr/bin/x; fi
if [ "$(uname -s)" = Linux ] && [ -d /usr/lib ]; then chmod 755 /usr/lib; fi
getent group g || chgrp g /usr/bin/x
"#;
    let a = analyze_with_args("demo", script, CONFIGURE);
    let decided: Vec<bool> = a.file_ops.iter().map(|o| o.decided).collect();
    assert_eq!(decided, [false, true, true, false], "{:#?}", a.file_ops);
}
