//! A run's life in the server: accepted (durably, before it is
//! acknowledged), queued for one of its tenant's slots, run with its
//! tenant's shared journal, pool and meter, and ended; or, after a crash,
//! recovered: resumed from its journal, or started if it never began.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use femtoclaw_bundle::Bundle;
use femtoclaw_journal::{Event, RunInfo, RunStatus};
use femtoclaw_policy::{OnUncertain, Policy};
use femtoclaw_runtime::{BrainChoice, Hooks, Resume, RunError, RunPlan};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Server;
use crate::problem::Problem;
use crate::tenant::{Accepted, Active, Ended, Progress, Tenant};

/// `POST /v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    /// The task handed to the agent.
    pub task: String,
    /// A policy that narrows the tenant's (TOML text).
    #[serde(default)]
    pub policy: Option<String>,
    /// The brain: the tenant policy's when absent.
    #[serde(default)]
    pub brain: Option<BrainRequest>,
    /// The sha256 of a bundle the tenant stored (`POST /v1/bundles`): its
    /// agent runs, and the policy's `bundle:NAME` capabilities come from it.
    #[serde(default)]
    pub bundle: Option<String>,
}

/// A request's brain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrainRequest {
    /// The built-in scripted brain's turns (what `scripted:FILE` holds).
    pub script: Value,
}

/// What to run.
enum Job {
    /// An accepted run, started from its request.
    Start(Accepted),
    /// An interrupted run, resumed from its journal.
    Resume {
        id: String,
        on_uncertain: Option<OnUncertain>,
    },
}

/// The policy a request's run gets: its own (checked to be within the
/// tenant's), or the tenant's. A request policy inherits what it leaves
/// out from the tenant's: the `[brain]`, `on-refusal`, each key of
/// `[limits]`, `[memory]`, `[trust]` and `[journal]`, and the `approve`
/// entries and `[[rules]]` for the tools it grants; the journal keeps the
/// merged text, so a resume parses the same policy.
pub fn run_policy(tenant: &Tenant, text: Option<&str>) -> Result<Policy, Problem> {
    let ceiling = &tenant.config.policy;
    let Some(text) = text else {
        return Ok(ceiling.clone());
    };
    let invalid = |detail: String| {
        let detail = detail.replace(&ceiling.path.display().to_string(), "(request policy)");
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-policy", detail)
    };
    let merged = inherit(&ceiling.text, text)
        .map_err(|e| invalid(format!("the request's policy is not TOML: {e}")))?;
    // Relative paths resolve as in the tenant's own policy.
    let policy = Policy::parse(&ceiling.path, &merged).map_err(|e| invalid(e.to_string()))?;
    policy.within(ceiling).map_err(|w| {
        Problem::new(StatusCode::FORBIDDEN, "widening", w.to_string()).with("key", w.key.clone())
    })?;
    Ok(policy)
}

/// `request` with what it leaves out taken from `ceiling` (both TOML).
fn inherit(ceiling: &str, request: &str) -> Result<String, toml::de::Error> {
    let ceiling: toml::Table = ceiling.parse()?;
    let mut merged: toml::Table = request.parse()?;
    for key in ["brain", "on-refusal"] {
        if !merged.contains_key(key)
            && let Some(value) = ceiling.get(key)
        {
            merged.insert(key.into(), value.clone());
        }
    }
    // Approvals and rules about tools the request grants.
    let grants = |tool: Option<&str>| {
        let Some((cap, name)) = tool.and_then(|t| t.split_once('.')) else {
            return false;
        };
        merged
            .get("capabilities")
            .and_then(|c| c.get(cap))
            .and_then(|c| c.get("tools"))
            .and_then(|t| t.as_array())
            .is_some_and(|tools| tools.iter().any(|t| t.as_str() == Some(name)))
    };
    let mut inherited = Vec::new();
    for (key, tool_of) in [("approve", None), ("rules", Some("tool"))] {
        if merged.contains_key(key) {
            continue;
        }
        let Some(toml::Value::Array(items)) = ceiling.get(key) else {
            continue;
        };
        let kept: Vec<toml::Value> = items
            .iter()
            .filter(|item| match tool_of {
                None => grants(item.as_str()),
                Some(field) => grants(item.get(field).and_then(|t| t.as_str())),
            })
            .cloned()
            .collect();
        inherited.push((key, kept));
    }
    for (key, kept) in inherited {
        merged.insert(key.into(), toml::Value::Array(kept));
    }
    for section in ["limits", "memory", "trust", "journal"] {
        let Some(toml::Value::Table(base)) = ceiling.get(section) else {
            continue;
        };
        let entry = merged
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(own) = entry {
            for (key, value) in base {
                own.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    Ok(toml::to_string(&merged).expect("invariant: a parsed table serializes"))
}

impl Server {
    /// Accepts a run: checks it, takes a queue place, records it durably,
    /// and starts it in the background. The run is acknowledged only after
    /// this returns.
    pub fn accept(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        request: NewRun,
    ) -> Result<String, Problem> {
        self.refuse_if_draining("runs")?;
        let policy = run_policy(tenant, request.policy.as_deref())?;
        if let Some(sha256) = &request.bundle {
            admit_bundle(tenant, sha256, &policy)?;
        }
        if let Some(brain) = &request.brain
            && !brain.script.is_array()
        {
            return Err(Problem::bad_request(
                "`brain.script` must be an array of turns (what a scripted brain's file holds)",
            ));
        }
        tenant.admit()?;
        let id = match self.new_run(tenant) {
            Ok(id) => id,
            Err(problem) => {
                tenant.dequeue();
                return Err(problem);
            }
        };
        let accepted = Accepted {
            id: id.clone(),
            task: request.task,
            policy: request.policy,
            script: request.brain.map(|b| b.script),
            bundle: request.bundle,
            accepted: now_secs(),
            ended: None,
        };
        if let Err(problem) = tenant.keep_accepted(&accepted) {
            tenant.dequeue();
            crate::fleet::release(tenant, &id);
            return Err(problem);
        }
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.spawn(tenant, Job::Start(accepted));
        Ok(id)
    }

    /// A new run id, unknown to the tenant's journal, leased to this node
    /// when the journal is shared.
    fn new_run(&self, tenant: &Tenant) -> Result<String, Problem> {
        // A run id has 128 random bits: a second draw is never needed in
        // practice, and ten are never all taken.
        for _ in 0..10 {
            let id = femtoclaw_runtime::new_run_id();
            let known = tenant.accepted(&id)?.is_some() || tenant.journal.lock().run(&id).is_ok();
            if !known && let crate::fleet::Claim::Ours = crate::fleet::claim(tenant, &id)? {
                return Ok(id);
            }
        }
        Err(Problem::internal("no unused run id was found in ten draws"))
    }

    /// Resumes an interrupted run (not one of this process's).
    pub fn resume(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        id: &str,
        on_uncertain: Option<OnUncertain>,
    ) -> Result<(), Problem> {
        if tenant.lock_active().contains_key(id) {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "running",
                "the run is running in this server; there is nothing to resume",
            ));
        }
        let info = tenant
            .journal
            .lock()
            .run(id)
            .map_err(|_| Problem::no_run(id))?;
        if info.status != RunStatus::Running {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "ended",
                format!(
                    "the run already ended (`{}`): replay it instead",
                    info.status
                ),
            ));
        }
        if let crate::fleet::Claim::Elsewhere(owner) = crate::fleet::claim(tenant, id)? {
            return Err(crate::fleet::elsewhere(&owner));
        }
        tenant.lock_held().remove(id);
        self.queue_resume(tenant, id, on_uncertain);
        Ok(())
    }

    /// Queues the resumption of a journaled run.
    pub(crate) fn queue_resume(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        id: &str,
        on_uncertain: Option<OnUncertain>,
    ) {
        tenant.requeue();
        self.spawn(
            tenant,
            Job::Resume {
                id: id.to_owned(),
                on_uncertain,
            },
        );
    }

    /// Queues the start of an accepted run.
    pub(crate) fn queue_start(self: &Arc<Self>, tenant: &Arc<Tenant>, run: Accepted) {
        tenant.requeue();
        self.spawn(tenant, Job::Start(run));
    }

    /// Starts every run the last process left: accepted ones that never
    /// started, and journaled ones that were running; with a shared
    /// journal, those no other live node holds.
    pub fn recover(self: &Arc<Self>, tenant: &Arc<Tenant>) -> Result<(), String> {
        let listing = tenant.journal.lock().runs().map_err(|e| e.to_string())?;
        for damage in &listing.damage {
            tracing::error!(target: "femtoclaw::serve", tenant = %tenant.id(), error = %damage, "damaged run in the tenant's journal: it is not resumed");
        }
        let ours = |id: &str| -> Result<bool, String> {
            match crate::fleet::claim(tenant, id).map_err(|p| p.detail)? {
                crate::fleet::Claim::Ours => Ok(true),
                crate::fleet::Claim::Elsewhere(_) => Ok(false),
            }
        };
        let accepted = tenant
            .all_accepted()
            .map_err(|p| format!("tenant `{}`: {}", tenant.id(), p.detail))?;
        for run in accepted {
            if listing.runs.iter().any(|r| r.id == run.id) {
                // It reached the journal before the crash: resumed below.
                tenant.forget_accepted(&run.id);
            } else if run.ended.is_none() && ours(&run.id)? {
                self.queue_start(tenant, run);
            }
        }
        for info in &listing.runs {
            if info.status == RunStatus::Running && info.plan["session"].is_object() {
                // An MCP session's calls came from its client, which is gone.
                tenant.lock_held().insert(
                    info.id.clone(),
                    "an MCP session cut off when the server stopped: its calls up to then are journaled (audit); a session cannot be resumed".into(),
                );
                continue;
            }
            if info.status == RunStatus::Running
                && listing.damage_of(&info.id).is_none()
                && ours(&info.id)?
            {
                self.queue_resume(tenant, &info.id, None);
            }
        }
        Ok(())
    }

    fn spawn(self: &Arc<Self>, tenant: &Arc<Tenant>, job: Job) {
        let id = match &job {
            Job::Start(a) => a.id.clone(),
            Job::Resume { id, .. } => id.clone(),
        };
        let active = Active::new();
        tenant.lock_active().insert(id.clone(), active.clone());
        let (server, tenant) = (self.clone(), tenant.clone());
        self.running.fetch_add(1, Ordering::SeqCst);
        let executor = tenant.executor.clone();
        executor.spawn(async move {
            server.drive(&tenant, &id, &active, job).await;
            active.progress.send_modify(|p| p.finished = true);
            tenant.lock_active().remove(&id);
            if server.running.fetch_sub(1, Ordering::SeqCst) == 1 {
                server.idle.notify_waiters();
            }
        });
    }

    async fn drive(&self, tenant: &Arc<Tenant>, id: &str, active: &Arc<Active>, job: Job) {
        let slot = tenant.slots.clone().acquire_owned().await;
        tenant.dequeue();
        let Ok(_slot) = slot else { return };
        if self.draining.load(Ordering::Relaxed) {
            // Not started: it stays accepted (or resumable) for the next
            // process.
            return;
        }
        let progress = active.progress.clone();
        let hooks = Hooks {
            cancel: active.cancel.clone(),
            memory_pool: Some(tenant.pool.clone()),
            fuel: Some(tenant.fuel.clone()),
            journal: Some(tenant.journal.clone()),
            on_event: Some(Arc::new(move |_run: &str, event: &Event| {
                progress.send_modify(|p| p.events = event.seq + 1);
            })),
            compile_scope: Some(tenant.id().to_owned()),
            approver: Some(Arc::new(crate::approvals::RunApprover(Arc::downgrade(
                &active.approvals,
            )))),
            decide_only: false,
        };
        let result = match job {
            Job::Start(accepted) => {
                if active.cancel.is_cancelled() {
                    end_unstarted(tenant, accepted, "cancelled", "cancelled before it started");
                    return;
                }
                self.start(tenant, accepted, hooks).await
            }
            Job::Resume { id, on_uncertain } => match stored_bundle_of(tenant, &id) {
                Ok(bundle) => {
                    let options = Resume {
                        on_uncertain,
                        bundle,
                        hooks,
                    };
                    self.runtime.resume(&tenant.dir, &id, options).await
                }
                Err(e) => Err(e),
            },
        };
        let still_running =
            matches!(tenant.journal.lock().run(id), Ok(info) if info.status == RunStatus::Running);
        let taken_over = tenant.node.is_some() && tenant.journal.lock().lease(id).is_none();
        if still_running && taken_over {
            // Another node claimed it (this one stalled past its lease):
            // that node executes it now.
            tracing::info!(target: "femtoclaw::serve", tenant = %tenant.id(), run = id, "the run goes on on the node that took it over");
            return;
        }
        if let Err(e) = &result {
            tracing::info!(target: "femtoclaw::serve", tenant = %tenant.id(), run = id, error = %e, "run ended with an error");
            // Still `running` in its journal: its resumption stopped (a
            // `write` of unknown outcome under `on-uncertain = "fail"`, or
            // what it needs is gone). It waits for `POST .../resume` (on
            // this node, which keeps its lease).
            if still_running {
                tenant.lock_held().insert(id.to_owned(), e.to_string());
            }
        }
        if !still_running {
            crate::fleet::release(tenant, id);
        }
        if let Err(e) = std::fs::remove_file(tenant.script_file(id))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(target: "femtoclaw::serve", run = id, error = %e, "a run's script could not be removed");
        }
    }

    async fn start(
        &self,
        tenant: &Arc<Tenant>,
        accepted: Accepted,
        hooks: Hooks,
    ) -> Result<femtoclaw_runtime::RunOutcome, RunError> {
        let id = accepted.id.clone();
        let policy = match run_policy(tenant, accepted.policy.as_deref()) {
            Ok(p) => p,
            Err(problem) => {
                // The tenant's policy changed since the run was accepted.
                end_unstarted(tenant, accepted, "failed", &problem.detail);
                return Err(RunError::Config(problem.detail));
            }
        };
        let bundle = match &accepted.bundle {
            None => None,
            Some(sha256) => match load_bundle(tenant, sha256, &policy) {
                Ok(bundle) => Some(Arc::new(bundle)),
                Err(problem) => {
                    end_unstarted(tenant, accepted, "failed", &problem.detail);
                    return Err(RunError::Config(problem.detail));
                }
            },
        };
        let mut plan = RunPlan::new(policy, accepted.task.clone());
        plan.bundle = bundle;
        plan.bundle_source = accepted
            .bundle
            .as_ref()
            .map(|sha256| format!("the tenant's stored bundle {sha256}"));
        plan.run_id = Some(id.clone());
        plan.state = Some(tenant.dir.clone());
        plan.hooks = hooks;
        if let Some(script) = &accepted.script {
            // The journal keeps the turns with the run: any node resumes it.
            plan.brain = Some(BrainChoice::Script(script.to_string()));
        }
        let result = self.runtime.run(plan).await;
        let journaled = tenant.journal.lock().run(&id).is_ok();
        if journaled {
            tenant.forget_accepted(&id);
        } else {
            let why = match &result {
                Err(e) => e.to_string(),
                Ok(_) => "the run left no record".to_owned(),
            };
            end_unstarted(tenant, accepted, "failed", &why);
        }
        result
    }
}

/// Reads a stored bundle of the tenant and checks its signature under the
/// run's policy (again: the file could have changed since it was stored).
fn load_bundle(tenant: &Tenant, sha256: &str, policy: &Policy) -> Result<Bundle, Problem> {
    let unknown = || {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-bundle",
            format!(
                "the tenant has no bundle `{}`: store it with POST /v1/bundles first",
                femtoclaw_runtime::text::escape(sha256)
            ),
        )
        .with("key", "bundle")
    };
    let bytes = tenant
        .bundle(sha256)
        .map_err(|e| Problem::internal(format!("the tenant's bundles cannot be read: {e}")))?
        .ok_or_else(unknown)?;
    let bundle = Bundle::parse(&bytes).map_err(|e| refused_bundle(&e.to_string()))?;
    femtoclaw_runtime::bundle_signer(&bundle, policy)
        .map_err(|e| refused_bundle(&e.to_string()))?;
    Ok(bundle)
}

/// The stored bundle a journaled run started from, if it ran one (the
/// runtime checks its bytes against the journaled sha256).
fn stored_bundle_of(tenant: &Tenant, id: &str) -> Result<Option<Arc<Bundle>>, RunError> {
    let info = tenant
        .journal
        .lock()
        .run(id)
        .map_err(|e| RunError::Journal(e.to_string()))?;
    let Some(sha256) = info.plan["bundle"]["sha256"].as_str() else {
        return Ok(None);
    };
    let gone = |why: String| {
        RunError::Config(format!(
            "run `{id}` ran the stored bundle {sha256}, which cannot be read ({why}): store it again with POST /v1/bundles, then resume the run"
        ))
    };
    let bytes = tenant
        .bundle(sha256)
        .map_err(gone)?
        .ok_or_else(|| gone("the journal does not hold it".into()))?;
    let bundle = Bundle::parse(&bytes).map_err(|e| gone(e.to_string()))?;
    Ok(Some(Arc::new(bundle)))
}

/// Lets a stored bundle into a run: its signature, and its version against
/// the tenant's rollback record (raised to it).
fn admit_bundle(tenant: &Tenant, sha256: &str, policy: &Policy) -> Result<(), Problem> {
    let bundle = load_bundle(tenant, sha256, policy)?;
    let admission = femtoclaw_runtime::admit_bundle(&bundle, policy, &mut tenant.journal.lock())
        .map_err(|e| refused_bundle(&e.to_string()))?;
    let version = bundle.manifest.version;
    if let Some(highest) = admission.previous
        && version < highest
    {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "downgrade",
            format!(
                "bundle `{}` {version} is older than {highest}, already run from this signer (rollback)",
                bundle.manifest.name
            ),
        ));
    }
    Ok(())
}

/// `422` for a bundle that fails its checks.
pub fn refused_bundle(why: &str) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "bundle-refused",
        format!("the bundle was refused: {why}"),
    )
}

/// Records how an accepted run ended without reaching the journal.
fn end_unstarted(tenant: &Tenant, mut accepted: Accepted, status: &str, why: &str) {
    accepted.ended = Some(Ended {
        status: status.to_owned(),
        outcome: why.to_owned(),
    });
    if let Err(problem) = tenant.keep_accepted(&accepted) {
        tracing::error!(target: "femtoclaw::serve", tenant = %tenant.id(), run = %accepted.id, "{}", problem.detail);
    }
    crate::fleet::release(tenant, &accepted.id);
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// What the API shows of a run; `None` when the tenant has no such run.
pub fn view(tenant: &Tenant, id: &str, with_stats: bool) -> Result<Option<Value>, Problem> {
    let info = match tenant.journal.lock().run(id) {
        Ok(info) => Some(info),
        Err(femtoclaw_journal::JournalError::UnknownRun(_)) => None,
        Err(e) => return Err(Problem::internal(e.to_string())),
    };
    if let Some(info) = info {
        let elsewhere = elsewhere_among(tenant, [&info]);
        let mut view = journaled_view(tenant, &info, &elsewhere);
        if with_stats && info.status != RunStatus::Running {
            let loaded = tenant.journal.lock().load(id);
            match loaded {
                Ok((_, events)) => view["stats"] = stats(&events),
                Err(e) => {
                    view["damage"] = json!(e.to_string());
                }
            }
        }
        return Ok(Some(view));
    }
    let Some(run) = tenant.accepted(id)? else {
        return Ok(None);
    };
    let mut view = accepted_view(&run);
    if run.ended.is_none()
        && !tenant.lock_active().contains_key(id)
        && let Some(node) = crate::fleet::executing_elsewhere(tenant, id)
    {
        view["node"] = json!(node);
    }
    Ok(Some(view))
}

/// Which of `runs` another node executes, from one read of the leases, and
/// only when one of them runs but not on this node.
fn elsewhere_among<'a>(
    tenant: &Tenant,
    runs: impl IntoIterator<Item = &'a RunInfo>,
) -> HashMap<String, String> {
    let active = tenant.lock_active();
    let unsure = (runs.into_iter())
        .any(|run| run.status == RunStatus::Running && !active.contains_key(&run.id));
    drop(active);
    if unsure {
        crate::fleet::executed_elsewhere(tenant)
    } else {
        HashMap::new()
    }
}

fn journaled_view(tenant: &Tenant, info: &RunInfo, elsewhere: &HashMap<String, String>) -> Value {
    let mut view = json!({
        "id": info.id,
        "status": info.status.as_str(),
        "started": info.started,
        "agent": info.agent,
    });
    match (info.status, &info.outcome) {
        (RunStatus::Ok, Some(answer)) => view["answer"] = json!(answer),
        (_, Some(error)) => view["error"] = json!(error),
        _ => {}
    }
    if info.status == RunStatus::Running && !tenant.lock_active().contains_key(&info.id) {
        if let Some(node) = elsewhere.get(&info.id) {
            view["node"] = json!(node);
            return view;
        }
        view["resumable"] = json!(true);
        if let Some(why) = tenant.lock_held().get(&info.id) {
            view["waiting"] = json!(why);
        }
    }
    view
}

fn accepted_view(run: &Accepted) -> Value {
    let mut view = json!({ "id": run.id, "accepted": run.accepted });
    match &run.ended {
        Some(end) => {
            view["status"] = json!(end.status);
            view["error"] = json!(end.outcome);
        }
        None => view["status"] = json!("queued"),
    }
    view
}

/// Every run of the tenant: journaled, then accepted and not yet started.
pub fn list(tenant: &Tenant) -> Result<Value, Problem> {
    let listing = tenant
        .journal
        .lock()
        .runs()
        .map_err(|e| Problem::internal(e.to_string()))?;
    let elsewhere = elsewhere_among(tenant, &listing.runs);
    let mut runs: Vec<Value> = listing
        .runs
        .iter()
        .map(|info| journaled_view(tenant, info, &elsewhere))
        .collect();
    // An accepted run's record goes once its run has ended; until then
    // the journal shows it.
    let accepted = tenant.all_accepted()?;
    runs.extend(
        accepted
            .iter()
            .filter(|run| listing.runs.iter().all(|r| r.id != run.id))
            .map(accepted_view),
    );
    let damage: Vec<String> = listing.damage.iter().map(|e| e.to_string()).collect();
    Ok(json!({ "runs": runs, "damage": damage }))
}

/// A finished run's counters, from its events.
fn stats(events: &[Event]) -> Value {
    let count = |kind: &str| events.iter().filter(|e| e.kind == kind).count();
    let refused = events
        .iter()
        .filter(|e| e.kind == "tool-result" && e.data["refused"] == true)
        .count();
    json!({
        "events": events.len(),
        "steps": count("inference"),
        "tool_calls": count("tool-call"),
        "refused": refused,
    })
}

/// Waits until a run of this process has ended (or stopped for a decision).
pub async fn finished(active: &Active) {
    let mut rx = active.progress.subscribe();
    let _ = rx.wait_for(|p: &Progress| p.finished).await;
}

#[cfg(test)]
mod tests {
    use super::inherit;

    #[test]
    fn a_request_policy_inherits_the_approvals_and_rules_of_the_tools_it_grants() {
        let ceiling = "version = 1\non-refusal = \"stop\"\napprove = [\"fs.write_file\", \"fs.read_file\"]\n[[rules]]\nname = \"public\"\ntool = \"fs.read_file\"\naction = \"allow\"\n[[rules]]\nname = \"w\"\ntool = \"fs.write_file\"\naction = \"deny\"\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\", \"write_file\"]\n";
        let request =
            "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\n";
        let merged: toml::Table = inherit(ceiling, request).unwrap().parse().unwrap();
        assert_eq!(merged["on-refusal"].as_str(), Some("stop"));
        assert_eq!(merged["approve"].as_array().unwrap().len(), 1);
        assert_eq!(merged["approve"][0].as_str(), Some("fs.read_file"));
        let rules = merged["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["name"].as_str(), Some("public"));
        // What the request says itself is kept.
        let own = format!("approve = []\n{request}");
        let merged: toml::Table = inherit(ceiling, &own).unwrap().parse().unwrap();
        assert!(merged["approve"].as_array().unwrap().is_empty());
    }
}
