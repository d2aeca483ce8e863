//! The deployment recipes in deploy/: the Kubernetes manifests pass the
//! Kubernetes API's own schemas (kubernetes-validate, strict, offline), and
//! the configuration each recipe gives its nodes runs: a node started from
//! it (its container paths moved into a scratch directory, on the tests'
//! PostgreSQL) answers the probes' paths over TLS.

use super::postgres::database;
use super::*;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
    let tool = repo("guests/.venv/bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing: run guests/toolchains.sh",
        tool.display()
    );
    std::process::Command::new(tool)
        .arg("--strict")
        .args(files)
        .output()
        .unwrap()
}

/// A YAML file's documents.
fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read(repo(file)).unwrap();
    let out = python_script("yaml_to_json.py", &text);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_kubernetes_manifests_pass_the_kubernetes_api_schemas() {
    let manifests = [
        repo("deploy/kubernetes/femtoclaw.yaml"),
        repo("deploy/kubernetes/postgres.yaml"),
    ];
    let out = kubernetes_validate(&manifests);
    let report =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert_eq!(report.matches("passed for resource").count(), 6, "{report}");
    // The checker bites: a replica count that is not a number is refused.
    let s = Scratch::new();
    let text = std::fs::read_to_string(&manifests[0]).unwrap();
    assert!(text.contains("replicas: 2"));
    let broken = s.write("broken.yaml", &text.replace("replicas: 2", "replicas: two"));
    let out = kubernetes_validate(&[broken]);
    assert!(!out.status.success(), "{out:?}");
}

/// Starts a node on a recipe's configuration (`serve.toml` and the files
/// beside it in `config`), its container paths moved under `s`, and checks
/// that `probes` (path, expected status) answer over TLS.
fn node_answers_its_probes(s: &Scratch, config: &Path, url: &str, probes: &[(String, u16)]) {
    let text = std::fs::read_to_string(config).unwrap();
    for dir in ["tls", "state", "acme"] {
        s.mkdir(dir);
    }
    self_signed(&s.path("tls/tls.key"), &s.path("tls/tls.crt"));
    let moved = text
        .replace("0.0.0.0:8443", "127.0.0.1:0")
        .replace(
            "/etc/femtoclaw/tls/",
            &format!("{}/", s.path("tls").display()),
        )
        .replace("\"/state\"", &format!("\"{}\"", s.path("state").display()));
    std::fs::write(config, moved).unwrap();
    let mut child = fc_host()
        .args(["--log-format", "json", "serve", "--config"])
        .arg(config)
        .env("FC_JOURNAL_URL", url)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = listening_address(&mut child);
    for (path, expected) in probes {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg("--cacert")
            .arg(s.path("tls/tls.crt"))
            .arg(format!("https://{address}{path}"))
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(code, expected.to_string(), "{path}: {out:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_kubernetes_nodes_configuration_runs_and_answers_its_probes() {
    let (_serial, url) = database();
    let docs = documents("deploy/kubernetes/femtoclaw.yaml");
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap().clone();
    let s = Scratch::new();
    // The ConfigMap's files, as the Deployment mounts them.
    let config = kind("ConfigMap");
    for (name, text) in config["data"].as_object().unwrap() {
        let text = text
            .as_str()
            .unwrap()
            .replace("/srv/acme", &s.path("acme").display().to_string());
        s.write(&format!("config/{name}"), &text);
    }
    let deployment = kind("Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["args"],
        json!(["serve", "--config", "/etc/femtoclaw/config/serve.toml"])
    );
    let mut probes = Vec::new();
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["scheme"], "HTTPS", "{probe}");
        probes.push((get["path"].as_str().unwrap().to_owned(), 200));
    }
    assert_eq!(probes[0].0, "/readyz");
    assert_eq!(probes[1].0, "/healthz");
    node_answers_its_probes(&s, &s.path("config/serve.toml"), &url, &probes);
}

#[test]
fn the_compose_recipes_configuration_runs() {
    let (_serial, url) = database();
    let compose = &documents("deploy/compose/compose.yaml")[0];
    let s = Scratch::new();
    for node in ["node-a", "node-b"] {
        let service = &compose["services"][node];
        assert_eq!(
            service["command"],
            json!(["serve", "--config", "/etc/femtoclaw/config/serve.toml"]),
            "{node}"
        );
        assert!(service["environment"]["FC_JOURNAL_URL"].is_string());
    }
    let policy = std::fs::read_to_string(repo("deploy/compose/acme/policy.toml")).unwrap();
    s.write(
        "config/acme/policy.toml",
        &policy.replace("/srv/acme", &s.path("acme").display().to_string()),
    );
    let text = std::fs::read_to_string(repo("deploy/compose/serve.toml")).unwrap();
    let config = s.write("config/serve.toml", &text);
    node_answers_its_probes(
        &s,
        &config,
        &url,
        &[("/readyz".into(), 200), ("/healthz".into(), 200)],
    );
}
