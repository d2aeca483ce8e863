//! `fc-host doctor [--policy FILE]`: checks what a run depends on, each
//! check on its own line with what to do when it fails, as `spin doctor`
//! does. Exits 0 when nothing failed, 2 otherwise.

use std::path::{Path, PathBuf};

use femtoclaw_policy::{BrainSpec, ComponentSource, Policy};

use crate::commands::run::{block_on, leave};
use crate::console::outln;
use crate::state::StateArgs;

/// Check the state and cache directories, a policy, its components, its
/// brain and the guest toolchain, and say what to do about each problem.
#[derive(clap::Args)]
pub struct DoctorCommand {
    /// A policy to check: it parses, its components load and provide the
    /// granted tools, its brain's key is set and its endpoint answers.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
}

/// What the checks found.
#[derive(Default)]
struct Report {
    problems: usize,
}

impl Report {
    fn ok(&mut self, what: &str, detail: &str) {
        outln!("ok       {what}: {detail}");
    }

    fn note(&mut self, what: &str, detail: &str) {
        outln!("note     {what}: {detail}");
    }

    fn problem(&mut self, what: &str, why: &str, fix: &str) {
        self.problems += 1;
        outln!("PROBLEM  {what}: {why}");
        outln!("         do: {fix}");
    }
}

impl DoctorCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let mut report = Report::default();
        match self.state.dir() {
            Ok(dir) => writable(
                &mut report,
                "state directory",
                &dir,
                "pass --state DIR or set FC_STATE_DIR to a directory you can write",
            ),
            Err(e) => report.problem(
                "state directory",
                &crate::console::chain(&e),
                "pass --state DIR or set FC_STATE_DIR",
            ),
        }
        if let Ok(dir) = self.state.dir() {
            match femtoclaw_journal::Journal::open_read_only(&dir) {
                Ok(Some(journal)) => match journal.runs() {
                    Ok(listing) if listing.damage.is_empty() => report.ok("journal", &format!("{} run(s), none damaged", listing.runs.len())),
                    Ok(listing) => report.problem("journal", &format!("{} damaged runs", listing.damage.len()), "`fc-host runs` names them; `fc-host inspect RUN` refuses each, and a backup of journal.redb restores them"),
                    Err(e) => report.problem("journal", &e.to_string(), "restore journal.redb from a backup, or move it aside to start a new journal"),
                },
                Ok(None) => report.note("journal", "none yet: the first run creates it"),
                Err(e) => report.problem("journal", &e.to_string(), "restore journal.redb from a backup, or move it aside to start a new journal"),
            }
        }
        match self.state.cache_dir() {
            Ok(dir) => writable(
                &mut report,
                "compile cache",
                &dir,
                "set FC_CACHE_DIR to a directory you can write",
            ),
            Err(e) => report.problem(
                "compile cache",
                &crate::console::chain(&e),
                "set FC_CACHE_DIR",
            ),
        }
        guest_target(&mut report);
        if let Some(path) = &self.policy {
            policy(&mut report, path);
        }
        if report.problems == 0 {
            outln!("no problems found");
            Ok(crate::exit::OK)
        } else {
            outln!("{} problem(s) found", report.problems);
            Ok(crate::exit::USAGE)
        }
    }
}

/// `dir` exists (or can be made) and takes a file.
fn writable(report: &mut Report, what: &str, dir: &Path, fix: &str) {
    // A check creates nothing: a directory not made yet is checked through
    // its nearest existing parent, which the first run will create it in.
    let exists = dir.exists();
    let target = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let probe = target.join(format!(".fc-doctor-{}", std::process::id()));
    let written = std::fs::write(&probe, b"");
    let _ = std::fs::remove_file(&probe);
    match (written, exists) {
        (Ok(()), true) => report.ok(what, &dir.display().to_string()),
        (Ok(()), false) => report.ok(
            what,
            &format!("{} (created by the first run)", dir.display()),
        ),
        (Err(e), true) => report.problem(
            what,
            &format!("{} is not writable: {e}", dir.display()),
            fix,
        ),
        (Err(e), false) => report.problem(
            what,
            &format!("{} cannot be created: {e}", dir.display()),
            fix,
        ),
    }
}

/// The Rust guest target, for building Rust capabilities (not for running).
fn guest_target(report: &mut Report) {
    let listed = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match listed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") => {
            report.ok("guest target", "wasm32-wasip2 is installed (Rust capabilities build)")
        }
        Ok(_) => report.note("guest target", "wasm32-wasip2 is not installed; to build Rust capabilities: `rustup target add wasm32-wasip2` (running needs nothing)"),
        Err(_) => report.note("guest target", "no rustup; to build Rust capabilities install it, then `rustup target add wasm32-wasip2` (running needs nothing)"),
    }
}

fn policy(report: &mut Report, path: &Path) {
    let what = format!("policy {}", path.display());
    let policy = match Policy::load(path) {
        Ok(p) => p,
        Err(e) => {
            return report.problem(
                &what,
                &e.to_string(),
                "fix the key the message names (docs/policy.md lists every key)",
            );
        }
    };
    report.ok(
        &what,
        &format!("valid, {} capabilities", policy.capabilities.len()),
    );
    let runtime = match femtoclaw_runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            return report.problem(
                "runtime",
                &e.to_string(),
                "report this: the engine could not start",
            );
        }
    };
    match block_on(runtime.check_capabilities(&policy)) {
        Ok(checked) => {
            for c in checked {
                report.ok(&format!("capability {}", c.name), &format!("{} provides {}", c.component, c.tools.join(", ")));
            }
        }
        Err(e) => report.problem("capabilities", &crate::console::chain(&e), "fix the component or the grant the message names; `fc-host tools COMPONENT` lists what a component provides"),
    }
    for (name, grant) in &policy.capabilities {
        match &grant.component {
            ComponentSource::Mcp(_) => report.note(
                &format!("capability {name}"),
                "an MCP server: not reached by doctor; a run checks its tools when it connects",
            ),
            ComponentSource::Bundle(_) => report.note(
                &format!("capability {name}"),
                "from a bundle: checked when the bundle runs",
            ),
            _ => {}
        }
    }
    match &policy.brain {
        Some(BrainSpec::Provider(p)) => match block_on(runtime.check_brain(p)) {
            Ok(()) => report.ok("brain", &format!("{} answers; its key is set", p.base_url)),
            Err(e) => report.problem(
                "brain",
                &crate::console::chain(&e),
                "set the key the policy names, or start the endpoint (the message says how)",
            ),
        },
        Some(BrainSpec::Scripted { script }) => {
            report.ok("brain", &format!("scripted, {}", script.display()))
        }
        None => report.note(
            "brain",
            &format!(
                "the policy names none: a run uses --brain, else the local server at {}",
                femtoclaw_runtime::local_brain_url(std::env::var("OLLAMA_HOST").ok())
            ),
        ),
    }
    leave(runtime);
}
