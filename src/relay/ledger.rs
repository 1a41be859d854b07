//! Each stream's totals for its "stream ended" log line: bytes received from its
//! peers and sent to them, how many relay connections it had, and how long it
//! lived.
//!
//! A stream is over for its users only when its last connection has delivered
//! what it holds and closed, which can be well after the registry forgot it (a
//! drain, a peer still forwarding after it dropped itself), so the line is
//! written here, on the data path's side, once both have happened. Bytes are
//! taken from each connection's traffic slot when it closes (its meters are
//! final by then) and the slot's counters start again at 0, so a seat that
//! reconnects is never counted twice.

use std::collections::HashMap;
use std::time::Instant;

use tracing::info;

use crate::core::registry::{ConnId, StreamId, TrafficSlot};
use crate::core::sparse::ShrinkWhenSparse;

/// What one stream has moved so far.
#[derive(Debug, Default)]
struct Totals {
    /// Bytes read from its peers (their data).
    bytes_in: u64,
    /// Bytes written to its peers (the framed blocks).
    bytes_out: u64,
    /// Relay connections that attached, in all.
    connections: u64,
    /// Of those, still open.
    open: usize,
    /// When the registry forgot it, the stream's creation time.
    gone: Option<Instant>,
}

/// The totals of every stream that has had a connection or is ending.
#[derive(Debug, Default)]
pub struct Ledger {
    conns: HashMap<ConnId, (StreamId, TrafficSlot)>,
    streams: HashMap<StreamId, Totals>,
}

/// The line a stream's end is logged with (also what tests look for).
pub const STREAM_ENDED: &str = "stream ended";

impl Ledger {
    /// `conn` joined `stream`'s data path; it records its traffic in `slot`.
    pub fn attached(&mut self, stream: StreamId, conn: ConnId, slot: TrafficSlot) {
        let t = self.streams.entry(stream).or_default();
        t.connections += 1;
        t.open += 1;
        self.conns.insert(conn, (stream, slot));
    }

    /// `conn` closed: its bytes go to its stream, which ends here if it was its last.
    pub fn closed(&mut self, conn: ConnId) {
        let Some((stream, slot)) = self.conns.remove(&conn) else {
            return;
        };
        self.conns.shrink_when_sparse();
        let (rx, tx) = slot.lock().unwrap_or_else(|p| p.into_inner()).take_totals();
        let Some(t) = self.streams.get_mut(&stream) else {
            return;
        };
        t.bytes_in += rx;
        t.bytes_out += tx;
        t.open -= 1;
        if t.open == 0 {
            if let Some(started) = t.gone {
                self.end(stream, started, false);
            }
        }
    }

    /// The registry forgot `stream` (created at `started`): it ends now if no
    /// connection of it is open, else when the last one closes.
    pub fn gone(&mut self, stream: StreamId, started: Instant) {
        let t = self.streams.entry(stream).or_default();
        if t.open == 0 {
            self.end(stream, started, false);
        } else {
            t.gone = Some(started);
        }
    }

    /// The drain's deadline passed and every connection is cut: every stream
    /// still counted ends now, with the bytes its open connections recorded.
    pub fn cut_all(&mut self) {
        for (_, (stream, slot)) in self.conns.drain() {
            let (rx, tx) = slot.lock().unwrap_or_else(|p| p.into_inner()).take_totals();
            if let Some(t) = self.streams.get_mut(&stream) {
                t.bytes_in += rx;
                t.bytes_out += tx;
                t.open = 0;
            }
        }
        let ending: Vec<(StreamId, Option<Instant>)> =
            self.streams.iter().map(|(s, t)| (*s, t.gone)).collect();
        for (stream, started) in ending {
            self.end(stream, started.unwrap_or_else(Instant::now), true);
        }
    }

    fn end(&mut self, stream: StreamId, started: Instant, cut: bool) {
        let t = self.streams.remove(&stream).unwrap_or_default();
        self.streams.shrink_when_sparse();
        info!(
            stream,
            bytes_in = t.bytes_in,
            bytes_out = t.bytes_out,
            connections = t.connections,
            duration_ms = started.elapsed().as_millis() as u64,
            cut,
            "{STREAM_ENDED}"
        );
    }

    /// (connections, streams) held, for leak checks.
    pub fn held(&self) -> (usize, usize) {
        (self.conns.len(), self.streams.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(rx: u64, tx: u64) -> TrafficSlot {
        let slot = TrafficSlot::default();
        {
            let mut t = slot.lock().unwrap();
            let now = Instant::now();
            t.rx.record(rx, now);
            t.tx.record(tx, now);
        }
        slot
    }

    fn totals(l: &Ledger, stream: StreamId) -> (u64, u64, u64, usize) {
        let t = &l.streams[&stream];
        (t.bytes_in, t.bytes_out, t.connections, t.open)
    }

    #[test]
    fn a_stream_ends_when_it_is_gone_and_its_last_connection_closed() {
        let mut l = Ledger::default();
        let master = slot(1000, 0);
        l.attached(1, 10, master.clone());
        l.attached(1, 11, slot(0, 1100));
        l.closed(11);
        assert_eq!(totals(&l, 1), (0, 1100, 2, 1));
        // The registry is done with it, but the master is still forwarding.
        l.gone(1, Instant::now());
        assert_eq!(l.held(), (1, 1));
        // More bytes arrive before the master closes: they count.
        master.lock().unwrap().rx.record(500, Instant::now());
        l.closed(10);
        assert_eq!(l.held(), (0, 0), "ended and forgotten");
    }

    #[test]
    fn a_reconnected_seat_is_counted_once() {
        let mut l = Ledger::default();
        let seat = slot(700, 0);
        l.attached(2, 20, seat.clone());
        l.closed(20);
        // The new connection moves nothing of its own; the slot was emptied.
        l.attached(2, 21, seat.clone());
        l.closed(21);
        assert_eq!(totals(&l, 2), (700, 0, 2, 0));
        l.gone(2, Instant::now());
        assert_eq!(l.held(), (0, 0));
    }

    #[test]
    fn streams_without_connections_end_at_once_and_a_cut_ends_the_rest() {
        let mut l = Ledger::default();
        l.gone(3, Instant::now());
        assert_eq!(l.held(), (0, 0));
        l.attached(4, 40, slot(5, 5));
        l.attached(5, 50, slot(5, 5));
        l.gone(5, Instant::now());
        l.cut_all();
        assert_eq!(l.held(), (0, 0));
    }
}
