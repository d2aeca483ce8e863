//! Brains named by a short spec (`--brain local`, `Config::brain`), and the
//! local model server's address.

use std::path::PathBuf;

use femtoclaw_policy::{BrainSpec, Policy, Protocol, ProviderBrain};

use crate::{BrainChoice, RunError};

/// `--brain local`'s server, and the brain when none is named: Ollama's
/// OpenAI-compatible endpoint.
const LOCAL_BRAIN: &str = "http://127.0.0.1:11434/v1";

/// The local brain's endpoint: Ollama's own `OLLAMA_HOST` (`HOST[:PORT]`,
/// port 11434 when none is given, or a URL, whose scheme gives its port)
/// when it is set, as Ollama's clients read it, else [`LOCAL_BRAIN`].
pub fn local_brain_url(ollama_host: Option<String>) -> String {
    let Some(host) = ollama_host
        .as_deref()
        .map(|h| h.trim().trim_end_matches('/'))
        .filter(|h| !h.is_empty())
    else {
        return LOCAL_BRAIN.to_owned();
    };
    if host.contains("://") {
        return format!("{host}/v1");
    }
    // A port follows the last `:`, unless that is inside an IPv6 `[…]`.
    let has_port = host.rfind(':').is_some_and(|i| !host[i..].contains(']'));
    let port = if has_port { "" } else { ":11434" };
    format!("http://{host}{port}/v1")
}

/// The brain of a run: the one `spec` names; else the policy's `[brain]`
/// (`None`); else, named nowhere, the local model server, which needs no
/// key and sends nothing off the machine.
pub fn choose_brain(spec: Option<&str>, policy: &Policy) -> Result<Option<BrainChoice>, RunError> {
    match (spec, &policy.brain) {
        (Some(spec), _) => parse_brain(spec, policy).map(Some),
        (None, Some(_)) => Ok(None),
        (None, None) => {
            tracing::info!(target: "femtoclaw::run", brain = "local", "no brain named and no [brain] in the policy: the local brain");
            parse_brain("local", policy).map(Some)
        }
    }
}

/// The brain a spec names, as `--brain` takes it: `local[=URL]` (an
/// OpenAI-compatible server, Ollama's by default), `remote` (the policy's
/// provider, else `OPENAI_BASE_URL` / `OPENAI_API_KEY`), `scripted:FILE`
/// or `PATH.wasm`. The model comes from the policy, else `FC_MODEL`.
pub fn parse_brain(spec: &str, policy: &Policy) -> Result<BrainChoice, RunError> {
    let config = RunError::Config;
    let policy_provider = match &policy.brain {
        Some(BrainSpec::Provider(p)) => Some(p.clone()),
        _ => None,
    };
    let model = || {
        policy_provider
            .as_ref()
            .map(|p| p.model.clone())
            .or_else(|| std::env::var("FC_MODEL").ok())
            .or_else(|| std::env::var("OPENAI_MODEL").ok())
    };
    if let Some(rest) = spec.strip_prefix("local") {
        let url = match rest.strip_prefix('=') {
            Some(url) => url.to_owned(),
            None if rest.is_empty() => local_brain_url(std::env::var("OLLAMA_HOST").ok()),
            None => return Err(config(format!("unknown --brain `{spec}`"))),
        };
        let model = model().unwrap_or_else(|| "llama3.2".to_owned());
        return ProviderBrain::new(Protocol::Openai, &url, &model, None)
            .map(BrainChoice::Provider)
            .map_err(config);
    }
    if spec == "remote" {
        if let Some(p) = policy_provider.clone() {
            return Ok(BrainChoice::Provider(p));
        }
        let url = std::env::var("OPENAI_BASE_URL")
            .unwrap_or_else(|_| "https://api.openai.com/v1".to_owned());
        // Everything missing is said at once.
        let mut missing = Vec::new();
        if model().is_none() {
            missing.push("a model (FC_MODEL, or a [brain] in the policy)");
        }
        if std::env::var_os("OPENAI_API_KEY").is_none() {
            missing.push("a key (OPENAI_API_KEY, or a [brain] with `api-key-env` in the policy)");
        }
        if !missing.is_empty() {
            return Err(config(format!(
                "--brain remote needs {}; the endpoint is {url} (OPENAI_BASE_URL)",
                missing.join(" and ")
            )));
        }
        let model = model().expect("invariant: checked above");
        return ProviderBrain::new(
            Protocol::Openai,
            &url,
            &model,
            Some("OPENAI_API_KEY".into()),
        )
        .map(BrainChoice::Provider)
        .map_err(config);
    }
    if let Some(file) = spec.strip_prefix("scripted:") {
        return Ok(BrainChoice::Scripted(PathBuf::from(file)));
    }
    if spec.ends_with(".wasm") {
        return Ok(BrainChoice::Component(PathBuf::from(spec)));
    }
    Err(config(format!(
        "unknown --brain `{spec}` (expected `local[=URL]`, `remote`, `scripted:FILE` or `PATH.wasm`)"
    )))
}

#[cfg(test)]
mod tests {
    use super::{LOCAL_BRAIN, local_brain_url};

    #[test]
    fn the_local_brain_is_ollamas_address_or_its_ollama_host() {
        let url = |h: Option<&str>| local_brain_url(h.map(str::to_owned));
        assert_eq!(url(None), LOCAL_BRAIN);
        assert_eq!(url(Some(" ")), LOCAL_BRAIN);
        assert_eq!(url(Some("127.0.0.1:11500")), "http://127.0.0.1:11500/v1");
        assert_eq!(url(Some("http://[::1]:11434/")), "http://[::1]:11434/v1");
        // Without a port, Ollama's (OLLAMA_HOST=0.0.0.0 is a common server setting).
        assert_eq!(url(Some("0.0.0.0")), "http://0.0.0.0:11434/v1");
        assert_eq!(url(Some("[::1]")), "http://[::1]:11434/v1");
        assert_eq!(url(Some("https://models.local")), "https://models.local/v1");
    }
}
