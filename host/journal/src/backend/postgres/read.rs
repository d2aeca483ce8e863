//! Reading a PostgreSQL journal: one `REPEATABLE READ` transaction per
//! snapshot, so a run, its events and its head agree.

use std::cell::RefCell;
use std::sync::MutexGuard;

use postgres::types::{FromSql, ToSql};
use postgres::{Client, ToStatement};

use super::{Postgres, blocking};
use crate::Result;
use crate::backend::Snapshot;

/// A read-only `REPEATABLE READ` transaction, rolled back when dropped.
pub(super) struct Read<'a> {
    pub(super) client: RefCell<MutexGuard<'a, Option<Client>>>,
    pub(super) store: &'a Postgres,
}

impl Drop for Read<'_> {
    fn drop(&mut self) {
        // A failure leaves the connection broken; the next use reports it.
        if let Some(client) = self.client.get_mut().as_mut() {
            let _ = blocking(|| client.batch_execute("ROLLBACK"));
        }
    }
}

impl Read<'_> {
    /// A query's rows: `sql` is a statement prepared for every connection
    /// (see `Hot`), or SQL text for the rare ones.
    fn rows(
        &self,
        sql: &(impl ToStatement + Sync + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        let mut client = self.client.borrow_mut();
        let client = client.as_mut().expect("invariant: connected until dropped");
        blocking(|| client.query(sql, params)).map_err(|e| self.store.read_error(&e))
    }

    /// The first column of each row.
    fn column<T: for<'r> FromSql<'r>>(
        &self,
        sql: &(impl ToStatement + Sync + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>> {
        self.rows(sql, params)?
            .iter()
            .map(|r| r.try_get(0).map_err(|e| self.store.read_error(&e)))
            .collect()
    }

    fn one(
        &self,
        sql: &(impl ToStatement + Sync + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.column(sql, params)?.into_iter().next())
    }
}

impl Snapshot for Read<'_> {
    fn run(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.one(&self.store.hot.run, &[&id])
    }

    fn runs(&self) -> Result<Vec<Vec<u8>>> {
        self.column("SELECT record FROM runs", &[])
    }

    fn head(&self, run: &str) -> Result<Option<Vec<u8>>> {
        self.one(&self.store.hot.head, &[&run])
    }

    fn head_ids(&self) -> Result<Option<Vec<String>>> {
        self.column("SELECT run FROM heads", &[]).map(Some)
    }

    fn events(&self, run: &str, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.rows(&self.store.hot.events, &[&run, &from, &max])?
            .iter()
            .map(|r| {
                let seq: i64 = r.try_get(0).map_err(|e| self.store.read_error(&e))?;
                let event = r.try_get(1).map_err(|e| self.store.read_error(&e))?;
                Ok((seq.max(0) as u64, event))
            })
            .collect()
    }

    fn last_event(&self, run: &str) -> Result<Option<Vec<u8>>> {
        self.one(
            "SELECT event FROM events WHERE run = $1 ORDER BY seq DESC LIMIT 1",
            &[&run],
        )
    }

    fn counter(&self, key: &str) -> Result<Option<u64>> {
        let values: Vec<i64> = self.column("SELECT value FROM meta WHERE key = $1", &[&key])?;
        Ok(values.first().map(|v| (*v).max(0) as u64))
    }

    fn memory(&self, scope: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.one(
            "SELECT value FROM memory WHERE scope = $1 AND key = $2",
            &[&scope, &key],
        )
    }

    fn memory_keys(&self, scope: &str, prefix: &str) -> Result<Vec<Vec<u8>>> {
        let keys: Vec<String> = self.column(
            "SELECT key FROM memory WHERE scope = $1 AND starts_with(key, $2) ORDER BY key",
            &[&scope, &prefix],
        )?;
        Ok(keys.into_iter().map(String::into_bytes).collect())
    }

    fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.one("SELECT bytes FROM components WHERE sha256 = $1", &[&sha256])
    }

    fn has_component(&self, sha256: &str) -> Result<bool> {
        let found: Vec<i32> =
            self.column("SELECT 1 FROM components WHERE sha256 = $1", &[&sha256])?;
        Ok(!found.is_empty())
    }

    fn records_under(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = self.rows(
            "SELECT key, value FROM records WHERE starts_with(key, $1) ORDER BY key",
            &[&prefix],
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, postgres::Error>>()
            .map_err(|e| self.store.read_error(&e))
    }

    fn leases(&self) -> Result<Vec<crate::Lease>> {
        let rows = self.rows(
            "SELECT run, owner, greatest(0, extract(epoch FROM expires - clock_timestamp()) * 1000)::bigint
             FROM leases WHERE owner <> '' ORDER BY run",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(crate::Lease {
                    run: r.try_get(0)?,
                    owner: r.try_get(1)?,
                    remaining_ms: r.try_get::<_, i64>(2)?.max(0) as u64,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(|e| self.store.read_error(&e))
    }
}
