//! Safety of a capability's secrets: the probe, holding exactly the grant's
//! secrets and variables, puts each secret's value into every sink a
//! capability has (its output, an error, a log line), marked `<<…>>`; the
//! check then reads what came out (what the caller, and so the model, was
//! shown; the journal; the log lines) and passes when every marked value
//! arrived as `[redacted:NAME]`. It never learns or prints a value itself.
//!
//! Redaction removes the value, not an encoding of it: a capability that
//! holds a secret can always send it on in another form, to a destination
//! its `net` grant names. What bounds that is the grant (see the network
//! checks), which is why secrets are granted per capability.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use femtoclaw_journal::Journal;
use femtoclaw_policy::{CapabilityGrant, Policy};
use femtoclaw_runtime::Runtime;
use serde_json::json;

use super::probe::{Kind, Probe};
use super::report::{Report, Verdict};
use super::safety::SECTION;

const SINKS: [&str; 3] = ["output", "error", "log"];

pub async fn check(
    runtime: &Runtime,
    policy: &Policy,
    name: &str,
    grant: &CapabilityGrant,
    scratch: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    if grant.secrets.is_empty() {
        return Ok(());
    }
    let subject = |secret: &str| format!("capabilities.{name}.secrets.{secret}");
    // The probe's log lines are caught here for the time of the probe.
    let lines = Captured::default();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish(),
    );
    let guard = tracing::dispatcher::set_default(&dispatch);
    let mut probe = match Probe::open(runtime, policy, name, grant, Kind::Journaled(scratch)).await
    {
        Ok(probe) => probe,
        Err(e) => {
            drop(guard);
            for secret in grant.secrets.keys() {
                report.add(
                    SECTION,
                    "the secret never leaves unredacted",
                    subject(secret),
                    Verdict::Skip,
                    format!("the probe could not start with the grant's secrets: {e:#}"),
                );
            }
            return Ok(());
        }
    };
    let mut leaks: Vec<(String, String)> = Vec::new();
    let mut absent = Vec::new();
    for secret in grant.secrets.keys() {
        for sink in SINKS {
            let shown = match probe
                .call("reveal", json!({ "var": secret, "sink": sink }))
                .await?
            {
                Ok(value) => value.to_string(),
                Err(text) => text,
            };
            if sink == "output" && !shown.contains(&format!("<<[redacted:{secret}]>>")) {
                absent.push(secret.clone());
            }
            if let Some(bad) = unredacted(&shown, secret) {
                leaks.push((
                    secret.clone(),
                    format!("its {sink} reached the caller {bad}"),
                ));
            }
        }
    }
    let run_id = probe.run_id();
    probe.close()?;
    drop(guard);
    let events = Journal::open_read_only(scratch)?
        .map(|j| j.events(&run_id))
        .transpose()?
        .unwrap_or_default();
    let logged = lines.text();
    for secret in grant.secrets.keys() {
        for event in &events {
            if let Some(bad) = unredacted(&event.data.to_string(), secret) {
                leaks.push((
                    secret.clone(),
                    format!("the journal's event {} holds it {bad}", event.seq),
                ));
            }
        }
        if let Some(bad) = unredacted(&logged, secret) {
            leaks.push((secret.clone(), format!("a log line holds it {bad}")));
        }
    }
    for secret in grant.secrets.keys() {
        let found: Vec<&str> = leaks
            .iter()
            .filter(|(s, _)| s == secret)
            .map(|(_, w)| w.as_str())
            .collect();
        let (verdict, detail) = match &found[..] {
            [] if absent.contains(secret) => (
                Verdict::Skip,
                "the probe's environment did not hold it, so nothing was tried".to_owned(),
            ),
            [] => (
                Verdict::Pass,
                format!(
                    "put into the output, an error and a log line: the caller, the journal and {} saw only its name",
                    if logged.contains(&format!("<<[redacted:{secret}]>>")) {
                        "the log"
                    } else {
                        "the log (which kept no line of it: `limits.max-log-lines`)"
                    }
                ),
            ),
            found => (Verdict::Fail, found.join("; ")),
        };
        report.add(
            SECTION,
            "the secret never leaves unredacted",
            subject(secret),
            verdict,
            detail,
        );
    }
    Ok(())
}

/// Whether `text` carries a marked value of `secret` that is not its
/// redaction: says how (never the value). A text without a marker at all
/// is fine (the call may have been refused).
fn unredacted(text: &str, secret: &str) -> Option<String> {
    let redacted = format!("[redacted:{secret}]");
    let mut rest = text;
    while let Some(start) = rest.find("<<") {
        let after = &rest[start + 2..];
        let end = after.find(">>")?;
        let marked = &after[..end];
        // The probe's own empty value (an unset variable) is no leak.
        if !marked.is_empty() && marked != redacted && !marked.starts_with("[redacted:") {
            return Some(format!(
                "unredacted ({} characters)",
                marked.chars().count()
            ));
        }
        rest = &after[end + 2..];
    }
    None
}

/// Log output written to memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("invariant: not poisoned")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("invariant: not poisoned")
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_redaction_of_a_marked_value_passes() {
        assert_eq!(
            unredacted(r#"{"value":"<<[redacted:TOKEN]>>"}"#, "TOKEN"),
            None
        );
        assert_eq!(unredacted("refused before it ran", "TOKEN"), None);
        assert_eq!(unredacted("<<>>", "TOKEN"), None);
        assert_eq!(
            unredacted("failed: <<hunter2-secret>>", "TOKEN").unwrap(),
            "unredacted (14 characters)"
        );
        assert!(unredacted("<<[redacted:TOKEN]>> then <<s3cret-value>>", "TOKEN").is_some());
    }
}
