//! MCP servers consumed as capabilities (docs/mcp.md, "Servers behind the
//! gate"): the [`Connector`] the runtime calls to start a session with a
//! server a policy names, over Streamable HTTP or a stdio host process.
//!
//! What the runtime does not do itself is done here, on the client side of
//! the protocol: HTTP reaches the URL's origin only (no proxy, no
//! redirects, names resolved and checked by the runtime's network rules,
//! responses capped); a stdio server starts with a cleared environment in
//! the directory the policy names and dies with its session; the tools a
//! server lists become tool specs once, and a server that says its tools
//! changed has its calls refused from then on. The server may not ask the
//! client for anything: sampling is refused, elicitation declined, and no
//! roots are shown.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use femtoclaw_policy::{HostPattern, McpServer, NetPattern};
use femtoclaw_runtime::remote::{BoxFuture, Connector, Remote, Server};
use femtoclaw_runtime::{EffectClass, Redactor, ToolError, ToolSpec};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ContentBlock, Implementation,
    JsonObject, PaginatedRequestParams, Tool,
};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::worker::WorkerQuitReason;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt as _};

/// Pages of `tools/list` read before a server is refused (its tools are
/// capped anyway; this stops a cursor that never ends).
const MAX_LIST_PAGES: usize = 16;
/// Bytes of the JSON-RPC envelope around a result, over the result cap.
const ENVELOPE: u64 = 64 << 10;
/// Bytes of a server's error message kept.
const MAX_ERROR_TEXT: usize = 2048;
/// Bytes of one stderr line of a stdio server that are logged.
const MAX_STDERR_LINE: usize = 4096;
/// Lines of a stdio server's stderr logged per session.
const MAX_STDERR_LINES: usize = 1000;

/// Starts sessions with MCP servers for the runtime.
#[derive(Debug, Default)]
pub struct McpConnector;

impl Connector for McpConnector {
    fn connect<'a>(&'a self, server: Server<'a>) -> BoxFuture<'a, Result<Box<dyn Remote>, String>> {
        Box::pin(async move {
            let session = match server.source {
                McpServer::Http { url, origin, .. } => http(&server, url, origin).await?,
                McpServer::Stdio { command, cwd } => stdio(&server, command, cwd).await?,
            };
            Ok(Box::new(session) as Box<dyn Remote>)
        })
    }
}

/// The client's side of a session: who it is, and what it watches for.
#[derive(Clone)]
struct Client {
    capability: String,
    /// Set when the server says its tools changed.
    changed: Arc<AtomicBool>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        // No sampling, no roots, no elicitation: the server may ask the
        // client for nothing.
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("fc-host", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed.store(true, Ordering::SeqCst);
        tracing::warn!(target: "femtoclaw::mcp", capability = %self.capability, "the MCP server says its tools changed: its tools are fixed when the run starts, so its calls are refused from now on");
    }
}

/// One session, and the process behind it if it is a stdio server.
struct Session {
    service: RunningService<RoleClient, Client>,
    tools: Vec<ToolSpec>,
    /// Tools whose results must carry `structuredContent`.
    structured: BTreeSet<String>,
    changed: Arc<AtomicBool>,
    /// Killed when the session ends (`kill_on_drop`).
    _child: Option<tokio::process::Child>,
}

async fn http(server: &Server<'_>, url: &str, origin: &NetPattern) -> Result<Session, String> {
    let tls = femtoclaw_runtime::remote::tls_config().map_err(|e| format!("TLS: {e}"))?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(CheckedNames {
            origin: origin.clone(),
        }))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let mut headers = HashMap::new();
    for (name, value) in server.values {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a header name"))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header `{name}` cannot be sent"))?;
        headers.insert(name, value);
    }
    let max = usize::try_from(server.max_response.saturating_add(ENVELOPE)).unwrap_or(usize::MAX);
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    config.custom_headers = headers;
    config.max_json_response_size = max;
    config.max_sse_event_size = max;
    config.max_error_response_size = MAX_ERROR_TEXT;
    // A server that lost the session may have lost what the run relies on:
    // the run's calls fail rather than start a new session unseen.
    config.reinit_on_expired_session = false;
    let transport = StreamableHttpClientTransport::with_client(client, config);
    start(server, transport, None).await
}

/// Resolves names as the runtime's network gate does: only addresses the
/// origin allows (a private or loopback one only if it names it).
struct CheckedNames {
    origin: NetPattern,
}

impl reqwest::dns::Resolve for CheckedNames {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let origin = self.origin.clone();
        Box::pin(async move {
            // The client only ever asks for the URL's own host; any other
            // name is refused rather than resolved.
            let named = matches!(&origin.host, HostPattern::Name(n) if n.eq_ignore_ascii_case(name.as_str()));
            if !named {
                let refused = format!(
                    "`{}` is not the MCP server's host (`{origin}`)",
                    name.as_str()
                );
                return Err(
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, refused).into(),
                );
            }
            let addr: SocketAddr =
                femtoclaw_runtime::remote::resolve(name.as_str(), origin.port, &origin).await?;
            Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs)
        })
    }
}

async fn stdio(
    server: &Server<'_>,
    argv: &[String],
    cwd: &std::path::Path,
) -> Result<Session, String> {
    let mut command = stdio_command(argv, cwd, server.values);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
    let (Some(stdout), Some(stdin), Some(stderr)) =
        (child.stdout.take(), child.stdin.take(), child.stderr.take())
    else {
        return Err("the server's standard streams were not piped".into());
    };
    tokio::spawn(log_stderr(
        server.name.to_owned(),
        stderr,
        server.redact.clone(),
    ));
    let max = usize::try_from(server.max_response.saturating_add(ENVELOPE)).unwrap_or(usize::MAX);
    let transport = AsyncRwTransport::new_client(stdout, stdin).with_max_line_length(max);
    start(server, transport, Some(child)).await
}

/// The process of a stdio server: the program and its arguments, in `cwd`,
/// with nothing of the host's environment but the named values.
fn stdio_command(
    argv: &[String],
    cwd: &std::path::Path,
    env: &[(String, String)],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A stdio server's stderr, as log lines labelled unsandboxed, redacted,
/// each line and their number capped.
async fn log_stderr(capability: String, stderr: tokio::process::ChildStderr, redact: Redactor) {
    let mut lines = tokio::io::BufReader::new(stderr);
    let mut line = Vec::new();
    for _ in 0..MAX_STDERR_LINES {
        line.clear();
        let mut limited = (&mut lines).take(MAX_STDERR_LINE as u64);
        match tokio::io::AsyncBufReadExt::read_until(&mut limited, b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // A line longer than the cap: the rest of it is skipped.
        if !line.ends_with(b"\n") {
            let mut rest = Vec::new();
            let _ = lines.read_until(b'\n', &mut rest).await;
        }
        let text = String::from_utf8_lossy(&line);
        let text = femtoclaw_runtime::text::escape(text.trim_end());
        tracing::info!(target: "femtoclaw::mcp", capability = %capability, unsandboxed = true, "server stderr: {}", redact.apply(&text));
    }
    tracing::warn!(target: "femtoclaw::mcp", capability = %capability, "the server wrote more than {MAX_STDERR_LINES} lines to stderr: the rest is not logged");
}

async fn start<T, E, A>(
    server: &Server<'_>,
    transport: T,
    child: Option<tokio::process::Child>,
) -> Result<Session, String>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let changed = Arc::new(AtomicBool::new(false));
    let client = Client {
        capability: server.name.to_owned(),
        changed: changed.clone(),
    };
    let service = client.serve(transport).await.map_err(|e| {
        let why = match &e {
            rmcp::service::ClientInitializeError::TransportError { error, context } => {
                format!("{} ({context})", causes(&*error.error))
            }
            other => other.to_string(),
        };
        format!("the MCP session did not start: {}", cut(&why))
    })?;
    let listed = list_tools(&service).await?;
    let mut structured = BTreeSet::new();
    let tools = listed
        .into_iter()
        .map(|tool| {
            if tool.output_schema.is_some() {
                structured.insert(tool.name.to_string());
            }
            spec(tool)
        })
        .collect();
    Ok(Session {
        service,
        tools,
        structured,
        changed,
        _child: child,
    })
}

/// Every page of `tools/list`, up to [`MAX_LIST_PAGES`].
async fn list_tools(service: &RunningService<RoleClient, Client>) -> Result<Vec<Tool>, String> {
    let mut tools = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_LIST_PAGES {
        let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        let page = service
            .list_tools(params)
            .await
            .map_err(|e| format!("`tools/list` failed: {}", service_error(&e)))?;
        tools.extend(page.tools);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(tools),
        }
    }
    Err(format!(
        "`tools/list` went on for more than {MAX_LIST_PAGES} pages"
    ))
}

/// A listed tool as the runtime's tool spec. Its effect is the server's
/// word: `readOnlyHint` makes it `read`, anything else `write` (MCP's
/// default is a tool that may change the world).
fn spec(tool: Tool) -> ToolSpec {
    let read_only = tool
        .annotations
        .as_ref()
        .and_then(|a| a.read_only_hint)
        .unwrap_or(false);
    ToolSpec {
        description: tool
            .description
            .map(|d| d.into_owned())
            .or(tool.title)
            .unwrap_or_default(),
        input_schema: serde_json::Value::Object((*tool.input_schema).clone()).to_string(),
        output_schema: tool
            .output_schema
            .map(|s| serde_json::Value::Object((*s).clone()).to_string()),
        effect: if read_only {
            EffectClass::Read
        } else {
            EffectClass::Write
        },
        name: tool.name.into_owned(),
    }
}

impl Remote for Session {
    fn tools(&self) -> Vec<ToolSpec> {
        self.tools.clone()
    }

    fn call<'a>(
        &'a mut self,
        tool: &'a str,
        arguments: String,
    ) -> BoxFuture<'a, Result<Result<String, ToolError>, String>> {
        Box::pin(async move {
            if self.changed.load(Ordering::SeqCst) {
                return Ok(Err(ToolError::Failed(
                    "the MCP server changed its tools during the run (`notifications/tools/list_changed`); a run's tools are fixed when it starts, so its calls are refused: start a new run".into(),
                )));
            }
            let Ok(arguments) = serde_json::from_str::<JsonObject>(&arguments) else {
                return Ok(Err(ToolError::InvalidArguments(
                    "an MCP tool takes a JSON object as its arguments".into(),
                )));
            };
            let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
            let result = match self.service.call_tool(params).await {
                Ok(result) => result,
                // The server answered, with a JSON-RPC error: the tool's
                // failure, not the session's.
                Err(ServiceError::McpError(e)) => {
                    return Ok(Err(ToolError::Failed(format!(
                        "the MCP server answered with error {}: {}",
                        e.code.0,
                        cut(&e.message)
                    ))));
                }
                Err(e) => return Err(format!("the MCP session failed: {}", service_error(&e))),
            };
            if result.is_error == Some(true) {
                return Ok(Err(ToolError::Failed(format!(
                    "the tool reported an error: {}",
                    cut(&text_of(&result.content))
                ))));
            }
            Ok(match result.structured_content {
                Some(structured) => Ok(structured.to_string()),
                None if self.structured.contains(tool) => Err(ToolError::Failed(
                    "the MCP server returned no `structuredContent`, which the tool's `outputSchema` requires".into(),
                )),
                None => Ok(serde_json::json!({ "content": result.content }).to_string()),
            })
        })
    }
}

/// The text blocks of a result, joined.
fn text_of(content: &[ContentBlock]) -> String {
    content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn cut(text: &str) -> &str {
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// An error and its causes, each said once (an HTTP client's error says
/// "error sending request" and keeps "connection refused" in its source).
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    // The SDK wraps the HTTP client's error without naming it as a source.
    type Http = StreamableHttpError<reqwest::Error>;
    if let Some(WorkerQuitReason::Fatal { error, .. }) = e.downcast_ref::<WorkerQuitReason<Http>>()
    {
        return causes(error);
    }
    if let Some(Http::Client(inner)) = e.downcast_ref::<Http>() {
        return causes(inner);
    }
    let mut text = e.to_string();
    let mut source = e.source();
    for _ in 0..8 {
        let Some(cause) = source else { break };
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// What went wrong, without the SDK's type names: a transport's own error.
fn service_error(e: &ServiceError) -> String {
    let text = match e {
        ServiceError::TransportSend(t) => causes(&*t.error),
        ServiceError::TransportClosed => "the server closed the connection".to_owned(),
        other => other.to_string(),
    };
    cut(&text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stdio_server_gets_only_the_named_environment() {
        // `env_clear` is not listed by `get_envs`; the end-to-end test
        // (tests/all/mcp_servers.rs) reads the server's whole environment.
        let env = [("TZ".to_owned(), "UTC".to_owned())];
        let command = stdio_command(
            &["/bin/true".to_owned(), "--flag".to_owned()],
            std::path::Path::new("/tmp"),
            &env,
        );
        let std = command.as_std();
        assert_eq!(std.get_program(), "/bin/true");
        assert_eq!(std.get_args().collect::<Vec<_>>(), ["--flag"]);
        assert_eq!(std.get_current_dir(), Some(std::path::Path::new("/tmp")));
        let envs: Vec<_> = std.get_envs().collect();
        assert_eq!(
            envs,
            [(
                std::ffi::OsStr::new("TZ"),
                Some(std::ffi::OsStr::new("UTC"))
            )]
        );
    }

    #[test]
    fn tools_become_specs_with_the_servers_effect_hint() {
        let tool: Tool = serde_json::from_value(serde_json::json!({
            "name": "get_time", "description": "Now.",
            "inputSchema": { "type": "object" },
            "outputSchema": { "type": "object", "properties": { "t": { "type": "string" } } },
            "annotations": { "readOnlyHint": true }
        }))
        .unwrap();
        let s = spec(tool);
        assert_eq!(s.name, "get_time");
        assert_eq!(s.description, "Now.");
        assert_eq!(s.effect, EffectClass::Read);
        assert_eq!(s.input_schema, r#"{"type":"object"}"#);
        assert!(s.output_schema.unwrap().contains("properties"));
        let plain: Tool = serde_json::from_value(serde_json::json!({
            "name": "rm", "inputSchema": { "type": "object" }
        }))
        .unwrap();
        assert_eq!(spec(plain).effect, EffectClass::Write);
    }
}
