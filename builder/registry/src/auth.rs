//! Credentials and the registry auth handshake: where credentials come
//! from (explicit, podman's auth.json, docker's config.json and its
//! credential helpers) and how `WWW-Authenticate` challenges are read.

use crate::error::{Error, Result};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or personal access token).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at
    /// the token realm for access tokens.
    IdentityToken(Secret),
}

impl Credentials {
    /// The user name, for messages (`<identity token>` for tokens).
    pub fn username(&self) -> &str {
        match self {
            Credentials::Basic { username, .. } => username,
            Credentials::IdentityToken(_) => "<identity token>",
        }
    }

    /// The `Authorization: Basic` value, when these are basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            Credentials::IdentityToken(_) => None,
        }
    }
}

/// Where credentials are looked up. [`CredentialSources::from_env`] reads
/// the usual environment; tests build one by hand so that they never touch
/// the process environment.
#[derive(Clone, Debug, Default)]
pub struct CredentialSources {
    /// Podman-style auth files, first match wins
    /// (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`).
    pub auth_files: Vec<PathBuf>,
    /// Docker's `config.json` (`$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`), with `credHelpers` and `credsStore`.
    pub docker_config: Option<PathBuf>,
    /// `PATH` for finding `docker-credential-*` helpers (None: inherit).
    pub helper_path: Option<OsString>,
}

impl CredentialSources {
    /// The sources podman and docker would read, from the environment.
    pub fn from_env() -> Self {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let mut auth_files = Vec::new();
        if let Some(f) = env("REGISTRY_AUTH_FILE") {
            auth_files.push(PathBuf::from(f));
        }
        if let Some(d) = env("XDG_RUNTIME_DIR") {
            auth_files.push(Path::new(&d).join("containers/auth.json"));
        }
        if let Some(h) = env("HOME") {
            auth_files.push(Path::new(&h).join(".config/containers/auth.json"));
        }
        let docker_config = env("DOCKER_CONFIG")
            .map(|d| Path::new(&d).join("config.json"))
            .or_else(|| env("HOME").map(|h| Path::new(&h).join(".docker/config.json")));
        CredentialSources {
            auth_files,
            docker_config,
            helper_path: None,
        }
    }

    /// Credentials for `registry` (a host with optional port), or None for
    /// anonymous access.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>> {
        for f in &self.auth_files {
            if let Some(cfg) = read_config(f, registry)? {
                if let Some(c) = auths_entry(&cfg, registry, f)? {
                    return Ok(Some(c));
                }
            }
        }
        let Some(f) = &self.docker_config else {
            return Ok(None);
        };
        let Some(cfg) = read_config(f, registry)? else {
            return Ok(None);
        };
        // Docker's order: a per-registry helper, then the default store,
        // then the inline `auths` entry.
        let helper = cfg
            .get("credHelpers")
            .and_then(|h| h.as_object())
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| normalize_host(k) == registry_key(registry))
                    .and_then(|(_, v)| v.as_str())
            })
            .or_else(|| cfg.get("credsStore").and_then(|s| s.as_str()))
            .filter(|s| !s.is_empty());
        if let Some(name) = helper {
            if let Some(c) = self.run_helper(name, registry)? {
                return Ok(Some(c));
            }
        }
        auths_entry(&cfg, registry, f)
    }

    fn run_helper(&self, name: &str, registry: &str) -> Result<Option<Credentials>> {
        let program = format!("docker-credential-{name}");
        let mut cmd = Command::new(&program);
        if let Some(p) = &self.helper_path {
            cmd.env("PATH", p);
            // Command looks the program up in the parent's PATH, not the
            // child's, so resolve it here.
            if let Some(full) = std::env::split_paths(p)
                .map(|d| d.join(&program))
                .find(|f| f.is_file())
            {
                cmd = Command::new(full);
                cmd.env("PATH", p);
            }
        }
        let fail = |detail: String| Error::Credentials {
            registry: registry.to_string(),
            detail,
        };
        let mut child = cmd
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // The helper reads the server URL; docker passes the bare host
            // for registries other than Docker Hub.
            let server = if registry_key(registry) == crate::reference::DEFAULT_REGISTRY {
                "https://index.docker.io/v1/".to_string()
            } else {
                registry.to_string()
            };
            // A helper that answers without reading stdin closes the pipe
            // early; its exit status and output are what count.
            let _ = stdin.write_all(server.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail(format!("{program}: {e}")))?;
        if !out.status.success() {
            // "credentials not found" is the protocol's way of saying none:
            // fall through to the next source. Never echo the output, it
            // may hold a secret.
            let text = String::from_utf8_lossy(&out.stdout);
            if text.to_ascii_lowercase().contains("not found") {
                return Ok(None);
            }
            return Err(fail(format!("{program} get failed ({})", out.status)));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|_| fail(format!("{program} get printed something that is not JSON")))?;
        let user = v.get("Username").and_then(|x| x.as_str()).unwrap_or("");
        let secret = v.get("Secret").and_then(|x| x.as_str()).unwrap_or("");
        if secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(if user == "<token>" {
            Credentials::IdentityToken(Secret::new(secret))
        } else {
            Credentials::Basic {
                username: user.to_string(),
                password: Secret::new(secret),
            }
        }))
    }
}

fn read_config(path: &Path, registry: &str) -> Result<Option<serde_json::Value>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                context: path.display().to_string(),
                source: e,
            })
        }
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|e| Error::Credentials {
            registry: registry.to_string(),
            detail: format!("{} is not valid JSON: {e}", path.display()),
        })
}

/// `https://host:port/v1/` and `host:port` both name `host:port`.
fn normalize_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    registry_key(host)
}

/// Docker Hub is stored under `index.docker.io` in config files.
fn registry_key(registry: &str) -> String {
    match registry {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => "docker.io".into(),
        r => r.to_string(),
    }
}

fn auths_entry(
    cfg: &serde_json::Value,
    registry: &str,
    file: &Path,
) -> Result<Option<Credentials>> {
    let Some(auths) = cfg.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    // Exact host keys first, in a stable order.
    let matching: BTreeMap<&String, &serde_json::Value> = auths
        .iter()
        .filter(|(k, _)| normalize_host(k) == registry_key(registry))
        .collect();
    for entry in matching.values() {
        if let Some(tok) = entry
            .get("identitytoken")
            .and_then(|x| x.as_str())
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(Credentials::IdentityToken(Secret::new(tok))));
        }
        if let Some(a) = entry
            .get("auth")
            .and_then(|x| x.as_str())
            .filter(|t| !t.is_empty())
        {
            let bad = || Error::Credentials {
                registry: registry.to_string(),
                detail: format!(
                    "the \"auth\" entry in {} is not base64 of user:password",
                    file.display()
                ),
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            let (u, p) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials::Basic {
                username: u.to_string(),
                password: Secret::new(p),
            }));
        }
    }
    Ok(None)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm=...,service=...,scope=...`.
    Bearer {
        /// Where tokens are issued.
        realm: String,
        /// The service name to ask for.
        service: Option<String>,
        /// The scope the registry asked for, if any.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `k="v", k2=v2` into a map; quoted values may contain commas.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn docker_config_auths() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:pw:with:colons");
        std::fs::write(
            &f,
            format!(r#"{{"auths":{{"https://reg.example:5000/v1/":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let s = CredentialSources {
            docker_config: Some(f),
            ..Default::default()
        };
        let c = s.lookup("reg.example:5000").unwrap().unwrap();
        assert_eq!(c.username(), "bob");
        assert!(s.lookup("other.example").unwrap().is_none());
    }
}
