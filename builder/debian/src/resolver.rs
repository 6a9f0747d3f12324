//! A deterministic dependency resolver over repository indexes.
//!
//! The resolver answers "which packages does an image with these tools
//! need", the way `apt-get install --no-install-recommends` would on an
//! empty system, but without any state outside its inputs: the same
//! indexes and request always give the same set, whatever the order of
//! the input or of hash maps.
//!
//! # Rules
//!
//! * The universe is the packages of the native architecture, of `all`
//!   and of the foreign architectures given; `all` packages count as
//!   native for dependency purposes (as in dpkg).
//! * Requested packages (and the base set) are selected first, without
//!   their dependencies, so that a dependency group that a requested
//!   package satisfies is not satisfied by something else. Then the
//!   dependencies of each are followed depth-first, in request order,
//!   `Pre-Depends` before `Depends` (and `Recommends` only if enabled).
//! * A group of `|` alternatives already satisfied by the selection is
//!   left alone. Otherwise the alternatives are tried in the order
//!   written; for each, the real package (highest satisfying version
//!   first, the dependent's architecture before `all` before others)
//!   before any provider of a virtual package of that name. A choice
//!   whose own dependencies fail, or that conflicts with the selection,
//!   is undone and the next one is tried.
//! * Among several providers of a virtual package: one already selected
//!   wins (that is the "already satisfied" rule above); otherwise the
//!   provider with the most important `Priority` (required, important,
//!   standard, optional, extra, absent), then the smallest package name,
//!   then the highest version.
//! * Multi-Arch: an unqualified dependency is satisfied by a package of
//!   the dependent's architecture, or by a `Multi-Arch: foreign` package
//!   of any architecture; `pkg:any` by a `Multi-Arch: allowed` package of
//!   any architecture; `pkg:native` and `pkg:ARCH` by that architecture.
//!   Two architectures of one package may both be selected only when both
//!   are `Multi-Arch: same` with the same version.
//! * `Conflicts` and `Breaks` apply to every architecture of the named
//!   package (and to providers of a virtual name, unversioned ones only
//!   for unversioned conflicts); a package never conflicts with itself.
//!   They are checked when a package is selected (so an alternative can
//!   be chosen instead) and once more over the final set.
//! * Backtracking is bounded: after 100 000 tried candidates the
//!   resolution fails with a message instead of running for hours.
//!
//! Checked against real apt on the trixie index (see
//! `tests/resolver_apt.rs`): the same sets for the netshoot tool lists.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::packages::{MultiArch, Package};
use crate::relation::{format_group, Relation, VersionOp};
use crate::version::Version;

/// Which packages are installed besides the requested ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Base {
    /// Every `Essential: yes` package of the native architecture or `all`.
    Essential,
    /// Every `Priority: required` package of the native architecture or `all`.
    Required,
    /// These packages (`name`, `name:arch` or `name=version`).
    List(Vec<String>),
    /// Nothing but the requested packages and their dependencies.
    #[default]
    None,
}

/// One requested package: `name[:arch][=version]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Package name (a virtual name is resolved to a provider).
    pub name: String,
    /// Architecture; `None` means the native one (or `all`).
    pub arch: Option<String>,
    /// Exact version wanted; `None` means the highest.
    pub version: Option<Version>,
}

impl FromStr for Request {
    type Err = ResolveError;
    /// Parses `name`, `name:arch`, `name=version` or `name:arch=version`.
    fn from_str(s: &str) -> Result<Request, ResolveError> {
        let bad = |reason: String| ResolveError::BadRequest {
            request: s.to_string(),
            reason,
        };
        let s = s.trim();
        let (spec, version) = match s.split_once('=') {
            Some((n, v)) => (n, Some(Version::parse(v).map_err(|e| bad(e.reason))?)),
            None => (s, None),
        };
        let (name, arch) = match spec.split_once(':') {
            Some((n, a)) if !a.is_empty() => (n, Some(a.to_string())),
            Some(_) => return Err(bad("empty architecture after ':'".into())),
            None => (spec, None),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+-".contains(c))
        {
            return Err(bad(format!("bad package name {name:?}")));
        }
        Ok(Request {
            name: name.to_string(),
            arch,
            version,
        })
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(a) = &self.arch {
            write!(f, ":{a}")?;
        }
        if let Some(v) = &self.version {
            write!(f, "={v}")?;
        }
        Ok(())
    }
}

/// Why a set of packages cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A dependency cannot be met. `chain` runs from the requested
    /// package through each relation followed; printed as
    /// `tcpdump -> libpcap0.8t64 (>= 1.10) -> not in arm64 index`.
    #[error("{} -> {reason}", chain.join(" -> "))]
    Unsatisfiable {
        /// The requested package, then each relation followed.
        chain: Vec<String>,
        /// Why the last relation cannot be met.
        reason: String,
    },
    /// Two packages of the final set conflict.
    #[error("{package} {field} {relation}, which {other} matches")]
    Conflict {
        /// The package declaring the relation, `name:arch (version)`.
        package: String,
        /// `Conflicts` or `Breaks`.
        field: &'static str,
        /// The relation as written.
        relation: String,
        /// The package it hits, `name:arch (version)`.
        other: String,
    },
    /// A request string that does not parse.
    #[error("bad package request {request:?}: {reason}")]
    BadRequest {
        /// The request as given.
        request: String,
        /// What is wrong.
        reason: String,
    },
}

/// The indexes to resolve against, with lookup tables built once.
#[derive(Debug, Clone)]
pub struct Resolver {
    packages: Vec<Package>,
    native: String,
    foreign: Vec<String>,
    follow_recommends: bool,
    by_name: BTreeMap<String, Vec<usize>>,
    providers: BTreeMap<String, Vec<usize>>,
}

/// Selection state; cloned to undo a failed alternative.
#[derive(Clone, Default)]
struct State {
    selected: BTreeMap<(String, String), usize>,
    processed: BTreeSet<usize>,
    /// Candidates tried so far, shared by every clone: undoing a choice
    /// must not refund the work, or a hopeless request could backtrack
    /// for an exponential time.
    attempts: std::rc::Rc<std::cell::Cell<u64>>,
}

/// How many candidates a resolution may try before giving up. Real
/// Debian requests need a few hundred; only long chains of failing
/// alternatives come near this.
const MAX_ATTEMPTS: u64 = 100_000;

/// Why a single package cannot join the selection.
struct Refusal(String);

impl Resolver {
    /// Builds a resolver over `packages` for `native_arch`. Packages of
    /// other architectures than native, `all` and `foreign_arches` are
    /// dropped; a package listed twice (same name, version and
    /// architecture, e.g. `all` packages in two arch indexes) is kept once,
    /// the first occurrence winning, so pass higher-priority indexes first.
    pub fn new(packages: Vec<Package>, native_arch: &str, foreign_arches: &[String]) -> Resolver {
        let keep =
            |a: &str| a == native_arch || a == "all" || foreign_arches.iter().any(|f| f == a);
        let mut seen = BTreeSet::new();
        let mut kept: Vec<Package> = Vec::new();
        for p in packages {
            if keep(&p.architecture)
                && seen.insert((
                    p.name.clone(),
                    p.version.as_str().to_string(),
                    p.architecture.clone(),
                ))
            {
                kept.push(p);
            }
        }
        // Sorting makes every later choice independent of input order.
        kept.sort_by(|a, b| {
            (&a.name, &a.architecture)
                .cmp(&(&b.name, &b.architecture))
                .then_with(|| b.version.cmp(&a.version))
                .then_with(|| a.version.as_str().cmp(b.version.as_str()))
        });
        let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut providers: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, p) in kept.iter().enumerate() {
            by_name.entry(p.name.clone()).or_default().push(i);
            let mut names: Vec<&str> = p.provides.iter().map(|r| r.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            for n in names {
                providers.entry(n.to_string()).or_default().push(i);
            }
        }
        Resolver {
            packages: kept,
            native: native_arch.to_string(),
            foreign: foreign_arches.to_vec(),
            follow_recommends: false,
            by_name,
            providers,
        }
    }

    /// Also follow `Recommends` (off by default, like
    /// `--no-install-recommends`).
    pub fn follow_recommends(mut self, yes: bool) -> Resolver {
        self.follow_recommends = yes;
        self
    }

    /// The packages this resolver considers, sorted by name, architecture
    /// and descending version.
    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// Resolves `requests` plus the `base` set into the packages to
    /// install, sorted by name then architecture.
    pub fn resolve(&self, requests: &[Request], base: &Base) -> Result<Vec<Package>, ResolveError> {
        let mut state = State::default();
        let mut roots: Vec<(usize, String)> = Vec::new();
        for r in requests {
            let idx = self.pick_request(&state, r)?;
            if let Some(idx) = idx {
                self.select(&mut state, idx).map_err(|Refusal(reason)| {
                    ResolveError::Unsatisfiable {
                        chain: vec![r.to_string()],
                        reason,
                    }
                })?;
                roots.push((idx, r.to_string()));
            }
        }
        for r in self.base_requests(base)? {
            // A base package already requested (maybe pinned) stays as is.
            if let Some(idx) = self.pick_request(&state, &r)? {
                self.select(&mut state, idx).map_err(|Refusal(reason)| {
                    ResolveError::Unsatisfiable {
                        chain: vec![r.to_string()],
                        reason,
                    }
                })?;
                roots.push((idx, r.to_string()));
            }
        }
        for (idx, label) in &roots {
            self.install_deps(&mut state, *idx, &mut vec![label.clone()])?;
        }
        let chosen: Vec<usize> = state.selected.values().copied().collect();
        for &a in &chosen {
            for &b in &chosen {
                if let Some((field, rel)) = self.conflicts(&self.packages[a], &self.packages[b]) {
                    return Err(ResolveError::Conflict {
                        package: self.packages[a].to_string(),
                        field,
                        relation: rel.to_string(),
                        other: self.packages[b].to_string(),
                    });
                }
            }
        }
        Ok(chosen
            .into_iter()
            .map(|i| self.packages[i].clone())
            .collect())
    }

    /// The base set as requests, in name order.
    fn base_requests(&self, base: &Base) -> Result<Vec<Request>, ResolveError> {
        let pick = |f: &dyn Fn(&Package) -> bool| -> Vec<Request> {
            let names: BTreeSet<&str> = self
                .packages
                .iter()
                .filter(|p| (p.architecture == self.native || p.architecture == "all") && f(p))
                .map(|p| p.name.as_str())
                .collect();
            names
                .into_iter()
                .map(|n| Request {
                    name: n.to_string(),
                    arch: None,
                    version: None,
                })
                .collect()
        };
        Ok(match base {
            Base::None => Vec::new(),
            Base::Essential => pick(&|p| p.essential),
            Base::Required => pick(&|p| p.priority == Some(crate::packages::Priority::Required)),
            Base::List(list) => list.iter().map(|s| s.parse()).collect::<Result<_, _>>()?,
        })
    }

    /// Chooses the package for a request; `None` when the selection
    /// already satisfies it.
    fn pick_request(&self, state: &State, r: &Request) -> Result<Option<usize>, ResolveError> {
        let mut rel = Relation::new(&r.name);
        rel.arch_qualifier = r.arch.clone();
        if let Some(v) = &r.version {
            rel.constraint = Some((VersionOp::Eq, v.clone()));
        }
        if self.satisfied(state, &rel, &self.native) {
            // Requested twice, or already pulled in: keep the first pick
            // unless a version pin disagrees (caught by select below).
            return Ok(None);
        }
        let options = self.options(&rel, &self.native);
        match options.first() {
            Some(&i) => Ok(Some(i)),
            None => Err(ResolveError::Unsatisfiable {
                chain: vec![r.to_string()],
                reason: self.explain(&rel, &self.native),
            }),
        }
    }

    fn eff<'a>(&'a self, arch: &'a str) -> &'a str {
        if arch == "all" {
            &self.native
        } else {
            arch
        }
    }

    /// Whether `p` can satisfy `rel` from a dependent of `ctx` arch,
    /// judging architecture only (dpkg's `archsatisfied`).
    fn arch_ok(&self, rel: &Relation, ctx: &str, p: &Package) -> bool {
        match rel.arch_qualifier.as_deref() {
            None => {
                p.multi_arch == MultiArch::Foreign || self.eff(&p.architecture) == self.eff(ctx)
            }
            Some("any") => p.multi_arch == MultiArch::Allowed,
            Some("native") => self.eff(&p.architecture) == self.native,
            Some(a) => self.eff(&p.architecture) == self.eff(a),
        }
    }

    /// Whether `provide` (an entry of a Provides field) meets `rel`.
    fn provide_ok(rel: &Relation, provide: &Relation) -> bool {
        if provide.name != rel.name {
            return false;
        }
        match (&rel.constraint, &provide.constraint) {
            (None, _) => true,
            (Some(_), Some((VersionOp::Eq, v))) => rel.satisfied_by(v),
            (Some(_), _) => false,
        }
    }

    /// True for a relation that applies with no build profile active on `ctx`.
    fn applies(rel: &Relation, ctx: &str) -> bool {
        rel.applies_to_arch(ctx)
            && (rel.profiles.is_empty() || rel.profiles.iter().any(|g| g.iter().all(|t| t.negated)))
    }

    fn arch_rank(&self, ctx: &str, arch: &str) -> u8 {
        if arch == self.eff(ctx) {
            0
        } else if arch == "all" {
            1
        } else {
            2
        }
    }

    /// Every package that could satisfy `rel` for a dependent of `ctx`,
    /// in the order they should be tried: real ones, then providers.
    fn options(&self, rel: &Relation, ctx: &str) -> Vec<usize> {
        let mut real: Vec<usize> = self
            .by_name
            .get(&rel.name)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| {
                let p = &self.packages[i];
                self.arch_ok(rel, ctx, p) && rel.satisfied_by(&p.version)
            })
            .collect();
        real.sort_by(|&a, &b| {
            let (pa, pb) = (&self.packages[a], &self.packages[b]);
            self.arch_rank(ctx, &pa.architecture)
                .cmp(&self.arch_rank(ctx, &pb.architecture))
                .then_with(|| pb.version.cmp(&pa.version))
                .then_with(|| pa.architecture.cmp(&pb.architecture))
        });
        let mut virt: Vec<usize> = self
            .providers
            .get(&rel.name)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| {
                let p = &self.packages[i];
                p.name != rel.name
                    && self.arch_ok(
                        &Relation {
                            constraint: None,
                            ..rel.clone()
                        },
                        ctx,
                        p,
                    )
                    && p.provides.iter().any(|pr| Self::provide_ok(rel, pr))
            })
            .collect();
        virt.sort_by(|&a, &b| {
            let (pa, pb) = (&self.packages[a], &self.packages[b]);
            let rank = |p: &Package| {
                p.priority
                    .clone()
                    .unwrap_or(crate::packages::Priority::Other(String::new()))
            };
            rank(pa)
                .cmp(&rank(pb))
                .then_with(|| pa.name.cmp(&pb.name))
                .then_with(|| {
                    self.arch_rank(ctx, &pa.architecture)
                        .cmp(&self.arch_rank(ctx, &pb.architecture))
                })
                .then_with(|| pb.version.cmp(&pa.version))
        });
        real.extend(virt);
        real
    }

    /// Whether the current selection already satisfies `rel`.
    fn satisfied(&self, state: &State, rel: &Relation, ctx: &str) -> bool {
        let real = state
            .selected
            .range((rel.name.clone(), String::new())..)
            .take_while(|((n, _), _)| *n == rel.name)
            .any(|(_, &i)| {
                let p = &self.packages[i];
                self.arch_ok(rel, ctx, p) && rel.satisfied_by(&p.version)
            });
        real || self
            .providers
            .get(&rel.name)
            .into_iter()
            .flatten()
            .any(|&i| {
                let p = &self.packages[i];
                state
                    .selected
                    .get(&(p.name.clone(), p.architecture.clone()))
                    == Some(&i)
                    && p.name != rel.name
                    && self.arch_ok(
                        &Relation {
                            constraint: None,
                            ..rel.clone()
                        },
                        ctx,
                        p,
                    )
                    && p.provides.iter().any(|pr| Self::provide_ok(rel, pr))
            })
    }

    /// A human explanation of why nothing satisfies `rel`.
    fn explain(&self, rel: &Relation, ctx: &str) -> String {
        let ctx = self.eff(ctx);
        let same_name: Vec<&Package> = self
            .by_name
            .get(&rel.name)
            .into_iter()
            .flatten()
            .map(|&i| &self.packages[i])
            .collect();
        let has_providers = self.providers.get(&rel.name).is_some_and(|v| !v.is_empty());
        if same_name.is_empty() && !has_providers {
            let mut arches = vec![ctx.to_string()];
            arches.extend(self.foreign.iter().filter(|f| f.as_str() != ctx).cloned());
            return format!("not in {} index", arches.join("+"));
        }
        let fitting: Vec<&&Package> = same_name
            .iter()
            .filter(|p| self.arch_ok(rel, ctx, p))
            .collect();
        if !same_name.is_empty() && fitting.is_empty() {
            let list: Vec<String> = same_name
                .iter()
                .map(|p| {
                    format!(
                        "{}:{} (Multi-Arch: {:?})",
                        p.name, p.architecture, p.multi_arch
                    )
                })
                .collect();
            return format!(
                "no architecture fits a dependent of {ctx}; available: {}",
                list.join(", ")
            );
        }
        if !fitting.is_empty() {
            let list: Vec<String> = fitting.iter().map(|p| p.version.to_string()).collect();
            return format!("no version satisfies it; available: {}", list.join(", "));
        }
        let provs: Vec<String> = self
            .providers
            .get(&rel.name)
            .into_iter()
            .flatten()
            .map(|&i| self.packages[i].to_string())
            .collect();
        format!(
            "virtual package; no provider fits (providers: {})",
            provs.join(", ")
        )
    }

    /// Adds `idx` to the selection, refusing a package that cannot be
    /// co-installed with what is already selected.
    fn select(&self, state: &mut State, idx: usize) -> Result<(), Refusal> {
        let p = &self.packages[idx];
        let key = (p.name.clone(), p.architecture.clone());
        if let Some(&other) = state.selected.get(&key) {
            if other == idx {
                return Ok(());
            }
            return Err(Refusal(format!(
                "needs {p} but {} is already selected",
                self.packages[other]
            )));
        }
        for (_, &o) in state
            .selected
            .range((p.name.clone(), String::new())..)
            .take_while(|((n, _), _)| *n == p.name)
        {
            let q = &self.packages[o];
            let coinstallable = p.multi_arch == MultiArch::Same
                && q.multi_arch == MultiArch::Same
                && p.version == q.version;
            if !coinstallable {
                return Err(Refusal(format!(
                    "{p} cannot be installed beside {q} (not Multi-Arch: same with equal versions)"
                )));
            }
        }
        for &o in state.selected.values() {
            let q = &self.packages[o];
            if let Some((field, rel)) = self.conflicts(p, q) {
                return Err(Refusal(format!(
                    "{p} {field} {rel}, which selected {q} matches"
                )));
            }
            if let Some((field, rel)) = self.conflicts(q, p) {
                return Err(Refusal(format!(
                    "selected {q} {field} {rel}, which {p} matches"
                )));
            }
        }
        state.selected.insert(key, idx);
        Ok(())
    }

    /// The first `Conflicts` or `Breaks` relation of `p` that `q` hits.
    fn conflicts<'a>(&self, p: &'a Package, q: &Package) -> Option<(&'static str, &'a Relation)> {
        if p.name == q.name {
            return None;
        }
        let hits = |rel: &Relation| {
            let arch_ok = match rel.arch_qualifier.as_deref() {
                None | Some("any") => true,
                Some("native") => self.eff(&q.architecture) == self.native,
                Some(a) => self.eff(&q.architecture) == self.eff(a),
            };
            arch_ok
                && ((q.name == rel.name && rel.satisfied_by(&q.version))
                    || q.provides.iter().any(|pr| Self::provide_ok(rel, pr)))
        };
        let ctx = self.eff(&p.architecture);
        let c = p
            .conflicts
            .iter()
            .filter(|r| Self::applies(r, ctx))
            .find(|r| hits(r))
            .map(|r| ("Conflicts", r));
        c.or_else(|| {
            p.breaks
                .iter()
                .filter(|r| Self::applies(r, ctx))
                .find(|r| hits(r))
                .map(|r| ("Breaks", r))
        })
    }

    /// Follows the dependencies of selected package `idx` depth-first.
    fn install_deps(
        &self,
        state: &mut State,
        idx: usize,
        chain: &mut Vec<String>,
    ) -> Result<(), ResolveError> {
        if !state.processed.insert(idx) {
            return Ok(());
        }
        let p = &self.packages[idx];
        let ctx = self.eff(&p.architecture).to_string();
        let mut groups: Vec<&Vec<Relation>> =
            p.pre_depends.iter().chain(p.depends.iter()).collect();
        if self.follow_recommends {
            groups.extend(p.recommends.iter());
        }
        for group in groups {
            let alts: Vec<&Relation> = group.iter().filter(|r| Self::applies(r, &ctx)).collect();
            if alts.is_empty() || alts.iter().any(|r| self.satisfied(state, r, &ctx)) {
                continue;
            }
            let label = format_group(group);
            let options: Vec<usize> = alts.iter().flat_map(|r| self.options(r, &ctx)).collect();
            chain.push(label);
            if options.is_empty() {
                let reasons: Vec<String> = alts
                    .iter()
                    .map(|r| {
                        if alts.len() == 1 {
                            self.explain(r, &ctx)
                        } else {
                            format!("{}: {}", r.name, self.explain(r, &ctx))
                        }
                    })
                    .collect();
                return Err(ResolveError::Unsatisfiable {
                    chain: chain.clone(),
                    reason: reasons.join("; "),
                });
            }
            let mut first_err: Option<ResolveError> = None;
            let mut done = false;
            let mut tried = BTreeSet::new();
            for cand in options {
                if !tried.insert(cand) {
                    continue;
                }
                let tries = state.attempts.get() + 1;
                state.attempts.set(tries);
                if tries > MAX_ATTEMPTS {
                    return Err(ResolveError::Unsatisfiable {
                        chain: chain.clone(),
                        reason: format!(
                            "gave up after trying {MAX_ATTEMPTS} candidates; \
                             request the wanted alternatives explicitly"
                        ),
                    });
                }
                let snapshot = state.clone();
                let depth = chain.len();
                let attempt = match self.select(state, cand) {
                    Err(Refusal(reason)) => Err(ResolveError::Unsatisfiable {
                        chain: chain.clone(),
                        reason,
                    }),
                    Ok(()) => self.install_deps(state, cand, chain),
                };
                match attempt {
                    Ok(()) => {
                        done = true;
                        break;
                    }
                    Err(e) => {
                        *state = snapshot;
                        chain.truncate(depth);
                        first_err.get_or_insert(e);
                    }
                }
            }
            if !done {
                // The first alternative's failure is the one a reader
                // expects to see: it is what the package asked for first.
                return Err(first_err.unwrap_or(ResolveError::Unsatisfiable {
                    chain: chain.clone(),
                    reason: "no candidate".into(),
                }));
            }
            chain.pop();
        }
        Ok(())
    }
}

/// Convenience: resolves `requests` over `packages` in one call.
pub fn resolve(
    packages: Vec<Package>,
    native_arch: &str,
    foreign_arches: &[String],
    requests: &[Request],
    base: &Base,
) -> Result<Vec<Package>, ResolveError> {
    Resolver::new(packages, native_arch, foreign_arches).resolve(requests, base)
}
