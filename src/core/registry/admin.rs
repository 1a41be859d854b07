//! XEP "Stream administration": the `admin` request (invite and drop, with the
//! rights of the asking peer), sending invitations ("Invitation to stream"), their
//! answers ("Invitation reply"), failure reports to the inviters, and joins of a
//! public stream (`maxpublic`, joined as in "Accepting an invite").
//!
//! Carrying out a drop is `lifecycle`'s job (`drop_seat`); this module checks the
//! rights and picks the seats. It also refuses (400) an `admin` whose invitation or
//! drop notice would be larger than `max_stanza_size`, before the result is sent: the
//! admin comments are repeated in both, and an invitation lists every inviter.

use minidom::Element;
use tracing::{debug, info};

use super::seat::{Addr, Seat, SeatState};
use super::{ms, Now, Out, Registry, StreamId};
use crate::core::ids;
use crate::core::timers::TimerKey;
use crate::proto::error::DspsError;
use crate::proto::iq::{bare, resource, Iq, IqKind};
use crate::proto::limits::{closing_tag_len, size_within, Limit, OverLimit};
use crate::proto::query::{self, effective_ms, AdminAction, AdminReport, Invitation, Role};
use crate::proto::xml::NS_COMPONENT;

impl Registry {
    pub(super) fn admin(
        &mut self,
        iq: &Iq,
        sid: StreamId,
        seat: u32,
        a: query::AdminRequest,
        now: Now,
        out: &mut Out,
    ) {
        if iq.kind != IqKind::Set {
            return Self::reply_error(out, iq, DspsError::BadRequest, Some("admin is a set"));
        }
        let me = self
            .seat(sid, seat)
            .expect("resource index names a live seat");
        let (my_role, my_jid) = (me.role, me.jid.clone());
        if my_role != Role::Master {
            let only_self = a
                .actions
                .iter()
                .all(|act| matches!(act, AdminAction::Drop(j) if *j == my_jid));
            if !only_self {
                return Self::reply_error(out, iq, DspsError::Forbidden, None);
            }
        }
        for act in &a.actions {
            if let AdminAction::Invite(_, j) = act {
                if xmpp_parsers::jid::Jid::new(j).is_err() {
                    return Self::reply_error(
                        out,
                        iq,
                        DspsError::BadRequest,
                        Some("invalid JID in admin <peer/>"),
                    );
                }
            }
        }
        let stream = &self.streams[&sid];
        let mut newcomers: Vec<&str> = a
            .actions
            .iter()
            .filter_map(|act| match act {
                AdminAction::Invite(_, j) => Some(j.as_str()),
                AdminAction::Drop(_) => None,
            })
            .filter(|j| !stream.seats.values().any(|s| s.jid == *j))
            .collect();
        newcomers.sort_unstable();
        newcomers.dedup();
        if stream.seats.len() + newcomers.len() > self.settings.limits.seats_per_stream {
            return Self::reply_error(
                out,
                iq,
                DspsError::ServiceUnavailable,
                Some("the stream would have more peers than it may"),
            );
        }
        if let Err(over) = self.admin_fits(sid, &my_jid, &a) {
            return Self::reply_query_error(out, iq, over.into());
        }
        let mut report = AdminReport::default();
        let mut drops = Vec::new();
        for act in &a.actions {
            if let AdminAction::Drop(j) = act {
                let found = self.find_seats(sid, j);
                if found.is_empty() {
                    report.peers.push(("missing".into(), j.clone()));
                }
                drops.extend(found);
            }
        }
        let from = self.peer_jid(resource(&iq.to).unwrap_or_default());
        Self::send(out, iq.result_from(&from, Some(Element::from(&report))));
        let expire_ms = effective_ms(a.expire, self.settings.expire_default_ms);
        let wait_ms = effective_ms(a.wait, self.settings.wait_default_ms);
        for act in &a.actions {
            if let AdminAction::Invite(role, j) = act {
                self.invite(
                    sid,
                    &my_jid,
                    *role,
                    j,
                    expire_ms,
                    wait_ms,
                    &a.comments,
                    now,
                    out,
                );
            }
        }
        drops.dedup();
        let by_master = format!("dropped by {my_jid}");
        for d in drops {
            let own = self.seat(sid, d).is_some_and(|s| s.jid == my_jid);
            let why = if own { "it dropped itself" } else { &by_master };
            self.drop_seat(sid, d, &a.comments, own, why, now, out);
        }
    }

    /// `Err` if an invitation or a drop notice that `a` would make us send is larger
    /// than `max_stanza_size`. Measured without copying the comments into each
    /// stanza: their sizes are added to the stanza's without them.
    fn admin_fits(
        &self,
        sid: StreamId,
        my_jid: &str,
        a: &query::AdminRequest,
    ) -> Result<(), OverLimit> {
        let max = self.settings.max_stanza_size;
        let comments = a.comments.iter().fold(0usize, |sum, c| {
            sum.saturating_add(size_within(c, max).unwrap_or(max))
        });
        // Our resources and iq ids have bounded lengths; these stand in for the real ones.
        let from = self.peer_jid(&"0".repeat(ids::RESOURCE_LEN));
        let id = format!("dsps{}", u64::MAX);
        let fits = |payload: Element, to: &str, what: &'static str| {
            let room = max
                .saturating_sub(comments)
                .saturating_sub(closing_tag_len(&payload));
            let stanza = Iq::request(IqKind::Get, &id, &from, to, payload).to_element(NS_COMPONENT);
            match size_within(&stanza, room) {
                Some(_) => Ok(()),
                None => Err(OverLimit {
                    limit: Limit::StanzaSize(what),
                    max,
                }),
            }
        };
        let stream = &self.streams[&sid];
        for act in &a.actions {
            match act {
                AdminAction::Invite(role, j) => {
                    let inviters = match stream.seats.values().find(|s| s.jid == *j) {
                        None => vec![my_jid.to_string()],
                        // A pending invitation is re-sent listing every inviter.
                        Some(s) if matches!(s.state, SeatState::Invited { .. }) => {
                            let mut all = s.inviters.clone();
                            if !all.iter().any(|i| i == my_jid) {
                                all.push(my_jid.to_string());
                            }
                            all
                        }
                        Some(_) => continue,
                    };
                    let invitation = Invitation {
                        role: *role,
                        expire: u64::MAX,
                        inviters,
                        comments: Vec::new(),
                    };
                    fits(Element::from(&invitation), j, "invitation")?;
                }
                AdminAction::Drop(j) => {
                    for seat in self.find_seats(sid, j) {
                        let s = &stream.seats[&seat];
                        if s.resource.is_some() {
                            fits(query::drop_notice(&[]), &s.jid, "drop notice")?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Seats named by a drop: the exact JID, or every seat of a bare JID.
    pub(super) fn find_seats(&self, sid: StreamId, jid: &str) -> Vec<u32> {
        let Some(stream) = self.streams.get(&sid) else {
            return Vec::new();
        };
        let exact: Vec<u32> = stream
            .seats
            .values()
            .filter(|s| s.jid == jid)
            .map(|s| s.id)
            .collect();
        if !exact.is_empty() || resource(jid).is_some() {
            return exact;
        }
        // A relay is known by its DSPS's domain (XEP: "the resource is not reported").
        stream
            .seats
            .values()
            .filter(|s| {
                bare(&s.jid).eq_ignore_ascii_case(jid)
                    || s.via
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case(jid))
            })
            .map(|s| s.id)
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn invite(
        &mut self,
        sid: StreamId,
        inviter: &str,
        role: Role,
        invitee: &str,
        expire_ms: u64,
        wait_ms: u64,
        comments: &[Element],
        now: Now,
        out: &mut Out,
    ) {
        let existing = self.streams[&sid]
            .seats
            .values()
            .find(|s| s.jid == invitee)
            .map(|s| s.id);
        if let Some(seat) = existing {
            // XEP "Invitation to stream": several inviters of one invitee share one
            // pending acknowledge, re-sent with every inviter listed.
            let s = self.seat_mut(sid, seat).expect("just found");
            let SeatState::Invited {
                resource, expires, ..
            } = &s.state
            else {
                debug!(
                    stream = sid,
                    invitee, "already a member; invitation ignored"
                );
                return;
            };
            // The first invitation's deadline stands; advertise what is left of it.
            let left_ms = expires.map_or(0, |at| {
                (at.saturating_duration_since(now.mono).as_millis() as u64).max(1)
            });
            let resource = resource.clone();
            if !s.inviters.iter().any(|i| i == inviter) {
                s.inviters.push(inviter.to_string());
            }
            self.send_invitation(sid, seat, &resource, left_ms, comments, out);
            return;
        }
        let seat = self.add_seat(sid, invitee, role, false, vec![inviter.to_string()]);
        let res = ids::new_resource();
        self.resources.insert(res.clone(), Addr::Invite(sid, seat));
        let timer = ms(expire_ms).map(|d| {
            self.timers
                .add(now.mono + d, TimerKey { stream: sid, seat })
        });
        let s = self.seat_mut(sid, seat).expect("just added");
        s.state = SeatState::Invited {
            resource: res.clone(),
            iq_ids: Vec::new(),
            wait_ms,
            timer,
            expires: ms(expire_ms).map(|d| now.mono + d),
        };
        info!(stream = sid, %invitee, role = role.as_str(), "invited");
        self.send_invitation(sid, seat, &res, expire_ms, comments, out);
    }

    fn send_invitation(
        &mut self,
        sid: StreamId,
        seat: u32,
        res: &str,
        expire_ms: u64,
        comments: &[Element],
        out: &mut Out,
    ) {
        let id = self.new_iq_id("inv");
        let s = self.seat_mut(sid, seat).expect("caller holds the seat");
        if let SeatState::Invited { iq_ids, .. } = &mut s.state {
            iq_ids.push(id.clone());
        }
        let invitation = Invitation {
            role: s.role,
            expire: expire_ms,
            inviters: s.inviters.clone(),
            comments: comments.to_vec(),
        };
        let to = s.jid.clone();
        self.pending.insert(id.clone(), res.to_string());
        let from = self.peer_jid(res);
        Self::send(
            out,
            Iq::request(IqKind::Get, &id, &from, &to, Element::from(&invitation)),
        );
    }

    pub(super) fn on_acknowledge(
        &mut self,
        sid: StreamId,
        seat: u32,
        from: &str,
        status: &str,
        now: Now,
        out: &mut Out,
    ) {
        let Some(s) = self.seat_mut(sid, seat) else {
            return;
        };
        let SeatState::Invited {
            resource,
            iq_ids,
            wait_ms,
            timer,
            ..
        } = std::mem::replace(
            &mut s.state,
            SeatState::Waiting {
                handshake: None,
                timer: None,
            },
        )
        else {
            return;
        };
        // Only the first acknowledge counts: the invitation resource is gone now.
        self.resources.remove(&resource);
        for id in iq_ids {
            self.pending.remove(&id);
        }
        if let Some(t) = timer {
            self.timers.cancel(t);
        }
        if status == "connect" {
            info!(stream = sid, peer = from, "invitation accepted");
            self.accept_seat(sid, seat, from, wait_ms, now, out, None);
        } else {
            info!(stream = sid, peer = from, status, "invitation rejected");
            self.report_and_forget(sid, seat, "reject", from, now, out);
        }
    }

    /// Sends `<peer acknowledge=reason>` to every inviter still in the stream, then
    /// forgets the seat (XEP "Stream administration": failures after the fact). An
    /// invited or never-connected master may be the last one: then the stream ends.
    pub(super) fn report_and_forget(
        &mut self,
        sid: StreamId,
        seat: u32,
        reason: &str,
        jid: &str,
        now: Now,
        out: &mut Out,
    ) {
        let Some(stream) = self.streams.get_mut(&sid) else {
            return;
        };
        let Some(s) = stream.seats.remove(&seat) else {
            return;
        };
        self.forget_seat_refs(&s);
        let report = AdminReport {
            peers: vec![(reason.to_string(), jid.to_string())],
        };
        for inviter in &s.inviters {
            let target = self.streams[&sid]
                .seats
                .values()
                .find(|m| &m.jid == inviter)
                .and_then(|m| m.peer_jid(&self.settings.domain));
            if let Some(from) = target {
                self.push(out, IqKind::Set, &from, inviter, Element::from(&report));
            }
        }
        if s.role == Role::Master && self.streams[&sid].masters() == 0 {
            self.shutdown_stream(sid, now, out);
        }
    }

    pub(super) fn forget_seat_refs(&mut self, s: &Seat) {
        if let Some(r) = &s.resource {
            self.resources.remove(r);
        }
        match &s.state {
            SeatState::Invited {
                resource,
                iq_ids,
                timer,
                ..
            } => {
                self.resources.remove(resource);
                for id in iq_ids {
                    self.pending.remove(id);
                }
                if let Some(t) = timer {
                    self.timers.cancel(*t);
                }
            }
            SeatState::Waiting { handshake, timer } => {
                if let Some(c) = handshake {
                    self.conns.remove(c);
                    self.relay_keys.retain(|_, k| k != c);
                }
                if let Some(t) = timer {
                    self.timers.cancel(*t);
                }
            }
            SeatState::Connected { conn } => {
                self.conns.remove(conn);
            }
        }
    }

    pub(super) fn public_join(
        &mut self,
        iq: Option<&Iq>,
        sid: StreamId,
        from: &str,
        status: &str,
        now: Now,
        out: &mut Out,
    ) {
        let ok = |out: &mut Out| {
            if let Some(iq) = iq {
                Self::send(out, iq.result(None));
            }
        };
        if status != "connect" {
            // XEP: "Any rejection of a public connection will be ignored."
            return ok(out);
        }
        let stream = &self.streams[&sid];
        if stream.seats.values().any(|s| s.jid == from) {
            if let Some(iq) = iq {
                Self::reply_error(out, iq, DspsError::Conflict, Some("already in this stream"));
            }
            return;
        }
        if stream.public_count() >= stream.maxpublic
            || stream.seats.len() >= self.settings.limits.seats_per_stream
        {
            if let Some(iq) = iq {
                Self::reply_error(
                    out,
                    iq,
                    DspsError::ServiceUnavailable,
                    Some("stream is full"),
                );
            }
            return;
        }
        ok(out);
        let seat = self.add_seat(sid, from, Role::Slave, true, Vec::new());
        let wait_ms = self.settings.wait_default_ms;
        self.accept_seat(sid, seat, from, wait_ms, now, out, None);
    }
}
