//! Dialing the XMPP server's component port: `component.server` is a name or an
//! address, resolved afresh on every attempt (a server that moved is found on the
//! next reconnect), and each address it yields is tried in turn.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::logging::redact;

/// Why no connection to the server could be made. One line, naming what was dialed.
#[derive(Debug)]
pub enum DialError {
    /// The name did not resolve.
    Resolve {
        /// `host:port` as configured.
        server: String,
        /// The resolver's words.
        error: io::Error,
    },
    /// The name resolved to no address at all.
    NoAddress {
        /// `host:port` as configured.
        server: String,
    },
    /// Every address refused or failed; the error is the last one's.
    Connect {
        /// `host:port` as configured.
        server: String,
        /// The addresses tried, in order.
        tried: Vec<SocketAddr>,
        /// Why the last one failed.
        error: io::Error,
    },
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Resolve { server, error } => {
                write!(f, "cannot resolve {}: {error}", redact::authority(server))
            }
            DialError::NoAddress { server } => {
                write!(f, "{} resolves to no address", redact::authority(server))
            }
            DialError::Connect {
                server,
                tried,
                error,
            } => {
                // Logged and shown in systemd's status: addresses as `[log]` says.
                let tried: Vec<String> =
                    tried.iter().map(|a| redact::addr(*a).to_string()).collect();
                write!(
                    f,
                    "cannot connect to {} ({}): {error}",
                    redact::authority(server),
                    tried.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for DialError {}

/// Resolves `server` (`host:port`, `[v6]:port` for an IPv6 address) and connects to
/// the first of its addresses that accepts. The caller bounds the whole in time.
pub async fn connect(server: &str) -> Result<TcpStream, DialError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(server)
        .await
        .map_err(|error| DialError::Resolve {
            server: server.to_owned(),
            error,
        })?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(error) => Err(DialError::Connect {
            server: server.to_owned(),
            tried: addrs,
            error,
        }),
        None => Err(DialError::NoAddress {
            server: server.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_is_resolved_and_dialed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // `localhost` comes from the hosts file: no DNS server is asked.
        let tcp = connect(&format!("localhost:{port}")).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(tcp.local_addr().unwrap(), accepted.peer_addr().unwrap());
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_server_and_the_addresses_tried() {
        // A port just freed: nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = connect(&format!("127.0.0.1:{port}")).await.unwrap_err();
        assert!(matches!(e, DialError::Connect { .. }), "{e:?}");
        let message = e.to_string();
        assert!(
            message.starts_with(&format!(
                "cannot connect to 127.0.0.1:{port} (127.0.0.1:{port}): "
            )),
            "{message}"
        );
    }
}
