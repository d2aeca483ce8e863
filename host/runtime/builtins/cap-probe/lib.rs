//! `fc-host compliance`'s probe: a capability that attacks the grant it is
//! given from inside the sandbox. It is not a built-in a policy can name;
//! `fc-host compliance` runs it with one capability's mounts and limits.
//!
//! The file system probes call WASI's `open-at` and friends on the mount's
//! preopened directory directly (no path checks of a standard library in
//! between), so what refuses an escape is the host's sandbox. Whatever a
//! probe manages to create is removed before it answers.

use serde_json::{Value, json};
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingRequest, RequestOptions, Scheme};
use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};

wit_bindgen::generate!({ path: "../../wit", world: "capability" });

use exports::femtoclaw::runtime::tool_provider::{Guest, Invocation};
use femtoclaw::runtime::types::{EffectClass, ToolError, ToolSpec};

struct Probe;

/// What a probe creates, and removes again if it could.
const NAME: &str = "fc-compliance-probe";

/// A probe tool. Each is declared `write` (its call is durable before it
/// runs), but `output`, the one the performance check times, is `read`: a
/// capability's plain call, without the commit a write waits for.
fn tool(name: &str, description: &str, properties: &str, required: &str) -> ToolSpec {
    let effect = if name == "output" { EffectClass::Read } else { EffectClass::Write };
    ToolSpec {
        name: name.into(),
        description: description.into(),
        input_schema: format!(
            r#"{{"type":"object","properties":{{{properties}}},"required":[{required}],"additionalProperties":false}}"#
        ),
        output_schema: None,
        effect,
    }
}

impl Guest for Probe {
    fn describe() -> Vec<ToolSpec> {
        let mount = r#""mount":{"type":"string"}"#;
        vec![
            tool(
                "open",
                "Open PATH relative to the mount's directory for reading.",
                &format!(r#"{mount},"path":{{"type":"string"}}"#),
                r#""mount","path""#,
            ),
            tool("create", "Create a file and a directory in the mount.", mount, r#""mount""#),
            tool(
                "symlink",
                "Make a symbolic link to TARGET in the mount and open it.",
                &format!(r#"{mount},"target":{{"type":"string"}}"#),
                r#""mount","target""#,
            ),
            tool("allocate", "Allocate BYTES of memory.", r#""bytes":{"type":"integer","minimum":0}"#, r#""bytes""#),
            tool("spin", "Compute without end.", "", ""),
            tool("output", "Answer with BYTES of text.", r#""bytes":{"type":"integer","minimum":0}"#, r#""bytes""#),
            tool("http", "Send GET to URL.", r#""url":{"type":"string"}"#, r#""url""#),
            tool("tcp", "Open a TCP connection to 127.0.0.1:PORT.", r#""port":{"type":"integer","minimum":0,"maximum":65535}"#, r#""port""#),
            tool(
                "reveal",
                "Put the value of the variable VAR, between two markers, into SINK: the output, an error or a log line.",
                r#""var":{"type":"string"},"sink":{"enum":["output","error","log"]}"#,
                r#""var","sink""#,
            ),
        ]
    }

    fn invoke(call: Invocation) -> Result<String, ToolError> {
        let args: Value = serde_json::from_str(&call.arguments)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let text = |key: &str| args[key].as_str().unwrap_or_default().to_owned();
        let size = usize::try_from(args["bytes"].as_u64().unwrap_or(0)).unwrap_or(usize::MAX);
        let out = match call.tool.as_str() {
            "open" => {
                let dir = mount(&text("mount"))?;
                let opened = dir.open_at(PathFlags::SYMLINK_FOLLOW, &text("path"), OpenFlags::empty(), DescriptorFlags::READ);
                json!({ "opened": opened.is_ok(), "error": opened.err().map(|e| e.to_string()) })
            }
            "create" => {
                let dir = mount(&text("mount"))?;
                let file = dir.open_at(PathFlags::empty(), NAME, OpenFlags::CREATE | OpenFlags::EXCLUSIVE, DescriptorFlags::WRITE);
                if file.is_ok() {
                    let _ = dir.unlink_file_at(NAME);
                }
                let sub = format!("{NAME}.d");
                let made = dir.create_directory_at(&sub);
                if made.is_ok() {
                    let _ = dir.remove_directory_at(&sub);
                }
                json!({ "file": file.is_ok(), "dir": made.is_ok(),
                        "errors": [file.err().map(|e| e.to_string()), made.err().map(|e| e.to_string())] })
            }
            "symlink" => {
                let dir = mount(&text("mount"))?;
                let made = dir.symlink_at(&text("target"), NAME);
                let opened = made.is_ok()
                    && dir.open_at(PathFlags::SYMLINK_FOLLOW, NAME, OpenFlags::empty(), DescriptorFlags::READ).is_ok();
                if made.is_ok() {
                    let _ = dir.unlink_file_at(NAME);
                }
                json!({ "created": made.is_ok(), "opened": opened, "error": made.err().map(|e| e.to_string()) })
            }
            "allocate" => {
                let block = vec![1u8; size];
                json!({ "allocated": std::hint::black_box(&block).len() })
            }
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "output" => json!({ "text": "x".repeat(size) }),
            "http" => {
                let (outcome, detail) = http_get(&text("url"));
                json!({ "outcome": outcome, "detail": detail })
            }
            "tcp" => {
                let port = u16::try_from(args["port"].as_u64().unwrap_or(0)).unwrap_or(0);
                let connected = tcp_connect(port);
                json!({ "connected": connected.is_ok(), "error": connected.err() })
            }
            "reveal" => {
                let value = format!("<<{}>>", std::env::var(text("var")).unwrap_or_default());
                match text("sink").as_str() {
                    "error" => return Err(ToolError::Failed(value)),
                    "log" => {
                        femtoclaw::runtime::log::log(femtoclaw::runtime::log::Level::Info, &value);
                        json!({ "logged": true })
                    }
                    _ => json!({ "value": value }),
                }
            }
            other => return Err(ToolError::UnknownTool(format!("probe has no tool `{other}`"))),
        };
        Ok(out.to_string())
    }
}

/// Sends `GET url`: whether the host refused it before connecting
/// (`denied`: no `net` pattern names it; `prohibited`: a private address
/// the pattern does not name), or let it through (`allowed`, under a gate
/// that decides only; else `answered` or `failed`).
fn http_get(url: &str) -> (&'static str, String) {
    let Ok(parsed) = url::Url::parse(url) else {
        return ("failed", format!("`{url}` is not a URL"));
    };
    let scheme = match parsed.scheme() {
        "https" => Scheme::Https,
        _ => Scheme::Http,
    };
    let host = parsed.host_str().unwrap_or_default();
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(&authority));
    let _ = request.set_path_with_query(Some("/"));
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(2_000_000_000));
    let _ = options.set_first_byte_timeout(Some(2_000_000_000));
    let result = outgoing_handler::handle(request, Some(options)).and_then(|future| {
        future.subscribe().block();
        match future.get() {
            Some(Ok(result)) => result,
            _ => Err(ErrorCode::InternalError(None)),
        }
    });
    match result {
        Ok(response) => ("answered", format!("status {}", response.status())),
        Err(ErrorCode::HttpRequestDenied) => ("denied", String::new()),
        Err(ErrorCode::DestinationIpProhibited) => ("prohibited", String::new()),
        // `fc-host compliance` runs the gate deciding only: what it lets
        // through is reported, never sent.
        Err(ErrorCode::InternalError(Some(m))) if m.contains("decide-only") => ("allowed", m),
        Err(e) => ("failed", format!("{e:?}")),
    }
}

/// Opens a TCP connection to 127.0.0.1:`port` through WASI sockets.
fn tcp_connect(port: u16) -> Result<(), String> {
    let network = wasip2::sockets::instance_network::instance_network();
    let socket = wasip2::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
        .map_err(|e| format!("creating a socket: {e:?}"))?;
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (127, 0, 0, 1) });
    socket.start_connect(&network, address).map_err(|e| format!("connecting: {e:?}"))?;
    socket.subscribe().block();
    socket.finish_connect().map(|_| ()).map_err(|e| format!("connecting: {e:?}"))
}

/// The preopened directory of the mount at guest path `guest`.
fn mount(guest: &str) -> Result<Descriptor, ToolError> {
    wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .find_map(|(dir, path)| (path == guest).then_some(dir))
        .ok_or_else(|| ToolError::Failed(format!("no mount at `{guest}`")))
}

export!(Probe);
