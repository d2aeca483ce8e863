//! FemtoClaw protocol validator.
//!
//! Nothing the model writes reaches a capability unless it is strict JSON
//! ([`parse_strict`]: size and depth caps, no duplicate keys, no trailing
//! data) that satisfies the tool's JSON Schema ([`ToolSchema`], compiled once
//! per tool). The value that was validated is the value the tool receives.

#![deny(missing_docs)]

mod schema;
mod strict;

pub use schema::{Schema, SchemaError, ToolSchema, Violation};
pub use strict::{JsonError, Limits, parse_strict};
