//! Stanza dispatch: every iq from the component link is routed by its `to` (the
//! bare DSPS JID, a peer resource, an invitation resource or a public JID) and its
//! query type to a handler in the sibling modules; what no handler takes is answered
//! with an error (XEP "Error message format"; PROFILE 8, 11). Results and errors
//! addressed to us are answers to our own invitations (XEP "Invitation reply") or
//! joins of a public stream, or the creator's half of a relay key exchange.
//!
//! On the bare JID, XEP-0030 and XEP-0050 payloads go to `discovery`, `commands`
//! and `core::info` before anything is read as a DSPS query.
//!
//! It decides only where a stanza goes, never what it changes.

use minidom::Element;
use tracing::debug;

use super::seat::Addr;
use super::{Now, Out, Registry, StreamId};
use crate::core::info;
use crate::proto::adhoc::NS_COMMANDS;
use crate::proto::error::DspsError;
use crate::proto::iq::{bare, resource, Iq, IqKind};
use crate::proto::limits::QueryLimits;
use crate::proto::query::{QueryError, Request};
use crate::proto::xml::NS_COMPONENT;

impl Registry {
    pub(super) fn on_stanza(&mut self, e: &Element, now: Now, out: &mut Out) {
        let Ok(iq) = Iq::parse(e) else {
            // Messages and presences carry nothing for us; the XEP speaks only iq.
            debug!(name = e.name(), "ignoring non-iq stanza");
            return;
        };
        // Every reply repeats the id and addresses, and `from` may become a seat's JID.
        if let Err(over) = self.query_limits().envelope(&iq) {
            if iq.kind.is_request() {
                Self::reply_query_error(out, &iq, over.into());
            } else {
                debug!(%over, "ignoring an answer past the limits");
            }
            return;
        }
        if !iq.kind.is_request() {
            self.on_answer(&iq, now, out);
            return;
        }
        let to_domain = bare(&iq.to).eq_ignore_ascii_case(&self.settings.domain);
        match resource(&iq.to).filter(|r| !r.is_empty()) {
            _ if !to_domain => Self::send(
                out,
                iq.error_reply(DspsError::ItemNotFound, None, NS_COMPONENT),
            ),
            None => self.on_bare_request(&iq, now, out),
            Some(res) => {
                let res = res.to_string();
                self.on_resource_request(&iq, &res, now, out)
            }
        }
    }

    fn query_limits(&self) -> QueryLimits {
        QueryLimits::from(&self.settings.limits)
    }

    fn parse_request(&self, payload: &Element) -> Result<Request, QueryError> {
        Request::parse_within(payload, &self.query_limits())
    }

    pub(super) fn reply_error(out: &mut Out, iq: &Iq, err: DspsError, text: Option<&str>) {
        Self::send(out, iq.error_reply(err, text, NS_COMPONENT));
    }

    /// A payload we cannot act on: another namespace is a service we do not offer
    /// (503); a DSPS query we cannot read, or one past a `[limits]` bound, is the
    /// client's mistake (400, the text saying which).
    pub(super) fn reply_query_error(out: &mut Out, iq: &Iq, e: QueryError) {
        match e {
            QueryError::NotDsps => Self::reply_error(out, iq, DspsError::ServiceUnavailable, None),
            e => Self::reply_error(out, iq, DspsError::BadRequest, Some(&e.to_string())),
        }
    }

    fn on_bare_request(&mut self, iq: &Iq, now: Now, out: &mut Out) {
        let Some(payload) = iq.payload.as_ref() else {
            return Self::reply_error(out, iq, DspsError::BadRequest, Some("empty iq"));
        };
        if iq.kind == IqKind::Get && payload.is("query", info::NS_DISCO_ITEMS) {
            return self.on_disco_items(iq, payload, out);
        }
        if iq.kind == IqKind::Get && payload.is("query", info::NS_DISCO_INFO) {
            if let Some(node) = payload.attr("node").filter(|n| !n.is_empty()) {
                return self.on_disco_info_node(iq, node, out);
            }
        }
        if payload.is("command", NS_COMMANDS) {
            return self.on_command(iq, payload, now, out);
        }
        if let Some(reply) = info::answer(iq, payload, &self.settings) {
            return Self::send(out, reply);
        }
        match self.parse_request(payload) {
            Ok(Request::Create(c)) => self.create(iq, c, now, out),
            Ok(Request::Stats) if iq.kind == IqKind::Get => self.public_stats(iq, out),
            Ok(_) => Self::reply_error(
                out,
                iq,
                DspsError::BadRequest,
                Some("this query goes to a stream resource"),
            ),
            Err(e) => Self::reply_query_error(out, iq, e),
        }
    }

    fn on_resource_request(&mut self, iq: &Iq, res: &str, now: Now, out: &mut Out) {
        let Some(&addr) = self.resources.get(res) else {
            return Self::reply_error(out, iq, DspsError::ItemNotFound, None);
        };
        let Some(payload) = iq.payload.as_ref() else {
            return Self::reply_error(out, iq, DspsError::BadRequest, Some("empty iq"));
        };
        let request = self.parse_request(payload);
        match addr {
            Addr::Peer(sid, seat) => {
                if self.seat(sid, seat).map(|s| s.jid.as_str()) != Some(iq.from.as_str()) {
                    // PROFILE 11: no hint that the stream exists.
                    return Self::reply_error(out, iq, DspsError::ItemNotFound, None);
                }
                match request {
                    Ok(Request::Auth(key)) => self.on_auth(iq, sid, seat, &key, out),
                    Ok(Request::Who) => self.who(iq, sid, seat, now, out),
                    Ok(Request::Stats) => self.stream_stats(iq, sid, seat, out),
                    Ok(Request::Admin(a)) => self.admin(iq, sid, seat, a, now, out),
                    Ok(Request::Create(c)) => self.reconnect_relay(iq, sid, seat, &c, out),
                    Ok(Request::Acknowledge(_)) => Self::reply_error(
                        out,
                        iq,
                        DspsError::BadRequest,
                        Some("acknowledge goes to the invitation resource"),
                    ),
                    Err(e) => Self::reply_query_error(out, iq, e),
                }
            }
            Addr::Invite(sid, seat) => match request {
                Ok(Request::Acknowledge(status)) if iq.kind == IqKind::Set => {
                    if !self.invitee_matches(sid, seat, &iq.from) {
                        return Self::reply_error(out, iq, DspsError::ItemNotFound, None);
                    }
                    Self::send(out, iq.result(None));
                    self.on_acknowledge(sid, seat, &iq.from, &status, now, out);
                }
                _ => Self::reply_error(out, iq, DspsError::ItemNotFound, None),
            },
            Addr::Public(sid) => match request {
                Ok(Request::Acknowledge(status)) if iq.kind == IqKind::Set => {
                    self.public_join(Some(iq), sid, &iq.from, &status, now, out)
                }
                Ok(Request::Stats) if iq.kind == IqKind::Get => self.public_stats_one(iq, sid, out),
                Err(e) => Self::reply_query_error(out, iq, e),
                Ok(_) => Self::reply_error(
                    out,
                    iq,
                    DspsError::BadRequest,
                    Some("a public JID takes acknowledge (set) and stats (get)"),
                ),
            },
        }
    }

    /// Results and errors: answers to our invitations (the rest are acks of pushes).
    fn on_answer(&mut self, iq: &Iq, now: Now, out: &mut Out) {
        if let Some(&conn) = self.relay_keys.get(&iq.id) {
            return self.on_relay_key(iq, conn, now, out);
        }
        let Some(res) = resource(&iq.to) else { return };
        if let Some(Addr::Public(sid)) = self.resources.get(res).copied() {
            // XEP "Accepting an invite" shows the join as type='result'.
            if let Some(p) = iq.payload.as_ref() {
                if let Ok(Request::Acknowledge(status)) = self.parse_request(p) {
                    self.public_join(None, sid, &iq.from, &status, now, out);
                }
            }
            return;
        }
        let Some(inv_res) = self.pending.get(&iq.id).cloned() else {
            return;
        };
        if inv_res != res {
            return;
        }
        let Some(&Addr::Invite(sid, seat)) = self.resources.get(res) else {
            self.pending.remove(&iq.id);
            return;
        };
        if !self.invitee_matches(sid, seat, &iq.from) {
            return;
        }
        let status = match (iq.kind, iq.payload.as_ref().map(|p| self.parse_request(p))) {
            (IqKind::Result, Some(Ok(Request::Acknowledge(s)))) => s,
            // An empty result or an error (the client does not speak DSPS) rejects.
            _ => "drop".to_string(),
        };
        self.on_acknowledge(sid, seat, &iq.from, &status, now, out);
    }

    fn invitee_matches(&self, sid: StreamId, seat: u32, from: &str) -> bool {
        // The invitee may answer from another resource of its account; that full
        // JID then owns the seat (XEP "Accepting an invite": "from" is associated).
        self.seat(sid, seat)
            .is_some_and(|s| bare(&s.jid).eq_ignore_ascii_case(bare(from)))
    }
}
