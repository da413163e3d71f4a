//! The experiment clock: a monotonic start instant; every timestamp is
//! nanoseconds since it.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub start: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
        }
    }
    pub fn ns(&self, t: Instant) -> i64 {
        t.saturating_duration_since(self.start).as_nanos() as i64
    }
    pub fn now_ns(&self) -> i64 {
        self.ns(Instant::now())
    }
    pub fn at(&self, ns: i64) -> Instant {
        self.start + Duration::from_nanos(ns.max(0) as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
