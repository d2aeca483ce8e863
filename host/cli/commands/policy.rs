//! `fc-host policy check FILE`, `fc-host policy explain FILE [--json]` and
//! `fc-host policy diff A B [--json]`.

use std::fmt::Write as _;
use std::path::PathBuf;

use femtoclaw_policy::{
    BrainSpec, ComponentLimits, ComponentSource, HeaderSource, McpServer, Policy, Protocol, Rates,
    SecretSource,
};

use crate::console::{out_json, outln};
use crate::exit;

/// Policy tools.
#[derive(clap::Subcommand)]
// Each subcommand's arguments are defined only when it is the one parsed.
#[command(defer = true)]
pub enum PolicyCommand {
    /// Parse and validate a policy without running anything (the same parser
    /// `run` uses).
    Check {
        /// The policy file, or a preset (`Strict`, `Standard`, `Dev`).
        file: PathBuf,
        /// Also load and describe each capability's component, as `run`
        /// does: its description is checked, and every granted tool must be
        /// one it provides.
        #[arg(long)]
        components: bool,
    },
    /// Print the effective grants of every component, with every default
    /// filled in.
    Explain {
        /// The policy file, or a preset (`Strict`, `Standard`, `Dev`).
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
    /// Print a preset's policy text, to start a policy file from
    /// (`fc-host policy show Strict > strict.toml`).
    Show {
        /// The preset: `Strict`, `Standard` or `Dev`.
        preset: String,
    },
    /// What changing policy A into policy B grants or takes away: each
    /// capability, tool, mount, net rule, variable, secret and limit, in
    /// their effective form (defaults filled in). For code review.
    Diff {
        /// The policy before the change.
        a: PathBuf,
        /// The policy after it.
        b: PathBuf,
        /// Print the changes as JSON.
        #[arg(long)]
        json: bool,
    },
}

impl PolicyCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        match self {
            PolicyCommand::Show { preset } => {
                let found = femtoclaw_policy::Preset::named(std::path::Path::new(&preset))
                    .ok_or_else(|| {
                        femtoclaw_runtime::RunError::Config(format!(
                            "no preset `{preset}`: the presets are {}",
                            femtoclaw_policy::preset_names()
                        ))
                    })?;
                for line in found.text.lines() {
                    outln!("{line}");
                }
            }
            PolicyCommand::Check { file, components } => {
                let policy = Policy::load(&file)?;
                let n = policy.capabilities.len();
                let granted = format!(
                    "policy `{}` is valid: {n} capabilit{} granted",
                    file.display(),
                    if n == 1 { "y" } else { "ies" }
                );
                if !components {
                    outln!(
                        "{granted}; its tools were not checked against the components (`--components` loads them)"
                    );
                    return Ok(exit::OK);
                }
                let runtime = femtoclaw_runtime::Runtime::new()?;
                let checked = crate::commands::run::block_on(runtime.check_capabilities(&policy))?;
                let unchecked = policy
                    .capabilities
                    .values()
                    .filter(|g| {
                        matches!(
                            g.component,
                            ComponentSource::Bundle(_) | ComponentSource::Mcp(_)
                        )
                    })
                    .count();
                if unchecked == 0 {
                    outln!("{granted}; every granted tool is provided");
                } else if checked.is_empty() {
                    outln!("{granted}; none is a component that can be loaded here");
                } else {
                    outln!("{granted}; the components loaded provide every tool granted them");
                }
                for c in &checked {
                    outln!(
                        "capability {} ({}) describes {}",
                        c.name,
                        c.component,
                        c.tools.join(", ")
                    );
                }
                for (name, g) in &policy.capabilities {
                    match &g.component {
                        ComponentSource::Bundle(b) => outln!(
                            "capability {name} (bundle:{b}) was not checked: it is checked against its bundle when the bundle runs"
                        ),
                        ComponentSource::Mcp(_) => outln!(
                            "capability {name} (an MCP server) was not checked: checking a policy reaches no server; a run checks the tools it lists when it connects"
                        ),
                        _ => {}
                    }
                }
                crate::commands::run::leave(runtime);
            }
            PolicyCommand::Diff { a, b, json } => {
                let before = serde_json::to_value(Policy::load(&a)?)?;
                let after = serde_json::to_value(Policy::load(&b)?)?;
                let changes = crate::commands::policy_diff::diff(&before, &after);
                if json {
                    out_json(&serde_json::json!(changes));
                } else if changes.is_empty() {
                    outln!(
                        "`{}` and `{}` grant the same: no difference in effect",
                        a.display(),
                        b.display()
                    );
                } else {
                    outln!("from `{}` to `{}`:", a.display(), b.display());
                    for c in &changes {
                        outln!("{}", c.line());
                    }
                }
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
                    out_json(&v);
                } else {
                    for line in explain(&policy, &file).lines() {
                        outln!("{line}");
                    }
                    for (name, asked) in &requested {
                        outln!(
                            "capability {name} from the bundle asks for {asked}; the effective grant is the policy's, above (a policy may narrow a bundle, never widen it)"
                        );
                    }
                }
            }
        }
        Ok(exit::OK)
    }
}

fn explain(p: &Policy, arg: &std::path::Path) -> String {
    let mut out = String::new();
    let l = &p.limits;
    match femtoclaw_policy::Preset::named(arg) {
        Some(preset) => {
            let _ = writeln!(
                out,
                "preset {}: {} (paths relative to {})",
                preset.name,
                preset.summary,
                p.path.parent().unwrap_or(&p.path).display()
            );
        }
        None => {
            let _ = writeln!(out, "policy {}", p.path.display());
        }
    }
    let _ = writeln!(
        out,
        "run: max-steps {}, max-tool-calls {}, run-timeout {:?}, max-tool-output {} B, max-log-lines {}",
        l.max_steps, l.max_tool_calls, l.run_timeout, l.max_tool_output, l.max_log_lines
    );
    let m = &p.memory;
    let _ = writeln!(
        out,
        "journal: max-journal {} B per run, on-uncertain {}, on-refusal {}; memory: max-value {} B, max-keys {}, max-written {} B per run, max-stored {} B",
        l.max_journal,
        p.on_uncertain.as_str(),
        p.on_refusal.as_str(),
        m.max_value,
        m.max_keys,
        m.max_written,
        m.max_stored
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
                "brain: {}; no files, no environment; {}",
                brain(b),
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
        let _ = writeln!(out, "capability {name} ({})", source(&g.component));
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
        if let ComponentSource::Mcp(McpServer::Http { headers, .. }) = &g.component {
            let headers: Vec<String> = headers
                .iter()
                .map(|(h, v)| match v {
                    HeaderSource::Value(v) => format!("{h}: {v}"),
                    HeaderSource::Secret(s) => format!("{h} (secret {})", secret(s)),
                    HeaderSource::Bearer(s) => format!("{h}: Bearer (secret {})", secret(s)),
                })
                .collect();
            let _ = writeln!(
                out,
                "  headers added by the host: {}",
                if headers.is_empty() {
                    "none".into()
                } else {
                    headers.join(", ")
                }
            );
            let _ = writeln!(out, "  limits: call-timeout {:?}", g.limits.call_timeout);
            continue;
        }
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
            if g.unsandboxed() {
                "not gated: a host process reaches what its user can".into()
            } else if net.is_empty() {
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
            .map(|(k, s)| format!("{k} ({})", secret(s)))
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
        if g.unsandboxed() {
            let _ = writeln!(out, "  limits: call-timeout {:?}", g.limits.call_timeout);
        } else {
            let _ = writeln!(out, "  limits: {}", limits(&g.limits));
        }
        let tool_rates = g.tool_rates.iter().map(|(t, r)| (format!("{name}.{t}"), r));
        for (scope, r) in std::iter::once((format!("all of {name}"), &g.rates)).chain(tool_rates) {
            if !r.is_empty() {
                let _ = writeln!(out, "  rates of {scope}: {}", rates(r));
            }
        }
    }
    explain_rules(p, &mut out);
    out
}

/// The tools that wait for approval and the rules, in the order they are
/// tried.
fn explain_rules(p: &Policy, out: &mut String) {
    if !p.approve.is_empty() {
        let _ = writeln!(
            out,
            "approval (a person answers; none within {:?} denies): {}",
            p.limits.approval_timeout,
            p.approve.join(", ")
        );
    }
    if p.rules.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "rules (per tool, the first that matches decides; a tool with allow rules is refused where none matches):"
    );
    for r in &p.rules {
        let when: Vec<String> = r
            .when
            .iter()
            .map(|c| {
                let test = serde_json::to_value(&c.test).expect("invariant: JSON serializes");
                format!(
                    "{} {test}",
                    if c.pointer.is_empty() {
                        "(arguments)"
                    } else {
                        &c.pointer
                    }
                )
            })
            .collect();
        let when = if when.is_empty() {
            "every call".to_owned()
        } else {
            when.join(" and ")
        };
        let _ = writeln!(
            out,
            "  rules.{}: {} {} when {when}",
            r.name,
            r.action.as_str(),
            r.tool
        );
    }
}

fn rates(r: &Rates) -> String {
    let mut parts = Vec::new();
    if let Some(n) = r.calls_per_minute {
        parts.push(format!("{n} calls per minute"));
    }
    if let Some(n) = r.calls_per_day {
        parts.push(format!(
            "{n} calls per UTC day in all runs of the state directory"
        ));
    }
    if let Some(n) = r.read_per_run {
        parts.push(format!("{n} B read per run"));
    }
    if let Some(n) = r.written_per_run {
        parts.push(format!("{n} B written per run"));
    }
    parts.join(", ")
}

fn secret(s: &SecretSource) -> String {
    match s {
        SecretSource::Env(v) => format!("from env {v}"),
        SecretSource::File(f) => format!("from file {}", f.display()),
    }
}

fn brain(b: &BrainSpec) -> String {
    match b {
        BrainSpec::Scripted { script } => format!("scripted, script {}", script.display()),
        BrainSpec::Provider(p) => {
            let protocol = match p.protocol {
                Protocol::Openai => "openai",
                Protocol::Anthropic => "anthropic",
            };
            let key = match &p.api_key_env {
                Some(var) => format!("key from host variable {var}, added by the host"),
                None if p.api_key_fallback => {
                    "key from OPENAI_API_KEY if set, added by the host".into()
                }
                None => "no key".into(),
            };
            format!(
                "{protocol} model {} at {} ({key}); network: {} only; max-tokens {}",
                p.model,
                p.base_url,
                p.origin(),
                p.max_tokens
            )
        }
    }
}

fn source(c: &ComponentSource) -> String {
    match c {
        ComponentSource::Builtin(b) => format!("builtin:{b}"),
        ComponentSource::File(path) => path.display().to_string(),
        ComponentSource::Bundle(b) => format!("bundle:{b}"),
        ComponentSource::Mcp(McpServer::Http { url, origin, .. }) => {
            format!("MCP server {url}; network: {origin} only")
        }
        ComponentSource::Mcp(McpServer::Stdio { command, cwd }) => format!(
            "UNSANDBOXED stdio MCP server: the host process {command:?} in {}, with the host's file and network access; cleared environment but for env and secrets",
            cwd.display()
        ),
    }
}

fn limits(l: &ComponentLimits) -> String {
    format!(
        "memory {} MiB, fuel {} per call, call-timeout {:?}",
        l.memory >> 20,
        l.fuel,
        l.call_timeout
    )
}
