//! The run's journal as the agent host sees it: every nondeterministic input
//! the agent receives is appended as an event, and in replay (or the replayed
//! part of a resume) each input is taken back from the journal after
//! checking that the agent asked for exactly the same thing.
//!
//! Everything recorded passes the run's redactor first: the journal never
//! holds a secret value, whatever a component put where.

use std::collections::VecDeque;

use femtoclaw_journal::{Event, Journal, MemoryEffect, SharedJournal};
use serde_json::Value;

use crate::StopReason;
use crate::redact::Redactor;

/// What the next input of a given kind comes from.
pub(crate) enum Next {
    /// The journal has it: this event.
    Replay(Event),
    /// Nothing left to replay: ask the live component.
    Live,
}

/// Where a run's new events go: a journal of its own (the CLI), or one it
/// shares with the other runs of its process (a server's tenant).
pub(crate) enum Sink {
    Own(Box<Journal>),
    Shared(SharedJournal),
}

impl Sink {
    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut Journal) -> R) -> R {
        match self {
            Sink::Own(journal) => f(journal),
            Sink::Shared(shared) => f(&mut shared.lock()),
        }
    }
}

/// Called with each event a run appends (a server's live view of its runs).
pub type EventHook = std::sync::Arc<dyn Fn(&str, &Event) + Send + Sync>;

/// The journal of one run, for recording and replaying.
pub(crate) struct Recorder {
    pub run_id: String,
    /// Where new events go (`None` in a pure replay, which writes nothing).
    journal: Option<Sink>,
    /// Told of every appended event.
    on_event: Option<EventHook>,
    /// Recorded events not yet replayed.
    pending: VecDeque<Event>,
    /// Whether the run goes on live once `pending` is exhausted (resume) or
    /// must end there (replay).
    live_after: bool,
    /// Sequence number just past the recorded events.
    end: u64,
    /// Bytes of journal events the run may write (`limits.max-journal`).
    max_bytes: u64,
    redact: Redactor,
    /// The annotations the last [`Recorder::next`] passed over (a resumed
    /// call finds the approval it was given before the process died).
    passed: Vec<Event>,
}

/// Events that annotate a run (who decided what) rather than record an input
/// the agent asked for: a replay passes over them.
const ANNOTATIONS: &[&str] = &["decision"];

impl Recorder {
    /// Records a new run.
    pub(crate) fn recording(
        run_id: String,
        journal: Option<Sink>,
        max_bytes: u64,
        redact: Redactor,
    ) -> Recorder {
        Recorder {
            run_id,
            journal,
            on_event: None,
            pending: VecDeque::new(),
            live_after: true,
            end: 0,
            max_bytes,
            redact,
            passed: Vec::new(),
        }
    }

    /// Replays `events`; goes on live afterwards (appending to `journal`)
    /// when one is given, otherwise the run must end with the events.
    pub(crate) fn replaying(
        run_id: String,
        events: Vec<Event>,
        journal: Option<Sink>,
        max_bytes: u64,
        redact: Redactor,
    ) -> Recorder {
        let end = events.len() as u64;
        let live_after = journal.is_some();
        let mut pending: VecDeque<Event> = events.into();
        // The start event describes the run; the agent never asks for it.
        if pending.front().is_some_and(|e| e.kind == "run-start") {
            pending.pop_front();
        }
        Recorder {
            run_id,
            journal,
            on_event: None,
            pending,
            live_after,
            end,
            max_bytes,
            redact,
            passed: Vec::new(),
        }
    }

    /// Tells `hook` of every event appended from now on.
    pub(crate) fn with_hook(mut self, hook: Option<EventHook>) -> Recorder {
        self.on_event = hook;
        self
    }

    /// Whether new events are written (a live run or a resume).
    pub(crate) fn writes(&self) -> bool {
        self.journal.is_some()
    }

    /// Takes the next input of `kind`. `same` says whether a recorded
    /// event's data describes the request being made now; `actual`
    /// describes that request for a divergence report. A recorded `stop`
    /// ends the replay as it ended the run; a live run whose journal is
    /// over its quota stops here.
    pub(crate) fn next(
        &mut self,
        kind: &str,
        same: impl Fn(&Value) -> bool,
        actual: impl Fn() -> String,
    ) -> Result<Next, StopReason> {
        self.passed.clear();
        while self
            .pending
            .front()
            .is_some_and(|e| ANNOTATIONS.contains(&e.kind.as_str()))
        {
            self.passed.extend(self.pending.pop_front());
        }
        match self.pending.pop_front() {
            Some(event) if event.kind == kind && same(&event.data) => Ok(Next::Replay(event)),
            Some(event) if event.kind == "stop" => Err(StopReason::recorded(&event.data)),
            Some(event) => Err(StopReason::Divergence {
                event: event.seq,
                expected: describe(&event),
                actual: actual(),
            }),
            None if self.live_after => {
                // The run's end is always recorded, whatever the quota.
                if kind != "run-end" && self.bytes() > self.max_bytes {
                    return Err(self.stop(StopReason::MaxJournal(self.max_bytes)));
                }
                Ok(Next::Live)
            }
            None => Err(StopReason::Divergence {
                event: self.end,
                expected: "the end of the run".into(),
                actual: actual(),
            }),
        }
    }

    /// The annotations the last [`Recorder::next`] passed over.
    pub(crate) fn passed(&self) -> &[Event] {
        &self.passed
    }

    /// Bytes of this run's events written so far.
    fn bytes(&self) -> u64 {
        let run = &self.run_id;
        match &self.journal {
            Some(Sink::Own(journal)) => journal.run_bytes(run),
            Some(Sink::Shared(shared)) => shared.lock().run_bytes(run),
            None => 0,
        }
    }

    /// Journals that the run stops for `reason` (in a replay, the stop is
    /// already recorded) and returns it.
    pub(crate) fn stop(&mut self, reason: StopReason) -> StopReason {
        if self.pending.is_empty() {
            let _ = self.record("stop", reason.record(), None);
        } else if self.pending.front().is_some_and(|e| e.kind == "stop") {
            self.pending.pop_front();
        }
        reason
    }

    /// Appends an event, secrets removed (no-op without a journal).
    pub(crate) fn record(
        &mut self,
        kind: &str,
        mut data: Value,
        effect: Option<MemoryEffect>,
    ) -> Result<(), StopReason> {
        if let Some(journal) = &mut self.journal {
            self.redact.value(&mut data);
            let run = &self.run_id;
            let event = journal
                .with(|j| j.append(run, kind, data, effect))
                .map_err(|e| StopReason::Journal(e.to_string()))?;
            if let Some(hook) = &self.on_event {
                hook(run, &event);
            }
        }
        Ok(())
    }

    /// Makes everything recorded so far durable: called before an effect
    /// leaves the sandbox.
    pub(crate) fn sync(&mut self) -> Result<(), StopReason> {
        if let Some(journal) = &mut self.journal {
            let run = &self.run_id;
            journal
                .with(|j| j.sync_run(run))
                .map_err(|e| StopReason::Journal(e.to_string()))?;
        }
        Ok(())
    }

    /// Calls `f` with the journal (for memory reads and the end of the
    /// run); `None` without one.
    pub(crate) fn with_journal<R>(&mut self, f: impl FnOnce(&mut Journal) -> R) -> Option<R> {
        self.journal.as_mut().map(|sink| sink.with(f))
    }
}

/// A recorded event in a few words, for divergence reports.
fn describe(event: &Event) -> String {
    let d = &event.data;
    let text = match event.kind.as_str() {
        "tool-call" => format!(
            "tool call `{}` with {}",
            d["name"].as_str().unwrap_or("?"),
            d["arguments"].as_str().unwrap_or("?")
        ),
        "inference" => format!(
            "an inference request with conversation sha256 {}",
            d["request"].as_str().unwrap_or("?")
        ),
        "run-end" => format!("the end of the run ({})", d["status"]),
        kind => format!("{kind} {d}"),
    };
    if text.len() > 300 {
        format!("{}…", &text[..text.floor_char_boundary(300)])
    } else {
        text
    }
}
