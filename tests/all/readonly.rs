//! A read-only mount resists every mutating call, including the two-path
//! ones whose other end is a read-write mount (CVE-2026-47261, -58494).

use serde_json::json;

use crate::common::*;

fn tree(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let content = std::fs::read_to_string(entry.path()).unwrap_or_else(|_| "<dir>".into());
        out.push((entry.file_name().to_string_lossy().into_owned(), content));
    }
    out.sort();
    out
}

#[test]
fn every_mutation_of_a_read_only_mount_is_refused() {
    let s = Scratch::new();
    s.write("ro/file.txt", "original");
    s.mkdir("ro/sub");
    s.mkdir("rw");
    let before = tree(&s.path("ro"));
    s.setup(
        &policy(&format!(
            "[capabilities.h]\ncomponent = {:?}\ntools = [\"mutate\"]\nmounts = [{{ guest = \"/ro\", host = \"ro\", mode = \"ro\" }}, {{ guest = \"/rw\", host = \"rw\", mode = \"rw\" }}]\n",
            artifacts::CAP_HOSTILE
        )),
        calls(&[("h.mutate", json!({ "ro": "/ro", "rw": "/rw" }))]),
    );
    let t = s.run_echo().transcript();
    let results: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(t[0]["ok"].as_str().unwrap()).unwrap();
    assert_eq!(results.len(), 17, "{results:#?}");
    let escaped: Vec<&String> = results
        .iter()
        .filter(|(_, v)| *v == "ok")
        .map(|(k, _)| k)
        .collect();
    assert!(
        escaped.is_empty(),
        "mutations that got through: {escaped:?}\n{results:#?}"
    );
    assert_eq!(
        tree(&s.path("ro")),
        before,
        "the read-only tree is unchanged"
    );
    let rw = tree(&s.path("rw"));
    assert!(
        rw.iter().all(|(name, _)| name.starts_with("src")),
        "nothing moved or linked out of ro: {rw:?}"
    );
}
