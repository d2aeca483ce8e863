//! Rates over time (`rates`, `tool-rates`): calls per minute and bytes per
//! run, of one tool and of a capability's tools together. The book is fed
//! only from what the journal holds (each call's journaled time, the bytes
//! its result event records), live and in replay alike, so a resumed run
//! keeps its counts and a replay decides as the run did.

use std::collections::{BTreeMap, VecDeque};

use femtoclaw_policy::{Policy, Rates};

/// The window of `calls-per-minute`, in milliseconds.
const MINUTE_MS: u64 = 60_000;

/// What one run's calls have used so far.
#[derive(Default)]
pub(crate) struct RateBook {
    /// The journaled times (ms) of the calls of the last minute, in order,
    /// by tool address and by capability (`fs.`).
    calls: BTreeMap<String, VecDeque<u64>>,
    /// Bytes read (results handed back) and written (arguments handed
    /// over), by tool address and by capability.
    read: BTreeMap<String, u64>,
    written: BTreeMap<String, u64>,
    /// Daily counts of a run without a journal, by (day, scope).
    daily: BTreeMap<(u64, String), u64>,
}

/// Milliseconds in a day: `calls-per-day` counts by UTC day.
pub(crate) const DAY_MS: u64 = 86_400_000;

/// A `calls-per-day` that applies to a call: its rule, the scope it is
/// counted under, and its limit.
pub(crate) struct Daily {
    pub rule: String,
    pub scope: String,
    pub limit: u64,
}

/// The `calls-per-day` rates that apply to `tool`.
pub(crate) fn daily(policy: &Policy, tool: &str) -> Vec<Daily> {
    scopes(policy, tool)
        .into_iter()
        .filter_map(|(rule, rates, scope)| {
            rates.calls_per_day.map(|limit| Daily {
                rule: format!("{rule}.calls-per-day"),
                scope,
                limit: u64::from(limit),
            })
        })
        .collect()
}

/// A rate that a call would go over: the rule and what it allows.
pub(crate) struct Over {
    pub rule: String,
    pub message: String,
}

/// The rates that apply to a tool: its own, then its capability's, each
/// with its rule prefix and the key its counters are kept under.
fn scopes<'p>(policy: &'p Policy, tool: &str) -> Vec<(String, &'p Rates, String)> {
    let Some((capability, short)) = tool.split_once('.') else {
        return Vec::new();
    };
    let Some(grant) = policy.capabilities.get(capability) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(rates) = grant.tool_rates.get(short) {
        out.push((
            format!("capabilities.{capability}.tool-rates.{short}"),
            rates,
            tool.to_owned(),
        ));
    }
    if !grant.rates.is_empty() {
        out.push((
            format!("capabilities.{capability}.rates"),
            &grant.rates,
            format!("{capability}."),
        ));
    }
    out
}

/// Whether any rate applies to `tool`.
pub(crate) fn applies(policy: &Policy, tool: &str) -> bool {
    !scopes(policy, tool).is_empty()
}

impl RateBook {
    /// Counts a call that ran at `at` (ms since the Unix epoch, as
    /// journaled), with the bytes it read and wrote; nothing to count for a
    /// tool without rates.
    pub(crate) fn record(&mut self, policy: &Policy, tool: &str, at: u64, read: u64, written: u64) {
        if !applies(policy, tool) {
            return;
        }
        let capability = tool.split_once('.').map_or(tool, |(c, _)| c);
        for key in [tool.to_owned(), format!("{capability}.")] {
            let times = self.calls.entry(key.clone()).or_default();
            while times
                .front()
                .is_some_and(|t| t.saturating_add(MINUTE_MS) <= at)
            {
                times.pop_front();
            }
            times.push_back(at);
            *self.read.entry(key.clone()).or_default() += read;
            *self.written.entry(key).or_default() += written;
        }
    }

    /// Whether a call of `tool` at `at` handing over `written` bytes stays
    /// within its rates (checked before it runs).
    pub(crate) fn before(
        &self,
        policy: &Policy,
        tool: &str,
        at: u64,
        written: u64,
    ) -> Option<Over> {
        for (rule, rates, key) in scopes(policy, tool) {
            if let Some(max) = rates.calls_per_minute {
                // The times are in journal order (a clock set back keeps a
                // later call in the window: counted, never missed).
                let recent = self.calls.get(&key).map_or(0, |times| {
                    times.len() - times.partition_point(|when| when.saturating_add(MINUTE_MS) <= at)
                });
                if recent >= max as usize {
                    return Some(Over {
                        rule: format!("{rule}.calls-per-minute"),
                        message: format!("{recent} calls ran in the last 60 s; at most {max} may"),
                    });
                }
            }
            if let Some(max) = rates.written_per_run {
                let used = self.written.get(&key).copied().unwrap_or(0);
                if used.saturating_add(written) > max {
                    return Some(Over {
                        rule: format!("{rule}.written-per-run"),
                        message: format!(
                            "{used} bytes were handed over in this run and this call hands {written} more; at most {max} may be"
                        ),
                    });
                }
            }
            if let Some(max) = rates.read_per_run {
                let used = self.read.get(&key).copied().unwrap_or(0);
                if used >= max {
                    return Some(Over {
                        rule: format!("{rule}.read-per-run"),
                        message: format!(
                            "{used} bytes were read in this run; at most {max} may be"
                        ),
                    });
                }
            }
        }
        None
    }

    /// For a run without a journal: counts one more use of each scope on
    /// `day`, all or none (what `Journal::take_daily` does for a state
    /// directory); the index of the first scope that had none left.
    pub(crate) fn take_daily(&mut self, day: u64, scopes: &[(String, u64)]) -> Option<usize> {
        let used = |s: &String| self.daily.get(&(day, s.clone())).copied().unwrap_or(0);
        if let Some(full) = scopes.iter().position(|(s, limit)| used(s) >= *limit) {
            return Some(full);
        }
        for (scope, _) in scopes {
            *self.daily.entry((day, scope.clone())).or_default() += 1;
        }
        None
    }

    /// Whether a result of `read` bytes stays within what `tool` may read
    /// (checked after it ran: a result that goes over is withheld).
    pub(crate) fn after(&self, policy: &Policy, tool: &str, read: u64) -> Option<Over> {
        for (rule, rates, key) in scopes(policy, tool) {
            if let Some(max) = rates.read_per_run {
                let used = self.read.get(&key).copied().unwrap_or(0);
                if used.saturating_add(read) > max {
                    return Some(Over {
                        rule: format!("{rule}.read-per-run"),
                        message: format!(
                            "its result of {read} bytes would bring this run's reads to {}; at most {max} may be read",
                            used.saturating_add(read)
                        ),
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let text = "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\", \"list_dir\"]\nrates = { calls-per-minute = 3, read-per-run = 100 }\n[capabilities.fs.tool-rates.read_file]\ncalls-per-minute = 2\nwritten-per-run = 50\n";
        Policy::parse_recorded("/p.toml", text).unwrap()
    }

    #[test]
    fn calls_per_minute_slide_with_journaled_time() {
        let p = policy();
        let mut book = RateBook::default();
        book.record(&p, "fs.read_file", 1_000, 0, 10);
        book.record(&p, "fs.read_file", 2_000, 0, 10);
        let over = book.before(&p, "fs.read_file", 3_000, 10).unwrap();
        assert_eq!(
            over.rule,
            "capabilities.fs.tool-rates.read_file.calls-per-minute"
        );
        // Another tool still has the capability's third call.
        assert!(book.before(&p, "fs.list_dir", 3_000, 0).is_none());
        book.record(&p, "fs.list_dir", 3_000, 0, 0);
        let over = book.before(&p, "fs.list_dir", 4_000, 0).unwrap();
        assert_eq!(over.rule, "capabilities.fs.rates.calls-per-minute");
        // A minute after the first call, it no longer counts.
        assert!(book.before(&p, "fs.read_file", 61_000, 10).is_none());
    }

    #[test]
    fn bytes_per_run_are_checked_before_and_after() {
        let p = policy();
        let mut book = RateBook::default();
        let over = book.before(&p, "fs.read_file", 0, 51).unwrap();
        assert_eq!(
            over.rule,
            "capabilities.fs.tool-rates.read_file.written-per-run"
        );
        assert!(book.after(&p, "fs.list_dir", 100).is_none());
        let over = book.after(&p, "fs.list_dir", 101).unwrap();
        assert_eq!(over.rule, "capabilities.fs.rates.read-per-run");
        book.record(&p, "fs.list_dir", 0, 100, 0);
        let over = book.before(&p, "fs.read_file", 0, 0).unwrap();
        assert_eq!(over.rule, "capabilities.fs.rates.read-per-run");
    }
}
