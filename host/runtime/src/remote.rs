//! Capabilities that are not components: MCP servers, reached through a
//! [`Connector`] that the embedder gives the runtime (`femtoclaw-mcp`'s, in
//! `fc-host`). The runtime treats them as it treats components: their tools
//! are checked as `describe()` output is, every call passes the gate and the
//! validator both ways, is bounded by the grant's `call-timeout` and the
//! run's cancellation, and is journaled, so a replay needs no server.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use femtoclaw_policy::{CapabilityGrant, ComponentSource, McpServer};

use crate::bindings::capability::exports::femtoclaw::runtime::tool_provider::Invocation;
use crate::bindings::{ToolError, ToolSpec};
use crate::capability::{CapabilityInstance, Shared};
use crate::gate::Described;
use crate::guest::Failure;
use crate::{Redactor, RunError, Runtime, StopReason};

pub use crate::net::{resolve_allowed as resolve, tls_config};

/// A boxed future, as a trait object's method returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Connects to the MCP servers a policy names.
pub trait Connector: Send + Sync + 'static {
    /// Starts a session with one server and lists its tools. The runtime
    /// bounds this by the grant's `call-timeout`. An error says what went
    /// wrong (the runtime names the capability).
    fn connect<'a>(&'a self, server: Server<'a>) -> BoxFuture<'a, Result<Box<dyn Remote>, String>>;
}

/// What a [`Connector`] is told about one server.
pub struct Server<'a> {
    /// The capability's name in the policy.
    pub name: &'a str,
    /// Where the server is and how to reach it.
    pub source: &'a McpServer,
    /// Values the host injects: the headers of an HTTP server (secret ones
    /// resolved), or the environment of a stdio server.
    pub values: &'a [(String, String)],
    /// Bytes of one response the client may read.
    pub max_response: u64,
    /// The run's secrets, removed from anything the server says that is
    /// logged (a stdio server's stderr).
    pub redact: Redactor,
}

impl std::fmt::Debug for Server<'_> {
    /// The injected values are secrets: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.values.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("values", &names)
            .field("max_response", &self.max_response)
            .finish()
    }
}

/// One session with an MCP server.
pub trait Remote: Send {
    /// The tools the server listed when the session started.
    fn tools(&self) -> Vec<ToolSpec>;
    /// Calls one tool (by the server's name for it) with validated JSON
    /// arguments. The outer error is the session's failure (transport,
    /// protocol), the inner one the tool's.
    fn call<'a>(
        &'a mut self,
        tool: &'a str,
        arguments: String,
    ) -> BoxFuture<'a, Result<Result<String, ToolError>, String>>;
}

/// A granted capability: a component, or an MCP server.
#[allow(
    clippy::large_enum_variant,
    reason = "one per capability of a run, made once and never moved on a call's path"
)]
pub(crate) enum Provider {
    /// A WebAssembly component in its own store.
    Wasm(CapabilityInstance),
    /// An MCP server, through the run's connector.
    Remote(RemoteCapability),
}

/// An MCP server's session, with what bounds its calls.
pub(crate) struct RemoteCapability {
    /// `mcp http://…` or `mcp stdio, unsandboxed: …`, for the logs.
    pub label: String,
    session: Box<dyn Remote>,
    call_timeout: Duration,
    shared: Shared,
}

impl Provider {
    /// What the logs name as the code that ran a call: a component's
    /// sha256, or the server's label.
    pub(crate) fn identity(&self) -> &str {
        match self {
            Provider::Wasm(c) => &c.hash,
            Provider::Remote(r) => &r.label,
        }
    }

    /// Fuel the last call consumed (none outside WebAssembly).
    pub(crate) fn fuel_used(&self) -> u64 {
        match self {
            Provider::Wasm(c) => c.fuel_used,
            Provider::Remote(_) => 0,
        }
    }

    /// Runs one validated call.
    pub(crate) async fn invoke(
        &mut self,
        call: Invocation,
    ) -> Result<Result<String, ToolError>, Failure> {
        match self {
            Provider::Wasm(c) => c.invoke(call).await,
            Provider::Remote(r) => r.invoke(call).await,
        }
    }
}

/// How often a remote call in progress looks at the run's cancellation.
const CANCEL_POLL: Duration = Duration::from_millis(50);

impl RemoteCapability {
    async fn invoke(&mut self, call: Invocation) -> Result<Result<String, ToolError>, Failure> {
        let cancel = self.shared.controls.cancel.clone();
        if cancel.is_cancelled() {
            return Err(Failure::Stop(StopReason::Cancelled));
        }
        let timeout = self.call_timeout;
        let answer = self.session.call(&call.tool, call.arguments);
        let cancelled = async {
            let mut tick = tokio::time::interval(CANCEL_POLL);
            loop {
                tick.tick().await;
                if cancel.is_cancelled() {
                    return;
                }
            }
        };
        tokio::select! {
            answer = tokio::time::timeout(timeout, answer) => match answer {
                Ok(Ok(result)) => Ok(result),
                // The session failed, not the host: the call's error.
                Ok(Err(failure)) => Ok(Err(ToolError::Failed(failure))),
                Err(_) => Err(Failure::Limit(format!("the MCP server did not answer within {timeout:?} (`limits.call-timeout`)"))),
            },
            () = cancelled => Err(Failure::Stop(StopReason::Cancelled)),
        }
    }
}

impl Runtime {
    /// Lets this runtime's runs use MCP servers as capabilities; without a
    /// connector, a policy that names one is refused.
    pub fn with_connector(mut self, connector: std::sync::Arc<dyn Connector>) -> Runtime {
        self.connector = Some(connector);
        self
    }

    /// Starts a session with the MCP server of a grant and checks the tools
    /// it lists, as a component's description is checked.
    pub(crate) async fn start_remote(
        &self,
        name: &str,
        grant: &CapabilityGrant,
        values: Vec<(String, String)>,
        shared: Shared,
    ) -> Result<(Provider, Vec<Described>), RunError> {
        let ComponentSource::Mcp(source) = &grant.component else {
            unreachable!("invariant: called for MCP servers only")
        };
        let label = label(source);
        let refuse = |message: String| RunError::Component {
            component: format!("capability {name} ({label})"),
            message,
        };
        let connector = self.connector.as_ref().ok_or_else(|| {
            RunError::Config(format!(
                "`capabilities.{name}` names an MCP server, and this runtime has no MCP connector"
            ))
        })?;
        let timeout = grant.limits.call_timeout;
        let server = Server {
            name,
            source,
            values: &values,
            max_response: shared.max_body,
            redact: shared.redact.clone(),
        };
        let session = match tokio::time::timeout(timeout, connector.connect(server)).await {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => return Err(refuse(shared.redact.apply(&e).into_owned())),
            Err(_) => {
                return Err(refuse(format!(
                    "did not start a session and list its tools within {timeout:?} (`capabilities.{name}.limits.call-timeout`)"
                )));
            }
        };
        let specs = session.tools();
        tracing::info!(target: "femtoclaw::mcp", capability = name, server = %label, unsandboxed = grant.unsandboxed(), tools = specs.len(), "MCP server connected");
        // Only granted tools must be carried; a tool no policy could grant
        // (its name is not a tool name) is left out, and said so.
        let (carried, left): (Vec<ToolSpec>, Vec<ToolSpec>) = specs
            .into_iter()
            .map(|s| shared.redact.spec(s))
            .partition(|s| crate::gate::is_tool_name(&s.name) || grant.tools.contains(&s.name));
        for tool in &left {
            let shown = crate::text::escape(&tool.name);
            tracing::warn!(target: "femtoclaw::mcp", capability = name, tool = %shown, "a tool the server lists is left out: its name is not a tool name, so no policy can grant it");
        }
        let tools = crate::gate::described(&format!("capability {name} ({label})"), carried)?;
        let remote = RemoteCapability {
            label,
            session,
            call_timeout: timeout,
            shared,
        };
        Ok((Provider::Remote(remote), tools))
    }
}

/// How the logs and messages name a server: `mcp URL`, or `mcp stdio,
/// unsandboxed: PROGRAM`.
pub(crate) fn label(source: &McpServer) -> String {
    match source {
        McpServer::Http { url, .. } => format!("mcp {url}"),
        McpServer::Stdio { command, .. } => format!(
            "mcp stdio, unsandboxed: {}",
            crate::text::escape(&command[0])
        ),
    }
}
