//! File capabilities: the text form that `setcap(8)` takes (see
//! `cap_text_formats(7)`) and the `security.capability` extended attribute
//! the kernel reads when a file is executed.
//!
//! Packages such as `iputils-ping` grant `cap_net_raw` in their postinst
//! with `setcap`; since we never run maintainer scripts, the builder puts
//! the equivalent xattr into the layer tar itself.

use std::fmt;

/// Capability names in kernel bit order (`linux/capability.h`), without
/// the `cap_` prefix. The index is the bit number.
const CAP_NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// `VFS_CAP_REVISION_2`: 64-bit capability sets, no namespace root id.
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
/// `VFS_CAP_FLAGS_EFFECTIVE`: raise the permitted set into the effective
/// set on exec (file capabilities have a single effective bit).
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x0000_0001;

/// The three capability sets of a file, one bit per capability number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapSet {
    /// Capabilities made effective on exec. For a file this is all or
    /// nothing: see [`parse_capabilities`].
    pub effective: u64,
    /// Capabilities the process is permitted to hold after exec.
    pub permitted: u64,
    /// Capabilities inherited across exec when the caller has them.
    pub inheritable: u64,
}

/// A capability text that cannot be parsed or cannot be stored on a file.
#[derive(Debug, thiserror::Error)]
pub enum CapError {
    /// A capability name that is not known.
    #[error("capabilities {text:?}: unknown capability {name:?}")]
    UnknownCapability {
        /// The whole input text.
        text: String,
        /// The offending name.
        name: String,
    },
    /// A clause that does not follow `caps(=|+|-)flags...`.
    #[error("capabilities {text:?}: malformed clause {clause:?}: {reason}")]
    Malformed {
        /// The whole input text.
        text: String,
        /// The offending clause.
        clause: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Effective bits that do not cover permitted|inheritable: a file has
    /// a single effective flag, so libcap refuses such a set, and so do we.
    #[error(
        "capabilities {text:?}: a file's effective set must be empty or cover all permitted and inheritable capabilities"
    )]
    PartialEffective {
        /// The whole input text.
        text: String,
    },
}

impl CapSet {
    /// True when no capability is set in any of the three sets.
    pub fn is_empty(&self) -> bool {
        self.effective == 0 && self.permitted == 0 && self.inheritable == 0
    }
}

/// The name (`cap_net_raw`) of capability bit `bit`, if known.
pub fn capability_name(bit: u32) -> Option<&'static str> {
    CAP_NAMES.get(bit as usize).copied()
}

impl fmt::Display for CapSet {
    /// Writes the set in the `getcap` style: `cap_a,cap_b=ep`, with one
    /// clause per distinct combination of flags.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for bit in 0..64u32 {
            let m = 1u64 << bit;
            let mut flags = String::new();
            if self.effective & m != 0 {
                flags.push('e');
            }
            if self.inheritable & m != 0 {
                flags.push('i');
            }
            if self.permitted & m != 0 {
                flags.push('p');
            }
            if flags.is_empty() {
                continue;
            }
            let name = match capability_name(bit) {
                Some(n) => format!("cap_{n}"),
                None => bit.to_string(),
            };
            match groups.iter_mut().find(|(fl, _)| *fl == flags) {
                Some((_, names)) => names.push(name),
                None => groups.push((flags, vec![name])),
            }
        }
        let clauses: Vec<String> = groups
            .into_iter()
            .map(|(flags, names)| format!("{}={flags}", names.join(",")))
            .collect();
        f.write_str(&clauses.join(" "))
    }
}

/// Parses the `setcap` text form: whitespace-separated clauses, each a
/// comma-separated capability list (names with or without `cap_`, any
/// case, bit numbers, or `all`; empty means all) followed by one or more
/// `op flags` actions where `op` is `=` (clear the listed capabilities in
/// every set, then raise them in `flags`), `+` (raise) or `-` (lower) and
/// `flags` are letters among `e`, `i`, `p`.
///
/// `all` means the 41 capabilities this module knows (up to
/// `cap_checkpoint_restore`); libcap asks the running kernel instead, so a
/// newer kernel may give `setcap all=ep` more bits.
///
/// The result must be storable on a file: an effective set that is not
/// empty must cover every permitted and inheritable capability (this is
/// libcap's rule too), otherwise [`CapError::PartialEffective`].
pub fn parse_capabilities(text: &str) -> Result<CapSet, CapError> {
    let mut set = CapSet::default();
    let malformed = |clause: &str, reason: &str| CapError::Malformed {
        text: text.to_string(),
        clause: clause.to_string(),
        reason: reason.to_string(),
    };
    let mut any = false;
    for clause in text.split_whitespace() {
        any = true;
        let Some(op_at) = clause.find(['=', '+', '-']) else {
            return Err(malformed(clause, "no `=`, `+` or `-` operator"));
        };
        let (names, mut actions) = clause.split_at(op_at);
        let mask = parse_cap_list(text, names)?;
        while let Some(op) = actions.chars().next() {
            let rest = &actions[1..];
            let end = rest.find(['=', '+', '-']).unwrap_or(rest.len());
            let flags = &rest[..end];
            actions = &rest[end..];
            let (mut e, mut i, mut p) = (false, false, false);
            for c in flags.chars() {
                match c.to_ascii_lowercase() {
                    'e' => e = true,
                    'i' => i = true,
                    'p' => p = true,
                    _ => return Err(malformed(clause, &format!("unknown flag {c:?}"))),
                }
            }
            match op {
                '=' => {
                    set.effective &= !mask;
                    set.inheritable &= !mask;
                    set.permitted &= !mask;
                    apply(&mut set, mask, e, i, p, true);
                }
                '+' | '-' => {
                    if flags.is_empty() {
                        return Err(malformed(clause, "operator without flags"));
                    }
                    apply(&mut set, mask, e, i, p, op == '+');
                }
                _ => return Err(malformed(clause, "unexpected operator")),
            }
        }
    }
    if !any {
        return Err(malformed(text, "empty capability text"));
    }
    if set.effective != 0 && (set.permitted | set.inheritable) & !set.effective != 0 {
        return Err(CapError::PartialEffective {
            text: text.to_string(),
        });
    }
    Ok(set)
}

fn apply(set: &mut CapSet, mask: u64, e: bool, i: bool, p: bool, raise: bool) {
    for (flag, target) in [
        (e, &mut set.effective),
        (i, &mut set.inheritable),
        (p, &mut set.permitted),
    ] {
        if flag {
            if raise {
                *target |= mask;
            } else {
                *target &= !mask;
            }
        }
    }
}

fn all_mask() -> u64 {
    (1u64 << CAP_NAMES.len()) - 1
}

fn parse_cap_list(text: &str, names: &str) -> Result<u64, CapError> {
    if names.is_empty() {
        return Ok(all_mask());
    }
    let mut mask = 0u64;
    for raw in names.split(',') {
        let name = raw.trim().to_ascii_lowercase();
        if name == "all" {
            mask |= all_mask();
            continue;
        }
        let bit = if let Ok(n) = name.parse::<u32>() {
            (n < 64).then_some(n)
        } else {
            let short = name.strip_prefix("cap_").unwrap_or(&name);
            CAP_NAMES.iter().position(|n| *n == short).map(|p| p as u32)
        };
        match bit {
            Some(b) => mask |= 1u64 << b,
            None => {
                return Err(CapError::UnknownCapability {
                    text: text.to_string(),
                    name: raw.to_string(),
                })
            }
        }
    }
    Ok(mask)
}

/// The value of the `security.capability` xattr for `caps`, as the kernel
/// stores it for `setcap` run by the initial user namespace's root:
/// `VFS_CAP_REVISION_2` with the effective flag when the effective set is
/// not empty, then (permitted, inheritable) for bits 0-31 and then for bits
/// 32-63, all little-endian u32: 20 bytes.
pub fn security_capability_xattr(caps: &CapSet) -> Vec<u8> {
    let mut magic = VFS_CAP_REVISION_2;
    if caps.effective != 0 {
        magic |= VFS_CAP_FLAGS_EFFECTIVE;
    }
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(&magic.to_le_bytes());
    for half in 0..2 {
        let shift = 32 * half;
        out.extend_from_slice(&((caps.permitted >> shift) as u32).to_le_bytes());
        out.extend_from_slice(&((caps.inheritable >> shift) as u32).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let s = parse_capabilities("cap_net_raw+ep").unwrap();
        assert_eq!(s.permitted, 1 << 13);
        assert_eq!(s.effective, 1 << 13);
        assert_eq!(s.inheritable, 0);
        let s = parse_capabilities("cap_net_raw,cap_net_admin=eip").unwrap();
        assert_eq!(s.inheritable, (1 << 13) | (1 << 12));
        assert_eq!(s.to_string(), "cap_net_admin,cap_net_raw=eip");
        let s = parse_capabilities("CAP_NET_RAW=p cap_bpf+p").unwrap();
        assert_eq!(s.permitted, (1 << 13) | (1 << 39));
        let s = parse_capabilities("all=p cap_chown-p").unwrap();
        assert_eq!(s.permitted, all_mask() & !1);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            parse_capabilities("cap_bogus+ep"),
            Err(CapError::UnknownCapability { .. })
        ));
        assert!(parse_capabilities("cap_net_raw").is_err());
        assert!(parse_capabilities("cap_net_raw+x").is_err());
        assert!(parse_capabilities("").is_err());
        assert!(matches!(
            parse_capabilities("cap_net_raw+p cap_net_admin+ep"),
            Err(CapError::PartialEffective { .. })
        ));
    }

    #[test]
    fn xattr_layout() {
        let s = parse_capabilities("cap_net_raw+ep").unwrap();
        let x = security_capability_xattr(&s);
        assert_eq!(
            x,
            [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }
}
