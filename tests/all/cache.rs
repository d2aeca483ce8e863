//! The compile cache: compile once, then load; a tampered or planted entry
//! is never executed.

use crate::common::*;

fn hello(state: &std::path::Path) -> Output {
    run(fc_host().env("FC_STATE_DIR", state).args([
        "--log-format",
        "json",
        "--log-level",
        "femtoclaw=debug",
        "run",
        "--policy",
        "examples/hello/policy.toml",
    ]))
}

fn count(out: &Output, message: &str) -> usize {
    out.events_named(message).len()
}

#[test]
fn components_compile_once_and_tampered_entries_are_recompiled() {
    let state = fresh_dir();
    let first = hello(&state);
    assert_eq!(first.code, exit::OK, "{first:#?}");
    assert_eq!(
        count(&first, "component compiled"),
        3,
        "agent, brain and fs"
    );
    let second = hello(&state);
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(
        (
            count(&second, "component compiled"),
            count(&second, "component loaded from the compile cache")
        ),
        (0, 3)
    );

    let cache = state.join("cache");
    let mut entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 3);
    // Flip one byte of an artifact (the length and name stay valid) and
    // replace another with garbage.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&entries[0], &bytes).unwrap();
    std::fs::write(&entries[1], b"\x7fELF not an artifact").unwrap();
    let third = hello(&state);
    assert_eq!(third.code, exit::OK, "{third:#?}");
    assert_eq!(third.stdout, first.stdout);
    assert_eq!(
        count(
            &third,
            "cache entry failed its integrity check: removed, compiling again"
        ),
        2,
        "{}",
        third.stderr
    );
    assert_eq!(count(&third, "component compiled"), 2);
    let fourth = hello(&state);
    assert_eq!(
        count(&fourth, "component loaded from the compile cache"),
        3,
        "the recompiled entries are valid again"
    );
}

#[test]
fn compile_precompiles_the_builtins() {
    let state = fresh_dir();
    let out = run(fc_host().env("FC_STATE_DIR", &state).arg("compile"));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(out.stdout.lines().count(), 4, "{}", out.stdout);
    assert!(out.stdout.contains("builtin:agent") && out.stdout.contains("builtin:http"));
    let run = hello(&state);
    assert_eq!(
        count(&run, "component compiled"),
        0,
        "a run after `compile` compiles nothing"
    );
}

#[test]
fn replay_loads_the_recorded_agent_from_the_compile_cache() {
    let state = fresh_dir();
    assert_eq!(hello(&state).code, exit::OK);
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
        (
            count(&replay, "component compiled"),
            count(&replay, "component loaded from the compile cache")
        ),
        (0, 1),
        "only the agent runs in a replay, and it was compiled by the run"
    );
}
