//! One tenant: its journal (runs, agent memory, accepted runs, stored
//! bundles), the memory pool and fuel meter its runs share, and the
//! admission of new runs against its quotas.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use femtoclaw_journal::SharedJournal;
use femtoclaw_runtime::{Cancel, FuelMeter, MemoryPool};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};

use crate::config::TenantConfig;
use crate::problem::Problem;

/// The window of the per-minute quotas.
const MINUTE: Duration = Duration::from_secs(60);

/// A tenant, live.
pub struct Tenant {
    /// Its configuration.
    pub config: TenantConfig,
    /// Its state directory (`STATE/tenants/ID`): any `fc-host` command
    /// reads it with `--state`.
    pub dir: PathBuf,
    /// The journal handle all its runs share (group commit).
    pub journal: SharedJournal,
    /// Linear memory its live component instances share.
    pub pool: MemoryPool,
    /// Fuel its runs have burnt.
    pub fuel: FuelMeter,
    /// Run slots (`concurrent-runs`).
    pub slots: Arc<Semaphore>,
    /// The threads its runs execute on: its own, so that the kernel shares
    /// the CPU between tenants, whatever one tenant's runs do.
    pub executor: tokio::runtime::Handle,
    admission: Mutex<Admission>,
    /// Runs of this process, by id, from acceptance to their end.
    pub active: Mutex<HashMap<String, Arc<Active>>>,
    /// This node, when the tenant's journal is shared with other nodes
    /// (PostgreSQL): its runs are leased run by run.
    pub node: Option<crate::fleet::Node>,
    /// Interrupted runs whose resumption waits for a decision on a `write`
    /// call of unknown outcome, and why.
    pub held: Mutex<HashMap<String, String>>,
    /// Its MCP endpoint (`/mcp`), made at its first request.
    pub mcp: tokio::sync::OnceCell<Arc<femtoclaw_mcp::HttpDoor>>,
}

/// Admission bookkeeping.
#[derive(Default)]
struct Admission {
    /// Runs accepted and waiting for a slot.
    queued: usize,
    /// When each run of the last minute was accepted.
    recent: VecDeque<Instant>,
    /// The fuel meter at points of the last minute (and one before it).
    fuel: VecDeque<(Instant, u64)>,
}

/// A run of this process: how to cancel it, and how far it has got.
pub struct Active {
    /// Cancels it.
    pub cancel: Cancel,
    /// Events appended so far, and whether it has ended.
    pub progress: watch::Sender<Progress>,
    /// Its calls waiting for a person's approval.
    pub approvals: Arc<crate::approvals::Pending>,
}

/// How far a run has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Events in its journal (committed or not).
    pub events: u64,
    /// Whether it has ended (or stopped for a decision).
    pub finished: bool,
}

impl Active {
    pub fn new() -> Arc<Active> {
        Arc::new(Active {
            cancel: Cancel::new(),
            progress: watch::Sender::new(Progress::default()),
            approvals: Arc::default(),
        })
    }
}

/// A run accepted by the API and not yet journaled: what it was asked to
/// do, kept durably in the tenant's journal (the record `queue/ID`) so that
/// an acknowledged run survives a crash before it starts, and any node
/// sharing the journal can start it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    /// The run id.
    pub id: String,
    /// The task.
    pub task: String,
    /// The run's own policy text (checked to be within the tenant's).
    pub policy: Option<String>,
    /// A scripted brain's turns, if the request brought them.
    pub script: Option<serde_json::Value>,
    /// The sha256 of the tenant's stored bundle it runs, if any.
    #[serde(default)]
    pub bundle: Option<String>,
    /// When it was accepted (seconds since the Unix epoch).
    pub accepted: u64,
    /// How it ended without ever starting (cancelled while queued, or
    /// refused at its start before anything was journaled).
    pub ended: Option<Ended>,
}

/// The end of a run that never reached the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ended {
    /// `cancelled` or `failed`.
    pub status: String,
    /// Why.
    pub outcome: String,
}

impl Tenant {
    /// Opens (creating) a tenant's state under `root`.
    pub fn open(
        config: TenantConfig,
        root: &Path,
        postgres: Option<&crate::journal::PostgresJournal>,
        node: &str,
    ) -> Result<Tenant, String> {
        let dir = root.join("tenants").join(&config.id);
        create_private(&dir).map_err(|e| format!("`{}`: {e}", dir.display()))?;
        let mut journal = crate::journal::open(&config.id, &dir, postgres)?;
        move_into_journal(&dir, &mut journal)
            .map_err(|e| format!("tenant `{}`: {e}", config.id))?;
        let node = postgres.map(|pg| crate::fleet::Node {
            name: node.to_owned(),
            lease: pg.lease,
        });
        let quotas = config.quotas;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(quotas.concurrent_runs);
        let executor = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(format!("fc-tenant-{}", config.id))
            .enable_all()
            .build()
            .map_err(|e| format!("tenant `{}`: cannot start its threads: {e}", config.id))?;
        // It lives as long as the process (tenants come with the
        // configuration and go with the process).
        let executor = Box::leak(Box::new(executor)).handle().clone();
        Ok(Tenant {
            dir,
            journal: SharedJournal::new(journal),
            pool: MemoryPool::new(quotas.wasm_memory),
            fuel: FuelMeter::new(),
            slots: Arc::new(Semaphore::new(quotas.concurrent_runs)),
            executor,
            admission: Mutex::default(),
            active: Mutex::default(),
            node,
            held: Mutex::default(),
            mcp: tokio::sync::OnceCell::new(),
            config,
        })
    }

    /// The tenant's id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Takes a queue place for a new run, or says which quota refuses it.
    pub fn admit(&self) -> Result<(), Problem> {
        let quotas = self.config.quotas;
        let journal_bytes = self.journal.lock().stored_bytes().unwrap_or(0);
        if journal_bytes >= quotas.journal_bytes {
            return Err(quota(
                StatusCode::INSUFFICIENT_STORAGE,
                "journal-bytes",
                format!(
                    "the tenant's journal holds {journal_bytes} bytes; its quota `journal-bytes` is {}: the operator must raise it or archive the state directory",
                    quotas.journal_bytes
                ),
            ));
        }
        let now = Instant::now();
        let mut a = self.admission.lock().unwrap_or_else(|p| p.into_inner());
        while a.recent.front().is_some_and(|t| now - *t >= MINUTE) {
            a.recent.pop_front();
        }
        if a.recent.len() >= quotas.runs_per_minute as usize {
            let oldest = a.recent.front().copied().unwrap_or(now);
            let wait = MINUTE.saturating_sub(now - oldest).as_secs() + 1;
            return Err(quota(
                StatusCode::TOO_MANY_REQUESTS,
                "runs-per-minute",
                format!(
                    "{} runs were accepted in the last minute, the quota `runs-per-minute`",
                    quotas.runs_per_minute
                ),
            )
            .retry_after(wait));
        }
        let used = self.fuel.used();
        a.fuel.push_back((now, used));
        while a.fuel.len() > 1 && a.fuel.get(1).is_some_and(|(t, _)| now - *t >= MINUTE) {
            a.fuel.pop_front();
        }
        let burnt = used - a.fuel.front().map_or(used, |(_, u)| *u);
        if burnt >= quotas.fuel_per_minute {
            return Err(quota(
                StatusCode::TOO_MANY_REQUESTS,
                "fuel-per-minute",
                format!(
                    "the tenant's runs burnt {burnt} fuel in the last minute; the quota `fuel-per-minute` is {}",
                    quotas.fuel_per_minute
                ),
            )
            .retry_after(MINUTE.as_secs()));
        }
        if a.queued >= quotas.queued_runs {
            return Err(quota(
                StatusCode::TOO_MANY_REQUESTS,
                "queued-runs",
                format!(
                    "{} runs are waiting for one of the tenant's {} slots, the quota `queued-runs`",
                    a.queued, quotas.concurrent_runs
                ),
            )
            .retry_after(1));
        }
        a.queued += 1;
        a.recent.push_back(now);
        Ok(())
    }

    /// Counts a queued run as queued (a recovered one: not admitted, since
    /// it was acknowledged before the restart).
    pub fn requeue(&self) {
        self.admission
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queued += 1;
    }

    /// A queued run left the queue (it got a slot, or ended).
    pub fn dequeue(&self) {
        let mut a = self.admission.lock().unwrap_or_else(|p| p.into_inner());
        a.queued = a.queued.saturating_sub(1);
    }

    /// Runs waiting for a slot.
    pub fn queued(&self) -> usize {
        self.admission
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queued
    }

    /// Durably records an accepted run (before it is acknowledged).
    pub fn keep_accepted(&self, run: &Accepted) -> Result<(), Problem> {
        let text = serde_json::to_string(run).expect("invariant: Accepted serializes");
        self.journal
            .lock()
            .put_record(&format!("{QUEUE}{}", run.id), &text)
            .map_err(|e| {
                Problem::internal(format!(
                    "the run could not be recorded ({e}); nothing was accepted"
                ))
            })
    }

    /// Forgets an accepted run (it is in the journal now).
    pub fn forget_accepted(&self, id: &str) {
        if let Err(e) = self.journal.lock().remove_record(&format!("{QUEUE}{id}")) {
            tracing::warn!(target: "femtoclaw::serve", tenant = %self.id(), run = id, error = %e, "an accepted run's record could not be removed");
        }
    }

    /// An accepted run not yet in the journal, or how it ended unstarted.
    pub fn accepted(&self, id: &str) -> Result<Option<Accepted>, Problem> {
        let key = format!("{QUEUE}{id}");
        let found = self.accepted_under(&key)?;
        Ok(found.into_iter().find(|run| run.id == id))
    }

    /// Every accepted run not yet in the journal (by any node sharing it).
    pub fn all_accepted(&self) -> Result<Vec<Accepted>, Problem> {
        self.accepted_under(QUEUE)
    }

    fn accepted_under(&self, prefix: &str) -> Result<Vec<Accepted>, Problem> {
        let records = self
            .journal
            .lock()
            .records_under(prefix)
            .map_err(|e| Problem::internal(e.to_string()))?;
        records
            .iter()
            .map(|(key, text)| {
                // A damaged record of an acknowledged run must not be passed over.
                serde_json::from_str(text).map_err(|e| {
                    Problem::internal(format!(
                        "the tenant's journal record `{key}` is damaged ({e}): it holds a run that was acknowledged; repair or remove it"
                    ))
                })
            })
            .collect()
    }

    /// The runs of this process.
    pub fn lock_active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Active>>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Interrupted runs waiting for a decision.
    pub fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tenant's stored bundle `sha256` (`POST /v1/bundles`), from its
    /// journal: every node sharing the journal can run it.
    pub fn bundle(&self, sha256: &str) -> Result<Option<Vec<u8>>, String> {
        let hex = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Ok(None);
        }
        self.journal
            .lock()
            .component(sha256)
            .map_err(|e| e.to_string())
    }

    /// Where an older server kept a run's scripted brain while it might be
    /// resumed (runs now keep their script in the journal).
    pub fn script_file(&self, id: &str) -> PathBuf {
        self.dir.join("scripts").join(format!("{id}.json"))
    }
}

fn quota(status: StatusCode, name: &str, detail: String) -> Problem {
    Problem::new(status, "quota", detail).with("quota", name)
}

/// The records of accepted runs in a tenant's journal.
const QUEUE: &str = "queue/";

/// Moves what an older server kept in the state directory into the
/// journal: accepted runs (`queue/ID.json`) and stored bundles
/// (`bundles/SHA.fcb`). Each file is removed once the journal holds it.
fn move_into_journal(dir: &Path, journal: &mut femtoclaw_journal::Journal) -> Result<(), String> {
    let queue = dir.join("queue");
    if queue.is_dir() {
        for (id, run) in read_queue(&queue)? {
            let text = serde_json::to_string(&run).expect("invariant: Accepted serializes");
            journal
                .put_record(&format!("{QUEUE}{id}"), &text)
                .map_err(|e| e.to_string())?;
            let file = queue.join(format!("{id}.json"));
            std::fs::remove_file(&file).map_err(|e| format!("`{}`: {e}", file.display()))?;
        }
    }
    let bundles = dir.join("bundles");
    if bundles.is_dir() {
        let entries =
            std::fs::read_dir(&bundles).map_err(|e| format!("`{}`: {e}", bundles.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_none_or(|e| e != "fcb") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| format!("`{}`: {e}", path.display()))?;
            let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            journal
                .store_component(&sha256, &bytes)
                .map_err(|e| e.to_string())?;
            std::fs::remove_file(&path).map_err(|e| format!("`{}`: {e}", path.display()))?;
        }
    }
    Ok(())
}

fn read_queue(queue: &Path) -> Result<BTreeMap<String, Accepted>, String> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(queue).map_err(|e| format!("`{}`: {e}", queue.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read(&path).map_err(|e| format!("`{}`: {e}", path.display()))?;
        // A damaged record of an acknowledged run must not be passed over.
        let run: Accepted = serde_json::from_slice(&text).map_err(|e| {
            format!(
                "`{}` is damaged ({e}): it holds a run that was acknowledged; repair or remove it",
                path.display()
            )
        })?;
        out.insert(run.id.clone(), run);
    }
    Ok(out)
}

fn create_private(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
