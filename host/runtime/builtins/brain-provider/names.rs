//! Tool addresses (`fs.read_file`) in the characters providers accept
//! (`^[a-zA-Z0-9_-]{1,64}$`): the dot becomes `__`. Capability and tool names
//! are lowercase letters, digits, `_` and `-`; a name that already holds `__`
//! could collide, so the mapping is checked to be one-to-one.

use std::collections::BTreeMap;

use crate::femtoclaw::runtime::types::{BrainError, ToolSpec};

pub(crate) struct Names {
    to_wire: BTreeMap<String, String>,
    from_wire: BTreeMap<String, String>,
}

impl Names {
    pub(crate) fn new(tools: &[ToolSpec]) -> Result<Names, BrainError> {
        let mut names = Names { to_wire: BTreeMap::new(), from_wire: BTreeMap::new() };
        for tool in tools {
            let wire = tool.name.replacen('.', "__", 1);
            let valid = !wire.is_empty() && wire.len() <= 64 && wire.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid || names.from_wire.contains_key(&wire) {
                return Err(BrainError::Config(format!("tool `{}` has no unique provider name", tool.name)));
            }
            names.from_wire.insert(wire.clone(), tool.name.clone());
            names.to_wire.insert(tool.name.clone(), wire);
        }
        Ok(names)
    }

    pub(crate) fn wire(&self, address: &str) -> String {
        self.to_wire.get(address).cloned().unwrap_or_else(|| address.replacen('.', "__", 1))
    }

    /// The address of a name the model used. An unknown name is passed on
    /// as it is: the runtime answers it with `unknown-tool`.
    pub(crate) fn address(&self, wire: &str) -> String {
        self.from_wire.get(wire).cloned().unwrap_or_else(|| wire.to_owned())
    }
}
