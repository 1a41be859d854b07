//! The DSPS's pushes, read by one task and handed over a channel.
//!
//! Why a task: `DspsEvents::next` acknowledges a push (an await) after it took the
//! stanza, so dropping that future inside a `select!` could lose the push. Receiving
//! from a channel loses nothing, so [`Pump::next`] is cancel safe and every loop here
//! can `select!` on it next to the relay socket and the clock.
//!
//! The task also answers what nobody else would: XEP-0199 pings (so a test or a peer
//! can see that we are online) and any other iq request (service-unavailable, RFC
//! 6120 §8.2.3: every get/set is answered).

use dsps::client::c2s::{Incoming, XmppClient};
use dsps::client::session::{DspsEvent, DspsEvents};
use dsps::proto::xml::{attr, NS_CLIENT, NS_STANZAS};
use minidom::Element;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Events waiting for the command's loop. Pushes are small and the loop keeps up;
/// when it does not, the pump waits, and the c2s client's own queue takes the rest.
const EVENT_QUEUE: usize = 64;
/// XEP-0199 ping.
const NS_PING: &str = "urn:xmpp:ping";

/// The receiving end of the event task; stops the task when dropped.
pub struct Pump {
    rx: mpsc::Receiver<DspsEvent>,
    task: JoinHandle<()>,
}

impl Pump {
    /// Starts reading `incoming`.
    pub fn start(xmpp: XmppClient, incoming: Incoming) -> Pump {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let mut events = DspsEvents::new(xmpp.clone(), incoming);
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let unanswered = match &event {
                    DspsEvent::Other(stanza) => Some(stanza.clone()),
                    // We never ask a DSPS to relay for us.
                    DspsEvent::RelayKey(request) => Some(request.iq.clone()),
                    _ => None,
                };
                if let Some(stanza) = unanswered {
                    answer_unknown(&xmpp, &stanza).await;
                    continue;
                }
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        Pump { rx, task }
    }

    /// The next event, or `None` once the XMPP connection has ended. Cancel safe.
    pub async fn next(&mut self) -> Option<DspsEvent> {
        self.rx.recv().await
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers an iq get/set nobody else handles: pings with a result, the rest with
/// `service-unavailable`. Anything else (messages, presence, results) is ignored.
async fn answer_unknown(xmpp: &XmppClient, stanza: &Element) {
    if !stanza.is("iq", NS_CLIENT) || !matches!(stanza.attr("type"), Some("get" | "set")) {
        return;
    }
    if stanza.get_child("ping", NS_PING).is_some() {
        let _ = xmpp.reply_result(stanza, None).await;
        return;
    }
    let error = attr(Element::builder("error", NS_CLIENT), "type", "cancel")
        .append(Element::bare("service-unavailable", NS_STANZAS))
        .build();
    let mut reply = attr(Element::builder("iq", NS_CLIENT), "type", "error");
    reply = attr(reply, "id", stanza.attr("id").unwrap_or_default());
    if let Some(from) = stanza.attr("from") {
        reply = attr(reply, "to", from);
    }
    let _ = xmpp.send(reply.append(error).build()).await;
}
