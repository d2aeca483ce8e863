//! `bare-host run FILE.cwasm`: deserialize a precompiled capability
//! component, instantiate it with an empty WASI context and call its
//! `describe` export. `bare-host precompile IN.wasm OUT.cwasm` (with the
//! `compile` feature) makes the input.

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({ path: "../../host/runtime/wit", world: "capability" });

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl femtoclaw::runtime::log::Host for State {
    fn log(&mut self, _: femtoclaw::runtime::log::Level, _: String) {}
}

impl femtoclaw::runtime::types::Host for State {}

fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true);
    Engine::new(&config).expect("engine")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine = engine();
    match args.get(1).map(String::as_str) {
        #[cfg(feature = "compile")]
        Some("precompile") => {
            let wasm = std::fs::read(&args[2]).expect("read input");
            std::fs::write(&args[3], engine.precompile_component(&wasm).expect("compile")).expect("write output");
        }
        Some("run") => {
            // SAFETY: the benchmark script produced this file with
            // `bare-host precompile` just before.
            let component = unsafe { wasmtime::component::Component::deserialize_file(&engine, &args[2]) }.expect("load");
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
            Capability::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).expect("link");
            let mut store = Store::new(&engine, State { wasi: WasiCtx::builder().build(), table: ResourceTable::new() });
            let instance = Capability::instantiate(&mut store, &component, &linker).expect("instantiate");
            let tools = instance.femtoclaw_runtime_tool_provider().call_describe(&mut store).expect("call");
            assert!(!tools.is_empty());
        }
        _ => eprintln!("usage: bare-host run FILE.cwasm | precompile IN.wasm OUT.cwasm"),
    }
}
