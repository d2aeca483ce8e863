//! Running what a verified bundle holds: its components, narrowed by the
//! operator's policy (never widened), with the tool specs it pinned.

use std::sync::Arc;

use femtoclaw_bundle::{Bundle, Role};
use femtoclaw_policy::{CapabilityGrant, MountMode, NetPattern};
use serde_json::Value;

use crate::bindings::ToolSpec;
use crate::{ComponentRef, RunError};

fn label(bundle: &Bundle, component: &str) -> String {
    format!(
        "bundle:{}@{}/{component}",
        bundle.manifest.name, bundle.manifest.version
    )
}

/// The bundle's component for role `role`.
pub(crate) fn component(bundle: &Bundle, name: &str, role: Role) -> Result<ComponentRef, RunError> {
    let c = bundle
        .manifest
        .component(name)
        .filter(|c| c.role == role)
        .ok_or_else(|| {
            RunError::Config(
                format!("the bundle has no {role:?} component `{name}`").to_lowercase(),
            )
        })?;
    let bytes = bundle
        .component_bytes(&c.name)
        .expect("invariant: parsed bundles hold every component");
    Ok(ComponentRef::Bundled {
        label: label(bundle, name),
        bytes: Arc::new(bytes.to_vec()),
    })
}

/// The bundle's agent, if it has one.
pub(crate) fn agent(bundle: &Bundle) -> Option<ComponentRef> {
    let c = bundle
        .manifest
        .components
        .iter()
        .find(|c| c.role == Role::Agent)?;
    component(bundle, &c.name, Role::Agent).ok()
}

/// A capability of the bundle, after checking that the policy grants it no
/// more than it asked for. Returns its source and its pinned tool specs.
pub(crate) fn capability(
    bundle: Option<&Bundle>,
    capability: &str,
    name: &str,
    grant: &CapabilityGrant,
) -> Result<(ComponentRef, Vec<Value>), RunError> {
    let bundle = bundle.ok_or_else(|| {
        RunError::Config(format!(
            "`capabilities.{capability}.component` is `bundle:{name}`, but no bundle is being run"
        ))
    })?;
    let source = component(bundle, name, Role::Capability)?;
    let c = bundle
        .manifest
        .component(name)
        .expect("invariant: found above");
    let wider = |what: String| {
        RunError::Config(format!(
            "`capabilities.{capability}` grants {what}, which bundle `{}` does not ask for: a policy may narrow a bundle's grants, never widen them",
            bundle.manifest.name
        ))
    };
    let asked = &c.grants;
    for tool in &grant.tools {
        if !asked.tools.contains(tool) {
            return Err(wider(format!("tool `{tool}`")));
        }
    }
    for m in &grant.mounts {
        let ok = matches!(
            (asked.mounts.get(&m.guest).map(String::as_str), m.mode),
            (Some("rw"), _) | (Some("ro"), MountMode::ReadOnly)
        );
        if !ok {
            return Err(wider(format!("mount `{}` ({})", m.guest, m.mode.as_str())));
        }
    }
    let asked_net: Vec<NetPattern> = asked
        .net
        .iter()
        .filter_map(|p| NetPattern::parse(p).ok())
        .collect();
    for n in &grant.net {
        if !asked_net.contains(n) {
            return Err(wider(format!("network access to `{n}`")));
        }
    }
    for var in grant.env.iter().chain(grant.secrets.keys()) {
        if !asked.env.contains(var) {
            return Err(wider(format!("variable `{var}`")));
        }
    }
    Ok((source, c.tools.clone()))
}

/// Checks that a policy grants a bundle's capability `component` (as
/// capability `capability`) no more than the bundle asks for; the error
/// names the widening grant.
pub fn check_grants(
    bundle: &Bundle,
    capability: &str,
    component: &str,
    grant: &CapabilityGrant,
) -> Result<(), RunError> {
    self::capability(Some(bundle), capability, component, grant).map(|_| ())
}

/// Refuses a capability whose tools differ from what its bundle pinned: a
/// description or schema changed after the bundle was signed (a rug pull).
pub(crate) fn check_pinned(
    capability: &str,
    pinned: &[Value],
    specs: &[ToolSpec],
) -> Result<(), RunError> {
    let now: Vec<Value> = specs
        .iter()
        .map(|s| serde_json::to_value(s).expect("invariant: specs serialize"))
        .collect();
    if now != pinned {
        return Err(RunError::Component {
            component: format!("capability {capability}"),
            message: "its tools differ from the specs pinned in the signed bundle (a description or schema changed)".into(),
        });
    }
    Ok(())
}
