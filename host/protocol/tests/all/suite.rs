//! The official JSON-Schema-Test-Suite, draft 2020-12: every core test and
//! every `optional/format` test, through the same compile and check path
//! a tool's schema takes. Two kinds of case are refused when compiled, by
//! design, and counted as such: schemas that reference another document
//! (the host never fetches one) and schemas that name a format the
//! validator does not know (no format passes unchecked). And FemtoClaw
//! asserts every format, where 2020-12 makes them annotations by default:
//! the core tests that expect an invalid format to pass are counted as
//! asserted by design.

use std::path::{Path, PathBuf};

use femtoclaw_protocol::Schema;
use serde_json::Value;

fn suite_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/suites/json-schema-test-suite/tests/draft2020-12");
    assert!(
        dir.is_dir(),
        "the JSON-Schema-Test-Suite is missing at {}: run guests/toolchains.sh",
        dir.display()
    );
    dir
}

/// Whether a schema refers to a document other than itself: the suite
/// serves those from `http://localhost:1234`, which the host never fetches.
fn references_elsewhere(schema: &Value) -> bool {
    schema.to_string().contains("http://localhost:1234")
}

struct Tally {
    passed: usize,
    asserted_formats: usize,
    refused_remote: usize,
    refused_unknown_format: usize,
    failures: Vec<String>,
}

fn run_file(path: &Path, tally: &mut Tally) {
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    for case in cases {
        let name = format!("{file}: {}", case["description"].as_str().unwrap_or("?"));
        let schema = &case["schema"];
        let compiled = match Schema::compile(schema) {
            Ok(s) => s,
            Err(e) if references_elsewhere(schema) => {
                let _ = e;
                tally.refused_remote += 1;
                continue;
            }
            Err(e) if file == "unknown.json" && e.contains("format") => {
                tally.refused_unknown_format += 1;
                continue;
            }
            Err(e) => {
                tally
                    .failures
                    .push(format!("{name}: does not compile: {e}"));
                continue;
            }
        };
        for test in case["tests"].as_array().unwrap() {
            let expected = test["valid"].as_bool().unwrap();
            let actual = compiled.check(&test["data"]).is_ok();
            let description = test["description"].as_str().unwrap_or("");
            if expected == actual {
                tally.passed += 1;
            } else if file == "format.json"
                && description.contains("only an annotation by default")
                && !actual
            {
                tally.asserted_formats += 1;
            } else {
                tally.failures.push(format!(
                    "{name} / {}: expected {}, got {}",
                    test["description"].as_str().unwrap_or("?"),
                    if expected { "valid" } else { "invalid" },
                    if actual { "valid" } else { "invalid" }
                ));
            }
        }
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn draft_2020_12_core_and_formats() {
    let dir = suite_dir();
    let mut tally = Tally {
        passed: 0,
        asserted_formats: 0,
        refused_remote: 0,
        refused_unknown_format: 0,
        failures: Vec::new(),
    };
    let mut all = files(&dir);
    all.extend(files(&dir.join("optional/format")));
    for file in &all {
        run_file(file, &mut tally);
    }
    assert!(
        tally.failures.is_empty(),
        "{} of {} checks disagree with the suite:\n{}",
        tally.failures.len(),
        tally.passed + tally.failures.len(),
        tally.failures.join("\n")
    );
    // The suite's size, so that a suite that failed to load cannot pass.
    assert!(tally.passed > 1500, "{} checks passed", tally.passed);
    assert!(tally.refused_remote > 0 && tally.refused_unknown_format > 0);
    assert_eq!(
        tally.asserted_formats, 19,
        "every format of 2020-12 is asserted"
    );
    eprintln!(
        "JSON-Schema-Test-Suite draft 2020-12: {} checks agree; {} formats asserted where the suite expects annotations; {} cases referencing other documents and {} with unknown formats refused by design",
        tally.passed, tally.asserted_formats, tally.refused_remote, tally.refused_unknown_format
    );
}
