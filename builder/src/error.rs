//! Error classes and exit codes. Every failure reaches the user as one line
//! that names the input at fault; the class decides the exit code.

use std::fmt;

/// The crate's result type.
pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

/// What kind of failure ended the command, for the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Bad input: spec, flags, files (exit 2).
    BadInput,
    /// Something did not verify: digest, signature, static check (exit 3).
    Verification,
    /// Network or registry failure (exit 4).
    Network,
}

impl Class {
    /// The process exit code for this class.
    pub fn exit_code(self) -> i32 {
        match self {
            Class::BadInput => 2,
            Class::Verification => 3,
            Class::Network => 4,
        }
    }
}

/// An error carrying its class; anything else exits with 1.
#[derive(Debug)]
pub struct Classified {
    /// The class.
    pub class: Class,
    /// The message.
    pub message: String,
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Classified {}

/// A bad-input error.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    Classified {
        class: Class::BadInput,
        message: message.into(),
    }
    .into()
}

/// A verification failure.
pub fn verification(message: impl Into<String>) -> anyhow::Error {
    Classified {
        class: Class::Verification,
        message: message.into(),
    }
    .into()
}

/// A network failure.
pub fn network(message: impl Into<String>) -> anyhow::Error {
    Classified {
        class: Class::Network,
        message: message.into(),
    }
    .into()
}

/// The class of an I/O failure on a path the user named: one that does
/// not exist, cannot be written or is the wrong kind is bad input (2);
/// anything else (a full disk, a failing device) is unexpected (1).
pub fn io_class(e: &std::io::Error) -> Option<Class> {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound
        | K::PermissionDenied
        | K::NotADirectory
        | K::IsADirectory
        | K::ReadOnlyFilesystem
        | K::AlreadyExists
        | K::DirectoryNotEmpty
        | K::InvalidFilename => Some(Class::BadInput),
        _ => None,
    }
}

/// An I/O failure on `what`, classified by [`io_class`].
pub fn io(what: impl std::fmt::Display, e: std::io::Error) -> anyhow::Error {
    let message = format!("{what}: {e}");
    match io_class(&e) {
        Some(class) => Classified { class, message }.into(),
        None => anyhow::anyhow!(message),
    }
}

/// A layout failure, classified: a blob that does not match (3), a
/// folder that is no layout or a tag that is not there (2), I/O by
/// [`io_class`].
pub fn layout(e: image_layout::layout::LayoutError) -> anyhow::Error {
    use image_layout::layout::LayoutError as E;
    match e {
        E::Io { path, source } => io(path.display(), source),
        E::Mismatch { .. } => verification(e.to_string()),
        E::Invalid { .. } | E::NoSuchTag { .. } => bad_input(e.to_string()),
    }
}

/// An archive failure, classified like [`layout`]; an archive that is not
/// one is bad input.
pub fn archive(e: image_layout::archive::ArchiveError) -> anyhow::Error {
    use image_layout::archive::ArchiveError as E;
    match e {
        E::Layout(l) => layout(l),
        E::Io { path, source } => io(path, source),
        E::Mismatch { .. } => verification(e.to_string()),
        E::Invalid { .. } => bad_input(e.to_string()),
    }
}

/// The exit code for `err`: the class of the innermost classified cause,
/// else of an I/O error in the chain (see [`io_class`]), else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(c) = err
        .chain()
        .filter_map(|e| e.downcast_ref::<Classified>())
        .last()
    {
        return c.class.exit_code();
    }
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .last()
        .and_then(io_class)
        .map_or(1, |c| c.exit_code())
}

/// `err` on one line: every context joined by `: `, repeats removed.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string().replace('\n', " ");
        if parts
            .last()
            .is_some_and(|p| p.ends_with(&s) || p.contains(&s))
        {
            continue;
        }
        parts.push(s);
    }
    parts.join(": ")
}
