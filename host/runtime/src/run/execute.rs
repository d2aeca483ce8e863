//! Driving an agent to its end, and journaling how it ended.

use femtoclaw_journal::RunStatus;
use femtoclaw_policy::Policy;
use serde_json::{Value, json};
use tracing::Instrument;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::WasiCtxBuilder;

use super::{AgentError, RunOutcome};
use crate::agent::{AgentHost, HostParts, Live, Uncertain};
use crate::bindings::ToolSpec;
use crate::bindings::agent::exports::femtoclaw::runtime::runner::RunError as AgentRunError;
use crate::bindings::agent::{Agent, AgentPre};
use crate::components::Bytes;
use crate::guest::{Budget, Controls, Failure, GuestState, MAX_RANDOM_SIZE, Setup, guarded};
use crate::net::NetGate;
use crate::record::{Next, Recorder};
use crate::redact::Redactor;
use crate::{ComponentRef, RunError, Runtime};

/// A compiled agent, ready to instantiate.
pub(super) struct PreparedAgent {
    pre: AgentPre<GuestState<AgentHost>>,
    pub label: String,
    pub hash: String,
    pub bytes: Bytes,
}

/// Everything `execute` drives.
pub(super) struct Execution {
    pub agent: PreparedAgent,
    pub policy: Policy,
    pub specs: Vec<ToolSpec>,
    pub live: Option<Live>,
    pub recorder: Recorder,
    pub redact: Redactor,
    pub task: String,
    pub on_uncertain: Uncertain,
    pub controls: Controls,
}

impl Runtime {
    pub(super) fn prepare_agent(
        &self,
        source: &ComponentRef,
        scope: Option<&str>,
    ) -> Result<PreparedAgent, RunError> {
        let loaded = self.load(source, scope)?;
        let pre = self.linked("agent", &loaded.key, || {
            let mut linker = Linker::new(&self.engine);
            let link = |e: wasmtime::Error| RunError::Internal(format!("linking the agent: {e:#}"));
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
            Agent::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(link)?;
            let reject = |e: wasmtime::Error| RunError::Component {
                component: loaded.label.clone(),
                message: format!("does not fit the `agent` world: {e:#}"),
            };
            AgentPre::new(linker.instantiate_pre(&loaded.component).map_err(reject)?)
                .map_err(reject)
        })?;
        Ok(PreparedAgent {
            pre,
            label: loaded.label,
            hash: loaded.hash,
            bytes: loaded.bytes,
        })
    }

    pub(super) async fn execute(&self, run: Execution) -> Result<RunOutcome, RunError> {
        let limits = run.policy.limits;
        let run_span = tracing::info_span!("run", run_id = %run.recorder.run_id, tenant = tracing::field::Empty);
        // The agent's WASI view is empty: no preopens, no environment, no
        // network, stdin closed; its clocks and random source are virtual
        // and seeded, so the same inputs give the same run.
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(crate::VirtualClock::default())
            .monotonic_clock(crate::VirtualClock::default())
            .secure_random(crate::seeded_rng(0))
            .insecure_random(crate::seeded_rng(1))
            .insecure_random_seed(2)
            .max_random_size(MAX_RANDOM_SIZE);
        // The agent's run is one call: its wall budget is the run's.
        let budget = Budget {
            wall: limits.run_timeout,
            ..Budget::from(limits.component)
        };
        let setup = Setup {
            name: "agent".into(),
            wasi,
            budget,
            max_log_lines: limits.max_log_lines,
            net: NetGate::none("agent"),
            redact: run.redact.clone(),
            controls: run.controls.clone(),
        };
        let host = AgentHost::new(HostParts {
            policy: run.policy,
            specs: run.specs,
            live: run.live,
            recorder: run.recorder,
            memory_scope: run.agent.hash.clone(),
            on_uncertain: run.on_uncertain,
            cancel: run.controls.cancel.clone(),
            approver: run.controls.approver.clone(),
            metrics: self.metrics.clone(),
            run_span: run_span.clone(),
        });
        let mut store = GuestState::store(&self.engine, setup, host);
        let pre = run.agent.pre;
        let task = run.task;
        let result = guarded(&mut store, budget, async |s| {
            let agent = pre.instantiate_async(&mut *s).await?;
            agent.femtoclaw_runtime_runner().call_run(s, &task).await
        })
        .instrument(run_span.clone())
        .await;
        let _in_run = run_span.enter();
        let host = &mut store.data_mut().data;
        let stats = host.stats;
        let run_id = host.recorder.run_id.clone();
        // The answer and the agent's error texts are redacted like every
        // other output: the task is, so nothing the agent saw held a secret.
        let text = |t: String| run.redact.apply(&t).into_owned();
        let outcome = match result {
            Ok(Ok(answer)) => Ok(Ok(text(answer))),
            Ok(Err(AgentRunError::Failed(e))) => Ok(Err(AgentError::Failed(text(e)))),
            Ok(Err(AgentRunError::Incomplete(e))) => Ok(Err(AgentError::Incomplete(text(e)))),
            Err(Failure::Limit(m)) => Err(RunError::Limit(format!("the agent stopped: {m}"))),
            Err(Failure::Trap(m)) => Err(RunError::Trap {
                component: "agent".into(),
                message: text(m),
            }),
            Err(Failure::Stop(reason)) => Err(RunError::from(reason)),
        };
        let finished = finish(&mut host.recorder, &outcome);
        let status = match (&outcome, &finished) {
            (_, Err(_)) => "failed",
            (Ok(Ok(_)), _) => "ok",
            (Ok(Err(AgentError::Failed(_))), _) => "agent-error",
            (Ok(Err(AgentError::Incomplete(_))), _) => "incomplete",
            (Err(RunError::Limit(_)), _) => "limit",
            (Err(RunError::Trap { .. }), _) => "trap",
            (Err(RunError::Uncertain(_)), _) => "uncertain",
            (Err(RunError::Cancelled(_)), _) => "cancelled",
            (Err(RunError::Refused(_)), _) => "refused",
            (Err(_), _) => "failed",
        };
        self.metrics
            .runs
            .get_or_create(&crate::metrics::Status { status })
            .inc();
        finished?;
        let answer = outcome?;
        tracing::info!(target: "femtoclaw::run", run_id = %run_id, ok = answer.is_ok(), steps = stats.steps, tool_calls = stats.tool_calls, refused = stats.refused, input_tokens = stats.input_tokens, output_tokens = stats.output_tokens, "run finished");
        Ok(RunOutcome {
            run_id,
            answer,
            stats,
        })
    }
}

/// How a run ended, as the journal records it; `None` for an ending that
/// leaves the run resumable (a `write` of unknown outcome under `fail`).
pub(super) fn ending(
    outcome: &Result<Result<String, AgentError>, RunError>,
) -> Option<(RunStatus, String)> {
    Some(match outcome {
        Ok(Ok(answer)) => (RunStatus::Ok, answer.clone()),
        Ok(Err(AgentError::Failed(error))) => (RunStatus::AgentError, error.clone()),
        Ok(Err(AgentError::Incomplete(why))) => (RunStatus::Incomplete, why.clone()),
        Err(RunError::Uncertain(_)) => return None,
        Err(RunError::Cancelled(why)) => (RunStatus::Cancelled, why.clone()),
        Err(RunError::Limit(m)) => (RunStatus::Limit, m.clone()),
        Err(RunError::Trap { message, .. }) => (RunStatus::Trap, message.clone()),
        Err(RunError::Refused(why)) => (RunStatus::Refused, why.clone()),
        Err(e) => (RunStatus::Failed, e.to_string()),
    })
}

/// Journals the end of a run durably, before anything is printed (in a
/// replay: checks it against the recorded end).
pub(super) fn finish(
    recorder: &mut Recorder,
    outcome: &Result<Result<String, AgentError>, RunError>,
) -> Result<(), RunError> {
    if !recorder.writes() && outcome.is_err() {
        // A replay that failed reports its own failure.
        return Ok(());
    }
    let Some((status, text)) = ending(outcome) else {
        // Durable up to the uncertain call; the run stays resumable.
        return recorder.sync().map_err(RunError::from);
    };
    let data = json!({ "status": status, "outcome": text });
    let same = |d: &Value| d["status"] == data["status"] && d["outcome"] == data["outcome"];
    match recorder.next("run-end", same, || {
        format!("a run that ended `{status}`: {text}")
    })? {
        Next::Replay(_) => {}
        Next::Live => recorder.record("run-end", data.clone(), None)?,
    }
    let run_id = recorder.run_id.clone();
    recorder
        .with_journal(|journal| journal.finish_run(&run_id, status, Some(text)))
        .transpose()
        .map_err(|e| RunError::Journal(e.to_string()))?;
    Ok(())
}
