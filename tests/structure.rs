//! Structure checks, run by `make test` so that what was cleaned up stays clean:
//!
//! * no import circle between the files of any workspace crate: file A depends on file B
//!   when A's code (comments, strings and `#[cfg(test)]` modules left out) names a
//!   `crate::…`, `self::…` or `super::…` path (a `use` tree included) whose longest module
//!   prefix is B's module. Every strongly connected component of more than one file is a circle.
//! * no function longer than 100 lines (from its `fn` line to its closing brace) in the crates
//!   `netshoot-build` and `registry`, test modules left out.
//!
//! Findings present when the check was added are listed in `tests/structure-allow.txt`, a
//! list of debts that only shrinks: a finding not in it fails, and so does a line of it that
//! is no longer found. `/work/shared/tools/structure.py` holds the same notions in Python.
//! This reads paths as text: an approximation that is good enough to see a circle, not a
//! compiler.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 100;
const LONG_FN_CRATES: &[&str] = &["netshoot-build", "registry"];
const ALLOW_FILE: &str = "tests/structure-allow.txt";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Finding {
    /// The files of one circle, repository-relative, sorted.
    Circle(Vec<String>),
    LongFn {
        path: String,
        line: usize,
        name: String,
        lines: usize,
    },
}

impl Finding {
    /// The form of the finding in the allowlist: no line number, no length.
    fn key(&self) -> String {
        match self {
            Finding::Circle(files) => format!("circle: {}", files.join(", ")),
            Finding::LongFn { path, name, .. } => format!("long fn: {path} {name}"),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Circle(_) => write!(f, "{}", self.key()),
            Finding::LongFn {
                path,
                line,
                name,
                lines,
            } => write!(f, "long fn: {path}:{line} {name} ({lines} lines)"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The workspace: its member crates and their source files.

struct Crate {
    dir: PathBuf,
    name: String,
}

/// The nearest folder above this package whose Cargo.toml has a `[workspace]`.
fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        if let Some(table) = read_toml(&dir.join("Cargo.toml")) {
            if table.contains_key("workspace") {
                return dir;
            }
        }
        assert!(
            dir.pop(),
            "no Cargo.toml with [workspace] above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
}

fn read_toml(path: &Path) -> Option<toml::Table> {
    fs::read_to_string(path).ok()?.parse::<toml::Table>().ok()
}

fn string_list(table: &toml::Table, key: &str) -> Vec<String> {
    table
        .get(key)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The `[workspace] members` of `root` (`*` patterns expanded, `exclude` left out) that have
/// a `src/` folder, with their package names.
fn workspace_crates(root: &Path) -> Vec<Crate> {
    let manifest = read_toml(&root.join("Cargo.toml"))
        .unwrap_or_else(|| panic!("cannot read {}/Cargo.toml", root.display()));
    let ws = manifest
        .get("workspace")
        .and_then(|w| w.as_table())
        .expect("the root Cargo.toml has no [workspace] table");
    let excluded: BTreeSet<PathBuf> = string_list(ws, "exclude")
        .iter()
        .map(|e| root.join(e))
        .collect();
    let mut dirs = BTreeSet::new();
    for member in string_list(ws, "members") {
        dirs.extend(expand_member(root, &member));
    }
    let mut crates = Vec::new();
    for dir in dirs {
        if excluded.contains(&dir) || !dir.join("src").is_dir() {
            continue;
        }
        let name = read_toml(&dir.join("Cargo.toml"))
            .and_then(|t| t.get("package")?.get("name")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        crates.push(Crate { dir, name });
    }
    crates
}

/// A member path, its `*` components matched against the folders there.
fn expand_member(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![root.to_path_buf()];
    for part in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let mut next = Vec::new();
        for base in found {
            if !part.contains('*') {
                next.push(base.join(part));
                continue;
            }
            let Ok(entries) = fs::read_dir(&base) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() && wildcard(part, &name) {
                    next.push(entry.path());
                }
            }
        }
        found = next;
    }
    found.into_iter().filter(|d| d.is_dir()).collect()
}

/// `pattern` with `*` (any run of characters) matches `name`.
fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| wildcard(tail, &rest[i..]))
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module of a file under `src`: `lib.rs`/`main.rs` are the root (empty), `a/mod.rs` and
/// `a.rs` are `a`, `a/b.rs` is `a::b`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        return Vec::new();
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn display_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

// ---------------------------------------------------------------------------------------------
// Reading Rust as text: comments and literals blanked, then tokens.

/// `src` with comments blanked and string/char literals emptied (`""`, `' '`); every newline
/// is kept, so line numbers still hold.
fn strip_comments_and_literals(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let n = c.len();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < n {
        let ch = c[i];
        if ch == '/' && at(i + 1) == '/' {
            while i < n && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < n {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if let Some((hashes, open)) = raw_string_start(&c, i) {
            // r"…", r#"…"#, br"…", cr"…": no escapes, ends at `"` and as many `#`.
            out.push('"');
            i = open + 1;
            while i < n {
                if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(c[i]));
                i += 1;
            }
            out.push('"');
        } else if ch == '"' {
            // "…" (also b"…", c"…": the prefix was copied as an identifier character).
            out.push('"');
            i += 1;
            while i < n {
                if c[i] == '\\' {
                    out.push(' ');
                    if i + 1 < n {
                        out.push(blank(c[i + 1]));
                    }
                    i += 2;
                } else if c[i] == '"' {
                    i += 1;
                    break;
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
            out.push('"');
        } else if ch == '\'' && at(i + 1) == '\\' {
            // '\n', '\'', '\u{7f}': the escaped character, then up to the closing quote.
            let mut j = i + 3;
            while j < n && c[j] != '\'' && c[j] != '\n' {
                j += 1;
            }
            out.push_str("' '");
            i = (j + 1).min(n);
        } else if ch == '\'' && at(i + 2) == '\'' && at(i + 1) != '\'' {
            // 'x' ('{', '"' included); a lifetime or label ('a, 'static) has no closing quote.
            out.push_str("' '");
            i += 3;
        } else {
            out.push(ch);
            i += 1;
            // An identifier is copied whole so that its last letter never opens a raw string.
            if is_ident(ch) {
                while i < n && is_ident(c[i]) {
                    out.push(c[i]);
                    i += 1;
                }
            }
        }
    }
    out
}

/// At `i`, `r"`, `r#…#"`, `br…"` or `cr…"` opening a raw string: its `#` count and the index
/// of its opening quote. The caller has copied any identifier ending just before `i`.
fn raw_string_start(c: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if matches!(c.get(j), Some('b') | Some('c')) {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some((hashes, j))
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    line: usize,
}

/// Identifiers (and numbers) whole, `::` as one token, any other character alone.
fn tokenize(stripped: &str) -> Vec<Token> {
    let c: Vec<char> = stripped.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let text = c[start..i].iter().collect();
            tokens.push(Token { text, line });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            tokens.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                text: ch.to_string(),
                line,
            });
            i += 1;
        }
    }
    tokens
}

fn is_ident(text: &str) -> bool {
    text.starts_with(|ch: char| ch.is_alphabetic() || ch == '_')
}

/// The index just after the bracket closing the one at `open` (`(`, `[` or `{`).
fn matching_close(t: &[Token], open: usize) -> usize {
    let (o, c) = match t[open].text.as_str() {
        "(" => ("(", ")"),
        "[" => ("[", "]"),
        _ => ("{", "}"),
    };
    let mut depth = 0usize;
    for (k, tok) in t.iter().enumerate().skip(open) {
        if tok.text == o {
            depth += 1;
        } else if tok.text == c {
            depth -= 1;
            if depth == 0 {
                return k + 1;
            }
        }
    }
    t.len()
}

/// The tokens outside `#[cfg(test)] mod name { … }`, and the names of `#[cfg(test)] mod name;`
/// (test modules in files of their own).
fn without_test_modules(t: &[Token]) -> (Vec<Token>, Vec<String>) {
    let text = |k: usize| t.get(k).map(|x| x.text.as_str()).unwrap_or("");
    let is_cfg_test = |k: usize| {
        ["#", "[", "cfg", "(", "test", ")", "]"]
            .iter()
            .enumerate()
            .all(|(d, s)| text(k + d) == *s)
    };
    let mut kept = Vec::new();
    let mut external = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if is_cfg_test(i) {
            let mut j = i + 7;
            // More attributes, then a visibility.
            while text(j) == "#" && text(j + 1) == "[" {
                j = matching_close(t, j + 1);
            }
            if text(j) == "pub" {
                j += 1;
                if text(j) == "(" {
                    j = matching_close(t, j);
                }
            }
            if text(j) == "mod" && is_ident(text(j + 1)) {
                if text(j + 2) == "{" {
                    i = matching_close(t, j + 2);
                    continue;
                }
                if text(j + 2) == ";" {
                    external.push(text(j + 1).to_owned());
                    i = j + 3;
                    continue;
                }
            }
        }
        kept.push(t[i].clone());
        i += 1;
    }
    (kept, external)
}

// ---------------------------------------------------------------------------------------------
// Dependencies between files.

/// Every module path named by a `crate::`, `self::` or `super::` path (`use` trees expanded),
/// made absolute from `me`, the module of the file.
fn referenced_paths(t: &[Token], me: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let starts_path =
            t.get(i + 1).is_some_and(|x| x.text == "::") && (i == 0 || t[i - 1].text != "::");
        let base = match t[i].text.as_str() {
            _ if !starts_path => None,
            "crate" => Some(Vec::new()),
            "self" => Some(me.to_vec()),
            "super" if !me.is_empty() => Some(me[..me.len() - 1].to_vec()),
            _ => None,
        };
        match base {
            Some(base) => i = path_rest(t, i + 1, base, &mut out),
            None => i += 1,
        }
    }
    out
}

/// After a path's first segment (`cur`): `::segment` repeated, maybe ending in a `{…}` group
/// or `*`. Pushes the paths read; returns the index after them.
fn path_rest(t: &[Token], mut i: usize, mut cur: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    loop {
        if t.get(i).is_none_or(|x| x.text != "::") {
            out.push(cur);
            return i;
        }
        i += 1;
        match t.get(i).map(|x| x.text.as_str()).unwrap_or("") {
            "{" => return use_group(t, i, cur, out),
            "*" => {
                out.push(cur);
                return i + 1;
            }
            "super" => {
                cur.pop();
            }
            "self" => {}
            s if is_ident(s) => cur.push(s.to_owned()),
            _ => {
                out.push(cur);
                return i;
            }
        }
        i += 1;
    }
}

/// A `{a, b::c, self, d::{e, f} as g}` group at `open`, each item relative to `cur`.
fn use_group(t: &[Token], open: usize, cur: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let text = |k: usize| t.get(k).map(|x| x.text.as_str()).unwrap_or("");
    let mut i = open + 1;
    while i < t.len() {
        match text(i) {
            "}" => return i + 1,
            "," => i += 1,
            "{" => i = use_group(t, i, cur.clone(), out),
            "*" | "self" => {
                i = path_rest(t, i + 1, cur.clone(), out);
            }
            "super" => {
                let mut up = cur.clone();
                up.pop();
                i = path_rest(t, i + 1, up, out);
            }
            s if is_ident(s) && s != "as" => {
                let mut next = cur.clone();
                next.push(s.to_owned());
                i = path_rest(t, i + 1, next, out);
            }
            "as" => i += 2,
            _ => return i, // not a use tree after all
        }
    }
    i
}

/// Tarjan's strongly connected components of more than one node, each sorted.
fn circles(n: usize, edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.edges[v].iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().expect("v is on the stack");
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort_unstable();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on_stack: vec![false; n],
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

// ---------------------------------------------------------------------------------------------
// Long functions.

/// Every `fn` item with a body (nested ones included) spanning more than `max` lines, from
/// the line of `fn` to the line of its closing brace: (line, name, lines).
fn long_fns(t: &[Token], max: usize) -> Vec<(usize, String, usize)> {
    let mut out = Vec::new();
    for i in 0..t.len() {
        if t[i].text != "fn" || !t.get(i + 1).is_some_and(|x| is_ident(&x.text)) {
            continue;
        }
        // The body: the first `{` outside the signature's parentheses and brackets; a `;`
        // there first means a declaration without a body.
        let mut j = i + 2;
        let mut depth = 0i64;
        let body = loop {
            match t.get(j).map(|x| x.text.as_str()) {
                None => break None,
                Some("(") | Some("[") => depth += 1,
                Some(")") | Some("]") => depth -= 1,
                Some("{") if depth == 0 => break Some(j),
                Some(";") if depth == 0 => break None,
                Some(_) => {}
            }
            j += 1;
        };
        let Some(open) = body else { continue };
        let close = matching_close(t, open).saturating_sub(1).min(t.len() - 1);
        let lines = t[close].line - t[i].line + 1;
        if lines > max {
            out.push((t[i].line, t[i + 1].text.clone(), lines));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The check.

/// All findings under `root`: circles in every member crate, then functions over `max_fn`
/// lines in the crates named in `long_fn_crates`.
fn check(root: &Path, long_fn_crates: &[&str], max_fn: usize) -> Vec<Finding> {
    let mut found_circles = Vec::new();
    let mut found_long = Vec::new();
    for krate in workspace_crates(root) {
        let src = krate.dir.join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        let mods: Vec<Vec<String>> = files.iter().map(|f| module_path(&src, f)).collect();
        let mut tokens = Vec::new();
        let mut test_files = BTreeSet::new();
        for (file, me) in files.iter().zip(&mods) {
            let text = fs::read_to_string(file).unwrap_or_default();
            let (kept, external) =
                without_test_modules(&tokenize(&strip_comments_and_literals(&text)));
            for name in external {
                let mut m = me.clone();
                m.push(name);
                test_files.insert(m);
            }
            tokens.push(kept);
        }
        let live: Vec<usize> = (0..files.len())
            .filter(|&k| !test_files.contains(&mods[k]))
            .collect();
        // The crate roots (lib.rs, main.rs) are no one's dependency.
        let by_module: HashMap<&[String], usize> = live
            .iter()
            .filter(|&&k| !mods[k].is_empty())
            .map(|&k| (mods[k].as_slice(), k))
            .collect();
        let mut edges = vec![BTreeSet::new(); files.len()];
        for &k in &live {
            for path in referenced_paths(&tokens[k], &mods[k]) {
                // The longest prefix of the path that is a file's module.
                let target = (1..=path.len())
                    .rev()
                    .find_map(|len| by_module.get(&path[..len]).copied());
                if let Some(target) = target.filter(|&t| t != k) {
                    edges[k].insert(target);
                }
            }
        }
        for comp in circles(files.len(), &edges) {
            let mut names: Vec<String> = comp
                .iter()
                .map(|&k| display_path(root, &files[k]))
                .collect();
            names.sort();
            found_circles.push(Finding::Circle(names));
        }
        if long_fn_crates.contains(&krate.name.as_str()) {
            for &k in &live {
                for (line, name, lines) in long_fns(&tokens[k], max_fn) {
                    found_long.push(Finding::LongFn {
                        path: display_path(root, &files[k]),
                        line,
                        name,
                        lines,
                    });
                }
            }
        }
    }
    found_circles.sort();
    found_long.sort_by(|a, b| match (a, b) {
        (
            Finding::LongFn {
                lines: x,
                path: p,
                line: l,
                ..
            },
            Finding::LongFn {
                lines: y,
                path: q,
                line: m,
                ..
            },
        ) => y.cmp(x).then(p.cmp(q)).then(l.cmp(m)),
        _ => a.cmp(b),
    });
    found_circles.into_iter().chain(found_long).collect()
}

/// What is wrong given the allowlist's text: findings it does not list (each line allows one
/// finding), and lines that match no finding.
fn compare(findings: &[Finding], allowlist: &str) -> Vec<String> {
    let mut allowed: BTreeMap<&str, usize> = BTreeMap::new();
    for line in allowlist.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with('#') {
            *allowed.entry(line).or_default() += 1;
        }
    }
    let mut problems = Vec::new();
    for finding in findings {
        match allowed.get_mut(finding.key().as_str()) {
            Some(count) if *count > 0 => *count -= 1,
            _ => problems.push(format!(
                "new: {finding}  (fix it: {ALLOW_FILE} lists old debts and takes no additions)"
            )),
        }
    }
    for (line, count) in allowed {
        for _ in 0..count {
            problems.push(format!(
                "fixed: `{line}` is no longer found: delete that line from {ALLOW_FILE}"
            ));
        }
    }
    problems
}

#[test]
fn no_new_import_circles_or_long_functions() {
    let root = workspace_root();
    let findings = check(&root, LONG_FN_CRATES, MAX_FN_LINES);
    let allowlist = fs::read_to_string(root.join(ALLOW_FILE)).unwrap_or_default();
    let problems = compare(&findings, &allowlist);
    let all: Vec<String> = findings.iter().map(|f| f.to_string()).collect();
    assert!(
        problems.is_empty(),
        "structure check (import circles; functions over {MAX_FN_LINES} lines in {LONG_FN_CRATES:?}):\n{}\n\nall findings:\n{}\n",
        problems.join("\n"),
        all.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checker's own tests, on small crates written to a temporary folder.

/// A workspace with one member `c` (package `package`) holding `files` under `c/src/`.
fn synthetic(package: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("Cargo.toml"), "[workspace]\nmembers = [\"c\"]\n").unwrap();
    fs::create_dir_all(root.join("c/src")).unwrap();
    fs::write(
        root.join("c/Cargo.toml"),
        format!("[package]\nname = \"{package}\"\nversion = \"0.1.0\"\n"),
    )
    .unwrap();
    for (path, text) in files {
        let path = root.join("c/src").join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

fn findings_of(package: &str, files: &[(&str, &str)]) -> Vec<String> {
    let dir = synthetic(package, files);
    check(dir.path(), LONG_FN_CRATES, MAX_FN_LINES)
        .iter()
        .map(|f| f.to_string())
        .collect()
}

/// A function spanning exactly `lines` lines, `fn` line and closing brace included.
fn function(name: &str, lines: usize) -> String {
    let mut f = format!("pub fn {name}() {{\n");
    for _ in 0..lines - 2 {
        f.push_str("    let _ = 0;\n");
    }
    f.push_str("}\n");
    f
}

#[test]
fn a_circle_is_reported() {
    let found = findings_of(
        "registry",
        &[
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use crate::b::B;\npub struct A;\n"),
            (
                "b.rs",
                "pub struct B;\npub fn f() -> crate::a::A { crate::a::A }\n",
            ),
        ],
    );
    assert_eq!(found, ["circle: c/src/a.rs, c/src/b.rs"]);
}

#[test]
fn circles_through_use_groups_self_and_super_are_reported() {
    let found = findings_of(
        "other",
        &[
            ("lib.rs", "mod a;\nmod b;\nmod m;\nmod x;\n"),
            ("a.rs", "use crate::{x::X, b};\npub struct A;\n"),
            ("b.rs", "pub fn f() { super::a::A; }\n"),
            ("x.rs", "pub struct X;\n"),
            // m/mod.rs is `m`, m/n.rs is `m::n`: `super::` in n is `m`, `self::` in m is `m`.
            ("m/mod.rs", "mod n;\npub use self::n::N;\npub struct M;\n"),
            ("m/n.rs", "pub struct N(super::M);\n"),
        ],
    );
    assert_eq!(
        found,
        [
            "circle: c/src/a.rs, c/src/b.rs",
            "circle: c/src/m/mod.rs, c/src/m/n.rs"
        ]
    );
}

#[test]
fn no_circle_without_one() {
    let found = findings_of(
        "registry",
        &[
            ("lib.rs", "mod a;\nmod b;\npub use crate::a::A;\n"),
            ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
            // Only a comment, a string, a doc comment and the test module name `a`.
            (
                "b.rs",
                "// uses crate::a::A\n/// [crate::a::A]\npub struct B;\n\
                 pub const S: &str = \"crate::a::A\";\n\
                 pub const R: &str = r#\"super::a\"#;\n/* crate::a /* nested */ super::a */\n\
                 #[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n",
            ),
        ],
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_function_over_100_lines_is_reported_and_one_of_100_is_not() {
    let text = format!("{}\n{}", function("ok", 100), function("too_long", 101));
    let found = findings_of("registry", &[("lib.rs", &text)]);
    assert_eq!(found, ["long fn: c/src/lib.rs:102 too_long (101 lines)"]);
    // The same in a crate whose length is not checked.
    assert!(findings_of("debian", &[("lib.rs", &text)]).is_empty());
}

#[test]
fn fn_in_strings_and_comments_is_not_counted() {
    let filler = "x\n".repeat(150);
    let text = format!(
        "pub const S: &str = \"fn in_string() {{\n{filler}}}\";\n\
         pub const R: &str = r#\"fn in_raw() {{\n{filler}}}\"#;\n\
         // fn in_line_comment() {{\n\
         /* fn in_block_comment() {{\n{filler}}} */\n\
         pub fn real() {{\n    let _ = \"{{\";\n    let _ = '{{';\n    // {{\n}}\n\
         {}",
        function("after", 50)
    );
    assert!(findings_of("registry", &[("lib.rs", &text)]).is_empty());
}

#[test]
fn test_modules_are_left_out() {
    let text = format!(
        "#[cfg(test)]\n#[allow(unused)]\nmod tests {{\n{}}}\n",
        function("long_test", 150)
    );
    assert!(findings_of("registry", &[("lib.rs", &text)]).is_empty());
}

#[test]
fn the_allowlist_only_shrinks() {
    let findings = vec![
        Finding::Circle(vec!["a.rs".into(), "b.rs".into()]),
        Finding::LongFn {
            path: "builder/src/build.rs".into(),
            line: 10,
            name: "build".into(),
            lines: 300,
        },
    ];
    let exact = "# debts\ncircle: a.rs, b.rs\nlong fn: builder/src/build.rs build\n";
    assert!(compare(&findings, exact).is_empty());

    let missing = compare(&findings, "circle: a.rs, b.rs\n");
    assert_eq!(missing.len(), 1);
    assert!(missing[0].starts_with("new: long fn: builder/src/build.rs:10 build (300 lines)"));

    let stale = compare(&findings, &format!("{exact}long fn: gone.rs old\n"));
    assert_eq!(stale.len(), 1);
    assert!(stale[0].contains("`long fn: gone.rs old` is no longer found: delete that line"));
}
