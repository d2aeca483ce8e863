//! Reading runs back, verified: every event against the hash chain, the
//! chain against the head committed with it, and a finished run against its
//! end. Damage is an error naming what is missing, never a shorter run.

use std::collections::BTreeSet;

use crate::backend::Snapshot;
use crate::event::{Event, GENESIS, Head, RunInfo, RunStatus};
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
pub(crate) fn head(journal: &Journal, snapshot: &dyn Snapshot, run: &str) -> Result<Option<Head>> {
    match snapshot.head(run)? {
        Some(v) => journal.decode(&v).map(Some),
        None => Ok(None),
    }
}

impl Journal {
    /// A run's record and its events in order, verified.
    pub fn load(&self, id: &str) -> Result<(RunInfo, Vec<Event>)> {
        let snapshot = self.snapshot()?;
        let info = self.record(&*snapshot, id)?;
        let events = self.chain(&*snapshot, id)?;
        let head = head(self, &*snapshot, id)?;
        check_complete(&info, &events, head.as_ref())?;
        Ok((info, events))
    }

    /// A run's events in order, verified as by [`Journal::load`].
    pub fn events(&self, run: &str) -> Result<Vec<Event>> {
        self.load(run).map(|(_, events)| events)
    }

    /// A run's record (not its events: see [`Journal::load`]).
    pub fn run(&self, id: &str) -> Result<RunInfo> {
        self.record(&*self.snapshot()?, id)
    }

    fn record(&self, snapshot: &dyn Snapshot, id: &str) -> Result<RunInfo> {
        let text = snapshot
            .run(id)?
            .ok_or_else(|| JournalError::UnknownRun(id.to_owned()))?;
        self.decode(&text)
    }

    /// Every run, oldest first, each checked cheaply against its head (its
    /// last event and its end), and the run records against the heads and
    /// the run count: a run lost to damage is reported, not left out.
    pub fn runs(&self) -> Result<Listing> {
        let snapshot = self.snapshot()?;
        let mut runs = Vec::new();
        for text in snapshot.runs()? {
            runs.push(self.decode::<RunInfo>(&text)?);
        }
        runs.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
        let mut damage = Vec::new();
        for info in &runs {
            if let Err(e) = self.check_tail(&*snapshot, info) {
                damage.push(e);
            }
        }
        let ids: BTreeSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        for id in snapshot.head_ids()?.unwrap_or_default() {
            if !ids.contains(id.as_str()) {
                damage.push(JournalError::Damaged {
                    detail: "its events are in the journal, but its record is missing".into(),
                    run: id,
                });
            }
        }
        if let Some(count) = snapshot.counter("runs")?
            && count != runs.len() as u64
        {
            damage.push(self.corrupt(&format!(
                "it counts {count} runs, but {} run records are readable",
                runs.len()
            )));
        }
        Ok(Listing { runs, damage })
    }

    /// A stored component's bytes, by sha256 (the caller checks the hash).
    pub fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.snapshot()?.component(sha256)
    }

    /// Whether the journal holds a component (without reading its bytes).
    pub(crate) fn has_component(&self, sha256: &str) -> Result<bool> {
        self.snapshot()?.has_component(sha256)
    }

    /// The events of a run in order, each checked against the chain.
    fn chain(&self, snapshot: &dyn Snapshot, run: &str) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut prev = GENESIS.to_owned();
        for (seq, text) in snapshot.events(run, 0, usize::MAX)? {
            let tampered = |detail: &str| JournalError::Tampered {
                run: run.to_owned(),
                seq,
                detail: detail.to_owned(),
            };
            let event: Event =
                serde_json::from_slice(&text).map_err(|_| tampered("not a valid event"))?;
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
    fn check_tail(&self, snapshot: &dyn Snapshot, info: &RunInfo) -> Result<()> {
        let last =
            match snapshot.last_event(&info.id)? {
                None => None,
                Some(text) => Some(serde_json::from_slice::<Event>(&text).map_err(|_| {
                    JournalError::Damaged {
                        run: info.id.clone(),
                        detail: "its last event is not readable".into(),
                    }
                })?),
            };
        let head = head(self, snapshot, &info.id)?;
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
        let mut events = Vec::new();
        for (_, text) in self.snapshot()?.events(run, from, max)? {
            events.push(self.decode::<Event>(&text)?);
        }
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
