//! Serve nodes sharing tenants' journals in one PostgreSQL database
//! (docs/fleet.md). A node executes a run only while it holds the run's
//! lease: claimed when the run is accepted, resumed or taken over, renewed
//! while it goes on, released when it ends. Every node renews its leases,
//! passes on cancellations asked of another node, and takes over the runs
//! whose leases expired (their node died), all on one timer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use femtoclaw_journal::{JournalError, Lease, RunStatus};
use http::StatusCode;

use crate::Server;
use crate::problem::Problem;
use crate::tenant::Tenant;

/// This node, as a tenant sharing its journal sees it.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name in leases: its host and state root, so that the same
    /// server restarted takes its runs back at once.
    pub name: String,
    /// How long its leases last unless renewed.
    pub lease: Duration,
}

/// Where a run's cancellation waits for the node executing it.
const CANCEL: &str = "cancel/";

/// This server's name in leases.
pub(crate) fn node_name(state: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", state.display())
}

/// How a claim came out.
pub(crate) enum Claim {
    /// This node executes the run now (or the tenant's journal is not
    /// shared: there is no other node).
    Ours,
    /// Another node holds the run's live lease.
    Elsewhere(String),
}

/// Claims `run` for this node, when the tenant's journal is shared.
pub(crate) fn claim(tenant: &Tenant, run: &str) -> Result<Claim, Problem> {
    let Some(node) = &tenant.node else {
        return Ok(Claim::Ours);
    };
    match tenant.journal.lock().claim(run, &node.name, node.lease) {
        Ok(_) => Ok(Claim::Ours),
        Err(JournalError::Leased { owner, .. }) => Ok(Claim::Elsewhere(owner)),
        Err(e) => Err(Problem::internal(format!(
            "the run's lease could not be claimed: {e}"
        ))),
    }
}

/// `409` for a run another node executes.
pub(crate) fn elsewhere(owner: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "running-elsewhere",
        format!("the run is running on the node `{owner}`: ask it, or wait for it to end"),
    )
    .with("node", owner)
}

/// Gives up this node's lease of `run` (it ended, or will never start).
pub(crate) fn release(tenant: &Tenant, run: &str) {
    if tenant.node.is_none() {
        return;
    }
    if let Err(e) = tenant.journal.lock().release(run) {
        tracing::warn!(target: "femtoclaw::serve", tenant = %tenant.id(), run, error = %e, "a run's lease could not be released: it expires on its own");
    }
}

/// The node executing `run`, when another node holds its live lease.
pub(crate) fn executing_elsewhere(tenant: &Tenant, run: &str) -> Option<String> {
    executed_elsewhere(tenant).remove(run)
}

/// Every run another node holds a live lease of, with that node: one read
/// of the leases, for a listing of many runs.
pub(crate) fn executed_elsewhere(tenant: &Tenant) -> HashMap<String, String> {
    let Some(node) = tenant.node.as_ref() else {
        return HashMap::new();
    };
    let Ok(leases) = tenant.journal.lock().all_leases() else {
        return HashMap::new();
    };
    leases
        .into_iter()
        .filter(|l| l.remaining_ms > 0 && l.owner != node.name)
        .map(|l| (l.run, l.owner))
        .collect()
}

/// Asks the node executing `run` to cancel it (it reads the request at its
/// next renewal).
pub(crate) fn ask_cancel(tenant: &Tenant, run: &str) -> Result<(), Problem> {
    tenant
        .journal
        .lock()
        .put_record(&format!("{CANCEL}{run}"), "")
        .map_err(|e| Problem::internal(format!("the cancellation could not be recorded: {e}")))
}

/// Lets the runs this node still executes go at once (the server stops):
/// their leases expire now, so another node takes them over without
/// waiting for them to lapse.
pub(crate) fn let_go(tenant: &Tenant) {
    let mut journal = tenant.journal.lock();
    for run in journal.held() {
        let _ = journal.renew(&run, Duration::ZERO);
    }
}

/// Renews this node's leases, passes on cancellations, and takes over runs
/// of dead nodes, for as long as the server runs.
pub(crate) async fn tend(server: Arc<Server>) {
    let Some(every) = server
        .tenants
        .iter()
        .find_map(|t| t.node.as_ref().map(|n| n.lease / 3))
    else {
        return;
    };
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        if server.draining.load(Ordering::Relaxed) {
            return;
        }
        for tenant in &server.tenants {
            if tenant.node.is_some() {
                renew(tenant);
                cancel_asked(tenant);
                server.take_over_expired(tenant);
            }
        }
    }
}

/// Renews every lease this node holds. A lease another node took (this one
/// stalled past it) cancels the local run, which could write nothing more
/// anyway; a journal that cannot be reached stops the process, so that its
/// runs' leases lapse and other nodes take them over.
fn renew(tenant: &Tenant) {
    let Some(node) = &tenant.node else { return };
    let held = tenant.journal.lock().held();
    for run in held {
        let renewed = tenant.journal.lock().renew(&run, node.lease);
        match renewed {
            Ok(()) => {}
            Err(JournalError::LeaseLost { owner, .. }) => {
                tracing::warn!(target: "femtoclaw::serve", tenant = %tenant.id(), run, owner, "the run was taken over by another node: it stops here");
                if let Some(active) = tenant.lock_active().get(&run) {
                    active.cancel.cancel();
                }
            }
            Err(e) => {
                tracing::error!(target: "femtoclaw::serve", tenant = %tenant.id(), run, error = %e, "a run's lease could not be renewed: stopping, so that other nodes take this node's runs over");
                std::process::exit(1);
            }
        }
    }
}

/// Cancels the local runs another node was asked to cancel.
fn cancel_asked(tenant: &Tenant) {
    let asked = tenant.journal.lock().records_under(CANCEL);
    let Ok(asked) = asked else { return };
    for (key, _) in asked {
        let run = &key[CANCEL.len()..];
        let local = tenant.lock_active().get(run).cloned();
        let running_anywhere = matches!(tenant.journal.lock().run(run), Ok(info) if info.status == RunStatus::Running)
            || matches!(tenant.accepted(run), Ok(Some(a)) if a.ended.is_none());
        if let Some(active) = &local {
            active.cancel.cancel();
        }
        if local.is_some() || !running_anywhere {
            let _ = tenant.journal.lock().remove_record(&key);
        }
    }
}

impl Server {
    /// Claims and resumes (or starts) every run whose lease expired: its
    /// node died or stalled. Of several nodes trying, one wins each run.
    fn take_over_expired(self: &Arc<Self>, tenant: &Arc<Tenant>) {
        let leases = tenant.journal.lock().all_leases();
        let leases: Vec<Lease> = match leases {
            Ok(leases) => leases,
            Err(e) => {
                tracing::warn!(target: "femtoclaw::serve", tenant = %tenant.id(), error = %e, "the leases could not be read");
                return;
            }
        };
        for lease in leases.iter().filter(|l| l.remaining_ms == 0) {
            let run = lease.run.as_str();
            if tenant.lock_active().contains_key(run) {
                continue;
            }
            if let Err(e) = self.take_over(tenant, run, &lease.owner) {
                tracing::warn!(target: "femtoclaw::serve", tenant = %tenant.id(), run, error = %e.detail, "a run could not be taken over");
            }
        }
    }

    fn take_over(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        run: &str,
        from: &str,
    ) -> Result<(), Problem> {
        if let Claim::Elsewhere(_) = claim(tenant, run)? {
            return Ok(());
        }
        let journaled = tenant.journal.lock().run(run);
        match journaled {
            Ok(info) if info.status == RunStatus::Running => {
                // Its node may have died before forgetting its acceptance.
                tenant.forget_accepted(run);
                tracing::info!(target: "femtoclaw::serve", tenant = %tenant.id(), run, from, "taking over a run whose node stopped renewing its lease: resuming it");
                self.queue_resume(tenant, run, None);
                return Ok(());
            }
            Ok(_) => tenant.forget_accepted(run),
            Err(_) => {
                if let Some(accepted) = tenant.accepted(run)?
                    && accepted.ended.is_none()
                {
                    tracing::info!(target: "femtoclaw::serve", tenant = %tenant.id(), run, from, "taking over a run whose node stopped renewing its lease: starting it");
                    self.queue_start(tenant, accepted);
                    return Ok(());
                }
            }
        }
        // Ended, or never acknowledged: nothing to execute.
        release(tenant, run);
        Ok(())
    }
}
