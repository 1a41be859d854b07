//! How a client reaches the relay (XEP "Connecting to DSPS via default method",
//! "… via HTTP method", "… via SSL method"): dial, then optionally the HTTP
//! preamble, then optionally `starttls` and TLS, then the default handshake.
//!
//! ```text
//! let tls = trust_pem(Path::new("cert.pem"))?;          // the server's cert or CA
//! let opts = ConnectOptions { via: Via::HttpTls, tls: Some(tls),
//!                             addr: Some("dsps.example.org:80".into()), ..Default::default() };
//! let conn = dsps.connect_via(&seat, &opts).await?;        // RelayConn
//! let (blocks, mut wr) = conn.into_split();
//! ```
//!
//! Where to dial: `addr` if given; otherwise the create result's `host` and `port`
//! for the default and SSL methods, and `host` port 80 for the HTTP methods (the
//! XEP's "connect to DSPS on port 80"; the create result names no HTTP port). An
//! IPv6 `host` (`::1`) is dialled as `[::1]:port`. TLS checks the certificate
//! against `server_name`, by default the advertised `host`.

use std::io;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::session::{
    BlockReader, ClientError, DspsClient, Seat, DEFAULT_MAX_BLOCK, REQUEST_TIMEOUT,
};
pub use super::tls::trust_pem;
use crate::proto::handshake::{hello_line, take_line};
use crate::proto::http_preamble::PATH;
use crate::proto::query;

/// The port the XEP names for the HTTP method.
pub const DEFAULT_HTTP_PORT: u16 = 80;
/// Most bytes of the HTTP reply a client reads before giving up on it.
pub const MAX_HTTP_REPLY: usize = 8192;

/// Which connection method to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// The default method: the hello line straight away.
    #[default]
    Default,
    /// The HTTP preamble, then the default handshake.
    Http,
    /// `starttls`, TLS, then the default handshake inside it.
    Tls,
    /// The HTTP preamble, then `starttls` and TLS.
    HttpTls,
}

impl Via {
    /// Whether the HTTP preamble is sent.
    pub fn http(self) -> bool {
        matches!(self, Via::Http | Via::HttpTls)
    }

    /// Whether TLS is started.
    pub fn tls(self) -> bool {
        matches!(self, Via::Tls | Via::HttpTls)
    }
}

impl FromStr for Via {
    type Err = String;
    /// `default`, `http`, `tls` or `http+tls`.
    fn from_str(s: &str) -> Result<Via, String> {
        match s {
            "default" | "plain" => Ok(Via::Default),
            "http" => Ok(Via::Http),
            "tls" | "ssl" => Ok(Via::Tls),
            "http+tls" | "http+ssl" => Ok(Via::HttpTls),
            other => Err(format!(
                "unknown method {other:?} (expected default, http, tls or http+tls)"
            )),
        }
    }
}

/// How [`DspsClient::connect_via`] connects.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The method.
    pub via: Via,
    /// `host:port` to dial instead of the advertised address (see the module doc).
    pub addr: Option<String>,
    /// Socket receive buffer in bytes (a small one feels back-pressure sooner).
    pub recv_buffer: Option<u32>,
    /// The TLS client config; required for [`Via::Tls`] and [`Via::HttpTls`]. See
    /// [`trust_pem`].
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The name the server's certificate must carry; default: the advertised host.
    pub server_name: Option<String>,
}

/// `host:port`, with an IPv6 literal host in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
fn host_of(target: &str) -> &str {
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A relay connection, plain (the default or HTTP method) or TLS (after
/// `starttls`), after the handshake.
pub type RelayStream = crate::maybe_tls::MaybeTls<tokio_rustls::client::TlsStream<TcpStream>>;

/// A relay connection after a successful handshake, by any method.
#[derive(Debug)]
pub struct RelayConn {
    /// Write raw bytes to it (flush or shut down after the last: TLS may hold
    /// some back), read framed blocks from it.
    pub stream: RelayStream,
    /// Bytes already read past the handshake (normally none).
    pub buffered: BytesMut,
}

impl RelayConn {
    /// Splits into a block reader and the raw write half.
    pub fn into_split(
        self,
    ) -> (
        BlockReader<tokio::io::ReadHalf<RelayStream>>,
        tokio::io::WriteHalf<RelayStream>,
    ) {
        let (rd, wr) = tokio::io::split(self.stream);
        (BlockReader::new(rd, self.buffered, DEFAULT_MAX_BLOCK), wr)
    }
}

/// Opens a TCP connection to `target` (bounded by [`REQUEST_TIMEOUT`]), with
/// TCP_NODELAY and the receive buffer asked for.
pub(crate) async fn dial(target: &str, recv_buffer: Option<u32>) -> Result<TcpStream, ClientError> {
    let dial = async {
        let addr = tokio::net::lookup_host(target)
            .await?
            .next()
            .ok_or_else(|| io::Error::other(format!("{target} does not resolve")))?;
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(n) = recv_buffer {
            socket.set_recv_buffer_size(n)?;
        }
        socket.connect(addr).await
    };
    let tcp = tokio::time::timeout(REQUEST_TIMEOUT, dial)
        .await
        .map_err(|_| ClientError::Timeout("connecting to the relay port"))??;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// The default handshake on `io` for `seat` (hello, KEY1, the `auth` iq, KEY2).
/// Returns what was read past KEY1 (normally nothing).
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    dsps: &DspsClient,
    seat: &Seat,
    io: &mut S,
    mut buf: BytesMut,
) -> Result<BytesMut, ClientError> {
    io.write_all(hello_line(dsps.xmpp().jid(), &seat.peer_jid).as_bytes())
        .await?;
    io.flush().await?;
    let key1 = tokio::time::timeout(REQUEST_TIMEOUT, read_line(io, &mut buf))
        .await
        .map_err(|_| ClientError::Timeout("reading KEY1"))??;
    let iq = dsps
        .request("get", &seat.peer_jid, query::auth(&key1))
        .await?;
    let key2 = iq
        .payload
        .as_ref()
        .and_then(query::auth_key)
        .ok_or_else(|| ClientError::Protocol("auth result without a key".into()))?;
    io.write_all(format!("{key2}\n").as_bytes()).await?;
    io.flush().await?;
    Ok(buf)
}

async fn read_line<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
) -> Result<String, ClientError> {
    loop {
        if let Some(line) = take_line(buf).map_err(|e| ClientError::Protocol(e.to_string()))? {
            return Ok(line);
        }
        if io.read_buf(buf).await? == 0 {
            return Err(ClientError::Protocol(
                "the DSPS closed the connection during the handshake (unknown pair?)".into(),
            ));
        }
    }
}

/// Sends the HTTP request and reads the reply up to its empty line; anything but
/// a 200 is an error naming the status line.
async fn http_preamble(
    tcp: &mut TcpStream,
    host: &str,
    buf: &mut BytesMut,
) -> Result<(), ClientError> {
    let request = format!("GET {PATH} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let reply = async {
        let status = read_line(tcp, buf).await?;
        let ok = status
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.split(' ').nth(1))
            == Some("200");
        if !ok {
            return Err(ClientError::Protocol(format!(
                "the relay refused the HTTP request: {status:?}"
            )));
        }
        let mut seen = status.len();
        loop {
            let line = read_line(tcp, buf).await?;
            seen += line.len() + 1;
            if line.is_empty() {
                return Ok(());
            }
            if seen > MAX_HTTP_REPLY {
                return Err(ClientError::Protocol("HTTP reply too long".into()));
            }
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, reply)
        .await
        .map_err(|_| ClientError::Timeout("reading the HTTP reply"))?
}

impl DspsClient {
    /// Connects to the relay for `seat` by the method in `opts` and runs the
    /// handshake; see the module doc for where it dials.
    pub async fn connect_via(
        &self,
        seat: &Seat,
        opts: &ConnectOptions,
    ) -> Result<RelayConn, ClientError> {
        let target = match &opts.addr {
            Some(a) => a.clone(),
            None if opts.via.http() => host_port(&seat.info.host, DEFAULT_HTTP_PORT),
            None => host_port(&seat.info.host, seat.info.port),
        };
        let mut tcp = dial(&target, opts.recv_buffer).await?;
        let mut buf = BytesMut::with_capacity(256);
        if opts.via.http() {
            http_preamble(&mut tcp, host_of(&target), &mut buf).await?;
        }
        if !opts.via.tls() {
            let buffered = handshake(self, seat, &mut tcp, buf).await?;
            return Ok(RelayConn {
                stream: RelayStream::Plain(tcp),
                buffered,
            });
        }
        if !buf.is_empty() {
            return Err(ClientError::Protocol(
                "the relay sent data before the TLS handshake".into(),
            ));
        }
        let config = opts.tls.clone().ok_or_else(|| {
            ClientError::Protocol("TLS asked for without a TLS client config".into())
        })?;
        let name = opts.server_name.as_deref().unwrap_or(&seat.info.host);
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| ClientError::Protocol(format!("TLS server name {name:?}: {e}")))?;
        tcp.write_all(b"starttls\n").await?;
        let tls = tokio::time::timeout(
            REQUEST_TIMEOUT,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| ClientError::Timeout("the TLS handshake"))??;
        let mut stream = RelayStream::Tls(Box::new(tls));
        let buffered = handshake(self, seat, &mut stream, buf).await?;
        Ok(RelayConn { stream, buffered })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_and_ipv6_hosts_are_bracketed() {
        assert_eq!("http+tls".parse::<Via>(), Ok(Via::HttpTls));
        assert_eq!("tls".parse::<Via>(), Ok(Via::Tls));
        assert!("ftp".parse::<Via>().is_err());
        assert_eq!(host_port("::1", 5290), "[::1]:5290");
        assert_eq!(host_port("127.0.0.1", 80), "127.0.0.1:80");
        assert_eq!(host_port("dsps.example.org", 80), "dsps.example.org:80");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("dsps.example.org:80"), "dsps.example.org");
    }
}
