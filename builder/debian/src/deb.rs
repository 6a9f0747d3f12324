//! Reading a binary package (`.deb`) without extracting anything onto the
//! host: the control members are parsed in memory and the data tarball is
//! streamed once, decompressed, into a writer the caller chooses (a cache
//! blob), while its entries are listed with the offset of each file body in
//! that decompressed stream. File bodies are later read from the cached tar
//! by offset, so an xz member is decompressed exactly once.
//!
//! A `.deb` is an `ar` archive of `debian-binary` (`2.0`), `control.tar`
//! and `data.tar`, the tarballs optionally compressed with gzip, xz or zstd
//! (data also bzip2). Members whose name starts with `_` are extensions
//! dpkg ignores, and so do we.
//!
//! Confinement: every entry path is normalised to a relative path without
//! `.` components; a `..` that would climb above the root, a hard link whose
//! target does, device nodes and FIFOs are refused. Symbolic link targets
//! are kept as written (absolute ones included), because they are resolved
//! inside the image at run time. **The rootfs assembler must therefore
//! never follow a symlink when placing an entry**: a package shipping
//! `etc/x -> /` followed by `etc/x/passwd` would otherwise write outside the
//! intended directory. Hard links must name an earlier regular file of the
//! same archive. A path may occur twice; as with tar, the later entry wins,
//! and resolving that is left to the assembler.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::control::{parse_paragraphs, Paragraph};

/// Control members are tiny; anything beyond this is an attack or a bug.
const MAX_CONTROL_TAR: u64 = 64 << 20;

/// Names of control members that are maintainer scripts or trigger
/// declarations, kept in [`DebControl::scripts`].
const SCRIPT_NAMES: [&str; 6] = [
    "preinst", "postinst", "prerm", "postrm", "config", "triggers",
];

/// The control part of a `.deb`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebControl {
    /// The `control` file.
    pub control: Paragraph,
    /// `conffiles`, one absolute path per entry as dpkg writes them
    /// (`/etc/curlrc`); a leading `remove-on-upgrade` flag is dropped.
    pub conffiles: Vec<String>,
    /// `md5sums` as (path without leading `/`, md5 hex).
    pub md5sums: Vec<(String, String)>,
    /// Maintainer scripts and `triggers`, by member name
    /// (`preinst`, `postinst`, `prerm`, `postrm`, `config`, `triggers`).
    pub scripts: BTreeMap<String, Vec<u8>>,
    /// Every other control member (`shlibs`, `symbols`, `templates`, ...).
    pub other: BTreeMap<String, Vec<u8>>,
}

impl DebControl {
    /// The `Package` field, or `?` when absent.
    pub fn package(&self) -> &str {
        self.control.get("Package").unwrap_or("?")
    }
}

/// What a data entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file whose body is `size` bytes at `offset` in the
    /// decompressed data tar written to `data_out`.
    File {
        /// Byte offset of the body in the decompressed tar.
        offset: u64,
        /// Body length.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link; `target` as written in the package.
    Symlink {
        /// The link target, not normalised (it may be absolute).
        target: String,
    },
    /// A hard link to an earlier regular file of the same package.
    Hardlink {
        /// The normalised path of the entry linked to.
        target: String,
    },
}

/// One entry of a package's data tarball.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataEntry {
    /// Normalised relative path, e.g. `usr/bin/curl`; never empty (the
    /// archive's `./` root entry is not listed).
    pub path: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777` mask).
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name as recorded (usually `root`), empty when absent.
    pub uname: String,
    /// Group name as recorded, empty when absent.
    pub gname: String,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// A `.deb` that cannot be read or is refused.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// Reading or decompressing failed (truncated file, corrupt stream,
    /// failing writer).
    #[error("package {package}: {context}: {source}")]
    Io {
        /// The `Package` field, or `?` before the control member is read.
        package: String,
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The archive does not have the structure of a `.deb`.
    #[error("package {package}: not a valid .deb: {reason}")]
    Format {
        /// The `Package` field, or `?`.
        package: String,
        /// What is wrong.
        reason: String,
    },
    /// An entry that would escape the root or is of a refused type.
    #[error("package {package}: refused data entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The `Package` field.
        package: String,
        /// The entry's path as written in the tar.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
}

/// Reads a `.deb` from `reader`: parses its control members, writes the
/// decompressed data tar to `data_out` (all of it, trailing padding
/// included, so offsets in the returned entries index into that copy) and
/// lists the data entries in archive order.
pub fn read_deb(
    reader: impl Read,
    data_out: &mut dyn Write,
) -> Result<(DebControl, Vec<DataEntry>), DebError> {
    let mut ar = ar::Archive::new(reader);
    let mut control: Option<DebControl> = None;
    let mut entries: Option<Vec<DataEntry>> = None;
    let mut seen_version = false;
    let pkg = |c: &Option<DebControl>| {
        c.as_ref()
            .map_or_else(|| "?".to_string(), |c| c.package().to_string())
    };
    while let Some(member) = ar.next_entry() {
        let mut member = member.map_err(|e| DebError::Io {
            package: pkg(&control),
            context: "reading the ar archive".into(),
            source: e,
        })?;
        let name = String::from_utf8_lossy(member.header().identifier())
            .trim_end_matches('/')
            .to_string();
        if name.starts_with('_') {
            continue;
        }
        if !seen_version {
            if name != "debian-binary" {
                return Err(DebError::Format {
                    package: "?".into(),
                    reason: format!("first member is {name:?}, not debian-binary"),
                });
            }
            let mut v = Vec::new();
            (&mut member)
                .take(64)
                .read_to_end(&mut v)
                .map_err(|e| DebError::Io {
                    package: "?".into(),
                    context: "reading debian-binary".into(),
                    source: e,
                })?;
            if !v.starts_with(b"2.") {
                return Err(DebError::Format {
                    package: "?".into(),
                    reason: format!(
                        "unsupported format version {:?}",
                        String::from_utf8_lossy(&v).trim()
                    ),
                });
            }
            seen_version = true;
            continue;
        }
        if let Some(comp) = name.strip_prefix("control.tar") {
            if control.is_some() {
                return Err(DebError::Format {
                    package: pkg(&control),
                    reason: "two control members".into(),
                });
            }
            let dec = decompressor(&name, comp, false, &mut member, "?")?;
            control = Some(read_control(dec)?);
            continue;
        }
        if let Some(comp) = name.strip_prefix("data.tar") {
            let Some(c) = control.as_ref() else {
                return Err(DebError::Format {
                    package: "?".into(),
                    reason: "data member before the control member".into(),
                });
            };
            if entries.is_some() {
                return Err(DebError::Format {
                    package: c.package().into(),
                    reason: "two data members".into(),
                });
            }
            let dec = decompressor(&name, comp, true, &mut member, c.package())?;
            entries = Some(read_data(dec, data_out, c.package())?);
            continue;
        }
        return Err(DebError::Format {
            package: pkg(&control),
            reason: format!("unexpected member {name:?}"),
        });
    }
    match (control, entries) {
        (Some(c), Some(e)) => Ok((c, e)),
        (None, _) => Err(DebError::Format {
            package: "?".into(),
            reason: if seen_version {
                "no control member (truncated?)".into()
            } else {
                "no debian-binary member (empty or not an ar archive)".into()
            },
        }),
        (Some(c), None) => Err(DebError::Format {
            package: c.package().into(),
            reason: "no data member (truncated?)".into(),
        }),
    }
}

fn decompressor<'a>(
    name: &str,
    suffix: &str,
    is_data: bool,
    inner: &'a mut dyn Read,
    package: &str,
) -> Result<Box<dyn Read + 'a>, DebError> {
    Ok(match suffix {
        "" => Box::new(inner),
        ".gz" => Box::new(flate2::read::GzDecoder::new(inner)),
        ".xz" => Box::new(liblzma::read::XzDecoder::new(inner)),
        ".zst" => Box::new(
            zstd::stream::read::Decoder::new(inner).map_err(|e| DebError::Io {
                package: package.into(),
                context: format!("starting zstd for {name}"),
                source: e,
            })?,
        ),
        ".bz2" if is_data => Box::new(bzip2::read::BzDecoder::new(inner)),
        _ => {
            return Err(DebError::Format {
                package: package.into(),
                reason: format!("unsupported compression of member {name:?}"),
            })
        }
    })
}

/// Normalises a tar path to a relative path, or says why it escapes.
fn normalise(raw: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("path climbs above the root".into());
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn path_str(p: &Path, package: &str) -> Result<String, DebError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| DebError::UnsafeEntry {
            package: package.into(),
            entry: p.to_string_lossy().into_owned(),
            reason: "path is not UTF-8".into(),
        })
}

fn read_control(dec: Box<dyn Read + '_>) -> Result<DebControl, DebError> {
    let io_err = |context: &str, e: io::Error| DebError::Io {
        package: "?".into(),
        context: context.into(),
        source: e,
    };
    let mut tar = tar::Archive::new(dec.take(MAX_CONTROL_TAR));
    let mut out = DebControl::default();
    let mut have_control = false;
    for entry in tar
        .entries()
        .map_err(|e| io_err("reading control.tar", e))?
    {
        let mut entry = entry.map_err(|e| io_err("reading control.tar", e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = path_str(
            &entry.path().map_err(|e| io_err("control.tar path", e))?,
            "?",
        )?;
        let name = normalise(&raw).map_err(|reason| DebError::UnsafeEntry {
            package: "?".into(),
            entry: raw.clone(),
            reason,
        })?;
        let mut body = Vec::new();
        entry
            .read_to_end(&mut body)
            .map_err(|e| io_err(&format!("reading control member {name}"), e))?;
        let text = || {
            String::from_utf8(body.clone()).map_err(|_| DebError::Format {
                package: "?".into(),
                reason: format!("control member {name} is not UTF-8"),
            })
        };
        match name.as_str() {
            "control" => {
                let ps = parse_paragraphs(&text()?).map_err(|e| DebError::Format {
                    package: "?".into(),
                    reason: format!("control file: {e}"),
                })?;
                let Some(p) = ps.into_iter().next() else {
                    return Err(DebError::Format {
                        package: "?".into(),
                        reason: "empty control file".into(),
                    });
                };
                out.control = p;
                have_control = true;
            }
            "conffiles" => {
                out.conffiles = text()?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| l.strip_prefix("remove-on-upgrade ").unwrap_or(l).trim())
                    .map(str::to_string)
                    .collect();
            }
            "md5sums" => {
                for line in text()?.lines().filter(|l| !l.trim().is_empty()) {
                    let Some((sum, path)) = line.split_once(char::is_whitespace) else {
                        return Err(DebError::Format {
                            package: "?".into(),
                            reason: format!("md5sums: malformed line {line:?}"),
                        });
                    };
                    let path = path.trim_start();
                    // `md5sum` marks binary mode with `*`.
                    let path = path.strip_prefix('*').unwrap_or(path);
                    let path = path.trim_start_matches("./").trim_start_matches('/');
                    out.md5sums
                        .push((path.to_string(), sum.to_ascii_lowercase()));
                }
            }
            n if SCRIPT_NAMES.contains(&n) => {
                out.scripts.insert(name, body);
            }
            _ => {
                out.other.insert(name, body);
            }
        }
    }
    if !have_control {
        return Err(DebError::Format {
            package: "?".into(),
            reason: "control.tar has no control file".into(),
        });
    }
    Ok(out)
}

/// Passes every byte read through to `out` and counts them, so the tar
/// parser's positions are positions in the copy.
struct Tee<'w, R> {
    inner: R,
    out: &'w mut dyn Write,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n]).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("writing the decompressed data tar failed: {e}"),
            )
        })?;
        Ok(n)
    }
}

fn read_data(
    dec: Box<dyn Read + '_>,
    data_out: &mut dyn Write,
    package: &str,
) -> Result<Vec<DataEntry>, DebError> {
    let io_err = |context: String, e: io::Error| DebError::Io {
        package: package.into(),
        context,
        source: e,
    };
    let unsafe_entry = |entry: &str, reason: String| DebError::UnsafeEntry {
        package: package.into(),
        entry: entry.into(),
        reason,
    };
    let mut tar = tar::Archive::new(Tee {
        inner: dec,
        out: data_out,
    });
    let mut out = Vec::new();
    // Paths of regular files (and links to them) seen so far.
    let mut linkable: HashSet<String> = HashSet::new();
    for entry in tar
        .entries()
        .map_err(|e| io_err("reading data.tar".into(), e))?
    {
        let entry = entry.map_err(|e| io_err("reading data.tar".into(), e))?;
        let header = entry.header();
        let ty = header.entry_type();
        if ty.is_pax_global_extensions() {
            continue;
        }
        let raw = path_str(
            &entry
                .path()
                .map_err(|e| io_err("reading an entry path".into(), e))?,
            package,
        )?;
        let path = normalise(&raw).map_err(|r| unsafe_entry(&raw, r))?;
        let field = |what: &str, v: io::Result<u64>| -> Result<u64, DebError> {
            v.map_err(|e| io_err(format!("entry {raw:?}: bad {what}"), e))
        };
        let small = |what: &str, v: u64| -> Result<u32, DebError> {
            u32::try_from(v).map_err(|_| DebError::Format {
                package: package.into(),
                reason: format!("entry {raw:?}: {what} {v} out of range"),
            })
        };
        let mode = small("mode", field("mode", header.mode().map(u64::from))?)? & 0o7777;
        let uid = small("uid", field("uid", header.uid())?)?;
        let gid = small("gid", field("gid", header.gid())?)?;
        let mtime = field("mtime", header.mtime())?;
        let name_of = |v: Result<Option<&str>, std::str::Utf8Error>| {
            v.ok().flatten().unwrap_or("").to_string()
        };
        let uname = name_of(header.username());
        let gname = name_of(header.groupname());
        let link = || -> Result<String, DebError> {
            let l = entry
                .link_name()
                .map_err(|e| io_err(format!("entry {raw:?}: link name"), e))?
                .ok_or_else(|| unsafe_entry(&raw, "link without a target".into()))?;
            path_str(&l, package)
        };
        let kind = match ty {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File {
                offset: entry.raw_file_position(),
                size: entry.size(),
            },
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink { target: link()? },
            tar::EntryType::Link => {
                let t = link()?;
                let target = normalise(&t)
                    .map_err(|r| unsafe_entry(&raw, format!("hard link target {t:?}: {r}")))?;
                // A tar hard link names an earlier member; anything else
                // would leave the assembler looking for a body that is not
                // in this package (or is a directory or symlink).
                if !linkable.contains(&target) {
                    return Err(unsafe_entry(
                        &raw,
                        format!("hard link target {t:?} is not an earlier regular file"),
                    ));
                }
                EntryKind::Hardlink { target }
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(unsafe_entry(&raw, "device node".into()))
            }
            tar::EntryType::Fifo => return Err(unsafe_entry(&raw, "FIFO".into())),
            other => {
                return Err(unsafe_entry(
                    &raw,
                    format!("unsupported tar entry type {other:?}"),
                ))
            }
        };
        if path.is_empty() {
            if kind == EntryKind::Dir {
                // The `./` root entry: the root exists anyway.
                continue;
            }
            return Err(unsafe_entry(&raw, "non-directory entry at the root".into()));
        }
        if matches!(kind, EntryKind::File { .. } | EntryKind::Hardlink { .. }) {
            linkable.insert(path.clone());
        } else {
            // A later directory or symlink of the same name replaces it.
            linkable.remove(&path);
        }
        out.push(DataEntry {
            path,
            kind,
            mode,
            uid,
            gid,
            uname,
            gname,
            mtime,
        });
    }
    // The tar parser stops at the end-of-archive blocks; read the rest
    // through the tee so the copy is complete and the decompressor checks
    // its trailer (xz and zstd checksums, gzip CRC).
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink())
        .map_err(|e| io_err("reading the end of data.tar".into(), e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn normalises_paths() {
        assert_eq!(normalise("./usr/bin/x").unwrap(), "usr/bin/x");
        assert_eq!(normalise("/etc//a/./b").unwrap(), "etc/a/b");
        assert_eq!(normalise("usr/../etc").unwrap(), "etc");
        assert_eq!(normalise("./").unwrap(), "");
        assert!(normalise("../etc").is_err());
        assert!(normalise("./usr/../../etc").is_err());
    }
}
