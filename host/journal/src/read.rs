//! Reading runs back, verified: every event against the hash chain, the
//! chain against the head committed with it, and a finished run against its
//! end. Damage is an error naming what is missing, never a shorter run.

use std::collections::BTreeSet;

use redb::{ReadTransaction, ReadableTable};

use crate::contain::contain;
use crate::event::{Event, GENESIS, Head, RunInfo, RunStatus};
use crate::store::{COMPONENTS, EVENTS, HEADS, META, RUNS, optional};
use crate::{Journal, JournalError, Result};

/// Every run of a journal, and what was found damaged.
#[derive(Debug)]
pub struct Listing {
    /// The runs' records, oldest first.
    pub runs: Vec<RunInfo>,
    /// One [`JournalError::Damaged`] (or other error) per damaged run, and
    /// for events or counts that no run record accounts for.
    pub damage: Vec<JournalError>,
}

impl Listing {
    /// The damage found for one run, if any.
    pub fn damage_of(&self, run: &str) -> Option<&JournalError> {
        self.damage
            .iter()
            .find(|e| matches!(e, JournalError::Damaged { run: r, .. } if r == run))
    }
}

/// The committed head of a run (`None` for a run written by an fc-host that
/// kept no heads).
pub(crate) fn head(journal: &Journal, txn: &ReadTransaction, run: &str) -> Result<Option<Head>> {
    let Some(table) = optional(journal, txn, HEADS)? else {
        return Ok(None);
    };
    match table.get(run.as_bytes()).map_err(|e| journal.storage(e))? {
        Some(v) => journal.decode(v.value()).map(Some),
        None => Ok(None),
    }
}

impl Journal {
    /// A run's record and its events in order, verified.
    pub fn load(&self, id: &str) -> Result<(RunInfo, Vec<Event>)> {
        let path = self.path.clone();
        contain(&path, || {
            let txn = self.begin_read()?;
            let info = self.record(&txn, id)?;
            let events = self.chain(&txn, id)?;
            let head = head(self, &txn, id)?;
            check_complete(&info, &events, head.as_ref())?;
            Ok((info, events))
        })
    }

    /// A run's events in order, verified as by [`Journal::load`].
    pub fn events(&self, run: &str) -> Result<Vec<Event>> {
        self.load(run).map(|(_, events)| events)
    }

    /// A run's record (not its events: see [`Journal::load`]).
    pub fn run(&self, id: &str) -> Result<RunInfo> {
        let path = self.path.clone();
        contain(&path, || self.record(&self.begin_read()?, id))
    }

    fn record(&self, txn: &ReadTransaction, id: &str) -> Result<RunInfo> {
        let table = txn.open_table(RUNS).map_err(|e| self.storage(e))?;
        let text = table
            .get(id.as_bytes())
            .map_err(|e| self.storage(e))?
            .ok_or_else(|| JournalError::UnknownRun(id.to_owned()))?;
        self.decode(text.value())
    }

    /// Every run, oldest first, each checked cheaply against its head (its
    /// last event and its end), and the run records against the heads and
    /// the run count: a run lost to damage is reported, not left out.
    pub fn runs(&self) -> Result<Listing> {
        let path = self.path.clone();
        contain(&path, || {
            let txn = self.begin_read()?;
            let table = txn.open_table(RUNS).map_err(|e| self.storage(e))?;
            let mut runs = Vec::new();
            for entry in table.iter().map_err(|e| self.storage(e))? {
                let (_, text) = entry.map_err(|e| self.storage(e))?;
                runs.push(self.decode::<RunInfo>(text.value())?);
            }
            runs.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
            let mut damage = Vec::new();
            for info in &runs {
                if let Err(e) = self.check_tail(&txn, info) {
                    damage.push(e);
                }
            }
            let ids: BTreeSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
            if let Some(heads) = optional(self, &txn, HEADS)? {
                for entry in heads.iter().map_err(|e| self.storage(e))? {
                    let (key, _) = entry.map_err(|e| self.storage(e))?;
                    let id = String::from_utf8_lossy(key.value()).into_owned();
                    if !ids.contains(id.as_str()) {
                        damage.push(JournalError::Damaged {
                            detail: "its events are in the journal, but its record is missing"
                                .into(),
                            run: id,
                        });
                    }
                }
            }
            if let Some(count) = self.counter(&txn, b"runs")?
                && count != runs.len() as u64
            {
                damage.push(self.corrupt(&format!(
                    "it counts {count} runs, but {} run records are readable",
                    runs.len()
                )));
            }
            Ok(Listing { runs, damage })
        })
    }

    /// A stored component's bytes, by sha256 (the caller checks the hash).
    pub fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path.clone();
        contain(&path, || {
            let txn = self.begin_read()?;
            let Some(table) = optional(self, &txn, COMPONENTS)? else {
                return Ok(None);
            };
            Ok(table
                .get(sha256.as_bytes())
                .map_err(|e| self.storage(e))?
                .map(|v| v.value().to_vec()))
        })
    }

    /// Whether the journal holds a component (without reading its bytes).
    pub(crate) fn has_component(&self, sha256: &str) -> Result<bool> {
        let path = self.path.clone();
        contain(&path, || {
            let txn = self.begin_read()?;
            let Some(table) = optional(self, &txn, COMPONENTS)? else {
                return Ok(false);
            };
            Ok(table
                .get(sha256.as_bytes())
                .map_err(|e| self.storage(e))?
                .is_some())
        })
    }

    pub(crate) fn counter(&self, txn: &ReadTransaction, key: &[u8]) -> Result<Option<u64>> {
        let Some(meta) = optional(self, txn, META)? else {
            return Ok(None);
        };
        match meta.get(key).map_err(|e| self.storage(e))? {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v.value())
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| self.corrupt("a journal counter is not a number")),
        }
    }

    /// The events of a run in order, each checked against the chain.
    fn chain(&self, txn: &ReadTransaction, run: &str) -> Result<Vec<Event>> {
        let table = txn.open_table(EVENTS).map_err(|e| self.storage(e))?;
        let mut events = Vec::new();
        let mut prev = GENESIS.to_owned();
        let range = (run.as_bytes(), 0)..=(run.as_bytes(), u64::MAX);
        for entry in table.range(range).map_err(|e| self.storage(e))? {
            let (key, text) = entry.map_err(|e| self.storage(e))?;
            let seq = key.value().1;
            let tampered = |detail: &str| JournalError::Tampered {
                run: run.to_owned(),
                seq,
                detail: detail.to_owned(),
            };
            let event: Event =
                serde_json::from_slice(text.value()).map_err(|_| tampered("not a valid event"))?;
            if event.seq != seq || seq != events.len() as u64 {
                return Err(tampered("out of sequence"));
            }
            if event.prev != prev {
                return Err(tampered("its link to the previous event is wrong"));
            }
            if Event::digest(event.seq, &event.kind, &event.data, &event.prev) != event.hash {
                return Err(tampered("its content does not match its hash"));
            }
            prev = event.hash.clone();
            events.push(event);
        }
        Ok(events)
    }

    /// The cheap check of `runs`: the last stored event is the committed
    /// head, and a finished run ends with its end.
    fn check_tail(&self, txn: &ReadTransaction, info: &RunInfo) -> Result<()> {
        let table = txn.open_table(EVENTS).map_err(|e| self.storage(e))?;
        let range = (info.id.as_bytes(), 0)..=(info.id.as_bytes(), u64::MAX);
        let last = match table.range(range).map_err(|e| self.storage(e))?.next_back() {
            None => None,
            Some(entry) => {
                let (_, text) = entry.map_err(|e| self.storage(e))?;
                let event: Event =
                    serde_json::from_slice(text.value()).map_err(|_| JournalError::Damaged {
                        run: info.id.clone(),
                        detail: "its last event is not readable".into(),
                    })?;
                Some(event)
            }
        };
        let head = head(self, txn, &info.id)?;
        check_end(info, last.as_ref(), head.as_ref())
    }
}

/// A run's readable events add up to its committed head, and it ends (or
/// not) as its record says.
fn check_complete(info: &RunInfo, events: &[Event], head: Option<&Head>) -> Result<()> {
    if let Some(head) = head
        && events.len() as u64 != head.events
    {
        return Err(JournalError::Damaged {
            run: info.id.clone(),
            detail: format!(
                "{} events were committed, but only {} are readable (event {} is missing)",
                head.events,
                events.len(),
                events.len()
            ),
        });
    }
    check_end(info, events.last(), head)
}

fn check_end(info: &RunInfo, last: Option<&Event>, head: Option<&Head>) -> Result<()> {
    let damaged = |detail: String| {
        Err(JournalError::Damaged {
            run: info.id.clone(),
            detail,
        })
    };
    if let Some(head) = head {
        let (count, hash) = last.map_or((0, GENESIS), |e| (e.seq + 1, e.hash.as_str()));
        if count != head.events || hash != head.hash {
            return damaged(format!(
                "{} events were committed, but the chain readable ends after {count} (events from {} on are missing or changed)",
                head.events,
                count.min(head.events)
            ));
        }
    }
    let ended = last.is_some_and(|e| e.kind == "run-end");
    match (info.status, ended) {
        (RunStatus::Running, true) => {
            damaged("its journal holds its end, but its record says it is still running".into())
        }
        (RunStatus::Running, false) => Ok(()),
        (status, false) => damaged(format!(
            "its record says it ended `{status}`, but its `run-end` event is missing"
        )),
        (status, true) => {
            let recorded = last.map(|e| &e.data["status"]);
            if recorded.and_then(|s| s.as_str()) != Some(status.as_str()) {
                return damaged(format!(
                    "its record says it ended `{status}`, but its `run-end` event says {}",
                    recorded.map_or("nothing".into(), |s| s.to_string())
                ));
            }
            Ok(())
        }
    }
}

impl Journal {
    /// Up to `max` of a run's events from sequence number `from` on, as
    /// appended through this handle (buffered ones included) or committed:
    /// what a live view of the run shows. Unlike [`Journal::load`] it does
    /// not verify the chain; read the run with `load` to check it.
    pub fn events_from(&self, run: &str, from: u64, max: usize) -> Result<Vec<Event>> {
        let path = self.path.clone();
        let mut events = contain(&path, || {
            let txn = self.begin_read()?;
            let table = txn.open_table(EVENTS).map_err(|e| self.storage(e))?;
            let range = (run.as_bytes(), from)..=(run.as_bytes(), u64::MAX);
            let mut events = Vec::new();
            for entry in table.range(range).map_err(|e| self.storage(e))? {
                if events.len() == max {
                    break;
                }
                let (_, text) = entry.map_err(|e| self.storage(e))?;
                events.push(self.decode::<Event>(text.value())?);
            }
            Ok(events)
        })?;
        let next = events.last().map_or(from, |e| e.seq + 1);
        for p in self
            .pending
            .iter()
            .filter(|p| p.run == run && p.seq >= next)
        {
            if events.len() == max {
                break;
            }
            events.push(self.decode::<Event>(p.text.as_bytes())?);
        }
        Ok(events)
    }
}
