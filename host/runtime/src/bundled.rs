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

/// A bundle let in: who signed it, and the highest version of it run from
/// that signer before this one (`None`: the first).
#[derive(Debug, Clone)]
pub struct Admission {
    /// The signing key's fingerprint, or `unsigned` where the policy allows
    /// unsigned bundles.
    pub signer: String,
    /// The highest version recorded before.
    pub previous: Option<femtoclaw_bundle::Version>,
}

/// Why a bundle was not let in.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// Its signature does not satisfy the policy's `[trust]`, or a trusted
    /// key cannot be read.
    #[error(transparent)]
    Bundle(#[from] femtoclaw_bundle::BundleError),
    /// The rollback record could not be read or raised.
    #[error("{0}")]
    Journal(String),
}

/// What every runner of bundles checks before a byte of one is compiled:
/// its signature under the policy's `[trust]`, then the rollback record of
/// its name and signer, raised to its version in `journal` (one
/// transaction). Whether a lower version may run is the caller's decision,
/// from [`Admission::previous`].
pub fn admit(
    bundle: &Bundle,
    policy: &femtoclaw_policy::Policy,
    journal: &mut femtoclaw_journal::Journal,
) -> Result<Admission, AdmitError> {
    let signer = signer(bundle, policy)?;
    let key = format!("bundle {} {signer}", bundle.manifest.name);
    let previous = raise_version(journal, &key, bundle.manifest.version)?;
    Ok(Admission { signer, previous })
}

/// Who signed a bundle, checked against the policy's `[trust]`: the key's
/// fingerprint, or `unsigned` where the policy allows unsigned bundles.
pub fn signer(bundle: &Bundle, policy: &femtoclaw_policy::Policy) -> Result<String, AdmitError> {
    use femtoclaw_bundle::{BundleError, PublicKey};
    let keys = PublicKey::read_all(&policy.trust.keys)?;
    let signer = match bundle.verify(&keys) {
        Ok(key) => key.fingerprint(),
        Err(e @ BundleError::BadSignature { .. }) => return Err(e.into()),
        Err(e) if policy.trust.require_signature => return Err(e.into()),
        Err(e) => {
            tracing::warn!(bundle = %bundle.manifest.name, reason = %e, "running a bundle without a trusted signature (the policy does not require one)");
            "unsigned".to_owned()
        }
    };
    Ok(signer)
}

/// Raises the rollback record `key` to `version` unless a higher one is
/// there; returns the version recorded before. A record that does not
/// parse fails closed.
pub fn raise_version(
    journal: &mut femtoclaw_journal::Journal,
    key: &str,
    version: femtoclaw_bundle::Version,
) -> Result<Option<femtoclaw_bundle::Version>, AdmitError> {
    use femtoclaw_bundle::Version;
    let greater = |new: &str, old: &str| match (Version::parse(new), Version::parse(old)) {
        (Ok(new), Ok(old)) => new > old,
        // A record that does not parse is kept, and refused below.
        _ => false,
    };
    let previous = journal
        .raise_record(key, &version.to_string(), greater)
        .map_err(|e| AdmitError::Journal(e.to_string()))?;
    previous
        .map(|text| {
            Version::parse(&text).map_err(|e| {
                AdmitError::Journal(format!(
                    "the rollback record for `{key}` is damaged (`{text}`: {e}); signed bundles do not run until it is repaired"
                ))
            })
        })
        .transpose()
}
