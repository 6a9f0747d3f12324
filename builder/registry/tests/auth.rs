//! Basic auth behind TLS with a test CA; credentials from every source.

mod common;

use base64::Engine as _;
use common::*;
use registry::{Client, ClientOptions, CredentialSources, Reference};
use std::os::unix::fs::PermissionsExt;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55-do-not-print";

struct Fixture {
    _ca_dir: tempfile::TempDir,
    ca: TestCa,
    reg: Registry,
    img_dir: tempfile::TempDir,
    img: TestImage,
}

fn fixture(seed: u64) -> Fixture {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = make_ca(ca_dir.path());
    let reg = Registry::start(
        Auth::Htpasswd {
            user: USER.into(),
            password: PASSWORD.into(),
        },
        Some(&ca),
    );
    let img_dir = tempfile::tempdir().unwrap();
    let img = build_image(img_dir.path(), seed, 50_000);
    Fixture {
        _ca_dir: ca_dir,
        ca,
        reg,
        img_dir,
        img,
    }
}

#[allow(clippy::result_large_err)]
fn push(f: &Fixture, opts: ClientOptions, repo: &str) -> registry::Result<registry::PushReport> {
    let client = Client::new(opts)?;
    let top = f.img.layout.resolve(Some("latest")).unwrap();
    let target: Reference = format!("{}/{repo}:v1", f.reg.host).parse().unwrap();
    client.push_layout(&f.img.layout, &top, None, &target, &[], &|_| {})
}

fn base(f: &Fixture) -> ClientOptions {
    ClientOptions {
        ca_certs: vec![f.ca.ca_cert.clone()],
        credentials: CredentialSources::default(),
        ..Default::default()
    }
}

#[test]
fn tls_with_ca_and_explicit_credentials() {
    let f = fixture(10);
    let r = push(
        &f,
        ClientOptions {
            username: Some(USER.into()),
            password: Some(PASSWORD.into()),
            ..base(&f)
        },
        "explicit",
    )
    .unwrap();
    assert_eq!(r.digest, f.img.index);
    // skopeo agrees, over TLS with the same CA and credentials.
    let certs = tempfile::tempdir().unwrap();
    std::fs::copy(&f.ca.ca_cert, certs.path().join("ca.crt")).unwrap();
    let out = skopeo(&[
        "inspect",
        "--raw",
        &format!("--cert-dir={}", certs.path().display()),
        &format!("--creds={USER}:{PASSWORD}"),
        &format!("docker://{}/explicit:v1", f.reg.host),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, f.img.layout.read_blob(&f.img.index).unwrap());
    drop(f.img_dir);
}

#[test]
fn tls_without_ca_fails_clearly() {
    let f = fixture(11);
    let e = push(
        &f,
        ClientOptions {
            ca_certs: vec![],
            username: Some(USER.into()),
            password: Some(PASSWORD.into()),
            ..base(&f)
        },
        "noca",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--ca-cert") && e.contains(&f.reg.host), "{e}");
    assert!(!e.contains(PASSWORD));
    // --insecure gets through without the CA.
    let r = push(
        &f,
        ClientOptions {
            ca_certs: vec![],
            insecure: true,
            username: Some(USER.into()),
            password: Some(PASSWORD.into()),
            ..base(&f)
        },
        "insecure",
    )
    .unwrap();
    assert_eq!(r.digest, f.img.index);
}

#[test]
fn wrong_password_is_a_401_without_the_secret() {
    let f = fixture(12);
    let wrong = "wrong-Pa55word-never-echo";
    let opts = ClientOptions {
        username: Some(USER.into()),
        password: Some(wrong.into()),
        ..base(&f)
    };
    assert!(!format!("{opts:?}").contains(wrong));
    let err = push(&f, opts, "wrong").unwrap_err();
    let (text, debug) = (err.to_string(), format!("{err:?}"));
    assert!(
        text.contains("401") && text.contains("refused") && text.contains(USER),
        "{text}"
    );
    assert!(text.contains(&f.reg.host), "{text}");
    assert!(
        !text.contains(wrong) && !debug.contains(wrong),
        "{text}\n{debug}"
    );
    assert!(!text.contains(PASSWORD) && !debug.contains(PASSWORD));
    assert!(!text.contains('\n'));
    assert_eq!(err.status(), Some(401));
    // Anonymous: told to log in.
    let e = push(&f, base(&f), "anon").unwrap_err().to_string();
    assert!(e.contains("401") && e.contains("anonymous"), "{e}");
}

#[test]
fn credentials_from_docker_config_podman_auth_file_and_helper() {
    let f = fixture(13);
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));

    // docker config.json `auths`
    let docker = dir.path().join("config.json");
    std::fs::write(
        &docker,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, f.reg.host),
    )
    .unwrap();
    let r = push(
        &f,
        ClientOptions {
            credentials: CredentialSources {
                docker_config: Some(docker),
                ..Default::default()
            },
            ..base(&f)
        },
        "dockercfg",
    )
    .unwrap();
    assert_eq!(r.digest, f.img.index);

    // podman auth.json
    let podman = dir.path().join("auth.json");
    std::fs::write(
        &podman,
        format!(
            r#"{{"auths":{{"https://{}":{{"auth":"{auth}"}}}}}}"#,
            f.reg.host
        ),
    )
    .unwrap();
    push(
        &f,
        ClientOptions {
            credentials: CredentialSources {
                auth_files: vec![podman],
                ..Default::default()
            },
            ..base(&f)
        },
        "podman",
    )
    .unwrap();

    // credHelpers: a real helper program found through the given PATH.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let asked = dir.path().join("asked");
    let helper = bin.join("docker-credential-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\necho \"$host\" > {}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$host\"\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("helper.json");
    std::fs::write(
        &cfg,
        format!(r#"{{"credHelpers":{{"{}":"test"}}}}"#, f.reg.host),
    )
    .unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    push(
        &f,
        ClientOptions {
            credentials: CredentialSources {
                docker_config: Some(cfg.clone()),
                helper_path: Some(path.clone().into()),
                ..Default::default()
            },
            ..base(&f)
        },
        "helper",
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(&asked).unwrap().trim(), f.reg.host);

    // credsStore with a helper that knows nothing: anonymous, refused.
    std::fs::write(
        bin.join("docker-credential-empty"),
        "#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("docker-credential-empty"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(&cfg, r#"{"credsStore":"empty"}"#).unwrap();
    let e = push(
        &f,
        ClientOptions {
            credentials: CredentialSources {
                docker_config: Some(cfg),
                helper_path: Some(path.into()),
                ..Default::default()
            },
            ..base(&f)
        },
        "nohelper",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("401"), "{e}");
}
