//! How an image's files are split into layers.
//!
//! The rules make layers stable across small changes, which is what lets
//! registries and nodes reuse them:
//! - each package's files (and its dpkg info files) stay together;
//! - a package is placed by a hash of its *source* package name into one
//!   of a fixed number of buckets, so adding, removing or updating a
//!   package changes only its own bucket, never the placement of others;
//! - the few largest packages (≥ 32 MiB unpacked) get a layer of their
//!   own, so updating one of them does not drag a bucket along;
//! - compiled and downloaded programs (cargo, url and Debian-source
//!   builds) go in a `tools` layer of their own, so a package bump does
//!   not re-push them;
//! - files no package owns (the dpkg status, accounts, alternatives,
//!   the CA bundle, the spec's local files) go in one small top layer.
//!
//! The bucket count is fixed by the layer budget, not by the package set,
//! so the same budget always gives the same placement.

use crate::source::Owners;
use image_layout::{Node, Tree};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// Default maximum number of layers.
pub const DEFAULT_LAYERS: usize = 12;

/// A package at least this large (unpacked) may get a layer of its own.
pub const BIG_PACKAGE: u64 = 32 << 20;

/// Splits a package manager's tree (`base`, whose paths `owners` maps to
/// packages) into at most `max_layers` layers, bottom first: package
/// buckets, the largest packages, then (when there is room for it) a
/// `tools` layer holding the `tools` trees (compiled and downloaded
/// programs), and last the top layer of unowned files into which the `top`
/// trees (and `tools`, when there is no room) are merged, later ones
/// winning.
pub fn split(
    base: &Tree,
    owners: &Owners,
    max_layers: usize,
    tools: &[&Tree],
    top: &[&Tree],
) -> Vec<(String, Tree)> {
    let max_layers = max_layers.max(1);
    let has_tools = tools.iter().any(|t| !t.is_empty());
    // The tools layer takes a slot only when packages keep at least one.
    let tools_slot = has_tools && max_layers >= 3;
    let pkg_budget = max_layers - 1 - usize::from(tools_slot);
    let mut by_pkg: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut top_paths: Vec<&str> = Vec::new();
    for (path, _) in base.iter() {
        match owners.origin.get(path) {
            Some(pkg) if pkg_budget > 0 => by_pkg.entry(pkg.as_str()).or_default().push(path),
            _ => top_paths.push(path),
        }
    }
    let mut layers = if pkg_budget > 0 {
        package_layers(base, &owners.sources, &by_pkg, pkg_budget)
    } else {
        Vec::new()
    };
    let mut top_tree = base.subtree(top_paths);
    if tools_slot {
        let mut tools_tree = Tree::new();
        overlay(&mut tools_tree, base, tools);
        layers.push(("tools".into(), tools_tree));
    } else {
        overlay(&mut top_tree, base, tools);
    }
    overlay(&mut top_tree, base, top);
    if !top_tree.is_empty() {
        layers.push(("top".into(), top_tree));
    }
    layers
}

/// The package layers: hash buckets by source package, then the largest
/// packages alone.
fn package_layers(
    base: &Tree,
    sources: &BTreeMap<String, String>,
    by_pkg: &BTreeMap<&str, Vec<&str>>,
    pkg_budget: usize,
) -> Vec<(String, Tree)> {
    let size_of = |paths: &[&str]| -> u64 {
        paths
            .iter()
            .filter_map(|p| match base.get(p).map(|e| &e.node) {
                Some(Node::File { size, .. }) => Some(*size),
                _ => None,
            })
            .sum()
    };
    let big_slots = (pkg_budget / 3).min(3);
    let buckets = pkg_budget - big_slots;
    let mut big: Vec<(&str, u64)> = by_pkg
        .iter()
        .map(|(n, p)| (*n, size_of(p)))
        .filter(|(_, s)| *s >= BIG_PACKAGE)
        .collect();
    big.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    big.truncate(big_slots);
    let mut big_names: Vec<&str> = big.iter().map(|(n, _)| *n).collect();
    big_names.sort();
    let mut bucket_paths: Vec<Vec<&str>> = vec![Vec::new(); buckets.max(1)];
    for (pkg, paths) in by_pkg {
        if big_names.contains(pkg) {
            continue;
        }
        let src = sources.get(*pkg).map(String::as_str).unwrap_or(pkg);
        let h = Sha256::digest(src.as_bytes());
        let n = u64::from_be_bytes(h[..8].try_into().unwrap_or([0; 8]));
        let idx = (n % bucket_paths.len() as u64) as usize;
        bucket_paths[idx].extend(paths.iter().copied());
    }
    let mut layers = Vec::new();
    for (i, paths) in bucket_paths.into_iter().enumerate() {
        if !paths.is_empty() {
            layers.push((format!("packages-{i}"), base.subtree(paths)));
        }
    }
    for name in big_names {
        let paths = by_pkg.get(name).cloned().unwrap_or_default();
        layers.push((format!("package {name}"), base.subtree(paths)));
    }
    layers
}

/// Merges `trees` into `layer`, later ones replacing files. A folder
/// keeps the metadata the layer or the image already gives it (a local
/// file under /root must not turn base-files' 0700 /root into 0755).
fn overlay(layer: &mut Tree, base: &Tree, trees: &[&Tree]) {
    for t in trees {
        for (p, e) in t.iter() {
            if matches!(e.node, Node::Dir) {
                if layer.get(p).is_some() {
                    continue;
                }
                if let Some(existing) = base.get(p) {
                    if matches!(existing.node, Node::Dir) {
                        let _ = layer.insert(p, existing.clone());
                        continue;
                    }
                }
            }
            let _ = layer.insert(p, e.clone());
        }
    }
}
