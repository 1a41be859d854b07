//! XEP "Connecting to DSPS via default method": the hello line, the `auth` iq
//! (KEY1 for KEY2) and the KEY2 line that attaches a relay connection to its seat
//! (PROFILE 2); presence pushes to the other members (PROFILE 15); and a relay
//! connection's end ("Disconnection handling": the seat waits for a reconnection).
//!
//! The relay adapter does the socket work and the preambles (TLS, HTTP); this module
//! only checks what they read.

use minidom::Element;
use tracing::info;

use super::seat::{Addr, ConnState, SeatState, Stage};
use super::{ms, Action, Attach, ConnId, Now, Out, Registry, StreamId};
use crate::core::ids;
use crate::core::timers::TimerKey;
use crate::proto::error::DspsError;
use crate::proto::handshake::Hello;
use crate::proto::iq::{bare, resource, Iq, IqKind};
use crate::proto::query::{self, PresencePush, Role};

impl Registry {
    pub(super) fn on_hello(&mut self, conn: ConnId, hello: Hello, out: &mut Out) {
        if self.draining {
            return out.push(Action::RelayClose {
                conn,
                reason: "the DSPS is shutting down",
            });
        }
        let target = bare(&hello.dsps)
            .eq_ignore_ascii_case(&self.settings.domain)
            .then(|| resource(&hello.dsps))
            .flatten()
            .and_then(|r| self.resources.get(r).copied());
        let Some(Addr::Peer(sid, seat)) = target else {
            return out.push(Action::RelayClose {
                conn,
                reason: "hello names an unknown pair",
            });
        };
        let ours = self.settings.domain.clone();
        let s = self
            .seat_mut(sid, seat)
            .expect("resource index names a live seat");
        // Another DSPS relaying this seat's owner names itself (PROFILE 23); the
        // owner still proves the attempt with the auth iq.
        let via = if s.jid == hello.client {
            None
        } else if let Some(domain) = relay_domain(&hello.client, &ours) {
            Some(domain)
        } else {
            return out.push(Action::RelayClose {
                conn,
                reason: "hello names an unknown pair",
            });
        };
        let old = match &mut s.state {
            SeatState::Waiting { handshake, .. } => handshake.replace(conn),
            SeatState::Connected { .. } => {
                return out.push(Action::RelayClose {
                    conn,
                    reason: "pair already connected",
                })
            }
            SeatState::Invited { .. } => {
                return out.push(Action::RelayClose {
                    conn,
                    reason: "hello for an unaccepted invitation",
                })
            }
        };
        if let Some(old) = old {
            // A client retrying after a broken attempt must not wait for the old
            // attempt's handshake timeout; the newest attempt wins.
            self.conns.remove(&old);
            out.push(Action::RelayClose {
                conn: old,
                reason: "replaced by a newer handshake for the same pair",
            });
        }
        let key1 = ids::new_key();
        self.conns.insert(
            conn,
            ConnState {
                stream: sid,
                seat,
                stage: Stage::AwaitAuth(key1.clone()),
                via,
            },
        );
        out.push(Action::RelayWrite {
            conn,
            line: format!("{key1}\n"),
        });
    }

    pub(super) fn on_auth(&mut self, iq: &Iq, sid: StreamId, seat: u32, key: &str, out: &mut Out) {
        if iq.kind != IqKind::Get {
            return Self::reply_error(out, iq, DspsError::BadRequest, Some("auth is a get"));
        }
        let handshake = match self.seat(sid, seat).map(|s| &s.state) {
            Some(SeatState::Waiting {
                handshake: Some(c), ..
            }) => *c,
            _ => return Self::reply_error(out, iq, DspsError::NotAuthorized, None),
        };
        let Some(state) = self.conns.get_mut(&handshake) else {
            return Self::reply_error(out, iq, DspsError::NotAuthorized, None);
        };
        let Stage::AwaitAuth(key1) = &state.stage else {
            return Self::reply_error(out, iq, DspsError::NotAuthorized, None);
        };
        if !ids::keys_match(key1, key) {
            self.abort_handshake(sid, seat, handshake, "wrong key in auth", out);
            return Self::reply_error(out, iq, DspsError::NotAuthorized, None);
        }
        let key2 = ids::new_key();
        state.stage = Stage::AwaitKey2(key2.clone());
        Self::send(out, iq.result(Some(query::auth(&key2))));
    }

    /// Closes a failed handshake and resumes waiting (XEP: "resume waiting").
    fn abort_handshake(
        &mut self,
        sid: StreamId,
        seat: u32,
        conn: ConnId,
        why: &'static str,
        out: &mut Out,
    ) {
        self.conns.remove(&conn);
        if let Some(SeatState::Waiting { handshake, .. }) =
            self.seat_mut(sid, seat).map(|s| &mut s.state)
        {
            if *handshake == Some(conn) {
                *handshake = None;
            }
        }
        out.push(Action::RelayClose { conn, reason: why });
    }

    pub(super) fn on_key2(&mut self, conn: ConnId, key: &str, out: &mut Out) {
        let Some(state) = self.conns.get(&conn) else {
            return out.push(Action::RelayClose {
                conn,
                reason: "key line from an unknown connection",
            });
        };
        let (sid, seat, via) = (state.stream, state.seat, state.via.clone());
        let ok = matches!(&state.stage, Stage::AwaitKey2(k2) if ids::keys_match(k2, key));
        if !ok {
            return self.abort_handshake(sid, seat, conn, "wrong or early key line", out);
        }
        self.conns.get_mut(&conn).expect("checked above").stage = Stage::Attached;
        let s = self
            .seat_mut(sid, seat)
            .expect("conn belongs to a live seat");
        if let SeatState::Waiting { timer: Some(t), .. } = s.state {
            self.timers.cancel(t);
        }
        let min_rate = self.streams[&sid].min_rate;
        let s = self
            .seat_mut(sid, seat)
            .expect("conn belongs to a live seat");
        s.state = SeatState::Connected { conn };
        let first = !s.ever_connected;
        s.ever_connected = true;
        s.via = via;
        let attach = Attach {
            stream: sid,
            peer_id: s.id.to_string(),
            // XEP: a relay "will be treated using 'slave' rights".
            role: s.kind(),
            traffic: s.traffic.clone(),
            min_rate,
            outbound: false,
        };
        let role = s.kind().as_str();
        if first {
            info!(stream = sid, peer = %s.jid, id = s.id, role, via = ?s.via, "peer joined");
        } else {
            info!(stream = sid, peer = %s.jid, id = s.id, role, via = ?s.via, "peer reconnected");
        }
        out.push(Action::RelayAttach { conn, attach });
        self.notify(sid, seat, "connect", out);
    }

    /// Presence push about `seat` to the members that may see it (PROFILE 15): a
    /// master's change goes to everyone, a slave's or relay's to the masters.
    pub(super) fn notify(&mut self, sid: StreamId, seat: u32, status: &str, out: &mut Out) {
        let stream = &self.streams[&sid];
        let subject = &stream.seats[&seat];
        let subject_master = subject.kind() == Role::Master;
        let push = Element::from(&PresencePush {
            peers: vec![(status.to_string(), subject.shown_jid().to_string())],
        });
        let targets: Vec<(String, String)> = stream
            .seats
            .values()
            .filter(|s| s.id != seat)
            .filter(|s| subject_master || s.role == Role::Master)
            .filter_map(|s| Some((s.peer_jid(&self.settings.domain)?, s.jid.clone())))
            .collect();
        for (from, to) in targets {
            self.push(out, IqKind::Set, &from, &to, push.clone());
        }
    }

    pub(super) fn on_closed(&mut self, conn: ConnId, now: Now, out: &mut Out) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        let (sid, seat) = (state.stream, state.seat);
        let Some(s) = self.seat_mut(sid, seat) else {
            return;
        };
        match (&state.stage, &mut s.state) {
            (Stage::Attached, SeatState::Connected { conn: c }) if *c == conn => {
                let wait_ms = s.wait_ms;
                let timer = ms(wait_ms).map(|d| {
                    self.timers
                        .add(now.mono + d, TimerKey { stream: sid, seat })
                });
                let s = self.seat_mut(sid, seat).expect("still here");
                s.state = SeatState::Waiting {
                    handshake: None,
                    timer,
                };
                info!(stream = sid, peer = %s.jid, "disconnected; waiting for reconnection");
                self.notify(sid, seat, "waiting", out);
            }
            (stage, SeatState::Waiting { handshake, .. }) if *handshake == Some(conn) => {
                *handshake = None;
                let link = s.link.is_some();
                if let Stage::AwaitRelayKey(id) = stage {
                    self.relay_keys.remove(id);
                }
                if link {
                    self.arm_link_wait(sid, seat, now);
                }
            }
            _ => {}
        }
    }
}

/// The domain of another DSPS that says hello for a seat's owner: a JID with a
/// resource and no node, not ours.
fn relay_domain(client: &str, ours: &str) -> Option<String> {
    let domain = bare(client);
    let plausible = !domain.is_empty()
        && !domain.contains('@')
        && resource(client).is_some_and(|r| !r.is_empty())
        && !domain.eq_ignore_ascii_case(ours);
    plausible.then(|| domain.to_ascii_lowercase())
}
