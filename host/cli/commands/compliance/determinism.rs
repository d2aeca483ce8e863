//! Determinism: the same inputs give the same run, and a recorded run
//! replays to the same answer every time without changing its journal.
//!
//! Two fresh runs of the plan are journaled in a scratch state directory
//! and compared event by event, apart from what must differ (the run id, and
//! the wall-clock `at` of tool calls); then the first is replayed N times.

use std::path::Path;

use femtoclaw_journal::{Event, Journal};
use femtoclaw_policy::BrainSpec;
use femtoclaw_runtime::prelude::*;
use serde_json::Value;

use super::report::{Report, Verdict};

const SECTION: &str = "determinism";

/// What makes one component's execution repeatable, from the engine
/// configuration (`femtoclaw_runtime::engine_config`).
pub const ENGINE: &str = "Cranelift, NaN canonicalisation, deterministic relaxed SIMD, \
     fuel metering, no threads, shared memory or GC; clocks, randomness, brain turns and tool \
     results come from the journal on replay";

/// Runs the checks, journaling into `scratch` (an empty directory).
pub async fn check(
    runtime: &Runtime,
    plan: &RunPlan,
    replays: usize,
    scratch: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    report.notes.push((SECTION, format!("engine: {ENGINE}")));
    let live = live_brain(plan);
    let first = run(runtime, plan, scratch).await;
    let journal = |what: &str| -> anyhow::Result<Vec<Event>> {
        let journal = Journal::open_read_only(scratch)?.ok_or_else(|| {
            anyhow::anyhow!("the scratch journal in `{}` is missing", scratch.display())
        })?;
        Ok(journal.events(what)?)
    };
    let recorded = journal(&first.0)?;
    if recorded.first().is_none_or(|e| e.kind != "run-start") {
        report.add(
            SECTION,
            "the recorded run starts",
            "run",
            Verdict::Fail,
            format!(
                "it failed before its first step ({}): fix that, then check again",
                first.1
            ),
        );
        return Ok(());
    }

    match live {
        Some(brain) => report.add(
            SECTION,
            "two fresh runs give the same events",
            "run",
            Verdict::Skip,
            format!("the brain ({brain}) is a live model, whose two answers may differ; pass `--brain scripted:FILE` to compare runs"),
        ),
        None => {
            let second = run(runtime, plan, scratch).await;
            let (verdict, detail) = match first_difference(
                &normalised(&recorded, &first.0),
                &normalised(&journal(&second.0)?, &second.0),
            ) {
                None if first.1 == second.1 => (
                    Verdict::Pass,
                    format!("{} events, outcome `{}`", recorded.len(), first.1),
                ),
                None => (
                    Verdict::Fail,
                    format!("same events, but outcomes `{}` and `{}`", first.1, second.1),
                ),
                Some(difference) => (Verdict::Fail, difference),
            };
            report.add(SECTION, "two fresh runs give the same events", "run", verdict, detail);
        }
    }

    let mut failed = None;
    for i in 1..=replays {
        let replayed = outcome_text(&runtime.replay(scratch, &first.0, None).await);
        if replayed != first.1 {
            failed = Some(format!(
                "replay {i} of {replays} ended `{replayed}`, the recorded run `{}`",
                first.1
            ));
            break;
        }
    }
    let (verdict, detail) = match failed {
        Some(why) => (Verdict::Fail, why),
        None => (Verdict::Pass, format!("outcome `{}`", first.1)),
    };
    report.add(
        SECTION,
        "replays give the recorded outcome",
        format!("{replays} replays"),
        verdict,
        detail,
    );

    let after = journal(&first.0)?;
    let (verdict, detail) = if after.len() == recorded.len()
        && after.last().map(|e| &e.hash) == recorded.last().map(|e| &e.hash)
    {
        (
            Verdict::Pass,
            format!("{} events, same head hash", after.len()),
        )
    } else {
        (
            Verdict::Fail,
            format!(
                "{} events before the replays, {} after",
                recorded.len(),
                after.len()
            ),
        )
    };
    report.add(
        SECTION,
        "replays leave the journal unchanged",
        "journal",
        verdict,
        detail,
    );
    Ok(())
}

/// Runs the plan once, journaled in `scratch`: its id and outcome.
async fn run(runtime: &Runtime, plan: &RunPlan, scratch: &Path) -> (String, String) {
    let mut plan = plan.clone();
    let id = femtoclaw_runtime::new_run_id();
    plan.run_id = Some(id.clone());
    plan.state = Some(scratch.to_owned());
    let outcome = outcome_text(&runtime.run(plan).await);
    (id, outcome)
}

/// A run's outcome as text: its answer, or why it has none.
fn outcome_text(outcome: &Result<RunOutcome, RunError>) -> String {
    let text = match outcome {
        Ok(RunOutcome { answer: Ok(a), .. }) => format!("answer: {a}"),
        Ok(RunOutcome { answer: Err(e), .. }) => format!("no answer: {e}"),
        Err(e) => format!("error: {e}"),
    };
    super::shorten(&text, 160)
}

/// The brain, if it is a live model rather than a script or a component.
fn live_brain(plan: &RunPlan) -> Option<String> {
    match (&plan.brain, &plan.policy.brain) {
        (Some(BrainChoice::Provider(p)), _) | (None, Some(BrainSpec::Provider(p))) => {
            Some(format!("{:?} at {}", p.protocol, p.base_url))
        }
        (None, None) => Some("local".into()),
        _ => None,
    }
}

/// The events as two runs of the same inputs must share them: the run id
/// replaced, and the wall-clock times of tool calls removed.
fn normalised(events: &[Event], run_id: &str) -> Vec<(String, Value)> {
    fn scrub(value: &mut Value, run_id: &str) {
        match value {
            Value::Object(map) => {
                map.remove("at");
                map.values_mut().for_each(|v| scrub(v, run_id));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, run_id)),
            Value::String(s) if s.contains(run_id) => *s = s.replace(run_id, "RUN"),
            _ => {}
        }
    }
    events
        .iter()
        .map(|e| {
            let mut data = e.data.clone();
            scrub(&mut data, run_id);
            (e.kind.clone(), data)
        })
        .collect()
}

/// Where two normalised event streams first differ, said for a person.
fn first_difference(a: &[(String, Value)], b: &[(String, Value)]) -> Option<String> {
    let shown = |(kind, data): &(String, Value)| super::shorten(&format!("{kind} {data}"), 120);
    for (seq, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            return Some(format!(
                "event {seq} differs: `{}` against `{}`",
                shown(x),
                shown(y)
            ));
        }
    }
    (a.len() != b.len()).then(|| format!("{} events against {}", a.len(), b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_differing_only_in_ids_and_times_are_the_same() {
        let event = |data: Value| Event {
            seq: 0,
            kind: "tool-call".into(),
            data,
            prev: String::new(),
            hash: String::new(),
        };
        let a = [event(
            json!({ "key": "r1:1", "at": 5, "name": "fs.read_file" }),
        )];
        let b = [event(
            json!({ "key": "r2:1", "at": 9, "name": "fs.read_file" }),
        )];
        assert_eq!(
            first_difference(&normalised(&a, "r1"), &normalised(&b, "r2")),
            None
        );
        let c = [event(
            json!({ "key": "r2:1", "at": 9, "name": "fs.list_dir" }),
        )];
        let why = first_difference(&normalised(&a, "r1"), &normalised(&c, "r2")).unwrap();
        assert!(
            why.starts_with("event 0 differs") && why.contains("fs.list_dir"),
            "{why}"
        );
        assert_eq!(
            first_difference(&normalised(&a, "r1"), &[]).unwrap(),
            "1 events against 0"
        );
    }
}
