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
}

/// The outcome of the gate for one call.
pub(crate) enum Decision<'a> {
    /// Granted (by `rule`): run it with these validated arguments.
    Allow {
        tool: &'a GrantedTool,
        arguments: Value,
        rule: String,
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

impl Gate {
    /// Registers what one capability described, keeping only granted tools.
    /// A granted tool the component does not offer is a configuration error,
    /// as is an unusable schema.
    pub(crate) fn register(
        &mut self,
        policy: &Policy,
        capability: &str,
        specs: Vec<ToolSpec>,
    ) -> Result<(), RunError> {
        let grant = &policy.capabilities[capability];
        for tool in &grant.tools {
            if !specs.iter().any(|s| &s.name == tool) {
                let offered: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                return Err(RunError::Config(format!(
                    "`capabilities.{capability}.tools` grants `{tool}`, which the component does not provide (it provides: {})",
                    offered.join(", ")
                )));
            }
        }
        for spec in specs {
            let address = format!("{capability}.{}", spec.name);
            if !grant.tools.contains(&spec.name) {
                self.offered.insert(address);
                continue;
            }
            let schema = ToolSchema::compile(&spec.input_schema, spec.output_schema.as_deref())
                .map_err(|e| RunError::Config(format!("tool `{address}`: {e}")))?;
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
        let rule = format!("capabilities.{}.tools", tool.capability);
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
            rule,
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
        gate.register(policy, "fs", vec![spec("read_file"), spec("write_file")])
            .unwrap();
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
            .register(&p, "fs", vec![spec("list_dir")])
            .err()
            .unwrap();
        assert!(err.to_string().contains("grants `read_file`"), "{err}");
    }
}
