//! Deadlines for seats (invitation `expire`, connection `wait`), kept in one ordered
//! map so thousands of pending seats cost no task and no polling: the service sleeps
//! until [`Timers::next`] and then hands the due keys to the registry.

use std::collections::BTreeMap;
use std::time::Instant;

/// Which deadline of which seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerKey {
    /// The stream.
    pub stream: u64,
    /// The seat (peer id) in it.
    pub seat: u32,
}

/// A handle to one scheduled deadline, used to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerId(Instant, u64);

/// An ordered set of deadlines.
#[derive(Debug, Default)]
pub struct Timers {
    map: BTreeMap<TimerId, TimerKey>,
    seq: u64,
}

impl Timers {
    /// Schedules `key` at `at`.
    pub fn add(&mut self, at: Instant, key: TimerKey) -> TimerId {
        self.seq += 1;
        let id = TimerId(at, self.seq);
        self.map.insert(id, key);
        id
    }

    /// Cancels a deadline (no-op if it already fired).
    pub fn cancel(&mut self, id: TimerId) {
        self.map.remove(&id);
    }

    /// The earliest deadline, if any.
    pub fn next(&self) -> Option<Instant> {
        self.map.keys().next().map(|id| id.0)
    }

    /// Removes and returns every deadline due at `now`, earliest first.
    pub fn due(&mut self, now: Instant) -> Vec<(TimerId, TimerKey)> {
        let later = self.map.split_off(&TimerId(now, u64::MAX));
        let due = std::mem::replace(&mut self.map, later);
        due.into_iter().collect()
    }

    /// Number of scheduled deadlines.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_returns_only_past_deadlines_in_order() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let k = |s| TimerKey { stream: 1, seat: s };
        t.add(t0 + Duration::from_secs(3), k(3));
        let c = t.add(t0 + Duration::from_secs(1), k(1));
        t.add(t0 + Duration::from_secs(2), k(2));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        t.cancel(c);
        let due = t.due(t0 + Duration::from_secs(2));
        assert_eq!(due.iter().map(|d| d.1.seat).collect::<Vec<_>>(), vec![2]);
        assert_eq!(t.len(), 1);
        assert!(t.due(t0).is_empty());
    }
}
