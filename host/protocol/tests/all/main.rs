//! The protocol validator against what others wrote.

mod suite;
