//! The Kubernetes recipes in tools/k8s/ for the non-root variant: read by
//! a real YAML parser (PyYAML) and held to the Pod Security Standards'
//! rules that concern them. The restricted pod and `kubectl debug`
//! profile must pass "restricted"; the NET_RAW ones must add exactly
//! NET_RAW and allow privilege escalation, without which the image's file
//! capabilities are ignored. The uid is the variant's, read from the spec.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn k8s(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/k8s")
        .join(name)
}

/// A YAML file as JSON, converted by PyYAML (tools/scripts/install-deps.sh
/// installs python3-yaml).
fn yaml(name: &str) -> Value {
    let path = k8s(name);
    // Debian's python3 has python3-yaml; a python3 earlier in PATH may not.
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json(name: &str) -> Value {
    let path = k8s(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The non-root variant's uid, from `[variant.nonroot] user` in the spec.
fn variant_uid() -> i64 {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/netshoot.toml");
    let spec: toml::Value = toml::from_str(&std::fs::read_to_string(spec).unwrap()).unwrap();
    let user = spec["variant"]["nonroot"]["user"].as_str().unwrap();
    user.split(':').next().unwrap().parse().unwrap()
}

/// A container's effective security context: its own fields over the
/// pod's (runAsNonRoot, runAsUser, seccompProfile are inherited).
fn effective(pod: &Value, container: &Value) -> Value {
    let mut ctx = pod.clone();
    if let (Some(c), Value::Object(m)) = (container.as_object(), &mut ctx) {
        for (k, v) in c {
            m.insert(k.clone(), v.clone());
        }
    } else if ctx.is_null() {
        ctx = container.clone();
    }
    ctx
}

/// What the restricted standard (and baseline, which it includes) refuses
/// in one container's effective security context.
fn restricted_violations(ctx: &Value) -> Vec<String> {
    let mut v = Vec::new();
    if ctx["privileged"] == true {
        v.push("privileged".to_string());
    }
    if ctx["allowPrivilegeEscalation"] != false {
        v.push("allowPrivilegeEscalation is not false".into());
    }
    if ctx["runAsNonRoot"] != true {
        v.push("runAsNonRoot is not true".into());
    }
    if ctx["runAsUser"] == 0 {
        v.push("runAsUser is 0".into());
    }
    if !matches!(
        ctx["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault" | "Localhost")
    ) {
        v.push("seccompProfile is not RuntimeDefault or Localhost".into());
    }
    if !caps(ctx, "drop").contains(&"ALL".to_string()) {
        v.push("capabilities do not drop ALL".into());
    }
    for c in caps(ctx, "add") {
        if c != "NET_BIND_SERVICE" {
            v.push(format!("capability {c} added"));
        }
    }
    v
}

fn caps(ctx: &Value, which: &str) -> Vec<String> {
    ctx["capabilities"][which]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The pod's one container, with its effective security context; checks
/// what any of these pods must hold (the variant's image and uid, nothing
/// of the host's).
fn pod_container(name: &str) -> Value {
    let pod = yaml(name);
    assert_eq!(pod["kind"], "Pod", "{name}");
    let spec = &pod["spec"];
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(spec[host] != true, "{name}: {host}");
    }
    assert!(spec["volumes"].is_null(), "{name}: volumes");
    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{name}");
    let c = &containers[0];
    let image = c["image"].as_str().unwrap();
    assert!(
        image.starts_with("registry.example.com/") && image.ends_with("-nonroot"),
        "{name}: {image}"
    );
    let ctx = effective(&spec["securityContext"], &c["securityContext"]);
    assert_eq!(ctx["runAsUser"], variant_uid(), "{name}");
    ctx
}

#[test]
fn restricted_pod_and_debug_profile_pass_the_restricted_standard() {
    let ctx = pod_container("nonroot-restricted.yaml");
    assert_eq!(restricted_violations(&ctx), Vec::<String>::new());
    let profile = json("debug-restricted.json");
    let ctx = &profile["securityContext"];
    assert_eq!(ctx["runAsUser"], variant_uid());
    assert_eq!(restricted_violations(ctx), Vec::<String>::new());
}

#[test]
fn net_raw_pod_and_debug_profile_add_net_raw_and_allow_escalation() {
    let pod = pod_container("nonroot-net-raw.yaml");
    let profile = json("debug-net-raw.json");
    for (name, ctx) in [("pod", &pod), ("profile", &profile["securityContext"])] {
        assert_eq!(caps(ctx, "add"), ["NET_RAW"], "{name}");
        assert_eq!(caps(ctx, "drop"), ["ALL"], "{name}");
        // File capabilities are ignored under no_new_privs.
        assert_eq!(ctx["allowPrivilegeEscalation"], true, "{name}");
        assert_eq!(ctx["runAsUser"], variant_uid(), "{name}");
        // What keeps it from restricted is NET_RAW and the escalation,
        // nothing else.
        let v = restricted_violations(ctx);
        assert_eq!(
            v,
            [
                "allowPrivilegeEscalation is not false",
                "capability NET_RAW added"
            ],
            "{name}"
        );
    }
}
