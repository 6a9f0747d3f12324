//! One [`Target`] per platform, knowing every name the platform goes by:
//! the OCI platform, Debian's architecture, the Rust musl triple, zig's
//! triple and the ELF machine its programs carry. Every part of the
//! builder asks here instead of keeping a table of its own.

use crate::error::{bad_input, Result};
use image_layout::Platform;

/// The ELF identity of a platform's programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfMachine {
    /// `e_machine` (`EM_X86_64`, ...).
    pub machine: u16,
    /// ELFCLASS64 (else 32).
    pub class64: bool,
    /// Little-endian (else big).
    pub little_endian: bool,
    /// How people name it (`x86-64`, `AArch64`).
    pub label: &'static str,
}

/// Every name of one platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// `os/arch[/variant]`, as in `--platform`.
    pub platform: &'static str,
    /// Debian's architecture (`amd64`, `armhf`, `ppc64el`).
    pub debian_arch: &'static str,
    /// The Rust musl target (`x86_64-unknown-linux-musl`).
    pub rust_triple: &'static str,
    /// zig's `-target` (`x86_64-linux-musl`).
    pub zig_triple: &'static str,
    /// zig's `-mcpu` where the Rust target's baseline is narrower than
    /// zig's default CPU for the triple.
    pub zig_cpu: Option<&'static str>,
    /// The ELF machine of its programs.
    pub elf: ElfMachine,
}

const fn elf(machine: u16, class64: bool, little_endian: bool, label: &'static str) -> ElfMachine {
    ElfMachine {
        machine,
        class64,
        little_endian,
        label,
    }
}

/// The platforms the builder knows, in a stable order.
pub const TARGETS: &[Target] = &[
    Target {
        platform: "linux/amd64",
        debian_arch: "amd64",
        rust_triple: "x86_64-unknown-linux-musl",
        zig_triple: "x86_64-linux-musl",
        zig_cpu: None,
        elf: elf(62, true, true, "x86-64"),
    },
    Target {
        platform: "linux/arm64",
        debian_arch: "arm64",
        rust_triple: "aarch64-unknown-linux-musl",
        zig_triple: "aarch64-linux-musl",
        zig_cpu: None,
        elf: elf(183, true, true, "AArch64"),
    },
    Target {
        platform: "linux/arm/v7",
        debian_arch: "armhf",
        rust_triple: "armv7-unknown-linux-musleabihf",
        zig_triple: "arm-linux-musleabihf",
        zig_cpu: Some("generic+v7a+vfp3d16+thumb2-neon"),
        elf: elf(40, false, true, "32-bit ARM"),
    },
    Target {
        platform: "linux/arm/v6",
        debian_arch: "armel",
        rust_triple: "arm-unknown-linux-musleabihf",
        zig_triple: "arm-linux-musleabihf",
        zig_cpu: Some("arm1176jzf_s"),
        elf: elf(40, false, true, "32-bit ARM"),
    },
    Target {
        platform: "linux/386",
        debian_arch: "i386",
        rust_triple: "i686-unknown-linux-musl",
        zig_triple: "x86-linux-musl",
        zig_cpu: None,
        elf: elf(3, false, true, "i386"),
    },
    Target {
        platform: "linux/riscv64",
        debian_arch: "riscv64",
        rust_triple: "riscv64gc-unknown-linux-musl",
        zig_triple: "riscv64-linux-musl",
        zig_cpu: None,
        elf: elf(243, true, true, "64-bit RISC-V"),
    },
    Target {
        platform: "linux/ppc64le",
        debian_arch: "ppc64el",
        rust_triple: "powerpc64le-unknown-linux-musl",
        zig_triple: "powerpc64le-linux-musl",
        zig_cpu: None,
        elf: elf(21, true, true, "64-bit little-endian PowerPC"),
    },
    Target {
        platform: "linux/s390x",
        debian_arch: "s390x",
        rust_triple: "s390x-unknown-linux-musl",
        zig_triple: "s390x-linux-musl",
        zig_cpu: None,
        elf: elf(22, true, false, "64-bit s390x"),
    },
];

impl Target {
    /// The target of `platform` (`linux/arm` without a variant is arm/v7,
    /// as Docker takes it); an unknown one is bad input naming it.
    pub fn of(platform: &Platform) -> Result<Target> {
        let mut name = platform.to_string();
        if name == "linux/arm" {
            name = "linux/arm/v7".into();
        }
        TARGETS
            .iter()
            .find(|t| t.platform == name)
            .copied()
            .ok_or_else(|| {
                bad_input(format!(
                    "platform {platform} is not one the builder knows (known: {})",
                    TARGETS
                        .iter()
                        .map(|t| t.platform)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The OCI platform.
    pub fn oci(&self) -> Platform {
        self.platform
            .parse()
            .expect("the table's platforms are well formed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_round_trips_and_names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for t in TARGETS {
            assert_eq!(Target::of(&t.oci()).unwrap(), *t);
            assert!(seen.insert(t.debian_arch), "{}", t.debian_arch);
        }
        let arm: Platform = "linux/arm".parse().unwrap();
        assert_eq!(Target::of(&arm).unwrap().debian_arch, "armhf");
        let mips = Platform {
            os: "linux".into(),
            architecture: "mips64le".into(),
            variant: None,
        };
        let e = Target::of(&mips).unwrap_err().to_string();
        assert!(e.contains("linux/mips64le"), "{e}");
    }
}
