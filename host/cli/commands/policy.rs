//! `fc-host policy check FILE` and `fc-host policy explain FILE [--json]`.

use std::fmt::Write as _;
use std::path::PathBuf;

use femtoclaw_policy::{ComponentLimits, ComponentSource, Policy, SecretSource};

use crate::exit;

/// Policy tools.
#[derive(clap::Subcommand)]
// Each subcommand's arguments are defined only when it is the one parsed.
#[command(defer = true)]
pub enum PolicyCommand {
    /// Parse and validate a policy without running anything (the same parser
    /// `run` uses).
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Print the effective grants of every component, with every default
    /// filled in.
    Explain {
        /// The policy file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// A bundle whose `bundle:NAME` capabilities the policy runs: show
        /// what each asks for beside what the policy grants (the effective
        /// grant), and refuse a policy that widens it.
        #[arg(long, value_name = "FILE.fcb")]
        bundle: Option<PathBuf>,
    },
}

impl PolicyCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        match self {
            PolicyCommand::Check { file } => {
                let policy = Policy::load(&file)?;
                let n = policy.capabilities.len();
                println!(
                    "policy `{}` is valid: {n} capabilit{} granted",
                    file.display(),
                    if n == 1 { "y" } else { "ies" }
                );
            }
            PolicyCommand::Explain { file, json, bundle } => {
                let policy = Policy::load(&file)?;
                let bundle = bundle
                    .map(|b| crate::commands::bundle::read_bundle(&b))
                    .transpose()?;
                let mut requested = serde_json::Map::new();
                if let Some(bundle) = &bundle {
                    for (name, grant) in &policy.capabilities {
                        if let ComponentSource::Bundle(component) = &grant.component {
                            femtoclaw_runtime::check_bundle_grants(bundle, name, component, grant)?;
                            let asked = bundle
                                .manifest
                                .component(component)
                                .map(|c| c.grants.clone())
                                .unwrap_or_default();
                            requested.insert(name.clone(), serde_json::to_value(asked)?);
                        }
                    }
                }
                if json {
                    let mut v = serde_json::to_value(&policy)?;
                    if bundle.is_some() {
                        v["bundle-requested"] = serde_json::Value::Object(requested);
                    }
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    print!("{}", explain(&policy));
                    for (name, asked) in &requested {
                        println!(
                            "capability {name} from the bundle asks for {asked}; the effective grant is the policy's, above (a policy may narrow a bundle, never widen it)"
                        );
                    }
                }
            }
        }
        Ok(exit::OK)
    }
}

fn explain(p: &Policy) -> String {
    let mut out = String::new();
    let l = &p.limits;
    let _ = writeln!(out, "policy {}", p.path.display());
    let _ = writeln!(
        out,
        "run: max-steps {}, max-tool-calls {}, run-timeout {:?}, max-tool-output {} B, max-log-lines {}",
        l.max_steps, l.max_tool_calls, l.run_timeout, l.max_tool_output, l.max_log_lines
    );
    let _ = writeln!(
        out,
        "agent (built-in unless given): no files, no network, no environment; memory {} MiB, fuel {} and wall time {:?} for the run",
        l.component.memory >> 20,
        l.component.fuel,
        l.run_timeout
    );
    match &p.brain {
        Some(b) => {
            let _ = writeln!(
                out,
                "brain: {b:?}; no files, no network, no environment; {}",
                limits(&l.component)
            );
        }
        None => {
            let _ = writeln!(out, "brain: none (give --brain)");
        }
    }
    if p.capabilities.is_empty() {
        let _ = writeln!(out, "capabilities: none");
    }
    for (name, g) in &p.capabilities {
        let _ = writeln!(out, "capability {name} ({:?})", g.component);
        let tools: Vec<String> = g
            .tools
            .iter()
            .map(|t| match g.max_calls.get(t) {
                Some(n) => format!("{name}.{t} (max {n} calls)"),
                None => format!("{name}.{t}"),
            })
            .collect();
        let _ = writeln!(
            out,
            "  tools: {}",
            if tools.is_empty() {
                "none".into()
            } else {
                tools.join(", ")
            }
        );
        for m in &g.mounts {
            let _ = writeln!(
                out,
                "  mount {} -> {} ({})",
                m.guest,
                m.host.display(),
                m.mode.as_str()
            );
        }
        let net: Vec<String> = g.net.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(
            out,
            "  net: {}",
            if net.is_empty() {
                "none".into()
            } else {
                net.join(", ")
            }
        );
        let _ = writeln!(
            out,
            "  env: {}",
            if g.env.is_empty() {
                "none".into()
            } else {
                g.env.join(", ")
            }
        );
        let secrets: Vec<String> = g
            .secrets
            .iter()
            .map(|(k, s)| match s {
                SecretSource::Env(v) => format!("{k} (from env {v})"),
                SecretSource::File(f) => format!("{k} (from file {})", f.display()),
            })
            .collect();
        let _ = writeln!(
            out,
            "  secrets: {}",
            if secrets.is_empty() {
                "none".into()
            } else {
                secrets.join(", ")
            }
        );
        let _ = writeln!(out, "  limits: {}", limits(&g.limits));
    }
    out
}

fn limits(l: &ComponentLimits) -> String {
    format!(
        "memory {} MiB, fuel {} per call, call-timeout {:?}",
        l.memory >> 20,
        l.fuel,
        l.call_timeout
    )
}
