//! Package relationship fields: `Depends`, `Pre-Depends`, `Recommends`,
//! `Conflicts`, `Breaks`, `Provides`, `Replaces`, as written in `Packages`
//! indexes and control files (policy §7.1).

use std::fmt;

use crate::version::{Version, VersionError};

/// A version comparison operator in a relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VersionOp {
    /// `<<`: strictly earlier.
    Lt,
    /// `<=` (also the obsolete `<`): earlier or equal.
    Le,
    /// `=`: exactly equal.
    Eq,
    /// `>=` (also the obsolete `>`): later or equal.
    Ge,
    /// `>>`: strictly later.
    Gt,
}

impl VersionOp {
    /// The operator as policy writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionOp::Lt => "<<",
            VersionOp::Le => "<=",
            VersionOp::Eq => "=",
            VersionOp::Ge => ">=",
            VersionOp::Gt => ">>",
        }
    }

    /// True when `left OP right` holds.
    pub fn holds(self, left: &Version, right: &Version) -> bool {
        let o = left.cmp(right);
        match self {
            VersionOp::Lt => o.is_lt(),
            VersionOp::Le => o.is_le(),
            VersionOp::Eq => o.is_eq(),
            VersionOp::Ge => o.is_ge(),
            VersionOp::Gt => o.is_gt(),
        }
    }
}

/// One element of an architecture restriction list `[amd64 !i386]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchRestriction {
    /// True for `!arch`.
    pub negated: bool,
    /// The architecture or wildcard (`linux-any`, `any-arm64`).
    pub arch: String,
}

/// One term of a build-profile formula `<!nocheck stage1>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileTerm {
    /// True for `!profile`.
    pub negated: bool,
    /// The profile name.
    pub name: String,
}

/// One possibility of a relation: `name[:archqual] [(op version)]
/// [[arch list]] [<profiles>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// Package (or virtual package) name.
    pub name: String,
    /// The `:any`, `:native` or `:ARCH` qualifier, if written.
    pub arch_qualifier: Option<String>,
    /// The version constraint, if written.
    pub constraint: Option<(VersionOp, Version)>,
    /// The architecture restriction list; empty when absent.
    pub arches: Vec<ArchRestriction>,
    /// Build-profile formulas: the relation applies when any one group
    /// holds, a group holds when all its terms do. Empty when absent.
    pub profiles: Vec<Vec<ProfileTerm>>,
}

/// One comma-separated element of a relation field: alternatives
/// separated by `|`, the first that can be satisfied is preferred.
pub type RelationGroup = Vec<Relation>;

/// A relation field that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid relation {item:?}: {reason}")]
pub struct RelationError {
    /// The offending `|`-alternative as written.
    pub item: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Relation {
    /// A plain relation on `name` with no qualifier or constraint.
    pub fn new(name: &str) -> Relation {
        Relation {
            name: name.to_string(),
            arch_qualifier: None,
            constraint: None,
            arches: Vec::new(),
            profiles: Vec::new(),
        }
    }

    /// Parses one alternative, e.g. `libc6:any (>= 2.36) [amd64] <!nocheck>`.
    pub fn parse(text: &str) -> Result<Relation, RelationError> {
        let err = |reason: String| RelationError {
            item: text.trim().to_string(),
            reason,
        };
        let mut rest = text.trim();
        let name_end = rest
            .find(|c: char| c.is_whitespace() || "([<".contains(c))
            .unwrap_or(rest.len());
        let (full_name, after) = rest.split_at(name_end);
        rest = after.trim_start();
        let (name, arch_qualifier) = match full_name.split_once(':') {
            Some((n, q)) => {
                if q.is_empty() || !q.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return Err(err(format!("bad architecture qualifier {q:?}")));
                }
                (n, Some(q.to_string()))
            }
            None => (full_name, None),
        };
        if name.is_empty() {
            return Err(err("missing package name".into()));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+-_".contains(c))
        {
            return Err(err(format!("bad package name {name:?}")));
        }
        let mut rel = Relation {
            name: name.to_string(),
            arch_qualifier,
            ..Relation::new("")
        };
        if let Some(r) = rest.strip_prefix('(') {
            let Some((inner, after)) = r.split_once(')') else {
                return Err(err("unterminated version constraint".into()));
            };
            rest = after.trim_start();
            let inner = inner.trim();
            // Longest operators first so `<<` is not read as `<` + `<1`.
            let ops: [(&str, VersionOp); 7] = [
                ("<<", VersionOp::Lt),
                ("<=", VersionOp::Le),
                (">>", VersionOp::Gt),
                (">=", VersionOp::Ge),
                ("=", VersionOp::Eq),
                ("<", VersionOp::Le),
                (">", VersionOp::Ge),
            ];
            let Some((op, ver)) = ops
                .iter()
                .find_map(|(s, op)| inner.strip_prefix(s).map(|v| (*op, v)))
            else {
                return Err(err(format!("bad version constraint ({inner})")));
            };
            let ver = Version::parse(ver).map_err(|e: VersionError| err(e.reason))?;
            rel.constraint = Some((op, ver));
        }
        if let Some(r) = rest.strip_prefix('[') {
            let Some((inner, after)) = r.split_once(']') else {
                return Err(err("unterminated architecture list".into()));
            };
            rest = after.trim_start();
            for a in inner.split_whitespace() {
                let (negated, arch) = match a.strip_prefix('!') {
                    Some(x) => (true, x),
                    None => (false, a),
                };
                if arch.is_empty() {
                    return Err(err("empty architecture in list".into()));
                }
                rel.arches.push(ArchRestriction {
                    negated,
                    arch: arch.to_string(),
                });
            }
            if rel.arches.is_empty() {
                return Err(err("empty architecture list".into()));
            }
        }
        while let Some(r) = rest.strip_prefix('<') {
            let Some((inner, after)) = r.split_once('>') else {
                return Err(err("unterminated build-profile list".into()));
            };
            rest = after.trim_start();
            let terms: Vec<ProfileTerm> = inner
                .split_whitespace()
                .map(|t| match t.strip_prefix('!') {
                    Some(x) => ProfileTerm {
                        negated: true,
                        name: x.to_string(),
                    },
                    None => ProfileTerm {
                        negated: false,
                        name: t.to_string(),
                    },
                })
                .collect();
            if terms.is_empty() || terms.iter().any(|t| t.name.is_empty()) {
                return Err(err("empty build-profile term".into()));
            }
            rel.profiles.push(terms);
        }
        if !rest.is_empty() {
            return Err(err(format!("unexpected text {rest:?}")));
        }
        Ok(rel)
    }

    /// True when `version` of a package named `self.name` meets the
    /// version constraint (always true without one).
    pub fn satisfied_by(&self, version: &Version) -> bool {
        match &self.constraint {
            None => true,
            Some((op, want)) => op.holds(version, want),
        }
    }

    /// True when the architecture restriction list, if any, includes
    /// `arch`. Wildcards `any`, `linux-any` and `any-CPU` are understood
    /// for the Linux architectures this project builds for.
    pub fn applies_to_arch(&self, arch: &str) -> bool {
        if self.arches.is_empty() {
            return true;
        }
        let matches = |pat: &str| {
            pat == arch
                || pat == "any"
                || pat == "linux-any"
                || pat.strip_prefix("any-") == Some(arch)
                || pat.strip_prefix("linux-") == Some(arch)
        };
        // Policy: a list is either all positive or all negated.
        if self.arches.iter().all(|a| a.negated) {
            !self.arches.iter().any(|a| matches(&a.arch))
        } else {
            self.arches.iter().any(|a| !a.negated && matches(&a.arch))
        }
    }
}

impl fmt::Display for Relation {
    /// Writes the relation back in policy syntax, e.g. `libc6 (>= 2.36)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.arch_qualifier {
            write!(f, ":{q}")?;
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({} {v})", op.as_str())?;
        }
        if !self.arches.is_empty() {
            let list: Vec<String> = self
                .arches
                .iter()
                .map(|a| format!("{}{}", if a.negated { "!" } else { "" }, a.arch))
                .collect();
            write!(f, " [{}]", list.join(" "))?;
        }
        for group in &self.profiles {
            let terms: Vec<String> = group
                .iter()
                .map(|t| format!("{}{}", if t.negated { "!" } else { "" }, t.name))
                .collect();
            write!(f, " <{}>", terms.join(" "))?;
        }
        Ok(())
    }
}

/// Formats a group of alternatives as `a | b (>= 1)`.
pub fn format_group(group: &[Relation]) -> String {
    group
        .iter()
        .map(Relation::to_string)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Parses a whole relation field: comma-separated groups of
/// `|`-separated alternatives. Empty elements (a trailing comma, which
/// some archives contain) are skipped; an empty field gives no groups.
pub fn parse_relations(field: &str) -> Result<Vec<RelationGroup>, RelationError> {
    let mut out = Vec::new();
    // Continuation lines are joined with '\n' by the deb822 parser.
    for group in field.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let alts = group
            .split('|')
            .map(Relation::parse)
            .collect::<Result<Vec<_>, _>>()?;
        out.push(alts);
    }
    Ok(out)
}

/// Parses a field whose elements may not have alternatives (`Provides`,
/// `Conflicts`, `Breaks`, `Replaces`): a `|` is an error.
pub fn parse_relation_list(field: &str) -> Result<Vec<Relation>, RelationError> {
    let mut out = Vec::new();
    for group in parse_relations(field)? {
        if group.len() != 1 {
            return Err(RelationError {
                item: format_group(&group),
                reason: "alternatives (`|`) are not allowed in this field".into(),
            });
        }
        out.extend(group);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_syntax() {
        let g = parse_relations(
            "libc6 (>= 2.36), debconf (>= 0.5) | debconf-2.0,\n python3:any (<< 3.13), foo [amd64 arm64] <!nocheck> <stage1 cross>,",
        )
        .unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g[1].len(), 2);
        assert_eq!(g[1][1].name, "debconf-2.0");
        assert_eq!(g[2][0].arch_qualifier.as_deref(), Some("any"));
        assert_eq!(g[2][0].constraint.as_ref().unwrap().0, VersionOp::Lt);
        assert_eq!(g[3][0].arches.len(), 2);
        assert_eq!(g[3][0].profiles.len(), 2);
        assert_eq!(
            g[3][0].to_string(),
            "foo [amd64 arm64] <!nocheck> <stage1 cross>"
        );
        assert_eq!(format_group(&g[1]), "debconf (>= 0.5) | debconf-2.0");
    }

    #[test]
    fn obsolete_operators_and_satisfaction() {
        let r = Relation::parse("a (< 2)").unwrap();
        assert_eq!(r.constraint.as_ref().unwrap().0, VersionOp::Le);
        assert!(r.satisfied_by(&Version::parse("2").unwrap()));
        let r = Relation::parse("a (>2)").unwrap();
        assert_eq!(r.constraint.as_ref().unwrap().0, VersionOp::Ge);
        let r = Relation::parse("a (>> 1.0~rc1)").unwrap();
        assert!(r.satisfied_by(&Version::parse("1.0").unwrap()));
        assert!(!r.satisfied_by(&Version::parse("1.0~rc1").unwrap()));
        let r = Relation::parse("a (= 1.0-1)").unwrap();
        assert!(r.satisfied_by(&Version::parse("1.0-1").unwrap()));
        assert!(!r.satisfied_by(&Version::parse("1.0-2").unwrap()));
        assert!(Relation::parse("a")
            .unwrap()
            .satisfied_by(&Version::parse("0").unwrap()));
    }

    #[test]
    fn arch_lists() {
        let r = Relation::parse("a [!i386 !armhf]").unwrap();
        assert!(r.applies_to_arch("amd64"));
        assert!(!r.applies_to_arch("i386"));
        let r = Relation::parse("a [linux-any]").unwrap();
        assert!(r.applies_to_arch("arm64"));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "a (>= )", "a (~ 1)", "a (>= 1", "a [amd64", "a b", "a:", "a <>",
        ] {
            assert!(Relation::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_relation_list("a | b").unwrap_err();
        assert!(e.to_string().contains("a | b"), "{e}");
    }
}
