//! Host bindings of the three worlds. The `types` and `log` interfaces are
//! generated once (with the agent world) and shared, so a `ToolSpec` or a
//! `Message` is the same Rust type whichever component it crosses.

/// The agent world: tools and inference are async because they call into
/// other components; every import may trap (that is how budgets stop a run).
pub mod agent {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "agent",
        imports: {
            "femtoclaw:runtime/tools": async | trappable,
            "femtoclaw:runtime/inference": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        // Brain turns and tool results are journaled as JSON.
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

/// The capability world.
pub mod capability {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "capability",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "femtoclaw:runtime/types": super::agent::femtoclaw::runtime::types,
            "femtoclaw:runtime/log": super::agent::femtoclaw::runtime::log,
        },
    });
}

/// The brain world.
pub mod brain {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "brain",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "femtoclaw:runtime/types": super::agent::femtoclaw::runtime::types,
            "femtoclaw:runtime/log": super::agent::femtoclaw::runtime::log,
        },
    });
}

pub use agent::femtoclaw::runtime::types::{
    BrainError, Completion, EffectClass, FinishReason, Message, ToolError, ToolSpec,
};
