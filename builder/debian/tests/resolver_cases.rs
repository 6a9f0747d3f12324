//! The resolver on small hand-written indexes, one behaviour per test.

use debian::packages::{parse_packages, Package};
use debian::resolver::{resolve, Base, Request, ResolveError, Resolver};

const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One `Packages` paragraph; `extra` is more `Field: value` lines.
fn p(name: &str, version: &str, arch: &str, extra: &str) -> String {
    let mut s = format!("Package: {name}\nVersion: {version}\nArchitecture: {arch}\n");
    for line in extra.lines().map(str::trim).filter(|l| !l.is_empty()) {
        s.push_str(line);
        s.push('\n');
    }
    s.push_str(&format!(
        "Filename: pool/main/{name}_{version}_{arch}.deb\nSize: 1\nSHA256: {SHA}\n\n"
    ));
    s
}

fn index(paras: &[String]) -> Vec<Package> {
    parse_packages(&paras.concat()).expect("test index parses")
}

fn reqs(names: &[&str]) -> Vec<Request> {
    names
        .iter()
        .map(|n| n.parse().expect("request parses"))
        .collect()
}

/// `name=version` (plus `:arch` when not native) of each resolved package.
fn names(pkgs: &[Package], native: &str) -> Vec<String> {
    pkgs.iter()
        .map(|p| {
            if p.architecture == native || p.architecture == "all" {
                format!("{}={}", p.name, p.version)
            } else {
                format!("{}:{}={}", p.name, p.architecture, p.version)
            }
        })
        .collect()
}

fn run(paras: &[String], want: &[&str], base: &Base) -> Result<Vec<String>, ResolveError> {
    resolve(index(paras), "amd64", &[], &reqs(want), base).map(|v| names(&v, "amd64"))
}

#[test]
fn follows_depends_and_pre_depends_not_recommends_and_sorts() {
    let idx = [
        p(
            "tool",
            "1",
            "amd64",
            "Pre-Depends: pre\nDepends: libz, libc6\nRecommends: extra",
        ),
        p("libz", "1", "amd64", "Depends: libc6 (>= 2)"),
        p("libc6", "2.41-1", "amd64", ""),
        p("pre", "1", "all", ""),
        p("extra", "1", "amd64", ""),
    ];
    let got = run(&idx, &["tool"], &Base::None).unwrap();
    assert_eq!(got, ["libc6=2.41-1", "libz=1", "pre=1", "tool=1"]);
    let with_rec = Resolver::new(index(&idx), "amd64", &[])
        .follow_recommends(true)
        .resolve(&reqs(&["tool"]), &Base::None)
        .unwrap();
    assert_eq!(with_rec.len(), 5);
}

#[test]
fn output_is_independent_of_input_order() {
    let mut idx = vec![
        p("a", "1", "amd64", "Depends: v"),
        p("p1", "1", "amd64", "Provides: v\nPriority: optional"),
        p("p2", "1", "amd64", "Provides: v\nPriority: optional"),
        p("b", "1", "amd64", "Depends: c | d"),
        p("c", "1", "amd64", ""),
        p("d", "1", "amd64", ""),
        p("c", "2", "amd64", ""),
    ];
    let first = run(&idx, &["a", "b"], &Base::None).unwrap();
    for _ in 0..6 {
        idx.rotate_left(1);
        idx.swap(0, 3);
        assert_eq!(run(&idx, &["a", "b"], &Base::None).unwrap(), first);
    }
    assert_eq!(first, ["a=1", "b=1", "c=2", "p1=1"]);
}

#[test]
fn alternatives_first_satisfiable_and_prefer_requested() {
    let idx = [
        p("a", "1", "amd64", "Depends: missing | c | b"),
        p("b", "1", "amd64", ""),
        p("c", "1", "amd64", ""),
    ];
    assert_eq!(run(&idx, &["a"], &Base::None).unwrap(), ["a=1", "c=1"]);
    // b is requested (after a, even): it satisfies the group, c is not added.
    assert_eq!(run(&idx, &["a", "b"], &Base::None).unwrap(), ["a=1", "b=1"]);
}

#[test]
fn alternative_whose_dependencies_fail_is_undone() {
    let idx = [
        p("a", "1", "amd64", "Depends: b | c"),
        p("b", "1", "amd64", "Depends: b-helper, gone"),
        p("b-helper", "1", "amd64", ""),
        p("c", "1", "amd64", ""),
    ];
    // b-helper must not leak into the result from the abandoned attempt.
    assert_eq!(run(&idx, &["a"], &Base::None).unwrap(), ["a=1", "c=1"]);
}

#[test]
fn highest_version_satisfying_the_relation() {
    let idx = [
        p("a", "1", "amd64", "Depends: lib (<< 3), lib (>= 1.5)"),
        p("lib", "1.0", "amd64", ""),
        p("lib", "2.0", "amd64", ""),
        p("lib", "3.0", "amd64", ""),
        p("lib", "2.0~rc1", "amd64", ""),
    ];
    assert_eq!(run(&idx, &["a"], &Base::None).unwrap(), ["a=1", "lib=2.0"]);
    assert_eq!(run(&idx, &["lib"], &Base::None).unwrap(), ["lib=3.0"]);
    assert_eq!(run(&idx, &["lib=1.0"], &Base::None).unwrap(), ["lib=1.0"]);
    // A pin the dependency cannot accept is reported with both versions.
    let e = run(&idx, &["lib=3.0", "a"], &Base::None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("a -> lib (<< 3)") && e.contains("3.0"), "{e}");
}

#[test]
fn unversioned_and_versioned_provides() {
    let idx = [
        p("mta-user", "1", "amd64", "Depends: mail-transport-agent"),
        p(
            "exim",
            "4",
            "amd64",
            "Provides: mail-transport-agent\nPriority: standard",
        ),
        p(
            "aaa-mta",
            "1",
            "amd64",
            "Provides: mail-transport-agent\nPriority: optional",
        ),
        p(
            "zzz-mta",
            "1",
            "amd64",
            "Provides: mail-transport-agent\nPriority: standard",
        ),
        p("vuser", "1", "amd64", "Depends: libfoo-abi (>= 2)"),
        p("foo-unversioned", "1", "amd64", "Provides: libfoo-abi"),
        p("foo-old", "1", "amd64", "Provides: libfoo-abi (= 1)"),
        p("foo-new", "1", "amd64", "Provides: libfoo-abi (= 2.1)"),
    ];
    // Highest Priority first (standard beats optional), then name order.
    assert_eq!(
        run(&idx, &["mta-user"], &Base::None).unwrap(),
        ["exim=4", "mta-user=1"]
    );
    // An already selected provider wins over the ranking.
    assert_eq!(
        run(&idx, &["aaa-mta", "mta-user"], &Base::None).unwrap(),
        ["aaa-mta=1", "mta-user=1"]
    );
    // Only a versioned Provides satisfies a versioned dependency.
    assert_eq!(
        run(&idx, &["vuser"], &Base::None).unwrap(),
        ["foo-new=1", "vuser=1"]
    );
    // Requesting a virtual name picks a provider by the same rule.
    assert_eq!(
        run(&idx, &["mail-transport-agent"], &Base::None).unwrap(),
        ["exim=4"]
    );
}

#[test]
fn real_package_before_virtual_provider() {
    let idx = [
        p("a", "1", "amd64", "Depends: awk"),
        p("awk", "1", "amd64", ""),
        p("mawk", "1", "amd64", "Provides: awk\nPriority: required"),
    ];
    assert_eq!(run(&idx, &["a"], &Base::None).unwrap(), ["a=1", "awk=1"]);
}

#[test]
fn arch_all_and_multi_arch_foreign_allowed_same() {
    let idx = [
        p(
            "tool",
            "1",
            "arm64",
            "Depends: libc6, data, helper, python3:any, native-thing:native",
        ),
        p("tool", "1", "amd64", "Depends: libc6"),
        p("libc6", "2.41", "amd64", "Multi-Arch: same"),
        p("libc6", "2.41", "arm64", "Multi-Arch: same"),
        p("data", "1", "all", "Multi-Arch: foreign"),
        p("helper", "1", "amd64", "Multi-Arch: foreign"),
        p("python3", "3.13", "amd64", "Multi-Arch: allowed"),
        p("native-thing", "1", "amd64", ""),
        p("native-thing", "1", "arm64", ""),
    ];
    let arm = vec!["arm64".to_string()];
    let got = resolve(
        index(&idx),
        "amd64",
        &arm,
        &reqs(&["tool:arm64", "tool"]),
        &Base::None,
    );
    // tool:arm64 and tool:amd64 are both M-A: no, so they cannot coexist.
    let e = got.unwrap_err().to_string();
    assert!(e.contains("tool:amd64") && e.contains("tool:arm64"), "{e}");
    let got = resolve(
        index(&idx),
        "amd64",
        &arm,
        &reqs(&["tool:arm64", "libc6"]),
        &Base::None,
    )
    .unwrap();
    assert_eq!(
        names(&got, "amd64"),
        [
            "data=1",
            "helper=1",
            "libc6=2.41",
            "libc6:arm64=2.41",
            "native-thing=1",
            "python3=3.13",
            "tool:arm64=1"
        ]
    );
}

#[test]
fn multi_arch_violations_are_reported() {
    let arm = vec!["arm64".to_string()];
    // helper is M-A: no and exists only for amd64: an arm64 package cannot use it.
    let idx = [
        p("tool", "1", "arm64", "Depends: helper"),
        p("helper", "1", "amd64", ""),
    ];
    let e = resolve(
        index(&idx),
        "amd64",
        &arm,
        &reqs(&["tool:arm64"]),
        &Base::None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("tool:arm64 -> helper -> no architecture fits"),
        "{e}"
    );
    // `:any` needs Multi-Arch: allowed.
    let idx = [
        p("tool", "1", "amd64", "Depends: perl:any"),
        p("perl", "5", "amd64", ""),
    ];
    let e = run(&idx, &["tool"], &Base::None).unwrap_err().to_string();
    assert!(e.starts_with("tool -> perl:any ->"), "{e}");
}

#[test]
fn conflicts_and_breaks_name_both_packages() {
    let idx = [
        p("a", "1", "amd64", "Depends: b"),
        p("b", "1", "amd64", ""),
        p("c", "1", "amd64", "Conflicts: b"),
        p("d", "1", "amd64", "Breaks: b (<< 2)"),
        p("e", "1", "amd64", "Breaks: b (<< 1)"),
        p("f", "1", "amd64", "Conflicts: virt"),
        p("g", "1", "amd64", "Provides: virt"),
    ];
    let e = run(&idx, &["a", "c"], &Base::None).unwrap_err().to_string();
    assert!(e.contains("c:amd64") && e.contains("b:amd64"), "{e}");
    let e = run(&idx, &["d", "a"], &Base::None).unwrap_err().to_string();
    assert!(
        e.contains("d:amd64") && e.contains("Breaks b (<< 2)") && e.contains("b:amd64"),
        "{e}"
    );
    assert_eq!(
        run(&idx, &["e", "a"], &Base::None).unwrap(),
        ["a=1", "b=1", "e=1"]
    );
    let e = run(&idx, &["f", "g"], &Base::None).unwrap_err().to_string();
    assert!(e.contains("f:amd64") && e.contains("g:amd64"), "{e}");
}

#[test]
fn conflict_steers_to_the_next_alternative() {
    let idx = [
        p("a", "1", "amd64", "Depends: b | d"),
        p("b", "1", "amd64", ""),
        p("c", "1", "amd64", "Conflicts: b"),
        p("d", "1", "amd64", ""),
    ];
    assert_eq!(
        run(&idx, &["c", "a"], &Base::None).unwrap(),
        ["a=1", "c=1", "d=1"]
    );
}

#[test]
fn unsatisfiable_prints_the_chain() {
    let idx = [
        p(
            "tcpdump",
            "4.99",
            "arm64",
            "Depends: libc6, libpcap0.8t64 (>= 1.10)",
        ),
        p("libc6", "2.41", "arm64", ""),
        p("libpcap0.8t64", "1.10", "amd64", ""),
    ];
    let e = resolve(index(&idx), "arm64", &[], &reqs(&["tcpdump"]), &Base::None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "tcpdump -> libpcap0.8t64 (>= 1.10) -> not in arm64 index"
    );
    match e {
        ResolveError::Unsatisfiable { chain, .. } => {
            assert_eq!(chain, ["tcpdump", "libpcap0.8t64 (>= 1.10)"])
        }
        other => panic!("unexpected {other:?}"),
    }
    // Deeper chains and version failures.
    let idx = [
        p("a", "1", "amd64", "Depends: b"),
        p("b", "1", "amd64", "Depends: c (>= 2) | d"),
        p("c", "1", "amd64", ""),
    ];
    let e = run(&idx, &["a"], &Base::None).unwrap_err().to_string();
    assert_eq!(
        e,
        "a -> b -> c (>= 2) | d -> c: no version satisfies it; available: 1; d: not in amd64 index"
    );
    let e = run(&idx, &["nope"], &Base::None).unwrap_err().to_string();
    assert_eq!(e, "nope -> not in amd64 index");
}

#[test]
fn dependency_cycles_terminate() {
    let idx = [
        p("a", "1", "amd64", "Depends: b"),
        p("b", "1", "amd64", "Pre-Depends: a"),
    ];
    assert_eq!(run(&idx, &["b"], &Base::None).unwrap(), ["a=1", "b=1"]);
}

#[test]
fn base_sets() {
    let idx = [
        p(
            "bash",
            "5",
            "amd64",
            "Essential: yes\nPriority: required\nDepends: base-files",
        ),
        p(
            "base-files",
            "13",
            "amd64",
            "Essential: yes\nPriority: required",
        ),
        p("mawk", "1", "amd64", "Priority: required"),
        p("old-ess", "1", "arm64", "Essential: yes"),
        p("tool", "1", "amd64", ""),
    ];
    assert_eq!(
        run(&idx, &["tool"], &Base::Essential).unwrap(),
        ["base-files=13", "bash=5", "tool=1"]
    );
    assert_eq!(
        run(&idx, &["tool"], &Base::Required).unwrap(),
        ["base-files=13", "bash=5", "mawk=1", "tool=1"]
    );
    assert_eq!(
        run(&idx, &[], &Base::List(vec!["mawk".into(), "tool=1".into()])).unwrap(),
        ["mawk=1", "tool=1"]
    );
    assert!(run(&idx, &[], &Base::List(vec!["bad name".into()])).is_err());
}

#[test]
fn requests_parse() {
    let r: Request = "curl:arm64=8.14.1-2".parse().unwrap();
    assert_eq!(r.name, "curl");
    assert_eq!(r.arch.as_deref(), Some("arm64"));
    assert_eq!(r.version.as_ref().map(|v| v.as_str()), Some("8.14.1-2"));
    assert_eq!(r.to_string(), "curl:arm64=8.14.1-2");
    assert!("curl=".parse::<Request>().is_err());
    assert!("curl:".parse::<Request>().is_err());
    assert!("".parse::<Request>().is_err());
}

#[test]
fn hopeless_backtracking_gives_up_instead_of_hanging() {
    // Every level offers two alternatives that both need the next level,
    // and the last level needs something missing: 2^30 combinations.
    let mut idx = vec![p("top", "1", "amd64", "Depends: x1 | y1")];
    for i in 1..=30 {
        let dep = if i == 30 {
            "Depends: missing".to_string()
        } else {
            format!("Depends: x{n} | y{n}", n = i + 1)
        };
        idx.push(p(&format!("x{i}"), "1", "amd64", &dep));
        idx.push(p(&format!("y{i}"), "1", "amd64", &dep));
    }
    let start = std::time::Instant::now();
    let e = run(&idx, &["top"], &Base::None).unwrap_err().to_string();
    assert!(e.contains("gave up after trying"), "{e}");
    assert!(start.elapsed().as_secs() < 60, "took {:?}", start.elapsed());
}
