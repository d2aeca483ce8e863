//! Bundles through a real OCI registry (Debian's `docker-registry`, the CNCF
//! distribution registry) on a loopback port: push, pull, run by digest,
//! replay and resume from the same bytes, and a registry that lies.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::bundles::{example, fc, publish, publish_two_versions};
use crate::common::*;

/// A registry of its own for one test, its storage in a scratch directory
/// (which the hostile cases edit, as a compromised registry would).
struct LocalRegistry {
    child: Child,
    root: PathBuf,
    host: String,
}

impl LocalRegistry {
    fn start() -> LocalRegistry {
        LocalRegistry::start_with("")
    }

    /// A registry whose users (htpasswd lines) must log in.
    fn with_users(htpasswd: &str) -> LocalRegistry {
        let file = fresh_dir().join("htpasswd");
        std::fs::write(&file, htpasswd).unwrap();
        LocalRegistry::start_with(&format!(
            "auth:\n  htpasswd:\n    realm: femtoclaw-test\n    path: {}\n",
            file.display()
        ))
    }

    fn start_with(extra_config: &str) -> LocalRegistry {
        let dir = fresh_dir();
        // A port found free may be taken before the registry binds it: a
        // few tries, each waiting a bounded time for the registry to answer.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = dir.join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra_config}",
                    dir.join("data").display()
                ),
            )
            .unwrap();
            let mut child = Command::new("docker-registry")
                .args(["serve", config.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("docker-registry is not installed: `apt-get install docker-registry` (.ci/run installs it)");
            for _ in 0..100 {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                // Up, answering 200 or (with users) 401.
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return LocalRegistry {
                        child,
                        root: dir.join("data/docker/registry/v2"),
                        host: format!("127.0.0.1:{port}"),
                    };
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start on a loopback port");
    }

    fn at(&self, path: &str) -> String {
        format!("oci://{}/{path}", self.host)
    }

    /// The file the registry serves a blob (a manifest too) from.
    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.root
            .join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))
    }

    /// The digest of the bundle layer of the manifest at `digest`.
    fn layer(&self, digest: &str) -> String {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.blob(digest)).unwrap()).unwrap();
        manifest["layers"][0]["digest"].as_str().unwrap().to_owned()
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `fc-host bundle push FILE REF`: the pinned reference it prints.
fn push(s: &Scratch, file: &str, to: &str) -> String {
    let out = fc(s, &["bundle", "push", file, to]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    out.stdout.trim().to_owned()
}

fn digest_of(pinned: &str) -> &str {
    pinned.rsplit_once('@').unwrap().1
}

fn flip_last_byte(file: &std::path::Path) {
    let mut bytes = std::fs::read(file).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(file, bytes).unwrap();
}

/// Push, pull back byte for byte, run by digest and by tag (the tag
/// resolved once, the digest journaled), replay and resume with the
/// registry gone: the kept bytes are the ones run.
#[test]
fn a_signed_bundle_travels_through_a_registry_and_runs_by_digest() {
    let registry = LocalRegistry::start();
    let s = example();
    publish(&s, "hello.fcb");
    let pinned = push(&s, "hello.fcb", &registry.at("acme/hello:1.0.0"));
    assert!(
        pinned.starts_with(&registry.at("acme/hello@sha256:")),
        "{pinned}"
    );
    assert_eq!(
        push(&s, "hello.fcb", &registry.at("acme/hello:again")),
        pinned.replace(":again", ""),
        "the same bundle gives the same digest"
    );

    let pulled = fc(
        &s,
        &[
            "bundle",
            "pull",
            &pinned,
            "-o",
            "back.fcb",
            "--trust",
            "hello.pub",
        ],
    );
    assert_eq!(pulled.code, exit::OK, "{pulled:#?}");
    assert_eq!(
        std::fs::read(s.path("back.fcb")).unwrap(),
        std::fs::read(s.path("hello.fcb")).unwrap()
    );

    let from_file = fc(&s, &["run", "hello.fcb", "--policy", "bundle-policy.toml"]);
    let by_digest = fc(&s, &["run", &pinned, "--policy", "bundle-policy.toml"]);
    assert_eq!(by_digest.code, exit::OK, "{by_digest:#?}");
    assert_eq!(by_digest.stdout, from_file.stdout);
    let tag = registry.at("acme/hello:1.0.0");
    let by_tag = fc(&s, &["run", &tag, "--policy", "bundle-policy.toml"]);
    assert_eq!(by_tag.code, exit::OK, "{by_tag:#?}");
    assert!(
        by_tag.stderr.contains(&format!("{tag} is {pinned}")),
        "{}",
        by_tag.stderr
    );
    let id = by_tag.run_id();
    let inspect = fc(&s, &["inspect", &id]);
    assert!(
        inspect.stdout.contains("bundle hello 1.0.0 (sha256 "),
        "{}",
        inspect.stdout
    );
    assert!(inspect.stdout.contains(&format!(") from {pinned}")));

    // Without the registry: replay needs only the journal, and a resume
    // the bytes kept under the journaled digest.
    drop(registry);
    let replay = fc(&s, &["replay", &id]);
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
    assert_eq!(replay.stdout, by_tag.stdout);
    cut_run(&s.path("state"), &id, 3);
    let resumed = fc(&s, &["resume", &id]);
    assert_eq!(resumed.code, exit::OK, "{resumed:#?}");
    assert_eq!(resumed.stdout, by_tag.stdout);

    // A kept entry that no longer matches its digest is never used: the
    // resume goes back to the registry, which is gone.
    let entry = s.path(&format!(
        "state/oci/{}",
        digest_of(&pinned).replace(':', "-")
    ));
    flip_last_byte(&entry.join("bundle.fcb"));
    cut_run(&s.path("state"), &id, 3);
    let damaged = fc(&s, &["resume", &id]);
    assert_eq!(damaged.code, exit::REGISTRY, "{damaged:#?}");
}

/// A file bundle run resumes with its file, and refuses a file that changed.
#[test]
fn a_bundle_run_resumes_only_with_the_bytes_it_started_from() {
    let s = example();
    publish(&s, "hello.fcb");
    let out = fc(&s, &["run", "hello.fcb", "--policy", "bundle-policy.toml"]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let id = out.run_id();
    cut_run(&s.path("state"), &id, 3);
    let resumed = fc(&s, &["resume", &id]);
    assert_eq!(resumed.code, exit::OK, "{resumed:#?}");
    assert_eq!(resumed.stdout, out.stdout);

    // Replaced by a valid, signed bundle: not the bytes the run started from.
    let manifest = std::fs::read_to_string(s.path("bundle.toml")).unwrap();
    s.write("bundle.toml", &manifest.replace("1.0.0", "1.0.1"));
    publish(&s, "hello.fcb");
    cut_run(&s.path("state"), &id, 3);
    let changed = fc(&s, &["resume", &id]);
    assert_eq!(changed.code, exit::USAGE, "{changed:#?}");
    assert!(
        changed
            .stderr
            .contains("started from hello.fcb with sha256"),
        "{}",
        changed.stderr
    );
}

/// What a lying or careless registry serves is refused before a byte is
/// kept or compiled, with the bundle exit codes.
#[test]
fn a_hostile_registry_is_refused_with_the_bundle_exit_codes() {
    let registry = LocalRegistry::start();
    let s = example();
    publish_two_versions(&s);
    let v2 = push(&s, "v2.fcb", &registry.at("acme/hello:stable"));
    let run = |reference: &str| {
        fc(
            &s,
            &[
                "run",
                reference,
                "--policy",
                "bundle-policy.toml",
                "--state",
                "fresh",
            ],
        )
    };
    let kept = |s: &Scratch| {
        std::fs::read_dir(s.path("fresh/oci"))
            .map(|d| d.count())
            .unwrap_or(0)
    };

    // A tag moved back to an older version: rollback, as for a file.
    assert_eq!(run(&registry.at("acme/hello:stable")).code, exit::OK);
    push(&s, "v1.fcb", &registry.at("acme/hello:stable"));
    let older = run(&registry.at("acme/hello:stable"));
    assert_eq!(older.code, exit::DOWNGRADE, "{older:#?}");
    assert!(older.stderr.contains("version 1.0.0 is older than 2.0.0"));

    // An unsigned bundle under a policy that requires a signature.
    let o = fc(&s, &["bundle", "pack", "bundle.toml", "-o", "unsigned.fcb"]);
    assert_eq!(o.code, exit::OK, "{o:#?}");
    let unsigned = push(&s, "unsigned.fcb", &registry.at("acme/unsigned:1"));
    let out = run(&unsigned);
    assert_eq!(out.code, exit::SIGNATURE, "{out:#?}");
    assert!(out.stderr.contains("not signed"), "{}", out.stderr);

    // A blob whose bytes no longer match its digest.
    let before = kept(&s);
    let tampered = push(&s, "v2.fcb", &registry.at("acme/tampered:1"));
    assert_eq!(digest_of(&tampered), digest_of(&v2));
    let layer = registry.layer(digest_of(&v2));
    let blob = registry.blob(&layer);
    let original = std::fs::read(&blob).unwrap();
    flip_last_byte(&blob);
    let out = fc(
        &s,
        &[
            "run",
            &tampered,
            "--policy",
            "bundle-policy.toml",
            "--state",
            "other",
        ],
    );
    assert_eq!(out.code, exit::BUNDLE, "{out:#?}");
    assert!(
        out.stderr.contains("does not match its digest"),
        "{}",
        out.stderr
    );
    assert!(!s.path("other/oci").exists(), "nothing is kept");
    let pull = fc(&s, &["bundle", "pull", &tampered, "-o", "t.fcb"]);
    assert_eq!(pull.code, exit::BUNDLE, "{pull:#?}");
    assert!(!s.path("t.fcb").exists());
    std::fs::write(&blob, original).unwrap();

    // A manifest that is not the one its digest names.
    let manifest = registry.blob(digest_of(&v2));
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("2.0.0", "2.0.1")).unwrap();
    let out = fc(&s, &["bundle", "pull", &v2, "-o", "m.fcb"]);
    assert_eq!(out.code, exit::BUNDLE, "{out:#?}");
    assert!(out.stderr.contains("digest"), "{}", out.stderr);
    assert!(!s.path("m.fcb").exists());
    assert_eq!(kept(&s), before, "nothing more is kept");
}

/// What is not there: a clear error naming the registry, exit code 15.
#[test]
fn an_unreachable_registry_or_unknown_tag_names_what_is_missing() {
    let registry = LocalRegistry::start();
    let s = example();
    publish(&s, "hello.fcb");
    let out = fc(
        &s,
        &[
            "run",
            &registry.at("acme/none:1"),
            "--policy",
            "bundle-policy.toml",
        ],
    );
    assert_eq!(out.code, exit::REGISTRY, "{out:#?}");
    assert!(
        out.stderr
            .contains(&format!("registry `{}`: no manifest at", registry.host)),
        "{}",
        out.stderr
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let out = fc(
        &s,
        &[
            "bundle",
            "pull",
            &format!("oci://127.0.0.1:{port}/a:1"),
            "-o",
            "x.fcb",
        ],
    );
    assert_eq!(out.code, exit::REGISTRY, "{out:#?}");
    let bad = fc(
        &s,
        &["bundle", "pull", "oci://127.0.0.1/A:1", "-o", "x.fcb"],
    );
    assert_eq!(bad.code, exit::USAGE, "{bad:#?}");
    assert!(bad.stderr.contains("repository"), "{}", bad.stderr);
}

/// ORAS, an OCI client FemtoClaw did not write, pulls what `fc-host bundle
/// push` pushed (its manifest passing ORAS's schema) byte for byte; what
/// ORAS pushes as a plain artifact is not a bundle, and is refused.
#[test]
fn another_oci_client_reads_the_artifact_and_its_artifacts_are_refused() {
    let registry = LocalRegistry::start();
    let s = example();
    publish(&s, "hello.fcb");
    let pinned = push(&s, "hello.fcb", &registry.at("acme/hello:1.0.0"));
    let oras = |request: serde_json::Value| {
        let out = python_script("oras_client.py", request.to_string().as_bytes());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let outdir = s.mkdir("oras");
    let files = oras(serde_json::json!({
        "op": "pull",
        "target": pinned.strip_prefix("oci://").unwrap(),
        "outdir": outdir,
    }));
    assert_eq!(
        files.trim(),
        outdir.join("hello-1.0.0.fcb").to_str().unwrap()
    );
    assert_eq!(
        std::fs::read(outdir.join("hello-1.0.0.fcb")).unwrap(),
        std::fs::read(s.path("hello.fcb")).unwrap()
    );

    let plain = registry.at("acme/plain:1");
    oras(serde_json::json!({
        "op": "push",
        "target": plain.strip_prefix("oci://").unwrap(),
        "file": s.path("data/notes.txt"),
    }));
    let out = fc(&s, &["run", &plain, "--policy", "bundle-policy.toml"]);
    assert_eq!(out.code, exit::BUNDLE, "{out:#?}");
    assert!(
        out.stderr.contains("not a FemtoClaw bundle"),
        "{}",
        out.stderr
    );
}

/// Credentials come from the environment or Docker's config.json, and the
/// secret shows nowhere, not even in trace logs.
#[test]
fn registry_credentials_come_from_the_environment_or_docker_and_never_show() {
    let secret = "s3cret-registry-canary";
    let users = python_script(
        "oras_client.py",
        serde_json::json!({ "op": "htpasswd", "user": "alice", "password": secret })
            .to_string()
            .as_bytes(),
    );
    assert!(users.status.success(), "{users:?}");
    let registry = LocalRegistry::with_users(&String::from_utf8(users.stdout).unwrap());
    let s = example();
    publish(&s, "hello.fcb");
    let to = registry.at("acme/hello:1");
    let logged = |envs: &[(&str, &str)], args: &[&str]| {
        let mut cmd = fc_host();
        cmd.current_dir(s.dir.path())
            .env("FC_STATE_DIR", s.path("state"))
            .env("DOCKER_CONFIG", s.path("no-docker"))
            .args(["--log-level", "trace"])
            .args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        assert!(
            !out.stderr.contains(secret) && !out.stdout.contains(secret),
            "{out:#?}"
        );
        out
    };

    let anonymous = logged(&[], &["bundle", "push", "hello.fcb", &to]);
    assert_eq!(anonymous.code, exit::REGISTRY, "{anonymous:#?}");
    assert!(
        anonymous.stderr.contains("FC_REGISTRY_USERNAME"),
        "{}",
        anonymous.stderr
    );
    let env = [
        ("FC_REGISTRY_USERNAME", "alice"),
        ("FC_REGISTRY_PASSWORD", secret),
    ];
    let pushed = logged(&env, &["bundle", "push", "hello.fcb", &to]);
    assert_eq!(pushed.code, exit::OK, "{pushed:#?}");
    let wrong = [
        ("FC_REGISTRY_USERNAME", "alice"),
        ("FC_REGISTRY_PASSWORD", "wrong"),
    ];
    let refused = logged(&wrong, &["bundle", "pull", &to, "-o", "x.fcb"]);
    assert_eq!(refused.code, exit::REGISTRY, "{refused:#?}");

    // `docker login`'s file: base64 of USER:PASSWORD under the registry's host.
    let auth = base64_of(&format!("alice:{secret}"));
    s.write(
        "docker/config.json",
        &serde_json::json!({ "auths": { registry.host.clone(): { "auth": auth } } }).to_string(),
    );
    let docker = s.path("docker");
    let mut cmd = fc_host();
    cmd.current_dir(s.dir.path())
        .env("FC_STATE_DIR", s.path("state"))
        .env("DOCKER_CONFIG", &docker)
        .args([
            "--log-level",
            "trace",
            "run",
            &to,
            "--policy",
            "bundle-policy.toml",
        ]);
    let out = run(&mut cmd);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert!(!out.stderr.contains(secret) && !out.stderr.contains(&auth));
}

/// Standard base64, as `docker login` writes it (coreutils' `base64`).
fn base64_of(text: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}
