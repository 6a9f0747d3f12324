//! `Version`'s ordering checked against the real `dpkg --compare-versions`
//! on hand-picked tricky versions (every pair) and on deterministic
//! pseudo-random pairs built to be near each other.

use std::cmp::Ordering;
use std::process::Command;

use debian::version::Version;

/// dpkg's verdict: Less, Equal or Greater.
fn dpkg_cmp(a: &str, b: &str) -> Ordering {
    let run = |op: &str| {
        Command::new("dpkg")
            .args(["--compare-versions", a, op, b])
            .status()
            .expect("dpkg must be installed for this test (apt-get install dpkg)")
            .success()
    };
    if run("lt") {
        Ordering::Less
    } else if run("eq") {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

const TRICKY: &[&str] = &[
    "0",
    "00",
    "1",
    "1.0",
    "1.00",
    "1.0-0",
    "1.0-1",
    "1.0-1~bpo",
    "1.0-1~bpo12+1",
    "1.0-1+b1",
    "1.0~rc1",
    "1.0~rc1-1",
    "1.0~~",
    "1.0~",
    "1.0a",
    "1.0+",
    "1.0.",
    "1.0+dfsg",
    "1.0+dfsg-1",
    "1:0",
    "1:0.9",
    "0:1.0",
    "2:0",
    "1.2.3a",
    "1.2.3+b1",
    "1.2.3",
    "1.2.3-",
    "2.30+dfsg-1",
    "2.30+dfsg-1+deb12u1",
    "2.30-1",
    "2.30.0",
    "1.10",
    "1.9",
    "1.09",
    "10",
    "9.99",
    "1.0-1.1",
    "1.0-1a",
    "1.0-1.a",
    "1:1.0-1",
    "1.0-1-1",
    "1:1.0:1",
    "1.0-A",
    "1.0-a",
    "1.0-Z",
    "7.88.1-10+deb12u5",
    "8.14.1-2",
    "5.2.15-2+b7",
    "5.2.37-2",
    "1.10.5-2+b1",
    "1.10.5-2",
    "99999999999999999999",
    "100000000000000000000",
    "3~",
    "3~~1",
    "3+~",
    "1.0~a~b",
];

#[test]
fn tricky_versions_all_pairs_match_dpkg() {
    let vs: Vec<(&str, Version)> = TRICKY
        .iter()
        .filter_map(|s| Version::parse(s).ok().map(|v| (*s, v)))
        .collect();
    // "1.2.3-" is the one deliberately invalid entry.
    assert_eq!(
        vs.len(),
        TRICKY.len() - 1,
        "a tricky version failed to parse"
    );
    let mut n = 0;
    for (i, (sa, a)) in vs.iter().enumerate() {
        for (sb, b) in vs.iter().skip(i + 1) {
            assert_eq!(a.cmp(b), dpkg_cmp(sa, sb), "compare {sa} with {sb}");
            n += 1;
        }
    }
    assert!(n > 1000, "only {n} pairs");
}

/// A tiny deterministic generator (no rand dependency, same sequence on
/// every machine).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

fn random_version(r: &mut Lcg) -> String {
    let mut s = String::new();
    s.push_str(r.pick(&["", "", "", "0:", "1:", "2:"]));
    s.push_str(r.pick(&["0", "1", "2", "10", "01", "9"]));
    let parts = r.next() % 5;
    for _ in 0..parts {
        s.push_str(r.pick(&[".", ".", "+", "~", "a", "b", "Z", "~rc", "+dfsg", "-", ""]));
        s.push_str(r.pick(&["0", "1", "2", "10", "00", "a", "z", "", "~"]));
    }
    if matches!(r.next() % 3, 1 | 2) {
        s.push('-');
        s.push_str(r.pick(&["0", "1", "2", "1a", "1~bpo", "1+b1", "1.1", "A", "10"]));
        if matches!(r.next() % 3, 0) {
            s.push_str(r.pick(&["~", "+deb12u1", ".0", "z", "~~"]));
        }
    }
    s
}

/// Small edits keep pairs close, where ordering bugs hide.
fn mutate(r: &mut Lcg, v: &str) -> String {
    let mut s = v.to_string();
    match r.next() % 5 {
        0 => s.push_str(r.pick(&["~", "a", "+", ".0", "0", "~1"])),
        1 => {
            if let Some(pos) = s.rfind(|c: char| c.is_ascii_digit()) {
                let digit = r.pick(&["0", "1", "9"]);
                s.replace_range(pos..pos + 1, digit);
            }
        }
        2 => {
            s = format!(
                "{}{}",
                r.pick(&["1:", "0:", ""]),
                s.split_once(':').map_or(s.as_str(), |x| x.1)
            )
        }
        3 => s = random_version(r),
        _ => s = s.replacen('.', r.pick(&["~", "+", ".0.", "a"]), 1),
    }
    s
}

#[test]
fn generated_pairs_match_dpkg() {
    let mut r = Lcg(0x5eed_1234);
    let mut checked = 0;
    let mut attempts = 0;
    while checked < 600 && attempts < 5000 {
        attempts += 1;
        let a = random_version(&mut r);
        let b = mutate(&mut r, &a);
        let (Ok(va), Ok(vb)) = (Version::parse(&a), Version::parse(&b)) else {
            continue;
        };
        assert_eq!(va.cmp(&vb), dpkg_cmp(&a, &b), "compare {a} with {b}");
        assert_eq!(vb.cmp(&va), va.cmp(&vb).reverse(), "antisymmetry {a} {b}");
        checked += 1;
    }
    assert!(checked >= 600, "only {checked} valid pairs generated");
}

#[test]
fn rejections_agree_with_dpkg() {
    // dpkg reports these as bad syntax (exit 2 with "bad syntax" on
    // stderr); we refuse them outright.
    for bad in ["1.0-", "a1.0", ":1.0", "x:1.0", "1.0 2", "1_0"] {
        assert!(Version::parse(bad).is_err(), "{bad:?} accepted");
        let out = Command::new("dpkg")
            .args(["--compare-versions", bad, "eq", "1"])
            .output()
            .expect("dpkg runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("bad syntax")
                || stderr.contains("invalid")
                || out.status.code() == Some(2),
            "dpkg accepts {bad:?}: {stderr}"
        );
    }
}
