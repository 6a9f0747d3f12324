//! zig, the one cross C toolchain of every compiled source: the static
//! toolbox's recipes and the C code (and final link) of cargo builds, for
//! every musl target, with its own musl and kernel headers. Nothing else
//! is needed: no Debian cross gcc, no foreign dpkg architecture.

use crate::error::{bad_input, Result};
use crate::target::Target;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The zig compiler: `$NETSHOOT_ZIG`, else `zig` on PATH.
#[derive(Clone, Debug)]
pub struct Zig {
    /// The executable (absolute).
    pub path: PathBuf,
    /// `zig version`.
    pub version: String,
}

impl Zig {
    /// Finds zig and reads its version.
    pub fn find() -> Result<Zig> {
        let candidate = match std::env::var_os("NETSHOOT_ZIG") {
            Some(p) => PathBuf::from(p),
            None => on_path("zig").ok_or_else(|| {
                bad_input(
                    "C code is compiled with zig, which is not on PATH: \
                     run tools/scripts/install-deps.sh (pip package ziglang), or set NETSHOOT_ZIG",
                )
            })?,
        };
        let path = std::fs::canonicalize(&candidate)
            .map_err(|e| bad_input(format!("zig {}: {e}", candidate.display())))?;
        let out = Command::new(&path)
            .arg("version")
            .output()
            .map_err(|e| bad_input(format!("zig {}: {e}", path.display())))?;
        if !out.status.success() {
            return Err(bad_input(format!(
                "zig {}: `zig version` failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Zig { path, version })
    }

    /// The code-generation arguments for `target`: `-target` and, where
    /// the Rust target has a narrower baseline than zig's default CPU,
    /// `-mcpu` (arm/v7 without NEON, as Debian's armhf).
    pub fn target_args(target: &Target) -> String {
        match target.zig_cpu {
            Some(cpu) => format!("-target {} -mcpu={cpu}", target.zig_triple),
            None => format!("-target {}", target.zig_triple),
        }
    }

    /// Writes (or finds) the wrappers a cargo build for `target` uses as
    /// `CC`, `CXX`, `AR`, `RANLIB` and linker, in `dir`.
    pub fn cargo_tools(&self, dir: &Path, target: &Target) -> Result<CargoTools> {
        let args = Zig::target_args(target);
        let z = self.path.display();
        let mut tools = CargoTools {
            cc: dir.join("cc"),
            cxx: dir.join("c++"),
            ar: dir.join("ar"),
            ranlib: dir.join("ranlib"),
            linker: dir.join("linker"),
            identity: String::new(),
        };
        let scripts = [
            (
                &tools.cc,
                format!("{DROP_TARGET}exec {z} cc {args} \"$@\"\n"),
            ),
            (
                &tools.cxx,
                format!("{DROP_TARGET}exec {z} c++ {args} \"$@\"\n"),
            ),
            (&tools.ar, format!("exec {z} ar \"$@\"\n")),
            (&tools.ranlib, format!("exec {z} ranlib \"$@\"\n")),
            (
                &tools.linker,
                format!("{DROP_CRT}exec {z} cc {args} \"$@\"\n"),
            ),
        ];
        std::fs::create_dir_all(dir).map_err(|e| bad_input(format!("{}: {e}", dir.display())))?;
        let mut all = String::new();
        for (path, body) in &scripts {
            let text = format!("#!/bin/sh\n{body}");
            write_script(path, &text)?;
            // Without zig's own path, which may differ between machines.
            all.push_str(&text.replace(&z.to_string(), "zig"));
        }
        let digest = image_layout::Digest::of(all.as_bytes());
        tools.identity = format!(
            "zig {} {args} wrappers {}",
            self.version,
            &digest.hex()[..16]
        );
        Ok(tools)
    }
}

/// The tools of one cargo target, all zig.
#[derive(Clone, Debug)]
pub struct CargoTools {
    /// C compiler (`CC_<triple>`).
    pub cc: PathBuf,
    /// C++ compiler (`CXX_<triple>`).
    pub cxx: PathBuf,
    /// Archiver (`AR_<triple>`).
    pub ar: PathBuf,
    /// `RANLIB_<triple>`.
    pub ranlib: PathBuf,
    /// The linker rustc calls (`CARGO_TARGET_<TRIPLE>_LINKER`).
    pub linker: PathBuf,
    /// What decides the bytes these tools make: zig's version, the target
    /// arguments and the wrappers' text (part of the cargo cache key).
    pub identity: String,
}

/// The `cc` crate passes clang's `--target=<rust triple>`, which zig does
/// not parse; the wrapper sets zig's own target instead.
const DROP_TARGET: &str =
    "for a do shift; case \"$a\" in --target=*) ;; *) set -- \"$@\" \"$a\";; esac; done\n";

/// rustc links musl targets with its own start files (by path from its
/// `self-contained` folder, or by bare name when the standard library is
/// compiled from source); zig brings the ones of its musl, so rustc's are
/// dropped (both would define `_start`).
const DROP_CRT: &str = "for a do shift; case \"$a\" in */self-contained/*crt*.o|crt*.o|rcrt1.o|Scrt1.o|-lgcc_s) ;; *) set -- \"$@\" \"$a\";; esac; done\n";

/// Writes an executable script, replacing it atomically when it differs
/// (another build may be running it).
fn write_script(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |e: std::io::Error| bad_input(format!("{}: {e}", path.display()));
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(err)?;
    std::fs::write(tmp.path(), text).map_err(err)?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_v7_keeps_the_rust_baseline_and_others_take_zig_defaults() {
        let p = |s: &str| Target::of(&s.parse().unwrap()).unwrap();
        assert_eq!(
            Zig::target_args(&p("linux/arm/v7")),
            "-target arm-linux-musleabihf -mcpu=generic+v7a+vfp3d16+thumb2-neon"
        );
        assert_eq!(
            Zig::target_args(&p("linux/s390x")),
            "-target s390x-linux-musl"
        );
    }
}
