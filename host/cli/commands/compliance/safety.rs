//! Safety: a probe component attacks each capability's grant from inside
//! the sandbox, under that capability's name and grant, and the report says
//! per grant what held: its mounts and limits here, its network in
//! `network.rs`, its secrets in `secrets.rs`.
//!
//! Nothing a probe does reaches outside the grant: it opens, creates and
//! links only inside its mounts, removes what it created, asks the network
//! only for destinations the gate refuses before connecting, and the one
//! thing done from outside (a symbolic link planted in a read-write mount)
//! is removed again at once.

use std::path::Path;

use femtoclaw_policy::{CapabilityGrant, ComponentSource, Mount, MountMode, Policy};
use femtoclaw_runtime::Runtime;
use serde_json::{Value, json};

use super::probe::{Kind, Probe};
use super::report::{Report, Verdict};

pub(super) const SECTION: &str = "safety";

/// What the probe's symbolic links and planted link are called.
const LINK: &str = "fc-compliance-probe";

/// Paths that leave a mount's directory by `..` or by being absolute.
const ESCAPES: [&str; 5] = [
    "..",
    "../..",
    "./../x",
    "../../../../../../../../etc/passwd",
    "/etc/passwd",
];

/// Link targets outside a mount.
const OUTSIDE: [&str; 3] = ["..", "../../../../../../../../etc", "/etc"];

/// The directories fc-host keeps for itself: no mount may reach them.
pub struct OwnDirs<'a> {
    pub state: &'a Path,
    pub cache: &'a Path,
}

pub async fn check(
    runtime: &Runtime,
    policy: &Policy,
    own: OwnDirs<'_>,
    scratch: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    if policy.capabilities.is_empty() {
        report.add(
            SECTION,
            "granted capabilities",
            "policy",
            Verdict::Skip,
            "the policy grants no capability",
        );
    }
    for (name, grant) in &policy.capabilities {
        if matches!(grant.component, ComponentSource::Mcp(_)) {
            report.add(
                SECTION,
                "sandbox",
                format!("capabilities.{name}"),
                Verdict::Skip,
                "an MCP server: its tools run outside the WebAssembly sandbox, where no probe can run",
            );
            continue;
        }
        let mut probe = Probe::open(runtime, policy, name, grant, Kind::Sandbox).await?;
        for mount in &grant.mounts {
            let subject = format!(
                "capabilities.{name}.mounts {} ({})",
                mount.guest,
                mode(mount)
            );
            let (verdict, detail) = own_state(&mount.host, &own);
            report.add(
                SECTION,
                "fc-host's own state is out of reach",
                &subject,
                verdict,
                detail,
            );
            probe.mount(mount, &subject, report).await?;
        }
        super::network::check(&mut probe, name, grant, report).await?;
        let limits = format!("capabilities.{name}.limits");
        probe.limits(&limits, grant, policy, report).await?;
        probe.close()?;
        budget(runtime, policy, name, grant, report).await?;
        super::secrets::check(runtime, policy, name, grant, scratch, report).await?;
    }
    Ok(())
}

fn mode(mount: &Mount) -> &'static str {
    match mount.mode {
        MountMode::ReadOnly => "ro",
        MountMode::ReadWrite => "rw",
    }
}

impl Probe {
    async fn mount(
        &mut self,
        mount: &Mount,
        subject: &str,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let guest = mount.guest.as_str();
        let mut opened = Vec::new();
        for path in ESCAPES {
            let answer = self
                .call("open", json!({ "mount": guest, "path": path }))
                .await?;
            if answer.is_ok_and(|a| a["opened"] == true) {
                opened.push(path);
            }
        }
        let (verdict, detail) = escapes(&opened);
        report.add(
            SECTION,
            "`..` and absolute paths stay inside",
            subject,
            verdict,
            detail,
        );

        let (mut led_out, mut created) = (Vec::new(), Vec::new());
        for target in OUTSIDE {
            let answer = self
                .call("symlink", json!({ "mount": guest, "target": target }))
                .await?;
            if let Ok(a) = answer {
                if a["opened"] == true {
                    led_out.push(target);
                }
                if a["created"] == true {
                    created.push(target);
                }
            }
        }
        let planted = match mount.mode {
            MountMode::ReadWrite => self.planted(mount).await?,
            MountMode::ReadOnly => None,
        };
        let (verdict, detail) = links(&led_out, planted);
        report.add(
            SECTION,
            "symbolic links do not lead out",
            subject,
            verdict,
            detail,
        );

        if mount.mode == MountMode::ReadOnly {
            let answer = self.call("create", json!({ "mount": guest })).await?;
            let wrote = answer.is_ok_and(|a| a["file"] == true || a["dir"] == true);
            let (verdict, detail) = writes(wrote, &created);
            report.add(
                SECTION,
                "nothing is written through `ro`",
                subject,
                verdict,
                detail,
            );
        }
        Ok(())
    }

    /// Plants a link to the mount's parent directory in a read-write mount
    /// and has the probe open it: whether it led out (`None`: a file of that
    /// name exists, so nothing was planted).
    async fn planted(&mut self, mount: &Mount) -> anyhow::Result<Option<bool>> {
        let link = mount.host.join(LINK);
        let Some(parent) = mount.host.parent() else {
            return Ok(None);
        };
        if link.symlink_metadata().is_ok() || plant(parent, &link).is_err() {
            return Ok(None);
        }
        let answer = self
            .call("open", json!({ "mount": mount.guest, "path": LINK }))
            .await;
        std::fs::remove_file(&link)?;
        Ok(Some(answer?.is_ok_and(|a| a["opened"] == true)))
    }

    async fn limits(
        &mut self,
        subject: &str,
        grant: &CapabilityGrant,
        policy: &Policy,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let memory = grant.limits.memory;
        if memory + (1 << 20) >= 4 << 30 {
            report.add(
                SECTION,
                "memory limit",
                subject,
                Verdict::Skip,
                format!("{memory} bytes: more than a 32-bit guest can ask for"),
            );
        } else {
            let answer = self
                .call("allocate", json!({ "bytes": memory + (1 << 20) }))
                .await?;
            report.add(
                SECTION,
                "memory limit",
                subject,
                stopped(&answer),
                said(&answer),
            );
        }
        let answer = self.call("spin", json!({})).await?;
        report.add(
            SECTION,
            "fuel and time limits",
            subject,
            stopped(&answer),
            said(&answer),
        );
        let answer = self
            .call(
                "output",
                json!({ "bytes": policy.limits.max_tool_output + 1 }),
            )
            .await?;
        report.add(
            SECTION,
            "output limit",
            subject,
            verdict(answer.is_err()),
            said(&answer),
        );
        Ok(())
    }
}

/// The most calls the budget probe makes before it calls a budget too
/// large to probe.
const MAX_PROBED_CALLS: u32 = 10_000;

/// Calls the probe until the first call budget in its way refuses one: it
/// must refuse exactly the call past the budget.
async fn budget(
    runtime: &Runtime,
    policy: &Policy,
    name: &str,
    grant: &CapabilityGrant,
    report: &mut Report,
) -> anyhow::Result<()> {
    let run = policy.limits.max_tool_calls;
    let (limit, rule) = match grant.max_calls.iter().min_by_key(|(_, n)| **n) {
        Some((tool, &n)) if n < run => (n, format!("capabilities.{name}.max-calls.{tool} = {n}")),
        _ => (run, format!("limits.max-tool-calls = {run}")),
    };
    if limit > MAX_PROBED_CALLS {
        report.add(
            SECTION,
            "call budget",
            &rule,
            Verdict::Skip,
            format!("more than {MAX_PROBED_CALLS} calls"),
        );
        return Ok(());
    }
    let mut probe = Probe::open(runtime, policy, name, grant, Kind::Budget).await?;
    let mut answered = 0;
    let mut refusal = None;
    for _ in 0..=limit {
        match probe.call("output", json!({ "bytes": 0 })).await? {
            Ok(_) => answered += 1,
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    // A run budget ends the session (closing it reports that).
    let _ = probe.close();
    let (verdict, detail) = judge_budget(limit, answered, refusal.as_deref());
    report.add(SECTION, "call budget", &rule, verdict, detail);
    Ok(())
}

/// `answered` calls before `refusal`, against a budget of `limit`.
fn judge_budget(limit: u32, answered: u32, refusal: Option<&str>) -> (Verdict, String) {
    match refusal {
        Some(why) if answered == limit => (
            Verdict::Pass,
            super::shorten(
                &format!("{answered} calls answered, the next refused: {why}"),
                160,
            ),
        ),
        Some(why) => (
            Verdict::Fail,
            super::shorten(
                &format!("refused after {answered} calls, not {limit}: {why}"),
                160,
            ),
        ),
        None => (
            Verdict::Fail,
            format!(
                "all {answered} calls answered, {} over the budget",
                answered - limit
            ),
        ),
    }
}

#[cfg(unix)]
fn plant(target: &std::path::Path, link: &std::path::Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn plant(_: &std::path::Path, _: &std::path::Path) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "symbolic links are planted on Unix only",
    ))
}

/// Whether a mount's host directory reaches the state directory (every
/// run's journal) or the compile cache (native code fc-host loads, and the
/// key it is sealed with). A read-write one is refused by every run; a
/// read-only one runs, and fails here.
fn own_state(host: &Path, own: &OwnDirs) -> (Verdict, String) {
    let reached = femtoclaw_runtime::own_dirs::reached(host, Some(own.state), Some(own.cache));
    if reached.is_empty() {
        return (
            Verdict::Pass,
            "it reaches neither the state directory nor the compile cache".into(),
        );
    }
    let what: Vec<String> = reached
        .iter()
        .map(|(what, dir)| format!("{what} `{}`", dir.display()))
        .collect();
    (
        Verdict::Fail,
        format!(
            "its host directory `{}` reaches {}: mount a directory outside them",
            host.display(),
            what.join(" and ")
        ),
    )
}

/// Paths that left the mount by `..` or by being absolute.
fn escapes(opened: &[&str]) -> (Verdict, String) {
    match opened {
        [] => (Verdict::Pass, format!("{} paths refused", ESCAPES.len())),
        out => (
            Verdict::Fail,
            format!("opened from inside the mount: {}", out.join(", ")),
        ),
    }
}

/// Links the probe made that were followed out, and whether a link planted
/// from outside was (`None`: none planted).
fn links(led_out: &[&str], planted: Option<bool>) -> (Verdict, String) {
    match (led_out, planted) {
        ([], None | Some(false)) => (
            Verdict::Pass,
            format!(
                "links to {} led nowhere{}",
                OUTSIDE.join(", "),
                if planted.is_some() {
                    "; a link planted from outside neither"
                } else {
                    ""
                }
            ),
        ),
        ([], Some(true)) => (
            Verdict::Fail,
            "a link planted in the mount, to its parent directory, was followed out".into(),
        ),
        (out, _) => (
            Verdict::Fail,
            format!(
                "a link the probe made to {} was followed out",
                out.join(", ")
            ),
        ),
    }
}

/// Whether a read-only mount took a file or directory, or links to these
/// targets.
fn writes(wrote: bool, links: &[&str]) -> (Verdict, String) {
    match (wrote, links) {
        (false, []) => (
            Verdict::Pass,
            "creating a file, a directory and a link were refused".into(),
        ),
        (true, _) => (
            Verdict::Fail,
            "a file or directory was created (and removed again)".into(),
        ),
        (false, links) => (
            Verdict::Fail,
            format!(
                "a link to {} was created (and removed again)",
                links.join(", ")
            ),
        ),
    }
}

fn verdict(held: bool) -> Verdict {
    if held { Verdict::Pass } else { Verdict::Fail }
}

/// A call a limit must stop: refused with the limit's `stopped: ...`.
fn stopped(answer: &Result<Value, String>) -> Verdict {
    verdict(answer.as_ref().is_err_and(|e| e.contains("stopped")))
}

fn said(answer: &Result<Value, String>) -> String {
    match answer {
        Ok(value) => super::shorten(&format!("it ran to the end: {value}"), 160),
        Err(e) => super::shorten(e, 160),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_over_the_state_directory_or_the_cache_fails() {
        let root = tempfile::tempdir().unwrap();
        let (state, cache, work) = (
            root.path().join("state"),
            root.path().join("cache"),
            root.path().join("work"),
        );
        let own = OwnDirs {
            state: &state,
            cache: &cache,
        };
        assert_eq!(own_state(&work, &own).0, Verdict::Pass);
        let (v, why) = own_state(root.path(), &own);
        assert!(
            v == Verdict::Fail && why.contains("state directory") && why.contains("compile cache"),
            "{why}"
        );
        let (v, why) = own_state(&cache.join("artifacts"), &own);
        assert!(v == Verdict::Fail && why.contains("compile cache"), "{why}");
    }

    #[test]
    fn each_judgement_fails_on_what_would_be_an_escape() {
        assert_eq!(escapes(&[]).0, Verdict::Pass);
        let (v, why) = escapes(&["../.."]);
        assert_eq!(
            (v, why.as_str()),
            (Verdict::Fail, "opened from inside the mount: ../..")
        );
        assert_eq!(links(&[], Some(false)).0, Verdict::Pass);
        assert_eq!(links(&[], None).0, Verdict::Pass);
        let (v, why) = links(&[], Some(true));
        assert!(v == Verdict::Fail && why.contains("planted"), "{why}");
        let (v, why) = links(&["/etc"], Some(false));
        assert!(v == Verdict::Fail && why.contains("/etc"), "{why}");
        assert_eq!(writes(false, &[]).0, Verdict::Pass);
        assert_eq!(writes(true, &[]).0, Verdict::Fail);
        let (v, why) = writes(false, &[".."]);
        assert!(v == Verdict::Fail && why.contains("link to .."), "{why}");
        assert_eq!(
            stopped(&Err("`probe.spin` stopped: fuel budget".into())),
            Verdict::Pass
        );
        assert_eq!(stopped(&Ok(json!({ "allocated": 1 }))), Verdict::Fail);
        assert_eq!(stopped(&Err("failed: no mount".into())), Verdict::Fail);
        assert_eq!(
            judge_budget(2, 2, Some("the session has ended")).0,
            Verdict::Pass
        );
        let (v, why) = judge_budget(2, 3, None);
        assert!(
            v == Verdict::Fail && why == "all 3 calls answered, 1 over the budget",
            "{why}"
        );
        assert_eq!(judge_budget(2, 1, Some("refused")).0, Verdict::Fail);
    }
}
