//! Everything fc-host writes for people and programs, in one place.
//!
//! - stdout carries results only (the answer, listings, `--json` output);
//!   a closed stdout (`fc-host runs | head -1`) ends the command quietly.
//! - stderr carries log lines (see `logging`), notices (the run id) and
//!   errors; with `--log-format json` every stderr line is one JSON object.
//! - Every line passes [`femtoclaw_runtime::text`]'s escaping: no guest- or
//!   model-chosen text can forge a line or put a control character on a
//!   terminal. JSON lines get the characters JSON leaves raw escaped too.

use std::io::Write as _;
use std::sync::OnceLock;

use femtoclaw_runtime::text::{escape, json_safe};
use serde_json::{Map, Value, json};

use crate::logging::Format;

static FORMAT: OnceLock<Format> = OnceLock::new();

/// Sets the format of stderr lines (once, before anything is written).
pub fn init(format: Format) {
    let _ = FORMAT.set(format);
}

fn format() -> Format {
    FORMAT.get().copied().unwrap_or(Format::Pretty)
}

/// Writes one line to stdout, escaped: a newline inside `line` is shown as
/// `\n`, never taken as the end of a line (callers write line by line). A
/// closed pipe ends the process quietly (exit 0: the reader has what it
/// wanted).
pub fn out(line: &str) {
    write_stdout(&format!("{}\n", escape(line)));
}

/// Writes a JSON document to stdout (pretty), with the characters JSON
/// leaves raw (DEL, C1 controls, bidirectional overrides) escaped.
pub fn out_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).expect("invariant: JSON values serialize");
    write_stdout(&format!("{}\n", json_safe(&text)));
}

/// The agent's answer: its text as it is, since it is the product of the
/// run (a program reads it), but never a raw terminal escape.
pub fn answer(text: &str) {
    let mut safe = femtoclaw_runtime::text::escape_lines(text).into_owned();
    safe.push('\n');
    write_stdout(&safe);
}

/// Writes `text` to stdout as it is: for output fc-host generates itself
/// (completion scripts), never for text a model or a guest chose.
pub fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        // Nowhere left to report it but stderr.
        error_line(&format!("cannot write to stdout: {e}"), &[]);
        std::process::exit(i32::from(crate::exit::INTERNAL));
    }
}

/// A notice on stderr: `fc-host: MESSAGE` (with `key=value` fields), or a
/// JSON object with `level` `INFO`.
pub fn notice(message: &str, fields: &[(&str, Value)]) {
    line("INFO", message, fields);
}

/// A warning on stderr: `fc-host: warning: MESSAGE`, or a JSON object with
/// `level` `WARN`.
pub fn warning(message: &str) {
    line("WARN", message, &[]);
}

/// An error line on stderr: `fc-host: error: MESSAGE`, or a JSON object
/// with `level` `ERROR`.
pub fn error_line(message: &str, fields: &[(&str, Value)]) {
    line("ERROR", message, fields);
}

/// The error that ended a command, with its cause chain (each cause once).
pub fn error(e: &anyhow::Error, code: u8) {
    error_line(&chain(e), &[("exit_code", json!(code))]);
}

/// The causes of an error joined by `: `, leaving out a cause whose text
/// the message before it already holds (an OS error is printed once), and
/// Rust's ` (os error N)` suffixes (the words say it).
pub fn chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = without_os_codes(&cause.to_string());
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

fn without_os_codes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" (os error ") {
        let tail = &rest[i + " (os error ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..i]);
        if digits > 0 && tail[digits..].starts_with(')') {
            rest = &tail[digits + 1..];
        } else {
            out.push_str(" (os error ");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

fn line(level: &str, message: &str, fields: &[(&str, Value)]) {
    let text = match format() {
        Format::Json => {
            let mut object = Map::new();
            object.insert("timestamp".into(), json!(timestamp()));
            object.insert("level".into(), json!(level));
            object.insert("target".into(), json!("fc-host"));
            object.insert("message".into(), json!(message));
            for (k, v) in fields {
                object.insert((*k).into(), v.clone());
            }
            json_safe(&Value::Object(object).to_string()).into_owned()
        }
        Format::Pretty => {
            let prefix = match level {
                "ERROR" => "fc-host: error: ",
                "WARN" => "fc-host: warning: ",
                _ => "fc-host: ",
            };
            // The message says it all for a person; the fields are for
            // programs (JSON lines).
            escape(&format!("{prefix}{message}")).into_owned()
        }
    };
    // stderr is where failures are reported: a failure to write there has
    // nowhere to go.
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Now, as the log lines write it (RFC 3339, UTC).
fn timestamp() -> String {
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
    let mut text = String::new();
    let _ = SystemTime.format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut text));
    text
}

/// `println!` through [`out`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::out(&format!($($arg)*))
    };
}
pub(crate) use outln;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(io).context(format!(
            "cannot read `x`: {}",
            std::io::Error::from(std::io::ErrorKind::NotFound)
        ));
        assert_eq!(chain(&e), "cannot read `x`: entity not found");
        let os =
            anyhow::Error::new(std::io::Error::from_raw_os_error(2)).context("cannot read `y`");
        assert_eq!(chain(&os), "cannot read `y`: No such file or directory");
    }
}
