//! Where tenants' journals live: each in its tenant's state directory (a
//! redb file, the default), or each in a schema of one PostgreSQL database
//! (`[journal] postgres-url-env`), which several serve nodes can share
//! (docs/fleet.md).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use femtoclaw_journal::Journal;
use serde::Deserialize;

/// `[journal]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawJournal {
    /// The environment variable that holds the database URL (it carries a
    /// password, so it never goes into the file).
    postgres_url_env: String,
}

/// Tenants' journals in PostgreSQL.
#[derive(Clone)]
pub struct PostgresJournal {
    /// The environment variable the URL was read from.
    pub env: String,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    url: String,
}

impl std::fmt::Debug for PostgresJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries a password.
        f.debug_struct("PostgresJournal")
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// Longest tenant id whose schema name (`t_` and the id, `-` as `_`) fits
/// PostgreSQL's 63-byte identifiers.
const LONGEST_ID: usize = 61;

impl PostgresJournal {
    /// Checks `[journal]`: the variable is set, the build has PostgreSQL,
    /// and every tenant id makes a schema name. `Err((key, message))`.
    pub(crate) fn from_raw(
        raw: RawJournal,
        tenant_ids: &[&str],
    ) -> Result<PostgresJournal, (&'static str, String)> {
        let key = "journal.postgres-url-env";
        if !cfg!(feature = "postgres") {
            return Err((
                key,
                "this fc-host was built without PostgreSQL: build it with `--features postgres` (docs/fleet.md), or remove `[journal]` to keep each tenant's journal in its state directory".into(),
            ));
        }
        let url = std::env::var(&raw.postgres_url_env).map_err(|_| {
            (
                key,
                format!(
                    "the environment variable `{}` is not set: set it to the database URL, postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
                    raw.postgres_url_env
                ),
            )
        })?;
        if let Some(id) = tenant_ids.iter().find(|id| id.len() > LONGEST_ID) {
            return Err((
                "tenants",
                format!(
                    "with `[journal]` in PostgreSQL a tenant id has at most {LONGEST_ID} characters (it names the tenant's schema); `{id}` has {}",
                    id.len()
                ),
            ));
        }
        Ok(PostgresJournal {
            env: raw.postgres_url_env,
            url,
        })
    }

    /// The schema that holds a tenant's journal.
    pub fn schema(tenant: &str) -> String {
        format!("t_{}", tenant.replace('-', "_"))
    }
}

/// What a server leases in each tenant journal it serves from PostgreSQL:
/// not a run (`~` is in no run id), the whole journal. Until serve nodes
/// share tenants run by run, one server serves a tenant's journal; a
/// second is refused at start instead of resuming the same runs.
const SERVER_LEASE: &str = "~server";
/// How long a server's lease lasts unless renewed.
const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often a server renews it.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(10);

/// Opens a tenant's journal: in its state directory `dir`, or in its
/// schema, leased to this server (`node`).
pub(crate) fn open(
    tenant: &str,
    dir: &Path,
    postgres: Option<&PostgresJournal>,
    node: &str,
) -> Result<Journal, String> {
    match postgres {
        None => Journal::open(dir).map_err(|e| format!("tenant `{tenant}`: {e}")),
        Some(pg) => open_leased(tenant, pg, node),
    }
}

#[cfg(feature = "postgres")]
fn open_leased(tenant: &str, pg: &PostgresJournal, node: &str) -> Result<Journal, String> {
    let mut journal = Journal::open_postgres(&pg.url, &PostgresJournal::schema(tenant))
        .map_err(|e| format!("tenant `{tenant}`: {e}"))?;
    match journal.claim(SERVER_LEASE, node, LEASE_TTL) {
        Ok(_) => Ok(journal),
        Err(femtoclaw_journal::JournalError::Leased {
            owner,
            remaining_ms,
            ..
        }) => Err(format!(
            "tenant `{tenant}`: its journal in PostgreSQL is served by `{owner}` (its lease runs {remaining_ms} ms more unless renewed): one server per database until serve nodes share tenants (docs/fleet.md); stop that server, or wait for its lease to expire"
        )),
        Err(e) => Err(format!("tenant `{tenant}`: {e}")),
    }
}

/// The configuration refuses `[journal]` in a build without PostgreSQL.
#[cfg(not(feature = "postgres"))]
fn open_leased(tenant: &str, _: &PostgresJournal, _: &str) -> Result<Journal, String> {
    Err(format!(
        "tenant `{tenant}`: this fc-host was built without PostgreSQL (`--features postgres`)"
    ))
}

/// This server's name in leases: its host and state root, so that the same
/// server restarted takes its tenants back at once.
pub(crate) fn node(state: &Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", state.display())
}

/// Renews this server's lease of every tenant journal it serves from
/// PostgreSQL, for as long as the server runs. A lease lost (this server
/// stalled past it and another took the tenant) or not renewable stops the
/// process: serving on would run the tenant's runs twice.
pub(crate) async fn renew(tenants: Vec<Arc<crate::tenant::Tenant>>) {
    let mut every = tokio::time::interval(RENEW_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        for tenant in &tenants {
            if let Err(e) = tenant.journal.lock().renew(SERVER_LEASE, LEASE_TTL) {
                tracing::error!(target: "femtoclaw::serve", tenant = %tenant.id(), error = %e, "the server's lease of the tenant's journal could not be renewed: stopping, so that no run executes twice");
                std::process::exit(1);
            }
        }
    }
}
