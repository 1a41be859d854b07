//! XEP-0030 beyond the root disco#info (which `core::info` answers): disco#items on
//! the bare JID lists the public streams, the node
//! `http://jabber.org/protocol/commands` lists the admin commands (XEP-0050
//! "Retrieving the Command List"), and disco#info on those nodes.
//!
//! The public listing is the bare-JID `stats` listing's (PROFILE 19) in another
//! form, with the same bound: streams oldest first, as many as fit in
//! `max_stanza_size` (and at most [`MAX_ITEMS`]); the reply budget meters it like
//! every result. An item's name is the stream's first comment's text, cut to
//! [`NAME_CHARS`].
//!
//! Non-admins get an empty command list (XEP-0050: the list need not be the same
//! for every requester) and `forbidden` on a command's node.

use minidom::Element;
use xmpp_parsers::disco::{DiscoItemsResult, Item};
use xmpp_parsers::jid::Jid;

use super::seat::DspsStream;
use super::{Action, Out, Registry};
use crate::core::info::NS_DISCO_INFO;
use crate::proto::adhoc::{CommandError, NS_COMMANDS};
use crate::proto::error::DspsError;
use crate::proto::forms::NS_DATA_FORMS;
use crate::proto::iq::Iq;
use crate::proto::limits::{closing_tag_len, size_within};
use crate::proto::xml::{attr, NS_COMPONENT};

/// Most characters of an item's name.
pub const NAME_CHARS: usize = 100;
/// Most public streams one disco#items reply lists.
pub const MAX_ITEMS: usize = 1000;

impl Registry {
    /// A disco#items get to the bare JID.
    pub(super) fn on_disco_items(&mut self, iq: &Iq, payload: &Element, out: &mut Out) {
        match payload.attr("node").filter(|n| !n.is_empty()) {
            None => self.public_items(iq, out),
            Some(NS_COMMANDS) => {
                let items = if self.is_admin(&iq.from) {
                    self.offered()
                        .map(|c| Item {
                            jid: Jid::new(&self.settings.domain).expect("the domain is a JID"),
                            node: Some(c.node().to_string()),
                            name: Some(c.name().to_string()),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let q = Element::from(DiscoItemsResult {
                    node: Some(NS_COMMANDS.to_string()),
                    items,
                    rsm: None,
                });
                Self::send(out, iq.result(Some(q)));
            }
            Some(_) => Self::reply_error(out, iq, DspsError::ItemNotFound, Some("no such node")),
        }
    }

    /// A disco#info get to the bare JID with a `node`.
    pub(super) fn on_disco_info_node(&mut self, iq: &Iq, node: &str, out: &mut Out) {
        let identity = |type_: &str, name: &str| {
            attr(
                attr(
                    attr(
                        Element::builder("identity", NS_DISCO_INFO),
                        "category",
                        "automation",
                    ),
                    "type",
                    type_,
                ),
                "name",
                name,
            )
            .build()
        };
        let feature =
            |var: &str| attr(Element::builder("feature", NS_DISCO_INFO), "var", var).build();
        let query = |children: Vec<Element>| {
            attr(Element::builder("query", NS_DISCO_INFO), "node", node)
                .append_all(children)
                .build()
        };
        if node == NS_COMMANDS {
            let q = query(vec![identity("command-list", "Admin commands")]);
            return Self::send(out, iq.result(Some(q)));
        }
        let Some(cmd) = self.offered().find(|c| c.node() == node) else {
            return Self::reply_error(out, iq, DspsError::ItemNotFound, Some("no such node"));
        };
        if !self.is_admin(&iq.from) {
            // XEP-0050: a command not available to the requester SHOULD get 403.
            let mut reply = iq.error_reply(DspsError::Forbidden, None, NS_COMPONENT);
            reply.error = Some(CommandError::Forbidden.to_element(NS_COMPONENT));
            return Self::send(out, reply);
        }
        let q = query(vec![
            identity("command-node", cmd.name()),
            feature(NS_COMMANDS),
            feature(NS_DATA_FORMS),
        ]);
        Self::send(out, iq.result(Some(q)));
    }

    /// One `<item/>` per public stream (its public JID, named by its comment),
    /// oldest first, while they fit.
    fn public_items(&self, iq: &Iq, out: &mut Out) {
        let ids: Vec<_> = self
            .stream_ids()
            .into_iter()
            .filter(|sid| self.streams[sid].maxpublic > 0)
            .collect();
        let empty = Element::from(DiscoItemsResult {
            node: None,
            items: Vec::new(),
            rsm: None,
        });
        let max = self.settings.max_stanza_size;
        let mut result = iq.result(Some(empty)).to_element(NS_COMPONENT);
        let mut room = max
            .saturating_sub(size_within(&result, max).unwrap_or(max))
            .saturating_sub(closing_tag_len(&result));
        let mut query = result
            .children()
            .next()
            .cloned()
            .expect("the result holds the query");
        let mut listed = 0;
        for sid in ids {
            let stream = &self.streams[&sid];
            let Some(jid) = stream
                .public_resource
                .as_ref()
                .and_then(|r| Jid::new(&self.peer_jid(r)).ok())
            else {
                continue;
            };
            let item = Element::from(Item {
                jid,
                node: None,
                name: comment_name(stream),
            });
            let Some(size) = size_within(&item, room).filter(|_| listed < MAX_ITEMS) else {
                break;
            };
            room -= size;
            listed += 1;
            query.append_child(item);
        }
        result = iq.result(Some(query)).to_element(NS_COMPONENT);
        out.push(Action::Send(result));
    }
}

/// The text of a stream's first comment that has any, whitespace collapsed and cut
/// to [`NAME_CHARS`] (with `…`); `None` if no comment has text.
fn comment_name(stream: &DspsStream) -> Option<String> {
    for c in &stream.comments {
        let Ok(e) = c.parse::<Element>() else {
            continue;
        };
        let mut words: Vec<&str> = Vec::new();
        // In document order, without recursion (comments are bounded, but nest).
        let mut stack: Vec<&minidom::Node> = e.nodes().rev().collect();
        while let Some(node) = stack.pop() {
            match node {
                minidom::Node::Text(t) => words.extend(t.split_whitespace()),
                minidom::Node::Element(child) => stack.extend(child.nodes().rev()),
            }
        }
        let text = words.join(" ");
        if text.is_empty() {
            continue;
        }
        if text.chars().count() <= NAME_CHARS {
            return Some(text);
        }
        let mut cut: String = text.chars().take(NAME_CHARS - 1).collect();
        cut.push('…');
        return Some(cut);
    }
    None
}
