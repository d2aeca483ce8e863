//! `fc-host tools COMPONENT` and `fc-host call COMPONENT TOOL JSON`: a
//! capability author's loop without an agent or a brain script. A call goes
//! through the gate and the validator like an agent's: it is a journaled
//! run of one call (a session), so `inspect` and `audit` show it.

use std::path::{Path, PathBuf};

use femtoclaw_policy::{ComponentSource, Policy};
use femtoclaw_runtime::prelude::*;
use femtoclaw_runtime::{Builtin, SessionPlan};
use serde_json::json;

use crate::commands::run::{block_on, leave, runtime};
use crate::console::{out_json, outln};
use crate::state::StateArgs;

/// A component argument: `builtin:NAME` or a `.wasm` file.
fn component(text: &str) -> anyhow::Result<ComponentRef> {
    match text.strip_prefix("builtin:") {
        Some(name) => Ok(ComponentRef::Builtin(
            Builtin::capability(name).ok_or_else(|| {
                RunError::Config(format!(
                    "unknown built-in capability `{text}` (built-ins: {})",
                    femtoclaw_policy::BUILTIN_CAPABILITIES
                        .iter()
                        .map(|b| format!("builtin:{b}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
        )),
        None => Ok(ComponentRef::File(PathBuf::from(text))),
    }
}

/// List a capability component's tools and their schemas.
#[derive(clap::Args)]
pub struct ToolsCommand {
    /// A capability component (`.wasm`) or `builtin:NAME`.
    component: String,
    /// Print the tool specs as JSON.
    #[arg(long)]
    json: bool,
    /// Where the compile cache is (a later `call` or `run` loads what this
    /// compiled).
    #[command(flatten)]
    state: StateArgs,
}

impl ToolsCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let source = component(&self.component)?;
        let runtime = runtime(&self.state)?;
        let specs = block_on(runtime.describe(&source));
        leave(runtime);
        let specs = specs?;
        if self.json {
            out_json(&json!(specs));
            return Ok(crate::exit::OK);
        }
        for spec in &specs {
            let effect = spec["effect"].as_str().unwrap_or("?").to_lowercase();
            outln!("{} ({effect})", spec["name"].as_str().unwrap_or("?"));
            if let Some(d) = spec["description"].as_str().filter(|d| !d.is_empty()) {
                outln!("  {d}");
            }
            outln!("  input:  {}", spec["input_schema"].as_str().unwrap_or("?"));
            if let Some(o) = spec["output_schema"].as_str() {
                outln!("  output: {o}");
            }
        }
        Ok(crate::exit::OK)
    }
}

/// Call one tool of a capability through the gate and the validator, as
/// an agent would; prints its output.
#[derive(clap::Args)]
pub struct CallCommand {
    /// A capability component (`.wasm`) or `builtin:NAME`.
    component: String,
    /// The tool, by the component's name for it.
    tool: String,
    /// Its arguments, a JSON object.
    #[arg(default_value = "{}")]
    arguments: String,
    /// A policy granting the component (its mounts, network, variables,
    /// limits); without one, the component gets nothing but the one tool.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
    /// Who answers if the policy wants the call approved (as for `run`).
    #[arg(long, value_name = "WHO", value_enum)]
    approve: Option<crate::approve::ApproveMode>,
}

impl CallCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let source = component(&self.component)?;
        let (policy, capability) = match &self.policy {
            Some(path) => granting(Policy::load(path)?, &source, path)?,
            None => bare(&source, &self.tool)?,
        };
        let address = format!("{capability}.{}", self.tool);
        let plan = SessionPlan {
            policy,
            client: "call".into(),
            state: Some(self.state.dir()?),
            bundle: None,
            hooks: femtoclaw_runtime::Hooks {
                approver: Some(crate::approve::approver(self.approve)?),
                ..Default::default()
            },
        };
        let runtime = runtime(&self.state)?;
        let result = block_on(async {
            let mut session = runtime.open_session(plan).await?;
            crate::console::notice(
                &format!("run {}", session.run_id()),
                &[("run_id", json!(session.run_id()))],
            );
            let shown = session.call(&address, &self.arguments).await;
            let closed = session.close();
            let shown = shown?;
            closed?;
            Ok::<_, RunError>(shown)
        });
        leave(runtime);
        let shown = result?;
        if shown.is_error {
            crate::console::error_line(
                &shown.text,
                &[("exit_code", json!(crate::exit::AGENT_ERROR))],
            );
            return Ok(crate::exit::AGENT_ERROR);
        }
        crate::console::write_stdout(&format!("{}\n", shown.text));
        Ok(crate::exit::OK)
    }
}

/// A policy granting `source` only `tool`, under the name its file (or
/// built-in) suggests.
fn bare(source: &ComponentRef, tool: &str) -> anyhow::Result<(Policy, String)> {
    let (name, component) = match source {
        ComponentRef::Builtin(b) => {
            let name = b.name().trim_start_matches("builtin:").to_owned();
            (name, b.name().to_owned())
        }
        ComponentRef::File(path) => {
            if let Err(e) = std::fs::metadata(path) {
                return Err(RunError::Config(format!(
                    "cannot read component `{}`: {}",
                    path.display(),
                    femtoclaw_runtime::text::io_error(&e)
                ))
                .into());
            }
            let path = std::path::absolute(path)?;
            (name_of(&path), path.display().to_string())
        }
        ComponentRef::Bundled { .. } => unreachable!("not a command-line component"),
    };
    let text = format!(
        "version = 1\n[capabilities.{name}]\ncomponent = {}\ntools = [{}]\n",
        toml::Value::String(component),
        toml::Value::String(tool.to_owned())
    );
    let where_ = std::env::current_dir()?.join("fc-host-call.toml");
    Ok((Policy::parse(&where_, &text)?, name))
}

/// A capability name from a file name: `cap_fs.wasm` → `cap_fs`.
fn name_of(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name
    } else {
        format!("cap_{name}")
    }
}

/// The policy's capability whose component is `source`.
fn granting(
    policy: Policy,
    source: &ComponentRef,
    path: &Path,
) -> anyhow::Result<(Policy, String)> {
    let wanted = match source {
        ComponentRef::Builtin(b) => {
            ComponentSource::Builtin(b.name().trim_start_matches("builtin:").to_owned())
        }
        ComponentRef::File(file) => ComponentSource::File(file.canonicalize().map_err(|e| {
            RunError::Config(format!("cannot read component `{}`: {e}", file.display()))
        })?),
        ComponentRef::Bundled { .. } => unreachable!("not a command-line component"),
    };
    let same = |c: &ComponentSource| match (c, &wanted) {
        (ComponentSource::File(a), ComponentSource::File(b)) => {
            a.canonicalize().is_ok_and(|a| a == *b)
        }
        (a, b) => a == b,
    };
    let name = policy
        .capabilities
        .iter()
        .find(|(_, g)| same(&g.component))
        .map(|(name, _)| name.clone())
        .ok_or_else(|| {
            RunError::Config(format!(
                "the policy `{}` grants no capability whose component is `{source}` (it grants: {})",
                path.display(),
                policy.capabilities.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
    Ok((policy, name))
}
