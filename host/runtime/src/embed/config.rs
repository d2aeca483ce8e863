//! [`Config`]: the runtime's settings, as a builder with presets.

use std::path::PathBuf;
use std::sync::Arc;

use crate::approval::Approver;
use crate::logs::LogFormat;
use crate::remote::Connector;
use crate::{Builtin, ComponentRef};

/// Where a managed run's task comes from ([`crate::Agent::run_managed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskSource {
    /// This text.
    Text(String),
    /// The program's arguments, joined by spaces; when there are none,
    /// standard input (read to its end) unless it is a terminal.
    Args,
    /// Standard input, read to its end.
    Stdin,
}

/// Where runs are journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Journaling {
    /// Not journaled: no replay, no resume, no durable memory.
    Off,
    /// `FC_STATE_DIR`, else the platform's data directory (where `fc-host`
    /// looks: `fc-host runs` lists them).
    Default,
    /// This directory.
    Dir(PathBuf),
}

/// The runtime's settings. Start from a preset ([`Config::industrial`] or
/// [`Config::default`]) and change what differs:
///
/// ```
/// use femtoclaw_runtime::prelude::*;
/// let config = Config::industrial()
///     .state_dir("/var/lib/my-service/femtoclaw")
///     .brain("scripted:brain.json")
///     .task(TaskSource::Text("summarise the notes".into()))
///     .log_format(LogFormat::Pretty);
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) journaling: Journaling,
    pub(crate) cache: Option<PathBuf>,
    pub(crate) brain: Option<String>,
    pub(crate) agent: ComponentRef,
    pub(crate) task: TaskSource,
    pub(crate) log: Option<LogFormat>,
    pub(crate) metrics: Option<PathBuf>,
    pub(crate) name: String,
    pub(crate) approver: Option<Arc<dyn Approver>>,
    pub(crate) connector: Option<Arc<dyn Connector>>,
}

impl Default for Config {
    /// For a program that drives runs itself: nothing journaled, the
    /// built-in agent, the policy's brain (else the local model server),
    /// the task from the program's arguments, no logging set up (the
    /// program's own `tracing` subscriber gets the events), every approval
    /// request denied.
    fn default() -> Config {
        Config {
            journaling: Journaling::Off,
            cache: None,
            brain: None,
            agent: ComponentRef::Builtin(Builtin::Agent),
            task: TaskSource::Args,
            log: None,
            metrics: None,
            name: "agent".into(),
            approver: None,
            connector: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("journaling", &self.journaling)
            .field("cache", &self.cache)
            .field("brain", &self.brain)
            .field("agent", &self.agent.to_string())
            .field("task", &self.task)
            .field("log", &self.log)
            .field("metrics", &self.metrics)
            .field("name", &self.name)
            .field("approver", &self.approver.is_some())
            .field("connector", &self.connector.is_some())
            .finish()
    }
}

impl Config {
    /// For a service in production: every run journaled where `fc-host`
    /// looks (`FC_STATE_DIR`, else the platform's data directory), so
    /// `fc-host runs`, `audit`, `replay` and `resume` work on it; compiled
    /// components cached; JSON logs on stderr; metrics kept
    /// ([`crate::Agent::metrics`]); approval requests denied (no person is
    /// there to ask). Limits are the policy's: enforce `Policy::Strict`
    /// or a policy of your own.
    pub fn industrial() -> Config {
        Config {
            journaling: Journaling::Default,
            log: Some(LogFormat::Json),
            ..Config::default()
        }
    }

    /// Journal runs in `dir` (and cache compiled components in its
    /// `cache/` unless `FC_CACHE_DIR` says otherwise).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Config {
        self.journaling = Journaling::Dir(dir.into());
        self
    }

    /// Journal nothing.
    pub fn no_journal(mut self) -> Config {
        self.journaling = Journaling::Off;
        self
    }

    /// Cache compiled components in `dir`.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Config {
        self.cache = Some(dir.into());
        self
    }

    /// The brain, as `fc-host run --brain` takes it: `local[=URL]`,
    /// `remote`, `scripted:FILE` or `PATH.wasm`. Unset: the policy's
    /// `[brain]`, else `local` (Ollama's address, or `OLLAMA_HOST`).
    pub fn brain(mut self, spec: impl Into<String>) -> Config {
        self.brain = Some(spec.into());
        self
    }

    /// The agent component (the built-in agent by default). A component
    /// file under a policy with `[trust] require-signature` is refused:
    /// give its verified bytes as [`ComponentRef::Bundled`].
    pub fn agent(mut self, agent: ComponentRef) -> Config {
        self.agent = agent;
        self
    }

    /// Where [`crate::Agent::run_managed`] takes its task from.
    pub fn task(mut self, source: TaskSource) -> Config {
        self.task = source;
        self
    }

    /// The logs [`crate::Agent::run_managed`] writes on stderr (unless the
    /// program set up its own `tracing` subscriber first).
    pub fn log_format(mut self, format: LogFormat) -> Config {
        self.log = Some(format);
        self
    }

    /// Write the runtime's metrics (OpenMetrics text, the counters of this
    /// process) to `file` after each managed run, ended or stopped, whole:
    /// written aside and renamed, as Prometheus' node_exporter textfile
    /// collector needs (`examples/embed/job.rs`).
    pub fn metrics_file(mut self, file: impl Into<PathBuf>) -> Config {
        self.metrics = Some(file.into());
        self
    }

    /// The name of a managed agent: its interrupted run is found by it
    /// (letters, digits, `-` and `_`; `agent` by default).
    pub fn name(mut self, name: impl Into<String>) -> Config {
        self.name = name.into();
        self
    }

    /// Who answers the policy's approval requests (all denied by default).
    pub fn approver(mut self, approver: Arc<dyn Approver>) -> Config {
        self.approver = Some(approver);
        self
    }

    /// How MCP servers a policy names are reached (`femtoclaw_mcp`'s
    /// connector); without one such a policy is refused.
    pub fn connector(mut self, connector: Arc<dyn Connector>) -> Config {
        self.connector = Some(connector);
        self
    }
}
