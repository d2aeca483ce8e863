//! Monotonic records and daily counts: small values every writer of a
//! journal shares, read and changed in one serialized, durable transaction.

use crate::{Journal, Result};

/// The prefix of daily counts among the records (`daily/DAY/SCOPE`).
const DAILY: &str = "daily/";

impl Journal {
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
