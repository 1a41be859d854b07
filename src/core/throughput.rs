//! Per-connection throughput: the five averages of a `who` reply's `throughput` attribute and
//! the figure the `minthroughput` check uses (XEP-0037 "Stream peer listing"; PROFILE 16).
//!
//! # Transfer time
//!
//! The XEP says "time is measured only during data transfer". Our definition, in
//! seconds so an operator can reason about it:
//!
//! - Time is cut into one-second slots counted from the meter's first record.
//! - A slot is a **transfer second** when bytes moved in it, or when a transfer was under
//!   way during it: one reported with [`ThroughputMeter::record_span`] (a write that took
//!   that long), or one still pending ([`ThroughputMeter::set_pending`]: a write blocked
//!   on a slow peer's socket, a block waiting for room in a slow recipient's queue).
//!   Pending time is transfer time in which nothing moved, so a stalled peer's figures
//!   fall the longer the stall lasts instead of standing at their last values. Slots in
//!   which the connection sat idle with nothing to move are not transfer time, so a quiet
//!   stream does not drag its peers' averages down, and a burst that is over keeps
//!   showing until something moves again.
//! - The second in progress counts for as much of it as has passed, so bytes that moved
//!   a moment ago show at once.
//! - The average over `k` seconds takes the newest `k` seconds of transfer time (the
//!   elapsed part of the current second if it is a transfer second, then whole completed
//!   transfer seconds, the oldest of them pro rata if only part of it fits) and divides
//!   their bytes by `k`, or by the transfer time there is when that is less, but never by
//!   less than one second: 6 MiB moved in a tenth of a second read `6MB` in all five
//!   fields at once, not 60 MB/s.
//!
//! A consequence worth knowing: a peer can never beat the rate at which the stream produces
//! data, so a `minthroughput` above that rate disconnects everyone. It is the stream
//! creator's knob for dropping peers that hold a fast stream back.
//!
//! What to feed is the relay's call (`relay::traffic`): each direction of a connection
//! has its own meter, recording the bytes as they move, `record_span(n, started, now)`
//! for a write that took time, and a pending mark while a transfer is held up.
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
    /// Since when a transfer has been held up without being recorded, if one is.
    pending: Option<Instant>,
    /// Every byte recorded (not part of the averages): the operator's stream
    /// listing reads it, the "stream ended" line takes it ([`Self::take_total`]).
    total: u64,
}

/// One transfer second as the averages see it.
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    /// Seconds of it that count: 1 for a completed one, the elapsed part for the current.
    len: f64,
    bytes: u64,
    completed: bool,
}

impl ThroughputMeter {
    /// A meter with nothing recorded: all averages 0, no transfer time.
    pub fn new() -> Self {
        ThroughputMeter {
            origin: None,
            slots: VecDeque::with_capacity(KEPT_SLOTS),
            pending: None,
            total: 0,
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
        self.total = self.total.saturating_add(bytes);
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

    /// Marks a transfer under way since `since` that has moved nothing since it was last
    /// recorded (a write blocked on the peer's socket, a block waiting for room in a
    /// recipient's queue), or clears the mark (`None`). While marked, every second from
    /// `since` to the one asked about is transfer time: a stall lowers the averages as it
    /// goes on. The caller records the transfer (with `record_span` from its start, so
    /// the seconds it took stay transfer time) and clears the mark when it is over.
    pub fn set_pending(&mut self, since: Option<Instant>) {
        if let Some(since) = since {
            self.origin.get_or_insert(since);
        }
        self.pending = since;
    }

    /// Bytes recorded since the meter was made or last [`Self::take_total`] (a
    /// connection's meter: what that connection has moved).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The bytes recorded so far, counting from 0 again; the averages are untouched.
    pub fn take_total(&mut self) -> u64 {
        std::mem::take(&mut self.total)
    }

    /// Since when a transfer has been pending, if one is (see [`Self::set_pending`]).
    pub fn pending(&self) -> Option<Instant> {
        self.pending
    }

    /// The transfer seconds at `now`, newest first: the current one if it is a transfer
    /// second, then completed ones; at most [`KEPT_SLOTS`], which covers 16 seconds.
    fn seconds(&self, now: Instant) -> ([Second; KEPT_SLOTS], usize) {
        let mut out = [Second::default(); KEPT_SLOTS];
        let mut n = 0;
        let Some(origin) = self.origin else {
            return (out, 0);
        };
        let age = now.saturating_duration_since(origin);
        let current = age.as_secs();
        let into_current = (age.as_secs_f64() - current as f64).clamp(0.0, 1.0);
        let pending_from = self.pending.map(|p| slot_of(origin, p).min(current));
        let mut recorded = self.slots.iter().rev().peekable();
        let mut slot = current;
        loop {
            // A record made just after `now` was read (the relay records on its own
            // clock) lands in a later slot; it counts as the current one.
            let (mut bytes, mut seen) = (0u64, false);
            while let Some(&&(s, b)) = recorded.peek() {
                if s < slot {
                    break;
                }
                bytes = bytes.saturating_add(b);
                seen = true;
                recorded.next();
            }
            if seen || pending_from.is_some_and(|p| p <= slot) {
                out[n] = Second {
                    len: if slot == current { into_current } else { 1.0 },
                    bytes,
                    completed: slot != current,
                };
                n += 1;
                if n == KEPT_SLOTS {
                    break;
                }
            }
            let next = if pending_from.is_some_and(|p| p < slot) {
                Some(slot - 1)
            } else {
                recorded.peek().map(|&&(s, _)| s)
            };
            match next {
                Some(s) => slot = s,
                None => break,
            }
        }
        (out, n)
    }

    /// Average bytes per second over the newest 1, 2, 4, 8 and 16 seconds of transfer
    /// time at `now`, the current second included (see the module doc).
    pub fn averages(&self, now: Instant) -> [f64; 5] {
        let (seconds, n) = self.seconds(now);
        let mut averages = [0.0; 5];
        for (w, &window) in WINDOWS_SECS.iter().enumerate() {
            let mut need = f64::from(window);
            let (mut bytes, mut len) = (0.0, 0.0);
            for s in &seconds[..n] {
                if need <= 0.0 {
                    break;
                }
                let part = s.len.min(need);
                // Only the newest `part` of a second that does not fit whole counts.
                bytes += if part < s.len {
                    s.bytes as f64 * part / s.len
                } else {
                    s.bytes as f64
                };
                len += part;
                need -= part;
            }
            averages[w] = bytes / f64::max(len, 1.0);
        }
        averages
    }

    /// How many completed transfer seconds there are at `now`, capped at 16.
    pub fn transfer_secs(&self, now: Instant) -> u32 {
        let (seconds, n) = self.seconds(now);
        seconds[..n]
            .iter()
            .filter(|s| s.completed)
            .count()
            .min(FULL_WINDOW_SECS as usize) as u32
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
        assert_eq!(meter.total(), 0);
    }

    #[test]
    fn the_total_counts_every_byte_however_old() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        meter.record(1000, base);
        meter.record_span(5000, at(base, 500), at(base, 4500));
        // Long after the averages have forgotten them.
        meter.record(1, at(base, 60_000));
        assert_eq!(meter.total(), 6001);
    }

    #[test]
    fn the_total_counts_every_byte_and_restarts_when_taken() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        meter.record(1000, base);
        // Spread over twenty seconds, older slots trimmed: the total keeps them all.
        meter.record_span(20_000, base, at(base, 20_000));
        assert_eq!(meter.total(), 21_000);
        let before = meter.averages(at(base, 20_000));
        assert_eq!(meter.take_total(), 21_000);
        assert_eq!(meter.total(), 0);
        assert_eq!(
            meter.averages(at(base, 20_000)),
            before,
            "averages untouched"
        );
    }

    const MIB: u64 = 1024 * 1024;

    fn assert_near(got: [f64; 5], want: [f64; 5], why: &str) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1.0, "{why}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn a_burst_shows_in_the_second_it_happens() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        // 6 MiB in 200 ms, well inside the first second.
        for ms in [0, 100, 200] {
            meter.record(2 * MIB, at(base, ms));
        }
        let six = (6 * MIB) as f64;
        assert_eq!(meter.averages(at(base, 200)), [six; 5]);
        assert_eq!(
            meter.transfer_secs(at(base, 200)),
            0,
            "no second completed yet"
        );
        assert_eq!(meter.format(at(base, 999)), "6MB/6MB/6MB/6MB/6MB");
        // When the second is over, and long after (nothing moved since), it still shows.
        assert_eq!(meter.averages(at(base, 1000)), [six; 5]);
        assert_eq!(meter.averages(at(base, 60_000)), [six; 5]);
    }

    #[test]
    fn a_steady_rate_does_not_dip_at_a_second_boundary() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        // 1000 bytes every 100 ms (10 000 bytes/s), read a few times between records.
        for i in 0..60 {
            meter.record(1000, at(base, i * 100));
            if i < 10 {
                continue;
            }
            for ms in [0, 1, 50, 99] {
                let now = i * 100 + ms;
                let one = meter.averages(at(base, now))[0];
                assert!(
                    (9_000.0..11_001.0).contains(&one),
                    "1-s figure at {now} ms is {one}"
                );
            }
        }
    }

    /// 16 s of 4 MiB/s (one record at the start of each of slots 0..15), then a write
    /// that has been pending since 16 s.
    fn four_mib_then_blocked(base: Instant) -> ThroughputMeter {
        let mut meter = ThroughputMeter::new();
        for s in 0..16 {
            meter.record(4 * MIB, at(base, s * 1000));
        }
        meter.set_pending(Some(at(base, 16_000)));
        meter
    }

    #[test]
    fn a_write_blocked_for_twenty_seconds_lowers_all_five_figures() {
        let base = Instant::now();
        let meter = four_mib_then_blocked(base);
        let four = (4 * MIB) as f64;
        assert_eq!(meter.averages(at(base, 16_000)), [four; 5], "just blocked");
        // 4 s blocked: the short windows are all stall, the long ones in proportion.
        assert_near(
            meter.averages(at(base, 20_000)),
            [0.0, 0.0, 0.0, four * 4.0 / 8.0, four * 12.0 / 16.0],
            "4 s blocked",
        );
        // 8.5 s blocked: 7.5 s of the 16 still moved data.
        assert_near(
            meter.averages(at(base, 24_500)),
            [0.0, 0.0, 0.0, 0.0, four * 7.5 / 16.0],
            "8.5 s blocked",
        );
        // Every figure only falls while the stall lasts.
        let mut last = meter.averages(at(base, 16_000));
        for ms in (16_000..=36_000).step_by(250) {
            let now = meter.averages(at(base, ms));
            for w in 0..5 {
                assert!(
                    now[w] <= last[w],
                    "figure {w} rose at {ms} ms: {last:?} -> {now:?}"
                );
            }
            last = now;
        }
        assert_eq!(meter.averages(at(base, 36_000)), [0.0; 5], "20 s blocked");
        assert_eq!(meter.format(at(base, 36_000)), "0B/0B/0B/0B/0B");
        assert_eq!(meter.transfer_secs(at(base, 36_000)), 16);
    }

    #[test]
    fn figures_recover_when_the_blocked_write_completes_and_data_flows() {
        let base = Instant::now();
        let mut meter = four_mib_then_blocked(base);
        // At 36 s the pending 64 KiB go out (spread over the 21 seconds the write
        // took) and 4 MiB/s flow again, recorded mid-second.
        meter.record_span(64 * 1024, at(base, 16_000), at(base, 36_000));
        meter.set_pending(None);
        meter.record(4 * MIB, at(base, 36_500));
        let four = (4 * MIB) as f64;
        let one = meter.averages(at(base, 36_600))[0];
        assert!(
            (four..four + 8192.0).contains(&one),
            "1-s figure at once: {one}"
        );
        let [_, _, _, _, sixteen] = meter.averages(at(base, 36_600));
        assert!(
            sixteen < four / 4.0,
            "16-s figure still mostly stall: {sixteen}"
        );
        for s in 37..52 {
            meter.record(4 * MIB, at(base, s * 1000 + 500));
        }
        for f in meter.averages(at(base, 52_000)) {
            assert!((four..four + 8192.0).contains(&f), "16 s later: {f}");
        }
    }

    #[test]
    fn a_pending_mark_alone_reads_zero() {
        let base = Instant::now();
        let mut meter = ThroughputMeter::new();
        meter.set_pending(Some(base));
        assert_eq!(meter.pending(), Some(base));
        assert_eq!(meter.averages(at(base, 5_000)), [0.0; 5]);
        assert_eq!(meter.transfer_secs(at(base, 5_000)), 5);
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
