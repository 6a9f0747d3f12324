//! `debian::maintscript::analyze` on the real postinst scripts of the
//! host's (bookworm) packages, fetched with `apt-get download`.
//!
//! Needs the network and apt lists (`apt-get update`); set
//! `NETSHOOT_OFFLINE=1` to skip.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use debian::deb::read_deb;
use debian::maintscript::{analyze, ScriptActions};

const PACKAGES: [&str; 5] = [
    "iputils-ping",
    "iptables",
    "netcat-openbsd",
    "tcpdump",
    "wireshark-common",
];

/// Downloads the packages and returns each one's postinst, read both with
/// our reader and with `dpkg-deb -e` (they must agree).
fn postinsts() -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("apt-get")
        .arg("download")
        .args(PACKAGES)
        .current_dir(dir.path())
        .output()
        .expect("apt-get must be installed");
    assert!(
        out.status.success(),
        "apt-get download {PACKAGES:?} (run apt-get update first?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut scripts = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "deb") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let (control, _) = read_deb(bytes.as_slice(), &mut std::io::sink()).unwrap();
        let name = control.package().to_string();
        let ours = control
            .scripts
            .get("postinst")
            .unwrap_or_else(|| panic!("{name} has no postinst"))
            .clone();
        let ctl = dir.path().join(format!("{name}.control"));
        let st = Command::new("dpkg-deb")
            .arg("-e")
            .arg(&path)
            .arg(&ctl)
            .status()
            .unwrap();
        assert!(st.success(), "dpkg-deb -e {}", path.display());
        let theirs = std::fs::read(Path::new(&ctl).join("postinst")).unwrap();
        assert_eq!(ours, theirs, "{name}: postinst differs from dpkg-deb -e");
        scripts.insert(name, String::from_utf8(ours).unwrap());
    }
    assert_eq!(scripts.len(), PACKAGES.len(), "{:?}", scripts.keys());
    scripts
}

fn alt(a: &ScriptActions, name: &str, path: &str) -> (i64, Vec<(String, String, String)>) {
    let x = a
        .alternatives
        .iter()
        .find(|x| x.name == name && x.path == path)
        .unwrap_or_else(|| panic!("no alternative {name} -> {path} in {:#?}", a.alternatives));
    (x.priority, x.slaves.clone())
}

fn s3(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.into(), b.into(), c.into())
}

#[test]
fn real_postinst_scripts() {
    if std::env::var("NETSHOOT_OFFLINE").as_deref() == Ok("1") {
        eprintln!(
            "\n!!!!!!!! NETSHOOT_OFFLINE=1: SKIPPING the real maintainer script test (maintscript_debian) !!!!!!!!\n"
        );
        return;
    }
    let scripts = postinsts();

    let ping = analyze("iputils-ping", &scripts["iputils-ping"]);
    assert!(ping.unresolved.is_empty(), "{:?}", ping.unresolved);
    assert_eq!(ping.capabilities.len(), 1);
    assert_eq!(ping.capabilities[0].path, "/bin/ping");
    assert_eq!(ping.capabilities[0].text, "cap_net_raw+ep");
    assert_eq!(ping.capabilities[0].caps.permitted, 1 << 13);

    let ipt = analyze("iptables", &scripts["iptables"]);
    assert!(ipt.unresolved.is_empty(), "{:?}", ipt.unresolved);
    assert_eq!(ipt.alternatives.len(), 6);
    let (prio, slaves) = alt(&ipt, "iptables", "/usr/sbin/iptables-nft");
    assert_eq!(prio, 20);
    assert_eq!(
        slaves,
        [
            s3(
                "/usr/sbin/iptables-restore",
                "iptables-restore",
                "/usr/sbin/iptables-nft-restore"
            ),
            s3(
                "/usr/sbin/iptables-save",
                "iptables-save",
                "/usr/sbin/iptables-nft-save"
            ),
        ]
    );
    assert_eq!(alt(&ipt, "iptables", "/usr/sbin/iptables-legacy").0, 10);
    assert_eq!(ipt.alternatives[0].link, "/usr/sbin/iptables");
    for n in ["ip6tables", "arptables", "ebtables"] {
        assert!(ipt.alternatives.iter().any(|a| a.name == n), "{n}");
    }

    let nc = analyze("netcat-openbsd", &scripts["netcat-openbsd"]);
    assert!(nc.unresolved.is_empty(), "{:?}", nc.unresolved);
    assert_eq!(nc.alternatives.len(), 1);
    let a = &nc.alternatives[0];
    assert_eq!((a.link.as_str(), a.name.as_str()), ("/bin/nc", "nc"));
    assert_eq!((a.path.as_str(), a.priority), ("/bin/nc.openbsd", 50));
    assert_eq!(a.slaves.len(), 3);
    assert_eq!(a.slaves[0], s3("/bin/netcat", "netcat", "/bin/nc.openbsd"));
    assert_eq!(
        a.slaves[1],
        s3(
            "/usr/share/man/man1/nc.1.gz",
            "nc.1.gz",
            "/usr/share/man/man1/nc_openbsd.1.gz"
        )
    );

    let td = analyze("tcpdump", &scripts["tcpdump"]);
    assert!(td.unresolved.is_empty(), "{:?}", td.unresolved);
    assert_eq!(td.groups.len(), 1);
    assert_eq!(td.groups[0].name, "tcpdump");
    assert_eq!(td.users.len(), 1);
    let u = &td.users[0];
    assert_eq!(u.name, "tcpdump");
    assert_eq!(u.primary_group.as_deref(), Some("tcpdump"));
    assert_eq!(u.home.as_deref(), Some("/nonexistent"));
    assert!(!u.create_home);
    assert!(!u.user_group);

    // The group that may run dumpcap is called `wireshark`.
    let ws = analyze("wireshark-common", &scripts["wireshark-common"]);
    assert!(ws.unresolved.is_empty(), "{:?}", ws.unresolved);
    assert_eq!(ws.groups.len(), 1);
    assert_eq!(ws.groups[0].name, "wireshark");
    assert_eq!(ws.capabilities.len(), 1);
    assert_eq!(ws.capabilities[0].path, "/usr/bin/dumpcap");
    assert_eq!(
        ws.capabilities[0].caps.effective,
        (1 << 12) | (1 << 13),
        "cap_net_raw,cap_net_admin=eip"
    );
    assert!(ws.users.is_empty());
}
