//! `builtin:fs`: read, write and list files. It uses plain `std::fs`: every
//! path resolves against the directories the gate preopened for this
//! component (the policy's mounts, read-only or read-write), so the sandbox,
//! not this code, decides what is reachable.

use std::io::ErrorKind;

use serde_json::{Value, json};

wit_bindgen::generate!({ path: "../../wit", world: "capability" });

use exports::femtoclaw::runtime::tool_provider::{Guest, Invocation};
use femtoclaw::runtime::types::{EffectClass, ToolError, ToolSpec};

struct Fs;

const PATH_SCHEMA: &str = r#"{"type":"object","properties":{"path":{"type":"string","minLength":1,"maxLength":4096}},"required":["path"],"additionalProperties":false}"#;

impl Guest for Fs {
    fn describe() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "read_file".into(),
                description: "Read a UTF-8 text file at an absolute guest path.".into(),
                input_schema: PATH_SCHEMA.into(),
                output_schema: Some(
                    r#"{"type":"object","properties":{"content":{"type":"string"}},"required":["content"],"additionalProperties":false}"#.into(),
                ),
                effect: EffectClass::Read,
            },
            ToolSpec {
                name: "write_file".into(),
                description: "Create or replace a UTF-8 text file at an absolute guest path.".into(),
                input_schema: r#"{"type":"object","properties":{"path":{"type":"string","minLength":1,"maxLength":4096},"content":{"type":"string"}},"required":["path","content"],"additionalProperties":false}"#.into(),
                output_schema: Some(
                    r#"{"type":"object","properties":{"bytes_written":{"type":"integer","minimum":0}},"required":["bytes_written"],"additionalProperties":false}"#.into(),
                ),
                effect: EffectClass::Write,
            },
            ToolSpec {
                name: "list_dir".into(),
                description: "List a directory at an absolute guest path, sorted by name.".into(),
                input_schema: PATH_SCHEMA.into(),
                output_schema: Some(
                    r#"{"type":"object","properties":{"entries":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"kind":{"enum":["file","dir","symlink","other"]}},"required":["name","kind"],"additionalProperties":false}}},"required":["entries"],"additionalProperties":false}"#.into(),
                ),
                effect: EffectClass::Read,
            },
        ]
    }

    fn invoke(call: Invocation) -> Result<String, ToolError> {
        // The runtime validated `arguments` against the schema, so the fields
        // exist with the right types; a parse failure here is a runtime bug.
        let args: Value = serde_json::from_str(&call.arguments)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let path = args["path"].as_str().unwrap_or_default();
        check_granted(path)?;
        let out = match call.tool.as_str() {
            "read_file" => {
                let content = std::fs::read(path).map_err(|e| io_error(path, e))?;
                let content = String::from_utf8(content)
                    .map_err(|_| ToolError::Failed(format!("`{path}` is not UTF-8 text")))?;
                json!({ "content": content })
            }
            "write_file" => {
                let content = args["content"].as_str().unwrap_or_default();
                std::fs::write(path, content).map_err(|e| io_error(path, e))?;
                json!({ "bytes_written": content.len() })
            }
            "list_dir" => {
                let mut entries = Vec::new();
                for entry in std::fs::read_dir(path).map_err(|e| io_error(path, e))? {
                    let entry = entry.map_err(|e| io_error(path, e))?;
                    let kind = match entry.file_type() {
                        Ok(t) if t.is_symlink() => "symlink",
                        Ok(t) if t.is_dir() => "dir",
                        Ok(t) if t.is_file() => "file",
                        _ => "other",
                    };
                    let name = entry.file_name().to_string_lossy().into_owned();
                    entries.push(json!({ "name": name, "kind": kind }));
                }
                // Directory order is the host file system's: sort it so that
                // the result is deterministic.
                entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                json!({ "entries": entries })
            }
            other => return Err(ToolError::UnknownTool(format!("fs has no tool `{other}`"))),
        };
        Ok(out.to_string())
    }
}

/// Refuses, with a clear error, a path that no mount covers. This is for the
/// model's benefit only: the preopens are the enforcement, and a path that
/// passes here can still be refused by them (a symlink out of a mount).
fn check_granted(path: &str) -> Result<(), ToolError> {
    let mounts: Vec<String> =
        wasip2::filesystem::preopens::get_directories().into_iter().map(|(_, guest)| guest).collect();
    let under = |m: &String| path == m || path.strip_prefix(m.as_str()).is_some_and(|r| r.starts_with('/')) || m == "/";
    let escapes = path.split('/').any(|c| c == "..");
    if !path.starts_with('/') || escapes || !mounts.iter().any(under) {
        return Err(ToolError::Denied(format!(
            "`{path}` is outside the granted mounts ({}); paths are absolute, without `..`",
            if mounts.is_empty() { "none".to_string() } else { mounts.join(", ") }
        )));
    }
    Ok(())
}

/// WASI's `notcapable` (no preopen covers the path) as wasi-libc reports it.
const ENOTCAPABLE: i32 = 76;

fn io_error(path: &str, e: std::io::Error) -> ToolError {
    let denied = matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem)
        || e.raw_os_error() == Some(ENOTCAPABLE);
    if denied {
        ToolError::Denied(format!("`{path}` is outside the granted mounts or not writable: {e}"))
    } else if e.kind() == ErrorKind::Unsupported {
        // The host opens regular files and directories only.
        ToolError::Failed(format!("`{path}` is a special file (a FIFO, socket or device): not supported"))
    } else {
        ToolError::Failed(format!("`{path}`: {e}"))
    }
}

export!(Fs);
