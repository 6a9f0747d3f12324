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
//!
//! What the analysis understands: `#` comments, backslash-newline
//! continuations, single and double quotes, backslash escapes, command
//! separators (`;`, `&&`, `||`, `|`, `&`, newlines, parentheses),
//! redirections (dropped) and here-documents (skipped), simple variables
//! assigned earlier in the script (`NAME=value`, also after `local`,
//! `export`, `readonly`; the last assignment in text order wins, whatever
//! branch it sits in), `${NAME:-default}` style defaults, unquoted
//! expansions split on whitespace, `$DPKG_MAINTSCRIPT_PACKAGE`, and `for
//! VAR in literal words; do ... done` loops, whose bodies are analysed once
//! per word.
//!
//! What it does not understand, and how that shows: conditions are not
//! evaluated, so every branch counts (a script that either installs a
//! setuid binary or sets capabilities, as `wireshark-common` does, yields
//! both; the caller decides); `chown`/`chmod` (not reported); command
//! substitution other than `dpkg-divert --truename PATH` (which
//! `iputils-ping` and `wireshark-common` use to name the binary they grant
//! capabilities to; it is PATH since we never divert), `dirname` and
//! `basename`; arithmetic; positional parameters (`$1`); variables never
//! assigned; shell functions called with arguments; `eval`; sourced files.
//! A recognised command whose needed arguments depend on any of those is
//! not guessed: its text goes into [`ScriptActions::unresolved`].

use std::collections::BTreeMap;

use crate::caps::{parse_capabilities, CapSet};

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
    /// Recognised calls that could not be understood statically, as
    /// `package: command text: why`.
    pub unresolved: Vec<String>,
}

/// Analyses maintainer script `script` of `package`. Never fails: what is
/// not understood is reported in [`ScriptActions::unresolved`].
pub fn analyze(package: &str, script: &str) -> ScriptActions {
    let commands = split_commands(&tokenize(script));
    let mut vars = BTreeMap::new();
    vars.insert("DPKG_MAINTSCRIPT_PACKAGE".to_string(), package.to_string());
    let mut cx = Context {
        package,
        vars,
        out: ScriptActions::default(),
        budget: COMMAND_BUDGET,
    };
    cx.run(&commands);
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
        if !matches!(self.toks.last(), Some(Tok::Sep) | None) {
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
    /// target word; remember here-document delimiters.
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
        let first = self.peek(0);
        self.pos += 1;
        let mut heredoc = None;
        match (first, self.peek(0)) {
            (Some('<'), Some('<')) => {
                self.pos += 1;
                let strip = self.peek(0) == Some('-');
                if strip {
                    self.pos += 1;
                }
                heredoc = Some(strip);
            }
            (_, Some('>' | '&' | '|')) => self.pos += 1,
            _ => {}
        }
        if self.peek(0) == Some('&') {
            self.pos += 1;
        }
        while matches!(self.peek(0), Some(' ' | '\t')) {
            self.pos += 1;
        }
        // The target word, quotes stripped.
        let mut target = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_whitespace() || ";&|()<>".contains(c) {
                break;
            }
            if c != '\'' && c != '"' && c != '\\' {
                target.push(c);
            }
            self.pos += 1;
        }
        if let Some(strip) = heredoc {
            self.heredocs.push((target, strip));
        }
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

impl Context<'_> {
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

    fn run(&mut self, commands: &[Vec<Word>]) {
        let mut i = 0;
        while i < commands.len() {
            if self.budget == 0 {
                let entry = format!(
                    "{}: script too complex: analysis stopped after {COMMAND_BUDGET} commands",
                    self.package
                );
                if !self.out.unresolved.contains(&entry) {
                    self.out.unresolved.push(entry);
                }
                return;
            }
            self.budget -= 1;
            let cmd = &commands[i];
            let start = cmd
                .iter()
                .position(|w| plain(w).is_none_or(|p| !PREFIX_WORDS.contains(&p)))
                .unwrap_or(cmd.len());
            let words = &cmd[start..];
            if words.first().and_then(plain) == Some("for") {
                let end = find_done(commands, i + 1);
                self.for_loop(words, &commands[i + 1..end]);
                i = end + 1;
                continue;
            }
            self.command(words);
            i += 1;
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

    fn command(&mut self, words: &[Word]) {
        let Some(first) = words.first() else { return };
        if matches!(plain(first), Some("local" | "export" | "readonly")) {
            for w in &words[1..] {
                if let Some((name, value)) = self.assignment(w) {
                    self.assign(name, value);
                }
            }
            return;
        }
        // Leading assignments: alone they set shell variables; before a
        // command they only set its environment.
        let n_assign = words
            .iter()
            .take_while(|w| self.assignment(w).is_some())
            .count();
        if n_assign == words.len() {
            for w in words {
                if let Some((name, value)) = self.assignment(w) {
                    self.assign(name, value);
                }
            }
            return;
        }
        let words = &words[n_assign..];
        let fields = self.expand_all(words);
        let Some(Some(prog)) = fields.first() else {
            return;
        };
        let base = prog.rsplit('/').next().unwrap_or(prog).to_string();
        let args = &fields[1..];
        match base.as_str() {
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
                Ok(caps) => self.out.capabilities.push(FileCap {
                    path: path.clone(),
                    text: text.clone(),
                    caps,
                }),
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
                Ok(mode) => self.out.stat_overrides.push(StatOverride {
                    user: u.clone(),
                    group: g.clone(),
                    mode,
                    path: p.clone(),
                }),
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
