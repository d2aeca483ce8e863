//! Virtual time and seeded randomness for guests whose runs must replay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// A clock that starts at a fixed instant and advances one microsecond per
/// read: time moves forward, and the same run reads the same times.
#[derive(Debug, Default)]
pub(crate) struct VirtualClock {
    reads: AtomicU64,
}

/// 2024-01-01T00:00:00Z, the virtual clock's start.
const START_SECS: u64 = 1_704_067_200;

impl VirtualClock {
    fn tick(&self) -> u64 {
        self.reads.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl HostWallClock for VirtualClock {
    fn resolution(&self) -> Duration {
        Duration::from_micros(1)
    }
    fn now(&self) -> Duration {
        Duration::from_secs(START_SECS) + Duration::from_micros(self.tick())
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        self.tick() * 1_000
    }
}

/// A deterministic random source.
pub(crate) fn seeded_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
