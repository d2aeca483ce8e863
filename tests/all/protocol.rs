//! Malformed or schema-violating arguments are rejected before execution:
//! the capability never runs (a write tool on a read-write mount leaves no
//! file behind, and the gate logs no `allow` for the call).

use serde_json::json;

use crate::common::*;

#[test]
fn malformed_arguments_never_reach_the_capability() {
    let s = Scratch::new();
    s.mkdir("out");
    s.setup(
        &policy(
            r#"
[capabilities.fs]
component = "builtin:fs"
tools = ["write_file"]
mounts = [{ guest = "/out", host = "out", mode = "rw" }]
"#,
        ),
        calls(&[
            ("fs.write_file", json!("write /out/a.txt please")),
            (
                "fs.write_file",
                json!(r#"{"path":"/out/b.txt","path":"/out/c.txt","content":"x"}"#),
            ),
            (
                "fs.write_file",
                json!(r#"{"path":"/out/d.txt","content":"x"} {"x":1}"#),
            ),
            ("fs.write_file", json!({ "path": "/out/e.txt" })),
            (
                "fs.write_file",
                json!({ "path": "/out/f.txt", "content": 42 }),
            ),
            (
                "fs.write_file",
                json!({ "path": "/out/g.txt", "content": "x", "mode": "0777" }),
            ),
            (
                "fs.write_file",
                json!(format!("{}{}", "[".repeat(100), "]".repeat(100))),
            ),
            (
                "fs.write_file",
                json!({ "path": "/out/ok.txt", "content": "x" }),
            ),
        ]),
    );
    let out = s.run_echo();
    let t = out.transcript();
    for (i, entry) in t[..7].iter().enumerate() {
        assert_eq!(entry["error"], "invalid_arguments", "call {i}: {entry:#?}");
    }
    let messages: Vec<&str> = t.iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(messages[0].contains("not strict JSON"), "{messages:#?}");
    assert!(
        messages[1].contains("duplicate key `path`"),
        "{messages:#?}"
    );
    assert!(messages[2].contains("trailing data"), "{messages:#?}");
    assert!(
        messages[3].contains("\"content\" is a required property"),
        "{messages:#?}"
    );
    assert!(messages[4].contains("/content"), "{messages:#?}");
    assert!(messages[5].contains("mode"), "{messages:#?}");
    assert!(messages[6].contains("nesting"), "{messages:#?}");
    assert!(t[7]["ok"].is_string(), "the valid call runs: {t:#?}");

    let files: Vec<String> = std::fs::read_dir(s.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["ok.txt"], "only the valid call touched the disk");
    let allowed = out.events_named("tool call allowed");
    assert_eq!(
        allowed.len(),
        1,
        "only the valid call passed the gate: {allowed:#?}"
    );
    let refused = out.events_named("tool call refused");
    assert_eq!(refused.len(), 7);
    assert!(
        refused
            .iter()
            .all(|e| e["rule"].as_str().unwrap().starts_with("protocol.")),
        "{refused:#?}"
    );
}
