//! The product page's embedding snippet, exactly: a program that is one
//! agent under the `Strict` policy, journaled, resumable, stopped cleanly by
//! `SIGINT`/`SIGTERM`. Its task is its arguments (or standard input).
//!
//! `cargo run --example embed -- "What is in this folder?"`

use femtoclaw_runtime::prelude::*;

fn main() -> Result<(), Error> {
    let agent = Agent::new(Config::industrial());
    agent.enforce_policy(Policy::Strict);
    agent.run_managed()
}
