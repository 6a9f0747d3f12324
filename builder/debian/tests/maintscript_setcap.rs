//! `security.capability` bytes from `debian::caps` compared with what the
//! real `setcap` (libcap2-bin) makes the kernel store on a file.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use debian::caps::{parse_capabilities, security_capability_xattr};

fn setcap_bin() -> &'static str {
    for p in ["/usr/sbin/setcap", "/sbin/setcap"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("setcap not found: install libcap2-bin (apt-get install libcap2-bin)");
}

fn read_xattr(path: &Path) -> Vec<u8> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = CString::new("security.capability").unwrap();
    let mut buf = vec![0u8; 64];
    // SAFETY: both strings are NUL-terminated and buf is valid for its length.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert!(
        n >= 0,
        "getxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    buf.truncate(n as usize);
    buf
}

#[test]
fn xattr_matches_real_setcap() {
    let setcap = setcap_bin();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        "cap_net_raw+ep",
        "cap_net_raw,cap_net_admin=eip",
        "cap_net_raw=p",
        "cap_net_bind_service=+ep",
        "cap_sys_admin+i",
        "cap_bpf,cap_perfmon+ep",
        "cap_net_raw+ep cap_net_admin+ep",
        "cap_chown,cap_dac_override,cap_checkpoint_restore=ep",
    ];
    for (i, text) in cases.iter().enumerate() {
        let f = dir.path().join(format!("f{i}"));
        std::fs::write(&f, b"x").unwrap();
        let st = Command::new(setcap).arg(text).arg(&f).status().unwrap();
        assert!(st.success(), "setcap {text} failed");
        let real = read_xattr(&f);
        let ours = security_capability_xattr(&parse_capabilities(text).unwrap());
        assert_eq!(ours, real, "capability text {text:?}");
        assert_eq!(ours.len(), 20);
    }
}

#[test]
fn refused_like_setcap() {
    let setcap = setcap_bin();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    // The effective bit would not cover cap_setuid: libcap refuses, so do we.
    let text = "cap_chown+ep cap_setuid+i";
    let st = Command::new(setcap)
        .arg(text)
        .arg(&f)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());
    assert!(parse_capabilities(text).is_err());
    let err = parse_capabilities("cap_nonsense+ep")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cap_nonsense"), "{err}");
}
