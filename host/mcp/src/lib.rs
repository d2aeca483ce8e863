//! FemtoClaw and MCP, both ways (docs/mcp.md). As a client, [`McpConnector`]
//! lets a run use MCP servers as capabilities, behind the gate (client.rs).
//!
//! As an MCP server: the tools a policy grants,
//! offered to an MCP client, each call taking the path an agent's call takes
//! (gate, strict JSON, schema, quota, capability, result check, redaction,
//! journal) through a [`Session`]. A refusal is a tool error naming its rule
//! (`isError: true`), never a transport failure.
//!
//! The protocol itself (framing, the `initialize` handshake of 2025-11-25,
//! the per-request lifecycle of 2026-07-28, version negotiation) is the
//! maintained Rust SDK's, `rmcp`; this crate is the bridge between its
//! server handler and a session.

mod client;
mod streamable;

pub use client::McpConnector;
pub use streamable::{HttpDoor, HttpOptions};

use std::collections::BTreeMap;
use std::sync::Arc;

use femtoclaw_runtime::{EffectClass, RunError, RunOutcome, Session, ToolSpec};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

/// The revisions spoken: the current one, and the previous one that many
/// clients still use. A client asking for another is answered with the
/// newest of these, as the specification says, or refused by the SDK.
pub const REVISIONS: &[ProtocolVersion] =
    &[ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28];

/// Calls a client may have waiting at once: a flood beyond it is refused
/// call by call instead of queueing without bound.
const MAX_WAITING_CALLS: usize = 64;

/// Why the server could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum McpServeError {
    /// Two granted tools would have the same MCP name.
    #[error(
        "tools `{0}` and `{1}` would both be offered as `{2}`: rename a capability in the policy"
    )]
    NameClash(String, String, String),
    /// A granted tool's name cannot be offered under MCP's name rules.
    #[error(
        "tool `{0}` cannot be offered over MCP: its name `{1}` is longer than 64 characters; use a shorter capability name"
    )]
    NameTooLong(String, String),
    /// The transport failed before the session could start.
    #[error("the MCP connection failed: {0}")]
    Transport(String),
    /// The session's journal failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A tool's name as MCP clients see it: its address `capability.tool` with
/// the dot as `_`. Model APIs behind many clients accept only
/// `[A-Za-z0-9_-]{1,64}` in tool names, so any other character becomes `_`
/// too (clashes are refused when the server starts).
pub fn mcp_name(address: &str) -> String {
    address
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// What a gateway offers: the granted tools under their MCP names.
pub struct Offer {
    tools: Vec<Tool>,
    /// MCP name → tool address.
    addresses: BTreeMap<String, String>,
    /// Addresses whose results are also given as structured content (their
    /// output schema is an object schema, as MCP requires).
    structured: BTreeMap<String, bool>,
}

impl Offer {
    /// The tools of `specs` (a policy's granted tools) under MCP names.
    pub fn new(specs: &[ToolSpec]) -> Result<Offer, McpServeError> {
        let mut addresses = BTreeMap::new();
        let mut structured = BTreeMap::new();
        let mut tools = Vec::new();
        for spec in specs {
            let name = mcp_name(&spec.name);
            if name.len() > 64 {
                return Err(McpServeError::NameTooLong(spec.name.clone(), name));
            }
            if let Some(other) = addresses.insert(name.clone(), spec.name.clone()) {
                return Err(McpServeError::NameClash(other, spec.name.clone(), name));
            }
            let (tool, has_structure) = tool(&name, spec);
            structured.insert(spec.name.clone(), has_structure);
            tools.push(tool);
        }
        Ok(Offer {
            tools,
            addresses,
            structured,
        })
    }
}

/// A session being opened for a gateway: the session, and whatever must
/// live as long as it (a tenant's run slot).
pub struct Opened {
    /// The session.
    pub session: Session,
    /// Held until the session closes.
    pub hold: Box<dyn std::any::Any + Send + Sync>,
}

/// Opens a gateway's session when its first call arrives; the error is
/// shown to the client as the call's tool error.
pub type Opener = Arc<dyn Fn() -> BoxFuture<Result<Opened, String>> + Send + Sync>;

/// A boxed future of an opener.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A gateway's session: opened at its first call, closed (its end made
/// durable) when the gateway is dropped or the connection ends.
enum Slot {
    Unopened(Opener),
    Open(Box<Opened>),
    Closed,
}

impl Slot {
    /// Closes an open session; its end is durable when this returns.
    fn close(&mut self) -> Option<Result<RunOutcome, RunError>> {
        match std::mem::replace(self, Slot::Closed) {
            Slot::Open(opened) => {
                let Opened { session, hold } = *opened;
                let closed = session.close();
                drop(hold);
                Some(closed)
            }
            _ => None,
        }
    }
}

/// Closes the session of a gateway that goes away without `serve_stdio`
/// (an HTTP connection's): its run ends, durably.
struct Closer(Mutex<Slot>);

impl Drop for Closer {
    fn drop(&mut self) {
        if let Some(Err(error)) = self.0.get_mut().close() {
            tracing::error!(target: "femtoclaw::mcp", error = %error, "the session's end could not be journaled");
        }
    }
}

/// The MCP server over one session: the tools of its offer, each call made
/// in the session (a journaled run).
pub struct Gateway {
    offer: Arc<Offer>,
    slot: Arc<Closer>,
    waiting: Arc<Semaphore>,
    /// Where calls run (a server's tenant has threads of its own).
    executor: tokio::runtime::Handle,
}

impl Gateway {
    /// Offers an open session's granted tools.
    pub fn new(session: Session) -> Result<Gateway, McpServeError> {
        let offer = Arc::new(Offer::new(session.tools())?);
        let opened = Opened {
            session,
            hold: Box::new(()),
        };
        let executor = tokio::runtime::Handle::current();
        Ok(Gateway::with_slot(
            offer,
            Slot::Open(Box::new(opened)),
            executor,
        ))
    }

    /// Offers `offer`, and opens its session with `open` when the first
    /// call arrives (so a client that only lists tools starts nothing);
    /// its calls run on `executor`.
    pub fn lazy(offer: Arc<Offer>, open: Opener, executor: tokio::runtime::Handle) -> Gateway {
        Gateway::with_slot(offer, Slot::Unopened(open), executor)
    }

    fn with_slot(offer: Arc<Offer>, slot: Slot, executor: tokio::runtime::Handle) -> Gateway {
        Gateway {
            offer,
            slot: Arc::new(Closer(Mutex::new(slot))),
            waiting: Arc::new(Semaphore::new(MAX_WAITING_CALLS)),
            executor,
        }
    }

    /// Serves MCP over standard input and output until the client closes
    /// the connection, then ends the session (its end is durable when this
    /// returns).
    pub async fn serve_stdio(self) -> Result<RunOutcome, McpServeError> {
        let slot = self.slot.clone();
        let running = self
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| McpServeError::Transport(e.to_string()))?;
        let quit = running.waiting().await;
        if let Err(e) = quit {
            tracing::warn!(target: "femtoclaw::mcp", error = %e, "the MCP service ended abnormally");
        }
        let closed = slot.0.lock().await.close();
        Ok(closed
            .ok_or_else(|| McpServeError::Transport("the session was never opened".into()))??)
    }

    /// One `tools/call`: gated, run and journaled in a task of its own, so
    /// that a client cancelling its request cannot cut a call in half (the
    /// journal always holds the call's result).
    async fn call(&self, request: CallToolRequestParams) -> Result<CallToolResult, McpError> {
        let refused = |text: String| Ok(CallToolResult::error(vec![ContentBlock::text(text)]));
        let Ok(permit) = self.waiting.clone().try_acquire_owned() else {
            return refused(format!(
                "refused: more than {MAX_WAITING_CALLS} calls are waiting; wait for their results"
            ));
        };
        let address = self
            .offer
            .addresses
            .get(request.name.as_ref())
            .cloned()
            // Not offered: the gate refuses it and names the rule.
            .unwrap_or_else(|| request.name.to_string());
        let arguments = Value::Object(request.arguments.unwrap_or_default()).to_string();
        let structured = self
            .offer
            .structured
            .get(&address)
            .copied()
            .unwrap_or(false);
        let slot = self.slot.clone();
        let task = self.executor.spawn(async move {
            let _permit = permit;
            let mut slot = slot.0.lock().await;
            if let Slot::Unopened(open) = &*slot {
                let open = open.clone();
                match open().await {
                    Ok(opened) => *slot = Slot::Open(Box::new(opened)),
                    Err(why) => return Ok(Err(why)),
                }
            }
            match &mut *slot {
                Slot::Open(opened) => opened.session.call(&address, &arguments).await.map(Ok),
                _ => Ok(Err("the session has ended".to_owned())),
            }
        });
        let shown = match task.await {
            Ok(Ok(Ok(shown))) => shown,
            Ok(Ok(Err(why))) => return refused(why),
            Ok(Err(error)) => {
                tracing::error!(target: "femtoclaw::mcp", error = %error, "the session's journal failed");
                return Err(McpError::internal_error(
                    format!("the session cannot go on: {error}"),
                    None,
                ));
            }
            Err(join) => {
                return Err(McpError::internal_error(
                    format!("the call did not finish: {join}"),
                    None,
                ));
            }
        };
        if shown.is_error {
            return refused(shown.text);
        }
        match serde_json::from_str::<Value>(&shown.text) {
            Ok(value) if structured => Ok(CallToolResult::structured(value)),
            _ => Ok(CallToolResult::success(vec![ContentBlock::text(
                shown.text,
            )])),
        }
    }
}

/// A granted tool as MCP describes it; whether its results are structured.
fn tool(name: &str, spec: &ToolSpec) -> (Tool, bool) {
    let object = |text: &str| match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let input: JsonObject = object(&spec.input_schema).unwrap_or_else(|| {
        // MCP requires an object schema; the gate still checks the real one.
        let mut map = JsonObject::new();
        map.insert("type".into(), "object".into());
        map
    });
    let mut tool = Tool::new(name.to_owned(), spec.description.clone(), input);
    let output = spec
        .output_schema
        .as_deref()
        .and_then(object)
        .filter(|schema| schema.get("type").and_then(Value::as_str) == Some("object"));
    let has_structure = output.is_some();
    if let Some(schema) = output {
        tool = tool.with_raw_output_schema(Arc::new(schema));
    }
    let mut hints = ToolAnnotations::default();
    hints.title = Some(spec.name.clone());
    match spec.effect {
        EffectClass::Pure => {
            hints.read_only_hint = Some(true);
            hints.idempotent_hint = Some(true);
        }
        EffectClass::Read => hints.read_only_hint = Some(true),
        EffectClass::Write => {
            hints.read_only_hint = Some(false);
            hints.destructive_hint = Some(true);
        }
    }
    (tool.with_annotations(hints), has_structure)
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("femtoclaw", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools granted by a FemtoClaw policy. Every call is checked against the policy \
                 and the tool's schema, run in a sandbox, and journaled; a refused call returns \
                 an error naming the rule that refused it.",
            )
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(REVISIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.offer.tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call(request).await.map(CallToolResponse::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_what_model_apis_accept() {
        assert_eq!(mcp_name("fs.read_file"), "fs_read_file");
        assert_eq!(mcp_name("web-x.get\u{7}page"), "web-x_get_page");
        assert_eq!(mcp_name("a.b.c"), "a_b_c");
    }

    #[test]
    fn revisions_are_the_current_and_the_previous() {
        assert!(REVISIONS.contains(&ProtocolVersion::LATEST));
        assert!(REVISIONS.contains(&ProtocolVersion::V_2025_11_25));
    }
}
