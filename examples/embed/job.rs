//! A scheduled job that is one managed agent, as cron or a systemd timer
//! starts it: the task on standard input, its metrics written for
//! Prometheus' node_exporter textfile collector, a name of its own so that
//! several jobs share one state directory. A job killed half-way (a reboot,
//! `kill -9`, the OOM killer) resumes its run at its next start, before it
//! reads a new task.
//!
//! ```text
//! echo "Summarise the notes" | cargo run --example embed-job -- \
//!     --name nightly --metrics /var/lib/node_exporter/textfile/nightly.prom
//! ```

use femtoclaw_runtime::prelude::*;

fn main() -> Result<(), Error> {
    let mut config = Config::industrial().task(TaskSource::Stdin);
    let mut policy = "Strict".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| Error::Usage(format!("`{flag}` needs a value")))
        };
        match flag.as_str() {
            "--name" => config = config.name(value()?),
            "--metrics" => config = config.metrics_file(value()?),
            "--policy" => policy = value()?,
            "--brain" => config = config.brain(value()?),
            "--state" => config = config.state_dir(value()?),
            _ => {
                return Err(Error::Usage(format!(
                    "unknown argument `{flag}` (expected --name NAME, --metrics FILE, --policy FILE|PRESET, --brain SPEC, --state DIR; the task is read from standard input)"
                )));
            }
        }
    }
    let agent = Agent::new(config);
    agent.enforce_policy(Policy::load(&policy)?);
    agent.run_managed()
}
