//! The background task behind an `XmppClient`: it alone owns the XML stream, writes what
//! the handles queue, hands iq responses to the request that waits for them and passes
//! everything else on to `Incoming`.
//!
//! It ends when the server closes the stream, the connection fails, `close()` is called
//! or every handle is dropped. Ending drops the pending map, so waiting requests see
//! `C2sError::Closed`, and drops the incoming sender, so `Incoming::next` returns `None`.

use std::collections::HashMap;
use std::sync::Arc;

use minidom::Element;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, Instant};

use super::login::{stream_error_text, Stream};
use super::stanza::{self, IdGen};
use super::{CLOSE_TIMEOUT, DEAD_AFTER, KEEPALIVE_AFTER};
use crate::proto::error::Condition;
use crate::xmpp::reader::{Inbound, StanzaHead};

/// What a handle asks the driver to do.
pub(super) enum Command {
    /// Write one stanza.
    Send(Element),
    /// Write `stanza` (an iq get/set with id `id`) and route its response to `reply`.
    Request {
        id: String,
        expected_from: String,
        stanza: Element,
        reply: oneshot::Sender<Element>,
    },
    /// Close the stream politely, then report on `done`.
    Close(oneshot::Sender<()>),
}

/// A request waiting for its response.
struct Pending {
    expected_from: String,
    reply: oneshot::Sender<Element>,
}

/// Whether the read loop goes on after a stanza.
enum Flow {
    Continue,
    Stop,
}

/// Owns the stream and the routing state; see the module doc.
pub(super) struct Driver {
    stream: Stream,
    commands: mpsc::Receiver<Command>,
    incoming: mpsc::Sender<Element>,
    ids: Arc<IdGen>,
    own_bare: String,
    own_domain: String,
    pending: HashMap<String, Pending>,
}

impl Driver {
    /// A driver for a freshly logged-in stream.
    pub(super) fn new(
        stream: Stream,
        commands: mpsc::Receiver<Command>,
        incoming: mpsc::Sender<Element>,
        ids: Arc<IdGen>,
        own_bare: String,
        own_domain: String,
    ) -> Driver {
        Driver {
            stream,
            commands,
            incoming,
            ids,
            own_bare,
            own_domain,
            pending: HashMap::new(),
        }
    }

    /// Runs until the connection ends; see the module doc.
    pub(super) async fn run(mut self) {
        let mut quiet_since = Instant::now();
        let mut pinged = false;
        loop {
            let idle_limit = if pinged { DEAD_AFTER } else { KEEPALIVE_AFTER };
            // All branches are cancel safe: `recv` loses nothing, and the stream keeps
            // its partial-read state inside itself, not in the `next()` future.
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Send(stanza)) => {
                        if let Err(e) = self.stream.send(&stanza).await {
                            tracing::debug!(error = %e, "c2s write failed");
                            return;
                        }
                    }
                    Some(Command::Request { id, expected_from, stanza, reply }) => {
                        // Requests whose caller gave up (timeout, drop) leave a closed
                        // sender behind; sweeping here keeps the map bounded.
                        self.pending.retain(|_, p| !p.reply.is_closed());
                        self.pending.insert(id, Pending { expected_from, reply });
                        if let Err(e) = self.stream.send(&stanza).await {
                            tracing::debug!(error = %e, "c2s write failed");
                            return;
                        }
                    }
                    Some(Command::Close(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    // Every handle is gone: nobody can use the session any more.
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                item = self.stream.next() => {
                    quiet_since = Instant::now();
                    pinged = false;
                    match item {
                        Ok(Inbound::Stanza(elem)) => {
                            if let Flow::Stop = self.dispatch(elem).await {
                                return;
                            }
                        }
                        Ok(Inbound::StreamError(elem)) => {
                            tracing::warn!("c2s {}", stream_error_text(&elem));
                            return;
                        }
                        Ok(Inbound::Rejected { head, bound }) => {
                            tracing::warn!(stanza = %head.name, from = head.from.as_deref().unwrap_or(""), "stanza dropped: {bound}");
                            if let Flow::Stop = self.refuse(&head).await {
                                return;
                            }
                        }
                        Ok(Inbound::Header { .. }) => {}
                        Ok(Inbound::Footer) => return,
                        Err(e) => {
                            tracing::debug!(error = %e, "c2s connection failed");
                            return;
                        }
                    }
                }
                _ = tokio::time::sleep_until(quiet_since + idle_limit) => {
                    if pinged {
                        tracing::debug!("c2s server silent after a ping; giving up");
                        return;
                    }
                    // The server has been quiet for a while: make it answer something.
                    // The reply has no pending entry and is dropped in `dispatch`.
                    pinged = true;
                    quiet_since = Instant::now();
                    let ping = stanza::ping(&self.ids.next_id(), &self.own_domain);
                    if self.stream.send(&ping).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Answers an iq get/set the reader refused (RFC 6120 §8.2.3: it must be answered).
    async fn refuse(&mut self, head: &StanzaHead) -> Flow {
        let is_request = head.name == "iq" && matches!(head.kind.as_deref(), Some("get" | "set"));
        if !is_request {
            return Flow::Continue;
        }
        let mut b = Element::builder("iq", stanza::NS_CLIENT);
        for (name, value) in [("type", &head.kind), ("id", &head.id), ("from", &head.from)] {
            if let Some(v) = value {
                b = crate::proto::xml::attr(b, name, v.as_str());
            }
        }
        let error = stanza::error_for(&b.build(), Condition::PolicyViolation);
        match self.stream.send(&error).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }

    /// Routes one incoming element.
    async fn dispatch(&mut self, elem: Element) -> Flow {
        if stanza::is_iq_response(&elem) {
            self.complete(elem);
            return Flow::Continue;
        }
        if !(elem.is("iq", stanza::NS_CLIENT)
            || elem.is("message", stanza::NS_CLIENT)
            || elem.is("presence", stanza::NS_CLIENT))
        {
            // Nonzas such as stream management acks: nothing here uses them.
            return Flow::Continue;
        }
        let must_answer = stanza::is_iq_request(&elem);
        // try_send, not send: a reader that stopped reading must not stall responses to
        // our own requests, which travel on the same stream.
        let refusal = match self.incoming.try_send(elem) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(elem)) => {
                tracing::warn!("incoming queue full, refusing stanza");
                Some((elem, Condition::ResourceConstraint))
            }
            Err(mpsc::error::TrySendError::Closed(elem)) => {
                Some((elem, Condition::ServiceUnavailable))
            }
        };
        // RFC 6120 §8.2.3: an iq get/set must be answered, so a dropped one gets an error.
        if let Some((elem, condition)) = refusal {
            if must_answer {
                let error = stanza::error_for(&elem, condition);
                if self.stream.send(&error).await.is_err() {
                    return Flow::Stop;
                }
            }
        }
        Flow::Continue
    }

    /// Hands an iq result/error to the request it answers, if any.
    fn complete(&mut self, response: Element) {
        let id = response.attr("id").unwrap_or_default();
        let Some(pending) = self.pending.get(id) else {
            tracing::debug!(id, "dropping iq response nobody waits for");
            return;
        };
        if !stanza::comes_from(
            &response,
            &pending.expected_from,
            &self.own_bare,
            &self.own_domain,
        ) {
            // A right id from the wrong sender is not our answer (RFC 6120 §8.1.2.1);
            // keep waiting for the real one.
            tracing::debug!(id, from = ?response.attr("from"), "iq response from wrong sender");
            return;
        }
        if let Some(pending) = self.pending.remove(id) {
            let _ = pending.reply.send(response);
        }
    }

    /// Sends `</stream:stream>` and waits for the server's, both within `CLOSE_TIMEOUT`.
    async fn shutdown(&mut self) {
        let polite = async {
            if self.stream.close().await.is_err() {
                return;
            }
            // RFC 6120 §4.4: wait for the peer's footer before dropping the socket, so
            // stanzas it is still sending are not cut off with a reset.
            while let Ok(item) = self.stream.next().await {
                if let Inbound::Footer = item {
                    break;
                }
            }
        };
        let _ = timeout(CLOSE_TIMEOUT, polite).await;
    }
}
