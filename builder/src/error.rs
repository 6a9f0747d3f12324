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

/// The exit code for `err`: the class of the innermost classified cause.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain()
        .filter_map(|e| e.downcast_ref::<Classified>())
        .last()
        .map_or(1, |c| c.class.exit_code())
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
