//! Seed inputs: small valid examples of each format, made here in code
//! (the OpenPGP ones are signed by the fixture key, the packages and
//! archives are written by the same builders the tests use) so that the
//! fuzzer starts from inputs that reach deep into each parser.

use crate::{deb, oci, openpgp};

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The seeds of target `name`.
pub fn for_target(name: &str) -> Vec<Vec<u8>> {
    let s = |t: &str| t.as_bytes().to_vec();
    match name {
        "deb822" => vec![
            s("Package: fuzz\nVersion: 1.0-1\nDescription: short\n long\n .\n more\n\n# comment\nPackage: b\nstatus: install ok installed\n"),
            s("Format: 3.0 (quilt)\r\nSource: fuzz\r\nFiles:\r\n abc 1 fuzz.dsc\r\n\tdef 2 fuzz.tar.xz\r\n"),
            openpgp::sample_release().into_bytes(),
        ],
        "packages" => vec![s(&format!(
            "Package: libfuzz1\nSource: fuzz (1.0-2)\nVersion: 1:1.0-2+b1\nArchitecture: amd64\n\
             Multi-Arch: same\nPriority: optional\nEssential: no\nPre-Depends: libc6 (>= 2.36)\n\
             Depends: libc6 (>= 2.34) [amd64], libz1 | libz2 (<< 2~) <!nocheck>\nRecommends: ca-certificates,\n\
             Provides: fuzz-any (= 1.0)\nConflicts: old-fuzz\nBreaks: fuzz (<< 1.0-2)\nReplaces: fuzz\n\
             Filename: pool/main/f/fuzz/libfuzz1_1.0-2+b1_amd64.deb\nSize: 1234\nSHA256: {SHA}\n\n\
             Package: fuzz\nVersion: 1.0-2\nArchitecture: all\nMulti-Arch: foreign\nPriority: required\n\
             Essential: yes\nFilename: pool/main/f/fuzz/fuzz_1.0-2_all.deb\nSize: 1\nSHA256: {SHA}\n"
        ))],
        "sources" => vec![s(&format!(
            "Package: fuzz\nBinary: fuzz, libfuzz1\nVersion: 1.0-2\nFormat: 3.0 (quilt)\nDirectory: pool/main/f/fuzz\n\
             Checksums-Sha256:\n {SHA} 1000 fuzz_1.0-2.dsc\n {SHA} 725946 fuzz_1.0.orig.tar.gz\n {SHA} 12 fuzz_1.0-2.debian.tar.xz\n\n\
             Package: fuzz\nVersion: 1.0-3\nDirectory: pool/main/f/fuzz\nChecksums-Sha256:\n {SHA} 1001 fuzz_1.0-3.dsc\n"
        ))],
        "version_relation" => vec![
            s("1.0-1\n1:2.3~rc1+dfsg-2\n1.0\n1.00\n2.0~~a\n0:1.0-1.1\n10.0b3-0ubuntu1~22.04\n"),
            s("libc6 (>= 2.36) [amd64 !arm64] <!nocheck> <stage1 cross>, libz1:any | libz2 (<< 2~), foo (= 1:1.0-1), bar (>> 0), baz (<= 3)"),
        ],
        "sources_list" => vec![
            s("deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/fuzz.gpg] http://mirror.example.invalid/debian stable main contrib\n# c\ndeb-src http://mirror.example.invalid/debian stable-updates main\ndeb file:/srv/repo ./\n"),
            s("Types: deb deb-src\nURIs: http://mirror.example.invalid/debian http://other.example.invalid/debian\nSuites: stable stable-updates\nComponents: main\nSigned-By: /usr/share/keyrings/fuzz.gpg\n\nTypes: deb\nURIs: http://mirror.example.invalid/debian-security\nSuites: stable-security\nComponents: main\nEnabled: no\n"),
        ],
        "release" => vec![
            openpgp::sample_release().into_bytes(),
            s("Sat, 08 Nov 2025 09:17:06 UTC\nSun, 29 Feb 2032 23:59:60 +0130\n1 jan 1970 00:00 -0000\nDate: Tue, 31 Dec 2024 12:00 GMT\n"),
        ],
        "inrelease" => {
            let f = openpgp::fixture();
            vec![f.inrelease.clone(), f.inrelease_subkey.clone()]
        }
        "release_gpg" => {
            let f = openpgp::fixture();
            vec![f.release_gpg_armored.clone(), f.release_gpg_binary.clone()]
        }
        "keyring" => {
            let f = openpgp::fixture();
            let mut two = f.keyring_armored.clone();
            two.extend_from_slice(&f.keyring_armored);
            let mut lead = b"\n".to_vec();
            lead.extend_from_slice(&f.keyring_armored);
            vec![f.keyring_armored.clone(), f.keyring_binary.clone(), two, lead]
        }
        "deb" => [("", ""), (".gz", ".xz"), (".zst", ".zst"), (".xz", ".bz2"), (".gz", ".gz")]
            .iter()
            .map(|(c, d)| deb::deb_compressed(c, d))
            .collect(),
        "deb_data_tar" => vec![
            deb::make_data_tar(),
            deb::tar_of(&[deb::Item::File("./a", b"x", 0o644)]),
        ],
        "deb_control_tar" => vec![deb::make_control_tar()],
        "oci_layout" => {
            let docs = oci::seed_documents();
            // The same image without the nested index, in Docker's media types.
            let flat = vec![
                String::from_utf8(docs[1].clone())
                    .unwrap()
                    .replace("@2", "@1")
                    .replace("#2", "#1")
                    .replace("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
                    .into_bytes(),
                String::from_utf8(docs[2].clone())
                    .unwrap()
                    .replace("@3", "@2")
                    .replace("#3", "#2")
                    .replace("@4", "@3")
                    .replace("#4", "#3")
                    .into_bytes(),
                docs[3].clone(),
                docs[4].clone(),
            ];
            vec![oci::seed_layout_input(&docs), oci::seed_layout_input(&flat)]
        }
        "oci_archive" => archives(),
        "www_authenticate" => vec![
            s(r#"Bearer realm="https://auth.example.invalid/token",service="registry.example.invalid",scope="repository:team/netshoot:pull,push""#),
            s(r#"Basic realm="Registry Realm""#),
            s(r#"bearer realm=https://a.example.invalid/t, error="insufficient_scope", scope="a\"b""#),
        ],
        "registry_body" => vec![
            s(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v1"}}]}"#),
            s("502 Bad Gateway\nfrom a proxy\n"),
            s(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":10,"artifactType":"application/spdx+json"}]}"#),
            s(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cyclonedx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":1},"annotations":{"a":"b"}}"#),
        ],
        "spec" => vec![s(SPEC_SMALL), s(include_str!("../../tools/netshoot.toml"))],
        "lockfile" => vec![lockfile_seed()],
        other => panic!("no seeds for {other:?}"),
    }
}

/// A spec using most tables.
pub const SPEC_SMALL: &str = r#"
platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
[image]
name = "netshoot"
tag = "t"
cmd = ["zsh"]
[[local]]
src = "f"
dest = "/etc/f"
mode = "0600"
owner = "1:2"
[[dir]]
path = "/root/.cache"
mode = "0700"
owner = "0:0"
[apt]
packages = ["curl", "iproute2=6.1-2", "tcpdump:amd64"]
[[apt.repository]]
name = "main"
url = "http://mirror.example.invalid/debian"
suites = ["stable"]
components = ["main"]
keyring = "keyrings/fuzz.gpg"
[[url]]
name = "x"
dest = "/usr/bin/x"
mode = 0o755
[url.platform."linux/amd64"]
url = "http://127.0.0.1/x.tar.gz"
sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
path = "x"
[variant.debug]
tag_suffix = "-debug"
user = "1000:1000"
username = "debug"
home = "/home/debug"
capabilities = { "/usr/bin/tcpdump" = "cap_net_raw,cap_net_admin=eip" }
"#;

fn lockfile_seed() -> Vec<u8> {
    use netshoot_build::lockfile::{AptLock, LockedIndex, LockedPackage, Lockfile, UrlPin};
    let mut lock = Lockfile {
        version: netshoot_build::lockfile::LOCK_VERSION,
        spec_digest: format!("sha256:{SHA}"),
        ..Default::default()
    };
    lock.apt.insert(
        "linux/amd64".into(),
        AptLock {
            arch: "amd64".into(),
            indexes: vec![LockedIndex {
                repository: "main".into(),
                suite: "stable".into(),
                component: "main".into(),
                release_sha256: SHA.into(),
                packages_path: "main/binary-amd64/Packages.xz".into(),
                packages_sha256: SHA.into(),
            }],
            packages: vec![LockedPackage {
                name: "fuzz".into(),
                version: "1:1.0-2".into(),
                architecture: "amd64".into(),
                source: "fuzz".into(),
                source_version: "1.0-2".into(),
                repository: "main".into(),
                suite: "stable".into(),
                filename: "pool/main/f/fuzz/fuzz_1.0-2_amd64.deb".into(),
                size: 1234,
                sha256: SHA.into(),
            }],
        },
    );
    lock.crates.insert(
        "trippy".into(),
        netshoot_build::lockfile::CrateLock {
            name: "trippy".into(),
            version: "0.13.0".into(),
            checksum: SHA.into(),
            lock_sha256: SHA.into(),
            lockfile: "version = 4\n".into(),
            packages: vec![netshoot_build::lockfile::LockedDep {
                name: "a".into(),
                version: "1.0.0".into(),
                checksum: Some(SHA.into()),
                license: None,
                targets: Vec::new(),
            }],
        },
    );
    lock.url.entry("x".into()).or_default().insert(
        "linux/amd64".into(),
        UrlPin {
            url: "http://127.0.0.1/x".into(),
            sha256: SHA.into(),
            size: 7,
        },
    );
    lock.to_text().expect("seed lockfile").into_bytes()
}

/// An oci-archive and a docker-archive of the seed layout.
fn archives() -> Vec<Vec<u8>> {
    use image_layout::archive::{write_docker_archive, write_oci_archive};
    let dir = tempfile::tempdir().expect("temp folder");
    let layout = oci::seed_layout(&dir.path().join("layout"));
    let oci_tar = dir.path().join("oci.tar");
    write_oci_archive(&layout, &[], &oci_tar).expect("oci-archive");
    let docker_tar = dir.path().join("docker.tar");
    let top = layout.resolve(Some("fuzz")).expect("seed tag");
    let platform: image_layout::Platform = "linux/amd64".parse().expect("platform");
    write_docker_archive(&layout, &top, &platform, "netshoot:fuzz", &docker_tar)
        .expect("docker-archive");
    vec![
        std::fs::read(oci_tar).expect("reading"),
        std::fs::read(docker_tar).expect("reading"),
    ]
}
