//! Components that are not components, or not of the right world, are
//! refused with a clear message and their own exit code.

use crate::common::*;

fn refused(agent: &str) -> Output {
    let s = Scratch::new();
    s.setup(&policy(""), serde_json::json!([{ "content": "done" }]));
    let out = s.run_with(Some(agent));
    assert_eq!(out.code, exit::COMPONENT, "{out:#?}");
    assert!(out.stdout.is_empty());
    out
}

#[test]
fn garbage_is_not_a_component() {
    let s = Scratch::new();
    let path = s.write("garbage.wasm", "this is not wasm at all");
    let out = refused(path.to_str().unwrap());
    assert!(
        out.stderr.contains("not a WebAssembly file"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("garbage.wasm"), "{}", out.stderr);
}

#[test]
fn a_core_module_is_not_a_component() {
    let s = Scratch::new();
    let path = s.path("core.wasm");
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let out = refused(path.to_str().unwrap());
    assert!(
        out.stderr
            .contains("core WebAssembly module, not a component"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_component_of_another_world_is_refused() {
    let out = refused(artifacts::CAP_FS);
    assert!(
        out.stderr.contains("does not fit the `agent` world"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_agent_file_is_a_usage_error() {
    let s = Scratch::new();
    s.setup(&policy(""), serde_json::json!([{ "content": "done" }]));
    let out = s.run_with(Some("/nonexistent/agent.wasm"));
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr.contains(
            "cannot read component `/nonexistent/agent.wasm`: No such file or directory\""
        ),
        "named once, without Rust's error shapes: {}",
        out.stderr
    );
}

#[test]
fn a_capability_of_another_world_is_refused() {
    let s = Scratch::new();
    s.setup(
        &policy(&format!(
            "[capabilities.x]\ncomponent = {:?}\ntools = [\"run\"]\n",
            artifacts::AGENT_DEFAULT
        )),
        serde_json::json!([{ "content": "done" }]),
    );
    let out = s.run_with(None);
    assert_eq!(out.code, exit::COMPONENT, "{out:#?}");
    assert!(
        out.stderr.contains("does not fit the `capability` world"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_truncated_component_is_refused() {
    let s = Scratch::new();
    let bytes = std::fs::read(artifacts::AGENT_DEFAULT).unwrap();
    let path = s.path("truncated.wasm");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let out = refused(path.to_str().unwrap());
    assert!(
        out.stderr.contains("not a valid WebAssembly component"),
        "{}",
        out.stderr
    );
}

/// A capability whose `describe()` breaks the rules of a description is a
/// refused component (exit 5) naming the tool and the rule: the same check
/// in `run` and in `policy check --components`.
#[test]
fn a_description_that_breaks_the_rules_refuses_the_component() {
    let s = Scratch::new();
    s.setup(
        &policy(&format!(
            "[capabilities.h]\ncomponent = {:?}\ntools = [\"echo\"]\nenv = [\"HOSTILE_DESCRIBE\"]\n",
            artifacts::CAP_HOSTILE
        )),
        serde_json::json!([{ "content": "done" }]),
    );
    for (mode, expected) in [
        ("duplicate", "describes the tool `echo` twice"),
        (
            "bad-name",
            "describes a tool named `read\\nfile`, which a tool address cannot carry",
        ),
        ("remote-ref", "tool `spin`: invalid input schema"),
        ("bad-schema", "tool `spin`: invalid input schema"),
    ] {
        let run_out = run(fc_host()
            .env("HOSTILE_DESCRIBE", mode)
            .args(["run", "--policy"])
            .arg(s.path("policy.toml")));
        let check = run(fc_host()
            .env("HOSTILE_DESCRIBE", mode)
            .args(["policy", "check", "--components"])
            .arg(s.path("policy.toml")));
        for out in [&run_out, &check] {
            assert_eq!(out.code, exit::COMPONENT, "{mode}: {out:#?}");
            assert!(out.stderr.contains(expected), "{mode}: {}", out.stderr);
            assert!(
                out.stderr.contains(artifacts::CAP_HOSTILE),
                "names the component: {}",
                out.stderr
            );
            let errors = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("fc-host: error:"));
            assert_eq!(errors.count(), 1, "{}", out.stderr);
        }
    }
}
