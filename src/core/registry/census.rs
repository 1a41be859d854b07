//! What the metrics endpoint reads from the registry at each scrape: the live
//! streams, the seats by role and `who` status, and how many seats the `expire`
//! and `wait` deadlines have ended so far.
//!
//! Taken on demand (one walk over the seats per scrape) rather than kept up to
//! date on every input, so the registry's hot path pays nothing for metrics. Plain
//! numbers: what the endpoint makes of them is `crate::metrics`'s business.

use super::seat::SeatState;
use super::Registry;
use crate::proto::query::Role;

/// Every role, in the order metrics list them.
pub const ROLES: [Role; 3] = [Role::Master, Role::Slave, Role::Relay];
/// Every `who` status a seat can have, in the order metrics list them.
pub const STATUSES: [&str; 3] = ["connect", "wait", "expire"];

/// Seats ended by a deadline since start (monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadlineTally {
    /// Invitations not answered within their `expire`.
    pub expire: u64,
    /// Seats whose peer did not connect or reconnect within their `wait`.
    pub wait: u64,
}

/// The registry's side of a scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Live streams.
    pub streams: usize,
    /// Seats per role and status, indexed as [`ROLES`] × [`STATUSES`].
    pub peers: [[usize; 3]; 3],
    /// Seats ended by their deadlines so far.
    pub deadlines: DeadlineTally,
}

impl Census {
    /// Seats of `role` with `who` status `status` (0 for an unknown status).
    pub fn peers_of(&self, role: Role, status: &str) -> usize {
        let r = ROLES.iter().position(|x| *x == role).unwrap_or(0);
        STATUSES
            .iter()
            .position(|s| *s == status)
            .map_or(0, |s| self.peers[r][s])
    }
}

impl Registry {
    /// The streams, seats and deadline tally as they are now.
    pub fn census(&self) -> Census {
        let mut c = Census {
            streams: self.streams.len(),
            deadlines: self.deadlines,
            ..Census::default()
        };
        for seat in self.streams.values().flat_map(|s| s.seats.values()) {
            let r = ROLES.iter().position(|x| *x == seat.kind()).unwrap_or(0);
            let s = match seat.state {
                SeatState::Connected { .. } => 0,
                SeatState::Waiting { .. } => 1,
                SeatState::Invited { .. } => 2,
            };
            c.peers[r][s] += 1;
        }
        c
    }
}
