//! The journal's integration tests: crashes, damage, integrity, sharing.

mod crash;
mod integrity;
mod shared;
