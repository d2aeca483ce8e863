//! The provider brain: OpenAI's Chat Completions (also spoken by Ollama,
//! llama.cpp, vLLM, LM Studio and most gateways) or Anthropic's Messages,
//! chosen by the `protocol` setting. It reaches only its provider's origin
//! (the host's network gate enforces it) and never sees the API key: the
//! host adds it to requests for that origin.

mod anthropic;
mod http;
mod names;
mod openai;

use femtoclaw::runtime::brain_config;
use femtoclaw::runtime::types::{BrainError, Completion};

wit_bindgen::generate!({ path: "../../wit", world: "brain" });

use exports::femtoclaw::runtime::model::{Guest, Request};

/// Settings from the policy's `[brain]`.
pub(crate) struct Settings {
    pub base_url: String,
    pub model: String,
    pub temperature: Option<f64>,
    pub max_tokens: u32,
}

fn setting(key: &str) -> Result<String, BrainError> {
    brain_config::get(key).ok_or_else(|| BrainError::Config(format!("no `{key}` setting")))
}

struct Provider;

impl Guest for Provider {
    fn complete(request: Request) -> Result<Completion, BrainError> {
        let settings = Settings {
            base_url: setting("base-url")?,
            model: setting("model")?,
            temperature: brain_config::get("temperature").and_then(|t| t.parse().ok()),
            max_tokens: brain_config::get("max-tokens").and_then(|t| t.parse().ok()).unwrap_or(1024),
        };
        let names = names::Names::new(&request.tools)?;
        match setting("protocol")?.as_str() {
            "openai" => openai::complete(&settings, &names, &request),
            "anthropic" => anthropic::complete(&settings, &names, &request),
            other => Err(BrainError::Config(format!("unknown protocol `{other}`"))),
        }
    }
}

export!(Provider);
