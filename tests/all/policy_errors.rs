//! Malformed policies fail with a message naming the file and the key, and
//! the usage/policy exit code, both in `policy check` and in `run`.

use crate::common::*;

fn check_fails(body: &str, expect: &[&str]) {
    let s = Scratch::new();
    s.mkdir("data");
    s.write("brain.json", "[]");
    let file = s.write("policy.toml", body);
    for args in [
        vec!["policy", "check", file.to_str().unwrap()],
        vec!["run", "--policy", file.to_str().unwrap()],
    ] {
        let out = run(fc_host().args(&args));
        assert_eq!(out.code, exit::USAGE, "{args:?} {body}: {out:#?}");
        assert!(out.stdout.is_empty(), "{out:#?}");
        assert!(
            out.stderr.contains("policy.toml"),
            "names the file: {}",
            out.stderr
        );
        for e in expect {
            assert!(
                out.stderr.contains(e),
                "{body}\nexpected `{e}` in: {}",
                out.stderr
            );
        }
    }
}

const FS: &str = "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\n";

#[test]
fn unknown_key() {
    check_fails(
        "version = 1\n[limits]\nmax-stepz = 3\n",
        &["unknown field `max-stepz`", "line 3"],
    );
    check_fails(
        &format!("version = 1\n{FS}alow = true\n"),
        &["unknown field `alow`"],
    );
}

#[test]
fn wrong_type() {
    check_fails(
        "version = 1\n[limits]\nmax-steps = \"ten\"\n",
        &["max-steps", "line 3"],
    );
    check_fails(
        &format!("version = 1\n{FS}mounts = \"data\"\n"),
        &["mounts", "line 5"],
    );
}

#[test]
fn missing_mount_directory() {
    check_fails(
        &format!(
            "version = 1\n{FS}mounts = [{{ guest = \"/d\", host = \"nope\", mode = \"ro\" }}]\n"
        ),
        &[
            "line 5",
            "`capabilities.fs.mounts`",
            "mount directory",
            "nope",
            "does not exist",
        ],
    );
}

#[test]
fn unsupported_version() {
    check_fails(
        "version = 2\n",
        &["line 1", "`version`", "unsupported policy version `2`"],
    );
}

#[test]
fn bad_values() {
    check_fails(
        "version = 1\n[limits]\nmax-steps = 0\n",
        &["`limits.max-steps`", "line 3"],
    );
    check_fails(
        "version = 1\n[limits]\nmax-tool-calls = -4\n",
        &["`limits.max-tool-calls`"],
    );
    check_fails(
        &format!(
            "version = 1\n{FS}mounts = [{{ guest = \"/d\", host = \"data\", mode = \"rwx\" }}]\n"
        ),
        &["mode `rwx`"],
    );
    check_fails(
        &format!(
            "version = 1\n{FS}mounts = [{{ guest = \"d/../x\", host = \"data\", mode = \"ro\" }}]\n"
        ),
        &["must be absolute"],
    );
    check_fails(
        "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"*\"]\n",
        &["wildcards are not allowed"],
    );
    check_fails(
        "version = 1\n[capabilities.fs]\ncomponent = \"builtin:nope\"\ntools = []\n",
        &["unknown built-in `nope`"],
    );
    check_fails(
        "version = 1\n[brain]\nkind = \"oracle\"\n",
        &["`brain.kind`", "unknown brain kind `oracle`"],
    );
}

#[test]
fn unsafe_or_conflicting_grants() {
    let http =
        "version = 1\n[capabilities.http]\ncomponent = \"builtin:http\"\ntools = [\"get\"]\n";
    check_fails(
        &format!("{http}net = [\"*\"]\n"),
        &["`capabilities.http.net`", "would allow every host"],
    );
    check_fails(
        &format!("{http}net = [\"https://*\"]\n"),
        &["would allow every host"],
    );
    check_fails(
        &format!("{http}net = [\"ftp://example.com\"]\n"),
        &["scheme `ftp`"],
    );
    check_fails(
        &format!("{http}net = [\"https://example.com/path\"]\n"),
        &["no path"],
    );
    check_fails(
        &format!(
            "version = 1\n{FS}mounts = [{{ guest = \"/d\", host = \"data\", mode = \"ro\" }}, {{ guest = \"/d\", host = \"data\", mode = \"rw\" }}]\n"
        ),
        &["overlaps the mount at `/d`"],
    );
    check_fails(
        "version = 1\n[limits]\nmemory = 0\n",
        &["`limits.memory`", "larger than 0"],
    );
    check_fails("version = 1\n[limits]\nfuel = -5\n", &["`limits.fuel`"]);
    check_fails(
        "version = 1\n[limits]\ncall-timeout = \"0s\"\n",
        &["`limits.call-timeout`"],
    );
    check_fails(
        "version = 1\n[limits]\nmemory = \"1GB\"\n",
        &["unknown size unit `GB`"],
    );
    check_fails(
        &format!("version = 1\n{FS}max-calls = {{ list_dir = 2 }}\n"),
        &["`list_dir` is not in `capabilities.fs.tools`"],
    );
    check_fails(
        &format!("version = 1\n{FS}secrets = {{ T = {{ env = \"A\", file = \"b\" }} }}\n"),
        &["exactly one of"],
    );
}

#[test]
fn a_symlink_as_mount_root_is_refused() {
    let s = Scratch::new();
    s.mkdir("real");
    std::os::unix::fs::symlink(s.path("real"), s.path("link")).unwrap();
    let file = s.write(
        "policy.toml",
        &format!(
            "version = 1\n{FS}mounts = [{{ guest = \"/d\", host = \"link\", mode = \"ro\" }}]\n"
        ),
    );
    let out = run(fc_host().args(["policy", "check"]).arg(&file));
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr.contains("is a symlink: name the real directory"),
        "{}",
        out.stderr
    );
}

#[test]
fn explain_shows_effective_grants_with_defaults() {
    let out = run(fc_host().args(["policy", "explain", "examples/hello/policy.toml"]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    for expect in [
        "max-steps 8",
        "fs.read_file, fs.list_dir",
        "mount /data ->",
        "(ro)",
        "net: none",
        "memory 256 MiB",
    ] {
        assert!(out.stdout.contains(expect), "`{expect}` in {}", out.stdout);
    }
    let out = run(fc_host().args(["policy", "explain", "--json", "examples/hello/policy.toml"]));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["capabilities"]["fs"]["mounts"][0]["mode"], "read-only");
    assert_eq!(v["limits"]["component"]["fuel"], 2_000_000_000u64);
    assert_eq!(v["capabilities"]["fs"]["limits"]["call-timeout"], "30000ms");
}

#[test]
fn not_toml() {
    check_fails("version = 1\n[limits\n", &["line 2"]);
}

#[test]
fn every_shipped_policy_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir("policies").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = run(fc_host().args(["policy", "check"]).arg(&path));
            assert_eq!(out.code, exit::OK, "{}: {out:#?}", path.display());
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "policies/ holds at least strict.toml and dev.toml"
    );
    let out = run(fc_host().args(["policy", "check", "examples/hello/policy.toml"]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
}

#[test]
fn a_writable_mount_over_the_state_directory_is_refused_before_the_run_starts() {
    let s = Scratch::new();
    let state = s.mkdir("state");
    let mount = |mode: &str| {
        s.setup(
            &policy(&format!(
                "{FS}mounts = [{{ guest = \"/all\", host = \".\", mode = \"{mode}\" }}]\n"
            )),
            serde_json::json!([{ "content": "done" }]),
        )
    };
    let file = mount("rw");
    let out = fc(
        &state,
        &["run", "--policy", file.to_str().unwrap(), "--task", "t"],
    );
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    for e in [
        "capabilities.fs.mounts",
        "/all",
        "state directory",
        "read-only",
    ] {
        assert!(out.stderr.contains(e), "expected `{e}` in: {}", out.stderr);
    }
    let runs = fc(&state, &["runs", "--json"]);
    assert_eq!(runs.stdout.trim(), "[]", "nothing started: {runs:#?}");
    // Read-only, the same mount runs (`fc-host compliance` reports it).
    let file = mount("ro");
    let out = fc(
        &state,
        &["run", "--policy", file.to_str().unwrap(), "--task", "t"],
    );
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(out.stdout, "done\n");
}
