//! Stream setup for the c2s client: find the server (SRV, RFC 6120 §3.2), TCP connect,
//! stream header, STARTTLS (RFC 6120 §5), SASL, stream restart, resource binding and
//! (only when the server insists) the legacy session request.
//!
//! Built on the crate's own [`XmlConn`] with plain `minidom::Element` items, so what
//! any user sends this client is read within the same bounds as on the component
//! link (deep or huge stanzas are skipped, never built). The crate no longer depends
//! on tokio-xmpp, so its `component` feature no longer switches xmpp-parsers' default
//! namespace for the build (notes/xmpp-component.md §7). TLS is rustls (ring) via
//! tokio-rustls, checked against the account's domain (RFC 6125), with the trust the
//! caller chose ([`super::Security`]).

use std::sync::Arc;

use minidom::Element;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use xmpp_parsers::jid::FullJid;
use xmpp_parsers::stream_features::StreamFeatures;

use super::socket::Socket;
use super::stanza::{self, IdGen, NS_CLIENT};
use super::{auth, resolve, C2sError, ConnectOptions, Security};
use crate::xmpp::reader::{Inbound, ReaderLimits};
use crate::xmpp::stream::{header, StreamDown, XmlConn};

/// The XML stream the client runs on, carrying untyped elements.
pub(super) type Stream = XmlConn<Socket>;

/// Namespace of STARTTLS negotiation (RFC 6120 §5.4).
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

/// Namespace of resource binding (RFC 6120 §7).
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Namespace of the legacy session feature (RFC 3921 §3, draft-cridland-xmpp-session).
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";

/// Connects as `opts` says and logs in as `jid`, returning the ready stream and the
/// bound full JID. The caller bounds the whole thing with a timeout.
pub(super) async fn login(
    opts: &ConnectOptions,
    jid: &FullJid,
    password: &str,
    ids: &IdGen,
) -> Result<(Stream, FullJid), C2sError> {
    let username = jid
        .node()
        .ok_or_else(|| C2sError::Protocol(format!("JID {jid} has no local part")))?;
    let domain = jid.domain().as_str();

    let tcp = dial(opts, domain).await?;
    // Requests and replies are small and back to back; Nagle plus delayed ACK would add
    // ~40 ms to every other round trip (notes/xmpp-component.md §2).
    tcp.set_nodelay(true).map_err(C2sError::Connect)?;

    let mut stream = Stream::new(Socket::Plain(tcp), ReaderLimits::default());
    stream
        .open(&header(NS_CLIENT, domain, true))
        .await
        .map_err(down)?;
    let mut features = recv_features(&mut stream).await?;
    if let Security::Tls(config) = &opts.security {
        if !offers_starttls(&features) {
            return Err(C2sError::Tls(format!(
                "{domain} does not offer STARTTLS; refusing to log in unencrypted"
            )));
        }
        stream = starttls(stream, domain, config.clone()).await?;
        stream
            .open(&header(NS_CLIENT, domain, true))
            .await
            .map_err(down)?;
        features = recv_features(&mut stream).await?;
    }
    auth::authenticate(
        &mut stream,
        &features.sasl_mechanisms,
        username.as_str(),
        password,
    )
    .await?;

    // RFC 6120 §6.4.6: after SASL success both sides start a fresh stream.
    stream
        .open(&header(NS_CLIENT, domain, true))
        .await
        .map_err(down)?;
    let features = recv_features(&mut stream).await?;
    if !features.can_bind() {
        return Err(C2sError::Bind);
    }
    let bound = bind(&mut stream, jid.resource().as_str(), ids).await?;
    if session_required(&features) {
        session(&mut stream, ids).await?;
    }
    Ok((stream, bound))
}

/// The first server address that accepts a TCP connection: `opts.server`, or the
/// domain's SRV records in order, or the domain on 5222.
async fn dial(opts: &ConnectOptions, domain: &str) -> Result<TcpStream, C2sError> {
    let candidates = match &opts.server {
        Some(addr) => vec![(addr.clone(), None)],
        None => resolve::candidates(domain)
            .await
            .map_err(|e| C2sError::Unreachable(e.to_string()))?
            .into_iter()
            .map(|(host, port)| (host, Some(port)))
            .collect(),
    };
    let mut failures = Vec::new();
    for (host, port) in &candidates {
        let target = match port {
            Some(p) => resolve::host_port(host, *p),
            None => host.clone(),
        };
        match TcpStream::connect(&target).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => failures.push(format!("{target}: {e}")),
        }
    }
    Err(C2sError::Unreachable(format!(
        "no server for {domain} accepted a connection ({})",
        failures.join("; ")
    )))
}

fn offers_starttls(features: &StreamFeatures) -> bool {
    features.can_starttls()
}

/// RFC 6120 §5.4: `<starttls/>`, `<proceed/>`, then the TLS handshake on the same
/// socket, with the certificate checked against the account's domain.
async fn starttls(
    mut stream: Stream,
    domain: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Stream, C2sError> {
    stream
        .send(&Element::bare("starttls", NS_TLS))
        .await
        .map_err(C2sError::Connect)?;
    let answer = read_element(&mut stream).await?;
    if !answer.is("proceed", NS_TLS) {
        return Err(C2sError::Tls(format!(
            "the server answered STARTTLS with <{}/>",
            answer.name()
        )));
    }
    let Socket::Plain(tcp) = stream.into_inner() else {
        return Err(C2sError::Protocol("STARTTLS on an encrypted stream".into()));
    };
    let name = ServerName::try_from(domain.to_string())
        .map_err(|e| C2sError::Tls(format!("{domain} is not a valid TLS server name: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| C2sError::Tls(tls_failure(&e)))?;
    Ok(Stream::new(
        Socket::Tls(Box::new(tls)),
        ReaderLimits::default(),
    ))
}

/// One line for a failed TLS handshake, naming an untrusted certificate as such.
fn tls_failure(e: &std::io::Error) -> String {
    match crate::client::tls::rustls_error(e) {
        Some(inner) => crate::client::tls::explain(inner),
        None => format!("TLS handshake failed: {e}"),
    }
}

/// The error for a stream that went down.
pub(super) fn down(e: StreamDown) -> C2sError {
    match e {
        StreamDown::Io(e) => C2sError::Connect(e),
        StreamDown::Eof => C2sError::Closed,
        StreamDown::Xml(e) => C2sError::Protocol(e),
    }
}

/// Reads the next element during login, where a stream error or the end is fatal.
/// (Login is bounded by the caller's timeout.)
pub(super) async fn read_element(stream: &mut Stream) -> Result<Element, C2sError> {
    loop {
        match stream.next().await.map_err(down)? {
            Inbound::Stanza(elem) => return Ok(elem),
            Inbound::StreamError(elem) => return Err(C2sError::Protocol(stream_error_text(&elem))),
            Inbound::Rejected { head, bound } => {
                tracing::debug!(stanza = %head.name, "skipping stanza during login: {bound}")
            }
            Inbound::Header { .. } => {}
            Inbound::Footer => return Err(C2sError::Closed),
        }
    }
}

/// Reads the `<stream:features/>` that follow a stream header.
async fn recv_features(stream: &mut Stream) -> Result<StreamFeatures, C2sError> {
    let elem = read_element(stream).await?;
    StreamFeatures::try_from(elem)
        .map_err(|e| C2sError::Protocol(format!("unreadable stream features: {e}")))
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
