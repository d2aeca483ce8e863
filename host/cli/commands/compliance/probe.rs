//! The probe of the safety checks: a session whose one capability is the
//! built-in probe component, under the name and grant of the capability it
//! stands in for.

use std::collections::BTreeMap;
use std::path::Path;

use femtoclaw_policy::{CapabilityGrant, ComponentSource, OnRefusal, Policy};
use femtoclaw_runtime::{Hooks, Runtime, Session, SessionPlan};
use serde_json::Value;

/// What a probe session is for.
#[derive(Clone, Copy)]
pub(super) enum Kind<'a> {
    /// The grant's mounts, network and limits; no call budget.
    Sandbox,
    /// The grant's variables and secrets too, journaled into this scratch
    /// state directory.
    Journaled(&'a Path),
    /// The policy's call budgets: `limits.max-tool-calls`, and the grant's
    /// smallest `max-calls` on the probe's `output`.
    Budget,
}

/// A session whose one capability is the probe, under the capability's name.
pub(super) struct Probe {
    session: Session,
    /// The capability's name, which the probe takes.
    name: String,
}

impl Probe {
    pub(super) async fn open(
        runtime: &Runtime,
        policy: &Policy,
        name: &str,
        grant: &CapabilityGrant,
        kind: Kind<'_>,
    ) -> anyhow::Result<Probe> {
        let mut policy = policy.clone();
        let tools = [
            "open", "create", "symlink", "allocate", "spin", "output", "http", "tcp", "reveal",
        ];
        let (env, secrets, state) = match kind {
            Kind::Journaled(dir) => (
                grant.env.clone(),
                grant.secrets.clone(),
                Some(dir.to_owned()),
            ),
            Kind::Sandbox | Kind::Budget => (vec![], BTreeMap::new(), None),
        };
        let max_calls = match (kind, grant.max_calls.values().min()) {
            (Kind::Budget, Some(&n)) => BTreeMap::from([("output".to_owned(), n)]),
            _ => BTreeMap::new(),
        };
        let probe = CapabilityGrant {
            component: ComponentSource::Builtin("compliance-probe".into()),
            tools: tools.map(String::from).to_vec(),
            mounts: grant.mounts.clone(),
            net: grant.net.clone(),
            env,
            secrets,
            max_calls,
            rates: Default::default(),
            tool_rates: BTreeMap::new(),
            limits: grant.limits,
        };
        // Under the capability's own name, so that messages name its grant.
        policy.capabilities = BTreeMap::from([(name.to_owned(), probe)]);
        // The probe's own calls are not what is checked: no rule or approval
        // of the policy's tools applies to them, nor a call budget unless
        // that is what is probed.
        policy.rules.clear();
        policy.approve.clear();
        policy.on_refusal = OnRefusal::Inform;
        if !matches!(kind, Kind::Budget) {
            policy.limits.max_tool_calls = u32::MAX;
        }
        let plan = SessionPlan {
            policy,
            client: "fc-host compliance probe".into(),
            state,
            bundle: None,
            // Whatever the gate decides, a probe's request is never sent.
            hooks: Hooks {
                decide_only: true,
                ..Hooks::default()
            },
        };
        Ok(Probe {
            session: runtime.open_session(plan).await?,
            name: name.to_owned(),
        })
    }

    pub(super) fn run_id(&self) -> String {
        self.session.run_id().to_owned()
    }

    pub(super) fn close(self) -> anyhow::Result<()> {
        self.session.close()?;
        Ok(())
    }

    /// One probe call: its JSON answer, or the error the caller was shown.
    pub(super) async fn call(
        &mut self,
        tool: &str,
        arguments: Value,
    ) -> anyhow::Result<Result<Value, String>> {
        let shown = self
            .session
            .call(&format!("{}.{tool}", self.name), &arguments.to_string())
            .await?;
        Ok(if shown.is_error {
            Err(shown.text)
        } else {
            Ok(serde_json::from_str(&shown.text)?)
        })
    }
}
