//! Test agent that misbehaves according to its task: `spin`, `grow`,
//! `recurse` and `bigcall` exhaust a limit; `probe` reports what its sandbox lets it see
//! (environment, files, clock, random) as its answer; `remember:TEXT`,
//! `recall` and `fill:N:BYTES` use durable memory.

use serde_json::json;

wit_bindgen::generate!({ path: "../../../host/runtime/wit", world: "agent" });

use exports::femtoclaw::runtime::runner::{Guest, RunError};
use femtoclaw::runtime::memory::{self, MemoryError};

struct Hostile;

impl Guest for Hostile {
    fn run(task: String) -> Result<String, RunError> {
        run(&task).map_err(RunError::Failed)
    }
}

fn run(task: &str) -> Result<String, String> {
    {
        match task {
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
            // One host call with more bytes than the host takes in one.
            "bigcall" => match femtoclaw::runtime::tools::call("x.y", &"x".repeat(9 << 20)) {
                Ok(_) => Ok("the host took it".into()),
                Err(e) => Ok(format!("refused: {e:?}")),
            },
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
                let keys = memory::keys("note/");
                let values: Vec<Option<String>> = keys.iter().map(|k| memory::get(k)).collect();
                Ok(json!({ "keys": keys, "values": values }).to_string())
            }
            other if other.starts_with("remember:") => {
                let note = &other["remember:".len()..];
                let n = memory::keys("note/").len();
                memory::set(&format!("note/{n}"), note).map_err(|e| describe(&e))?;
                let too_big = memory::set("big", &"x".repeat(100_000)).is_err();
                Ok(json!({ "stored": format!("note/{n}"), "refused_big": too_big }).to_string())
            }
            // `fill:N:BYTES`: N writes of BYTES bytes each, under distinct
            // keys; the answer counts what was stored and how the rest was
            // refused.
            other if other.starts_with("fill:") => {
                let mut parts = other["fill:".len()..].split(':');
                let n: usize = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                let bytes: usize = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                let value = "v".repeat(bytes);
                let (mut stored, mut refused) = (0, std::collections::BTreeMap::<String, usize>::new());
                let mut last_error = String::new();
                for i in 0..n {
                    match memory::set(&format!("fill/{i}"), &value) {
                        Ok(()) => stored += 1,
                        Err(e) => {
                            *refused.entry(kind(&e).to_owned()).or_default() += 1;
                            last_error = describe(&e);
                        }
                    }
                }
                Ok(json!({ "stored": stored, "refused": refused, "last_error": last_error }).to_string())
            }
            other => Err(format!("unknown task `{other}`")),
        }
    }
}

fn kind(e: &MemoryError) -> &'static str {
    match e {
        MemoryError::TooLarge(_) => "too-large",
        MemoryError::QuotaExceeded(_) => "quota-exceeded",
        MemoryError::Unavailable(_) => "unavailable",
    }
}

fn describe(e: &MemoryError) -> String {
    match e {
        MemoryError::TooLarge(m) | MemoryError::QuotaExceeded(m) | MemoryError::Unavailable(m) => {
            format!("{}: {m}", kind(e))
        }
    }
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == 0 { 0 } else { std::hint::black_box(recurse(n - 1)) + 1 }
}

export!(Hostile);
