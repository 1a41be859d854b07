//! The end of seats and streams: dropping a peer (XEP "Dropping from stream"),
//! "Stream shutdown" when the last master leaves, and the deadlines that end a seat
//! (an invitation's `expire`, a waiting seat's `wait`).
//!
//! Who may drop whom is decided in `admin`; this module carries the drop out.

use minidom::Element;
use tracing::{debug, info};

use super::seat::SeatState;
use super::{Action, Now, Out, Registry, StreamId};
use crate::proto::iq::{Iq, IqKind};
use crate::proto::query::{self, Role};
use crate::proto::xml::NS_COMPONENT;

impl Registry {
    /// XEP "Dropping from stream": close its socket, tell it, tell the others, forget it;
    /// the last master's departure ends the stream.
    /// `own`: the peer dropped itself, so what it already sent is still forwarded.
    /// `why` says so in the log line.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn drop_seat(
        &mut self,
        sid: StreamId,
        seat: u32,
        comments: &[Element],
        own: bool,
        why: &str,
        now: Now,
        out: &mut Out,
    ) {
        let Some(s) = self.seat(sid, seat) else {
            return;
        };
        let (jid, peer, visible, was_master, role, status) = (
            s.jid.clone(),
            s.peer_jid(&self.settings.domain),
            s.resource.is_some() || s.link.is_some(),
            s.role == Role::Master,
            s.kind(),
            s.who_status(),
        );
        match s.state {
            SeatState::Connected { conn } if own => out.push(Action::RelayFinish { conn }),
            SeatState::Connected { conn } => out.push(Action::RelayClose {
                conn,
                reason: "peer dropped",
            }),
            SeatState::Waiting {
                handshake: Some(conn),
                ..
            } => out.push(Action::RelayClose {
                conn,
                reason: "peer dropped",
            }),
            _ => {}
        }
        if visible {
            self.notify(sid, seat, "drop", out);
        }
        if let Some(from) = peer {
            self.push(out, IqKind::Set, &from, &jid, query::drop_notice(comments));
        }
        let s = self
            .streams
            .get_mut(&sid)
            .and_then(|st| st.seats.remove(&seat))
            .expect("checked above");
        self.forget_seat_refs(&s);
        info!(stream = sid, peer = %jid, role = role.as_str(), status, why, "peer dropped");
        if was_master && self.streams[&sid].masters() == 0 {
            self.shutdown_stream(sid, now, out);
        }
    }

    /// XEP "Stream shutdown": what masters sent is delivered to connected slaves
    /// (RelayDrain), then every remaining peer is dropped and the stream forgotten.
    pub(super) fn shutdown_stream(&mut self, sid: StreamId, now: Now, out: &mut Out) {
        let why = if self.draining {
            "the service is stopping"
        } else {
            "the stream ended: no master left"
        };
        self.shutdown_stream_with(sid, &[], why, now, out);
    }

    /// [`Self::shutdown_stream`] with `comments` in every drop notice (an operator's
    /// reason) and `why` in every "peer dropped" line.
    pub(super) fn shutdown_stream_with(
        &mut self,
        sid: StreamId,
        comments: &[Element],
        why: &str,
        _now: Now,
        out: &mut Out,
    ) {
        let Some(stream) = self.streams.remove(&sid) else {
            return;
        };
        if let Some(r) = &stream.public_resource {
            self.resources.remove(r);
        }
        for s in stream.seats.values() {
            info!(stream = sid, peer = %s.jid, role = s.kind().as_str(), status = s.who_status(), why, "peer dropped");
            let notice = s.peer_jid(&self.settings.domain).map(|from| {
                let id = self.new_iq_id("dsps");
                Iq::request(
                    IqKind::Set,
                    &id,
                    &from,
                    &s.jid,
                    query::drop_notice(comments),
                )
                .to_element(NS_COMPONENT)
            });
            match (s.state_conn(), notice) {
                (Some((conn, true)), notice) if notice.is_some() || s.link.is_some() => {
                    out.push(Action::RelayDrain { conn, notice })
                }
                (conn, notice) => {
                    if let Some((conn, _)) = conn {
                        out.push(Action::RelayClose {
                            conn,
                            reason: "stream ended",
                        });
                    }
                    out.extend(notice.map(Action::Send));
                }
            }
            self.forget_seat_refs(s);
        }
        // The data path writes the "stream ended" line, with its bytes, once the
        // last connection has delivered what it holds (`relay::ledger`).
        debug!(stream = sid, "stream forgotten by the registry");
        out.push(Action::StreamGone {
            stream: sid,
            started: stream.started,
        });
    }

    /// Service shutdown: every stream ends the way "Stream shutdown" ends one
    /// (connected peers drained, then sent their drop notices), so a stopping
    /// service reuses that path instead of having one of its own. From now on new
    /// streams get 503 and new handshakes are closed.
    pub(super) fn shutdown_all(&mut self, now: Now, out: &mut Out) {
        self.draining = true;
        let streams: Vec<StreamId> = self.streams.keys().copied().collect();
        info!(streams = streams.len(), "shutting down every stream");
        for sid in streams {
            self.shutdown_stream(sid, now, out);
        }
    }

    pub(super) fn on_tick(&mut self, now: Now, out: &mut Out) {
        for (_, key) in self.timers.due(now.mono) {
            let Some(s) = self.seat(key.stream, key.seat) else {
                continue;
            };
            let jid = s.jid.clone();
            match &s.state {
                SeatState::Invited { .. } => {
                    info!(stream = key.stream, peer = %jid, "invitation expired");
                    self.deadlines.expire += 1;
                    // The fired timer is gone already; forget_seat_refs cancels nothing twice.
                    if let Some(SeatState::Invited { timer, .. }) =
                        self.seat_mut(key.stream, key.seat).map(|s| &mut s.state)
                    {
                        *timer = None;
                    }
                    self.report_and_forget(key.stream, key.seat, "expire", &jid, now, out);
                }
                SeatState::Waiting { handshake, .. } => {
                    let handshake = *handshake;
                    self.deadlines.wait += 1;
                    if let Some(SeatState::Waiting { timer, .. }) =
                        self.seat_mut(key.stream, key.seat).map(|s| &mut s.state)
                    {
                        *timer = None;
                    }
                    let s = self.seat(key.stream, key.seat).expect("still here");
                    if s.ever_connected {
                        self.drop_seat(
                            key.stream,
                            key.seat,
                            &[],
                            false,
                            "it did not reconnect within its wait",
                            now,
                            out,
                        );
                    } else {
                        info!(stream = key.stream, peer = %jid, "never connected; timeout");
                        if let Some(c) = handshake {
                            out.push(Action::RelayClose {
                                conn: c,
                                reason: "wait expired",
                            });
                        }
                        let invited = s.invited.clone();
                        self.report_and_forget(key.stream, key.seat, "timeout", &invited, now, out);
                    }
                }
                SeatState::Connected { .. } => {}
            }
        }
    }
}
