//! Bearer token auth against docker-registry's `token` scheme, with a
//! test token service that signs ES256 JWTs.

mod common;

use common::*;
use image_layout::OciLayout;
use registry::{Client, ClientOptions, CredentialSources, Reference};

#[test]
fn token_auth_push_mount_pull() {
    let ts = TokenServer::start(vec![("bob".into(), "tok-pass-9".into())]);
    let reg = Registry::start(
        Auth::Token {
            realm: ts.realm.clone(),
            service: TOKEN_SERVICE.into(),
            issuer: TOKEN_ISSUER.into(),
            root_cert: ts.cert.clone(),
        },
        None,
    );
    let src = tempfile::tempdir().unwrap();
    let img = build_image(src.path(), 20, 80_000);
    let top = img.layout.resolve(Some("latest")).unwrap();
    let opts = ClientOptions {
        username: Some("bob".into()),
        password: Some("tok-pass-9".into()),
        credentials: CredentialSources::default(),
        ..Default::default()
    };
    let client = Client::new(opts.clone()).unwrap();
    let a: Reference = format!("{}/team/a:v1", reg.host).parse().unwrap();
    let r = client
        .push_layout(&img.layout, &top, None, &a, &[], &|_| {})
        .unwrap();
    assert_eq!(r.digest, img.index);
    assert_eq!(r.blobs_uploaded, 5);

    // Another repository: the blobs are mounted from team/a, which needs
    // a token with pull on team/a as well.
    let b: Reference = format!("{}/team/b:v1", reg.host).parse().unwrap();
    let r = client
        .push_layout(&img.layout, &top, None, &b, &[], &|_| {})
        .unwrap();
    assert_eq!(r.blobs_mounted, 5, "{r:?}");
    assert_eq!(r.blobs_uploaded, 0);
    let scopes = ts.scopes_seen.lock().unwrap().clone();
    assert!(
        scopes.contains(&"repository:team/b:pull,push".to_string()),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&"repository:team/a:pull".to_string()),
        "{scopes:?}"
    );
    // The password went once (OAuth2 password grant), refresh tokens after.
    let grants = ts.grants_seen.lock().unwrap().clone();
    assert_eq!(
        grants.iter().filter(|g| *g == "password").count(),
        1,
        "{grants:?}"
    );
    assert!(grants.iter().any(|g| g == "refresh_token"), "{grants:?}");
    // Tokens are cached: far fewer token requests than registry requests.
    assert!(grants.len() < 10, "{grants:?}");

    // Pull it back with a fresh client.
    let dest_dir = tempfile::tempdir().unwrap();
    let dest = OciLayout::create(dest_dir.path()).unwrap();
    let d = Client::new(opts)
        .unwrap()
        .pull(&b, None, &dest, "v1")
        .unwrap();
    assert_eq!(image_layout::Digest::from(d.digest()), img.index);
    assert_eq!(layout_blobs(dest_dir.path()), layout_blobs(src.path()));

    // skopeo reads it through the same token service.
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds=bob:tok-pass-9",
        &format!("docker://{}/team/b:v1", reg.host),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, img.layout.read_blob(&img.index).unwrap());

    // Wrong password: the token service refuses; the secret is not shown.
    let bad = Client::new(ClientOptions {
        username: Some("bob".into()),
        password: Some("not-the-Pa55".into()),
        credentials: CredentialSources::default(),
        ..Default::default()
    })
    .unwrap();
    let e = bad
        .push_layout(&img.layout, &top, None, &a, &[], &|_| {})
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("401") && text.contains("bob") && text.contains("refused"),
        "{text}"
    );
    assert!(!text.contains("not-the-Pa55") && !format!("{e:?}").contains("not-the-Pa55"));

    // Anonymous: a token without access, then a clear 401.
    let anon = Client::new(ClientOptions {
        credentials: CredentialSources::default(),
        ..Default::default()
    })
    .unwrap();
    let e = anon.pull(&b, None, &dest, "anon").unwrap_err().to_string();
    assert!(e.contains("401") && e.contains("anonymous"), "{e}");
}
