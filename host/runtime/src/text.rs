//! Text for human-facing sinks. Every string a guest or a model chose (a
//! tool name, a log line, an answer quoted in an error) may hold newlines,
//! carriage returns, terminal escapes or bidirectional overrides that would
//! forge a line or rewrite a terminal; [`escape`] makes each of them a
//! visible escape. The CLI passes every line it writes to a terminal or log
//! through it, and the log formatter every field.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::bindings::ToolError;

/// Whether `c` must not reach a terminal or a line-oriented log raw: C0 and
/// C1 controls, DEL, line and paragraph separators, and the bidirectional
/// formatting characters ("Trojan Source", CVE-2021-42574).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'
                ..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// JSON text with every character that JSON may carry raw but a terminal
/// must not (DEL, C1 controls, bidirectional overrides, line separators)
/// written as a `\u` escape. Inside a JSON string that is the same text;
/// outside strings JSON has no such characters.
pub fn json_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) && c != '\n') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) && c != '\n' {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` for a terminal as an answer: its lines and tabs kept, every other
/// unsafe character escaped.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) && c != '\n' && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\t' => safe.push(c),
            c if is_unsafe(c) => push_escaped(&mut safe, c),
            c => safe.push(c),
        }
    }
    Cow::Owned(safe)
}

/// `text` with every unsafe character written as an escape (`\n`, `\r`,
/// `\t`, `\u{1b}`); borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_unsafe(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// [`escape`], then cut to about `max` bytes (`…[cut]` marks the cut).
pub fn escape_capped(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for c in text.chars() {
        if out.len() >= max {
            out.push_str("…[cut]");
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// An I/O error in words, without Rust's `(os error N)` suffix.
pub fn io_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}

/// A tool error in words: `denied: …`, `invalid arguments: …`.
pub(crate) fn tool_error(error: &ToolError) -> String {
    let (kind, message) = match error {
        ToolError::Denied(m) => ("denied", m),
        ToolError::InvalidArguments(m) => ("invalid arguments", m),
        ToolError::UnknownTool(m) => ("unknown tool", m),
        ToolError::LimitExceeded(m) => ("limit exceeded", m),
        ToolError::Failed(m) => ("failed", m),
    };
    format!("{kind}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn json_lines_stay_json_and_lose_raw_controls() {
        let raw = json!({ "m": "a\u{7f}b\u{9b}c\u{202e}d\ne" }).to_string();
        let safe = json_safe(&raw);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        let back: Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["m"], "a\u{7f}b\u{9b}c\u{202e}d\ne");
    }

    #[test]
    fn every_line_forging_or_terminal_character_is_escaped() {
        let hostile = "fs.read\nINFO tool call allowed\r\x1b[2J\x1b]8;;http://x\x07link\u{9b}31m\u{7f}\u{202e}txt.exe\u{2028}";
        let out = escape(hostile);
        assert!(!out.chars().any(is_unsafe), "{out}");
        assert_eq!(
            out,
            "fs.read\\nINFO tool call allowed\\r\\u{1b}[2J\\u{1b}]8;;http://x\\u{7}link\\u{9b}31m\\u{7f}\\u{202e}txt.exe\\u{2028}"
        );
        assert!(matches!(escape("plain text, ünïcode"), Cow::Borrowed(_)));
        assert_eq!(
            escape_capped(&"x".repeat(50), 10),
            format!("{}…[cut]", "x".repeat(10))
        );
    }
}
