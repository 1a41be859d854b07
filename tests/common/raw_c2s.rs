//! A c2s client that writes raw XML text: for stanzas no well-behaved library would
//! build (thousands of levels deep, 16 KB names). It starts TLS (the test Prosody
//! requires it), logs in with SASL PLAIN inside it, binds, and then only writes
//! strings and searches what came back.

use std::time::Duration;

use base64::Engine;
use dsps::client::c2s::socket::Socket;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::prosody::Prosody;

/// A logged-in raw connection.
pub struct RawC2s {
    tcp: Socket,
    /// Everything received since the last [`RawC2s::wait_for`] match.
    seen: String,
    /// The bound full JID.
    pub jid: String,
}

impl RawC2s {
    /// Logs `user` in on `prosody` as `user@localhost/raw`.
    pub async fn login(prosody: &Prosody, user: &str, password: &str) -> RawC2s {
        let tcp = TcpStream::connect(&prosody.c2s_addr)
            .await
            .expect("c2s connect");
        let mut c = RawC2s {
            tcp: Socket::Plain(tcp),
            seen: String::new(),
            jid: format!("{user}@{}/raw", prosody.domain),
        };
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0'>",
            prosody.domain
        );
        c.send(&header).await;
        c.wait_for("</stream:features>").await;
        c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        c.wait_for("<proceed").await;
        c.wait_for(">").await;
        let Socket::Plain(tcp) = c.tcp else {
            unreachable!("TLS starts once")
        };
        let config = dsps::client::tls::trust_pem(&prosody.cert).expect("test certificate");
        let name = ServerName::try_from(prosody.domain.clone()).expect("server name");
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .expect("TLS with the test Prosody");
        c.tcp = Socket::Tls(Box::new(tls));
        c.send(&header).await;
        c.wait_for("</stream:features>").await;
        let creds =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        c.wait_for("<success").await;
        c.send(&header).await;
        c.wait_for("</stream:features>").await;
        c.send(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>raw</resource></bind></iq>",
        )
        .await;
        c.wait_for("</bind>").await;
        c
    }

    /// Writes `xml` as it is.
    pub async fn send(&mut self, xml: &str) {
        self.tcp.write_all(xml.as_bytes()).await.expect("c2s write");
    }

    /// Reads until `needle` has arrived (bounded by 10 s, else panics); returns
    /// everything up to and including it and forgets it.
    pub async fn wait_for(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(at) = self.seen.find(needle) {
                let rest = self.seen.split_off(at + needle.len());
                return std::mem::replace(&mut self.seen, rest);
            }
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("never received {needle:?}; got {:?}", self.seen))
                .expect("c2s read");
            assert!(
                n > 0,
                "server closed the stream waiting for {needle:?}: {:?}",
                self.seen
            );
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Waits for the reply to iq `id` (bounded) and returns its whole text.
    pub async fn reply_to(&mut self, id: &str) -> String {
        let upto = self.wait_for(&format!("id='{id}'")).await;
        let start = upto.rfind("<iq").expect("an iq carries the id");
        let mut reply = upto[start..].to_string();
        // The rest of the stanza: up to its end tag (or a self-closed head).
        if !reply.ends_with("/>") {
            reply.push_str(&self.wait_for("</iq>").await);
        }
        reply
    }
}
