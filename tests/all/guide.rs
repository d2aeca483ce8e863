//! docs/writing-agents.md followed as written from an empty folder: a Rust
//! agent built with its commands, signed, and run by the design card's line
//! `fc-host run agent.wasm --policy strict.toml` under the shipped Strict
//! policy, with the local brain (a provider on loopback, found through
//! `OLLAMA_HOST` as Ollama's clients find it). Then what a signature must
//! refuse.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::common::*;
use crate::mock_provider::{MockProvider, openai_turn};

/// The guide's code blocks: its `sh` blocks in order, and its `rust` one.
fn guide() -> (Vec<String>, String) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/writing-agents.md"
    ))
    .unwrap();
    let blocks = |fence: &str| -> Vec<String> {
        text.match_indices(fence)
            .map(|(i, _)| {
                let start = i + fence.len();
                text[start..start + text[start..].find("```").unwrap()].to_owned()
            })
            .collect()
    };
    let rust = blocks("```rust\n");
    assert_eq!(rust.len(), 1, "the guide has one rust block");
    (blocks("```sh\n"), rust[0].clone())
}

/// Runs a guide's shell block in `dir` with fc-host on the PATH; returns
/// what it printed.
fn sh(dir: &Path, block: &str, env: &[(&str, &str)]) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_fc-host")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    run(Command::new("bash")
        .args(["-euo", "pipefail", "-c", block.trim()])
        .current_dir(dir)
        .env("PATH", path)
        .envs(env.iter().copied()))
}

#[test]
fn the_agent_guide_runs_by_the_design_cards_line_under_the_shipped_strict_policy() {
    let (sh_blocks, code) = guide();
    let [setup, build] = &sh_blocks[..] else {
        panic!("the guide has two sh blocks: {sh_blocks:#?}")
    };
    let empty = fresh_dir();
    let out = sh(&empty, setup, &[]);
    assert_eq!(out.code, 0, "the guide's setup failed: {out:#?}");
    let project = empty.join("myagent");
    std::fs::write(project.join("src/lib.rs"), code).unwrap();
    // Builds share one target directory across test runs (the guide's
    // paths are kept: `target/` is a link to it).
    let shared: PathBuf = [env!("CARGO_MANIFEST_DIR"), "target", "guide-agent"]
        .iter()
        .collect();
    std::fs::create_dir_all(&shared).unwrap();
    std::os::unix::fs::symlink(&shared, project.join("target")).unwrap();

    let list = json!({ "role": "assistant", "content": null, "tool_calls": [
        { "id": "call_1", "type": "function", "function": { "name": "fs__list_dir", "arguments": "{\"path\":\"/workspace\"}" } }
    ] });
    let answer = json!({ "role": "assistant", "content": "a Rust agent and its policy" });
    let provider = MockProvider::start(vec![
        (200, "", openai_turn(list, (3, 2))),
        (200, "", openai_turn(answer, (5, 2))),
    ]);
    let ollama_host = format!("127.0.0.1:{}", provider.port);
    let state = fresh_dir();
    let out = sh(
        &project,
        build,
        &[
            ("OLLAMA_HOST", &ollama_host),
            ("FC_STATE_DIR", state.to_str().unwrap()),
        ],
    );
    assert_eq!(
        out.code,
        exit::OK,
        "the guide's build, sign and run failed: {out:#?}"
    );
    assert_eq!(
        out.stdout.lines().last(),
        Some("a Rust agent and its policy"),
        "{out:#?}"
    );
    // The shipped file is the preset the guide prints.
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/strict.toml"))
            .unwrap();
    let written = std::fs::read_to_string(project.join("strict.toml")).unwrap();
    assert_eq!(
        written,
        shipped.replace("keys = []", r#"keys = ["publisher.pub"]"#),
        "policies/strict.toml is `fc-host policy show Strict`"
    );
    // The model asked for the folder's listing through the read-only mount
    // of the policy's directory, and saw it.
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    let listing = requests[1].body["messages"].to_string();
    assert!(
        listing.contains("agent.wasm.sig") && listing.contains("Cargo.toml"),
        "{listing}"
    );
    assert_eq!(
        requests[0].header("authorization"),
        None,
        "the local brain has no key"
    );

    // What the signature refuses, each before anything runs (exit 10).
    let card = |dir: &Path| {
        run(fc_host()
            .current_dir(dir)
            .env("FC_STATE_DIR", &state)
            .env("OLLAMA_HOST", "127.0.0.1:1")
            .args(["run", "agent.wasm", "--policy", "strict.toml"]))
    };
    let refused = |dir: &Path, why: &str| {
        let out = card(dir);
        assert_eq!(out.code, exit::SIGNATURE, "{why}: {out:#?}");
        assert!(out.stderr.contains(why), "{why}: {}", out.stderr);
        assert!(
            !out.stderr.contains("run started"),
            "nothing ran: {}",
            out.stderr
        );
    };
    let copy = || {
        let dir = fresh_dir();
        for f in [
            "agent.wasm",
            "agent.wasm.sig",
            "strict.toml",
            "publisher.pub",
        ] {
            std::fs::copy(project.join(f), dir.join(f)).unwrap();
        }
        dir
    };
    // A component changed after it was signed.
    let changed = copy();
    let mut bytes = std::fs::read(changed.join("agent.wasm")).unwrap();
    bytes.push(0);
    std::fs::write(changed.join("agent.wasm"), bytes).unwrap();
    refused(&changed, "changed after it was signed");
    // No signature.
    let unsigned = copy();
    std::fs::remove_file(unsigned.join("agent.wasm.sig")).unwrap();
    refused(&unsigned, "agent.wasm.sig` does not exist");
    // Signed by a key the policy does not list.
    let stranger = copy();
    let out = fc(
        &state,
        &[
            "keygen",
            "--out",
            stranger.join("stranger").to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, exit::OK, "{out:#?}");
    std::fs::remove_file(stranger.join("agent.wasm.sig")).unwrap();
    let sign = fc(
        &state,
        &[
            "sign",
            stranger.join("agent.wasm").to_str().unwrap(),
            "--key",
            stranger.join("stranger.key").to_str().unwrap(),
        ],
    );
    assert_eq!(sign.code, exit::OK, "{sign:#?}");
    refused(&stranger, "no signature is by a trusted key");
    // A signature byte flipped.
    let forged = copy();
    let sig = std::fs::read_to_string(forged.join("agent.wasm.sig")).unwrap();
    let at = sig.find("\"signature\": \"").unwrap() + 14;
    let flipped = if &sig[at..at + 1] == "0" { "1" } else { "0" };
    std::fs::write(
        forged.join("agent.wasm.sig"),
        format!("{}{flipped}{}", &sig[..at], &sig[at + 1..]),
    )
    .unwrap();
    refused(&forged, "does not verify");
    // Not a signature file at all.
    let garbage = copy();
    std::fs::write(garbage.join("agent.wasm.sig"), "not a signature").unwrap();
    refused(&garbage, "invalid signature file");
}
