//! The end-to-end rig shared by the `e2e_*` tests: a private Prosody, the real `dsps`
//! binary as one or more components of it, and users logged in as [`Peer`]s with the
//! steps a test takes through the service (create, invite, accept, connect, wait for
//! a push). Reading the data path is in [`super::blocks`].
//!
//! Every wait here is bounded ([`within`], [`STEP`] or an explicit bound), so a hung
//! step fails the test with a message instead of hanging it.

use std::fmt::Debug;
use std::time::Duration;

use dsps::client::c2s::XmppClient;
use dsps::client::session::{
    ClientError, DataConn, DspsClient, DspsEvent, DspsEvents, InvitationRequest, Seat,
};
use dsps::client::transport::{ConnectOptions, RelayConn};
use dsps::proto::error::DspsError;
use dsps::proto::query::{
    AdminAction, AdminRequest, CreateRequest, PresencePush, Role, StatsResult, WhoResult,
};
use dsps::proto::xml::NS_STANZAS;
use futures::future::join_all;
use minidom::Element;
use tokio::net::tcp::OwnedWriteHalf;

use super::blocks::Reader;
use super::c2s::{login, within, STEP};
use super::dsps::{Component, Dsps};
use super::prosody::Prosody;

/// The component domain of a one-component rig (each test has its own Prosody).
pub const DOMAIN: &str = "dsps.localhost";
/// The password of every test account.
pub const PASSWORD: &str = "pw";

/// A private Prosody with the given accounts, and `dsps` processes logged in to it.
pub struct Rig {
    /// The first (often the only) DSPS. It and [`Rig::service`]'s others are
    /// declared before Prosody so they are killed first.
    pub dsps: Dsps,
    /// The other DSPS processes, in the order given.
    more: Vec<Dsps>,
    /// The XMPP server.
    pub prosody: Prosody,
}

impl Rig {
    /// Starts Prosody with `users` (password [`PASSWORD`]) and one `dsps` as
    /// [`DOMAIN`] with `extra` appended to its config; `secret` must be unique per
    /// test file so a stray instance can never accept our component.
    pub fn start(secret: &str, users: &[&str], extra: &str) -> Rig {
        Rig::with(users, &[Component::new(DOMAIN, secret).extra(extra)])
    }

    /// Starts Prosody with `users` and one `dsps` per component (each registered on
    /// Prosody with its own secret), and waits for every one to come online.
    pub fn with(users: &[&str], components: &[Component]) -> Rig {
        let accounts: Vec<(&str, &str)> = users.iter().map(|u| (*u, PASSWORD)).collect();
        let registered: Vec<(&str, &str)> =
            components.iter().map(|c| (c.domain, c.secret)).collect();
        let prosody = Prosody::start(&registered, &accounts);
        let (first, others) = components
            .split_first()
            .expect("a rig has at least one component");
        let dsps = Dsps::start(&prosody, first);
        let more = others.iter().map(|c| Dsps::start(&prosody, c)).collect();
        Rig {
            dsps,
            more,
            prosody,
        }
    }

    /// The DSPS for component `domain`.
    pub fn service(&self, domain: &str) -> &Dsps {
        std::iter::once(&self.dsps)
            .chain(&self.more)
            .find(|d| d.domain == domain)
            .unwrap_or_else(|| panic!("the rig has no DSPS {domain}"))
    }

    /// Logs `user` in as `user@localhost/test`, talking to the first DSPS.
    pub async fn peer(&self, user: &str) -> Peer {
        self.peer_on(user, &self.dsps.domain).await
    }

    /// Logs each of `users` in, in turn, as [`Rig::peer`] does.
    pub async fn peers<const N: usize>(&self, users: [&str; N]) -> [Peer; N] {
        let mut peers = Vec::with_capacity(N);
        for user in users {
            peers.push(self.peer(user).await);
        }
        peers
            .try_into()
            .unwrap_or_else(|_| unreachable!("one peer per user"))
    }

    /// Logs `user` in as `user@localhost/test`, talking to the DSPS at `domain`.
    pub async fn peer_on(&self, user: &str, domain: &str) -> Peer {
        let (xmpp, incoming) = login(&self.prosody, user, PASSWORD).await;
        Peer {
            jid: xmpp.jid().to_string(),
            dsps: DspsClient::new(xmpp.clone(), domain),
            events: DspsEvents::new(xmpp.clone(), incoming),
            xmpp,
        }
    }
}

/// One logged-in user. Each helper is one bounded step that must succeed; it panics
/// naming the user otherwise. For a step meant to fail, use [`Peer::request_error`]
/// or the fields.
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
    /// Creates a stream (we are its master).
    pub async fn create(&self, req: &CreateRequest) -> Seat {
        within(self.dsps.create(req))
            .await
            .unwrap_or_else(|e| panic!("{}: create failed: {e}", self.jid))
    }

    /// An admin request; returns its immediate report.
    pub async fn admin(&self, seat: &Seat, req: &AdminRequest) -> Vec<(String, String)> {
        within(self.dsps.admin(seat, req))
            .await
            .unwrap_or_else(|e| panic!("{}: admin failed: {e}", self.jid))
            .peers
    }

    /// Leaves the stream of `seat` (drops ourselves).
    pub async fn leave(&self, seat: &Seat) {
        within(self.dsps.leave(seat))
            .await
            .unwrap_or_else(|e| panic!("{}: leave failed: {e}", self.jid))
    }

    /// `who` through `seat`.
    pub async fn who(&self, seat: &Seat) -> WhoResult {
        within(self.dsps.who(seat))
            .await
            .unwrap_or_else(|e| panic!("{}: who failed: {e}", self.jid))
    }

    /// `stats` through `seat`.
    pub async fn stats(&self, seat: &Seat) -> StatsResult {
        within(self.dsps.stats(seat))
            .await
            .unwrap_or_else(|e| panic!("{}: stats failed: {e}", self.jid))
    }

    /// The id `who` (asked through `seat`) reports for `jid`.
    pub async fn id_of(&self, seat: &Seat, jid: &str) -> String {
        let who = self.who(seat).await;
        who.peers
            .iter()
            .find(|p| p.jid == jid)
            .unwrap_or_else(|| panic!("who has no {jid}: {who:?}"))
            .id
            .clone()
    }

    /// One hand-made iq of `kind` to `to`; returns the raw answer, result or error.
    pub async fn ask(&self, kind: &str, to: &str, payload: Element) -> Element {
        within(self.xmpp.request(kind, to, payload, STEP))
            .await
            .unwrap_or_else(|e| panic!("{}: request to {to} failed: {e}", self.jid))
    }

    /// A request that must fail with a DSPS error; returns it and its text.
    pub async fn request_error(
        &self,
        kind: &str,
        to: &str,
        q: Element,
    ) -> (Option<DspsError>, String) {
        dsps_error(within(self.dsps.request(kind, to, q)).await)
    }

    /// Waits for the next invitation (other events are kept).
    pub async fn invitation(&mut self) -> InvitationRequest {
        within(self.events.wait_for_invitation(STEP))
            .await
            .unwrap_or_else(|e| panic!("{} got no invitation: {e}", self.jid))
    }

    /// Answers an invitation: accepts or rejects it, and waits for nothing more.
    pub async fn answer(&self, inv: &InvitationRequest, accept: bool) {
        within(self.dsps.answer(inv, accept))
            .await
            .unwrap_or_else(|e| panic!("{} could not answer: {e}", self.jid))
    }

    /// Waits for the next invitation, accepts it and returns the seat.
    pub async fn accept_next(&mut self) -> Seat {
        let inv = self.invitation().await;
        within(self.dsps.accept(&inv, &mut self.events))
            .await
            .unwrap_or_else(|e| panic!("{} could not accept: {e}", self.jid))
    }

    /// Runs the relay handshake for `seat` (default method), with a socket receive
    /// buffer of `recv_buffer` bytes if given; returns the whole connection.
    pub async fn data_conn(&self, seat: &Seat, recv_buffer: Option<u32>) -> DataConn {
        within(self.dsps.connect_with(seat, None, recv_buffer))
            .await
            .unwrap_or_else(|e| panic!("{} could not connect: {e}", self.jid))
    }

    /// Runs the relay handshake for `seat` and splits the data connection.
    pub async fn connect(&self, seat: &Seat) -> (Reader, OwnedWriteHalf) {
        self.data_conn(seat, None).await.into_split()
    }

    /// [`Peer::connect`] with a socket receive buffer of `recv_buffer` bytes (a
    /// small one keeps what we have not read in the server's queue).
    pub async fn connect_buffered(
        &self,
        seat: &Seat,
        recv_buffer: u32,
    ) -> (Reader, OwnedWriteHalf) {
        self.data_conn(seat, Some(recv_buffer)).await.into_split()
    }

    /// Runs the relay handshake for `seat` the way `o` says (HTTP, TLS, address).
    pub async fn connect_via(&self, seat: &Seat, o: &ConnectOptions) -> RelayConn {
        within(self.dsps.connect_via(seat, o))
            .await
            .unwrap_or_else(|e| panic!("{} could not connect ({:?}): {e}", self.jid, o.via))
    }

    /// The next event, bounded by [`STEP`].
    pub async fn event(&mut self) -> DspsEvent {
        self.event_within(STEP).await
    }

    /// The next event, bounded by `bound`.
    pub async fn event_within(&mut self, bound: Duration) -> DspsEvent {
        tokio::time::timeout(bound, self.events.next())
            .await
            .unwrap_or_else(|_| panic!("{}: no event within {bound:?}", self.jid))
            .unwrap_or_else(|| panic!("{}: XMPP connection ended", self.jid))
    }

    /// The next event, which must be a presence push of one change; returns it as
    /// (status, JID).
    pub async fn presence(&mut self) -> (String, String) {
        self.presence_within(STEP).await
    }

    /// [`Peer::presence`] bounded by `bound`.
    pub async fn presence_within(&mut self, bound: Duration) -> (String, String) {
        match self.event_within(bound).await {
            DspsEvent::Presence { push, .. } => {
                assert_eq!(push.peers.len(), 1, "one change per push");
                push.peers[0].clone()
            }
            other => panic!("{}: expected a presence push, got {other:?}", self.jid),
        }
    }

    /// The next event, which must be an admin report; returns its peers.
    pub async fn report(&mut self) -> Vec<(String, String)> {
        match self.event().await {
            DspsEvent::AdminReport { report, .. } => report.peers,
            other => panic!("{}: expected an admin report, got {other:?}", self.jid),
        }
    }

    /// The next presence push (other events are skipped), bounded by `timeout`;
    /// returns the peer resource it came from and the push.
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

    /// Waits (bounded by [`STEP`]) for our drop notice, skipping other pushes; it
    /// must name `seat`.
    pub async fn wait_for_drop(&mut self, seat: &Seat) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(DspsEvent::Dropped { peer_jid, .. })) => {
                    assert_eq!(
                        peer_jid, seat.peer_jid,
                        "{}'s notice names its seat",
                        self.jid
                    );
                    return;
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => panic!("{} got no drop notice", self.jid),
            }
        }
    }

    /// Nothing arrives for `d` (used only to check absence, never to synchronise).
    pub async fn quiet_for(&mut self, d: Duration) {
        if let Ok(Some(e)) = tokio::time::timeout(d, self.events.next()).await {
            panic!("{}: expected no event, got {e:?}", self.jid);
        }
    }
}

/// `creator` creates a stream with `req` and invites every `(peer, role)` in one admin
/// request, which must report nothing; the invitees accept concurrently. Returns the
/// creator's seat and the invitees' seats, in the order given.
pub async fn create_and_invite(
    creator: &Peer,
    req: &CreateRequest,
    invitees: &mut [(&mut Peer, Role)],
) -> (Seat, Vec<Seat>) {
    let seat = creator.create(req).await;
    let admin = AdminRequest {
        actions: invitees
            .iter()
            .map(|(p, role)| AdminAction::Invite(*role, p.jid.clone()))
            .collect(),
        ..AdminRequest::default()
    };
    let report = creator.admin(&seat, &admin).await;
    assert!(report.is_empty(), "admin reported {report:?}");
    let seats = join_all(invitees.iter_mut().map(|(p, _)| p.accept_next())).await;
    (seat, seats)
}

/// The usual start: alice creates a stream with the default settings and invites
/// bob as its slave. Returns alice, bob, alice's seat and bob's seat.
pub async fn alice_streams_to_bob(rig: &Rig) -> (Peer, Peer, Seat, Seat) {
    let [alice, mut bob] = rig.peers(["alice", "bob"]).await;
    let (a_seat, mut seats) = create_and_invite(
        &alice,
        &CreateRequest::default(),
        &mut [(&mut bob, Role::Slave)],
    )
    .await;
    let b_seat = seats.pop().expect("one invitee, one seat");
    (alice, bob, a_seat, b_seat)
}

/// The DSPS error (and its text) of a request that must have failed with one.
pub fn dsps_error<T: Debug>(r: Result<T, ClientError>) -> (Option<DspsError>, String) {
    match r {
        Err(ClientError::Dsps(e, text)) => (e, text),
        other => panic!("expected a DSPS error, got {other:?}"),
    }
}

/// The parts of an error iq a test compares.
#[derive(Debug, PartialEq, Eq)]
pub struct IqError {
    /// The legacy `code` attribute.
    pub code: Option<String>,
    /// The RFC 6120 defined condition.
    pub condition: Option<String>,
    /// The error `type` (cancel, modify, auth, …).
    pub kind: Option<String>,
    /// The `<text/>`.
    pub text: Option<String>,
}

/// The error of `reply`, which must be an error iq.
pub fn iq_error(reply: &Element) -> IqError {
    assert_eq!(reply.attr("type"), Some("error"), "not an error: {reply:?}");
    let error = reply
        .children()
        .find(|c| c.name() == "error")
        .unwrap_or_else(|| panic!("error iq without <error/>: {reply:?}"));
    IqError {
        code: error.attr("code").map(str::to_string),
        condition: error
            .children()
            .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
            .map(|c| c.name().to_string()),
        kind: error.attr("type").map(str::to_string),
        text: error.get_child("text", NS_STANZAS).map(|t| t.text()),
    }
}
