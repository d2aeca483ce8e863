//! `Config`, as the 1.x crate has it, plus the policy FemtoClaw enforces.

/// The agent's settings. `Config::default()` reads the environment as the
/// 1.x crate does: `FEMTO_BRAIN` (`echo`, the default, or `openai`),
/// `FEMTO_OPENAI_MODEL`, `FEMTO_OPENAI_API_KEY`, and `FEMTO_OPENAI_BASE_URL`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The brain.
    pub brain: BrainConfig,
    /// Messages kept in the history (the oldest go first).
    pub max_memory: usize,
    /// Brain turns per run (the policy's `max-steps` is lowered to it).
    pub max_iterations: usize,
    /// The policy enforced: a preset (`Strict`, `Standard`, `Dev`) or a
    /// policy file. Not in the 1.x crate, whose gate allowed every tool.
    pub policy: String,
}

/// Which brain thinks.
#[derive(Debug, Clone)]
pub struct BrainConfig {
    /// `echo` (offline: answers `ACK: <the task>`) or `openai` (an
    /// OpenAI-compatible endpoint, `FEMTO_OPENAI_BASE_URL`).
    pub backend: String,
    /// The model (`openai`).
    pub model: Option<String>,
    /// The key (`openai`): it must be `FEMTO_OPENAI_API_KEY`'s value,
    /// which is where the runtime reads it from.
    pub api_key: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Config {
            brain: BrainConfig {
                backend: var("FEMTO_BRAIN").unwrap_or_else(|| "echo".into()),
                model: var("FEMTO_OPENAI_MODEL"),
                api_key: var("FEMTO_OPENAI_API_KEY"),
            },
            max_memory: 1000,
            max_iterations: 10,
            policy: "Strict".into(),
        }
    }
}
