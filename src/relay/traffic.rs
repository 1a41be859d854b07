//! Throughput recording for one direction of one relay connection.
//!
//! The connection keeps its own meter and copies it to the seat's shared slot, so
//! the data path takes no lock per block; `who` reads the slot when asked and
//! computes the figures for that moment (`core::throughput`).
//!
//! When the copy is made, so that `who` describes what just happened:
//!
//! - whenever the connection is about to wait for its peer with nothing to move
//!   ([`TrafficRecorder::idle_until`], or a record marked `idle`): everything moved
//!   before the wait is visible, however the last read or write ended;
//! - when a transfer gets held up ([`TrafficRecorder::held_up`]: a write on a full
//!   socket, a block waiting for room in a recipient's queue): the copy carries the
//!   stall's start, and `who` counts the time since as transfer time in which nothing
//!   moved. The first stall after a copy without one is published at once; later
//!   ones at most every [`TRAFFIC_FLUSH_EVERY`], so a paced stream that stalls
//!   briefly on every block does not take a lock per block;
//! - otherwise at most every [`TRAFFIC_FLUSH_EVERY`] while data keeps moving.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::core::registry::TrafficSlot;
use crate::core::throughput::ThroughputMeter;

/// Longest a busy connection keeps its throughput figures to itself before `who`
/// sees them (a connection that waits publishes at once).
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
    /// Whether the shared copy carries a pending mark.
    published_pending: bool,
}

impl TrafficRecorder {
    pub(super) fn new(slot: TrafficSlot, rx: bool) -> Self {
        TrafficRecorder {
            slot,
            rx,
            local: ThroughputMeter::default(),
            last_flush: Instant::now(),
            dirty: false,
            published_pending: false,
        }
    }

    /// Records a transfer of `bytes` that started at `started` and ends now; a
    /// stall of it ([`Self::held_up`]) is over. `idle` says the connection has
    /// caught up (its queue is empty): a good moment to make the figures visible
    /// to `who` before things go quiet.
    pub(super) fn record(&mut self, bytes: usize, started: Instant, idle: bool) {
        let now = Instant::now();
        // Time spent blocked on the peer counts as transfer time (slow peers show
        // low rates instead of vanishing from the averages).
        self.local.record_span(bytes as u64, started, now);
        self.local.set_pending(None);
        self.dirty = true;
        if idle || now.duration_since(self.last_flush) >= TRAFFIC_FLUSH_EVERY {
            self.flush(now);
        }
    }

    /// Awaits `fut`, something the connection waits for with nothing to move (a
    /// read on a quiet socket). If it cannot complete at once, what was recorded
    /// is published before the wait.
    pub(super) async fn idle_until<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        if let Poll::Ready(out) = poll_once(fut.as_mut()).await {
            return out;
        }
        self.flush(Instant::now());
        fut.await
    }

    /// Awaits `fut`, the next step of a transfer under way since `since` (a write,
    /// or handing a block to a recipient's queue). If it cannot complete at once,
    /// the transfer is pending from `since` until it completes: transfer time in
    /// which nothing moves, so a peer that stops reading sees its figures fall.
    /// Cancel safe: dropped before it completes (a timer or command won the
    /// `select!`), the mark stays until the transfer is recorded or given up.
    pub(super) async fn held_up<F: Future>(&mut self, since: Instant, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        if let Poll::Ready(out) = poll_once(fut.as_mut()).await {
            return out;
        }
        self.mark_pending(since);
        let out = fut.await;
        self.end_pending(Instant::now());
        out
    }

    fn mark_pending(&mut self, since: Instant) {
        if self.local.pending() == Some(since) {
            // A retried step of the same stall (its select! was woken by a timer).
            return;
        }
        self.local.set_pending(Some(since));
        self.dirty = true;
        let now = Instant::now();
        if !self.published_pending || now.duration_since(self.last_flush) >= TRAFFIC_FLUSH_EVERY {
            self.flush(now);
        }
    }

    /// Ends a stall: the seconds it took stay transfer time.
    fn end_pending(&mut self, now: Instant) {
        if let Some(since) = self.local.pending() {
            self.local.record_span(0, since, now);
            self.local.set_pending(None);
            self.dirty = true;
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
        self.published_pending = self.local.pending().is_some();
        self.last_flush = now;
    }
}

impl Drop for TrafficRecorder {
    fn drop(&mut self) {
        // A connection that ends mid-stall is no longer transferring.
        let now = Instant::now();
        self.end_pending(now);
        self.flush(now);
    }
}

/// Polls `fut` once: its output if it is ready, `Pending` otherwise (it stays
/// registered for a wake-up, so the caller can go on awaiting it).
async fn poll_once<F: Future + Unpin>(mut fut: F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut fut).poll(cx))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::Traffic;

    fn published(slot: &TrafficSlot) -> Traffic {
        slot.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_wait_publishes_what_was_recorded_before_it() {
        let slot = TrafficSlot::default();
        let mut r = TrafficRecorder::new(slot.clone(), true);
        // A full block, not idle: kept local.
        r.record(16_384, Instant::now(), false);
        assert_eq!(published(&slot).rx.averages(Instant::now()), [0.0; 5]);
        // Ready at once: still no need to publish.
        assert_eq!(r.idle_until(async { 7 }).await, 7);
        assert_eq!(published(&slot).rx.averages(Instant::now()), [0.0; 5]);
        // A wait: published first.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let slot2 = slot.clone();
        let waiter = async {
            let seen = published(&slot2).rx.averages(Instant::now());
            tx.send(()).unwrap();
            seen
        };
        let wait = r.idle_until(rx);
        let (got, seen) = tokio::join!(wait, waiter);
        got.unwrap();
        assert_eq!(seen, [16_384.0; 5], "published while waiting");
    }

    #[tokio::test]
    async fn a_held_up_transfer_is_published_as_pending_and_ends_with_it() {
        let slot = TrafficSlot::default();
        let mut r = TrafficRecorder::new(slot.clone(), false);
        let started = Instant::now();
        r.record(1000, started, false);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let slot2 = slot.clone();
        let waiter = async {
            let pending = published(&slot2).tx.pending();
            tx.send(()).unwrap();
            pending
        };
        let (got, pending) = tokio::join!(r.held_up(started, rx), waiter);
        got.unwrap();
        assert_eq!(
            pending,
            Some(started),
            "the stall is visible while it lasts"
        );
        drop(r);
        assert_eq!(
            published(&slot).tx.pending(),
            None,
            "over once it completed"
        );
    }

    #[tokio::test]
    async fn a_connection_dropped_mid_stall_is_no_longer_pending() {
        let slot = TrafficSlot::default();
        let mut r = TrafficRecorder::new(slot.clone(), false);
        let started = Instant::now();
        {
            let mut stuck = pin!(r.held_up(started, std::future::pending::<()>()));
            assert!(poll_once(stuck.as_mut()).await.is_pending());
        }
        assert_eq!(published(&slot).tx.pending(), Some(started));
        drop(r);
        assert_eq!(published(&slot).tx.pending(), None);
    }
}
