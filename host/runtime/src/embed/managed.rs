//! [`Agent::run_managed`]: the lifecycle of a program that is one agent.
//! Its run is journaled; a run the program left unfinished (killed, or
//! stopped by a signal) is resumed before anything new starts; `SIGINT` and
//! `SIGTERM` stop it at its last commit point, resumable.
//!
//! Which run is the program's own is kept beside the journal, in
//! `STATE/managed/NAME`: the run id, written before the run starts and
//! removed once the journal says the run ended.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};

use femtoclaw_journal::{JournalError, RunStatus, SharedJournal};

use super::agent::{Agent, Answer, answer, block_on};
use super::config::TaskSource;
use super::error::Error;
use crate::{Resume, new_run_id};

/// The largest task read from standard input.
const MAX_TASK: u64 = 1 << 20;

impl Agent {
    /// Runs the program's agent as a managed service and writes its answer
    /// on stdout: logs set up as the [`crate::Config`] says, its own
    /// interrupted run resumed first (else a new run on the config's task
    /// source), `SIGINT`/`SIGTERM` checkpoint the run and return
    /// [`Error::Interrupted`] (the next call resumes it), metrics written
    /// if asked. Needs a journal (`Config::industrial()` has one).
    ///
    /// ```no_run
    /// use femtoclaw_runtime::prelude::*;
    /// fn main() -> Result<(), Error> {
    ///     let agent = Agent::new(Config::industrial());
    ///     agent.enforce_policy(Policy::Strict);
    ///     agent.run_managed()
    /// }
    /// ```
    pub fn run_managed(&self) -> Result<(), Error> {
        let answer = self.run_managed_answer()?;
        println!("{}", crate::text::escape_lines(&answer.text));
        Ok(())
    }

    /// [`Agent::run_managed`], returning the answer instead of printing it.
    pub fn run_managed_answer(&self) -> Result<Answer, Error> {
        if let Some(format) = self.config.log {
            crate::logs::init(format);
        }
        let result = block_on(self.managed());
        let Some(file) = &self.config.metrics else {
            return result;
        };
        match (result, self.write_metrics(file)) {
            (result, Ok(())) => result,
            // The run's own error is the one to act on; the metrics' goes
            // to the log beside it.
            (Err(run), Err(metrics)) => {
                tracing::error!(target: "femtoclaw::run", error = %metrics, "metrics not written");
                Err(run)
            }
            (Ok(answer), Err(metrics)) => Err(Error::Usage(format!(
                "run `{}` ended and its answer is journaled (`fc-host audit {}`), but {metrics}",
                answer.run_id, answer.run_id
            ))),
        }
    }

    /// The metrics, written aside (`FILE.new`: not a `.prom` file a
    /// collector would read half-written) and renamed over `file`.
    fn write_metrics(&self, file: &Path) -> Result<(), Error> {
        let failed = |e: std::io::Error| {
            Error::Usage(format!(
                "cannot write metrics to `{}` (`Config::metrics_file`): {}",
                file.display(),
                crate::text::io_error(&e)
            ))
        };
        let mut aside = file.as_os_str().to_owned();
        aside.push(".new");
        std::fs::write(&aside, self.metrics()?).map_err(failed)?;
        std::fs::rename(&aside, file).map_err(|e| {
            let _ = std::fs::remove_file(&aside);
            failed(e)
        })
    }

    async fn managed(&self) -> Result<Answer, Error> {
        let parts = self.parts()?;
        let Some((dir, journal)) = parts.journal.clone() else {
            return Err(Error::Usage(
                "`run_managed` journals its run so that it can resume it: use `Config::industrial()` or set `Config::state_dir`".into(),
            ));
        };
        let marker = Marker::new(&dir, &self.config.name)?;
        let interrupted = match marker.read()? {
            Some(run_id) if status(&journal, &run_id)? == Some(RunStatus::Running) => Some(run_id),
            _ => None,
        };
        let run_id = match &interrupted {
            Some(run_id) => run_id.clone(),
            None => new_run_id(),
        };
        let run = async {
            match &interrupted {
                Some(run_id) => {
                    tracing::info!(target: "femtoclaw::run", run_id = %run_id, agent = %self.config.name, "resuming the interrupted managed run");
                    let options = Resume {
                        hooks: self.hooks(&parts),
                        ..Resume::default()
                    };
                    Ok::<_, Error>(parts.runtime.resume(&dir, run_id, options).await?)
                }
                None => {
                    let task = read_task(&self.config.task)?;
                    let mut plan = self.plan(&task)?;
                    plan.run_id = Some(run_id.clone());
                    marker.write(&run_id)?;
                    Ok(parts.runtime.run(plan).await?)
                }
            }
        };
        let outcome = tokio::select! {
            outcome = run => outcome,
            signal = shutdown_signal() => {
                // The run is not polled again (its future goes with this
                // `select!`): what it appended is in the journal; make that
                // durable, and leave the run resumable.
                let synced = journal.lock().sync();
                if let Err(e) = synced {
                    return Err(Error::Journal(format!("{signal} stopped run `{run_id}`, and its journal could not be checkpointed: {e}")));
                }
                tracing::warn!(target: "femtoclaw::run", run_id = %run_id, %signal, "managed run checkpointed; the next start resumes it");
                return Err(Error::Interrupted(format!(
                    "{signal} stopped run `{run_id}`: everything it did up to its last commit point is journaled in `{}`, and the next start resumes it",
                    dir.display()
                )));
            }
        };
        // An ended run is no longer this program's to resume; one a failure
        // left running (an uncertain write under `on-uncertain = "fail"`)
        // stays its own until an operator decides.
        if status(&journal, &run_id)? != Some(RunStatus::Running) {
            marker.clear()?;
        }
        answer(outcome?)
    }
}

/// The status the journal records of a run (none if it has no such run).
/// A journal that cannot say is an error: taking it for "no run" would
/// start afresh and strand a resumable run.
fn status(journal: &SharedJournal, run_id: &str) -> Result<Option<RunStatus>, Error> {
    match journal.lock().run(run_id) {
        Ok(info) => Ok(Some(info.status)),
        Err(JournalError::UnknownRun(_)) => Ok(None),
        Err(e) => Err(Error::Journal(format!("the managed run `{run_id}`: {e}"))),
    }
}

/// The task a managed run starts with.
fn read_task(source: &TaskSource) -> Result<String, Error> {
    let stdin = || -> Result<String, Error> {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_TASK + 1)
            .read_to_string(&mut text)
            .map_err(|e| {
                Error::Usage(format!(
                    "cannot read the task from standard input: {}",
                    crate::text::io_error(&e)
                ))
            })?;
        if text.len() as u64 > MAX_TASK {
            return Err(Error::Usage(format!(
                "the task on standard input is larger than {MAX_TASK} bytes"
            )));
        }
        Ok(text.trim_end().to_owned())
    };
    match source {
        TaskSource::Text(text) => Ok(text.clone()),
        TaskSource::Stdin => stdin(),
        TaskSource::Args => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            if args.is_empty() && !std::io::stdin().is_terminal() {
                return stdin();
            }
            Ok(args.join(" "))
        }
    }
}

/// `STATE/managed/NAME`: the id of the run a managed agent has under way.
struct Marker(PathBuf);

impl Marker {
    fn new(state: &Path, name: &str) -> Result<Marker, Error> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(Error::Usage(format!(
                "managed agent name `{}` (`Config::name`): use 1 to 64 letters, digits, `-` or `_`",
                crate::text::escape(name)
            )));
        }
        Ok(Marker(state.join("managed").join(name)))
    }

    fn read(&self) -> Result<Option<String>, Error> {
        match std::fs::read_to_string(&self.0) {
            Ok(text) => {
                let run_id = text.trim();
                if run_id.is_empty()
                    || run_id.len() > 64
                    || !run_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
                {
                    return Err(Error::Journal(format!(
                        "`{}` is damaged (it should hold one run id): find the run with `fc-host runs`, resume it with `fc-host resume RUN`, then delete the file",
                        self.0.display()
                    )));
                }
                Ok(Some(run_id.to_owned()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("read", &e)),
        }
    }

    /// Written aside and renamed into place: a crash leaves the old marker
    /// or the new one, never half of one.
    fn write(&self, run_id: &str) -> Result<(), Error> {
        let dir = self
            .0
            .parent()
            .expect("invariant: a marker is in `managed/`");
        std::fs::create_dir_all(dir).map_err(|e| self.error("create", &e))?;
        let aside = self.0.with_extension("new");
        std::fs::write(&aside, format!("{run_id}\n")).map_err(|e| self.error("write", &e))?;
        std::fs::rename(&aside, &self.0).map_err(|e| self.error("write", &e))
    }

    fn clear(&self) -> Result<(), Error> {
        match std::fs::remove_file(&self.0) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.error("remove", &e)),
            _ => Ok(()),
        }
    }

    fn error(&self, what: &str, e: &std::io::Error) -> Error {
        Error::Journal(format!(
            "cannot {what} `{}` (the managed run's marker): {}",
            self.0.display(),
            crate::text::io_error(e)
        ))
    }
}

/// Resolves with the signal's name at the first `SIGTERM` or `SIGINT`
/// (`Ctrl-C` off Unix): how a managed run and `fc-host serve` learn to stop.
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!(target: "femtoclaw::run", "no signal handlers: only SIGKILL stops this process (a run resumes at its last commit point)");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_holds_one_run_id_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Marker::new(dir.path(), "../x").is_err());
        let marker = Marker::new(dir.path(), "svc").unwrap();
        assert_eq!(marker.read().unwrap(), None);
        let id = new_run_id();
        marker.write(&id).unwrap();
        assert_eq!(marker.read().unwrap(), Some(id));
        std::fs::write(dir.path().join("managed/svc"), "not a run\n").unwrap();
        let e = marker.read().unwrap_err();
        assert!(
            matches!(e, Error::Journal(_)) && e.to_string().contains("managed/svc"),
            "{e}"
        );
        marker.clear().unwrap();
        marker.clear().unwrap();
        assert_eq!(marker.read().unwrap(), None);
    }

    #[test]
    fn a_run_the_journal_does_not_hold_has_no_status() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SharedJournal::new(femtoclaw_journal::Journal::open(dir.path()).unwrap());
        assert_eq!(status(&journal, &new_run_id()).unwrap(), None);
    }
}
