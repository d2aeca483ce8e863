//! Everything outside the grant is refused with a typed error, the run goes
//! on, and no byte from outside the grant reaches any output.

use serde_json::json;

use crate::common::*;

const CANARY: &str = "CANARY-outside-the-grant-7f3a";

fn scratch() -> Scratch {
    let s = Scratch::new();
    s.write("data/a.txt", "inside");
    s.write("outside/secret.txt", CANARY);
    s.mkdir("out");
    std::os::unix::fs::symlink(s.path("outside/secret.txt"), s.path("data/link")).unwrap();
    std::os::unix::fs::symlink("../outside", s.path("data/dirlink")).unwrap();
    s
}

const POLICY: &str = r#"
[capabilities.fs]
component = "builtin:fs"
tools = ["read_file", "write_file"]
mounts = [{ guest = "/data", host = "data", mode = "ro" }, { guest = "/out", host = "out", mode = "rw" }]
"#;

#[test]
fn outside_the_grant_is_denied_and_the_run_continues() {
    let s = scratch();
    s.setup(
        &policy(POLICY),
        calls(&[
            ("fs.read_file", json!({ "path": "/data/a.txt" })),
            (
                "fs.read_file",
                json!({ "path": "/data/../outside/secret.txt" }),
            ),
            ("fs.read_file", json!({ "path": "/etc/passwd" })),
            ("fs.read_file", json!({ "path": "/data/link" })),
            (
                "fs.read_file",
                json!({ "path": "/data/dirlink/secret.txt" }),
            ),
            (
                "fs.write_file",
                json!({ "path": "/data/new.txt", "content": "x" }),
            ),
            (
                "fs.write_file",
                json!({ "path": "/data/a.txt", "content": "overwritten" }),
            ),
            ("fs.list_dir", json!({ "path": "/data" })),
            ("net.get", json!({ "url": "http://127.0.0.1/" })),
            (
                "fs.write_file",
                json!({ "path": "/out/ok.txt", "content": "written" }),
            ),
        ]),
    );
    let out = s.run_echo();
    let t = out.transcript();
    let kinds = kinds(&t);
    assert_eq!(
        kinds,
        [
            "ok",
            "denied",
            "denied",
            "denied",
            "denied",
            "denied",
            "denied",
            "denied",
            "unknown_tool",
            "ok"
        ],
        "{t:#?}"
    );
    assert_eq!(t[0]["ok"], r#"{"content":"inside"}"#);
    // The model is told what was refused, not the rule (that is for the
    // logs and the audit).
    assert_eq!(
        t[7]["message"], "the policy does not allow this call of `fs.list_dir`",
        "{t:#?}"
    );
    let refusals = out.events_named("tool call refused");
    assert!(
        refusals.iter().any(|e| e["tool"] == "fs.list_dir"
            && e["rule"] == "capabilities.fs.tools"
            && e["error"].as_str().unwrap().contains("is not granted by")),
        "{refusals:#?}"
    );
    assert!(
        t[8]["message"]
            .as_str()
            .unwrap()
            .contains("no capability `net`"),
        "{t:#?}"
    );

    assert!(!s.path("data/new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(s.path("data/a.txt")).unwrap(),
        "inside"
    );
    assert_eq!(
        std::fs::read_to_string(s.path("out/ok.txt")).unwrap(),
        "written"
    );
    assert_no_canary(&out, CANARY);
}
