//! One XML stream over any byte transport (TCP today, TLS later): writes our header,
//! reads through the bounded [`StanzaReader`], writes elements with minidom's
//! serialiser. Both the component link and the c2s client run on it, so no element
//! tree in this crate comes from an unbounded parser.
//!
//! tokio-xmpp's `XmlStream` is not used because its parser's limits cannot be set
//! (see [`super::reader`]).

use std::collections::VecDeque;

use minidom::Element;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::warn;

use super::reader::{Inbound, ReaderLimits, StanzaReader, NS_STREAMS};

/// Bytes asked of the transport per read.
const READ_CHUNK: usize = 64 * 1024;

/// Why a stream stopped being readable.
#[derive(Debug)]
pub enum StreamDown {
    /// The transport failed.
    Io(std::io::Error),
    /// The other side closed the connection.
    Eof,
    /// What the other side sent cannot be parsed further.
    Xml(String),
}

impl std::fmt::Display for StreamDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamDown::Io(e) => write!(f, "{e}"),
            StreamDown::Eof => f.write_str("connection closed by the server"),
            StreamDown::Xml(e) => write!(f, "unreadable stream: {e}"),
        }
    }
}

/// Our stream header in default namespace `ns`, addressed `to`; `version` adds
/// `version='1.0'` (RFC 6120 c2s; XEP-0114 streams have none).
pub fn header(ns: &str, to: &str, version: bool) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{ns}' xmlns:stream='{NS_STREAMS}' to='{}'{}>",
        escape_attr(to),
        if version { " version='1.0'" } else { "" }
    )
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// An XML stream on transport `S`.
pub struct XmlConn<S> {
    io: S,
    limits: ReaderLimits,
    reader: StanzaReader,
    ready: VecDeque<Inbound>,
    /// Set when the stream became unreadable after the items in `ready`.
    failure: Option<String>,
    chunk: Vec<u8>,
    out: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> XmlConn<S> {
    /// A stream on `io` whose stanzas are read within `limits`.
    pub fn new(io: S, limits: ReaderLimits) -> Self {
        XmlConn {
            io,
            limits,
            reader: StanzaReader::new(limits),
            ready: VecDeque::new(),
            failure: None,
            chunk: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Writes `header` and waits for the other side's; returns its stream id. Also
    /// the restart after SASL (RFC 6120 §6.4.6): the reader starts afresh.
    pub async fn open(&mut self, header: &str) -> Result<Option<String>, StreamDown> {
        self.reader = StanzaReader::new(self.limits);
        self.ready.clear();
        self.failure = None;
        self.io
            .write_all(header.as_bytes())
            .await
            .map_err(StreamDown::Io)?;
        match self.next().await? {
            Inbound::Header { id } => Ok(id),
            other => Err(StreamDown::Xml(format!(
                "expected a stream header, got {other:?}"
            ))),
        }
    }

    /// The next item. Cancel safe: a read that completes is parsed before the next
    /// await, so nothing read is lost.
    pub async fn next(&mut self) -> Result<Inbound, StreamDown> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(item);
            }
            if let Some(why) = self.failure.take() {
                return Err(StreamDown::Xml(why));
            }
            self.chunk.resize(READ_CHUNK, 0);
            let n = self
                .io
                .read(&mut self.chunk)
                .await
                .map_err(StreamDown::Io)?;
            if n == 0 {
                return Err(StreamDown::Eof);
            }
            let mut items = Vec::new();
            let fed = self.reader.feed(&self.chunk[..n], &mut items);
            self.ready.extend(items);
            if let Err(e) = fed {
                // Deliver what was complete before the failure, then fail.
                self.failure = Some(e.0);
            }
        }
    }

    /// Queues a stanza for [`XmlConn::flush`].
    pub fn queue(&mut self, e: &Element) {
        // Writing to a Vec cannot fail for an element we hold; log rather than panic.
        if let Err(err) = e.write_to(&mut self.out) {
            warn!("stanza not serialisable, dropped: {err}");
        }
    }

    /// Writes what is queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let r = self.io.write_all(&self.out).await;
        self.out.clear();
        r
    }

    /// Sends one stanza.
    pub async fn send(&mut self, e: &Element) -> std::io::Result<()> {
        self.queue(e);
        self.flush().await
    }

    /// Sends the stream footer and closes our sending side.
    pub async fn close(&mut self) -> std::io::Result<()> {
        self.io.write_all(b"</stream:stream>").await?;
        self.io.shutdown().await
    }

    /// The transport, for a TLS upgrade.
    pub fn into_inner(self) -> S {
        self.io
    }

    /// The transport, to look at.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}
