//! `fc-host serve --config FILE [--check]`.

use std::path::PathBuf;

use serde_json::json;

/// Serve many tenants' runs over HTTP (docs/serve.md).
#[derive(clap::Args)]
pub struct ServeCommand {
    /// The server's configuration (TOML: listen, TLS, state, limits,
    /// tenants).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Check the configuration and every tenant's policy, then exit.
    #[arg(long)]
    check: bool,
}

impl ServeCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let config = femtoclaw_serve::check(&self.config)?;
        if self.check {
            crate::console::out(&format!(
                "{}: ok ({} tenants, listen {})",
                self.config.display(),
                config.tenants.len(),
                config.listen
            ));
            return Ok(crate::exit::OK);
        }
        let scheme = match config.transport {
            femtoclaw_serve::config::Transport::Tls { .. } => "https",
            femtoclaw_serve::config::Transport::PlainLoopback => "http",
        };
        femtoclaw_serve::serve(config, |address| {
            crate::console::notice(
                &format!("listening on {scheme}://{address}"),
                &[("address", json!(address.to_string()))],
            );
        })
        .map_err(|e| anyhow::Error::from(femtoclaw_runtime::RunError::Config(e)))?;
        Ok(crate::exit::OK)
    }
}
