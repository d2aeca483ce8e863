//! In-process figures: the cost of a gated, validated, journaled tool call
//! beside a raw call into the same component, tool-call throughput, and the
//! journal's event rate and replay speed.

use std::path::Path;
use std::time::Instant;

use femtoclaw_runtime::artifacts;
use femtoclaw_runtime::prelude::*;
use serde_json::json;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::{Row, median};

wasmtime::component::bindgen!({ path: "../host/runtime/wit", world: "capability", exports: { default: async } });

struct Raw {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Raw {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
impl femtoclaw::runtime::log::Host for Raw {
    fn log(&mut self, _: femtoclaw::runtime::log::Level, _: String) {}
}
impl femtoclaw::runtime::types::Host for Raw {}

const CALLS: usize = 2000;

/// µs per raw `invoke(read_file)` on one fs instance, on `engine`: the
/// baseline. With wasmtime's defaults, and with FemtoClaw's engine (fuel
/// metering, epoch deadlines, NaN canonicalisation) and WASI settings (file
/// operations on the calling thread), to tell what the settings change from
/// what the host adds between agent and capability.
async fn raw_calls(engine: &Engine, data: &Path, femtoclaw: bool) -> Vec<f64> {
    let component = Component::from_file(engine, artifacts::CAP_FS).unwrap();
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    Capability::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    let mut wasi = WasiCtx::builder();
    // As FemtoClaw's capabilities do (capability.rs); before the preopen,
    // which takes the setting when it is added.
    wasi.allow_blocking_current_thread(femtoclaw)
        .preopened_dir(data, "/data", FsPerms::ReadOnly)
        .unwrap();
    let mut store = Store::new(
        engine,
        Raw {
            wasi: wasi.build(),
            table: ResourceTable::new(),
        },
    );
    // FemtoClaw's engine meters fuel and checks epoch deadlines: give this
    // store all of both.
    if store.set_fuel(u64::MAX).is_ok() {
        store.set_epoch_deadline(u64::MAX / 2);
    }
    let cap = Capability::instantiate_async(&mut store, &component, &linker)
        .await
        .unwrap();
    let call = exports::femtoclaw::runtime::tool_provider::Invocation {
        tool: "read_file".into(),
        arguments: r#"{"path":"/data/a.txt"}"#.into(),
        idempotency_key: "k".into(),
    };
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..CALLS {
            cap.femtoclaw_runtime_tool_provider()
                .call_invoke(&mut store, &call)
                .await
                .unwrap()
                .unwrap();
        }
        samples.push(started.elapsed().as_secs_f64() * 1e6 / CALLS as f64);
    }
    samples
}

/// ms per fresh store, instantiation of the fs capability and one
/// `read_file` call on `engine` (`n` times): the bare cost of a warm host
/// running a component once.
pub async fn instantiate_and_call(engine: &Engine, data: &Path, n: usize) -> Vec<f64> {
    let component = Component::from_file(engine, artifacts::CAP_FS).unwrap();
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    Capability::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    let pre = linker.instantiate_pre(&component).unwrap();
    let pre = CapabilityPre::new(pre).unwrap();
    let call = exports::femtoclaw::runtime::tool_provider::Invocation {
        tool: "read_file".into(),
        arguments: r#"{"path":"/data/a.txt"}"#.into(),
        idempotency_key: "k".into(),
    };
    let mut samples = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        let mut wasi = WasiCtx::builder();
        wasi.allow_blocking_current_thread(true)
            .preopened_dir(data, "/data", FsPerms::ReadOnly)
            .unwrap();
        let mut store = Store::new(
            engine,
            Raw {
                wasi: wasi.build(),
                table: ResourceTable::new(),
            },
        );
        if store.set_fuel(u64::MAX).is_ok() {
            store.set_epoch_deadline(u64::MAX / 2);
        }
        let cap = pre.instantiate_async(&mut store).await.unwrap();
        cap.femtoclaw_runtime_tool_provider()
            .call_invoke(&mut store, &call)
            .await
            .unwrap()
            .unwrap();
        samples.push(crate::ms(started.elapsed()));
    }
    samples
}

/// An argument rule and a per-minute rate on the tool (both met by every
/// call): what judging a call beyond its grant costs.
const JUDGED: &str = "[capabilities.fs.tool-rates.read_file]\ncalls-per-minute = 1000000\n[[rules]]\nname = \"data\"\ntool = \"fs.read_file\"\naction = \"allow\"\nwhen = { \"/path\" = { path = \"/data/**\" } }\n";

fn policy(dir: &Path, calls: usize, extra: &str) -> Policy {
    let call = json!({ "name": "fs.read_file", "arguments": { "path": "/data/a.txt" } });
    let turns =
        json!([{ "content": null, "tool_calls": vec![call; calls] }, { "content": "done" }]);
    std::fs::write(dir.join(format!("brain{calls}.json")), turns.to_string()).unwrap();
    let text = format!(
        "version = 1\n[limits]\nmax-tool-calls = {}\n[brain]\nkind = \"scripted\"\nscript = \"brain{calls}.json\"\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{{ guest = \"/data\", host = \"data\", mode = \"ro\" }}]\n{extra}",
        calls.max(1)
    );
    let path = dir.join(format!("policy{calls}-{}.toml", extra.len()));
    std::fs::write(&path, text).unwrap();
    Policy::load(path).unwrap()
}

pub fn rows() -> Vec<Row> {
    let tmp = crate::scratch("fc-bench");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/a.txt"), "hello").unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let raw = raw_calls(
            &Engine::new(&Config::new()).unwrap(),
            &dir.join("data"),
            false,
        )
        .await;
        let runtime = Runtime::new().unwrap();
        let raw_hardened = raw_calls(runtime.engine(), &dir.join("data"), true).await;
        let state = dir.join("state");
        let run = |calls: usize, extra: &str| {
            let mut plan = RunPlan::new(policy(dir, calls, extra), "bench");
            plan.state = Some(state.clone());
            plan
        };
        runtime.run(run(0, "")).await.unwrap(); // compile once
        let (mut per_call, mut throughput, mut replay_rate) = (Vec::new(), Vec::new(), Vec::new());
        let mut judged = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            runtime.run(run(0, "")).await.unwrap();
            let empty = started.elapsed().as_secs_f64();
            let started = Instant::now();
            let outcome = runtime.run(run(CALLS, "")).await.unwrap();
            let full = started.elapsed().as_secs_f64();
            per_call.push((full - empty) * 1e6 / CALLS as f64);
            throughput.push(CALLS as f64 / full);
            let started = Instant::now();
            runtime.replay(&state, &outcome.run_id, None).await.unwrap();
            replay_rate.push((CALLS + 2) as f64 / started.elapsed().as_secs_f64());
            let started = Instant::now();
            runtime.run(run(CALLS, JUDGED)).await.unwrap();
            judged.push((started.elapsed().as_secs_f64() - empty) * 1e6 / CALLS as f64);
        }
        let plain_median = median(&per_call);
        let raw_median = median(&raw);
        vec![
            Row {
                name: format!(
                    "4. tool call: gated + validated + journaled (per call, {CALLS} per run)"
                ),
                samples: per_call,
                unit: "µs",
                baseline: Some((
                    "raw call, FemtoClaw's settings".into(),
                    median(&raw_hardened),
                )),
            },
            Row {
                name: "4. the same call under an argument rule and a calls-per-minute rate".into(),
                samples: judged,
                unit: "µs",
                baseline: Some(("the call without them".into(), plain_median)),
            },
            Row {
                name:
                    "4. raw component call (fs.read_file, no host in between; wasmtime's defaults)"
                        .into(),
                samples: raw,
                unit: "µs",
                baseline: None,
            },
            Row {
                name: "4. the same raw call with FemtoClaw's engine and WASI settings".into(),
                samples: raw_hardened,
                unit: "µs",
                baseline: Some(("raw component call".into(), raw_median)),
            },
            Row {
                name: "5. throughput, one core (tool calls per second, whole run)".into(),
                samples: throughput,
                unit: "calls/s",
                baseline: None,
            },
            Row {
                name: "6. replay speed (steps per second)".into(),
                samples: replay_rate,
                unit: "steps/s",
                baseline: None,
            },
        ]
    })
}
