//! The journal's integration tests: the suite every backend passes, and
//! what is particular to one (crashes and damage of the redb file, faults of
//! the PostgreSQL connection).

mod crash;
mod faults;
mod integrity;
mod leases;
mod shared;
mod stores;
mod suite;
