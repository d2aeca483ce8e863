//! Who answers a run's approval requests from the command line
//! (`--approve prompt|allow|deny`): a person at the terminal, or a fixed
//! answer for scripts. Without a terminal the default is `deny`, so a run in
//! a pipeline never waits for a person who is not there.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::{Arc, OnceLock};

use femtoclaw_runtime::approval::{Approval, ApprovalFuture, ApprovalRequest, Approver, Fixed};
use femtoclaw_runtime::text::escape;
use tokio::sync::mpsc::UnboundedReceiver;

/// `--approve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApproveMode {
    /// Ask at the terminal (stdin and stderr must be one).
    Prompt,
    /// Approve every request.
    Allow,
    /// Deny every request.
    Deny,
}

/// The approver `mode` (or the default: a prompt when stdin and stderr are
/// a terminal, else `deny`) stands for.
pub fn approver(mode: Option<ApproveMode>) -> anyhow::Result<Arc<dyn Approver>> {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    Ok(match mode {
        Some(ApproveMode::Allow) => Arc::new(Fixed(Approval::new(true, "--approve allow"))),
        Some(ApproveMode::Deny) => Arc::new(Fixed(Approval::new(false, "--approve deny"))),
        None if !terminal => Arc::new(Fixed(Approval::new(false, "no terminal (--approve deny)"))),
        Some(ApproveMode::Prompt) if !terminal => anyhow::bail!(
            "`--approve prompt` needs a terminal on stdin and stderr; use `--approve allow` or `--approve deny` in scripts"
        ),
        Some(ApproveMode::Prompt) | None => Arc::new(Terminal),
    })
}

/// Asks at the terminal: the tool, the rule and the arguments, then `y` or
/// anything else.
struct Terminal;

/// The lines typed at the terminal, read by one thread for the whole
/// process: a prompt that timed out must not leave a reader behind that
/// would take the answer to the next one.
fn typed() -> &'static tokio::sync::Mutex<UnboundedReceiver<String>> {
    static LINES: OnceLock<tokio::sync::Mutex<UnboundedReceiver<String>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // A plain thread: a read that no prompt waits for any more must
        // not keep the process from exiting.
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        tokio::sync::Mutex::new(rx)
    })
}

impl Approver for Terminal {
    fn decide<'a>(&'a self, request: &'a ApprovalRequest) -> ApprovalFuture<'a> {
        let prompt = format!(
            "\napproval needed (`{}`): call {} of run {}\n  tool:      {}\n  arguments: {}\napprove? [y/N] ",
            escape(&request.rule),
            request.call,
            request.run_id,
            escape(&request.tool),
            escape(&request.arguments),
        );
        Box::pin(async move {
            let mut lines = typed().lock().await;
            // Lines typed before the question are no answer to it.
            while lines.try_recv().is_ok() {}
            {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(prompt.as_bytes());
                let _ = err.flush();
            }
            match lines.recv().await {
                Some(line) => {
                    let yes = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
                    Approval::new(yes, "terminal")
                }
                None => Approval::new(false, "terminal (no answer)"),
            }
        })
    }
}
