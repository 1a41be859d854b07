//! What a relay connection may send before the hello line (PROFILE 3): the HTTP
//! request on the `[http]` listener (XEP "Connecting to DSPS via HTTP method") and
//! `starttls` with the TLS handshake (XEP "Connecting to DSPS via SSL method"),
//! in that order, each optional. Afterwards the connection is a [`RelayIo`], plain
//! or TLS, and the default handshake follows on it (`conn`).
//!
//! Everything here runs inside the connection's handshake timeout, in its own task.
//! The plaintext bytes read before the TLS handshake go through the same buffer as
//! the handshake lines; whatever of the ClientHello was read with `starttls\n` is
//! handed back to rustls first ([`Rewind`]), so a client may send both at once.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tracing::debug;

use super::conn::read_line;
use crate::proto::handshake::{parse_first_line, FirstLine};
use crate::proto::http_preamble::{
    PreambleDecoder, MAX_PREAMBLE, OK_RESPONSE, UNAUTHORIZED_RESPONSE,
};

/// After a 401, how long we keep reading (and dropping) what the client still
/// sends, so the close does not reset the connection under the reply.
pub const LINGER_TIME: Duration = Duration::from_secs(1);
/// After a 401, the most bytes read and dropped that way.
pub const LINGER_BYTES: usize = 64 * 1024;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The relay port: `starttls` or the hello line first.
    Relay,
    /// The `[http]` listener: an HTTP request first.
    Http,
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entry::Relay => "relay",
            Entry::Http => "http",
        })
    }
}

/// A relay connection after its preamble: what the handshake and data run on
/// (plain, or TLS after `starttls`).
pub type RelayIo = crate::maybe_tls::MaybeTls<tokio_rustls::server::TlsStream<Rewind<TcpStream>>>;

/// Runs the preamble of a connection that came in on `entry`. Returns the
/// connection and, unless TLS started (the hello then comes inside it), the first
/// line after the preamble, unparsed. A malformed HTTP request is answered 401
/// before the error is returned.
pub async fn open(
    entry: Entry,
    mut tcp: TcpStream,
    buf: &mut BytesMut,
    tls: Option<&Arc<rustls::ServerConfig>>,
) -> Result<(RelayIo, Option<String>), String> {
    if entry == Entry::Http {
        http_request(&mut tcp, buf).await?;
    }
    let line = read_line(&mut tcp, buf).await?;
    match parse_first_line(&line) {
        Ok(FirstLine::StartTls) => {}
        Ok(FirstLine::HttpGet) => {
            return Err(match entry {
                Entry::Relay => "an HTTP request on the relay port (it belongs on [http] listen)",
                Entry::Http => "a second HTTP request",
            }
            .into())
        }
        // The handshake parses it (and says what is wrong with it).
        _ => return Ok((RelayIo::Plain(tcp), Some(line))),
    }
    let Some(config) = tls else {
        return Err("starttls refused: this DSPS has no [tls] certificate configured".into());
    };
    // Bytes behind `starttls\n` are the start of the ClientHello.
    let early = buf.split();
    let stream = tokio_rustls::TlsAcceptor::from(config.clone())
        .accept(Rewind::new(early, tcp))
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    if let Some(v) = stream.get_ref().1.protocol_version() {
        debug!(version = ?v, "TLS established");
    }
    Ok((RelayIo::Tls(Box::new(stream)), None))
}

/// Reads the HTTP request and answers it: 200 when valid, else 401 and an error.
async fn http_request(tcp: &mut TcpStream, buf: &mut BytesMut) -> Result<(), String> {
    let mut decoder = PreambleDecoder::new();
    let verdict = loop {
        match decoder.decode(buf) {
            Ok(Some(_)) => break Ok(()),
            Err(e) => break Err(e),
            Ok(None) => {}
        }
        // The decoder refuses at MAX_PREAMBLE, so this never reads past it.
        let room = MAX_PREAMBLE.saturating_sub(buf.len()).max(1);
        match tcp.read_buf(&mut (&mut *buf).limit(room)).await {
            Ok(0) => break decoder.decode_eof(buf).map(|_| ()),
            Ok(_) => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    };
    match verdict {
        Ok(()) => tcp
            .write_all(OK_RESPONSE.as_bytes())
            .await
            .map_err(|e| format!("write failed: {e}")),
        Err(e) => {
            // Best effort: the peer may be gone already.
            let _ = tcp.write_all(UNAUTHORIZED_RESPONSE.as_bytes()).await;
            let _ = tcp.shutdown().await;
            // Lingering close: closing a socket with unread input sends a reset,
            // which can destroy the 401 before the client reads it. Read what is
            // still coming (bounded) so the client sees the reply, then EOF.
            let linger = async {
                let mut sink = [0u8; 4096];
                let mut left = LINGER_BYTES;
                while left > 0 {
                    match tcp.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => left = left.saturating_sub(n),
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER_TIME, linger).await;
            Err(format!("{e}; answered HTTP 401"))
        }
    }
}

/// A stream that yields `prefix` before reading from `inner`; writes go straight
/// to `inner`.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: BytesMut,
    inner: S,
}

impl<S> Rewind<S> {
    /// `inner`, with `prefix` read first.
    pub fn new(prefix: BytesMut, inner: S) -> Self {
        Rewind { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(out.remaining());
            out.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewind_yields_the_prefix_then_the_stream() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.unwrap();
        drop(a);
        let mut r = Rewind::new(BytesMut::from(&b"hello"[..]), b);
        let mut got = String::new();
        r.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "hello world");
    }
}
