//! Bounds on what one request may carry, and how big a stanza is.
//!
//! Everything a client sends that dsps keeps (a stream's comments, JIDs,
//! `minthroughput`) or repeats (admin comments in invitations and drop notices, the iq
//! `id` in every reply) is bounded by `[limits]` (issue 6). A request past a bound is
//! refused whole with 400 and a text naming the limit, e.g.
//! `comment longer than limits.comment_bytes (4096)`, before anything is stored or
//! sent. [`QueryLimits`] holds the bounds the parser in `query` checks; this module
//! only measures and compares, it decides nothing about streams.
//!
//! Sizes are bytes of the element serialised on its own, as dsps would write it
//! (tag, namespace declaration, attributes and content). Inside a larger stanza the
//! same element is written no longer than that (a namespace it shares with its parent
//! is not declared again), so a sum of these sizes is an upper bound of the whole.
//!
//! A comment counts its bytes plus [`NODE_CHARGE`] for each element, attribute and
//! text node in it ([`comment_cost`]). Bytes alone would not bound memory: until it
//! is written out, every invitation holds its comments as an element tree, and a
//! tree of tiny elements takes about 50 times its text (a 4 KiB comment of `<a/>`s
//! about 220 KiB), once per invitee.

use std::fmt;
use std::io;

use minidom::Element;

use super::iq::Iq;

/// The `[limits]` that apply to a single request (see `config::Limits` for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most bytes of one `<comment/>`.
    pub comment_bytes: usize,
    /// Most `<comment/>` elements in one request.
    pub comments_per_request: usize,
    /// Most comment bytes a `create` may give its stream, all comments together.
    pub stream_comment_bytes: usize,
    /// Most `<peer/>` elements in one `admin`.
    pub peers_per_admin: usize,
    /// Most bytes of an attribute value, JID or `id` that dsps stores or repeats.
    pub attribute_bytes: usize,
}

impl QueryLimits {
    /// No bounds at all: for reading what a trusted peer (our own server) wrote.
    pub const NONE: QueryLimits = QueryLimits {
        comment_bytes: usize::MAX,
        comments_per_request: usize::MAX,
        stream_comment_bytes: usize::MAX,
        peers_per_admin: usize::MAX,
        attribute_bytes: usize::MAX,
    };

    /// `Err` if `value` (attribute or JID `what`) is longer than `attribute_bytes`.
    pub fn attribute(&self, what: &'static str, value: Option<&str>) -> Result<(), OverLimit> {
        match value {
            Some(v) if v.len() > self.attribute_bytes => Err(OverLimit {
                limit: Limit::AttributeBytes(what),
                max: self.attribute_bytes,
            }),
            _ => Ok(()),
        }
    }

    /// `Err` if the iq's `id`, `from` or `to` is longer than `attribute_bytes`: every
    /// reply repeats them, and `from` becomes a seat's JID.
    pub fn envelope(&self, iq: &Iq) -> Result<(), OverLimit> {
        self.attribute("id", Some(&iq.id))?;
        self.attribute("from", Some(&iq.from))?;
        self.attribute("to", Some(&iq.to))
    }

    /// The `<comment/>` children of `e`, checked against the count and per-comment
    /// bounds and, when `kept` (a create, whose comments its stream keeps), against
    /// `stream_comment_bytes` in all.
    pub fn comments(&self, e: &Element, kept: bool) -> Result<Vec<Element>, OverLimit> {
        let comments = || e.children().filter(|c| c.name() == "comment");
        if comments().count() > self.comments_per_request {
            return Err(OverLimit {
                limit: Limit::CommentsPerRequest,
                max: self.comments_per_request,
            });
        }
        let mut total = 0usize;
        for c in comments() {
            let size = comment_cost(c, self.comment_bytes).ok_or(OverLimit {
                limit: Limit::CommentBytes,
                max: self.comment_bytes,
            })?;
            total = total.saturating_add(size);
            if kept && total > self.stream_comment_bytes {
                return Err(OverLimit {
                    limit: Limit::StreamCommentBytes,
                    max: self.stream_comment_bytes,
                });
            }
        }
        Ok(comments().cloned().collect())
    }
}

impl From<&crate::config::Limits> for QueryLimits {
    fn from(l: &crate::config::Limits) -> QueryLimits {
        QueryLimits {
            comment_bytes: l.comment_bytes,
            comments_per_request: l.comments_per_request,
            stream_comment_bytes: l.stream_comment_bytes,
            peers_per_admin: l.peers_per_admin,
            attribute_bytes: l.attribute_bytes,
        }
    }
}

/// Which bound was passed; each names its configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `limits.comment_bytes`.
    CommentBytes,
    /// `limits.comments_per_request`.
    CommentsPerRequest,
    /// `limits.stream_comment_bytes`.
    StreamCommentBytes,
    /// `limits.peers_per_admin`.
    PeersPerAdmin,
    /// `limits.attribute_bytes`, for the named attribute or JID.
    AttributeBytes(&'static str),
    /// `component.max_stanza_size`, for the named stanza dsps would have to send.
    StanzaSize(&'static str),
}

/// A request past one of the bounds; answered 400 with this as the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    /// The bound.
    pub limit: Limit,
    /// Its configured value.
    pub max: usize,
}

impl fmt::Display for OverLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = self.max;
        match self.limit {
            Limit::CommentBytes => write!(f, "comment longer than limits.comment_bytes ({max})"),
            Limit::CommentsPerRequest => {
                write!(f, "more comments than limits.comments_per_request ({max})")
            }
            Limit::StreamCommentBytes => write!(
                f,
                "comments longer in all than limits.stream_comment_bytes ({max})"
            ),
            Limit::PeersPerAdmin => write!(f, "more peers than limits.peers_per_admin ({max})"),
            Limit::AttributeBytes(what) => {
                write!(f, "{what} longer than limits.attribute_bytes ({max})")
            }
            Limit::StanzaSize(what) => {
                write!(f, "{what} larger than component.max_stanza_size ({max})")
            }
        }
    }
}

/// What each element, attribute and text node of a comment counts for on top of its
/// bytes: a fraction of the 100 to 230 bytes one takes in memory, so that a comment
/// with structure (a `<file name=… size=… sha256=…/>`, 256 bytes of charges) keeps
/// most of its budget, while one made of thousands of `<a/>`s does not fit.
pub const NODE_CHARGE: usize = 64;

/// What comment `c` counts against `comment_bytes` and `stream_comment_bytes`: its
/// serialised size plus [`NODE_CHARGE`] per element, attribute and text node; `None`
/// if that is more than `max`. Walks the tree with its own stack, not by recursion.
pub fn comment_cost(c: &Element, max: usize) -> Option<usize> {
    let mut nodes = 0usize;
    let mut stack = vec![c];
    while let Some(e) = stack.pop() {
        nodes += 1 + e.attrs().len();
        for node in e.nodes() {
            match node {
                minidom::Node::Element(child) => stack.push(child),
                minidom::Node::Text(_) => nodes += 1,
            }
        }
        if nodes.saturating_mul(NODE_CHARGE) > max {
            return None;
        }
    }
    let charge = nodes * NODE_CHARGE;
    size_within(c, max - charge).map(|bytes| bytes + charge)
}

/// The serialised size of `e` if it is at most `max` bytes, else `None`. Writing
/// stops as soon as `max` is passed, so measuring a huge element costs no more than
/// `max` bytes of work and no allocation for the output.
pub fn size_within(e: &Element, max: usize) -> Option<usize> {
    let mut counter = Counter { written: 0, max };
    e.write_to(&mut counter).ok()?;
    Some(counter.written)
}

/// Bytes `e` grows by when written with children rather than self-closed: `<iq …/>`
/// becomes `<iq …>` … `</iq>`, so its name, `<`, `/` and `>` come on top of the
/// children's own sizes.
pub fn closing_tag_len(e: &Element) -> usize {
    e.name().len() + 2
}

/// A writer that only counts, and fails once past `max`.
struct Counter {
    written: usize,
    max: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written = self.written.saturating_add(buf.len());
        if self.written > self.max {
            return Err(io::Error::other("over the size bound"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(s: &str) -> Element {
        s.parse().unwrap()
    }

    #[test]
    fn size_is_the_serialised_length_and_stops_past_the_bound() {
        let e = el("<comment xmlns='jabber:iq:dsps'>hello &amp; bye</comment>");
        let len = String::from(&e).len();
        assert_eq!(size_within(&e, len), Some(len));
        assert_eq!(size_within(&e, len - 1), None);
        assert_eq!(size_within(&e, usize::MAX), Some(len));
    }

    #[test]
    fn children_add_their_size_and_the_closing_tag() {
        let mut e = el("<iq xmlns='jabber:component:accept' type='result' id='1'/>");
        let c = el("<query xmlns='jabber:iq:dsps' type='stats'/>");
        let (empty, child) = (String::from(&e).len(), String::from(&c).len());
        e.append_child(c);
        assert_eq!(String::from(&e).len(), empty + child + closing_tag_len(&e));
    }

    #[test]
    fn texts_name_the_key_and_its_value() {
        let t = |limit, max| OverLimit { limit, max }.to_string();
        assert_eq!(
            t(Limit::CommentBytes, 4096),
            "comment longer than limits.comment_bytes (4096)"
        );
        assert_eq!(
            t(Limit::AttributeBytes("minthroughput"), 3072),
            "minthroughput longer than limits.attribute_bytes (3072)"
        );
        assert_eq!(
            t(Limit::StanzaSize("invitation"), 262_144),
            "invitation larger than component.max_stanza_size (262144)"
        );
        assert!(t(Limit::CommentsPerRequest, 16).contains("limits.comments_per_request (16)"));
        assert!(t(Limit::StreamCommentBytes, 9).contains("limits.stream_comment_bytes (9)"));
        assert!(t(Limit::PeersPerAdmin, 64).contains("limits.peers_per_admin (64)"));
    }

    #[test]
    fn attribute_at_the_limit_passes_one_byte_over_does_not() {
        let lim = QueryLimits {
            attribute_bytes: 5,
            ..QueryLimits::NONE
        };
        assert_eq!(lim.attribute("wait", Some("12345")), Ok(()));
        assert_eq!(lim.attribute("wait", None), Ok(()));
        assert_eq!(
            lim.attribute("wait", Some("123456")),
            Err(OverLimit {
                limit: Limit::AttributeBytes("wait"),
                max: 5
            })
        );
    }

    #[test]
    fn envelope_checks_id_from_and_to() {
        let lim = QueryLimits {
            attribute_bytes: 8,
            ..QueryLimits::NONE
        };
        let iq = |id: &str, from: &str, to: &str| {
            let e = el(&format!(
                "<iq xmlns='jabber:component:accept' type='get' id='{id}' from='{from}' to='{to}'/>"
            ));
            Iq::parse(&e).unwrap()
        };
        assert_eq!(lim.envelope(&iq("12345678", "a@b/c", "d")), Ok(()));
        for (bad, what) in [
            (iq("123456789", "a@b/c", "d"), "id"),
            (iq("1", "a@b/cdefgh", "d"), "from"),
            (iq("1", "a@b/c", "dddddddd.e"), "to"),
        ] {
            assert_eq!(
                lim.envelope(&bad).map_err(|e| e.limit),
                Err(Limit::AttributeBytes(what))
            );
        }
    }

    #[test]
    fn a_comment_costs_its_bytes_and_a_charge_per_node() {
        let text = el("<comment xmlns='jabber:iq:dsps'>hello</comment>");
        let bytes = String::from(&text).len();
        // The element and its text node.
        assert_eq!(
            comment_cost(&text, usize::MAX),
            Some(bytes + 2 * NODE_CHARGE)
        );
        let file = el(
            "<comment xmlns='jabber:iq:dsps'><file xmlns='urn:f' name='a' size='1' sha256='00'/></comment>",
        );
        let bytes = String::from(&file).len();
        // Two elements and three attributes (xmlns is not an attribute here).
        assert_eq!(
            comment_cost(&file, usize::MAX),
            Some(bytes + 5 * NODE_CHARGE)
        );
        let cost = bytes + 5 * NODE_CHARGE;
        assert_eq!(comment_cost(&file, cost), Some(cost));
        assert_eq!(comment_cost(&file, cost - 1), None);
        // Thousands of tiny elements: about 16 KB of text, far more of charges.
        let tiny = el(&format!(
            "<comment xmlns='jabber:iq:dsps'>{}</comment>",
            "<a/>".repeat(4000)
        ));
        assert_eq!(comment_cost(&tiny, 100_000), None);
        assert_eq!(
            comment_cost(&tiny, usize::MAX),
            Some(String::from(&tiny).len() + 4001 * NODE_CHARGE)
        );
    }

    /// A query with `n` text comments, each costing exactly `cost`.
    fn with_comments(n: usize, cost: usize) -> Element {
        let tags = String::from(&el("<comment xmlns='jabber:iq:dsps'>t</comment>")).len() - 1;
        let text = "x".repeat(cost - tags - 2 * NODE_CHARGE);
        let comments = format!("<comment>{text}</comment>").repeat(n);
        let e = el(&format!(
            "<query xmlns='jabber:iq:dsps' type='create'>{comments}</query>"
        ));
        for c in e.children() {
            assert_eq!(comment_cost(c, usize::MAX), Some(cost), "fixture cost");
        }
        e
    }

    #[test]
    fn comments_at_each_limit_pass_one_over_does_not() {
        let lim = QueryLimits {
            comment_bytes: 300,
            comments_per_request: 3,
            stream_comment_bytes: 800,
            ..QueryLimits::NONE
        };
        let over = |e: &Element, kept| lim.comments(e, kept).map_err(|e| e.limit);
        assert_eq!(lim.comments(&with_comments(3, 250), true).unwrap().len(), 3);
        assert_eq!(lim.comments(&with_comments(1, 300), true).unwrap().len(), 1);
        assert_eq!(
            over(&with_comments(1, 301), false),
            Err(Limit::CommentBytes)
        );
        assert_eq!(
            over(&with_comments(4, 200), false),
            Err(Limit::CommentsPerRequest)
        );
        // 2 × 300 + 200 = 800 is at the stream bound; 3 × 300 is past it, but only
        // comments a stream keeps count against it.
        let mut e = with_comments(2, 300);
        e.append_child(with_comments(1, 200).children().next().unwrap().clone());
        assert_eq!(lim.comments(&e, true).unwrap().len(), 3);
        let e = with_comments(3, 300);
        assert_eq!(over(&e, true), Err(Limit::StreamCommentBytes));
        assert_eq!(lim.comments(&e, false).unwrap().len(), 3);
    }
}
