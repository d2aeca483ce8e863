//! Secret values are removed from everything a guest or a model says, where
//! it enters the host: tool specs and results, log lines, brain turns, run
//! errors. The journal and the brain's requests are redacted again on the
//! way out, so that no path can carry a secret to a sink.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use crate::RunError;
use crate::bindings::{Completion, Message, ToolSpec};

/// The secret values of a run, each with the name that replaces it: what
/// carries text a guest, a server or a model chose to a sink removes them.
#[derive(Clone, Default)]
pub struct Redactor(Arc<Vec<(String, String)>>);

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.0.len())
    }
}

/// Secrets shorter than this are refused: redacting them would mangle
/// ordinary text, and they are too weak to be worth protecting.
pub(crate) const MIN_SECRET_LEN: usize = 8;

impl Redactor {
    /// A redactor for these `(name, value)` pairs.
    pub(crate) fn new(secrets: Vec<(String, String)>) -> Redactor {
        let mut pairs: Vec<(String, String)> = secrets
            .into_iter()
            .map(|(name, value)| (value, format!("[redacted:{name}]")))
            .collect();
        // Longest first, so a secret containing another is replaced whole.
        pairs.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Redactor(Arc::new(pairs))
    }

    /// `text` with every secret value replaced by its name.
    pub fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (value, replacement) in self.0.iter() {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), replacement));
            }
        }
        out
    }

    /// Redacts a JSON text. Secrets are replaced inside the parsed strings
    /// (a secret may appear escaped in the text), and the result re-encoded.
    pub(crate) fn apply_json(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_owned();
        }
        match serde_json::from_str::<Value>(text) {
            Ok(mut value) => {
                self.value(&mut value);
                // Escapes that spelled a secret differently are gone too.
                let encoded = value.to_string();
                self.apply(&encoded).into_owned()
            }
            Err(_) => self.apply(text).into_owned(),
        }
    }

    /// Redacts every string (and object key) of a JSON value in place.
    pub(crate) fn value(&self, value: &mut Value) {
        if self.0.is_empty() {
            return;
        }
        self.walk(value);
    }

    /// A tool spec as a component described it, with secrets removed from
    /// its name, description and schemas.
    pub(crate) fn spec(&self, spec: ToolSpec) -> ToolSpec {
        if self.0.is_empty() {
            return spec;
        }
        ToolSpec {
            name: self.apply(&spec.name).into_owned(),
            description: self.apply(&spec.description).into_owned(),
            input_schema: self.apply_json(&spec.input_schema),
            output_schema: spec.output_schema.map(|s| self.apply_json(&s)),
            effect: spec.effect,
        }
    }

    /// A model's turn with secrets removed: a provider could echo what the
    /// host sent it (its key), and the agent must never see a secret.
    pub(crate) fn completion(&self, mut c: Completion) -> Completion {
        if self.0.is_empty() {
            return c;
        }
        c.content = c.content.map(|t| self.apply(&t).into_owned());
        for call in &mut c.tool_calls {
            call.id = self.apply(&call.id).into_owned();
            call.name = self.apply(&call.name).into_owned();
            call.arguments = self.apply(&call.arguments).into_owned();
        }
        c
    }

    /// A conversation with secrets removed (what a brain is sent).
    pub(crate) fn messages(&self, messages: &mut [Message]) {
        if self.0.is_empty() {
            return;
        }
        for m in messages {
            m.content = m.content.take().map(|t| self.apply(&t).into_owned());
            for call in &mut m.tool_calls {
                call.name = self.apply(&call.name).into_owned();
                call.arguments = self.apply(&call.arguments).into_owned();
            }
        }
    }

    /// A run error with secrets removed from its text (a component may trap
    /// with one in its message while starting).
    pub(crate) fn run_error(&self, error: RunError) -> RunError {
        if self.0.is_empty() {
            return error;
        }
        let r = |m: String| self.apply(&m).into_owned();
        match error {
            RunError::Config(m) => RunError::Config(r(m)),
            RunError::Component { component, message } => RunError::Component {
                component: r(component),
                message: r(message),
            },
            RunError::Limit(m) => RunError::Limit(r(m)),
            RunError::Trap { component, message } => RunError::Trap {
                component: r(component),
                message: r(message),
            },
            RunError::Internal(m) => RunError::Internal(r(m)),
            other => other,
        }
    }

    fn walk(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.apply(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.walk(v)),
            Value::Object(map) => {
                let redacted: serde_json::Map<String, Value> = std::mem::take(map)
                    .into_iter()
                    .map(|(k, mut v)| {
                        self.walk(&mut v);
                        (self.apply(&k).into_owned(), v)
                    })
                    .collect();
                *map = redacted;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_secret_in_text_and_json() {
        let r = Redactor::new(vec![
            ("TOKEN".into(), "s3cr3t-value".into()),
            ("Q".into(), "quote\"secret".into()),
        ]);
        assert_eq!(
            r.apply("a s3cr3t-value b s3cr3t-value"),
            "a [redacted:TOKEN] b [redacted:TOKEN]"
        );
        let json = r#"{"v":"x quote\"secret y","s3cr3t-value":[1,"s3cr3t-value"]}"#;
        let out = r.apply_json(json);
        assert!(
            !out.contains("s3cr3t") && !out.contains("quote\\\"secret"),
            "{out}"
        );
        assert!(
            out.contains("[redacted:Q]") && out.contains("[redacted:TOKEN]"),
            "{out}"
        );
        assert_eq!(Redactor::default().apply_json("{\"a\":1}"), "{\"a\":1}");
    }
}
