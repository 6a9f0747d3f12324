//! Checks that a compiled program can run in the image on its own: an ELF
//! for the image's CPU that needs no dynamic loader and no shared library.
//!
//! The image ships no libc for the tools compiled from source, so a binary
//! that asks for `ld-linux` or `libc.so.6` would only fail when a user runs
//! it inside a cluster; this check makes that a build error instead.

use crate::error::{bad_input, verification, Result};
use image_layout::Platform;
use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::Endianness;
use std::path::Path;

/// What an ELF header must say to run on one platform.
struct Expected {
    machine: elf::Machine,
    class64: bool,
    little_endian: bool,
    label: &'static str,
}

fn expected(platform: &Platform) -> Result<Expected> {
    let t = crate::target::Target::of(platform)?.elf;
    Ok(Expected {
        machine: elf::Machine(t.machine),
        class64: t.class64,
        little_endian: t.little_endian,
        label: t.label,
    })
}

/// Checks that `path` is a statically linked ELF executable for `platform`:
/// the machine, class and byte order match, and it has neither a
/// `PT_INTERP` program header nor a `DT_NEEDED` entry. A static-PIE (what
/// Rust's musl targets produce) passes: it has a dynamic section for its own
/// relocations but names no library.
///
/// The error names the file, the platform and the reason, on one line.
pub fn check_static(path: &Path, platform: &Platform) -> Result<()> {
    let data = std::fs::read(path)
        .map_err(|e| bad_input(format!("{}: cannot read: {e}", path.display())))?;
    let fail = |why: String| {
        verification(format!(
            "{}: not a static executable for {platform}: {why}",
            path.display()
        ))
    };
    if data.len() < 16 || &data[..4] != b"\x7fELF" {
        return Err(fail("not an ELF file".into()));
    }
    let want = expected(platform)?;
    match data[4] {
        c if c == elf::ELFCLASS64.0 => check::<elf::FileHeader64<Endianness>>(&data, &want),
        c if c == elf::ELFCLASS32.0 => check::<elf::FileHeader32<Endianness>>(&data, &want),
        c => Err(format!("unknown ELF class {c}")),
    }
    .map_err(fail)
}

/// A reader's name for an ELF machine (object names them only with its
/// `names` feature, which would pull in every table it has).
fn machine_label(m: elf::Machine) -> String {
    let known = [
        (elf::EM_X86_64, "x86-64"),
        (elf::EM_AARCH64, "AArch64"),
        (elf::EM_ARM, "32-bit ARM"),
        (elf::EM_RISCV, "RISC-V"),
        (elf::EM_PPC64, "PowerPC64"),
        (elf::EM_S390, "s390"),
        (elf::EM_386, "i386"),
    ];
    known
        .iter()
        .find(|(k, _)| *k == m)
        .map_or_else(|| format!("number {}", m.0), |(_, l)| (*l).to_string())
}

fn check<Elf: FileHeader<Endian = Endianness>>(data: &[u8], want: &Expected) -> Result<(), String> {
    let header = Elf::parse(data).map_err(|e| format!("bad ELF header: {e}"))?;
    let endian = header
        .endian()
        .map_err(|e| format!("bad ELF header: {e}"))?;
    // Class and byte order first: a wrong one makes e_machine meaningless.
    if header.is_class_64() != want.class64 || header.is_little_endian() != want.little_endian {
        return Err(format!(
            "it is a {}-bit {}-endian ELF, the platform needs {}",
            if header.is_class_64() { 64 } else { 32 },
            if header.is_little_endian() {
                "little"
            } else {
                "big"
            },
            want.label
        ));
    }
    let machine = header.e_machine(endian);
    if machine != want.machine {
        return Err(format!(
            "ELF machine is {}, the platform needs {}",
            machine_label(machine),
            want.label
        ));
    }
    let kind = header.e_type(endian);
    if kind != elf::ET_EXEC && kind != elf::ET_DYN {
        return Err(format!("ELF type {} is not an executable", kind.0));
    }
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| format!("bad program headers: {e}"))?;
    if phdrs.is_empty() {
        return Err("it has no program headers, so it cannot be executed".into());
    }
    for ph in phdrs {
        if let Some(interp) = ph
            .interpreter(endian, data)
            .map_err(|e| format!("bad PT_INTERP: {e}"))?
        {
            return Err(format!(
                "it is dynamically linked (PT_INTERP {})",
                String::from_utf8_lossy(interp)
            ));
        }
        if let Some(entries) = ph
            .dynamic(endian, data)
            .map_err(|e| format!("bad PT_DYNAMIC: {e}"))?
        {
            let needed = entries
                .iter()
                .take_while(|d| d.d_tag(endian) != elf::DT_NULL)
                .filter(|d| d.d_tag(endian) == elf::DT_NEEDED)
                .count();
            if needed > 0 {
                return Err(format!(
                    "it needs {needed} shared librar{} (DT_NEEDED)",
                    if needed == 1 { "y" } else { "ies" }
                ));
            }
        }
    }
    Ok(())
}

/// The dynamic loader an ELF program asks for (its `PT_INTERP`), or None
/// for a static one; an error says why `data` is not an ELF program.
pub fn interpreter(data: &[u8]) -> std::result::Result<Option<String>, String> {
    if data.len() < 16 || &data[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    match data[4] {
        c if c == elf::ELFCLASS64.0 => interp::<elf::FileHeader64<Endianness>>(data),
        c if c == elf::ELFCLASS32.0 => interp::<elf::FileHeader32<Endianness>>(data),
        c => Err(format!("unknown ELF class {c}")),
    }
}

fn interp<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> std::result::Result<Option<String>, String> {
    let header = Elf::parse(data).map_err(|e| format!("bad ELF header: {e}"))?;
    let endian = header
        .endian()
        .map_err(|e| format!("bad ELF header: {e}"))?;
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| format!("bad program headers: {e}"))?;
    for ph in phdrs {
        if let Some(path) = ph
            .interpreter(endian, data)
            .map_err(|e| format!("bad PT_INTERP: {e}"))?
        {
            return Ok(Some(
                String::from_utf8_lossy(path)
                    .trim_end_matches('\0')
                    .to_string(),
            ));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_an_elf() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("script");
        std::fs::write(&p, "#!/bin/sh\necho hi\n").unwrap();
        let plat: Platform = "linux/amd64".parse().unwrap();
        let e = check_static(&p, &plat).unwrap_err().to_string();
        assert!(
            e.contains("script") && e.contains("linux/amd64") && e.contains("not an ELF"),
            "{e}"
        );
        let e = check_static(&dir.path().join("missing"), &plat)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing") && e.contains("cannot read"), "{e}");
    }

    #[test]
    fn refuses_a_truncated_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("short");
        let mut data = b"\x7fELF\x02\x01\x01".to_vec();
        data.resize(20, 0);
        std::fs::write(&p, data).unwrap();
        let plat: Platform = "linux/amd64".parse().unwrap();
        let e = check_static(&p, &plat).unwrap_err().to_string();
        assert!(e.contains("bad ELF header"), "{e}");
    }
}
