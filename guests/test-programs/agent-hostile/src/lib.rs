//! Test agent that misbehaves according to its task: `spin`, `grow` and
//! `recurse` exhaust a limit; `probe` reports what its sandbox lets it see
//! (environment, files, clock, random) as its answer; `remember:TEXT` and
//! `recall` use durable memory.

use serde_json::json;

wit_bindgen::generate!({ path: "../../../wit", world: "agent" });

use exports::femtoclaw::runtime::runner::Guest;

struct Hostile;

impl Guest for Hostile {
    fn run(task: String) -> Result<String, String> {
        match task.as_str() {
            "spin" => loop {
                std::hint::black_box(());
            },
            "grow" => {
                let mut v: Vec<Vec<u8>> = Vec::new();
                loop {
                    v.push(vec![7; 1 << 20]);
                    std::hint::black_box(&v);
                }
            }
            "recurse" => Ok(recurse(u64::MAX).to_string()),
            "probe" => {
                let env: Vec<(String, String)> = std::env::vars().collect();
                let root = std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.to_string());
                let t1 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
                let t2 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
                let mut random = [0u8; 8];
                let random_ok = std::fs::read("/dev/urandom").is_ok();
                let hash = std::collections::hash_map::RandomState::new();
                let h = std::hash::BuildHasher::hash_one(&hash, 1u8);
                random[..].copy_from_slice(&h.to_le_bytes());
                Ok(json!({ "env": env, "root": format!("{root:?}"), "clock": [t1, t2], "hash": h, "urandom": random_ok }).to_string())
            }
            "recall" => {
                let keys = femtoclaw::runtime::memory::keys("note/");
                let values: Vec<Option<String>> = keys.iter().map(|k| femtoclaw::runtime::memory::get(k)).collect();
                Ok(json!({ "keys": keys, "values": values }).to_string())
            }
            other if other.starts_with("remember:") => {
                let note = &other["remember:".len()..];
                let n = femtoclaw::runtime::memory::keys("note/").len();
                femtoclaw::runtime::memory::set(&format!("note/{n}"), note)?;
                let too_big = femtoclaw::runtime::memory::set("big", &"x".repeat(100_000)).is_err();
                Ok(json!({ "stored": format!("note/{n}"), "refused_big": too_big }).to_string())
            }
            other => Err(format!("unknown task `{other}`")),
        }
    }
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == 0 { 0 } else { std::hint::black_box(recurse(n - 1)) + 1 }
}

export!(Hostile);
