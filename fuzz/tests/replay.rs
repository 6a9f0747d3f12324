//! Without libFuzzer: every target runs over its seeds and over the inputs
//! kept in `regressions/<target>/` (crashes found and fixed), and the seeds
//! are checked to be valid inputs, so the fuzzer starts deep in each parser.

use std::path::Path;

use netshoot_fuzz::{oci, openpgp, seeds, TARGETS};

#[test]
fn every_target_runs_its_seeds_and_kept_inputs() {
    let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    for t in TARGETS {
        let seeds = seeds::for_target(t.name);
        assert!(!seeds.is_empty(), "{}: no seeds", t.name);
        for s in &seeds {
            (t.run)(s);
        }
        if let Ok(dir) = std::fs::read_dir(kept.join(t.name)) {
            for f in dir.flatten() {
                (t.run)(&std::fs::read(f.path()).unwrap());
            }
        }
    }
}

#[test]
fn seeds_are_valid_inputs() {
    use std::time::{Duration, SystemTime};
    let now = SystemTime::now() + Duration::from_secs(60);
    let f = openpgp::fixture();
    for signed in [&f.inrelease, &f.inrelease_subkey] {
        let r = debian::release::verify_inrelease(signed, &f.keyring_armored, now).unwrap();
        assert_eq!(r.suite.as_deref(), Some("stable"));
    }
    for keyring in seeds::for_target("keyring") {
        debian::release::verify_inrelease(&f.inrelease, &keyring, now).unwrap();
    }
    for sig in seeds::for_target("release_gpg") {
        debian::release::verify_detached(f.release.as_bytes(), &sig, &f.keyring_binary, now)
            .unwrap();
    }
    for deb in seeds::for_target("deb") {
        let (c, entries) = debian::deb::read_deb(&deb[..], &mut std::io::sink()).unwrap();
        assert_eq!(c.package(), "fuzz");
        assert!(entries
            .iter()
            .any(|e| e.path == "usr/bin/pax-named-é" && e.uid == 1000));
        assert!(entries.iter().any(|e| e.path.len() > 100));
    }
    debian::packages::parse_packages(
        &String::from_utf8(seeds::for_target("packages")[0].clone()).unwrap(),
    )
    .unwrap();
    debian::sources::parse_sources(
        &String::from_utf8(seeds::for_target("sources")[0].clone()).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = oci::seed_layout(dir.path());
    let top = layout.resolve(None).unwrap();
    assert_eq!(layout.images(&top).unwrap().len(), 1);
    assert!(layout.check_blobs(None).unwrap().is_empty());
    for (i, a) in seeds::for_target("oci_archive").iter().enumerate() {
        let file = dir.path().join(format!("a{i}.tar"));
        std::fs::write(&file, a).unwrap();
        image_layout::archive::read_archive(&file, &dir.path().join(format!("out{i}"))).unwrap();
    }
    for spec in seeds::for_target("spec") {
        let p = dir.path().join("netshoot.toml");
        std::fs::write(&p, spec).unwrap();
        netshoot_build::spec::Spec::load(&p).unwrap();
    }
    let p = dir.path().join("netshoot.lock");
    std::fs::write(&p, &seeds::for_target("lockfile")[0]).unwrap();
    netshoot_build::lockfile::Lockfile::read(&p)
        .unwrap()
        .unwrap();
}
