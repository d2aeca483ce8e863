//! End-to-end tests: they drive the real `fc-host` binary on real components
//! built from `guests/`.

mod brains;
mod bundles;
mod cache;
mod cli;
mod common;
mod compliance;
mod components;
mod crash;
mod damage;
mod denied;
mod embed;
mod exhaustion;
mod guide;
mod hello;
mod hostile;
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
mod image;
mod inprocess;
mod journal;
mod languages;
mod limits;
mod mcp;
mod mcp_servers;
mod mock_provider;
mod net;
mod observability;
mod oci;
mod otlp;
mod policy_errors;
mod protocol;
mod readonly;
mod replay100;
mod rules;
mod secrets;
mod serve;
mod server;
mod sinks;
