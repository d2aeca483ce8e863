//! The capability gate's decisions about tool calls: which tools exist, which
//! the policy grants, and whether a call's arguments are acceptable. Pure
//! logic; executing an allowed call is the runtime's job.

use std::collections::{BTreeMap, BTreeSet};

use femtoclaw_policy::Policy;
use femtoclaw_protocol::{Limits as JsonLimits, ToolSchema, parse_strict};
use serde_json::Value;

use crate::RunError;
use crate::bindings::{ToolError, ToolSpec};

/// A tool the agent may call.
pub(crate) struct GrantedTool {
    /// The capability that runs it.
    pub capability: String,
    /// Its spec as the capability described it, named `<capability>.<tool>`.
    pub spec: ToolSpec,
    /// Its compiled schemas.
    pub schema: ToolSchema,
    /// Whether a host process outside the sandbox runs it (a stdio MCP
    /// server), decided once when the tool is registered.
    pub unsandboxed: bool,
}

/// The outcome of the gate for one call.
pub(crate) enum Decision<'a> {
    /// Granted: run it with these validated arguments (if the policy's
    /// rules, quotas, rates and approvals let it: `Policy::judge`).
    Allow {
        tool: &'a GrantedTool,
        arguments: Value,
    },
    /// Refused before any capability saw it.
    Refuse { rule: String, error: ToolError },
}

/// Everything the gate knows about a run's tools.
#[derive(Default)]
pub(crate) struct Gate {
    /// Granted tools by address `<capability>.<tool>`.
    granted: BTreeMap<String, GrantedTool>,
    /// Tools that components offer but the policy does not grant.
    offered: BTreeSet<String>,
}

/// A tool as a component described it, checked: a name the address
/// scheme carries, unique, with schemas that compile.
pub(crate) struct Described {
    pub spec: ToolSpec,
    pub schema: ToolSchema,
}

/// Tools one capability may describe.
const MAX_TOOLS: usize = 256;
/// Bytes of one tool's description (it is sent to the model every turn).
const MAX_DESCRIPTION: usize = 8 << 10;
/// Bytes of a tool name (`capability__tool` must fit providers' 64).
const MAX_TOOL_NAME: usize = 48;

/// Checks what a capability's `describe()` returned, like any input: a
/// component that breaks the rules of a description is refused (exit 5),
/// naming the tool and the rule.
pub(crate) fn described(component: &str, specs: Vec<ToolSpec>) -> Result<Vec<Described>, RunError> {
    let refuse = |message: String| RunError::Component {
        component: component.to_owned(),
        message,
    };
    if specs.len() > MAX_TOOLS {
        return Err(refuse(format!(
            "describes {} tools; at most {MAX_TOOLS} are accepted",
            specs.len()
        )));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let name = crate::text::escape(&spec.name).into_owned();
        if !is_tool_name(&spec.name) {
            return Err(refuse(format!(
                "describes a tool named `{name}`, which a tool address cannot carry (lowercase letters, digits, `_` and `-`, starting with a letter, at most {MAX_TOOL_NAME} bytes)"
            )));
        }
        if !seen.insert(spec.name.clone()) {
            return Err(refuse(format!(
                "describes the tool `{name}` twice (tool names are unique within a capability)"
            )));
        }
        if spec.description.len() > MAX_DESCRIPTION {
            return Err(refuse(format!(
                "the description of tool `{name}` has {} bytes; at most {MAX_DESCRIPTION} are accepted",
                spec.description.len()
            )));
        }
        let schema = ToolSchema::compile(&spec.input_schema, spec.output_schema.as_deref())
            .map_err(|e| refuse(format!("tool `{name}`: {e}")))?;
        out.push(Described { spec, schema });
    }
    Ok(out)
}

pub(crate) fn is_tool_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= MAX_TOOL_NAME
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Gate {
    /// Registers what one capability described, keeping only granted tools.
    /// A granted tool the component does not offer is a configuration error.
    pub(crate) fn register(
        &mut self,
        policy: &Policy,
        capability: &str,
        tools: Vec<Described>,
    ) -> Result<(), RunError> {
        let grant = &policy.capabilities[capability];
        for tool in &grant.tools {
            if !tools.iter().any(|t| &t.spec.name == tool) {
                let offered: Vec<&str> = tools.iter().map(|t| t.spec.name.as_str()).collect();
                return Err(RunError::Config(format!(
                    "`capabilities.{capability}.tools` grants `{tool}`, which the component does not provide (it provides: {})",
                    offered.join(", ")
                )));
            }
        }
        for Described { spec, schema } in tools {
            let address = format!("{capability}.{}", spec.name);
            if !grant.tools.contains(&spec.name) {
                self.offered.insert(address);
                continue;
            }
            let spec = ToolSpec {
                name: address.clone(),
                ..spec
            };
            self.granted.insert(
                address,
                GrantedTool {
                    capability: capability.to_owned(),
                    spec,
                    schema,
                    unsandboxed: grant.unsandboxed(),
                },
            );
        }
        Ok(())
    }

    /// The specs of every granted tool, in address order.
    pub(crate) fn specs(&self) -> Vec<ToolSpec> {
        self.granted.values().map(|t| t.spec.clone()).collect()
    }

    /// Decides one call: is the tool granted, are its arguments strict JSON
    /// that satisfies the tool's input schema?
    pub(crate) fn decide(&self, policy: &Policy, name: &str, arguments: &str) -> Decision<'_> {
        let Some(tool) = self.granted.get(name) else {
            return self.refusal(policy, name);
        };
        let value = match parse_strict(arguments, JsonLimits::default()) {
            Ok(value) => value,
            Err(e) => {
                let error = ToolError::InvalidArguments(format!(
                    "`{name}`: arguments are not strict JSON: {e}"
                ));
                return Decision::Refuse {
                    rule: "protocol.strict-json".into(),
                    error,
                };
            }
        };
        if let Err(violation) = tool.schema.check_input(&value) {
            let error = ToolError::InvalidArguments(format!(
                "`{name}`: arguments violate the input schema: {violation}"
            ));
            return Decision::Refuse {
                rule: "protocol.input-schema".into(),
                error,
            };
        }
        Decision::Allow {
            tool,
            arguments: value,
        }
    }

    fn refusal(&self, policy: &Policy, name: &str) -> Decision<'_> {
        let Some((capability, _tool)) = name.split_once('.') else {
            let error = ToolError::UnknownTool(format!(
                "`{name}` is not a tool address (expected `<capability>.<tool>`)"
            ));
            return Decision::Refuse {
                rule: "tools.address".into(),
                error,
            };
        };
        if !policy.capabilities.contains_key(capability) {
            let error = ToolError::UnknownTool(format!(
                "no capability `{capability}` is granted (tool `{name}`)"
            ));
            return Decision::Refuse {
                rule: "capabilities".into(),
                error,
            };
        }
        let rule = format!("capabilities.{capability}.tools");
        if self.offered.contains(name) {
            let error = ToolError::Denied(format!("tool `{name}` is not granted by `{rule}`"));
            return Decision::Refuse { rule, error };
        }
        let error =
            ToolError::UnknownTool(format!("capability `{capability}` has no tool `{name}`"));
        Decision::Refuse { rule, error }
    }

    /// A granted tool.
    pub(crate) fn tool(&self, name: &str) -> Option<&GrantedTool> {
        self.granted.get(name)
    }

    /// The effect class of a granted tool.
    pub(crate) fn effect(&self, name: &str) -> Option<crate::bindings::EffectClass> {
        self.granted.get(name).map(|t| t.spec.effect)
    }

    /// Checks a capability's result: strict JSON that satisfies the tool's
    /// output schema, if it declared one.
    pub(crate) fn check_output(
        tool: &GrantedTool,
        output: &str,
        limits: JsonLimits,
    ) -> Result<(), ToolError> {
        let name = &tool.spec.name;
        let value = parse_strict(output, limits).map_err(|e| {
            ToolError::Failed(format!(
                "`{name}` returned output that is not strict JSON: {e}"
            ))
        })?;
        tool.schema.check_output(&value).map_err(|v| {
            ToolError::Failed(format!(
                "`{name}` returned output that violates its output schema: {v}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::EffectClass;

    fn policy() -> Policy {
        let text =
            "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\n";
        Policy::parse("/tmp/p.toml", text).unwrap()
    }

    fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: String::new(),
            input_schema: r#"{"type":"object","properties":{"path":{"type":"string"}},"required":["path"],"additionalProperties":false}"#.into(),
            output_schema: None,
            effect: EffectClass::Read,
        }
    }

    fn gate(policy: &Policy) -> Gate {
        let mut gate = Gate::default();
        let tools = described("fs", vec![spec("read_file"), spec("write_file")]).unwrap();
        gate.register(policy, "fs", tools).unwrap();
        gate
    }

    fn refused(d: Decision) -> (String, ToolError) {
        match d {
            Decision::Refuse { rule, error } => (rule, error),
            Decision::Allow { .. } => panic!("allowed"),
        }
    }

    #[test]
    fn allows_only_granted_tools_with_valid_arguments() {
        let p = policy();
        let g = gate(&p);
        assert!(matches!(
            g.decide(&p, "fs.read_file", r#"{"path":"/data/a"}"#),
            Decision::Allow { .. }
        ));
        assert_eq!(
            g.specs()
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["fs.read_file"]
        );
        let (rule, err) = refused(g.decide(&p, "fs.write_file", r#"{"path":"/data/a"}"#));
        assert_eq!(rule, "capabilities.fs.tools");
        assert!(matches!(err, ToolError::Denied(_)));
        assert!(matches!(
            refused(g.decide(&p, "net.get", "{}")).1,
            ToolError::UnknownTool(_)
        ));
        assert!(matches!(
            refused(g.decide(&p, "fs.nope", "{}")).1,
            ToolError::UnknownTool(_)
        ));
        assert!(matches!(
            refused(g.decide(&p, "read_file", "{}")).1,
            ToolError::UnknownTool(_)
        ));
    }

    #[test]
    fn refuses_malformed_and_schema_violating_arguments() {
        let p = policy();
        let g = gate(&p);
        for (args, rule) in [
            ("not json", "protocol.strict-json"),
            (
                r#"{"path":"a","path":"/etc/passwd"}"#,
                "protocol.strict-json",
            ),
            ("{}", "protocol.input-schema"),
            (r#"{"path":1}"#, "protocol.input-schema"),
            (r#"{"path":"a","admin":true}"#, "protocol.input-schema"),
        ] {
            let (r, err) = refused(g.decide(&p, "fs.read_file", args));
            assert_eq!(r, rule, "{args}");
            assert!(matches!(err, ToolError::InvalidArguments(_)), "{args}");
        }
    }

    #[test]
    fn a_granted_tool_the_component_lacks_is_a_config_error() {
        let p = policy();
        let err = Gate::default()
            .register(&p, "fs", described("fs", vec![spec("list_dir")]).unwrap())
            .err()
            .unwrap();
        assert!(err.to_string().contains("grants `read_file`"), "{err}");
    }

    #[test]
    fn descriptions_that_break_the_rules_refuse_the_component() {
        let refused = |specs: Vec<ToolSpec>| match described("c", specs) {
            Err(RunError::Component { message, .. }) => message,
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("accepted"),
        };
        let twice = refused(vec![spec("echo"), spec("echo")]);
        assert!(twice.contains("`echo` twice"), "{twice}");
        for bad in [
            "read\nfile",
            "Read",
            "a.b",
            "",
            "x\u{1b}[2J",
            &"a".repeat(49),
        ] {
            let m = refused(vec![spec(bad)]);
            assert!(m.contains("a tool address cannot carry"), "{bad}: {m}");
            assert!(!m.contains('\n') && !m.contains('\u{1b}'), "{m}");
        }
        let remote = ToolSpec {
            input_schema: r#"{"$ref":"https://example.com/s.json"}"#.into(),
            ..spec("get")
        };
        assert!(refused(vec![remote]).contains("tool `get`: invalid input schema"));
        let long = ToolSpec {
            description: "d".repeat(MAX_DESCRIPTION + 1),
            ..spec("get")
        };
        assert!(refused(vec![long]).contains("description of tool `get`"));
        assert!(
            refused((0..=MAX_TOOLS).map(|i| spec(&format!("t{i}"))).collect())
                .contains("at most 256")
        );
    }
}
