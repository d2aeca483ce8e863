//! Records: small values every writer of a journal shares (monotonic
//! signer versions, daily counts, a server's queue of accepted runs), each
//! change one serialized, durable transaction.

use crate::{Journal, Result};

/// The prefix of daily counts among the records (`daily/DAY/SCOPE`).
const DAILY: &str = "daily/";

impl Journal {
    /// Stores `value` under `key`, durably, replacing what was there.
    pub fn put_record(&mut self, key: &str, value: &str) -> Result<()> {
        self.write(|backend| backend.update_records(&mut |records| records.put(key, value)))
    }

    /// Removes the record `key`, durably (nothing when there is none).
    pub fn remove_record(&mut self, key: &str) -> Result<()> {
        self.write(|backend| backend.update_records(&mut |records| records.remove(key)))
    }

    /// The records whose keys start with `prefix`, in key order, as
    /// committed.
    pub fn records_under(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let records = self.snapshot()?.records_under(prefix)?;
        records
            .into_iter()
            .map(|(key, value)| match String::from_utf8(value) {
                Ok(value) => Ok((key, value)),
                Err(_) => Err(self.corrupt(&format!("the record `{key}` is not UTF-8"))),
            })
            .collect()
    }

    /// A monotonic record: stores `value` under `key` unless the stored value
    /// is not lower (`greater(new, old)` says whether `new` is higher), in
    /// one durable transaction. Returns the value stored before.
    pub fn raise_record(
        &mut self,
        key: &str,
        value: &str,
        greater: impl Fn(&str, &str) -> bool,
    ) -> Result<Option<String>> {
        let mut previous = None;
        let mut undecodable = false;
        self.write(|backend| {
            backend.update_records(&mut |records| {
                match records.get(key)?.map(String::from_utf8) {
                    Some(Err(_)) => undecodable = true,
                    Some(Ok(old)) => {
                        if greater(value, &old) {
                            records.put(key, value)?;
                        }
                        previous = Some(old);
                    }
                    None => records.put(key, value)?,
                }
                Ok(())
            })
        })?;
        if undecodable {
            return Err(self.corrupt(&format!("the record `{key}` is not UTF-8")));
        }
        Ok(previous)
    }

    /// Counts one more use of each of `scopes` (a name, and the most uses
    /// it may have) on UTC day `day` (days since the Unix epoch, of a
    /// journaled time), all or none, in one durable transaction: every run
    /// of this journal (a server's tenant) shares the counts. Returns the
    /// index of the first scope that had no use left (nothing was counted),
    /// or `None` once all were counted. Counts of earlier days are dropped.
    pub fn take_daily(&mut self, day: u64, scopes: &[(String, u64)]) -> Result<Option<usize>> {
        let mut full = None;
        let mut undecodable = None;
        self.write(|backend| {
            backend.update_records(&mut |records| {
                full = None;
                let today = format!("{DAILY}{day}/");
                records.remove_prefix_except(DAILY, &today)?;
                let mut counts = Vec::with_capacity(scopes.len());
                for (i, (scope, limit)) in scopes.iter().enumerate() {
                    let key = format!("{today}{scope}");
                    let used = match records.get(&key)? {
                        None => 0,
                        Some(v) => match std::str::from_utf8(&v)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                        {
                            Some(n) => n,
                            None => {
                                undecodable = Some(key);
                                return Ok(());
                            }
                        },
                    };
                    if used >= *limit {
                        full = Some(i);
                        return Ok(());
                    }
                    counts.push((key, used + 1));
                }
                for (key, count) in counts {
                    records.put(&key, &count.to_string())?;
                }
                Ok(())
            })
        })?;
        if let Some(key) = undecodable {
            return Err(self.corrupt(&format!("the daily count `{key}` is not a number")));
        }
        Ok(full)
    }
}
