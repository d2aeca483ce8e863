//! `witc`: the steps of building a C or Go capability that the language's
//! compiler cannot do, from the same libraries as `wit-bindgen c`/`go` and
//! `wasm-tools component embed`/`new` (installing those CLIs from source
//! costs ~13 minutes on 2 cores; this tool builds in about one).
//!
//! ```text
//! witc bindgen WIT_DIR WORLD OUT_DIR        C header and source for WORLD
//!                                           and the object file carrying its
//!                                           component type (link it in)
//! witc bindgen-go WIT_DIR WORLD OUT_DIR     Go bindings for WORLD (a module
//!                                           importing go.bytecodealliance.org/pkg)
//! witc component CORE.wasm OUT.wasm [WIT_DIR WORLD]
//!                                           embed WORLD's component type if
//!                                           named (Go's linker cannot), adapt
//!                                           WASI preview1 imports, write a
//!                                           component
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_component::ComponentEncoder;
use wit_parser::{Resolve, WorldId};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["bindgen", wit, world, out] => bindgen(Path::new(wit), world, Path::new(out)),
        ["bindgen-go", wit, world, out] => bindgen_go(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out), None),
        ["component", core, out, wit, world] => {
            component(Path::new(core), Path::new(out), Some((Path::new(wit), world)))
        }
        _ => {
            eprintln!(
                "usage: witc bindgen WIT_DIR WORLD OUT_DIR\n       witc bindgen-go WIT_DIR WORLD OUT_DIR\n       witc component CORE.wasm OUT.wasm [WIT_DIR WORLD]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("witc: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the WIT package in `dir` and selects `world` from it.
fn load(dir: &Path, world: &str) -> Result<(Resolve, WorldId)> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(dir)
        .with_context(|| format!("reading WIT from {}", dir.display()))?;
    let world = resolve
        .select_world(&[package], Some(world))
        .with_context(|| format!("selecting world `{world}` in {}", dir.display()))?;
    Ok((resolve, world))
}

fn bindgen(wit: &Path, world: &str, out: &Path) -> Result<()> {
    write_bindings(wit, world, out, wit_bindgen_c::Opts::default().build())
}

fn bindgen_go(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let opts = wit_bindgen_go::Opts {
        // gofmt may not be on PATH; the bindings are never edited by hand.
        format: wit_bindgen_go::Format::False,
        ..Default::default()
    };
    write_bindings(wit, world, out, opts.build())
}

fn write_bindings(
    wit: &Path,
    world: &str,
    out: &Path,
    mut generator: Box<dyn wit_bindgen_core::WorldGenerator>,
) -> Result<()> {
    let (mut resolve, world) = load(wit, world)?;
    let mut files = Default::default();
    generator.generate(&mut resolve, world, &mut files)?;
    for (name, contents) in files.iter() {
        let path: PathBuf = out.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn component(core: &Path, out: &Path, world: Option<(&Path, &str)>) -> Result<()> {
    let mut module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    if module.get(4..8) != Some(&[1, 0, 0, 0]) {
        bail!("{} is not a core wasm module", core.display());
    }
    if let Some((wit, world)) = world {
        let (resolve, world) = load(wit, world)?;
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
            false,
        )
        .with_context(|| format!("embedding the component type in {}", core.display()))?;
    }
    let component = ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
        .with_context(|| format!("encoding {} as a component", core.display()))?;
    std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))
}
