//! The registry's private records: a stream (`DspsStream`) and its seats (`Seat`,
//! `SeatState`), what a resource of our domain names (`Addr`), and how far a relay
//! connection's handshake has got (`ConnState`, `Stage`).
//!
//! Data and small read-only queries only; every change of state is made by
//! `Registry` in the sibling modules. A seat's states are the `who` statuses of
//! XEP "Stream peer listing": `expire`, `wait`, `connect`.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{ConnId, StreamId, TrafficSlot};
use crate::core::relay_policy::DialPlan;
use crate::core::timers::TimerId;
use crate::proto::iq::{bare, Iq};
use crate::proto::query::Role;

#[derive(Debug)]
pub(super) enum SeatState {
    Invited {
        resource: String,
        iq_ids: Vec<String>,
        wait_ms: u64,
        timer: Option<TimerId>,
        /// When the invitation expires (None = never), for re-sent invitations.
        expires: Option<Instant>,
    },
    Waiting {
        handshake: Option<ConnId>,
        timer: Option<TimerId>,
    },
    Connected {
        conn: ConnId,
    },
}

#[derive(Debug)]
pub(super) struct Seat {
    pub(super) id: u32,
    pub(super) jid: String,
    /// The JID the seat was made for (the invitation's `<peer/>`); `jid` becomes the
    /// accepting full JID, but `timeout` reports name this one (XEP "Stream administration").
    pub(super) invited: String,
    pub(super) role: Role,
    pub(super) public: bool,
    pub(super) resource: Option<String>,
    pub(super) wait_ms: u64,
    pub(super) ever_connected: bool,
    pub(super) inviters: Vec<String>,
    pub(super) state: SeatState,
    pub(super) traffic: TrafficSlot,
    /// While this seat is connected through another DSPS's relay (or waits after
    /// such a connection): that DSPS's domain, which is all others are shown.
    pub(super) via: Option<String>,
    /// This seat is our own relay link to a stream on another DSPS.
    pub(super) link: Option<Box<OutLink>>,
}

/// A relay link this DSPS dials (XEP "Stream Creation/Relay", PROFILE 23): the seat
/// that holds it stands for the far stream in ours.
#[derive(Debug)]
pub(super) struct OutLink {
    /// Where to dial, in order; after the first success only the one that worked
    /// (XEP: "First successful … remembered by DSPS").
    pub(super) targets: Vec<DialPlan>,
    /// The JID this DSPS names itself by in the hello line.
    pub(super) hello_jid: String,
    /// The creator, whose client carries the key exchange.
    pub(super) requester: String,
    /// The creator's seat; its resource sends the key requests.
    pub(super) requester_seat: u32,
    /// The create (or reconnect) waiting for the dial's outcome.
    pub(super) pending: Option<Iq>,
    /// The stream was made by the pending create and goes if no target answers.
    pub(super) fresh: bool,
}

impl Seat {
    pub(super) fn who_status(&self) -> &'static str {
        match self.state {
            SeatState::Invited { .. } => "expire",
            SeatState::Waiting { .. } => "wait",
            SeatState::Connected { .. } => "connect",
        }
    }

    /// The seat's relay connection, if any, and whether it is attached (as opposed
    /// to still in its handshake).
    pub(super) fn state_conn(&self) -> Option<(ConnId, bool)> {
        match self.state {
            SeatState::Connected { conn } => Some((conn, true)),
            SeatState::Waiting {
                handshake: Some(conn),
                ..
            } => Some((conn, false)),
            _ => None,
        }
    }

    /// What others see this seat as: a relay while it is connected through one.
    pub(super) fn kind(&self) -> Role {
        if self.via.is_some() {
            Role::Relay
        } else {
            self.role
        }
    }

    /// The JID others see: bare for relays (XEP "Stream peer listing").
    pub(super) fn shown_jid(&self) -> &str {
        if let Some(via) = &self.via {
            via
        } else if self.role == Role::Relay {
            bare(&self.jid)
        } else {
            &self.jid
        }
    }

    pub(super) fn peer_jid(&self, domain: &str) -> Option<String> {
        self.resource.as_ref().map(|r| format!("{domain}/{r}"))
    }
}

#[derive(Debug)]
pub(super) struct DspsStream {
    pub(super) creator: String,
    pub(super) init: u64,
    /// When it was created, for how long it lived.
    pub(super) started: Instant,
    pub(super) minthroughput: String,
    pub(super) min_rate: u64,
    pub(super) maxpublic: u32,
    pub(super) public_resource: Option<String>,
    /// The create comments, serialised, at most `limits.stream_comment_bytes` in all.
    /// Kept as text, not as element trees: a tree of many small elements takes over
    /// 50 times its text in memory (a 4 KiB comment of `<a/>`s held about 220 KiB).
    pub(super) comments: Vec<String>,
    pub(super) seats: BTreeMap<u32, Seat>,
    pub(super) next_id: u32,
}

impl DspsStream {
    pub(super) fn masters(&self) -> usize {
        self.seats
            .values()
            .filter(|s| s.role == Role::Master)
            .count()
    }
    pub(super) fn count(&self, role: Role) -> u32 {
        self.seats.values().filter(|s| s.kind() == role).count() as u32
    }
    pub(super) fn public_count(&self) -> u32 {
        self.seats.values().filter(|s| s.public).count() as u32
    }
}

/// What a resource of our domain names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Addr {
    Peer(StreamId, u32),
    Invite(StreamId, u32),
    Public(StreamId),
}

#[derive(Debug)]
pub(super) enum Stage {
    /// Our outbound relay is dialling its targets.
    Dialing,
    /// Our outbound relay has KEY1; the creator's client is asked for KEY2 by the
    /// create get with this iq id.
    AwaitRelayKey(String),
    AwaitAuth(String),
    AwaitKey2(String),
    Attached,
}

#[derive(Debug)]
pub(super) struct ConnState {
    pub(super) stream: StreamId,
    pub(super) seat: u32,
    pub(super) stage: Stage,
    /// An inbound relay from another DSPS: its domain.
    pub(super) via: Option<String>,
}
