//! `Agent`, as the 1.x crate has it, on FemtoClaw's embedding API.

use std::sync::atomic::{AtomicU64, Ordering};

use femtoclaw_policy::{Policy, Protocol, ProviderBrain};
use femtoclaw_runtime::prelude::BrainChoice;
use serde::{Deserialize, Serialize};

use crate::Config;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The system prompt.
    System,
    /// The user: a task given to `run`.
    User,
    /// The agent: its answer.
    Assistant,
    /// A tool's result.
    Tool,
}

/// One message of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

/// An agent: FemtoClaw's built-in agent under the config's policy.
pub struct Agent {
    inner: femtoclaw_runtime::Agent,
    brain: Brain,
    max_steps: u32,
    max_memory: usize,
    memory: tokio::sync::Mutex<Vec<Message>>,
}

enum Brain {
    /// Offline and deterministic: FemtoClaw's scripted brain, given a
    /// one-turn script (`ACK: <task>`) per run.
    Echo {
        scripts: tempfile::TempDir,
        next: AtomicU64,
    },
    /// An OpenAI-compatible provider.
    Provider(ProviderBrain),
}

impl Agent {
    /// An agent with `config`; its policy is read and checked now.
    pub fn new(config: Config) -> anyhow::Result<Agent> {
        let policy = Policy::load(&config.policy)?;
        let brain = match config.brain.backend.as_str() {
            "echo" => Brain::Echo {
                scripts: tempfile::tempdir()?,
                next: AtomicU64::new(0),
            },
            "openai" => {
                let base = std::env::var("FEMTO_OPENAI_BASE_URL")
                    .unwrap_or_else(|_| "https://api.openai.com/v1".into());
                let model = config.brain.model.clone().ok_or_else(|| {
                    anyhow::anyhow!("the `openai` brain needs a model (`FEMTO_OPENAI_MODEL`)")
                })?;
                let from_env = std::env::var("FEMTO_OPENAI_API_KEY").ok();
                if config.brain.api_key.is_some() && config.brain.api_key != from_env {
                    anyhow::bail!(
                        "FemtoClaw reads the provider's key from `FEMTO_OPENAI_API_KEY` when it sends a request (a key never sits in the run's plan or journal): set it there"
                    );
                }
                let provider = ProviderBrain::new(
                    Protocol::Openai,
                    &base,
                    &model,
                    Some("FEMTO_OPENAI_API_KEY".into()),
                )
                .map_err(|e| anyhow::anyhow!("`FEMTO_OPENAI_BASE_URL`: {e}"))?;
                Brain::Provider(provider)
            }
            other => anyhow::bail!(
                "unknown brain backend `{other}` (`FEMTO_BRAIN`): this runtime has `echo` and `openai`"
            ),
        };
        let inner = femtoclaw_runtime::Agent::new(femtoclaw_runtime::Config::default());
        inner.enforce_policy(policy);
        Ok(Agent {
            inner,
            brain,
            max_steps: u32::try_from(config.max_iterations)
                .unwrap_or(u32::MAX)
                .max(1),
            max_memory: config.max_memory,
            memory: tokio::sync::Mutex::new(Vec::new()),
        })
    }

    /// Runs the agent on `input`; returns its answer.
    pub async fn run(&self, input: &str) -> anyhow::Result<String> {
        self.remember(Role::User, input).await;
        let mut plan = self.inner.plan(input)?;
        plan.policy.limits.max_steps = plan.policy.limits.max_steps.min(self.max_steps);
        let script = match &self.brain {
            Brain::Echo { scripts, next } => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let path = scripts.path().join(format!("echo-{n}.json"));
                let turn = serde_json::json!([{ "content": format!("ACK: {input}") }]);
                std::fs::write(&path, turn.to_string())?;
                plan.brain = Some(BrainChoice::Scripted(path.clone()));
                Some(path)
            }
            Brain::Provider(provider) => {
                plan.brain = Some(BrainChoice::Provider(provider.clone()));
                None
            }
        };
        let answer = self.inner.run_plan_async(plan).await;
        if let Some(path) = script {
            let _ = std::fs::remove_file(path);
        }
        let answer = answer?.text;
        self.remember(Role::Assistant, &answer).await;
        Ok(answer)
    }

    /// The messages so far, oldest first.
    pub async fn history(&self) -> Vec<Message> {
        self.memory.lock().await.clone()
    }

    /// Forgets the history.
    pub async fn reset(&self) {
        self.memory.lock().await.clear();
    }

    /// Calls one tool directly (`fs.read_file`, as the policy grants it),
    /// gated and sandboxed as an agent's call; returns its JSON output.
    pub async fn execute_tool(
        &self,
        tool: &str,
        args: serde_json::Value,
    ) -> anyhow::Result<String> {
        Ok(self.inner.call_tool_async(tool, args).await?.to_string())
    }

    async fn remember(&self, role: Role, content: &str) {
        let mut memory = self.memory.lock().await;
        memory.push(Message {
            role,
            content: content.to_owned(),
        });
        let over = memory.len().saturating_sub(self.max_memory);
        memory.drain(..over);
    }
}
