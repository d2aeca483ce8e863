//! What `fc-host compliance` found: one line per check, printed as a table,
//! as JSON, or as JUnit XML for CI systems.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// What the check tried held.
    Pass,
    /// It did not hold: `detail` says where.
    Fail,
    /// It could not be tried here: `detail` says why and what to pass.
    Skip,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        }
    }
}

/// One check: its section, what it tried, on which grant, tool or step.
#[derive(Debug, Clone)]
pub struct Check {
    pub section: &'static str,
    pub name: String,
    pub subject: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// Every check of one `fc-host compliance`, in the order they ran, and what
/// each section reports besides (the engine settings behind determinism).
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    pub notes: Vec<(&'static str, String)>,
}

impl Report {
    pub fn add(
        &mut self,
        section: &'static str,
        name: impl Into<String>,
        subject: impl Into<String>,
        verdict: Verdict,
        detail: impl Into<String>,
    ) {
        self.checks.push(Check {
            section,
            name: name.into(),
            subject: subject.into(),
            verdict,
            detail: detail.into(),
        });
    }

    pub fn failed(&self) -> usize {
        self.count(Verdict::Fail)
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == verdict).count()
    }

    fn summary(&self) -> String {
        format!(
            "{} checks: {} passed, {} failed, {} skipped",
            self.checks.len(),
            self.count(Verdict::Pass),
            self.failed(),
            self.count(Verdict::Skip)
        )
    }

    /// The readable table: a line per check, the notes, then the totals.
    pub fn table(&self) -> String {
        let width = |f: fn(&Check) -> &str| self.checks.iter().map(|c| f(c).len()).max();
        let (w1, w2, w3) = (
            width(|c| c.section).unwrap_or(0).max(7),
            width(|c| &c.name).unwrap_or(0).max(5),
            width(|c| &c.subject).unwrap_or(0).max(7),
        );
        let mut out = format!(
            "{:w1$}  {:w2$}  {:w3$}  result  detail\n",
            "section", "check", "subject"
        );
        for c in &self.checks {
            let _ = writeln!(
                out,
                "{:w1$}  {:w2$}  {:w3$}  {:6}  {}",
                c.section,
                c.name,
                c.subject,
                c.verdict.as_str(),
                c.detail
            );
        }
        for (section, note) in &self.notes {
            let _ = writeln!(out, "{section}: {note}");
        }
        out + &self.summary() + "\n"
    }

    pub fn json(&self) -> Value {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| {
                json!({ "section": c.section, "check": c.name, "subject": c.subject,
                        "result": c.verdict.as_str().to_lowercase(), "detail": c.detail })
            })
            .collect();
        let notes: Vec<Value> = self
            .notes
            .iter()
            .map(|(s, n)| json!({ "section": s, "note": n }))
            .collect();
        json!({ "passed": self.failed() == 0, "summary": self.summary(), "checks": checks, "notes": notes })
    }

    /// JUnit XML: a test suite per section, a test case per check.
    pub fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"fc-host compliance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            self.checks.len(),
            self.failed(),
            self.count(Verdict::Skip)
        );
        let mut sections: Vec<&str> = self.checks.iter().map(|c| c.section).collect();
        sections.dedup();
        for section in sections {
            let cases: Vec<&Check> = self
                .checks
                .iter()
                .filter(|c| c.section == section)
                .collect();
            let failures = cases.iter().filter(|c| c.verdict == Verdict::Fail).count();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{section}\" tests=\"{}\" failures=\"{failures}\">",
                cases.len()
            );
            for c in cases {
                let name = xml(&format!("{} [{}]", c.name, c.subject));
                let _ = write!(out, "    <testcase classname=\"{section}\" name=\"{name}\"");
                match c.verdict {
                    Verdict::Pass => out.push_str("/>\n"),
                    Verdict::Fail => {
                        let _ = writeln!(
                            out,
                            ">\n      <failure message=\"{}\"/>\n    </testcase>",
                            xml(&c.detail)
                        );
                    }
                    Verdict::Skip => {
                        let _ = writeln!(
                            out,
                            ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                            xml(&c.detail)
                        );
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out + "</testsuites>\n"
    }
}

/// Text as an XML attribute value. Characters XML 1.0 cannot carry at all
/// (most control characters) become `?`.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut r = Report::default();
        r.add("protocol", "not JSON", "fs.read_file", Verdict::Pass, "");
        r.add(
            "protocol",
            "wrong type of `path`",
            "fs.read_file",
            Verdict::Fail,
            "ran <capability> & \"answered\"\u{1}",
        );
        r.add(
            "determinism",
            "fresh runs",
            "run",
            Verdict::Skip,
            "no script",
        );
        r
    }

    #[test]
    fn the_junit_report_counts_and_escapes() {
        let xml = report().junit();
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" skipped=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<failure message=\"ran &lt;capability&gt; &amp; &quot;answered&quot;?\"/>"
            )
        );
        assert!(xml.contains("<testsuite name=\"determinism\" tests=\"1\" failures=\"0\">"));
        assert!(xml.contains("<skipped message=\"no script\"/>"));
        assert!(xml.ends_with("</testsuites>\n"));
    }

    #[test]
    fn the_table_and_json_say_what_failed() {
        let r = report();
        assert_eq!(r.failed(), 1);
        let table = r.table();
        assert!(table.contains("FAIL"), "{table}");
        assert!(table.ends_with("3 checks: 1 passed, 1 failed, 1 skipped\n"));
        let json = r.json();
        assert_eq!(json["passed"], false);
        assert_eq!(json["checks"][1]["result"], "fail");
        assert_eq!(json["checks"][1]["subject"], "fs.read_file");
    }
}
