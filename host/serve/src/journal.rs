//! Where tenants' journals live: each in its tenant's state directory (a
//! redb file, the default), or each in a schema of one PostgreSQL database
//! (`[journal] postgres-url-env`), which several serve nodes can share
//! (docs/fleet.md).

use std::path::Path;
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
    /// How long a node's lease of a run lasts unless renewed (`30s`).
    pub(crate) lease: Option<String>,
}

/// Tenants' journals in PostgreSQL.
#[derive(Clone)]
pub struct PostgresJournal {
    /// The environment variable the URL was read from.
    pub env: String,
    /// How long a node's lease of a run lasts unless renewed: a dead
    /// node's runs are taken over this long after its last renewal.
    pub lease: Duration,
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
        lease: Duration,
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
            lease,
            url,
        })
    }

    /// The schema that holds a tenant's journal.
    pub fn schema(tenant: &str) -> String {
        format!("t_{}", tenant.replace('-', "_"))
    }
}

/// How long a node's lease of a run lasts unless renewed, by default.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// Opens a tenant's journal: in its state directory `dir`, or in its
/// schema of the shared database.
pub(crate) fn open(
    tenant: &str,
    dir: &Path,
    postgres: Option<&PostgresJournal>,
) -> Result<Journal, String> {
    match postgres {
        None => Journal::open(dir),
        Some(pg) => open_postgres(pg, tenant),
    }
    .map_err(|e| format!("tenant `{tenant}`: {e}"))
}

#[cfg(feature = "postgres")]
fn open_postgres(pg: &PostgresJournal, tenant: &str) -> femtoclaw_journal::Result<Journal> {
    Journal::open_postgres(&pg.url, &PostgresJournal::schema(tenant))
}

/// The configuration refuses `[journal]` in a build without PostgreSQL.
#[cfg(not(feature = "postgres"))]
fn open_postgres(_: &PostgresJournal, _: &str) -> femtoclaw_journal::Result<Journal> {
    Err(femtoclaw_journal::JournalError::Storage {
        path: "postgresql".into(),
        detail: "this fc-host was built without PostgreSQL (`--features postgres`)".into(),
    })
}
