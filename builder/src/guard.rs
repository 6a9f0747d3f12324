//! The launcher that takes a guarded program's place in a variant.
//!
//! A file capability with the effective bit (`cap_net_raw=ep`) is what a
//! program that never raises capabilities itself needs, but the kernel
//! refuses to start such a file when the capability is outside the
//! container's bounding set (`--cap-drop ALL`, Kubernetes' restricted
//! standard), and ignores it under no_new_privs (`allowPrivilegeEscalation:
//! false`). The launcher reads both from `/proc/self/status`: where the
//! capability can be had it execs the program; elsewhere it says in one
//! line what is missing and runs the program without it (through the
//! dynamic loader when the kernel would refuse the file itself), so what
//! needs no capability (`tcpdump -r`, `nmap -sT`) still works.

use debian::caps::{capability_name, CapSet};

/// The launcher script (POSIX sh) for `program`, whose real file is `real`
/// with the file capabilities `caps`; `loader` is its ELF interpreter, None
/// for a static program (which then cannot run outside the bounding set).
pub fn launcher(program: &str, real: &str, caps: &CapSet, loader: Option<&str>) -> String {
    let names = cap_names(caps.permitted);
    let bare: Vec<&str> = names.iter().map(|n| n.trim_start_matches("CAP_")).collect();
    let docker: Vec<String> = bare.iter().map(|n| format!("--cap-add {n}")).collect();
    let caps_text = names.join(", ");
    let bounding = format!(
        "{program}: {caps_text} is not among this container's capabilities, so what needs it fails: add {} to them (docker run {}; Kubernetes securityContext.capabilities.add)",
        bare.join(" and "),
        docker.join(" ")
    );
    let nnp = format!(
        "{program}: no_new_privs is set, so the file capability {caps_text} is ignored and what needs it fails: allow privilege escalation (Kubernetes allowPrivilegeEscalation: true; Docker without --security-opt no-new-privileges)"
    );
    let without = match loader {
        Some(ld) => format!("exec {ld} --argv0 \"$0\" {real} \"$@\""),
        None => "exit 126".to_string(),
    };
    format!(
        r#"#!/bin/sh
# Written by netshoot-build: {real} has the file capabilities {caps},
# which the kernel refuses to start outside the bounding set and ignores
# under no_new_privs. Say which, in one line, and run it without them.
need={mask:#x}
while read -r key value rest; do
  case $key in
    CapBnd:) bnd=0x$value ;;
    CapPrm:) prm=0x$value ;;
    NoNewPrivs:) nnp=$value ;;
  esac
done < /proc/self/status
if [ $(( bnd & need )) -ne $(( need )) ]; then
  echo "{bounding}" >&2
  {without}
fi
if [ "$nnp" != 0 ] && [ $(( prm & need )) -ne $(( need )) ]; then
  echo "{nnp}" >&2
fi
exec {real} "$@"
"#,
        mask = caps.permitted,
    )
}

/// `CAP_NET_RAW`-style names of the bits of `mask`.
fn cap_names(mask: u64) -> Vec<String> {
    (0..64u32)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| match capability_name(b) {
            Some(n) => format!("CAP_{}", n.to_uppercase()),
            None => format!("capability {b}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The launcher for the host's `env` (given cap_net_raw, which it
    /// does not need), run by the host's sh under `setpriv`, which sets
    /// the bounding set and no_new_privs as a runtime would.
    fn run(setpriv: &[&str], loader: Option<&str>) -> (Option<i32>, String, String) {
        let dir = tempfile::tempdir().unwrap();
        // Readable by the other user of the no_new_privs case.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let caps = debian::caps::parse_capabilities("cap_net_raw=ep").unwrap();
        let script = dir.path().join("env");
        std::fs::write(&script, launcher("env", "/usr/bin/env", &caps, loader)).unwrap();
        let out = Command::new("setpriv")
            .args(setpriv)
            .args(["--", "sh"])
            .arg(&script)
            .arg("GUARD_TEST=ran")
            .output()
            .expect("setpriv (util-linux) runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn host_loader() -> Option<String> {
        let data = std::fs::read("/usr/bin/env").ok()?;
        crate::elf::interpreter(&data).ok().flatten()
    }

    #[test]
    fn says_what_is_missing_in_one_line_and_runs_without_it() {
        let Some(ld) = host_loader() else {
            eprintln!("skipped: /usr/bin/env is not a dynamic ELF here");
            return;
        };
        let ld = Some(ld.as_str());
        // Granted (root with NET_RAW, or a file capability that works):
        // silent.
        let (code, out, err) = run(&[], ld);
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("GUARD_TEST=ran") && err.is_empty(),
            "{out}{err}"
        );
        // NET_RAW outside the bounding set: one line, then the program
        // through its loader.
        let (code, out, err) = run(&["--bounding-set", "-net_raw"], ld);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("GUARD_TEST=ran"), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("env: CAP_NET_RAW is not among") && err.contains("--cap-add NET_RAW"),
            "{err}"
        );
        // no_new_privs as a user without the capability: the other line.
        let user = [
            "--reuid",
            "65532",
            "--regid",
            "65532",
            "--clear-groups",
            "--no-new-privs",
        ];
        let (code, out, err) = run(&user, ld);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("GUARD_TEST=ran"), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("no_new_privs is set") && err.contains("allowPrivilegeEscalation: true"),
            "{err}"
        );
        // A static program cannot be run without the kernel's consent.
        let (code, out, err) = run(&["--bounding-set", "-net_raw"], None);
        assert_eq!(code, Some(126), "{out}{err}");
        assert!(
            !out.contains("GUARD_TEST") && err.contains("CAP_NET_RAW"),
            "{out}{err}"
        );
    }

    #[test]
    fn names_every_capability_it_needs() {
        let caps = debian::caps::parse_capabilities("cap_net_raw,cap_net_admin=ep").unwrap();
        let text = launcher("dumpcap", "/x/dumpcap", &caps, None);
        assert!(text.contains("need=0x3000"), "{text}");
        assert!(
            text.contains("CAP_NET_ADMIN, CAP_NET_RAW")
                && text.contains("--cap-add NET_ADMIN --cap-add NET_RAW"),
            "{text}"
        );
    }
}
