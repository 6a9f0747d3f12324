//! What a maintainer script does to the file system, as data: the plain
//! commands (`chmod`, `chown`, `mkdir`, `ln -s`, ...) and the package
//! tools (`setcap`, `dpkg-statoverride`) in script order, each with the
//! file tests (`[ -d PATH ]`) it ran under. The static reading of a script
//! (the `maintscript` module) produces them; whoever holds the root
//! filesystem applies them in order, evaluating the tests on the tree as
//! it is at that point, as the script would have seen it.

use crate::caps::CapSet;

/// File capabilities granted with `setcap`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileCap {
    /// Absolute path of the file.
    pub path: String,
    /// The capability text as written, e.g. `cap_net_raw+ep`.
    pub text: String,
    /// The parsed sets.
    pub caps: CapSet,
}

/// An owner/mode override registered with `dpkg-statoverride --add`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatOverride {
    /// Owner name.
    pub user: String,
    /// Group name.
    pub group: String,
    /// Mode bits (parsed from octal).
    pub mode: u32,
    /// Absolute path.
    pub path: String,
}

/// One change to the file system. Paths are absolute (`$DPKG_ROOT` is
/// empty: dpkg runs the scripts for the live root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOp {
    /// `chmod MODE PATH`; the mode as written (octal or symbolic), see
    /// [`apply_mode`].
    Chmod {
        /// The file.
        path: String,
        /// The mode argument.
        mode: String,
    },
    /// `chown USER[:GROUP] PATH` or `chgrp GROUP PATH`.
    Chown {
        /// The file.
        path: String,
        /// New owner, by name or number.
        user: Option<String>,
        /// New group, by name or number.
        group: Option<String>,
    },
    /// `mkdir [-p] [-m MODE] PATH`.
    Mkdir {
        /// The folder.
        path: String,
        /// `-p`: missing parents are made too, an existing folder is fine.
        parents: bool,
        /// `-m MODE`.
        mode: Option<String>,
    },
    /// `ln -s[f] TARGET LINK`.
    Symlink {
        /// What the link points to, as written.
        target: String,
        /// The link's path (or a folder to put it in).
        link: String,
        /// `-f`: an existing non-folder at LINK is replaced.
        force: bool,
    },
    /// `rmdir PATH`: removed when it is an empty folder.
    Rmdir {
        /// The folder.
        path: String,
    },
    /// `cp [-p] SRC DST`.
    Copy {
        /// The source file.
        src: String,
        /// The destination file (or a folder to put it in).
        dst: String,
        /// `-p`: mode, owner and time kept.
        preserve: bool,
    },
    /// `mv [-f] SRC DST`.
    Rename {
        /// What is moved.
        src: String,
        /// Where to (or a folder to put it in).
        dst: String,
    },
    /// `touch PATH`: an empty file made when missing.
    Touch {
        /// The file.
        path: String,
    },
    /// `: > PATH`: an empty file, made or truncated.
    Truncate {
        /// The file.
        path: String,
    },
    /// `umask MODE` (octal): the mask for the files made after it.
    Umask(u32),
    /// `setcap CAPS PATH`.
    SetCap(FileCap),
    /// `dpkg-statoverride --add --update USER GROUP MODE PATH`.
    StatOverride(StatOverride),
}

/// A file test of `test` / `[`: `-e`, `-d`, `-f`, `-L` (`-h`), `-x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileTest {
    /// `-e`: exists (links followed).
    Exists,
    /// `-d`: a folder (links followed).
    Dir,
    /// `-f`: a regular file (links followed).
    File,
    /// `-L` / `-h`: a symbolic link (not followed).
    Symlink,
    /// `-x`: exists and has an execute bit (links followed).
    Executable,
}

impl FileTest {
    /// The test for a `[` operator such as `-d`.
    pub fn of_flag(flag: &str) -> Option<FileTest> {
        Some(match flag {
            "-e" | "-a" => FileTest::Exists,
            "-d" => FileTest::Dir,
            "-f" => FileTest::File,
            "-L" | "-h" => FileTest::Symlink,
            "-x" => FileTest::Executable,
            _ => return None,
        })
    }
}

/// A file test on a known path and the answer it must give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTest {
    /// The path tested.
    pub path: String,
    /// The test.
    pub test: FileTest,
    /// `true` when the test must succeed, `false` when it must fail.
    pub holds: bool,
    /// The condition it belongs to, numbered in the script: the script
    /// tests once, where the condition stands, so the answer is taken
    /// before the first operation under it and kept for the rest (a
    /// `mkdir` under `[ ! -d X ]` does not stop the `chmod` after it).
    pub point: usize,
}

impl PathTest {
    /// The same test with the opposite answer (`!`, or an `else` part).
    pub fn negated(&self) -> PathTest {
        PathTest {
            holds: !self.holds,
            ..self.clone()
        }
    }
}

/// A [`FileOp`] and the tests that must all give their answer for the
/// script to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptOp {
    /// Conditions, outermost first.
    pub when: Vec<PathTest>,
    /// Whether `when` is all the script asks: false when a condition on
    /// the way was neither known nor a file test (output of a command,
    /// say), so the operation may or may not run.
    pub decided: bool,
    /// The change.
    pub op: FileOp,
}

/// Applies `chmod`'s mode argument (octal, or symbolic clauses such as
/// `u-s`, `u=rwx,go=rx`, `g+s`) to the permission bits `old` of a file
/// (`is_dir` for `X` and for GNU chmod's rule that a short octal mode
/// keeps a folder's set-id bits); `None` when the argument is not a mode.
pub fn apply_mode(spec: &str, old: u32, is_dir: bool) -> Option<u32> {
    if !spec.is_empty() && spec.chars().all(|c| c.is_digit(8)) {
        let m = u32::from_str_radix(spec, 8).ok().filter(|m| *m <= 0o7777)?;
        let kept = if is_dir && spec.len() < 5 {
            old & 0o6000
        } else {
            0
        };
        return Some(m | kept);
    }
    let mut mode = old & 0o7777;
    for clause in spec.split(',') {
        mode = apply_clause(clause, mode, is_dir)?;
    }
    Some(mode)
}

/// One symbolic clause `[ugoa]*[+-=][rwxXst]*` applied to `mode`.
fn apply_clause(clause: &str, mode: u32, is_dir: bool) -> Option<u32> {
    let op_at = clause.find(['+', '-', '='])?;
    let (who, rest) = clause.split_at(op_at);
    let mut mask = 0;
    for c in who.chars() {
        mask |= match c {
            'u' => 0o4700,
            'g' => 0o2070,
            'o' => 0o1007,
            'a' => 0o7777,
            _ => return None,
        };
    }
    // What `=` clears: the named classes, or with no `who` everything.
    let cleared = if who.is_empty() { 0o7777 } else { mask };
    if who.is_empty() {
        // No `who`: all, as the umask allows (022 in maintainer scripts
        // run by dpkg), which leaves `w` for the owner only.
        mask = 0o7777 & !0o022;
    }
    let (op, perms) = rest.split_at(1);
    let mut bits = 0;
    for c in perms.chars() {
        bits |= match c {
            'r' => 0o444,
            'w' => 0o222,
            'x' => 0o111,
            'X' if is_dir || mode & 0o111 != 0 => 0o111,
            'X' => 0,
            's' => 0o6000,
            't' => 0o1000,
            _ => return None,
        };
    }
    let bits = bits & mask;
    Some(match op {
        "+" => mode | bits,
        "-" => mode & !bits,
        _ => (mode & !cleared) | bits,
    })
}
