//! The operator's configuration (`serve.toml`), parsed as strictly as a
//! policy: unknown keys are errors, and every error names the file and the
//! key and says what to write instead.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use femtoclaw_policy::{Policy, units};
use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read serve configuration `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or not the configuration's shape (the message has the line).
    #[error("invalid serve configuration `{path}`: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// A value that is not acceptable.
    #[error("invalid serve configuration `{path}`: `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
        /// What is wrong, and what to write.
        message: String,
    },
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// TLS, or plain HTTP on a loopback address.
    pub transport: Transport,
    /// The state root: one state directory per tenant under `tenants/`.
    pub state: PathBuf,
    /// What each connection and request may use.
    pub limits: ServerLimits,
    /// sha256 of the operator's token (`/metrics`), if any.
    pub operator_token: Option<[u8; 32]>,
    /// The `Host` values `/mcp` accepts (DNS-rebinding protection):
    /// `mcp-hosts`, by default the loopback names.
    pub mcp_hosts: Vec<String>,
    /// The tenants, by id.
    pub tenants: Vec<TenantConfig>,
    /// Tenants' journals in PostgreSQL (`[journal]`), else each in its
    /// state directory.
    pub journal: Option<crate::journal::PostgresJournal>,
}

/// How connections are secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// rustls with this certificate chain and key (PEM files).
    Tls {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// Plain HTTP, chosen explicitly, on a loopback address only.
    PlainLoopback,
}

/// Limits of the server's connections and requests.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Open connections; more are closed as they arrive.
    pub connections: usize,
    /// Bytes of one request body.
    pub max_body: usize,
    /// Bytes of one bundle upload (`POST /v1/bundles`).
    pub max_bundle: usize,
    /// Time to receive a request's headers (and to finish a TLS handshake);
    /// an idle keep-alive connection is closed after it too.
    pub header_timeout: Duration,
    /// Time to receive a request's body.
    pub body_timeout: Duration,
    /// Idle time after which an HTTP/2 connection is pinged and closed if
    /// it does not answer.
    pub idle_timeout: Duration,
    /// Time `SIGTERM` leaves running runs to finish before the rest are
    /// checkpointed (left resumable) and the process exits.
    pub drain: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            connections: 1024,
            max_body: 8 << 20,
            max_bundle: 64 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            drain: Duration::from_secs(30),
        }
    }
}

/// One tenant.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// Its id: lowercase letters, digits and `-`; its state directory's name.
    pub id: String,
    /// sha256 of its bearer token.
    pub token: [u8; 32],
    /// Its ceiling: what its runs may be granted at most (and what they get
    /// when a request brings no policy of its own).
    pub policy: Policy,
    /// Its quotas.
    pub quotas: Quotas,
}

/// What one tenant may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Runs executing at once.
    pub concurrent_runs: usize,
    /// Runs accepted and waiting for a slot; more are refused (`429`).
    pub queued_runs: usize,
    /// Runs accepted per minute (sliding window); more are refused (`429`).
    pub runs_per_minute: u32,
    /// Bytes of the tenant's journal file; past it new runs are refused
    /// (`507`).
    pub journal_bytes: u64,
    /// Bytes in the agents' durable memory, all runs together (it caps the
    /// run policy's `memory.max-stored`).
    pub memory_bytes: u64,
    /// Linear memory of all the tenant's live component instances.
    pub wasm_memory: u64,
    /// Fuel the tenant's runs may burn per minute; past it new runs are
    /// refused (`429`) until the minute's use falls below it.
    pub fuel_per_minute: u64,
    /// MCP sessions open at once on `/mcp`; more are refused (`429`).
    pub mcp_sessions: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            concurrent_runs: 8,
            queued_runs: 64,
            runs_per_minute: 6000,
            journal_bytes: 1 << 30,
            memory_bytes: 16 << 20,
            wasm_memory: 2 << 30,
            fuel_per_minute: 100_000_000_000,
            mcp_sessions: 64,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    listen: String,
    state: String,
    plain_http: Option<String>,
    tls: Option<RawTls>,
    limits: Option<RawLimits>,
    operator: Option<RawOperator>,
    mcp_hosts: Option<Vec<String>>,
    journal: Option<crate::journal::RawJournal>,
    #[serde(default)]
    tenants: BTreeMap<String, RawTenant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    connections: Option<i64>,
    max_body: Option<RawSize>,
    max_bundle: Option<RawSize>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    idle_timeout: Option<String>,
    drain: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOperator {
    token_sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTenant {
    token_sha256: String,
    policy: String,
    quotas: Option<RawQuotas>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawQuotas {
    concurrent_runs: Option<i64>,
    queued_runs: Option<i64>,
    runs_per_minute: Option<i64>,
    journal_bytes: Option<RawSize>,
    memory_bytes: Option<RawSize>,
    wasm_memory: Option<RawSize>,
    fuel_per_minute: Option<i64>,
    mcp_sessions: Option<i64>,
}

/// A size: a number of bytes or a string with a unit (`"64MiB"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

/// The error context: the file.
struct Cx<'a> {
    path: &'a Path,
}

impl Cx<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn resolve(&self, file: &str) -> PathBuf {
        let base = self.path.parent().unwrap_or(Path::new("."));
        base.join(file)
    }

    fn count(&self, key: &str, v: i64) -> Result<usize, ConfigError> {
        usize::try_from(v)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| self.invalid(key, format!("{v} is not a positive count")))
    }

    fn size(&self, key: &str, v: &RawSize) -> Result<u64, ConfigError> {
        match v {
            RawSize::Bytes(n) => u64::try_from(*n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| self.invalid(key, format!("{n} is not a positive size"))),
            RawSize::Text(t) => units::size(t).map_err(|m| self.invalid(key, m)),
        }
    }

    fn duration(&self, key: &str, v: &str) -> Result<Duration, ConfigError> {
        units::duration(v).map_err(|m| self.invalid(key, m))
    }

    fn token(&self, key: &str, hex_text: &str) -> Result<[u8; 32], ConfigError> {
        let bytes = hex::decode(hex_text.trim()).ok().filter(|b| b.len() == 32);
        bytes
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                self.invalid(
                    key,
                    "expected the token's sha256 as 64 hex digits (`printf %s \"$TOKEN\" | sha256sum`); the token itself never goes into the file",
                )
            })
    }
}

impl Config {
    /// Reads and checks a configuration file, and each tenant's policy.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Checks a configuration's text (`path` names it in errors and anchors
    /// its relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let cx = Cx { path };
        let listen: SocketAddr = raw.listen.parse().map_err(|_| {
            cx.invalid(
                "listen",
                format!(
                    "`{}` is not an address and port (e.g. `127.0.0.1:8787`)",
                    raw.listen
                ),
            )
        })?;
        let transport = match (raw.tls, raw.plain_http.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(cx.invalid(
                    "plain-http",
                    "choose one: `[tls]` or `plain-http = \"loopback\"`",
                ));
            }
            (Some(tls), None) => Transport::Tls {
                cert: cx.resolve(&tls.cert),
                key: cx.resolve(&tls.key),
            },
            (None, Some("loopback")) if listen.ip().is_loopback() => Transport::PlainLoopback,
            (None, Some("loopback")) => {
                return Err(cx.invalid(
                    "plain-http",
                    format!(
                        "plain HTTP is served on loopback addresses only, and `{listen}` is not one: add `[tls]`"
                    ),
                ));
            }
            (None, Some(other)) => {
                return Err(cx.invalid(
                    "plain-http",
                    format!("`{other}` is not a choice: the only one is `\"loopback\"`"),
                ));
            }
            (None, None) => {
                return Err(cx.invalid(
                    "tls",
                    "no transport: add `[tls]` with `cert` and `key`, or `plain-http = \"loopback\"` to serve plain HTTP on a loopback address",
                ));
            }
        };
        let limits = match raw.limits {
            Some(l) => server_limits(&cx, l)?,
            None => ServerLimits::default(),
        };
        let operator_token = raw
            .operator
            .map(|o| cx.token("operator.token-sha256", &o.token_sha256))
            .transpose()?;
        let mcp_hosts = match raw.mcp_hosts {
            None => ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec(),
            Some(hosts) => {
                let bad = hosts.iter().find(|h| {
                    h.is_empty()
                        || h.bytes()
                            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'/')
                });
                if let Some(bad) = bad {
                    return Err(cx.invalid(
                        "mcp-hosts",
                        format!("{bad:?} is not a host name or `host:port`"),
                    ));
                }
                hosts
            }
        };
        if raw.tenants.is_empty() {
            return Err(cx.invalid(
                "tenants",
                "no tenants: add `[tenants.ID]` with `token-sha256` and `policy`",
            ));
        }
        let state = cx.resolve(&raw.state);
        let mut tenants: Vec<TenantConfig> = Vec::new();
        for (id, t) in raw.tenants {
            let key = format!("tenants.{id}");
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(cx.invalid(
                    &key,
                    "a tenant id is 1 to 64 lowercase letters, digits and `-`",
                ));
            }
            let token = cx.token(&format!("{key}.token-sha256"), &t.token_sha256)?;
            let clash = tenants.iter().any(|o| o.token == token) || operator_token == Some(token);
            if clash {
                return Err(cx.invalid(
                    &format!("{key}.token-sha256"),
                    "this token is already another tenant's or the operator's: each needs its own",
                ));
            }
            let policy = Policy::load(cx.resolve(&t.policy))
                .map_err(|e| cx.invalid(&format!("{key}.policy"), e.to_string()))?;
            confine_mounts(&policy, &state).map_err(|e| cx.invalid(&format!("{key}.policy"), e))?;
            let quotas = match t.quotas {
                Some(q) => quotas(&cx, &format!("{key}.quotas"), q)?,
                None => Quotas::default(),
            };
            tenants.push(TenantConfig {
                id,
                token,
                policy,
                quotas,
            });
        }
        let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
        let journal = match raw.journal {
            None => None,
            Some(j) => {
                let lease = match &j.lease {
                    None => crate::journal::LEASE,
                    Some(v) => cx.duration("journal.lease", v)?,
                };
                if lease < Duration::from_secs(1) {
                    return Err(cx.invalid(
                        "journal.lease",
                        "a lease shorter than 1s would expire between renewals: give 1s or more",
                    ));
                }
                let pg = crate::journal::PostgresJournal::from_raw(j, lease, &ids)
                    .map_err(|(key, message)| cx.invalid(key, message))?;
                Some(pg)
            }
        };
        Ok(Config {
            path: path.to_owned(),
            listen,
            transport,
            state,
            limits,
            operator_token,
            mcp_hosts,
            tenants,
            journal,
        })
    }
}

/// A tenant's mounts, read-only ones too, stay out of the server's state
/// directory: it holds every tenant's journal (and, by default, the compile
/// cache), and a request's policy can only narrow its tenant's mounts.
fn confine_mounts(policy: &Policy, state: &Path) -> Result<(), String> {
    for (name, grant) in &policy.capabilities {
        for mount in &grant.mounts {
            if !femtoclaw_runtime::own_dirs::reached(&mount.host, Some(state), None).is_empty() {
                return Err(format!(
                    "`capabilities.{name}.mounts` `{}` in `{}`: its host directory `{}` contains the server's state directory `{}`, which holds every tenant's journal: mount a directory outside it",
                    mount.guest,
                    policy.path.display(),
                    mount.host.display(),
                    state.display()
                ));
            }
        }
    }
    Ok(())
}

fn server_limits(cx: &Cx, l: RawLimits) -> Result<ServerLimits, ConfigError> {
    let mut out = ServerLimits::default();
    if let Some(v) = l.connections {
        out.connections = cx.count("limits.connections", v)?;
    }
    if let Some(v) = &l.max_body {
        let size = cx.size("limits.max-body", v)?;
        out.max_body = usize::try_from(size).unwrap_or(usize::MAX);
    }
    if let Some(v) = &l.max_bundle {
        let size = cx.size("limits.max-bundle", v)?;
        out.max_bundle = usize::try_from(size).unwrap_or(usize::MAX);
    }
    if let Some(v) = &l.header_timeout {
        out.header_timeout = cx.duration("limits.header-timeout", v)?;
    }
    if let Some(v) = &l.body_timeout {
        out.body_timeout = cx.duration("limits.body-timeout", v)?;
    }
    if let Some(v) = &l.idle_timeout {
        out.idle_timeout = cx.duration("limits.idle-timeout", v)?;
    }
    if let Some(v) = &l.drain {
        out.drain = cx.duration("limits.drain", v)?;
    }
    Ok(out)
}

fn quotas(cx: &Cx, key: &str, q: RawQuotas) -> Result<Quotas, ConfigError> {
    let mut out = Quotas::default();
    let k = |name: &str| format!("{key}.{name}");
    if let Some(v) = q.concurrent_runs {
        out.concurrent_runs = cx.count(&k("concurrent-runs"), v)?;
    }
    if let Some(v) = q.queued_runs {
        out.queued_runs = cx.count(&k("queued-runs"), v)?;
    }
    if let Some(v) = q.runs_per_minute {
        let n = cx.count(&k("runs-per-minute"), v)?;
        out.runs_per_minute = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(v) = &q.journal_bytes {
        out.journal_bytes = cx.size(&k("journal-bytes"), v)?;
    }
    if let Some(v) = &q.memory_bytes {
        out.memory_bytes = cx.size(&k("memory-bytes"), v)?;
    }
    if let Some(v) = &q.wasm_memory {
        out.wasm_memory = cx.size(&k("wasm-memory"), v)?;
    }
    if let Some(v) = q.fuel_per_minute {
        out.fuel_per_minute = cx.count(&k("fuel-per-minute"), v)? as u64;
    }
    if let Some(v) = q.mcp_sessions {
        out.mcp_sessions = cx.count(&k("mcp-sessions"), v)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const OTHER: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    fn write(dir: &Path, text: &str) -> Result<Config, ConfigError> {
        std::fs::write(dir.join("policy.toml"), "version = 1\n").expect("write");
        let path = dir.join("serve.toml");
        std::fs::write(&path, text).expect("write");
        Config::load(&path)
    }

    fn key(result: Result<Config, ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid { key, .. }) => key,
            Err(other) => format!("other: {other}"),
            Ok(_) => "accepted".into(),
        }
    }

    #[test]
    fn a_config_is_read_with_defaults_and_each_mistake_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = format!(
            "listen = \"127.0.0.1:0\"\nstate = \"state\"\nplain-http = \"loopback\"\n[tenants.acme]\ntoken-sha256 = \"{HASH}\"\npolicy = \"policy.toml\"\n[tenants.acme.quotas]\nconcurrent-runs = 2\njournal-bytes = \"1GiB\"\n"
        );
        let config = write(dir.path(), &good).expect("valid");
        assert_eq!(config.transport, Transport::PlainLoopback);
        assert_eq!(config.state, dir.path().join("state"));
        assert_eq!(config.tenants[0].quotas.concurrent_runs, 2);
        assert_eq!(config.tenants[0].quotas.journal_bytes, 1 << 30);
        assert_eq!(
            config.tenants[0].quotas.queued_runs,
            Quotas::default().queued_runs
        );

        let cases = [
            (good.replace("127.0.0.1:0", "0.0.0.0:8787"), "plain-http"),
            (good.replace("plain-http = \"loopback\"\n", ""), "tls"),
            (good.replace("\"loopback\"", "\"yes\""), "plain-http"),
            (good.replace("127.0.0.1:0", "localhost"), "listen"),
            (
                good.replace(HASH, "secret-token"),
                "tenants.acme.token-sha256",
            ),
            (good.replace("tenants.acme", "tenants.Acme"), "tenants.Acme"),
            (
                good.replace("policy.toml", "missing.toml"),
                "tenants.acme.policy",
            ),
            (
                good.replace("concurrent-runs = 2", "concurrent-runs = 0"),
                "tenants.acme.quotas.concurrent-runs",
            ),
            (
                good.replace("\"1GiB\"", "\"1GB\""),
                "tenants.acme.quotas.journal-bytes",
            ),
            (
                format!(
                    "{good}[tenants.beta]\ntoken-sha256 = \"{HASH}\"\npolicy = \"policy.toml\"\n"
                ),
                "tenants.beta.token-sha256",
            ),
            (
                format!("{good}[operator]\ntoken-sha256 = \"{OTHER}\"\n[limits]\ndrain = \"0s\"\n"),
                "limits.drain",
            ),
            // A mount over the state directory, read-only too: every
            // tenant's journal is there.
            (
                good.replace("policy.toml", "wide.toml"),
                "tenants.acme.policy",
            ),
        ];
        std::fs::write(
            dir.path().join("wide.toml"),
            "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"list_dir\"]\nmounts = [{ host = \".\", guest = \"/all\", mode = \"ro\" }]\n",
        )
        .expect("write");
        for (text, expected) in cases {
            assert_eq!(key(write(dir.path(), &text)), expected, "{text}");
        }
        // Unknown keys are TOML-shape errors with a line.
        let unknown = write(dir.path(), &format!("{good}\n[limits]\nconections = 5\n"));
        match unknown {
            Err(e @ ConfigError::Syntax { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("conections") && text.contains("line"),
                    "{text}"
                );
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }
}
