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
