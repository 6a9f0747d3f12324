//! Test hosts in network namespaces and runc containers joined to them:
//! a "target container" (192.0.2.1) and a peer (192.0.2.2) on a veth.
#![allow(dead_code)]

use super::ok;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A pair of namespaces joined by a veth: the "target container"
/// (192.0.2.1) and a peer (192.0.2.2).
pub struct Net {
    pub target: String,
    pub peer: String,
    children: Vec<Child>,
}

pub fn ip(args: &[&str]) {
    ok(Command::new("ip").args(args));
}

impl Net {
    pub fn new(tag: &str) -> Net {
        let id = format!("{}{}", tag, std::process::id() % 100000);
        let target = format!("nsbT{id}");
        let peer = format!("nsbP{id}");
        let _ = Command::new("ip").args(["netns", "del", &target]).output();
        let _ = Command::new("ip").args(["netns", "del", &peer]).output();
        ip(&["netns", "add", &target]);
        ip(&["netns", "add", &peer]);
        let (vt, vp) = (format!("vt{id}"), format!("vp{id}"));
        ip(&["link", "add", &vt, "type", "veth", "peer", "name", &vp]);
        ip(&["link", "set", &vt, "netns", &target]);
        ip(&["link", "set", &vp, "netns", &peer]);
        for (ns, dev, addr) in [(&target, &vt, "192.0.2.1/24"), (&peer, &vp, "192.0.2.2/24")] {
            ip(&["-n", ns, "link", "set", dev, "name", "eth0"]);
            ip(&["-n", ns, "addr", "add", addr, "dev", "eth0"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        Net {
            target,
            peer,
            children: Vec::new(),
        }
    }

    /// Starts `cmd` inside namespace `ns`, chrooted into `rootfs` (the
    /// image's own binaries serve as the target's servers).
    pub fn spawn(&mut self, ns: &str, rootfs: &Path, cmd: &str) {
        // A private mount namespace gets the host's /dev bound into the
        // image root (servers such as iperf3 read /dev/urandom); the host's
        // mounts are not touched.
        let script = format!(
            "mount --rbind /dev {0}/dev && exec chroot {0} /bin/sh -c '{1}'",
            rootfs.display(),
            cmd.replace('\'', "'\\''")
        );
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
            ])
            .arg(script)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        self.children.push(child);
    }

    pub fn exec(&self, ns: &str, rootfs: &Path, cmd: &str) -> String {
        ok(Command::new("ip")
            .args(["netns", "exec", ns, "chroot"])
            .arg(rootfs)
            .args(["/bin/sh", "-c", cmd]))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Anything else still running in the namespaces goes too.
        for ns in [&self.target, &self.peer] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Waits (bounded) until `check` succeeds.
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

/// Runs `script` with `shell -c` in a runc container over `rootfs` (an
/// umoci bundle's, whose config.json is beside it), in the network
/// namespace at `netns` (None: the host's, like `--net host`), with
/// capabilities `caps`. As user `uid:gid` when given: then `caps` bound
/// what the process may gain, and it starts with none (as a non-root
/// container does); file capabilities raise them at exec.
pub fn runc_shell(
    rootfs: &Path,
    netns: Option<&str>,
    caps: &[&str],
    user: Option<(u32, u32)>,
    shell: &str,
    script: &str,
) -> (bool, String) {
    let mut cfg = runc_config(rootfs, netns, &[shell, "-c", script]);
    let caps: Vec<String> = caps.iter().map(|c| format!("CAP_{c}")).collect();
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        // As another user, the process starts with no capability: only
        // the bounding set says what file capabilities may raise.
        let granted = user.is_none() || set == "bounding";
        cfg["process"]["capabilities"][set] = if granted {
            serde_json::json!(caps)
        } else {
            serde_json::json!([])
        };
    }
    if let Some((uid, gid)) = user {
        cfg["process"]["user"] = serde_json::json!({"uid": uid, "gid": gid});
        // Docker's default: file capabilities take effect at exec.
        cfg["process"]["noNewPrivileges"] = serde_json::json!(false);
    }
    runc_with(cfg)
}

/// What a runtime's options decide for a non-root container's process:
/// the bounding set (the process itself starts with no capability, as
/// Docker and containerd start a non-root one), no_new_privs
/// (`--security-opt no-new-privileges`, `allowPrivilegeEscalation:
/// false`), and `net.ipv4.ping_group_range` in its network namespace
/// (Docker and containerd 2 open it to every group; the kernel's default
/// is `1 0`, no group).
#[derive(Clone, Debug)]
pub struct Confinement {
    pub bounding: Vec<&'static str>,
    pub no_new_privs: bool,
    pub ping_group_range: &'static str,
}

/// Runs `script` with `/bin/sh -c` in a runc container over `rootfs` as
/// the user its image names (the bundle's config.json, from umoci), in
/// the network namespace at `netns`, confined as `c` says.
pub fn runc_confined(rootfs: &Path, netns: &str, c: &Confinement, script: &str) -> (bool, String) {
    let mut cfg = runc_config(rootfs, Some(netns), &["/bin/sh", "-c", script]);
    let bounding: Vec<String> = c.bounding.iter().map(|n| format!("CAP_{n}")).collect();
    for set in ["effective", "permitted", "inheritable", "ambient"] {
        cfg["process"]["capabilities"][set] = serde_json::json!([]);
    }
    cfg["process"]["capabilities"]["bounding"] = serde_json::json!(bounding);
    cfg["process"]["noNewPrivileges"] = serde_json::json!(c.no_new_privs);
    cfg["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ping_group_range": c.ping_group_range});
    runc_with(cfg)
}

/// The bundle's config.json for `rootfs`, running `args` without a
/// terminal, with a plain environment, in the network namespace at
/// `netns` (None: the host's).
fn runc_config(rootfs: &Path, netns: Option<&str>, args: &[&str]) -> serde_json::Value {
    let mut cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rootfs.parent().unwrap().join("config.json")).unwrap(),
    )
    .unwrap();
    cfg["root"]["path"] = serde_json::json!(rootfs);
    cfg["process"]["terminal"] = serde_json::json!(false);
    cfg["process"]["args"] = serde_json::json!(args);
    cfg["process"]["env"] = serde_json::json!([
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root",
        "TERM=dumb"
    ]);
    let ns: Vec<serde_json::Value> = cfg["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "network")
        .cloned()
        .chain(netns.map(|p| serde_json::json!({"type": "network", "path": p})))
        .collect();
    cfg["linux"]["namespaces"] = serde_json::json!(ns);
    cfg
}

/// Runs the container `cfg` describes with runc (one at a time, at most
/// 180 s) and removes it; returns (success, stdout + stderr).
fn runc_with(cfg: serde_json::Value) -> (bool, String) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    let id = format!("nsb-img-{}", std::process::id());
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    let out = Command::new("timeout")
        .args(["180", "runc", "run", "--bundle"])
        .arg(dir.path())
        .arg(&id)
        .output()
        .unwrap();
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

impl Net {
    /// Runs `command` (after `ip netns exec PEER`) `times` times from the
    /// peer, 200 ms apart, starting after 1.5 s: traffic for a capture in
    /// the target. Bounded; join the handle before asserting.
    pub fn requests_from_peer(&self, command: Vec<OsString>, times: usize) -> JoinHandle<()> {
        let peer = self.peer.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            for _ in 0..times {
                let _ = Command::new("ip")
                    .args(["netns", "exec", &peer])
                    .args(&command)
                    .output();
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    }
}

/// The lines a script printed after `== NAME` and before the next `== `.
pub fn section(out: &str, name: &str) -> String {
    out.split(&format!("== {name}\n"))
        .nth(1)
        .and_then(|s| s.split("\n== ").next())
        .unwrap_or("")
        .to_string()
}

/// `args` as a command line for [`Net::requests_from_peer`].
pub fn argv<S: Into<OsString> + Clone>(args: &[S]) -> Vec<OsString> {
    args.iter().cloned().map(Into::into).collect()
}
