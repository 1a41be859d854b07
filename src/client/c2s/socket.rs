//! The c2s client's byte stream: plain TCP until STARTTLS, TLS after it.
//!
//! One type for both, so the XML stream (`XmlConn`) and the driver are written once.

use tokio::net::TcpStream;

/// TCP, or TLS over TCP (the same type as a client's relay connection).
pub type Socket = crate::maybe_tls::MaybeTls<tokio_rustls::client::TlsStream<TcpStream>>;
