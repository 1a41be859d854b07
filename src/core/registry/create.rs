//! New streams and new seats: `create` on the bare DSPS JID
//! (XEP "Stream Creation/Relay"; the relay part is `outbound`), and giving an accepted seat
//! its peer resource with the "Connection waiting" reply.
//!
//! The limits on streams are checked here; the limit on seats is checked by the
//! callers that add one (`admin`, public joins).

use std::collections::BTreeMap;

use minidom::Element;
use tracing::info;

use super::seat::{Addr, DspsStream, Seat, SeatState};
use super::{ms, Now, Out, Registry, StreamId, TrafficSlot};
use crate::core::ids;
use crate::core::timers::TimerKey;
use crate::proto::error::DspsError;
use crate::proto::iq::{Iq, IqKind};
use crate::proto::query::{CreateRequest, CreateResult, Role, PROTOCOL_VERSION};
use crate::proto::xml::to_xml;

impl Registry {
    pub(super) fn create(&mut self, iq: &Iq, c: CreateRequest, now: Now, out: &mut Out) {
        let relay = if c.relays.is_empty() {
            None
        } else {
            match self.plan_relay(&c) {
                Ok(plans) => Some(plans),
                Err((e, text)) => return Self::reply_error(out, iq, e, Some(&text)),
            }
        };
        if self.draining {
            return Self::reply_error(
                out,
                iq,
                DspsError::ServiceUnavailable,
                Some("this DSPS is shutting down"),
            );
        }
        let limits = self.settings.limits;
        if self.streams.len() >= limits.streams {
            return Self::reply_error(
                out,
                iq,
                DspsError::ServiceUnavailable,
                Some("this DSPS holds as many streams as it may"),
            );
        }
        let account = crate::proto::iq::bare(&iq.from);
        let (mine, ours) = self.streams.values().fold((0, 0), |(mine, ours), s| {
            (
                mine + usize::from(s.creator == iq.from),
                ours + usize::from(crate::proto::iq::bare(&s.creator) == account),
            )
        });
        if mine >= limits.streams_per_jid {
            return Self::reply_error(
                out,
                iq,
                DspsError::ServiceUnavailable,
                Some("you have created as many streams as you may"),
            );
        }
        if ours >= limits.streams_per_account {
            return Self::reply_error(
                out,
                iq,
                DspsError::ServiceUnavailable,
                Some("your account has created as many streams as it may"),
            );
        }
        if xmpp_parsers::jid::FullJid::new(&iq.from).is_err() {
            return Self::reply_error(
                out,
                iq,
                DspsError::BadRequest,
                Some("create needs a full JID"),
            );
        }
        // XEP: "If omitted or negative, 0 is assumed."
        let (minthroughput, min_rate) = match c.minthroughput.as_deref().map(str::trim) {
            None | Some("") => ("0".to_string(), 0),
            Some(m) if m.starts_with('-') => ("0".to_string(), 0),
            Some(m) => match crate::proto::units::parse_rate(m) {
                Ok(rate) => (m.to_string(), rate),
                Err(_) => {
                    return Self::reply_error(
                        out,
                        iq,
                        DspsError::BadRequest,
                        Some("minthroughput is not a rate like 1.5KB"),
                    )
                }
            },
        };
        let sid = self.next_stream;
        self.next_stream += 1;
        let mut stream = DspsStream {
            creator: iq.from.clone(),
            init: now.unix,
            started: now.mono,
            minthroughput,
            min_rate,
            maxpublic: c.maxpublic,
            public_resource: None,
            // Parsing measured each comment by writing it, so none is lost here.
            comments: c.comments.iter().filter_map(to_xml).collect(),
            seats: BTreeMap::new(),
            next_id: 0,
        };
        if stream.maxpublic > 0 {
            let r = ids::new_resource();
            self.resources.insert(r.clone(), Addr::Public(sid));
            stream.public_resource = Some(r);
        }
        self.streams.insert(sid, stream);
        let wait_ms = self.settings.wait_default_ms;
        let seat = self.add_seat(sid, &iq.from, Role::Master, false, Vec::new());
        info!(
            stream = sid,
            creator = %iq.from,
            relay = relay.is_some(),
            maxpublic = c.maxpublic,
            "stream created"
        );
        match relay {
            // Answered once a destination has answered (or none has: 504).
            Some(targets) => self.start_relay(sid, seat, iq, targets, out),
            None => self.accept_seat(sid, seat, &iq.from, wait_ms, now, out, Some(iq)),
        }
    }

    pub(super) fn add_seat(
        &mut self,
        sid: StreamId,
        jid: &str,
        role: Role,
        public: bool,
        inviters: Vec<String>,
    ) -> u32 {
        let stream = self
            .streams
            .get_mut(&sid)
            .expect("caller checked the stream");
        let id = stream.next_id;
        stream.next_id += 1;
        stream.seats.insert(
            id,
            Seat {
                id,
                jid: jid.to_string(),
                invited: jid.to_string(),
                role,
                public,
                resource: None,
                wait_ms: 0,
                ever_connected: false,
                inviters,
                state: SeatState::Waiting {
                    handshake: None,
                    timer: None,
                },
                traffic: TrafficSlot::default(),
                via: None,
                link: None,
            },
        );
        id
    }

    /// Gives a seat its peer resource and sends the "Connection waiting" create
    /// message: as the result of `request` (create) or as a set push (PROFILE 9).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn accept_seat(
        &mut self,
        sid: StreamId,
        seat: u32,
        jid: &str,
        wait_ms: u64,
        now: Now,
        out: &mut Out,
        request: Option<&Iq>,
    ) {
        let res = ids::new_resource();
        self.resources.insert(res.clone(), Addr::Peer(sid, seat));
        let timer = ms(wait_ms).map(|d| {
            self.timers
                .add(now.mono + d, TimerKey { stream: sid, seat })
        });
        let stream = &self.streams[&sid];
        let minthroughput = stream.minthroughput.clone();
        // Only the creator learns the public JID this way (see CreateResult::public).
        let public = (request.is_some() && stream.creator == jid)
            .then(|| stream.public_resource.as_ref().map(|r| self.peer_jid(r)))
            .flatten();
        let s = self.seat_mut(sid, seat).expect("caller created the seat");
        s.jid = jid.to_string();
        s.resource = Some(res.clone());
        s.wait_ms = wait_ms;
        s.state = SeatState::Waiting {
            handshake: None,
            timer,
        };
        let result = CreateResult {
            wait: wait_ms,
            host: self.settings.host.clone(),
            port: self.settings.port,
            minthroughput,
            protocol: PROTOCOL_VERSION.to_string(),
            features: self.settings.features.clone(),
            public,
        };
        let from = self.peer_jid(&res);
        match request {
            Some(iq) => Self::send(out, iq.result_from(&from, Some(Element::from(&result)))),
            None => self.push(out, IqKind::Set, &from, jid, Element::from(&result)),
        }
    }
}
