//! End-to-end tests: they drive the real `fc-host` binary on real components
//! built from `guests/`.

mod common;
mod components;
mod denied;
mod hello;
mod hostile;
mod inprocess;
mod limits;
mod net;
mod policy_errors;
mod protocol;
mod readonly;
mod secrets;
mod server;
