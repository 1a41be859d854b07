//! Stream setup for the c2s client: TCP connect, stream header, SASL, stream restart,
//! resource binding and (only when the server insists) the legacy session request.
//!
//! Built on the public `tokio_xmpp::xmlstream` API with plain `minidom::Element` items,
//! not on `tokio_xmpp::Client`: this crate enables tokio-xmpp's `component` feature,
//! which switches xmpp-parsers' default namespace for the whole build and breaks the
//! typed client stanzas (notes/xmpp-component.md §7). No STARTTLS: the client is meant
//! for loopback servers and tests.

use std::borrow::Cow;

use futures::{SinkExt, StreamExt};
use minidom::Element;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_xmpp::xmlstream::{
    initiate_stream, ReadError, RecvFeaturesError, StreamHeader, Timeouts, XmlStream,
};
use xmpp_parsers::jid::FullJid;
use xmpp_parsers::stream_features::StreamFeatures;

use super::stanza::{self, IdGen, NS_CLIENT, NS_STREAM};
use super::{auth, C2sError};

/// The XML stream the client runs on, carrying untyped elements.
pub(super) type Stream = XmlStream<BufStream<TcpStream>, Element>;

/// Namespace of resource binding (RFC 6120 §7).
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Namespace of the legacy session feature (RFC 3921 §3, draft-cridland-xmpp-session).
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";

/// Connects to `server` and logs in as `jid`, returning the ready stream and the bound
/// full JID. The caller bounds the whole thing with a timeout.
pub(super) async fn login(
    server: &str,
    jid: &FullJid,
    password: &str,
    timeouts: Timeouts,
    ids: &IdGen,
) -> Result<(Stream, FullJid), C2sError> {
    let username = jid
        .node()
        .ok_or_else(|| C2sError::Protocol(format!("JID {jid} has no local part")))?;
    let domain = jid.domain().as_str();

    let tcp = TcpStream::connect(server)
        .await
        .map_err(C2sError::Connect)?;
    // Requests and replies are small and back to back; Nagle plus delayed ACK would add
    // ~40 ms to every other round trip (notes/xmpp-component.md §2).
    tcp.set_nodelay(true).map_err(C2sError::Connect)?;

    let pending = initiate_stream(BufStream::new(tcp), NS_CLIENT, header(domain), timeouts)
        .await
        .map_err(C2sError::Connect)?;
    let (features, mut stream) = pending
        .recv_features::<Element>()
        .await
        .map_err(features_error)?;
    auth::authenticate(
        &mut stream,
        &features.sasl_mechanisms,
        username.as_str(),
        password,
    )
    .await?;

    // RFC 6120 §6.4.6: after SASL success both sides start a fresh stream.
    let pending = stream
        .initiate_reset()
        .send_header(header(domain))
        .await
        .map_err(C2sError::Connect)?;
    let (features, mut stream) = pending
        .recv_features::<Element>()
        .await
        .map_err(features_error)?;
    if !features.can_bind() {
        return Err(C2sError::Bind);
    }
    let bound = bind(&mut stream, jid.resource().as_str(), ids).await?;
    if session_required(&features) {
        session(&mut stream, ids).await?;
    }
    Ok((stream, bound))
}

/// Reads the next element during login, where anything but an element is fatal.
pub(super) async fn read_element(stream: &mut Stream) -> Result<Element, C2sError> {
    loop {
        match stream.next().await {
            Some(Ok(elem)) if elem.is("error", NS_STREAM) => {
                return Err(C2sError::Protocol(stream_error_text(&elem)))
            }
            Some(Ok(elem)) => return Ok(elem),
            // Login is bounded by the caller's timeout, so an idle soft timeout here just
            // means "keep waiting".
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(ReadError::ParseError(e))) => {
                return Err(C2sError::Protocol(format!("unparsable element: {e}")))
            }
            Some(Err(ReadError::HardError(e))) => return Err(C2sError::Connect(e)),
            Some(Err(ReadError::StreamFooterReceived)) | None => return Err(C2sError::Closed),
        }
    }
}

/// One line describing a `<stream:error/>`: its condition and text, if any.
pub(super) fn stream_error_text(error: &Element) -> String {
    let condition = error
        .children()
        .find(|c| c.name() != "text")
        .map_or("unknown-condition", |c| c.name());
    let text = error
        .children()
        .find(|c| c.name() == "text")
        .map(|t| t.text());
    match text {
        Some(text) if !text.is_empty() => format!("stream error {condition}: {text}"),
        _ => format!("stream error {condition}"),
    }
}

/// Our stream header: only `to`, as RFC 6120 §4.7.2 asks of an unauthenticated client.
fn header(domain: &str) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(domain)),
        ..StreamHeader::default()
    }
}

fn features_error(e: RecvFeaturesError) -> C2sError {
    match e {
        RecvFeaturesError::Io(e) => C2sError::Connect(e),
        RecvFeaturesError::StreamError(e) => C2sError::Protocol(format!("stream error: {e}")),
    }
}

/// Binds `resource` and returns the full JID the server assigned (it may differ).
async fn bind(stream: &mut Stream, resource: &str, ids: &IdGen) -> Result<FullJid, C2sError> {
    let id = ids.next_id();
    let request = Element::builder("bind", NS_BIND)
        .append(Element::builder("resource", NS_BIND).append(resource))
        .build();
    stream
        .send(&stanza::iq("set", &id, None, Some(request)))
        .await
        .map_err(C2sError::Connect)?;
    let reply = await_reply(stream, &id).await?;
    if reply.attr("type") != Some("result") {
        tracing::warn!(reply = %String::from(&reply), "resource binding refused");
        return Err(C2sError::Bind);
    }
    let jid = reply
        .get_child("bind", NS_BIND)
        .and_then(|b| b.get_child("jid", NS_BIND))
        .map(|j| j.text())
        .ok_or(C2sError::Bind)?;
    FullJid::new(jid.trim()).map_err(|_| C2sError::Bind)
}

/// True when the server offers the legacy session feature without marking it optional.
///
/// Prosody 0.12 marks it `<optional/>`, so against it no session request is sent.
fn session_required(features: &StreamFeatures) -> bool {
    features
        .others
        .iter()
        .any(|f| f.is("session", NS_SESSION) && !f.has_child("optional", NS_SESSION))
}

/// Sends the legacy session request and waits for its result.
async fn session(stream: &mut Stream, ids: &IdGen) -> Result<(), C2sError> {
    let id = ids.next_id();
    let request = Element::bare("session", NS_SESSION);
    stream
        .send(&stanza::iq("set", &id, None, Some(request)))
        .await
        .map_err(C2sError::Connect)?;
    let reply = await_reply(stream, &id).await?;
    match reply.attr("type") {
        Some("result") => Ok(()),
        _ => Err(C2sError::Protocol(
            "session establishment refused".to_owned(),
        )),
    }
}

/// Waits for the iq answering `id`, skipping anything else the server sends meanwhile.
async fn await_reply(stream: &mut Stream, id: &str) -> Result<Element, C2sError> {
    loop {
        let elem = read_element(stream).await?;
        if stanza::is_iq_response(&elem) && elem.attr("id") == Some(id) {
            return Ok(elem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(xml: &str) -> StreamFeatures {
        let elem: Element = xml.parse().expect("test XML");
        StreamFeatures::try_from(elem).expect("valid features")
    }

    #[test]
    fn optional_session_is_skipped() {
        let f = features(
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
             <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
             <session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>\
             </stream:features>",
        );
        assert!(f.can_bind());
        assert!(!session_required(&f));
    }

    #[test]
    fn mandatory_session_is_requested() {
        let f = features(
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
             <session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>",
        );
        assert!(session_required(&f));
    }

    #[test]
    fn stream_error_text_is_one_line() {
        let err: Element = "<error xmlns='http://etherx.jabber.org/streams'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced</text></error>"
            .parse()
            .expect("test XML");
        assert_eq!(stream_error_text(&err), "stream error conflict: Replaced");
    }
}
