//! `fc-host compile [COMPONENT.wasm…]`: compile ahead of time into the cache.

use std::path::PathBuf;

use femtoclaw_runtime::{Builtin, ComponentRef};

use crate::state::StateArgs;

/// Compile components into the compile cache (`STATE/cache`), so that runs
/// start without compiling. Without arguments: the built-in components, which
/// fc-host carries precompiled for the machine that built it; they get cache
/// entries only on a machine that cannot run those.
#[derive(clap::Args)]
pub struct CompileCommand {
    /// Component files to compile.
    components: Vec<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
}

impl CompileCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let runtime = crate::commands::run::runtime(&self.state)?;
        let sources: Vec<ComponentRef> = if self.components.is_empty() {
            Builtin::ALL
                .into_iter()
                .map(ComponentRef::Builtin)
                .collect()
        } else {
            self.components
                .into_iter()
                .map(ComponentRef::File)
                .collect()
        };
        for source in sources {
            let hash = runtime.precompile(&source)?;
            crate::console::outln!("{hash}  {source}");
        }
        Ok(crate::exit::OK)
    }
}
