//! `debian::maintscript::analyze` on hand-written scripts.

use debian::maintscript::{analyze, Alternative, SystemGroup};

#[test]
fn alternatives_with_continuations_variables_and_loops() {
    let script = r#"#!/bin/sh
set -e
# comment: update-alternatives --install /bin/no no /bin/no 1
BIN=/usr/bin
PRIO=40
NAME="demo"
case "$1" in
  configure|abort-upgrade)
    update-alternatives --quiet \
        --install "$BIN/$NAME" $NAME ${BIN}/demo.real $PRIO \
        --slave /usr/share/man/man1/$NAME.1.gz "$NAME.1.gz" \
                /usr/share/man/man1/demo.real.1.gz
    for t in a b; do
        update-alternatives --install /usr/bin/tool-$t tool-$t /usr/lib/demo/$t 5 >/dev/null 2>&1 || true
    done
    update-alternatives --install /usr/bin/x x "${X_PATH:-/opt/x}" 1
    ;;
esac
"#;
    let a = analyze("demo", script);
    assert!(a.unresolved.is_empty(), "{:?}", a.unresolved);
    assert_eq!(a.alternatives.len(), 4);
    assert_eq!(
        a.alternatives[0],
        Alternative {
            link: "/usr/bin/demo".into(),
            name: "demo".into(),
            path: "/usr/bin/demo.real".into(),
            priority: 40,
            slaves: vec![(
                "/usr/share/man/man1/demo.1.gz".into(),
                "demo.1.gz".into(),
                "/usr/share/man/man1/demo.real.1.gz".into()
            )],
        }
    );
    assert_eq!(a.alternatives[1].link, "/usr/bin/tool-a");
    assert_eq!(a.alternatives[2].path, "/usr/lib/demo/b");
    assert_eq!(a.alternatives[3].path, "/opt/x");
}

#[test]
fn users_and_groups() {
    let script = r#"
addgroup --system --quiet svc
adduser --system --group --home /var/lib/svc --shell /bin/false --gecos 'Service user' --quiet svcuser
adduser --system --ingroup svc --no-create-home --home=/nonexistent nobodyish
adduser someuser somegroup
useradd -r -M -d /var/empty -s /usr/sbin/nologin -g svc rtool
useradd --system -U -u 999 withgroup
groupadd -r -g 120 netdev2
groupadd plaingroup
getent passwd ghost || adduser --system "$1"
"#;
    let a = analyze("demo", script);
    let names: Vec<&str> = a.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["svc", "svcuser", "withgroup", "netdev2"]);
    assert_eq!(
        a.groups[3],
        SystemGroup {
            name: "netdev2".into(),
            gid: Some(120)
        }
    );
    let users: Vec<&str> = a.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(users, ["svcuser", "nobodyish", "rtool", "withgroup"]);
    let svc = &a.users[0];
    assert!(svc.user_group);
    assert_eq!(svc.home.as_deref(), Some("/var/lib/svc"));
    assert_eq!(svc.shell.as_deref(), Some("/bin/false"));
    assert_eq!(svc.gecos.as_deref(), Some("Service user"));
    assert!(svc.create_home);
    let nb = &a.users[1];
    assert_eq!(nb.primary_group.as_deref(), Some("svc"));
    assert_eq!(nb.home.as_deref(), Some("/nonexistent"));
    assert!(!nb.create_home && !nb.user_group);
    let rt = &a.users[2];
    assert_eq!(rt.home.as_deref(), Some("/var/empty"));
    assert_eq!(rt.shell.as_deref(), Some("/usr/sbin/nologin"));
    assert_eq!(rt.primary_group.as_deref(), Some("svc"));
    assert!(!rt.user_group && !rt.create_home);
    assert_eq!(a.users[3].uid, Some(999));
    assert!(a.users[3].user_group);
    assert_eq!(a.unresolved.len(), 1, "{:?}", a.unresolved);
    assert!(a.unresolved[0].starts_with("demo: adduser --system \"$1\""));
}

#[test]
fn capabilities_statoverride_and_unresolved() {
    let script = r#"#!/bin/sh
PROGRAM=$(dpkg-divert --truename /usr/bin/dumpcap)
DIR=`dirname $PROGRAM`
if setcap cap_net_raw,cap_net_admin=eip $PROGRAM; then :; fi
setcap -q cap_net_raw+ep "$DIR/ping" cap_net_bind_service=+ep /usr/sbin/httpd
dpkg-statoverride --update --add root wireshark 4750 $PROGRAM
cat > /etc/x <<EOF
setcap cap_sys_admin+ep /in/heredoc
EOF
setcap cap_net_raw+ep $(some-helper --path)
setcap cap_bogus+ep /usr/bin/z
update-alternatives --install /usr/bin/y y "$2" 10
T=$(mktemp)
setcap cap_net_raw+p "$T"
"#;
    let a = analyze("wire", script);
    let caps: Vec<(&str, &str)> = a
        .capabilities
        .iter()
        .map(|c| (c.path.as_str(), c.text.as_str()))
        .collect();
    assert_eq!(
        caps,
        [
            ("/usr/bin/dumpcap", "cap_net_raw,cap_net_admin=eip"),
            ("/usr/bin/ping", "cap_net_raw+ep"),
            ("/usr/sbin/httpd", "cap_net_bind_service=+ep"),
        ]
    );
    assert_eq!(a.capabilities[0].caps.permitted, (1 << 12) | (1 << 13));
    assert_eq!(a.stat_overrides.len(), 1);
    assert_eq!(a.stat_overrides[0].mode, 0o4750);
    assert_eq!(a.stat_overrides[0].path, "/usr/bin/dumpcap");
    assert_eq!(a.unresolved.len(), 4, "{:#?}", a.unresolved);
    assert!(a.unresolved[0].contains("some-helper"));
    assert!(a.unresolved[1].contains("cap_bogus"));
    assert!(a.unresolved[2].contains("\"$2\""));
    assert!(a.unresolved[3].contains("$T"));
}

#[test]
fn for_loop_over_unknown_list_is_reported() {
    let script = "for f in $(ls /usr/lib/x); do\n  setcap cap_net_raw+ep $f\ndone\nfor b in ping arping; do setcap cap_net_raw+ep /bin/$b; done\n";
    let a = analyze("p", script);
    let paths: Vec<&str> = a.capabilities.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["/bin/ping", "/bin/arping"]);
    assert_eq!(a.unresolved.len(), 1, "{:?}", a.unresolved);
}

#[test]
fn garbage_does_not_panic() {
    for s in [
        "",
        "'unterminated",
        "\"unterminated $",
        "${",
        "$(",
        "`",
        "update-alternatives --install",
        "update-alternatives --install a b c notanumber",
        "update-alternatives --install a b c 1 --slave x",
        "setcap",
        "setcap cap_net_raw+ep",
        "adduser --system",
        "useradd -r",
        "for",
        "for x in; do done",
        "done done",
        "cat <<",
        "\\",
        "a=$(",
        "x ${y:-$(z)}",
    ] {
        let _ = analyze("g", s);
    }
}

#[test]
fn nested_loops_are_bounded() {
    let mut script = String::new();
    for i in 0..8 {
        script.push_str(&format!("for v{i} in 1 2 3 4 5 6 7 8 9 10; do\n"));
    }
    script.push_str("setcap cap_net_raw+ep /bin/x\n");
    for _ in 0..8 {
        script.push_str("done\n");
    }
    let a = analyze("loop", &script);
    assert!(
        a.unresolved.iter().any(|u| u.contains("too complex")),
        "{:?}",
        a.unresolved
    );
}
