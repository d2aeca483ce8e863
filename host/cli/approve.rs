//! Who answers a run's approval requests from the command line
//! (`--approve prompt|allow|deny`): a person at the terminal, or a fixed
//! answer for scripts. Without a terminal the default is `deny`, so a run in
//! a pipeline never waits for a person who is not there.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;

use femtoclaw_runtime::approval::{Approval, ApprovalFuture, ApprovalRequest, Approver, Fixed};
use femtoclaw_runtime::text::escape;

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
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A plain thread: a read the timeout gave up on must not keep the
        // process from exiting.
        std::thread::spawn(move || {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(prompt.as_bytes());
            let _ = err.flush();
            drop(err);
            let mut line = String::new();
            let answer = std::io::stdin().lock().read_line(&mut line).map(|_| line);
            let _ = tx.send(answer);
        });
        Box::pin(async move {
            match rx.await {
                Ok(Ok(line)) => {
                    let yes = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
                    Approval::new(yes, "terminal")
                }
                _ => Approval::new(false, "terminal (no answer)"),
            }
        })
    }
}
