//! Static analysis of maintainer scripts. We never run `postinst` and
//! friends (there is no shell, no root and often no matching architecture
//! when the image is assembled), so the effects that matter for a working
//! image are read out of the script text instead:
//!
//! - `update-alternatives --install LINK NAME PATH PRIO [--slave LINK NAME PATH]...`
//! - system users: `adduser --system ...`, `useradd -r ...`
//! - system groups: `addgroup --system NAME`, `adduser --system --group NAME`,
//!   `groupadd -r NAME`
//! - file capabilities: `setcap CAPS PATH...`
//! - permission overrides: `dpkg-statoverride --add USER GROUP MODE PATH`
//! - file operations, in script order with `setcap` and the overrides:
//!   `chmod`, `chown`, `chgrp`, `mkdir`, `ln -s`, `rmdir`, `cp` of one
//!   file and `: > FILE` (see [`crate::fileop`])
//!
//! What the analysis understands: `#` comments, backslash-newline
//! continuations, single and double quotes, backslash escapes, command
//! separators (`;`, `&&`, `||`, `|`, `&`, newlines, parentheses),
//! redirections (dropped, but for a truncating `>`) and here-documents
//! (skipped), simple variables assigned earlier in the script (`NAME=value`,
//! also after `local`, `export`, `readonly`; the last assignment in text
//! order wins, whatever branch it sits in), `${NAME:-default}` style
//! defaults, unquoted expansions split on whitespace,
//! `$DPKG_MAINTSCRIPT_PACKAGE`, `$DPKG_ROOT` (empty), the positional
//! parameters dpkg passes ([`analyze_with_args`]), shell functions called
//! with arguments, and `for VAR in literal words; do ... done` loops, whose
//! bodies are analysed once per word.
//!
//! Conditions of `if`/`elif`/`else` and of `&&`/`||` chains: string tests
//! (`=`, `!=`, `-z`, `-n`) on known words are decided, and so is `setcap`
//! (always applied, so a fallback to setuid never runs); file tests
//! (`-e -d -f -L -h -x` on a known path) are kept with each operation as
//! [`PathTest`]s for whoever applies it to decide on the tree; any other
//! condition is followed both ways (a script that either installs a setuid
//! binary or sets capabilities on a debconf answer, as `wireshark-common`
//! does, yields both; the caller decides).
//!
//! What it does not understand: command substitution other than
//! `dpkg-divert --truename PATH` (which `iputils-ping` and
//! `wireshark-common` use to name the binary they grant capabilities to;
//! it is PATH since we never divert), `dirname` and `basename`; `case`
//! patterns (every arm is read); arithmetic; variables never assigned;
//! `while read` over a here-document; `eval`; sourced files. A recognised
//! command whose needed arguments depend on any of those is not guessed:
//! its text goes into [`ScriptActions::unresolved`].

use std::collections::{BTreeMap, BTreeSet};

use crate::caps::parse_capabilities;
pub use crate::fileop::{apply_mode, FileCap, FileOp, FileTest, PathTest, ScriptOp, StatOverride};

/// An alternative registered with `update-alternatives --install`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alternative {
    /// The generic name in the file system, e.g. `/usr/bin/nc`.
    pub link: String,
    /// The alternative group name, e.g. `nc`.
    pub name: String,
    /// The real file it points to, e.g. `/bin/nc.openbsd`.
    pub path: String,
    /// Priority; the highest wins in automatic mode.
    pub priority: i64,
    /// Slave links as (link, name, path), switched together with the master.
    pub slaves: Vec<(String, String, String)>,
}

/// A system user created by the script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemUser {
    /// Login name.
    pub name: String,
    /// Fixed uid, when the script asks for one.
    pub uid: Option<u32>,
    /// Home directory (`--home`, `-d`); `None` means the tool's default
    /// (`/nonexistent` for adduser's system users).
    pub home: Option<String>,
    /// Login shell (`--shell`, `-s`); `None` means the tool's default
    /// (`/usr/sbin/nologin` for adduser's system users).
    pub shell: Option<String>,
    /// Primary group by name (`--ingroup`, `-g`); `None` with
    /// `user_group == false` means `nogroup` for adduser.
    pub primary_group: Option<String>,
    /// A group named like the user is created and made primary
    /// (`--group`, `-U`); that group is also listed in
    /// [`ScriptActions::groups`].
    pub user_group: bool,
    /// The home directory is created (adduser's default unless
    /// `--no-create-home`; useradd only with `-m`).
    pub create_home: bool,
    /// GECOS / comment field.
    pub gecos: Option<String>,
}

/// A system group created by the script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemGroup {
    /// Group name.
    pub name: String,
    /// Fixed gid, when the script asks for one.
    pub gid: Option<u32>,
}

/// Everything recognised in one script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptActions {
    /// `update-alternatives --install` calls.
    pub alternatives: Vec<Alternative>,
    /// System users created.
    pub users: Vec<SystemUser>,
    /// System groups created (including users' own groups).
    pub groups: Vec<SystemGroup>,
    /// `setcap` grants.
    pub capabilities: Vec<FileCap>,
    /// `dpkg-statoverride --add` calls.
    pub stat_overrides: Vec<StatOverride>,
    /// Changes to the file system (plain commands, `setcap` and
    /// `dpkg-statoverride` too), in script order, with the file tests
    /// they ran under.
    pub file_ops: Vec<ScriptOp>,
    /// Recognised calls that could not be understood statically, as
    /// `package: command text: why`.
    pub unresolved: Vec<String>,
}

/// Analyses maintainer script `script` of `package`, its positional
/// parameters unknown. Never fails: what is not understood is reported in
/// [`ScriptActions::unresolved`].
pub fn analyze(package: &str, script: &str) -> ScriptActions {
    run_script(package, script, None)
}

/// Analyses `script` as dpkg runs it with arguments `args`: a fresh
/// install runs `preinst install` and `postinst configure ""` (no
/// previously configured version), so conditions on `$1` and `$2` are
/// decided and an upgrade's branches are left out.
pub fn analyze_with_args(package: &str, script: &str, args: &[&str]) -> ScriptActions {
    run_script(package, script, Some(args))
}

fn run_script(package: &str, script: &str, args: Option<&[&str]>) -> ScriptActions {
    let commands = split_commands(&tokenize(script));
    let mut vars = BTreeMap::new();
    vars.insert("DPKG_MAINTSCRIPT_PACKAGE".to_string(), package.to_string());
    // dpkg runs scripts for the live root: `$DPKG_ROOT` is empty.
    vars.insert("DPKG_ROOT".to_string(), String::new());
    for (n, a) in args.unwrap_or_default().iter().enumerate() {
        vars.insert((n + 1).to_string(), a.to_string());
    }
    if let Some(args) = args {
        vars.insert("#".to_string(), args.len().to_string());
    }
    let mut cx = Context::new(package, vars);
    cx.run(&commands);
    if args.is_none() {
        // With the arguments known, a function no command called is dead
        // code for this run; without, it may be called in a way the
        // reading missed.
        cx.read_uncalled();
    }
    cx.out
}

// ---------------------------------------------------------------------
// Tokenizer

#[derive(Clone, Debug)]
enum Seg {
    /// Literal text; `quoted` tells whether it came from quotes (quoted
    /// text is never an assignment name or a keyword).
    Lit { text: String, quoted: bool },
    /// `$NAME` / `${NAME...}`; unquoted expansions are split on whitespace.
    Var {
        name: String,
        default: Option<String>,
        quoted: bool,
    },
    /// Command substitution (`$(...)` or backticks) with its inner text;
    /// only a few side-effect-free commands are evaluated.
    Subst(String),
    /// Something we do not evaluate (`$((...))`, `${#x}`, ...).
    Opaque,
}

#[derive(Clone, Debug, Default)]
struct Word {
    segs: Vec<Seg>,
    raw: String,
}

#[derive(Clone, Debug)]
enum Tok {
    Word(Word),
    Sep,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    toks: Vec<Tok>,
    cur: Option<Word>,
    heredocs: Vec<(String, bool)>,
}

/// A word the lexer puts for shell syntax that is not a word: quoted so
/// no script text can look the same.
fn marker(text: &str) -> Word {
    Word {
        segs: vec![Seg::Lit {
            text: text.into(),
            quoted: true,
        }],
        raw: text.trim_start_matches('\0').into(),
    }
}

/// Marks `NAME()`, a function definition.
const FUNCTION_MARK: &str = "\0()";
/// Starts a command that follows `&&`.
const AND_MARK: &str = "\0&&";
/// Starts a command that follows `||`.
const OR_MARK: &str = "\0||";
/// Precedes the target of a truncating `>`.
const TRUNCATE_MARK: &str = "\0>";

/// Whether `w` is the marker `mark`.
fn is_marker(w: &Word, mark: &str) -> bool {
    matches!(w.segs.as_slice(), [Seg::Lit { text, quoted: true }] if text == mark)
}

fn tokenize(src: &str) -> Vec<Tok> {
    let mut lx = Lexer {
        chars: src.chars().collect(),
        pos: 0,
        toks: Vec::new(),
        cur: None,
        heredocs: Vec::new(),
    };
    lx.run();
    lx.toks
}

impl Lexer {
    fn peek(&self, off: usize) -> Option<char> {
        self.chars.get(self.pos + off).copied()
    }

    fn word(&mut self) -> &mut Word {
        self.cur.get_or_insert_with(Word::default)
    }

    fn push_lit(&mut self, c: char, quoted: bool) {
        let w = self.word();
        w.raw.push(c);
        match w.segs.last_mut() {
            Some(Seg::Lit { text, quoted: q }) if *q == quoted => text.push(c),
            _ => w.segs.push(Seg::Lit {
                text: c.to_string(),
                quoted,
            }),
        }
    }

    fn end_word(&mut self) {
        if let Some(w) = self.cur.take() {
            self.toks.push(Tok::Word(w));
        }
    }

    fn sep(&mut self) {
        self.end_word();
        // A line may end in `&&`: the chain goes on on the next line.
        let chained = matches!(self.toks.last(),
            Some(Tok::Word(w)) if is_marker(w, AND_MARK) || is_marker(w, OR_MARK));
        if !chained && !matches!(self.toks.last(), Some(Tok::Sep) | None) {
            self.toks.push(Tok::Sep);
        }
    }

    fn run(&mut self) {
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' => {
                    self.end_word();
                    self.pos += 1;
                }
                '\n' => {
                    self.sep();
                    self.pos += 1;
                    self.skip_heredocs();
                }
                // `NAME()`: a function definition; the marker word lets
                // the evaluation tell it from a call followed by a group.
                '(' if self.peek(1) == Some(')') => {
                    self.end_word();
                    self.toks.push(Tok::Word(marker(FUNCTION_MARK)));
                    self.pos += 2;
                }
                '&' | '|' if self.peek(1) == Some(c) => {
                    // `&&` / `||`: the next command carries how it is
                    // chained, for the conditions it depends on.
                    self.sep();
                    let mark = if c == '&' { AND_MARK } else { OR_MARK };
                    self.toks.push(Tok::Word(marker(mark)));
                    self.pos += 2;
                }
                ';' | '&' | '|' | '(' | ')' => {
                    self.sep();
                    self.pos += 1;
                }
                '#' if self.cur.is_none() => {
                    while let Some(c) = self.peek(0) {
                        if c == '\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                '\\' => {
                    match self.peek(1) {
                        Some('\n') => {}
                        Some(n) => self.push_lit(n, true),
                        None => {}
                    }
                    self.pos += 2;
                }
                '\'' => {
                    self.pos += 1;
                    self.word().raw.push('\'');
                    while let Some(c) = self.peek(0) {
                        self.pos += 1;
                        if c == '\'' {
                            self.word().raw.push('\'');
                            break;
                        }
                        self.push_lit(c, true);
                    }
                }
                '"' => {
                    self.pos += 1;
                    self.word().raw.push('"');
                    while let Some(c) = self.peek(0) {
                        match c {
                            '"' => {
                                self.pos += 1;
                                self.word().raw.push('"');
                                break;
                            }
                            '\\' => {
                                match self.peek(1) {
                                    Some('\n') => {}
                                    Some(n @ ('$' | '`' | '"' | '\\')) => self.push_lit(n, true),
                                    Some(n) => {
                                        self.push_lit('\\', true);
                                        self.push_lit(n, true);
                                    }
                                    None => {}
                                }
                                self.pos += 2;
                            }
                            '$' => self.dollar(true),
                            '`' => self.backtick(),
                            c => {
                                self.push_lit(c, true);
                                self.pos += 1;
                            }
                        }
                    }
                }
                '$' => self.dollar(false),
                '`' => self.backtick(),
                '>' | '<' => self.redirect(),
                c => {
                    self.push_lit(c, false);
                    self.pos += 1;
                }
            }
        }
        self.sep();
        if matches!(self.toks.last(), Some(Tok::Sep)) {
            self.toks.pop();
        }
    }

    /// `$...` at `pos`.
    fn dollar(&mut self, quoted: bool) {
        let start = self.pos;
        self.pos += 1;
        let seg = match self.peek(0) {
            Some('{') => {
                self.pos += 1;
                let mut inner = String::new();
                let mut depth = 1;
                while let Some(c) = self.peek(0) {
                    self.pos += 1;
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    inner.push(c);
                }
                parse_braced(&inner, quoted)
            }
            Some('(') => {
                let arithmetic = self.peek(1) == Some('(');
                let inner_start = self.pos + 1;
                self.skip_balanced('(', ')');
                if arithmetic {
                    Seg::Opaque
                } else {
                    let end = self.pos.saturating_sub(1).max(inner_start);
                    Seg::Subst(
                        self.chars[inner_start..end.min(self.chars.len())]
                            .iter()
                            .collect(),
                    )
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(c) = self.peek(0) {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                Seg::Var {
                    name,
                    default: None,
                    quoted,
                }
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.pos += 1;
                Seg::Var {
                    name: c.to_string(),
                    default: None,
                    quoted,
                }
            }
            _ => Seg::Lit {
                text: "$".into(),
                quoted,
            },
        };
        let raw: String = self.chars[start..self.pos.min(self.chars.len())]
            .iter()
            .collect();
        let w = self.word();
        w.raw.push_str(&raw);
        w.segs.push(seg);
    }

    fn skip_balanced(&mut self, open: char, close: char) {
        let mut depth = 0;
        while let Some(c) = self.peek(0) {
            self.pos += 1;
            if c == open {
                depth += 1;
            } else if c == close {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
        }
    }

    fn backtick(&mut self) {
        let start = self.pos;
        self.pos += 1;
        while let Some(c) = self.peek(0) {
            self.pos += 1;
            if c == '\\' {
                self.pos += 1;
            } else if c == '`' {
                break;
            }
        }
        let end = self.pos.min(self.chars.len());
        let raw: String = self.chars[start..end].iter().collect();
        let inner: String = self.chars
            [(start + 1).min(end)..end.saturating_sub(1).max(start + 1).min(end)]
            .iter()
            .collect();
        let w = self.word();
        w.raw.push_str(&raw);
        w.segs.push(Seg::Subst(inner));
    }

    /// A redirection: drop an fd number before it, the operator and its
    /// target word; remember here-document delimiters. A truncating `>`
    /// is kept as a [`TRUNCATE_MARK`] word and its target, so `: > FILE`
    /// can be read as making an empty file.
    fn redirect(&mut self) {
        let fd_only = self.cur.as_ref().is_some_and(|w| {
            w.segs.len() == 1
                && matches!(&w.segs[0], Seg::Lit { text, quoted: false }
                    if text.chars().all(|c| c.is_ascii_digit()))
        });
        if fd_only {
            self.cur = None;
        } else {
            self.end_word();
        }
        let (heredoc, truncate) = self.redirect_operator();
        let (target, raw) = self.redirect_target();
        if let Some(strip) = heredoc {
            self.heredocs.push((target, strip));
        } else if truncate {
            if let Some(Tok::Word(w)) = tokenize(&raw).into_iter().next() {
                self.toks.push(Tok::Word(marker(TRUNCATE_MARK)));
                self.toks.push(Tok::Word(w));
            }
        }
    }

    /// Skips the operator at `pos`: whether it starts a here-document
    /// (and strips tabs), and whether it truncates a file (`>`, `>|`).
    fn redirect_operator(&mut self) -> (Option<bool>, bool) {
        let first = self.peek(0);
        self.pos += 1;
        let mut heredoc = None;
        let mut truncate = first == Some('>');
        match (first, self.peek(0)) {
            (Some('<'), Some('<')) => {
                self.pos += 1;
                let strip = self.peek(0) == Some('-');
                if strip {
                    self.pos += 1;
                }
                heredoc = Some(strip);
            }
            (_, Some(c @ ('>' | '&' | '|'))) => {
                truncate &= c == '|';
                self.pos += 1;
            }
            _ => {}
        }
        if self.peek(0) == Some('&') {
            truncate = false;
            self.pos += 1;
        }
        (heredoc, truncate)
    }

    /// The target word after a redirection operator: quotes stripped, and
    /// as written.
    fn redirect_target(&mut self) -> (String, String) {
        while matches!(self.peek(0), Some(' ' | '\t')) {
            self.pos += 1;
        }
        let mut target = String::new();
        let mut raw = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_whitespace() || ";&|()<>".contains(c) {
                break;
            }
            raw.push(c);
            if c != '\'' && c != '"' && c != '\\' {
                target.push(c);
            }
            self.pos += 1;
        }
        (target, raw)
    }

    /// After a newline, skip the bodies of pending here-documents.
    fn skip_heredocs(&mut self) {
        for (delim, strip) in std::mem::take(&mut self.heredocs) {
            loop {
                if self.pos >= self.chars.len() {
                    return;
                }
                let mut line = String::new();
                while let Some(c) = self.peek(0) {
                    self.pos += 1;
                    if c == '\n' {
                        break;
                    }
                    line.push(c);
                }
                let l = if strip {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if l == delim {
                    break;
                }
            }
        }
    }
}

fn parse_braced(inner: &str, quoted: bool) -> Seg {
    let name_end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_end);
    if name.is_empty() {
        return Seg::Opaque;
    }
    let default = if rest.is_empty() {
        None
    } else if let Some(d) = ["::-", ":-", ":=", "-", "="]
        .iter()
        .find_map(|op| rest.strip_prefix(op))
    {
        if d.contains(['$', '`']) {
            return Seg::Opaque;
        }
        Some(d.trim_matches('"').to_string())
    } else {
        return Seg::Opaque;
    };
    Seg::Var {
        name: name.to_string(),
        default,
        quoted,
    }
}

fn split_commands(toks: &[Tok]) -> Vec<Vec<Word>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for t in toks {
        match t {
            Tok::Word(w) => cur.push(w.clone()),
            Tok::Sep => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

// ---------------------------------------------------------------------
// Evaluation

struct Context<'p> {
    package: &'p str,
    vars: BTreeMap<String, String>,
    out: ScriptActions,
    /// Commands left to analyse: nested loops multiply the work, and a
    /// hostile script must not make the builder spin.
    budget: usize,
    /// Shell functions by name: their body commands.
    functions: BTreeMap<String, Vec<Vec<Word>>>,
    /// Functions called at least once.
    called: BTreeSet<String>,
    /// The `if` statements the current command sits in.
    branches: Vec<Branch>,
    /// An `elif` was read: the next `then` opens a part of the same `if`.
    elif: bool,
    /// What the commands of the current `&&` / `||` chain tested so far.
    chain: Term,
    /// File tests of the chains and function calls around the command.
    guards: Vec<PathTest>,
    /// Chains around the command whose gate was not decided.
    undecided: usize,
    /// Conditions numbered so far.
    points: usize,
    /// Nested function calls, bounded against recursion.
    depth: usize,
}

/// How deep function calls may nest.
const MAX_CALL_DEPTH: usize = 16;

/// What the static reading knows of a condition: its outcome when that
/// is known without the file system (string tests on known words,
/// `setcap`, which is always applied), else the file tests it needs to
/// succeed or to fail. Unknown conditions are followed both ways.
#[derive(Clone, Debug, Default)]
struct Term {
    known: Option<bool>,
    /// Tests that all hold when the condition succeeds.
    if_true: Vec<PathTest>,
    /// Tests that all hold when it fails.
    if_false: Vec<PathTest>,
    /// `if_true` is exactly when it succeeds (not only necessary).
    exact_true: bool,
    /// `if_false` is exactly when it fails.
    exact_false: bool,
}

impl Term {
    fn known(b: bool) -> Term {
        Term {
            known: Some(b),
            exact_true: true,
            exact_false: true,
            ..Term::default()
        }
    }

    fn file(t: PathTest) -> Term {
        Term {
            known: None,
            if_false: vec![t.negated()],
            if_true: vec![t],
            exact_true: true,
            exact_false: true,
        }
    }

    fn not(self) -> Term {
        Term {
            known: self.known.map(|b| !b),
            if_true: self.if_false,
            if_false: self.if_true,
            exact_true: self.exact_false,
            exact_false: self.exact_true,
        }
    }

    /// `self && other` (shell chains are read left to right).
    fn and(self, other: Term) -> Term {
        match (self.known, other.known) {
            (Some(false), _) | (_, Some(false)) => return Term::known(false),
            (Some(true), _) => return other,
            (_, Some(true)) => return self,
            _ => {}
        }
        let mut if_true = self.if_true;
        if_true.extend(other.if_true);
        Term {
            known: None,
            if_true,
            // Either failing is a disjunction: not kept as tests.
            if_false: Vec::new(),
            exact_true: self.exact_true && other.exact_true,
            exact_false: false,
        }
    }

    /// `self || other`.
    fn or(self, other: Term) -> Term {
        self.not().and(other.not()).not()
    }
}

/// One `if` statement around the current command.
#[derive(Clone, Debug)]
struct Branch {
    /// Its condition.
    cond: Term,
    /// In the `else` part.
    in_else: bool,
    /// Opened by `elif`: closed with the `if` it belongs to.
    elif: bool,
}

impl Branch {
    /// Whether commands in the current part may run.
    fn taken(&self) -> bool {
        self.cond.known != Some(self.in_else)
    }

    /// Whether the tests of the current part are all its condition asks.
    fn exact(&self) -> bool {
        if self.in_else {
            self.cond.exact_false
        } else {
            self.cond.exact_true
        }
    }

    /// The file tests that hold in the current part.
    fn tests(&self) -> &[PathTest] {
        if self.in_else {
            &self.cond.if_false
        } else {
            &self.cond.if_true
        }
    }
}

/// How a command is joined to the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chain {
    First,
    And,
    Or,
}

/// The chain marker a command starts with, and the command without it.
fn split_chain(cmd: &[Word]) -> (Chain, &[Word]) {
    match cmd.first() {
        Some(w) if is_marker(w, AND_MARK) => (Chain::And, &cmd[1..]),
        Some(w) if is_marker(w, OR_MARK) => (Chain::Or, &cmd[1..]),
        _ => (Chain::First, cmd),
    }
}

/// How many commands one script may make us analyse (loops unrolled).
const COMMAND_BUDGET: usize = 100_000;

/// Shell words that may precede a command and do not change what it does.
const PREFIX_WORDS: [&str; 12] = [
    "if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "time", "exec",
];

fn plain(w: &Word) -> Option<&str> {
    match w.segs.as_slice() {
        [Seg::Lit {
            text,
            quoted: false,
        }] => Some(text.as_str()),
        _ => None,
    }
}

fn raw_text(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| w.raw.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

impl<'p> Context<'p> {
    fn unresolved(&mut self, words: &[Word], why: &str) {
        let entry = format!("{}: {}: {why}", self.package, raw_text(words));
        if !self.out.unresolved.contains(&entry) {
            self.out.unresolved.push(entry);
        }
    }

    fn lookup(&self, name: &str, default: &Option<String>) -> Option<String> {
        match (self.vars.get(name), default) {
            (Some(v), _) if !v.is_empty() => Some(v.clone()),
            (Some(v), None) => Some(v.clone()),
            (_, Some(d)) => Some(d.clone()),
            (None, None) => None,
        }
    }

    /// Expands a word into fields; `None` marks a field we cannot know.
    fn expand(&self, w: &Word, split: bool) -> Vec<Option<String>> {
        let mut fields: Vec<Option<String>> = Vec::new();
        let mut cur: Option<String> = Some(String::new());
        let mut started = false;
        for seg in &w.segs {
            match seg {
                Seg::Lit { text, .. } => {
                    started = true;
                    if let Some(c) = cur.as_mut() {
                        c.push_str(text);
                    }
                }
                Seg::Opaque => {
                    started = true;
                    cur = None;
                }
                Seg::Subst(inner) => {
                    started = true;
                    match (self.substitute(inner), cur.as_mut()) {
                        (Some(v), Some(c)) => c.push_str(&v),
                        _ => cur = None,
                    }
                }
                Seg::Var {
                    name,
                    default,
                    quoted,
                } => match self.lookup(name, default) {
                    None => {
                        started = true;
                        cur = None;
                    }
                    Some(v) if split && !quoted => {
                        let mut pieces = v.split_whitespace();
                        if let Some(first) = pieces.next() {
                            started = true;
                            if v.starts_with(char::is_whitespace) && cur.as_deref() != Some("") {
                                fields.push(cur.take());
                                cur = Some(String::new());
                            }
                            if let Some(c) = cur.as_mut() {
                                c.push_str(first);
                            }
                            for p in pieces {
                                fields.push(cur.take());
                                cur = Some(p.to_string());
                            }
                        }
                    }
                    Some(v) => {
                        started = true;
                        if let Some(c) = cur.as_mut() {
                            c.push_str(&v);
                        }
                    }
                },
            }
        }
        if started || w.segs.is_empty() {
            fields.push(cur);
        }
        fields
    }

    /// The output of a command substitution, for the few commands whose
    /// result is known without running anything:
    /// `dpkg-divert --truename PATH` is PATH (we never divert files, and
    /// no preinst ran to add a diversion), `dirname` and `basename` of a
    /// known path.
    fn substitute(&self, inner: &str) -> Option<String> {
        let commands = split_commands(&tokenize(inner));
        let [cmd] = commands.as_slice() else {
            return None;
        };
        let fields: Option<Vec<String>> = self.expand_all(cmd).into_iter().collect();
        let fields = fields?;
        let argv: Vec<&str> = fields.iter().map(String::as_str).collect();
        let prog = argv.first()?.rsplit('/').next()?;
        match (prog, &argv[1..]) {
            ("dpkg-divert", ["--truename", p]) => Some(p.to_string()),
            // The image is for Linux, whatever builds it.
            ("uname", ["-s"]) => Some("Linux".to_string()),
            ("dirname", [p]) => {
                let t = p.trim_end_matches('/');
                Some(match t.rfind('/') {
                    Some(0) => "/".to_string(),
                    Some(i) => t[..i].to_string(),
                    None => ".".to_string(),
                })
            }
            ("basename", [p]) => p
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(str::to_string),
            _ => None,
        }
    }

    fn expand_all(&self, words: &[Word]) -> Vec<Option<String>> {
        words.iter().flat_map(|w| self.expand(w, true)).collect()
    }

    /// `NAME=value` as (name, value or `None` when unknowable).
    fn assignment(&self, w: &Word) -> Option<(String, Option<String>)> {
        let Some(Seg::Lit {
            text,
            quoted: false,
        }) = w.segs.first()
        else {
            return None;
        };
        let (name, first_val) = text.split_once('=')?;
        let mut chars = name.chars();
        let ok_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !ok_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let mut rest = Word::default();
        if !first_val.is_empty() {
            rest.segs.push(Seg::Lit {
                text: first_val.to_string(),
                quoted: true,
            });
        }
        rest.segs.extend(w.segs[1..].iter().cloned());
        let fields = self.expand(&rest, false);
        let value = match fields.as_slice() {
            [] => Some(String::new()),
            [one] => one.clone(),
            _ => None,
        };
        Some((name.to_string(), value))
    }

    fn new(package: &'p str, vars: BTreeMap<String, String>) -> Context<'p> {
        Context {
            package,
            vars,
            out: ScriptActions::default(),
            budget: COMMAND_BUDGET,
            functions: BTreeMap::new(),
            called: BTreeSet::new(),
            branches: Vec::new(),
            elif: false,
            chain: Term::default(),
            guards: Vec::new(),
            undecided: 0,
            points: 0,
            depth: 0,
        }
    }

    /// Reads the functions no command called, their parameters unknown,
    /// so what they would call is reported; their effects are not kept,
    /// since the script never runs them.
    fn read_uncalled(&mut self) {
        let kept = self.out.clone();
        let uncalled: Vec<Vec<Vec<Word>>> = self
            .functions
            .iter()
            .filter(|(n, _)| !self.called.contains(*n))
            .map(|(_, b)| b.clone())
            .collect();
        for n in 1..=9 {
            self.vars.remove(&n.to_string());
        }
        for body in uncalled {
            self.branches.clear();
            self.run(&body);
        }
        let unresolved = std::mem::take(&mut self.out.unresolved);
        self.out = kept;
        self.out.unresolved = unresolved;
    }

    /// Takes one command from the budget; false (and a note) once spent.
    fn spend(&mut self) -> bool {
        if self.budget == 0 {
            let entry = format!(
                "{}: script too complex: analysis stopped after {COMMAND_BUDGET} commands",
                self.package
            );
            if !self.out.unresolved.contains(&entry) {
                self.out.unresolved.push(entry);
            }
            return false;
        }
        self.budget -= 1;
        true
    }

    fn run(&mut self, commands: &[Vec<Word>]) {
        let mut i = 0;
        while i < commands.len() {
            if !self.spend() {
                return;
            }
            if let Some(end) = self.define_function(commands, i) {
                i = end + 1;
                continue;
            }
            let (chain, cmd) = split_chain(&commands[i]);
            let start = cmd
                .iter()
                .position(|w| plain(w).is_none_or(|p| !PREFIX_WORDS.contains(&p)))
                .unwrap_or(cmd.len());
            let negated = self.keywords(&cmd[..start]);
            let words = &cmd[start..];
            match words.first().and_then(plain) {
                Some("for") => {
                    let end = find_done(commands, i + 1);
                    self.for_loop(words, &commands[i + 1..end]);
                    i = end + 1;
                    continue;
                }
                Some("fi") => self.close_if(),
                _ => self.chained(chain, negated, words),
            }
            i += 1;
        }
    }

    /// Follows the keywords before a command (`then`, `else`, `elif`);
    /// returns whether the command is negated with `!`.
    fn keywords(&mut self, prefix: &[Word]) -> bool {
        let mut negated = false;
        for w in prefix {
            match plain(w) {
                Some("then") => {
                    let chain = std::mem::take(&mut self.chain);
                    let cond = self.numbered(chain);
                    self.branches.push(Branch {
                        cond,
                        in_else: false,
                        elif: std::mem::take(&mut self.elif),
                    });
                }
                Some("elif") => {
                    if let Some(b) = self.branches.last_mut() {
                        b.in_else = true;
                        self.elif = true;
                    }
                }
                Some("else") => {
                    if let Some(b) = self.branches.last_mut() {
                        b.in_else = true;
                    }
                }
                Some("!") => negated = !negated,
                _ => {}
            }
        }
        negated
    }

    /// `fi`: closes the `if` and the parts its `elif`s opened.
    fn close_if(&mut self) {
        while let Some(b) = self.branches.pop() {
            if !b.elif {
                break;
            }
        }
    }

    /// Runs a command joined by `chain` to the ones before it: after
    /// `&&` only when they succeeded, after `||` only when they failed,
    /// under the file tests that takes.
    fn chained(&mut self, chain: Chain, negated: bool, words: &[Word]) {
        let before = std::mem::take(&mut self.chain);
        let gate = match chain {
            Chain::First => Term::known(true),
            Chain::And => self.numbered(before.clone()),
            Chain::Or => self.numbered(before.clone().not()),
        };
        let (words, written) = split_redirects(words);
        if gate.known != Some(false) && self.branches.iter().all(Branch::taken) {
            let (n, undecided) = (self.guards.len(), self.undecided);
            self.undecided += usize::from(!gate.exact_true);
            self.guards.extend(gate.if_true);
            self.command(&words, &written);
            self.guards.truncate(n);
            self.undecided = undecided;
        }
        let mut term = self.test_term(&words);
        if negated {
            term = term.not();
        }
        self.chain = match chain {
            Chain::First => term,
            Chain::And => before.and(term),
            Chain::Or => before.or(term),
        };
    }

    /// What the static reading knows of a command used as a condition:
    /// `test` / `[` on known words, and commands whose outcome is fixed.
    fn test_term(&self, words: &[Word]) -> Term {
        let fields = self.expand_all(words);
        let argv: Vec<Option<&str>> = fields.iter().map(Option::as_deref).collect();
        match argv.as_slice() {
            [Some("["), args @ .., Some("]")] | [Some("test"), args @ ..] => test_args(args),
            // Every setcap is applied, so a script's check succeeds.
            [Some("setcap"), ..] | [Some("command"), Some("-v"), Some("setcap")] => {
                Term::known(true)
            }
            // No override exists on a fresh system but those the script
            // added itself.
            [Some("dpkg-statoverride"), Some("--list"), Some(path)] => {
                Term::known(self.out.stat_overrides.iter().any(|o| o.path == *path))
            }
            [Some(":" | "true")] => Term::known(true),
            [Some("false")] => Term::known(false),
            _ => Term::default(),
        }
    }

    /// The condition with its file tests given the next point number.
    fn numbered(&mut self, mut t: Term) -> Term {
        self.points += 1;
        for p in t.if_true.iter_mut().chain(t.if_false.iter_mut()) {
            p.point = self.points;
        }
        t
    }

    /// The file tests a file operation runs under, outermost first.
    fn current_tests(&self) -> Vec<PathTest> {
        let mut tests: Vec<PathTest> = Vec::new();
        for b in &self.branches {
            tests.extend(b.tests().iter().cloned());
        }
        tests.extend(self.guards.iter().cloned());
        tests
    }

    /// Records a file operation under the current tests.
    fn push_op(&mut self, op: FileOp) {
        let when = self.current_tests();
        let decided = self.undecided == 0 && self.branches.iter().all(Branch::exact);
        self.out.file_ops.push(ScriptOp { when, decided, op });
    }

    /// `NAME() {` at `commands[i]`: records the body up to the matching
    /// `}` and returns that command's index.
    fn define_function(&mut self, commands: &[Vec<Word>], i: usize) -> Option<usize> {
        let cmd = &commands[i];
        let name = plain(cmd.first()?)?;
        if !is_marker(cmd.get(1)?, FUNCTION_MARK) {
            return None;
        }
        let mut body: Vec<Vec<Word>> = Vec::new();
        let mut j = i;
        let opening = if cmd.get(2).and_then(plain) == Some("{") {
            &cmd[3..]
        } else {
            // `NAME()` then `{` on the next line.
            j += 1;
            let next = commands.get(j)?;
            if next.first().and_then(plain) != Some("{") {
                return None;
            }
            &next[1..]
        };
        if !opening.is_empty() {
            body.push(opening.to_vec());
        }
        let end = function_end(commands, j + 1);
        body.extend(commands[j + 1..end].iter().cloned());
        self.functions.insert(name.to_string(), body);
        Some(end)
    }

    /// Runs a function's body with its positional parameters set.
    fn call(&mut self, name: &str, args: &[Option<String>]) {
        let Some(body) = self.functions.get(name).cloned() else {
            return;
        };
        self.called.insert(name.to_string());
        if self.depth >= MAX_CALL_DEPTH {
            return;
        }
        let saved: Vec<(String, Option<String>)> = (1..=9)
            .map(|n| (n.to_string(), self.vars.get(&n.to_string()).cloned()))
            .collect();
        for n in 1..=9 {
            // A parameter past the last argument is empty, not unknown.
            let v = args.get(n - 1).cloned().unwrap_or(Some(String::new()));
            self.assign(n.to_string(), v);
        }
        let (branches, chain) = (self.branches.len(), self.chain.clone());
        self.depth += 1;
        self.run(&body);
        self.depth -= 1;
        self.branches.truncate(branches);
        self.chain = chain;
        for (k, v) in saved {
            self.assign(k, v);
        }
    }

    fn for_loop(&mut self, header: &[Word], body: &[Vec<Word>]) {
        let var = header.get(1).and_then(plain).map(str::to_string);
        let values: Option<Vec<Option<String>>> = match header.get(2).and_then(plain) {
            Some("in") => Some(self.expand_all(&header[3..])),
            _ => None,
        };
        let Some(var) = var else {
            self.run(body);
            return;
        };
        match values {
            Some(values) if values.iter().all(Option::is_some) => {
                let saved = self.vars.get(&var).cloned();
                for v in values.into_iter().flatten() {
                    self.vars.insert(var.clone(), v);
                    self.run(body);
                }
                match saved {
                    Some(s) => self.vars.insert(var, s),
                    None => self.vars.remove(&var),
                };
            }
            _ => {
                // Unknown list: analyse the body once with the variable
                // unknown, so calls using it end up unresolved.
                let saved = self.vars.remove(&var);
                self.run(body);
                if let Some(s) = saved {
                    self.vars.insert(var, s);
                }
            }
        }
    }

    /// Runs one simple command: assignments, a function call, or one of
    /// the programs whose effect is read; `written` are the files it
    /// truncates with `>`.
    fn command(&mut self, words: &[Word], written: &[Word]) {
        let Some(first) = words.first() else {
            // `> FILE` alone makes an empty file too.
            return self.truncate(written);
        };
        if matches!(plain(first), Some("local" | "export" | "readonly")) {
            return self.assign_all(&words[1..]);
        }
        // Leading assignments: alone they set shell variables; before a
        // command they only set its environment.
        let n_assign = words
            .iter()
            .take_while(|w| self.assignment(w).is_some())
            .count();
        if n_assign == words.len() {
            return self.assign_all(words);
        }
        let words = &words[n_assign..];
        let fields = self.expand_all(words);
        let Some(Some(prog)) = fields.first() else {
            return;
        };
        let prog = prog.clone();
        if self.functions.contains_key(prog.as_str()) {
            return self.call(&prog, &fields[1..]);
        }
        let base = prog.rsplit('/').next().unwrap_or(&prog);
        if matches!(base, ":" | "true") {
            return self.truncate(written);
        }
        self.program(base, words, &fields[1..]);
    }

    /// The programs whose effects are read.
    fn program(&mut self, base: &str, words: &[Word], args: &[Option<String>]) {
        match base {
            "chmod" => self.chmod(words, args),
            "chown" => self.chown(words, args, false),
            "chgrp" => self.chown(words, args, true),
            "mkdir" => self.mkdir(words, args),
            "ln" => self.ln(words, args),
            "rmdir" => self.rmdir(words, args),
            "cp" => self.cp(words, args),
            // `mv` is read (see `mv`) but not applied yet: `case` arms are
            // not evaluated, and adduser's upgrade-only arm moves
            // /etc/adduser.conf away.
            "touch" => self.touch(words, args),
            "umask" => match args {
                [Some(m)] => match u32::from_str_radix(m, 8) {
                    Ok(m) if m <= 0o777 => self.push_op(FileOp::Umask(m)),
                    _ => self.unresolved(words, "umask is not octal"),
                },
                _ => self.unresolved(words, "expected one known umask"),
            },
            "update-alternatives" => self.update_alternatives(words, args),
            "adduser" => self.adduser(words, args, false),
            "addgroup" => self.adduser(words, args, true),
            "useradd" => self.useradd(words, args),
            "groupadd" => self.groupadd(words, args),
            "setcap" => self.setcap(words, args),
            "dpkg-statoverride" => self.statoverride(words, args),
            _ => {}
        }
    }

    fn assign_all(&mut self, words: &[Word]) {
        for w in words {
            if let Some((name, value)) = self.assignment(w) {
                self.assign(name, value);
            }
        }
    }

    fn assign(&mut self, name: String, value: Option<String>) {
        match value {
            Some(v) => self.vars.insert(name, v),
            None => self.vars.remove(&name),
        };
    }

    fn update_alternatives(&mut self, words: &[Word], args: &[Option<String>]) {
        let Some(at) = args.iter().position(|a| a.as_deref() == Some("--install")) else {
            return;
        };
        if args[..at].iter().any(Option::is_none) {
            // An unknown option could be `--install` itself.
            return self.unresolved(words, "unknown words before --install");
        }
        let rest = &args[at + 1..];
        if rest.len() < 4 || rest[..4].iter().any(Option::is_none) {
            return self.unresolved(words, "--install needs LINK NAME PATH PRIORITY");
        }
        let get = |i: usize| rest[i].clone().unwrap_or_default();
        let Ok(priority) = get(3).parse::<i64>() else {
            return self.unresolved(words, "priority is not an integer");
        };
        let mut alt = Alternative {
            link: get(0),
            name: get(1),
            path: get(2),
            priority,
            slaves: Vec::new(),
        };
        let mut i = 4;
        while i < rest.len() {
            match rest[i].as_deref() {
                Some("--slave") => {
                    let triple = rest.get(i + 1..i + 4);
                    match triple {
                        Some([Some(l), Some(n), Some(p)]) => {
                            alt.slaves.push((l.clone(), n.clone(), p.clone()));
                        }
                        _ => return self.unresolved(words, "--slave needs LINK NAME PATH"),
                    }
                    i += 4;
                }
                Some(_) => i += 1,
                None => return self.unresolved(words, "unknown word after --install"),
            }
        }
        self.out.alternatives.push(alt);
    }

    /// `adduser` / `addgroup` (Debian's adduser package).
    fn adduser(&mut self, words: &[Word], args: &[Option<String>], addgroup: bool) {
        const WITH_VALUE: [&str; 13] = [
            "--home",
            "--shell",
            "--ingroup",
            "--gecos",
            "--comment",
            "--uid",
            "--gid",
            "--firstuid",
            "--lastuid",
            "--firstgid",
            "--lastgid",
            "--conf",
            "--add-extra-groups",
        ];
        let mut opts: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut names = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let Some(a) = args[i].as_deref() else {
                names.push(None);
                i += 1;
                continue;
            };
            if let Some(long) = a.strip_prefix("--") {
                let (k, v) = match long.split_once('=') {
                    Some((k, v)) => (format!("--{k}"), Some(Some(v.to_string()))),
                    None => (a.to_string(), None),
                };
                let v = match v {
                    Some(v) => v,
                    None if WITH_VALUE.contains(&k.as_str()) => {
                        i += 1;
                        args.get(i).cloned().flatten()
                    }
                    None => Some(String::new()),
                };
                opts.insert(k, v);
            } else {
                names.push(Some(a.to_string()));
            }
            i += 1;
        }
        let system = opts.contains_key("--system");
        if !system {
            // `adduser USER GROUP` (membership) or a normal account: not
            // something a package should do, and not an image account.
            return;
        }
        let name = match names.as_slice() {
            [Some(n)] => n.clone(),
            [None] => return self.unresolved(words, "account name not known"),
            _ => return self.unresolved(words, "expected exactly one account name"),
        };
        let num = |k: &str| opts.get(k).cloned().flatten().and_then(|v| v.parse().ok());
        if addgroup {
            self.push_group(SystemGroup {
                name,
                gid: num("--gid"),
            });
            return;
        }
        for k in ["--home", "--shell", "--ingroup", "--gecos", "--comment"] {
            if opts.get(k).is_some_and(Option::is_none) {
                return self.unresolved(words, &format!("value of {k} not known"));
            }
        }
        let user_group = opts.contains_key("--group");
        let user = SystemUser {
            name: name.clone(),
            uid: num("--uid"),
            home: opts.get("--home").cloned().flatten(),
            shell: opts.get("--shell").cloned().flatten(),
            primary_group: opts.get("--ingroup").cloned().flatten(),
            user_group,
            create_home: !opts.contains_key("--no-create-home"),
            gecos: opts
                .get("--gecos")
                .or_else(|| opts.get("--comment"))
                .cloned()
                .flatten(),
        };
        if user_group {
            self.push_group(SystemGroup {
                name,
                gid: num("--gid"),
            });
        }
        self.push_user(user);
    }

    fn push_user(&mut self, u: SystemUser) {
        if !self.out.users.iter().any(|x| x.name == u.name) {
            self.out.users.push(u);
        }
    }

    fn push_group(&mut self, g: SystemGroup) {
        if !self.out.groups.iter().any(|x| x.name == g.name) {
            self.out.groups.push(g);
        }
    }

    /// Splits shadow-utils style arguments: short options with values
    /// in `with_value`, long ones `--x=v` or `--x v`.
    fn shadow_args(
        args: &[Option<String>],
        with_value: &[(&str, &str)],
    ) -> (BTreeMap<String, Option<String>>, Vec<Option<String>>) {
        let mut opts = BTreeMap::new();
        let mut names = Vec::new();
        let mut i = 0;
        let canon = |k: &str| -> String {
            with_value
                .iter()
                .find(|(s, l)| *s == k || *l == k)
                .map_or(k.to_string(), |(s, _)| s.to_string())
        };
        let takes_value = |k: &str| with_value.iter().any(|(s, l)| *s == k || *l == k);
        while i < args.len() {
            match args[i].as_deref() {
                Some(a) if a.starts_with("--") => {
                    if let Some((k, v)) = a.split_once('=') {
                        opts.insert(canon(k), Some(v.to_string()));
                    } else if takes_value(a) {
                        i += 1;
                        opts.insert(canon(a), args.get(i).cloned().flatten());
                    } else {
                        opts.insert(a.to_string(), Some(String::new()));
                    }
                }
                Some(a) if a.starts_with('-') && a.len() > 1 => {
                    // Bundled short flags: `-rM`, or `-d/home` with value.
                    let flags: Vec<char> = a[1..].chars().collect();
                    let mut j = 0;
                    while j < flags.len() {
                        let k = format!("-{}", flags[j]);
                        if takes_value(&k) {
                            let attached: String = flags[j + 1..].iter().collect();
                            let v = if attached.is_empty() {
                                i += 1;
                                args.get(i).cloned().flatten()
                            } else {
                                Some(attached)
                            };
                            opts.insert(k, v);
                            break;
                        }
                        opts.insert(k, Some(String::new()));
                        j += 1;
                    }
                }
                other => names.push(other.map(str::to_string)),
            }
            i += 1;
        }
        (opts, names)
    }

    fn useradd(&mut self, words: &[Word], args: &[Option<String>]) {
        const WITH_VALUE: [(&str, &str); 11] = [
            ("-d", "--home-dir"),
            ("-s", "--shell"),
            ("-g", "--gid"),
            ("-u", "--uid"),
            ("-c", "--comment"),
            ("-G", "--groups"),
            ("-K", "--key"),
            ("-p", "--password"),
            ("-e", "--expiredate"),
            ("-f", "--inactive"),
            ("-b", "--base-dir"),
        ];
        let (opts, names) = Self::shadow_args(args, &WITH_VALUE);
        if !opts.contains_key("-r") && !opts.contains_key("--system") {
            return;
        }
        let name = match names.as_slice() {
            [Some(n)] => n.clone(),
            _ => return self.unresolved(words, "expected exactly one known account name"),
        };
        for k in ["-d", "-s", "-g", "-c"] {
            if opts.get(k).is_some_and(Option::is_none) {
                return self.unresolved(words, &format!("value of {k} not known"));
            }
        }
        let get = |k: &str| opts.get(k).cloned().flatten();
        // useradd creates a same-named group unless -N or -g, following
        // USERGROUPS_ENAB (yes on Debian).
        let user_group = opts.contains_key("-U")
            || opts.contains_key("--user-group")
            || (!opts.contains_key("-N")
                && !opts.contains_key("--no-user-group")
                && !opts.contains_key("-g"));
        let user = SystemUser {
            name: name.clone(),
            uid: get("-u").and_then(|v| v.parse().ok()),
            home: get("-d"),
            shell: get("-s"),
            primary_group: get("-g"),
            user_group,
            create_home: opts.contains_key("-m") || opts.contains_key("--create-home"),
            gecos: get("-c"),
        };
        if user_group {
            self.push_group(SystemGroup { name, gid: None });
        }
        self.push_user(user);
    }

    fn groupadd(&mut self, words: &[Word], args: &[Option<String>]) {
        const WITH_VALUE: [(&str, &str); 4] = [
            ("-g", "--gid"),
            ("-K", "--key"),
            ("-p", "--password"),
            ("-R", "--root"),
        ];
        let (opts, names) = Self::shadow_args(args, &WITH_VALUE);
        if !opts.contains_key("-r") && !opts.contains_key("--system") {
            return;
        }
        match names.as_slice() {
            [Some(n)] => self.push_group(SystemGroup {
                name: n.clone(),
                gid: opts
                    .get("-g")
                    .cloned()
                    .flatten()
                    .and_then(|v| v.parse().ok()),
            }),
            _ => self.unresolved(words, "expected exactly one known group name"),
        }
    }

    fn setcap(&mut self, words: &[Word], args: &[Option<String>]) {
        let mut rest: Vec<&Option<String>> = Vec::new();
        let mut i = 0;
        while i < args.len() {
            match args[i].as_deref() {
                Some("-q" | "-v") => {}
                Some("-n") => i += 1,
                Some("-r") => return,
                _ => rest.push(&args[i]),
            }
            i += 1;
        }
        if rest.is_empty() || rest.len() & 1 != 0 {
            return self.unresolved(words, "expected CAPS PATH pairs");
        }
        for pair in rest.chunks(2) {
            let (Some(text), Some(path)) = (pair[0], pair[1]) else {
                self.unresolved(words, "capabilities or path not known");
                continue;
            };
            match parse_capabilities(text) {
                Ok(caps) => {
                    let cap = FileCap {
                        path: path.clone(),
                        text: text.clone(),
                        caps,
                    };
                    self.out.capabilities.push(cap.clone());
                    self.push_op(FileOp::SetCap(cap));
                }
                Err(e) => self.unresolved(words, &e.to_string()),
            }
        }
    }

    fn statoverride(&mut self, words: &[Word], args: &[Option<String>]) {
        let Some(at) = args.iter().position(|a| a.as_deref() == Some("--add")) else {
            return;
        };
        let rest: Vec<&Option<String>> = args[at + 1..]
            .iter()
            .filter(|a| !matches!(a.as_deref(), Some("--update" | "--force" | "--quiet")))
            .collect();
        match rest.as_slice() {
            [Some(u), Some(g), Some(m), Some(p)] => match u32::from_str_radix(m, 8) {
                Ok(mode) => {
                    let so = StatOverride {
                        user: u.clone(),
                        group: g.clone(),
                        mode,
                        path: p.clone(),
                    };
                    self.out.stat_overrides.push(so.clone());
                    self.push_op(FileOp::StatOverride(so));
                }
                Err(_) => self.unresolved(words, "mode is not octal"),
            },
            _ => self.unresolved(words, "--add needs USER GROUP MODE PATH, all known"),
        }
    }
}

/// Index of the `done` closing the loop whose body starts at `from`
/// (or the end of the list when unbalanced).
fn find_done(commands: &[Vec<Word>], from: usize) -> usize {
    let mut depth = 1;
    for (i, cmd) in commands.iter().enumerate().skip(from) {
        for w in cmd {
            match plain(w) {
                Some("for" | "while" | "until") => depth += 1,
                Some("done") => {
                    depth -= 1;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            }
            // Only the leading keyword of a command counts.
            if !matches!(plain(w), Some("do" | "then" | "else" | "{" | "!")) {
                break;
            }
        }
    }
    commands.len()
}

/// The words of a command without its `> FILE` redirections, and those
/// files.
fn split_redirects(words: &[Word]) -> (Vec<Word>, Vec<Word>) {
    let mut kept = Vec::new();
    let mut written = Vec::new();
    let mut iter = words.iter();
    while let Some(w) = iter.next() {
        if is_marker(w, TRUNCATE_MARK) {
            written.extend(iter.next().cloned());
        } else {
            kept.push(w.clone());
        }
    }
    (kept, written)
}

/// Index of the `}` closing a function body that starts at `from` (or the
/// end of the list when unbalanced).
fn function_end(commands: &[Vec<Word>], from: usize) -> usize {
    let mut depth = 1;
    for (j, cmd) in commands.iter().enumerate().skip(from) {
        let first = cmd.first().and_then(plain);
        if cmd.get(2).and_then(plain) == Some("{") || first == Some("{") {
            depth += 1;
        }
        if first == Some("}") {
            depth -= 1;
            if depth == 0 {
                return j;
            }
        }
    }
    commands.len()
}

/// The arguments of `test` / `[`: unary file tests, string comparisons
/// and `-z` / `-n` on known words, `!` before any of them.
fn test_args(args: &[Option<&str>]) -> Term {
    match args {
        [Some("!"), rest @ ..] => test_args(rest).not(),
        [Some(flag), Some(path)] if path.starts_with('/') => match FileTest::of_flag(flag) {
            Some(test) => Term::file(PathTest {
                path: path.to_string(),
                test,
                holds: true,
                point: 0,
            }),
            None => string_test(args),
        },
        _ => string_test(args),
    }
}

fn string_test(args: &[Option<&str>]) -> Term {
    match args {
        [Some(a), Some("=" | "=="), Some(b)] => Term::known(a == b),
        [Some(a), Some("!="), Some(b)] => Term::known(a != b),
        [Some("-z"), Some(a)] => Term::known(a.is_empty()),
        [Some("-n"), Some(a)] => Term::known(!a.is_empty()),
        [Some(a)] => Term::known(!a.is_empty()),
        _ => Term::default(),
    }
}

/// A command's options (words starting with `-` before `--`) and its
/// operands, in order; an unknown word counts as an operand.
fn options_and_operands(args: &[Option<String>]) -> (Vec<String>, Vec<Option<String>>) {
    let mut options = Vec::new();
    let mut operands = Vec::new();
    let mut ended = false;
    for a in args {
        match a.as_deref() {
            Some("--") if !ended => ended = true,
            Some(o) if !ended && o.len() > 1 && o.starts_with('-') => options.push(o.to_string()),
            _ => operands.push(a.clone()),
        }
    }
    (options, operands)
}

/// Whether short option letter `c` is among `options` (bundled or not),
/// or long option `long` is.
fn has_flag(options: &[String], c: char, long: &str) -> bool {
    options.iter().any(|o| match o.strip_prefix("--") {
        Some(l) => l == long,
        None => o[1..].contains(c),
    })
}

/// The file-system commands: each becomes a [`FileOp`] when its operands
/// are known absolute paths, else an unresolved entry.
impl Context<'_> {
    /// The operands as absolute paths, or `None` after reporting why not.
    fn paths(&mut self, words: &[Word], operands: &[Option<String>]) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for o in operands {
            match o {
                Some(p) if p.starts_with('/') => out.push(p.clone()),
                Some(_) => {
                    self.unresolved(words, "relative path");
                    return None;
                }
                None => {
                    self.unresolved(words, "path not known");
                    return None;
                }
            }
        }
        Some(out)
    }

    fn chmod(&mut self, words: &[Word], args: &[Option<String>]) {
        // A mode such as `-x` looks like an option: the first word that
        // is a mode is the mode.
        let at = args.iter().position(|a| {
            a.as_deref()
                .is_none_or(|a| apply_mode(a, 0, false).is_some())
        });
        let Some(at) = at else {
            return self.unresolved(words, "no mode");
        };
        let (options, _) = options_and_operands(&args[..at]);
        if has_flag(&options, 'R', "recursive") {
            return self.unresolved(words, "recursive chmod");
        }
        let Some(mode) = args[at].clone() else {
            return self.unresolved(words, "mode not known");
        };
        let Some(paths) = self.paths(words, &args[at + 1..]) else {
            return;
        };
        for path in paths {
            let mode = mode.clone();
            self.push_op(FileOp::Chmod { path, mode });
        }
    }

    /// `chown USER[:GROUP] FILE...`, or with `group_only` `chgrp GROUP FILE...`.
    fn chown(&mut self, words: &[Word], args: &[Option<String>], group_only: bool) {
        let (options, operands) = options_and_operands(args);
        if has_flag(&options, 'R', "recursive") {
            return self.unresolved(words, "recursive chown");
        }
        let Some((Some(owner), files)) = operands.split_first() else {
            return self.unresolved(words, "owner not known");
        };
        let (user, group) = if group_only {
            (None, Some(owner.clone()))
        } else {
            match owner.split_once([':', '.']) {
                Some((u, g)) => (
                    Some(u.to_string()).filter(|u| !u.is_empty()),
                    Some(g.to_string()).filter(|g| !g.is_empty()),
                ),
                None => (Some(owner.clone()), None),
            }
        };
        let Some(paths) = self.paths(words, files) else {
            return;
        };
        for path in paths {
            let (user, group) = (user.clone(), group.clone());
            self.push_op(FileOp::Chown { path, user, group });
        }
    }

    fn mkdir(&mut self, words: &[Word], args: &[Option<String>]) {
        let mut mode = None;
        let mut rest = Vec::new();
        let mut i = 0;
        while i < args.len() {
            match args[i].as_deref() {
                Some("-m" | "--mode") => {
                    i += 1;
                    mode = Some(args.get(i).cloned().flatten());
                }
                Some(a) if a.starts_with("--mode=") => mode = Some(Some(a[7..].to_string())),
                Some(a) if a.starts_with("-m") => mode = Some(Some(a[2..].to_string())),
                _ => rest.push(args[i].clone()),
            }
            i += 1;
        }
        if mode == Some(None) {
            return self.unresolved(words, "mode not known");
        }
        let (options, operands) = options_and_operands(&rest);
        let parents = has_flag(&options, 'p', "parents");
        let Some(paths) = self.paths(words, &operands) else {
            return;
        };
        for path in paths {
            let mode = mode.clone().flatten();
            self.push_op(FileOp::Mkdir {
                path,
                parents,
                mode,
            });
        }
    }

    /// `ln -s[f] TARGET LINK` (hard links are not read).
    fn ln(&mut self, words: &[Word], args: &[Option<String>]) {
        let (options, operands) = options_and_operands(args);
        if !has_flag(&options, 's', "symbolic") {
            return self.unresolved(words, "hard link");
        }
        let force = has_flag(&options, 'f', "force");
        let [Some(target), link] = operands.as_slice() else {
            return self.unresolved(words, "expected TARGET LINK, both known");
        };
        let Some(mut links) = self.paths(words, std::slice::from_ref(link)) else {
            return;
        };
        let (target, link) = (target.clone(), links.remove(0));
        self.push_op(FileOp::Symlink {
            target,
            link,
            force,
        });
    }

    fn rmdir(&mut self, words: &[Word], args: &[Option<String>]) {
        let (options, operands) = options_and_operands(args);
        if has_flag(&options, 'p', "parents") {
            return self.unresolved(words, "rmdir -p");
        }
        let Some(paths) = self.paths(words, &operands) else {
            return;
        };
        for path in paths {
            self.push_op(FileOp::Rmdir { path });
        }
    }

    /// `cp [-p] SRC DST` of one file.
    fn cp(&mut self, words: &[Word], args: &[Option<String>]) {
        let (options, operands) = options_and_operands(args);
        let preserve = has_flag(&options, 'p', "preserve") || has_flag(&options, 'a', "archive");
        if operands.len() != 2 {
            return self.unresolved(words, "expected SRC DST");
        }
        let Some(paths) = self.paths(words, &operands) else {
            return;
        };
        let [src, dst] = [paths[0].clone(), paths[1].clone()];
        self.push_op(FileOp::Copy { src, dst, preserve });
    }

    /// `mv [-f] SRC DST` of one path.
    #[allow(dead_code)]
    fn mv(&mut self, words: &[Word], args: &[Option<String>]) {
        let (_, operands) = options_and_operands(args);
        if operands.len() != 2 {
            return self.unresolved(words, "expected SRC DST");
        }
        let Some(paths) = self.paths(words, &operands) else {
            return;
        };
        let [src, dst] = [paths[0].clone(), paths[1].clone()];
        self.push_op(FileOp::Rename { src, dst });
    }

    /// `touch FILE...` (times aside: the image clamps them).
    fn touch(&mut self, words: &[Word], args: &[Option<String>]) {
        let (options, operands) = options_and_operands(args);
        if !options.is_empty() {
            return self.unresolved(words, "touch with options");
        }
        let Some(paths) = self.paths(words, &operands) else {
            return;
        };
        for path in paths {
            self.push_op(FileOp::Touch { path });
        }
    }

    /// `: > FILE` (or `true > FILE`, `> FILE`).
    fn truncate(&mut self, written: &[Word]) {
        for w in written {
            let fields = self.expand(w, false);
            let Some(paths) = self.paths(std::slice::from_ref(w), &fields) else {
                continue;
            };
            for path in paths {
                self.push_op(FileOp::Truncate { path });
            }
        }
    }
}
