//! The usual end-to-end setup, shared by the `e2e_*` tests: a private Prosody and the
//! real `dsps` binary, users logged in, alice creating a stream and inviting the others
//! with chosen roles, the invitees accepting, and everyone running the relay handshake.
//!
//! Every wait here is bounded ([`within`] or an explicit timeout), so a hung step fails
//! the test with a message instead of hanging it.

use std::time::Duration;

use dsps::client::c2s::XmppClient;
use dsps::client::session::{BlockReader, DspsClient, DspsEvent, DspsEvents, Seat};
use dsps::proto::block::Block;
use dsps::proto::query::{AdminAction, AdminRequest, CreateRequest, PresencePush, Role};
use futures::future::join_all;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::c2s::{login, within, STEP};
use super::dsps::Dsps;
use super::prosody::Prosody;

/// The component domain every e2e test uses (each test has its own Prosody).
pub const DOMAIN: &str = "dsps.localhost";
/// The password of every test account.
pub const PASSWORD: &str = "pw";

/// The block reader of a connected peer.
pub type Reader = BlockReader<OwnedReadHalf>;

/// A private Prosody with the given accounts, and the `dsps` binary logged in to it.
pub struct Rig {
    /// The DSPS process; declared first so it is killed before Prosody.
    pub dsps: Dsps,
    /// The XMPP server.
    pub prosody: Prosody,
}

impl Rig {
    /// Starts Prosody with `users` (password [`PASSWORD`]) and `dsps` with `extra`
    /// appended to its config (see [`Dsps::start`]); `secret` must be unique per test
    /// file so a stray instance can never accept our component.
    pub fn start(secret: &str, users: &[&str], extra: &str) -> Rig {
        let accounts: Vec<(&str, &str)> = users.iter().map(|u| (*u, PASSWORD)).collect();
        let prosody = Prosody::start(&[(DOMAIN, secret)], &accounts);
        let dsps = Dsps::start(&prosody, DOMAIN, secret, extra);
        Rig { dsps, prosody }
    }

    /// Logs `user` in as `user@localhost/test`.
    pub async fn peer(&self, user: &str) -> Peer {
        let (xmpp, incoming) = login(&self.prosody, user, PASSWORD).await;
        Peer {
            jid: xmpp.jid().to_string(),
            dsps: DspsClient::new(xmpp.clone(), DOMAIN),
            events: DspsEvents::new(xmpp.clone(), incoming),
            xmpp,
        }
    }
}

/// One logged-in user.
pub struct Peer {
    /// Its full JID.
    pub jid: String,
    /// The raw XMPP client (for hand-made requests).
    pub xmpp: XmppClient,
    /// The DSPS API.
    pub dsps: DspsClient,
    /// Pushes from the DSPS.
    pub events: DspsEvents,
}

impl Peer {
    /// Waits for the next invitation, accepts it and returns the seat.
    pub async fn accept_next(&mut self) -> Seat {
        let inv = within(self.events.wait_for_invitation(STEP))
            .await
            .unwrap_or_else(|e| panic!("{} got no invitation: {e}", self.jid));
        within(self.dsps.accept(&inv, &mut self.events))
            .await
            .unwrap_or_else(|e| panic!("{} could not accept: {e}", self.jid))
    }

    /// Runs the relay handshake for `seat` and splits the data connection.
    pub async fn connect(&self, seat: &Seat) -> (Reader, OwnedWriteHalf) {
        within(self.dsps.connect(seat, None))
            .await
            .unwrap_or_else(|e| panic!("{} could not connect: {e}", self.jid))
            .into_split()
    }

    /// Waits (bounded by [`STEP`]) for a presence push announcing `status` for `jid`,
    /// skipping other pushes; returns the peer resource it came from.
    pub async fn wait_for_presence(&mut self, status: &str, jid: &str) -> String {
        loop {
            let (from, push) = self
                .next_presence(STEP)
                .await
                .unwrap_or_else(|| panic!("{} never heard {status} for {jid}", self.jid));
            if push.peers.iter().any(|(s, j)| s == status && j == jid) {
                return from;
            }
        }
    }

    /// The next presence push (other events are skipped), bounded by `timeout`.
    pub async fn next_presence(&mut self, timeout: Duration) -> Option<(String, PresencePush)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(DspsEvent::Presence { peer_jid, push })) => return Some((peer_jid, push)),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// `creator` creates a stream with `req` and invites every `(peer, role)` in one admin
/// request; the invitees accept concurrently. Returns the creator's seat and the
/// invitees' seats, in the order given.
pub async fn create_and_invite(
    creator: &Peer,
    req: &CreateRequest,
    invitees: &mut [(&mut Peer, Role)],
) -> (Seat, Vec<Seat>) {
    let seat = within(creator.dsps.create(req))
        .await
        .unwrap_or_else(|e| panic!("create failed: {e}"));
    let admin = AdminRequest {
        actions: invitees
            .iter()
            .map(|(p, role)| AdminAction::Invite(*role, p.jid.clone()))
            .collect(),
        ..AdminRequest::default()
    };
    let report = within(creator.dsps.admin(&seat, &admin))
        .await
        .unwrap_or_else(|e| panic!("admin failed: {e}"));
    assert!(report.peers.is_empty(), "admin reported {:?}", report.peers);
    let seats = join_all(invitees.iter_mut().map(|(p, _)| p.accept_next())).await;
    (seat, seats)
}

/// The id `who` (asked through `asker`'s seat) reports for `jid`.
pub async fn id_of(asker: &Peer, seat: &Seat, jid: &str) -> String {
    let who = within(asker.dsps.who(seat))
        .await
        .unwrap_or_else(|e| panic!("who failed: {e}"));
    who.peers
        .iter()
        .find(|p| p.jid == jid)
        .unwrap_or_else(|| panic!("who has no {jid}: {who:?}"))
        .id
        .clone()
}

/// The next block, bounded by [`STEP`]; panics on end of stream or a decode error.
pub async fn next_block(r: &mut Reader) -> Block {
    within(r.next_block())
        .await
        .unwrap_or_else(|e| panic!("reading a block failed: {e}"))
        .expect("the relay connection ended")
}

/// Reads blocks until at least `len` data bytes arrived; all must carry one id.
/// Returns (id, data); the caller compares both, so a wrong block shows in its message.
/// Reads the next message and asserts it is `want` from the peer with id `id`.
pub async fn expect_message(r: &mut Reader, id: &str, want: &[u8], why: &str) {
    let (got_id, got) = read_message(r, want.len()).await;
    assert_eq!((got_id.as_str(), got.as_slice()), (id, want), "{why}");
}

pub async fn read_message(r: &mut Reader, len: usize) -> (String, Vec<u8>) {
    let first = next_block(r).await;
    let id = first.id.clone();
    let mut data = first.data.to_vec();
    while data.len() < len {
        let b = next_block(r).await;
        assert_eq!(
            b.id,
            id,
            "a message was interleaved with another sender's blocks (so far {:?})",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&b.data);
    }
    (id, data)
}
