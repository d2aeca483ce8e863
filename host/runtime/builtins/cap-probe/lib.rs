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

wit_bindgen::generate!({ path: "../../wit", world: "capability" });

use exports::femtoclaw::runtime::tool_provider::{Guest, Invocation};
use femtoclaw::runtime::types::{EffectClass, ToolError, ToolSpec};

struct Probe;

/// What a probe creates, and removes again if it could.
const NAME: &str = "fc-compliance-probe";

fn tool(name: &str, description: &str, properties: &str, required: &str) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: description.into(),
        input_schema: format!(
            r#"{{"type":"object","properties":{{{properties}}},"required":[{required}],"additionalProperties":false}}"#
        ),
        output_schema: None,
        effect: EffectClass::Write,
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
            other => return Err(ToolError::UnknownTool(format!("probe has no tool `{other}`"))),
        };
        Ok(out.to_string())
    }
}

/// The preopened directory of the mount at guest path `guest`.
fn mount(guest: &str) -> Result<Descriptor, ToolError> {
    wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .find_map(|(dir, path)| (path == guest).then_some(dir))
        .ok_or_else(|| ToolError::Failed(format!("no mount at `{guest}`")))
}

export!(Probe);
