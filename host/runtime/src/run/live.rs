//! A new run: the run record is durable first, then the brain and the
//! capabilities start, then the agent runs.

use std::collections::BTreeMap;
use std::path::Path;

use femtoclaw_bundle::Bundle;
use femtoclaw_journal::{Journal, RunInfo, RunStatus};
use femtoclaw_policy::{BrainSpec, ComponentSource, McpServer, Policy, ProviderBrain};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::execute::Execution;
use super::{BrainChoice, Hooks, RunOutcome, RunPlan, new_run_id};
use crate::agent::{Live, Uncertain};
use crate::bindings::ToolSpec;
use crate::brain::{BrainInstance, probe, provider_key};
use crate::capability::{CapabilityInstance, Shared, Vars, resolve_env};
use crate::gate::Gate;
use crate::guest::Controls;
use crate::record::{Recorder, Sink};
use crate::redact::Redactor;
use crate::remote::Provider;
use crate::{Builtin, ComponentRef, RunError, Runtime};

/// The secrets of a run, read once from the host.
pub(super) struct Secrets {
    /// Each capability's variables, secrets included.
    env: BTreeMap<String, Vars>,
    /// The brain provider's API key.
    key: Option<String>,
    /// Every secret value, for every store and sink.
    pub redact: Redactor,
}

impl Runtime {
    /// Runs an agent under a policy to its end.
    pub async fn run(&self, plan: RunPlan) -> Result<RunOutcome, RunError> {
        let brain = match (plan.brain.clone(), &plan.policy.brain) {
            (Some(choice), _) => choice,
            (None, Some(BrainSpec::Scripted { script })) => BrainChoice::Scripted(script.clone()),
            (None, Some(BrainSpec::Provider(p))) => BrainChoice::Provider(p.clone()),
            (None, None) => {
                return Err(RunError::Config(format!(
                    "no brain: the policy `{}` has no [brain] section and no --brain was given",
                    plan.policy.path.display()
                )));
            }
        };
        check_trust(&plan, &brain)?;
        self.guard_own_dirs(&plan.policy, plan.state.as_deref())?;
        let agent_source = match (&plan.agent, &plan.bundle) {
            (ComponentRef::Builtin(Builtin::Agent), Some(bundle)) => {
                crate::bundled::agent(bundle).unwrap_or(plan.agent.clone())
            }
            (agent, _) => agent.clone(),
        };
        // Check the agent before starting anything else.
        let agent = self.prepare_agent(&agent_source, plan.hooks.compile_scope.as_deref())?;
        let secrets = resolve_secrets(&plan.policy, provider_of(&plan.policy, &brain))?;
        // The task is the operator's, but an agent must never see a secret.
        let task = secrets.redact.apply(&plan.task).into_owned();
        let run_id = plan.run_id.clone().unwrap_or_else(new_run_id);
        // The run is durable before any component starts: a capability's
        // `describe` or the brain's first request may already reach out.
        let mut journal = match sink(&plan.hooks, plan.state.as_deref())? {
            Some(mut journal) => {
                let mut plan_record = json!({
                    "task": task,
                    "brain": brain_json(&brain),
                });
                if let Some(bundle) = &plan.bundle {
                    plan_record["bundle"] = json!({
                        "name": bundle.manifest.name,
                        "version": bundle.manifest.version.to_string(),
                        "sha256": hex::encode(Sha256::digest(bundle.to_bytes())),
                        "source": plan.bundle_source,
                    });
                }
                let info = new_run_info(
                    &run_id,
                    agent.label.clone(),
                    agent.hash.clone(),
                    &plan.policy,
                    plan_record,
                );
                let journal_error =
                    |e: femtoclaw_journal::JournalError| RunError::Journal(e.to_string());
                // Replay needs the agent's bytes, wherever they came from.
                journal
                    .with(|j| {
                        j.keep_component(&agent.hash, &agent.bytes)?;
                        j.create_run(&info)
                    })
                    .map_err(journal_error)?;
                Some(journal)
            }
            None => None,
        };
        tracing::info!(target: "femtoclaw::run", run_id = %run_id, policy = %plan.policy.path.display(), agent = %agent.label, "run started");
        let redact = secrets.redact.clone();
        let controls = plan.hooks.controls();
        let started = self
            .start_live(
                &plan.policy,
                &brain,
                0,
                plan.bundle.as_deref(),
                secrets,
                &controls,
            )
            .await;
        let (live, specs, redact) = match started {
            Ok(started) => started,
            Err(error) => {
                let error = redact.run_error(error);
                if let Some(journal) = &mut journal {
                    record_failed_start(journal, &run_id, &error);
                }
                return Err(error);
            }
        };
        let mut recorder = Recorder::recording(
            run_id,
            journal,
            plan.policy.limits.max_journal,
            redact.clone(),
        )
        .with_hook(plan.hooks.on_event.clone());
        recorder.record("run-start", json!({ "tools": specs }), None)?;
        let on_uncertain = Uncertain::new(&plan.policy, None);
        self.execute(Execution {
            agent,
            policy: plan.policy,
            specs,
            live: Some(live),
            recorder,
            redact,
            task,
            on_uncertain,
            controls,
        })
        .await
    }

    /// Starts the capabilities and the brain.
    pub(super) async fn start_live(
        &self,
        policy: &Policy,
        brain: &BrainChoice,
        start_turn: usize,
        bundle: Option<&Bundle>,
        mut secrets: Secrets,
        controls: &Controls,
    ) -> Result<(Live, Vec<ToolSpec>, Redactor), RunError> {
        if let Some(p) = provider_of(policy, brain) {
            probe(p).await?;
        }
        let redact = secrets.redact.clone();
        let limits = policy.limits;
        let (gate, capabilities) = self
            .start_capabilities(policy, bundle, &mut secrets, controls)
            .await?;
        let shared = Shared {
            max_log_lines: limits.max_log_lines,
            max_body: limits.max_tool_output,
            redact: redact.clone(),
            controls: controls.clone(),
        };
        let brain = BrainInstance::start(
            self,
            brain,
            provider_of(policy, brain),
            secrets.key.take(),
            &limits,
            shared,
            start_turn,
        )
        .await?;
        let specs = gate.specs();
        Ok((
            Live {
                gate,
                capabilities,
                brain: Some(brain),
            },
            specs,
            redact,
        ))
    }

    /// Starts every capability the policy grants, each with its own
    /// variables, and registers the tools they describe with a gate.
    pub(super) async fn start_capabilities(
        &self,
        policy: &Policy,
        bundle: Option<&Bundle>,
        secrets: &mut Secrets,
        controls: &Controls,
    ) -> Result<(Gate, BTreeMap<String, Provider>), RunError> {
        let limits = policy.limits;
        let mut gate = Gate::default();
        let mut capabilities = BTreeMap::new();
        for (name, grant) in &policy.capabilities {
            let vars = secrets.env.remove(name).unwrap_or_default();
            let shared = Shared {
                max_log_lines: limits.max_log_lines,
                max_body: limits.max_tool_output,
                redact: secrets.redact.clone(),
                controls: controls.clone(),
            };
            let (instance, tools) = match &grant.component {
                ComponentSource::Mcp(_) => self.start_remote(name, grant, vars, shared).await?,
                _ => {
                    let (instance, tools) =
                        CapabilityInstance::start(self, name, grant, vars, shared, bundle).await?;
                    (Provider::Wasm(instance), tools)
                }
            };
            gate.register(policy, name, tools)?;
            capabilities.insert(name.clone(), instance);
        }
        Ok((gate, capabilities))
    }
}

/// The journal's record of a run starting now under `policy`: `plan` (what
/// it was asked) gains the policy's path and text and fc-host's version.
pub(super) fn new_run_info(
    id: &str,
    agent: String,
    agent_hash: String,
    policy: &Policy,
    mut plan: serde_json::Value,
) -> RunInfo {
    plan["policy_path"] = json!(policy.path);
    plan["policy_text"] = json!(policy.text);
    plan["fc_host"] = json!(env!("CARGO_PKG_VERSION"));
    RunInfo {
        id: id.to_owned(),
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        status: RunStatus::Running,
        agent,
        agent_hash,
        policy_hash: hex::encode(Sha256::digest(policy.text.as_bytes())),
        plan,
        outcome: None,
    }
}

/// The provider settings a brain reaches its model with, if any.
pub(super) fn provider_of<'a>(
    policy: &'a Policy,
    brain: &'a BrainChoice,
) -> Option<&'a ProviderBrain> {
    match brain {
        BrainChoice::Provider(p) => Some(p),
        BrainChoice::Component(_) => match &policy.brain {
            Some(BrainSpec::Provider(p)) => Some(p),
            _ => None,
        },
        BrainChoice::Scripted(_) | BrainChoice::Script(_) => None,
    }
}

/// Reads every secret of a run once: each store, and every sink, redacts
/// all of them.
pub(super) fn resolve_secrets(
    policy: &Policy,
    provider: Option<&ProviderBrain>,
) -> Result<Secrets, RunError> {
    let mut env = BTreeMap::new();
    let mut values = Vec::new();
    for (name, grant) in &policy.capabilities {
        let (vars, secret_values) = resolve_env(name, grant)?;
        env.insert(name.clone(), vars);
        values.extend(secret_values);
    }
    let key = provider.map(provider_key).transpose()?.flatten();
    if let Some(key) = &key {
        values.push(("BRAIN_API_KEY".to_owned(), key.clone()));
    }
    Ok(Secrets {
        env,
        key,
        redact: Redactor::new(values),
    })
}

/// A run whose components could not start is journaled as failed, with
/// the reason: the audit trail holds refused runs too.
pub(super) fn record_failed_start(journal: &mut Sink, run_id: &str, error: &RunError) {
    let text = error.to_string();
    let data = json!({ "status": RunStatus::Failed, "outcome": text });
    let recorded = journal.with(|j| {
        j.append(run_id, "run-end", data, None)
            .and_then(|_| j.finish_run(run_id, RunStatus::Failed, Some(text)))
    });
    if let Err(e) = recorded {
        tracing::warn!(target: "femtoclaw::run", run_id, error = %e, "the failed start could not be journaled");
    }
}

/// Under `[trust] require-signature`, every component that is not built
/// into fc-host must come from the (verified) bundle.
fn check_trust(plan: &RunPlan, brain: &BrainChoice) -> Result<(), RunError> {
    if plan.policy.trust.require_signature {
        if let ComponentRef::File(path) = &plan.agent {
            return Err(unsigned(path));
        }
        if let BrainChoice::Component(path) = brain {
            return Err(unsigned(path));
        }
    }
    check_capability_trust(&plan.policy, plan.bundle.is_some())
}

fn unsigned(path: &Path) -> RunError {
    RunError::Component {
        component: path.display().to_string(),
        message: "the policy requires signed components (`[trust] require-signature`): run it from a signed bundle".into(),
    }
}

/// Under `[trust] require-signature`, every capability must come from the
/// (verified) bundle; and bundle components need a bundle.
pub(super) fn check_capability_trust(policy: &Policy, has_bundle: bool) -> Result<(), RunError> {
    if policy.trust.require_signature {
        for grant in policy.capabilities.values() {
            if let ComponentSource::File(path) = &grant.component {
                return Err(unsigned(path));
            }
            if let ComponentSource::Mcp(McpServer::Stdio { command, .. }) = &grant.component {
                return Err(RunError::Component {
                    component: command[0].clone(),
                    message: "the policy requires signed components (`[trust] require-signature`), and an unsandboxed stdio MCP server is a host program no bundle signs: remove it, or reach the server over HTTP (`mcp = URL`)".into(),
                });
            }
        }
    }
    if !has_bundle
        && policy
            .capabilities
            .values()
            .any(|g| matches!(g.component, ComponentSource::Bundle(_)))
    {
        return Err(RunError::Config(
            "the policy names bundle components, but no bundle is being run".into(),
        ));
    }
    Ok(())
}

pub(super) fn open_journal(dir: &Path) -> Result<Journal, RunError> {
    Journal::open(dir).map_err(|e| RunError::Journal(e.to_string()))
}

/// Where a run appends: the journal its hooks share, else its own handle on
/// the state directory's journal, else nowhere (not journaled).
pub(super) fn sink(hooks: &Hooks, state: Option<&Path>) -> Result<Option<Sink>, RunError> {
    Ok(match (&hooks.journal, state) {
        (Some(shared), _) => Some(Sink::Shared(shared.clone())),
        (None, Some(dir)) => Some(Sink::Own(Box::new(open_journal(dir)?))),
        (None, None) => None,
    })
}

fn brain_json(brain: &BrainChoice) -> Value {
    match brain {
        BrainChoice::Scripted(path) => json!({ "scripted": path }),
        BrainChoice::Script(text) => json!({ "script": text }),
        BrainChoice::Component(path) => json!({ "component": path }),
        BrainChoice::Provider(p) => json!({ "provider": p }),
    }
}
