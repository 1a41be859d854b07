//! Throughput recording for one direction of one relay connection.
//!
//! The connection keeps its own meter and copies it to the seat's shared slot at
//! most every [`TRAFFIC_FLUSH_EVERY`] or when it catches up, so the data path takes
//! no lock per block; `who` reads the slot when asked.

use std::time::{Duration, Instant};

use crate::core::registry::TrafficSlot;
use crate::core::throughput::ThroughputMeter;

/// Longest a busy connection keeps its throughput figures to itself before `who`
/// sees them (a connection that catches up publishes at once).
pub const TRAFFIC_FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Records one direction's throughput into the seat's shared meters, which `who`
/// reads when asked.
pub(super) struct TrafficRecorder {
    slot: TrafficSlot,
    rx: bool,
    /// This connection's own meter; the shared slot gets a copy now and then, so
    /// the data path takes no lock per block.
    local: ThroughputMeter,
    last_flush: Instant,
    dirty: bool,
}

impl TrafficRecorder {
    pub(super) fn new(slot: TrafficSlot, rx: bool) -> Self {
        TrafficRecorder {
            slot,
            rx,
            local: ThroughputMeter::default(),
            last_flush: Instant::now(),
            dirty: false,
        }
    }

    /// Records a transfer of `bytes` that started at `started` and ends now.
    /// `idle` says the connection has caught up (a short read, an empty queue): a
    /// good moment to make the figures visible to `who` before things go quiet.
    pub(super) fn record(&mut self, bytes: usize, started: Instant, idle: bool) {
        let now = Instant::now();
        // Time spent blocked on the peer counts as transfer time (slow peers show
        // low rates instead of vanishing from the averages).
        self.local.record_span(bytes as u64, started, now);
        self.dirty = true;
        if idle || now.duration_since(self.last_flush) >= TRAFFIC_FLUSH_EVERY {
            self.flush(now);
        }
    }

    fn flush(&mut self, now: Instant) {
        if !self.dirty {
            return;
        }
        let mut t = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if self.rx {
            t.rx = self.local.clone();
        } else {
            t.tx = self.local.clone();
        }
        self.dirty = false;
        self.last_flush = now;
    }
}

impl Drop for TrafficRecorder {
    fn drop(&mut self) {
        self.flush(Instant::now());
    }
}
