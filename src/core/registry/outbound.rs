//! Relay chains this DSPS dials (XEP "Stream Creation/Relay", "DSPS relay setup",
//! PROFILE 23).
//!
//! A `create` with `<peer/>`s makes a stream whose creator is master, plus one
//! *link seat* (type `relay`) that stands for the far stream. The relay adapter
//! dials the targets in order ([`Action::RelayDial`]); the first that answers the
//! hello with a KEY1 is kept and the create is answered ("Connection waiting"), or,
//! if none answers, the create gets 504 and the stream is forgotten. KEY1 goes to
//! the creator in a `create` get from its peer resource; the creator's client
//! trades it for KEY2 with the far DSPS and answers with a `result` carrying KEY2,
//! which the link writes to the far DSPS, and the link joins the stream.
//!
//! On our stream the link's data (the far stream's, unwrapped) goes to every
//! connected peer and the link receives every peer's data, as a master's would:
//! the far DSPS gives it slave rights, so what reaches it is what the far masters
//! send, and what it sends goes only to the far masters. A multicast tree of DSPS
//! servers is built this way. The link seat is shown by the far domain, has no
//! XMPP address of its own (no pushes or drop notices go to it), can be dropped
//! (closing the link) and cannot be invited.
//!
//! A `create` to the creator's peer resource reconnects a link that is down, with
//! the remembered target and hello (405 without a link, while it is connected or
//! dialling, or with `<peer/>`s in the request).

use tracing::info;

use super::seat::{ConnState, OutLink, SeatState, Stage};
use super::{Action, Attach, ConnId, Now, Out, Registry, StreamId};
use crate::core::ids;
use crate::core::relay_policy::Refused;
use crate::proto::error::DspsError;
use crate::proto::iq::{Iq, IqKind};
use crate::proto::query::{self, CreateRequest, Role};

/// Most `<peer/>` destinations one create may name.
pub const MAX_RELAY_TARGETS: usize = 8;
/// Longest KEY2 a client may hand us to write to the far DSPS.
const MAX_RELAY_KEY_LEN: usize = 256;

impl Registry {
    /// The checks of a relay create that need no stream: `Err` is the reply.
    pub(super) fn plan_relay(
        &self,
        c: &CreateRequest,
    ) -> Result<Vec<crate::core::relay_policy::DialPlan>, (DspsError, String)> {
        let policy = &self.settings.relay_policy;
        if !policy.enabled() {
            return Err((
                DspsError::NotAllowed,
                "relay chains are not enabled on this DSPS".into(),
            ));
        }
        if c.relays.len() > MAX_RELAY_TARGETS {
            return Err((
                DspsError::BadRequest,
                format!("a create may name at most {MAX_RELAY_TARGETS} relay destinations"),
            ));
        }
        let mut plans = Vec::new();
        let mut refused = Vec::new();
        for t in &c.relays {
            match policy.plan(t) {
                Ok(p) => plans.push(p),
                // A malformed destination is the request's fault: refused whole.
                Err(Refused::Malformed(why)) => return Err((DspsError::BadRequest, why)),
                Err(Refused::NotAllowed(why)) => refused.push(why),
            }
        }
        if plans.is_empty() {
            return Err((DspsError::Forbidden, refused.join("; ")));
        }
        Ok(plans)
    }

    /// Adds the link seat to a stream just made by `iq` and starts the dial.
    pub(super) fn start_relay(
        &mut self,
        sid: StreamId,
        creator_seat: u32,
        iq: &Iq,
        targets: Vec<crate::core::relay_policy::DialPlan>,
        out: &mut Out,
    ) {
        let far = targets[0].far_jid.clone();
        let seat = self.add_seat(sid, &far, Role::Relay, false, Vec::new());
        let hello_jid = self.peer_jid(&ids::new_resource());
        let wait_ms = self.settings.wait_default_ms;
        let s = self.seat_mut(sid, seat).expect("just added");
        s.wait_ms = wait_ms;
        s.link = Some(Box::new(OutLink {
            targets,
            hello_jid,
            requester: iq.from.clone(),
            requester_seat: creator_seat,
            pending: Some(iq.clone()),
            fresh: true,
        }));
        self.dial(sid, seat, out);
    }

    fn dial(&mut self, sid: StreamId, seat: u32, out: &mut Out) {
        let conn = self.next_out_conn;
        self.next_out_conn += 1;
        let s = self.seat_mut(sid, seat).expect("caller checked the seat");
        let link = s.link.as_ref().expect("a link seat");
        let (client, targets) = (link.hello_jid.clone(), link.targets.clone());
        if let SeatState::Waiting { handshake, .. } = &mut s.state {
            *handshake = Some(conn);
        }
        self.conns.insert(
            conn,
            ConnState {
                stream: sid,
                seat,
                stage: Stage::Dialing,
                via: None,
            },
        );
        out.push(Action::RelayDial {
            conn,
            client,
            targets,
        });
    }

    /// `create` to a peer resource: reconnect that seat's stream's relay link.
    pub(super) fn reconnect_relay(
        &mut self,
        iq: &Iq,
        sid: StreamId,
        seat: u32,
        c: &CreateRequest,
        out: &mut Out,
    ) {
        let not_allowed = |out: &mut Out, text: &str| {
            Self::reply_error(out, iq, DspsError::NotAllowed, Some(text))
        };
        if !c.relays.is_empty() {
            return not_allowed(out, "<peer/> is not allowed in a relay reconnect");
        }
        let link_seat = self.streams[&sid].seats.values().find(|s| {
            s.link
                .as_ref()
                .is_some_and(|l| l.requester_seat == seat && l.requester == iq.from)
        });
        let Some(link_seat) = link_seat else {
            return not_allowed(out, "no relay credentials for this resource");
        };
        let busy = match &link_seat.state {
            SeatState::Connected { .. } => Some("the relay is still connected"),
            SeatState::Waiting {
                handshake: Some(_), ..
            } => Some("the relay is already connecting"),
            _ => None,
        };
        if let Some(why) = busy {
            return not_allowed(out, why);
        }
        if self.draining {
            return Self::reply_error(
                out,
                iq,
                DspsError::ServiceUnavailable,
                Some("this DSPS is shutting down"),
            );
        }
        let id = link_seat.id;
        let s = self.seat_mut(sid, id).expect("found above");
        s.link.as_mut().expect("a link seat").pending = Some(iq.clone());
        info!(stream = sid, "relay reconnect requested");
        self.dial(sid, id, out);
    }

    pub(super) fn on_dialed(
        &mut self,
        conn: ConnId,
        target: usize,
        key1: &str,
        now: Now,
        out: &mut Out,
    ) {
        let Some(state) = self.conns.get(&conn) else {
            return out.push(Action::RelayClose {
                conn,
                reason: "the relay link is no longer wanted",
            });
        };
        let (sid, seat) = (state.stream, state.seat);
        if !matches!(state.stage, Stage::Dialing) {
            return;
        }
        let s = self
            .seat_mut(sid, seat)
            .expect("conn belongs to a live seat");
        let link = s
            .link
            .as_mut()
            .expect("an outbound conn belongs to a link seat");
        // XEP: "First successful … remembered by DSPS, all successive <peer/> ignored".
        let kept = link.targets.swap_remove(target.min(link.targets.len() - 1));
        link.targets = vec![kept];
        s.jid = link.targets[0].far_jid.clone();
        let (pending, fresh) = (link.pending.take(), link.fresh);
        link.fresh = false;
        let (requester, requester_seat) = (link.requester.clone(), link.requester_seat);
        info!(stream = sid, far = %s.jid, "relay link reached its target");
        let wait_ms = self.settings.wait_default_ms;
        match pending {
            Some(iq) if fresh => self.accept_seat(
                sid,
                requester_seat,
                &requester,
                wait_ms,
                now,
                out,
                Some(&iq),
            ),
            Some(iq) => Self::send(out, iq.result(None)),
            None => {}
        }
        let Some(from) = self
            .seat(sid, requester_seat)
            .and_then(|r| r.peer_jid(&self.settings.domain))
        else {
            return;
        };
        let id = self.new_iq_id("relay");
        self.relay_keys.insert(id.clone(), conn);
        self.conns.get_mut(&conn).expect("checked above").stage = Stage::AwaitRelayKey(id.clone());
        Self::send(
            out,
            Iq::request(IqKind::Get, &id, &from, &requester, query::relay_key(key1)),
        );
    }

    pub(super) fn on_unreachable(&mut self, conn: ConnId, why: &str, now: Now, out: &mut Out) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        let (sid, seat) = (state.stream, state.seat);
        let Some(s) = self.seat_mut(sid, seat) else {
            return;
        };
        if let SeatState::Waiting { handshake, .. } = &mut s.state {
            *handshake = None;
        }
        let link = s
            .link
            .as_mut()
            .expect("an outbound conn belongs to a link seat");
        let (pending, fresh) = (link.pending.take(), link.fresh);
        info!(
            stream = sid,
            "relay link reached none of its targets: {why}"
        );
        if let Some(iq) = pending {
            Self::reply_error(
                out,
                &iq,
                DspsError::RemoteServerTimeout,
                Some(&format!("no relay destination could be reached: {why}")),
            );
        }
        if fresh {
            // The stream existed only for this create; nobody else knows of it.
            self.forget_stream(sid, out);
        } else {
            self.arm_link_wait(sid, seat, now);
        }
    }

    /// A link that is down and not reconnecting goes when its `wait` runs out.
    pub(super) fn arm_link_wait(&mut self, sid: StreamId, seat: u32, now: Now) {
        let Some(s) = self.seat(sid, seat) else {
            return;
        };
        let idle = matches!(
            s.state,
            SeatState::Waiting {
                handshake: None,
                timer: None
            }
        );
        let Some(wait) = super::ms(s.wait_ms).filter(|_| idle) else {
            return;
        };
        let t = self.timers.add(
            now.mono + wait,
            crate::core::timers::TimerKey { stream: sid, seat },
        );
        if let Some(SeatState::Waiting { timer, .. }) =
            self.seat_mut(sid, seat).map(|s| &mut s.state)
        {
            *timer = Some(t);
        }
    }

    /// The creator's answer to a relay key get.
    pub(super) fn on_relay_key(&mut self, iq: &Iq, conn: ConnId, now: Now, out: &mut Out) {
        let Some(state) = self.conns.get(&conn) else {
            self.relay_keys.remove(&iq.id);
            return;
        };
        let (sid, seat) = (state.stream, state.seat);
        let requester = self
            .seat(sid, seat)
            .and_then(|s| s.link.as_ref())
            .map(|l| l.requester.clone());
        if requester.as_deref() != Some(iq.from.as_str()) {
            // Only the creator's client can carry the exchange; ignore anyone else.
            return;
        }
        self.relay_keys.remove(&iq.id);
        let key = match (iq.kind, iq.payload.as_ref().and_then(query::relay_key_of)) {
            (IqKind::Result, Some(k))
                if k.len() <= MAX_RELAY_KEY_LEN && !k.contains(char::is_whitespace) =>
            {
                k
            }
            (IqKind::Result, _) => {
                return self.fail_link(conn, "the relay key answer carried no usable key", now, out)
            }
            _ => {
                return self.fail_link(conn, "the creator refused the relay key exchange", now, out)
            }
        };
        self.conns.get_mut(&conn).expect("checked above").stage = Stage::Attached;
        out.push(Action::RelayWrite {
            conn,
            line: format!("{key}\n"),
        });
        let min_rate = self.streams[&sid].min_rate;
        let s = self
            .seat_mut(sid, seat)
            .expect("conn belongs to a live seat");
        if let SeatState::Waiting { timer: Some(t), .. } = s.state {
            self.timers.cancel(t);
        }
        let s = self
            .seat_mut(sid, seat)
            .expect("conn belongs to a live seat");
        s.state = SeatState::Connected { conn };
        s.ever_connected = true;
        let attach = Attach {
            stream: sid,
            peer_id: s.id.to_string(),
            // Routed like a master on our side (see the module comment).
            role: Role::Master,
            traffic: s.traffic.clone(),
            min_rate,
            outbound: true,
        };
        info!(stream = sid, far = %s.jid, id = s.id, "relay link connected");
        out.push(Action::RelayAttach { conn, attach });
        self.notify(sid, seat, "connect", out);
    }

    /// Gives up a link's handshake: close it, let the seat wait for a reconnect.
    fn fail_link(&mut self, conn: ConnId, why: &'static str, now: Now, out: &mut Out) {
        if let Some(state) = self.conns.remove(&conn) {
            if let Some(SeatState::Waiting { handshake, .. }) = self
                .seat_mut(state.stream, state.seat)
                .map(|s| &mut s.state)
            {
                *handshake = None;
            }
            self.arm_link_wait(state.stream, state.seat, now);
        }
        out.push(Action::RelayClose { conn, reason: why });
    }

    /// Forgets a stream nobody was told of (a relay create none of whose targets
    /// answered).
    fn forget_stream(&mut self, sid: StreamId, out: &mut Out) {
        let Some(stream) = self.streams.remove(&sid) else {
            return;
        };
        if let Some(r) = &stream.public_resource {
            self.resources.remove(r);
        }
        for s in stream.seats.values() {
            self.forget_seat_refs(s);
        }
        out.push(Action::StreamGone {
            stream: sid,
            started: stream.started,
        });
    }
}
