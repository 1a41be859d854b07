//! What the service's operators may ask of the registry (the XEP-0050 admin
//! commands of `commands`): every stream with its peers, the service's counts, and
//! dropping a peer or ending a stream regardless of who is in it.
//!
//! These are registry operations, not XMPP: they return plain records and
//! [`Action`]s, and the rules they apply are the XEP's own. A dropped peer gets its
//! socket closed and its drop notice and the others hear of it, as for a master's
//! `admin` drop ("Dropping from stream"); an ended stream goes the way of "Stream
//! shutdown" (what masters sent is delivered to connected slaves first).

use std::collections::BTreeMap;
use std::fmt;

use minidom::Element;
use tracing::info;

use super::seat::{Seat, SeatState, Stage};
use super::{Action, Now, Registry, StreamId};
use crate::proto::query::Role;

/// One seat as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSummary {
    /// The id `who` reports.
    pub id: u32,
    /// Its JID as the stream shows it (bare for relays).
    pub jid: String,
    /// Master, slave or relay.
    pub role: Role,
    /// The `who` status: `connect`, `wait` or `expire`.
    pub status: &'static str,
    /// Bytes received from it on its current (or last) relay connection.
    pub bytes_in: u64,
    /// Bytes sent to it on that connection.
    pub bytes_out: u64,
}

/// One stream as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// The registry's number for it (as the log names it).
    pub id: StreamId,
    /// The full JID that created it.
    pub creator: String,
    /// Seconds since it was created.
    pub age_secs: u64,
    /// Its public JID, if it is public.
    pub public_jid: Option<String>,
    /// Its seats, by id.
    pub peers: Vec<PeerSummary>,
}

impl StreamSummary {
    /// Seats per (role, status), roles in the order master, slave, relay.
    pub fn tally(&self) -> BTreeMap<(u8, &'static str), usize> {
        let mut t = BTreeMap::new();
        for p in &self.peers {
            let rank = match p.role {
                Role::Master => 0,
                Role::Slave => 1,
                Role::Relay => 2,
            };
            *t.entry((rank, p.status)).or_insert(0) += 1;
        }
        t
    }
}

/// Counts over the whole service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Live streams.
    pub streams: usize,
    /// Of those, public ones.
    pub public_streams: usize,
    /// Seats in all streams.
    pub seats: usize,
    /// Seats with an attached relay connection.
    pub connected: usize,
    /// Seats waiting for their peer to connect or reconnect.
    pub waiting: usize,
    /// Seats whose invitation is not answered yet.
    pub invited: usize,
    /// Relay links this DSPS dials to another one.
    pub relay_links_out: usize,
    /// Seats connected (or waiting) through another DSPS's relay link.
    pub relay_links_in: usize,
    /// Relay connections in their handshake.
    pub handshakes: usize,
}

/// Why an operator's drop did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorError {
    /// No live stream has that number.
    NoSuchStream(StreamId),
    /// The stream has no seat of that JID.
    NoSuchPeer(StreamId, String),
}

impl fmt::Display for OperatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorError::NoSuchStream(s) => write!(f, "no stream {s}"),
            OperatorError::NoSuchPeer(s, j) => write!(f, "stream {s} has no peer {j}"),
        }
    }
}

impl std::error::Error for OperatorError {}

fn summary_of(seat: &Seat) -> PeerSummary {
    let t = seat.traffic.lock().unwrap_or_else(|p| p.into_inner());
    PeerSummary {
        id: seat.id,
        jid: seat.shown_jid().to_string(),
        role: seat.kind(),
        status: seat.who_status(),
        bytes_in: t.rx.total(),
        bytes_out: t.tx.total(),
    }
}

impl Registry {
    /// Every live stream's number, oldest first.
    pub fn stream_ids(&self) -> Vec<StreamId> {
        let mut ids: Vec<StreamId> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Stream `sid` with its seats at `now`, if it is live.
    pub fn stream_summary(&self, sid: StreamId, now: Now) -> Option<StreamSummary> {
        let stream = self.streams.get(&sid)?;
        Some(StreamSummary {
            id: sid,
            creator: stream.creator.clone(),
            age_secs: now.unix.saturating_sub(stream.init),
            public_jid: stream.public_resource.as_ref().map(|r| self.peer_jid(r)),
            peers: stream.seats.values().map(summary_of).collect(),
        })
    }

    /// The service's counts.
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            streams: self.streams.len(),
            public_streams: self.streams.values().filter(|s| s.maxpublic > 0).count(),
            handshakes: self
                .conns
                .values()
                .filter(|c| !matches!(c.stage, Stage::Attached))
                .count(),
            ..Counts::default()
        };
        for seat in self.streams.values().flat_map(|s| s.seats.values()) {
            c.seats += 1;
            match seat.state {
                SeatState::Connected { .. } => c.connected += 1,
                SeatState::Waiting { .. } => c.waiting += 1,
                SeatState::Invited { .. } => c.invited += 1,
            }
            c.relay_links_out += usize::from(seat.link.is_some());
            c.relay_links_in += usize::from(seat.via.is_some());
        }
        c
    }

    /// Drops every seat of stream `sid` that `jid` names (the exact JID, or all
    /// seats of a bare JID or of a relaying DSPS's domain), each as a master's drop
    /// would: socket closed, drop notice with `comments`, the others told. Returns
    /// how many were dropped and what to do.
    pub fn operator_drop_peer(
        &mut self,
        sid: StreamId,
        jid: &str,
        comments: &[Element],
        now: Now,
    ) -> Result<(usize, Vec<Action>), OperatorError> {
        if !self.streams.contains_key(&sid) {
            return Err(OperatorError::NoSuchStream(sid));
        }
        let seats = self.find_seats(sid, jid);
        if seats.is_empty() {
            return Err(OperatorError::NoSuchPeer(sid, jid.to_string()));
        }
        let mut out = Vec::new();
        for seat in &seats {
            // An earlier drop may have ended the stream (its last master).
            if self.seat(sid, *seat).is_some() {
                self.drop_seat(
                    sid,
                    *seat,
                    comments,
                    false,
                    "dropped by an operator",
                    now,
                    &mut out,
                );
            }
        }
        info!(
            stream = sid,
            peer = jid,
            seats = seats.len(),
            "dropped by an operator"
        );
        Ok((seats.len(), out))
    }

    /// Ends stream `sid` as "Stream shutdown" does; every peer's drop notice carries
    /// `comments`.
    pub fn operator_end_stream(
        &mut self,
        sid: StreamId,
        comments: &[Element],
        now: Now,
    ) -> Result<Vec<Action>, OperatorError> {
        if !self.streams.contains_key(&sid) {
            return Err(OperatorError::NoSuchStream(sid));
        }
        let mut out = Vec::new();
        info!(stream = sid, "ended by an operator");
        self.shutdown_stream_with(
            sid,
            comments,
            "the stream was ended by an operator",
            now,
            &mut out,
        );
        Ok(out)
    }
}
