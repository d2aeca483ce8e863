//! The compile cache: compile once, then load; a tampered or planted entry
//! is never executed.

use crate::common::*;

/// The hello example with the built-in agent, or with the same agent's
/// component file (which, unlike a built-in, goes through the compile cache).
fn hello(state: &std::path::Path, agent_file: bool) -> Output {
    let mut cmd = fc_host();
    cmd.env("FC_STATE_DIR", state).args([
        "--log-format",
        "json",
        "--log-level",
        "femtoclaw=debug",
        "run",
        "--policy",
        "examples/hello/policy.toml",
    ]);
    if agent_file {
        cmd.arg(artifacts::AGENT_DEFAULT);
    }
    run(&mut cmd)
}

fn count(out: &Output, message: &str) -> usize {
    out.events_named(message).len()
}

const COMPILED: &str = "component compiled";
const FROM_CACHE: &str = "component loaded from the compile cache";
const IN_PLACE: &str = "component run in place, precompiled into fc-host";

fn entries(state: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(state.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    entries.sort();
    entries
}

#[test]
fn builtins_run_precompiled_without_touching_the_cache() {
    let state = fresh_dir();
    let out = hello(&state, false);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(
        (
            count(&out, COMPILED),
            count(&out, FROM_CACHE),
            count(&out, IN_PLACE)
        ),
        (0, 0, 3),
        "agent, brain and fs are built in: {}",
        out.stderr
    );
    assert!(entries(&state).is_empty());
}

#[test]
fn components_compile_once_and_tampered_entries_are_recompiled() {
    let state = fresh_dir();
    let first = hello(&state, true);
    assert_eq!(first.code, exit::OK, "{first:#?}");
    assert_eq!(
        (count(&first, COMPILED), count(&first, IN_PLACE)),
        (1, 2),
        "the agent's file; the built-in brain and fs"
    );
    let second = hello(&state, true);
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(
        (count(&second, COMPILED), count(&second, FROM_CACHE)),
        (0, 1)
    );

    let entries = entries(&state);
    assert_eq!(entries.len(), 1);
    // Flip one byte of the artifact (its length and name stay valid), then
    // replace it with garbage: each time it is refused and compiled again.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&entries[0], &bytes).unwrap();
    let flipped = hello(&state, true);
    std::fs::write(&entries[0], b"\x7fELF not an artifact").unwrap();
    let garbage = hello(&state, true);
    for tampered in [flipped, garbage] {
        assert_eq!(tampered.code, exit::OK, "{tampered:#?}");
        assert_eq!(tampered.stdout, first.stdout);
        assert_eq!(
            count(
                &tampered,
                "cache entry failed its integrity check: removed, compiling again"
            ),
            1,
            "{}",
            tampered.stderr
        );
        assert_eq!(count(&tampered, COMPILED), 1);
    }
    let last = hello(&state, true);
    assert_eq!(
        count(&last, FROM_CACHE),
        1,
        "the recompiled entry is valid again"
    );
}

#[test]
fn compile_precompiles_into_the_cache() {
    let state = fresh_dir();
    let out = run(fc_host().env("FC_STATE_DIR", &state).arg("compile"));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(out.stdout.lines().count(), 4, "{}", out.stdout);
    assert!(out.stdout.contains("builtin:agent") && out.stdout.contains("builtin:http"));
    let out = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .args(["compile", artifacts::AGENT_DEFAULT]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(entries(&state).len(), 1, "built-ins need no entry");
    let run = hello(&state, true);
    assert_eq!(
        count(&run, COMPILED),
        0,
        "a run after `compile` compiles nothing"
    );
}

#[test]
fn replay_runs_the_recorded_agent_without_compiling_it() {
    // The agent file holds the built-in agent's bytes: the replay runs
    // fc-host's own precompiled copy (the hash is what names a component).
    let state = fresh_dir();
    assert_eq!(hello(&state, true).code, exit::OK);
    let id = first_run_id(&state);
    let replay = fc(
        &state,
        &[
            "--log-format",
            "json",
            "--log-level",
            "femtoclaw=debug",
            "replay",
            &id,
        ],
    );
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
    assert_eq!(
        (count(&replay, COMPILED), count(&replay, IN_PLACE)),
        (0, 1),
        "only the agent runs in a replay, and it needs no compile"
    );
}
