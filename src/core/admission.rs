//! Who may open a relay connection: the relay port's limits in all and per source
//! address, and a tally of refusals that is logged at most once per interval.
//!
//! Why per source: with one pool for everyone, one address holding idle sockets
//! locks every other user out until the handshake timeout. Each source gets at most
//! `per_source` open connections and `pending_per_source` of them still in their
//! handshake. A source at its limit that opens one more does not lock *itself* out
//! either: its oldest pending connection that has not even sent its hello line is
//! closed to make room (a legitimate client sends its hello at once, so the evicted
//! one is what a slowloris leaves behind); only when every pending connection of
//! that source has said hello is the newcomer refused.
//!
//! Sources: an IPv4 address, or an IPv6 /64 (one host routinely owns a whole /64, so
//! counting single IPv6 addresses would be no limit). IPv4-mapped IPv6 addresses
//! (a listener on `[::]`) count as their IPv4 address.
//!
//! Pure bookkeeping: no sockets, no clock of its own. The relay listener owns the
//! connections and closes the ones named here.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::registry::ConnId;
use crate::core::sparse::ShrinkWhenSparse;

/// How often at most refused connections are logged (with their count).
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The limits, from `[relay]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Open connections in all (`max_connections`).
    pub total: usize,
    /// Open connections per source (`max_connections_per_ip`).
    pub per_source: usize,
    /// Connections per source still in their handshake (`max_pending_per_ip`).
    pub pending_per_source: usize,
}

/// What the per-source limits count: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source a peer address counts against.
    ///
    /// ```
    /// use dsps::core::admission::Source;
    /// let a = Source::of("2001:db8::1".parse().unwrap());
    /// assert_eq!(a, Source::of("2001:db8::ffff:2".parse().unwrap()));
    /// assert_eq!(a.to_string(), "2001:db8::/64");
    /// assert_eq!(Source::of("::ffff:10.0.0.1".parse().unwrap()).to_string(), "10.0.0.1");
    /// ```
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Source(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }

    /// The address that stands for the source (an IPv6 /64's first address).
    pub fn ip(&self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

/// Why a new connection was turned away, or an old one closed for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` reached.
    Total,
    /// The source has `max_connections_per_ip` open.
    PerSource,
    /// The source has `max_pending_per_ip` handshakes open, all past their hello.
    PendingPerSource,
    /// Not a refusal of the newcomer: an older silent handshake of the same source
    /// was closed to make room for it.
    Evicted,
}

/// The verdict on a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it in; first close `evict` (the same source's oldest silent handshake).
    Admit {
        /// A connection to close to make room, if any.
        evict: Option<ConnId>,
    },
    /// Close it at once.
    Refuse(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Accepted; no hello line yet.
    Silent,
    /// Said hello; the key exchange is under way.
    Hello,
    /// Handshake done; in the data phase.
    Attached,
}

#[derive(Debug, Default)]
struct PerSource {
    open: usize,
    pending: usize,
    /// Pending connections that have not said hello, oldest first (ids grow).
    silent: BTreeSet<ConnId>,
}

/// The open relay connections, counted per source.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    conns: HashMap<ConnId, (Source, Stage)>,
    sources: HashMap<Source, PerSource>,
}

impl Admission {
    /// No connection open yet.
    pub fn new(limits: AdmissionLimits) -> Self {
        Admission {
            limits,
            conns: HashMap::new(),
            sources: HashMap::new(),
        }
    }

    /// Decides on connection `conn` (ids must grow with time) from `ip`; if it is
    /// admitted it is counted as pending from now on, and the evicted one, if any,
    /// is forgotten here (the caller closes it).
    pub fn admit(&mut self, conn: ConnId, ip: IpAddr) -> Verdict {
        let source = Source::of(ip);
        let per = self.sources.get(&source);
        let (open, pending) = per.map_or((0, 0), |p| (p.open, p.pending));
        let full = open >= self.limits.per_source || pending >= self.limits.pending_per_source;
        let mut evict = None;
        if full {
            match per.and_then(|p| p.silent.first().copied()) {
                Some(old) => evict = Some(old),
                None if open >= self.limits.per_source => {
                    return Verdict::Refuse(Refusal::PerSource)
                }
                None => return Verdict::Refuse(Refusal::PendingPerSource),
            }
        } else if self.conns.len() >= self.limits.total {
            return Verdict::Refuse(Refusal::Total);
        }
        if let Some(old) = evict {
            self.closed(old);
        }
        let per = self.sources.entry(source).or_default();
        per.open += 1;
        per.pending += 1;
        per.silent.insert(conn);
        self.conns.insert(conn, (source, Stage::Silent));
        Verdict::Admit { evict }
    }

    /// `conn` sent its hello line: it is no longer the first to be evicted.
    pub fn hello(&mut self, conn: ConnId) {
        if let Some((source, stage @ Stage::Silent)) = self.conns.get_mut(&conn) {
            *stage = Stage::Hello;
            if let Some(p) = self.sources.get_mut(source) {
                p.silent.remove(&conn);
            }
        }
    }

    /// `conn` finished its handshake: it no longer counts as pending.
    pub fn attached(&mut self, conn: ConnId) {
        self.hello(conn);
        if let Some((source, stage @ Stage::Hello)) = self.conns.get_mut(&conn) {
            *stage = Stage::Attached;
            if let Some(p) = self.sources.get_mut(source) {
                p.pending -= 1;
            }
        }
    }

    /// `conn` is gone (no-op if it was evicted or never admitted).
    pub fn closed(&mut self, conn: ConnId) {
        let Some((source, stage)) = self.conns.remove(&conn) else {
            return;
        };
        self.conns.shrink_when_sparse();
        let Some(p) = self.sources.get_mut(&source) else {
            return;
        };
        p.open -= 1;
        if stage != Stage::Attached {
            p.pending -= 1;
        }
        p.silent.remove(&conn);
        if p.open == 0 {
            self.sources.remove(&source);
            self.sources.shrink_when_sparse();
        }
    }

    /// (open connections, sources with any) held, for leak checks.
    pub fn held(&self) -> (usize, usize) {
        (self.conns.len(), self.sources.len())
    }
}

/// Refusals since the last report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Refused at `max_connections`.
    pub total: u64,
    /// Refused at `max_connections_per_ip`.
    pub per_source: u64,
    /// Refused at `max_pending_per_ip`.
    pub pending_per_source: u64,
    /// Silent handshakes closed to make room.
    pub evicted: u64,
    /// The source of the latest one.
    pub last_source: Option<Source>,
}

impl Tally {
    /// Connections refused (evictions not included).
    pub fn refused(&self) -> u64 {
        self.total + self.per_source + self.pending_per_source
    }
}

/// Counts refusals and says when to log them: the first one after a quiet interval
/// at once, later ones as one tally per [`REFUSAL_LOG_INTERVAL`], so a flood of
/// refusals is a line every ten seconds, not a line each.
#[derive(Debug)]
pub struct RefusalLog {
    interval: Duration,
    last_report: Option<Instant>,
    held: Tally,
}

impl RefusalLog {
    /// Reports at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        RefusalLog {
            interval,
            last_report: None,
            held: Tally::default(),
        }
    }

    /// Counts one; returns a tally to log now if the interval allows.
    pub fn record(&mut self, why: Refusal, source: Source, now: Instant) -> Option<Tally> {
        let t = &mut self.held;
        match why {
            Refusal::Total => t.total += 1,
            Refusal::PerSource => t.per_source += 1,
            Refusal::PendingPerSource => t.pending_per_source += 1,
            Refusal::Evicted => t.evicted += 1,
        }
        t.last_source = Some(source);
        self.flush(now)
    }

    /// When a held tally may be logged (None: nothing held).
    pub fn due(&self) -> Option<Instant> {
        // Something is held only after a report was made (the first refusal after
        // a quiet spell is reported at once), so `last_report` is set here.
        if self.held == Tally::default() {
            return None;
        }
        self.last_report.map(|t| t + self.interval)
    }

    /// Returns the held tally whatever the interval (the listener is stopping, so
    /// no later report would say it).
    pub fn take(&mut self) -> Option<Tally> {
        (self.held != Tally::default()).then(|| std::mem::take(&mut self.held))
    }

    /// Returns the held tally if there is one and the interval has passed.
    pub fn flush(&mut self, now: Instant) -> Option<Tally> {
        // `match`, not `Option::is_none_or`: that needs Rust 1.82 and we support 1.80.
        let allowed = match self.last_report {
            None => true,
            Some(t) => now.duration_since(t) >= self.interval,
        };
        if !allowed || self.held == Tally::default() {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "127.0.0.1";
    const B: &str = "127.0.0.2";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn gate(total: usize, per_source: usize, pending: usize) -> Admission {
        Admission::new(AdmissionLimits {
            total,
            per_source,
            pending_per_source: pending,
        })
    }

    fn admitted(v: Verdict) -> Option<ConnId> {
        match v {
            Verdict::Admit { evict } => evict,
            Verdict::Refuse(r) => panic!("refused: {r:?}"),
        }
    }

    #[test]
    fn one_source_cannot_take_every_seat() {
        // The issue's case: 50 idle sockets from one address used to lock everyone out.
        let mut g = gate(50, 64, 16);
        for c in 1..=16 {
            assert_eq!(admitted(g.admit(c, ip(A))), None);
            g.hello(c);
        }
        assert_eq!(
            g.admit(17, ip(A)),
            Verdict::Refuse(Refusal::PendingPerSource)
        );
        assert_eq!(
            admitted(g.admit(18, ip(B))),
            None,
            "another address gets in"
        );
    }

    #[test]
    fn the_oldest_silent_handshake_makes_room_for_a_newcomer() {
        let mut g = gate(100, 64, 3);
        for c in 1..=3 {
            admitted(g.admit(c, ip(A)));
        }
        g.hello(1); // 1 is talking; 2 is the oldest silent one.
        assert_eq!(admitted(g.admit(4, ip(A))), Some(2));
        assert_eq!(admitted(g.admit(5, ip(A))), Some(3));
        assert_eq!(admitted(g.admit(6, ip(A))), Some(4));
        g.closed(2); // the evicted connection's own close changes nothing more
        assert_eq!(g.held(), (3, 1));
    }

    #[test]
    fn attached_connections_count_as_open_not_pending() {
        let mut g = gate(100, 3, 1);
        admitted(g.admit(1, ip(A)));
        g.attached(1);
        admitted(g.admit(2, ip(A)));
        g.attached(2);
        admitted(g.admit(3, ip(A)));
        g.hello(3);
        // Three open, the pending one past its hello: nothing to evict.
        assert_eq!(g.admit(4, ip(A)), Verdict::Refuse(Refusal::PerSource));
        g.closed(1);
        assert_eq!(
            g.admit(5, ip(A)),
            Verdict::Refuse(Refusal::PendingPerSource)
        );
        g.attached(3);
        assert_eq!(admitted(g.admit(6, ip(A))), None);
    }

    #[test]
    fn the_total_limit_holds_across_sources_and_everything_is_released() {
        let mut g = gate(2, 10, 10);
        admitted(g.admit(1, ip(A)));
        admitted(g.admit(2, ip(B)));
        assert_eq!(g.admit(3, ip("10.0.0.9")), Verdict::Refuse(Refusal::Total));
        g.closed(1);
        g.closed(2);
        g.closed(2);
        assert_eq!(g.held(), (0, 0));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let mut g = gate(100, 1, 1);
        admitted(g.admit(1, ip("2001:db8:1:2::1")));
        g.hello(1);
        assert_eq!(
            g.admit(2, ip("2001:db8:1:2:ffff::9")),
            Verdict::Refuse(Refusal::PerSource)
        );
        assert_eq!(admitted(g.admit(3, ip("2001:db8:1:3::1"))), None);
        admitted(g.admit(4, ip("10.1.1.1")));
        g.hello(4);
        assert_eq!(
            g.admit(5, ip("::ffff:10.1.1.1")),
            Verdict::Refuse(Refusal::PerSource)
        );
    }

    #[test]
    fn refusals_are_reported_once_per_interval_with_their_count() {
        let t0 = Instant::now();
        let mut log = RefusalLog::new(Duration::from_secs(10));
        let src = Source::of(ip(A));
        let first = log
            .record(Refusal::PerSource, src, t0)
            .expect("first at once");
        assert_eq!(first.refused(), 1);
        let mut lines = 0;
        for i in 1..=2160u64 {
            let now = t0 + Duration::from_millis(i * 4); // 8.64 s of refusals
            if log.record(Refusal::PendingPerSource, src, now).is_some() {
                lines += 1;
            }
        }
        assert_eq!(lines, 0, "nothing more within the interval");
        assert_eq!(log.due(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(log.flush(t0 + Duration::from_secs(9)), None);
        let held = log.flush(t0 + Duration::from_secs(10)).expect("the tally");
        assert_eq!(held.pending_per_source, 2160);
        assert_eq!(held.last_source, Some(src));
        assert_eq!(log.due(), None);
        assert_eq!(log.flush(t0 + Duration::from_secs(30)), None);
        log.record(Refusal::Total, src, t0 + Duration::from_secs(31));
        log.record(Refusal::Evicted, src, t0 + Duration::from_secs(32));
        let last = log.take().expect("held at the end");
        assert_eq!(
            (last.refused(), last.evicted),
            (0, 1),
            "the 31 s one was reported at once"
        );
        assert_eq!(log.take(), None);
    }
}
