//! XEP "Stream information": `who` ("Stream peer listing", with each seat's
//! throughput) and `stats` ("Stream status listing") for one stream, for a public
//! JID, or for every public stream on the bare DSPS JID.
//!
//! Read-only: nothing here changes a stream.
//!
//! The bare-JID listing is the one reply whose size grows with the number of streams,
//! so it is cut to `[component] max_stanza_size`: public streams are taken oldest
//! first, and one that no longer fits is left out (a later, smaller one may still be
//! listed). A stream's own `stats` always fits: the configuration makes room for
//! `stream_comment_bytes` (see `config`).

use std::time::Instant;

use minidom::Element;
use tracing::debug;

use super::seat::DspsStream;
use super::{Action, Now, Out, Registry, StreamId, TrafficSlot};
use crate::proto::iq::Iq;
use crate::proto::limits::{closing_tag_len, size_within};
use crate::proto::query::{Role, StatsResult, WhoPeer, WhoResult, PROTOCOL_VERSION};
use crate::proto::xml::{attr, NS_COMPONENT, NS_DSPS};

impl Registry {
    pub(super) fn who(&mut self, iq: &Iq, sid: StreamId, seat: u32, now: Now, out: &mut Out) {
        let stream = &self.streams[&sid];
        let me = &stream.seats[&seat];
        let peers = stream
            .seats
            .values()
            .filter(|s| me.role == Role::Master || s.kind() == Role::Master)
            .map(|s| WhoPeer {
                role: s.kind(),
                id: s.id.to_string(),
                status: s.who_status().to_string(),
                throughput: format_traffic(&s.traffic, now.mono),
                jid: s.shown_jid().to_string(),
            })
            .collect();
        Self::send(out, iq.result(Some(Element::from(&WhoResult { peers }))));
    }

    /// A stream's stats without its comments (see [`kept_comments`]).
    fn stats_of(&self, stream: &DspsStream, wait: u64) -> StatsResult {
        StatsResult {
            init: stream.init,
            protocol: PROTOCOL_VERSION.to_string(),
            port: self.settings.port,
            minthroughput: stream.minthroughput.clone(),
            expiredefault: self.settings.expire_default_ms,
            waitdefault: self.settings.wait_default_ms,
            wait,
            public: stream.public_count(),
            maxpublic: stream.maxpublic,
            mastercount: stream.count(Role::Master),
            slavecount: stream.count(Role::Slave),
            relaycount: stream.count(Role::Relay),
            features: self.settings.features.clone(),
            peers: Vec::new(),
            comments: Vec::new(),
        }
    }

    pub(super) fn stream_stats(&mut self, iq: &Iq, sid: StreamId, seat: u32, out: &mut Out) {
        let stream = &self.streams[&sid];
        let mut stats = self.stats_of(stream, stream.seats[&seat].wait_ms);
        stats.comments = kept_comments(stream);
        Self::send(out, iq.result(Some(Element::from(&stats))));
    }

    pub(super) fn public_stats_one(&mut self, iq: &Iq, sid: StreamId, out: &mut Out) {
        // XEP: <peer/> is "present only if 'to' … contained no resource".
        let stream = &self.streams[&sid];
        let mut stats = self.stats_of(stream, self.settings.wait_default_ms);
        stats.comments = kept_comments(stream);
        Self::send(out, iq.result(Some(Element::from(&stats))));
    }

    /// `stats` to the bare JID: one `<query type='stats'/>` per public stream, as
    /// siblings in the result (XEP "Stream status listing"; PROFILE 19), or one empty
    /// query when there is none; streams that would take the reply past
    /// `max_stanza_size` are left out.
    pub(super) fn public_stats(&mut self, iq: &Iq, out: &mut Out) {
        let mut ids: Vec<_> = self
            .streams
            .iter()
            .filter(|(_, s)| s.maxpublic > 0)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        let max = self.settings.max_stanza_size;
        let mut result = iq.result(None).to_element(NS_COMPONENT);
        // Each child is measured on its own (an upper bound of its size inside the
        // result), and without its comments, whose kept text has a known length: so
        // the comments of a stream that does not fit are never parsed back.
        let mut used = size_within(&result, max)
            .unwrap_or(max)
            .saturating_add(closing_tag_len(&result));
        let mut listed = 0usize;
        for sid in &ids {
            let stream = &self.streams[sid];
            let mut stats = self.stats_of(stream, self.settings.wait_default_ms);
            stats.peers = stream
                .public_resource
                .iter()
                .map(|r| self.peer_jid(r))
                .collect();
            let comments = stream.comments.iter().map(String::len).sum::<usize>();
            let room = max.saturating_sub(used);
            let bare = Element::from(&stats);
            let size = size_within(&bare, room)
                .map(|s| s + comments + closing_tag_len(&bare))
                .filter(|s| *s <= room);
            if let Some(size) = size {
                used += size;
                listed += 1;
                stats.comments = kept_comments(stream);
                result.append_child(Element::from(&stats));
            }
        }
        if listed < ids.len() {
            debug!(
                listed,
                left_out = ids.len() - listed,
                "public stats listing cut to max_stanza_size"
            );
        }
        if listed == 0 {
            result.append_child(attr(Element::builder("query", NS_DSPS), "type", "stats").build());
        }
        out.push(Action::Send(result));
    }
}

/// A stream's comments as elements again. They are our own serialisation of what
/// parsed once, so they parse; one that somehow did not would be left out, not panic.
fn kept_comments(stream: &DspsStream) -> Vec<Element> {
    stream
        .comments
        .iter()
        .filter_map(|c| c.parse::<Element>().ok())
        .collect()
}

/// The five-field throughput string of a seat at `now`: received plus sent, per window.
fn format_traffic(slot: &TrafficSlot, now: Instant) -> String {
    slot.lock()
        .unwrap_or_else(|p| p.into_inner())
        .combined(now)
        .format()
}
