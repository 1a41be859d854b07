//! Per-connection throughput: the five averages of a `who` reply's `throughput` attribute and
//! the figure the `minthroughput` check uses (XEP-0037 "Stream peer listing"; PROFILE 16).
//!
//! # Transfer time
//!
//! The XEP says "time is measured only during data transfer". Our definition, in whole
//! seconds so an operator can reason about it:
//!
//! - Time is cut into one-second slots counted from the meter's first record.
//! - A slot is a **transfer second** when bytes moved in it, or when a transfer reported with
//!   [`ThroughputMeter::record_span`] was under way during it (a write blocked on a slow
//!   peer's socket, say). Slots in which the connection sat idle with nothing to move are
//!   not transfer time, so a quiet stream does not drag its peers' averages down.
//! - Only *completed* slots count: the slot `now` falls in is still filling up, and counting
//!   it would make every figure dip right after a second boundary.
//! - The average over `k` seconds is the bytes of the newest `k` completed transfer seconds
//!   divided by `k`, or by how many there are when fewer are recorded (at least 1).
//!
//! A consequence worth knowing: a peer can never beat the rate at which the stream produces
//! data, so a `minthroughput` above that rate disconnects everyone. It is the stream
//! creator's knob for dropping peers that hold a fast stream back.
//!
//! What to feed is the relay's call; our reading of the XEP ("average throughput *to* that
//! peer", "checked after every unit of outgoing transfer") is the bytes written to the peer,
//! with `record_span(n, write_started, write_finished)` so that time spent blocked on the
//! peer's socket is counted.
//!
//! No I/O, no clock: every method takes the `Instant` to use. Memory is O(16).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::proto::units::format_rate;

/// The spans, in seconds of transfer time, of the five averages (PROFILE 16).
pub const WINDOWS_SECS: [u32; 5] = [1, 2, 4, 8, 16];

/// Transfer seconds a peer needs before `minthroughput` is checked: the longest window.
pub const FULL_WINDOW_SECS: u32 = 16;

/// Slots kept: the completed ones the longest window needs, plus the one still filling up.
const KEPT_SLOTS: usize = FULL_WINDOW_SECS as usize + 1;

/// Measures one connection's throughput over the last 1, 2, 4, 8 and 16 transfer seconds.
#[derive(Debug, Clone, Default)]
pub struct ThroughputMeter {
    /// The start of slot 0, set by the first record.
    origin: Option<Instant>,
    /// Transfer seconds, oldest first: (slot number, bytes moved in it). At most
    /// [`KEPT_SLOTS`] entries, strictly increasing slot numbers.
    slots: VecDeque<(u64, u64)>,
}

impl ThroughputMeter {
    /// A meter with nothing recorded: all averages 0, no transfer time.
    pub fn new() -> Self {
        ThroughputMeter {
            origin: None,
            slots: VecDeque::with_capacity(KEPT_SLOTS),
        }
    }

    /// Records `bytes` moved at `now`; the slot of `now` becomes a transfer second even when
    /// `bytes` is 0.
    pub fn record(&mut self, bytes: u64, now: Instant) {
        self.record_span(bytes, now, now);
    }

    /// Records a transfer of `bytes` that was under way from `started` until `now`. Every slot
    /// from `started` to `now` becomes a transfer second and the bytes are spread evenly over
    /// them, so a write that blocked for five seconds reads as five slow seconds, not one
    /// fast one.
    pub fn record_span(&mut self, bytes: u64, started: Instant, now: Instant) {
        let origin = *self.origin.get_or_insert(started.min(now));
        let last = slot_of(origin, now);
        let first = slot_of(origin, started).min(last);
        let span = last - first + 1;
        let share = bytes / span;
        let remainder = bytes % span;
        // Slots older than the kept window would be trimmed at once; skip them.
        let from = first.max(last.saturating_sub(KEPT_SLOTS as u64 - 1));
        for slot in from..=last {
            let extra = if slot == last { remainder } else { 0 };
            self.add(slot, share + extra);
        }
        while self.slots.len() > KEPT_SLOTS {
            self.slots.pop_front();
        }
    }

    /// Adds bytes to a slot, creating it in order if it is new. Spans may overlap earlier
    /// records (two writes in flight), hence the search instead of a push.
    fn add(&mut self, slot: u64, bytes: u64) {
        match self.slots.binary_search_by_key(&slot, |&(s, _)| s) {
            Ok(i) => self.slots[i].1 = self.slots[i].1.saturating_add(bytes),
            Err(i) => self.slots.insert(i, (slot, bytes)),
        }
    }

    /// The completed transfer seconds at `now`, newest first, at most 16.
    fn completed(&self, now: Instant) -> impl Iterator<Item = u64> + '_ {
        let current = self.origin.map(|origin| slot_of(origin, now));
        self.slots
            .iter()
            .rev()
            .filter(move |&&(slot, _)| current.is_some_and(|c| slot < c))
            .map(|&(_, bytes)| bytes)
            .take(FULL_WINDOW_SECS as usize)
    }

    /// Average bytes per second over the last 1, 2, 4, 8 and 16 completed transfer seconds.
    pub fn averages(&self, now: Instant) -> [f64; 5] {
        let mut totals = [0u64; 5];
        let mut counts = [0u32; 5];
        for (age, bytes) in self.completed(now).enumerate() {
            for (w, &window) in WINDOWS_SECS.iter().enumerate() {
                if (age as u32) < window {
                    totals[w] = totals[w].saturating_add(bytes);
                    counts[w] += 1;
                }
            }
        }
        let mut averages = [0.0; 5];
        for w in 0..WINDOWS_SECS.len() {
            averages[w] = totals[w] as f64 / f64::from(counts[w].max(1));
        }
        averages
    }

    /// How many completed transfer seconds are recorded at `now`, capped at 16.
    pub fn transfer_secs(&self, now: Instant) -> u32 {
        self.completed(now).count() as u32
    }

    /// The averages and transfer time at `now`, to hand to whoever answers `who`.
    pub fn snapshot(&self, now: Instant) -> ThroughputSnapshot {
        ThroughputSnapshot {
            averages: self.averages(now),
            transfer_secs: self.transfer_secs(now),
        }
    }

    /// The `throughput` attribute at `now`, e.g. `1KB/1.1KB/0.9KB/1KB/3KB`.
    pub fn format(&self, now: Instant) -> String {
        self.snapshot(now).format()
    }
}

/// The slot `at` falls in; instants before `origin` fall in slot 0.
fn slot_of(origin: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(origin).as_secs()
}

/// A meter's figures at one instant, as `who` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThroughputSnapshot {
    /// Bytes per second over the last 1, 2, 4, 8 and 16 transfer seconds.
    pub averages: [f64; 5],
    /// Completed transfer seconds, capped at 16.
    pub transfer_secs: u32,
}

impl ThroughputSnapshot {
    /// The `throughput` attribute: five fields joined by `/`, e.g. `1KB/1.1KB/0.9KB/1KB/3KB`.
    pub fn format(&self) -> String {
        self.averages
            .iter()
            .map(|&rate| format_rate(rate))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Whether a peer with these figures falls foul of `minthroughput` (bytes per second):
    /// only once it has 16 transfer seconds, against the 16-second average (PROFILE 16).
    /// A `minthroughput` of 0 never triggers.
    pub fn is_below(&self, minthroughput: u64) -> bool {
        minthroughput > 0
            && self.transfer_secs >= FULL_WINDOW_SECS
            && self.averages[4] < minthroughput as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(base: Instant, millis: u64) -> Instant {
        base + Duration::from_millis(millis)
    }

    #[test]
    fn nothing_recorded_reads_zero() {
        let base = Instant::now();
        let meter = ThroughputMeter::new();
        assert_eq!(meter.averages(base), [0.0; 5]);
        assert_eq!(meter.transfer_secs(base), 0);
        assert_eq!(meter.format(base), "0B/0B/0B/0B/0B");
    }

    #[test]
    fn the_current_second_does_not_count_until_it_is_over() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        meter.record(1024, base);
        assert_eq!(meter.transfer_secs(at(base, 999)), 0);
        assert_eq!(meter.averages(at(base, 999)), [0.0; 5]);
        assert_eq!(meter.transfer_secs(at(base, 1000)), 1);
        assert_eq!(meter.averages(at(base, 1000)), [1024.0; 5]);
    }

    #[test]
    fn averages_cover_the_newest_transfer_seconds() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        // Seconds 0..16 move 1KB each, second 16 moves 3KB.
        for s in 0..16 {
            meter.record(1024, at(base, s * 1000));
        }
        meter.record(3 * 1024, at(base, 16_000));
        let now = at(base, 17_000);
        let [one, two, four, eight, sixteen] = meter.averages(now);
        assert_eq!(one, 3072.0);
        assert_eq!(two, 2048.0);
        assert_eq!(four, 1536.0);
        assert_eq!(eight, 1280.0);
        assert_eq!(sixteen, 1152.0);
        assert_eq!(meter.transfer_secs(now), 16);
        assert_eq!(meter.format(now), "3KB/2KB/1.5KB/1.3KB/1.1KB");
    }

    #[test]
    fn idle_seconds_are_not_transfer_time() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        meter.record(2048, at(base, 0));
        // An hour of silence, then one more busy second.
        meter.record(1024, at(base, 3_600_000));
        let now = at(base, 3_601_000);
        assert_eq!(meter.transfer_secs(now), 2);
        assert_eq!(
            meter.averages(now),
            [1024.0, 1536.0, 1536.0, 1536.0, 1536.0]
        );
    }

    #[test]
    fn fewer_seconds_than_a_window_divide_by_what_there_is() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        meter.record(100, at(base, 0));
        meter.record(300, at(base, 1000));
        let now = at(base, 2000);
        assert_eq!(meter.averages(now), [300.0, 200.0, 200.0, 200.0, 200.0]);
    }

    #[test]
    fn bytes_in_one_second_add_up() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        for ms in [0, 100, 900] {
            meter.record(512, at(base, ms));
        }
        assert_eq!(meter.averages(at(base, 1000))[0], 1536.0);
        assert_eq!(meter.transfer_secs(at(base, 1000)), 1);
    }

    #[test]
    fn a_blocked_write_counts_every_second_it_took() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        meter.record(0, base);
        // 5000 bytes that took from 0.5 s to 4.5 s to write: five slots of 1000 bytes.
        meter.record_span(5000, at(base, 500), at(base, 4500));
        let now = at(base, 5000);
        assert_eq!(meter.transfer_secs(now), 5);
        assert_eq!(meter.averages(now), [1000.0; 5]);
    }

    #[test]
    fn overlapping_spans_share_their_seconds() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        meter.record(50, base);
        meter.record(100, at(base, 2500));
        // Began before the record above finished: slots 0, 1 and 2 get 100 bytes each.
        meter.record_span(300, at(base, 0), at(base, 2900));
        let now = at(base, 3000);
        assert_eq!(meter.transfer_secs(now), 3);
        assert_eq!(meter.averages(now)[0], 200.0);
        assert_eq!(meter.averages(now)[2], 150.0);
    }

    #[test]
    fn memory_stays_bounded() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        for s in 0..1000 {
            meter.record(10, at(base, s * 1000));
        }
        meter.record_span(1_000_000, base, at(base, 2_000_000));
        assert!(meter.slots.len() <= KEPT_SLOTS);
        assert_eq!(meter.transfer_secs(at(base, 2_001_000)), 16);
    }

    #[test]
    fn minthroughput_waits_for_sixteen_transfer_seconds() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        for s in 0..15 {
            meter.record(1000, at(base, s * 1000));
        }
        let min = 1536; // the spec's minthroughput='1.5KB'
        assert!(!meter.snapshot(at(base, 15_500)).is_below(min));
        meter.record(1000, at(base, 15_000));
        let snapshot = meter.snapshot(at(base, 16_000));
        assert_eq!(snapshot.transfer_secs, 16);
        assert!(snapshot.is_below(min));
        assert!(!snapshot.is_below(1000));
        assert!(!snapshot.is_below(0));
    }

    #[test]
    fn snapshot_formats_like_the_profile_example() {
        let snapshot = ThroughputSnapshot {
            averages: [1024.0, 1126.0, 0.95 * 1024.0 * 1024.0, 1024.0, 3072.0],
            transfer_secs: 16,
        };
        // PROFILE 16 writes `0.9KB`; we print the largest unit whose value is at least 1,
        // so a sub-KB value is in bytes and our example's third field is in KB.
        assert_eq!(snapshot.format(), "1KB/1.1KB/972.8KB/1KB/3KB");
        assert_eq!(ThroughputSnapshot::default().format(), "0B/0B/0B/0B/0B");
    }
}

/// The `minthroughput` check's measure: bytes written to a peer divided by the time
/// the relay spent waiting on that peer's socket, over the last 16 seconds of such
/// waiting (XEP "Time is measured only during data transfer").
///
/// Why not the wall-clock averages above: a stream runs at the pace of its slowest
/// peer, so by wall clock every peer of a slow stream looks slow, and the check
/// would throw out the fast peers along with the one holding them back. Time spent
/// *blocked on a socket* singles out the peer that cannot keep up: a fast peer's
/// writes complete at once and it never accumulates 16 s of waiting.
#[derive(Debug, Default)]
pub struct BusyRate {
    samples: VecDeque<(Duration, u64)>,
    busy: Duration,
    bytes: u64,
}

/// How much waiting time the `minthroughput` check looks back over.
pub const BUSY_WINDOW: Duration = Duration::from_secs(16);

impl BusyRate {
    /// Records `bytes` written to the peer in `busy` time.
    pub fn record(&mut self, bytes: u64, busy: Duration) {
        self.samples.push_back((busy, bytes));
        self.busy += busy;
        self.bytes += bytes;
        while let Some(&(b, n)) = self.samples.front() {
            if self.busy.saturating_sub(b) < BUSY_WINDOW {
                break;
            }
            self.samples.pop_front();
            self.busy -= b;
            self.bytes -= n;
        }
    }

    /// Whether the peer is below `min` bytes/s over the newest 16 s of waiting,
    /// counting a write still pending for `pending` that has moved `pending_bytes`
    /// so far (a peer that stopped reading never completes a write: its stall is
    /// the newest part of the window). Only once 16 s of waiting have been seen;
    /// `min == 0` never triggers.
    pub fn is_below(&self, min: u64, pending: Duration, pending_bytes: u64) -> bool {
        if min == 0 || self.busy + pending < BUSY_WINDOW {
            return false;
        }
        let window = BUSY_WINDOW.as_secs_f64();
        let p = pending.as_secs_f64();
        let mut bytes = if p >= window {
            pending_bytes as f64 * window / p
        } else {
            pending_bytes as f64
        };
        let mut need = (window - p).max(0.0);
        for &(b, n) in self.samples.iter().rev() {
            if need <= 0.0 {
                break;
            }
            let b = b.as_secs_f64();
            if b <= need {
                bytes += n as f64;
                need -= b;
            } else {
                // Only the newest part of this sample is inside the window.
                bytes += n as f64 * need / b;
                need = 0.0;
            }
        }
        bytes < min as f64 * window
    }
}

#[cfg(test)]
mod busy_tests {
    use super::*;

    #[test]
    fn fast_writes_never_accumulate_a_window() {
        let mut r = BusyRate::default();
        for _ in 0..100_000 {
            r.record(16_384, Duration::from_micros(5));
        }
        assert!(!r.is_below(1 << 30, Duration::ZERO, 0));
    }

    #[test]
    fn a_slow_peer_is_below_after_sixteen_seconds_of_waiting() {
        let mut r = BusyRate::default();
        for _ in 0..15 {
            r.record(1024, Duration::from_secs(1));
        }
        assert!(
            !r.is_below(2048, Duration::ZERO, 0),
            "only 15 s of waiting so far"
        );
        r.record(1024, Duration::from_secs(1));
        assert!(r.is_below(2048, Duration::ZERO, 0));
        assert!(
            !r.is_below(1024, Duration::ZERO, 0),
            "exactly at the minimum is fine"
        );
        assert!(!r.is_below(0, Duration::ZERO, 0), "0 means no minimum");
    }

    #[test]
    fn a_stuck_write_counts_while_pending() {
        let mut r = BusyRate::default();
        r.record(1 << 20, Duration::from_millis(100));
        assert!(!r.is_below(64 * 1024, Duration::from_secs(10), 0));
        assert!(r.is_below(128 * 1024, Duration::from_secs(16), 0));
    }

    #[test]
    fn a_stall_after_a_fast_start_is_caught() {
        // 8 MiB went quickly, then the peer stopped reading: the stall is the newest
        // 16 s of waiting, so the early bytes do not hide it.
        let mut r = BusyRate::default();
        r.record(8 << 20, Duration::from_millis(200));
        assert!(
            !r.is_below(10 * 1024, Duration::from_secs(10), 0),
            "not 16 s yet"
        );
        assert!(r.is_below(10 * 1024, Duration::from_secs(16), 0));
        assert!(r.is_below(10 * 1024, Duration::from_secs(40), 4096));
        // A slow but moving write is judged by what it moved.
        assert!(!r.is_below(10 * 1024, Duration::from_secs(20), 1 << 20));
    }

    #[test]
    fn old_waiting_falls_out_of_the_window() {
        let mut r = BusyRate::default();
        r.record(10, Duration::from_secs(16));
        assert!(r.is_below(100, Duration::ZERO, 0));
        // Sixteen fast seconds later the slow start is forgotten.
        for _ in 0..16 {
            r.record(1_000_000, Duration::from_secs(1));
        }
        assert!(!r.is_below(100, Duration::ZERO, 0));
    }
}
