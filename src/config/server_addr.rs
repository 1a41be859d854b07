//! `component.server`: the XMPP server's component port as `host:port`, where host is a
//! name or an address. Only the form is checked here; the name is resolved each time
//! the component link dials (`xmpp::dial`), so a server that moves to a new address is
//! found on the next reconnect without restarting dsps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::core::relay_policy::Pin;

/// `host:port` of the XMPP server's component port: `localhost:5347`,
/// `xmpp.example.org:5347`, `127.0.0.1:5347` or `[::1]:5347`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerAddr {
    /// A DNS name or an IP address (an IPv6 one without brackets).
    pub host: String,
    /// The port, never 0.
    pub port: u16,
}

impl FromStr for ServerAddr {
    type Err = String;

    /// ```
    /// use dsps::config::ServerAddr;
    /// let a: ServerAddr = "[::1]:5347".parse().unwrap();
    /// assert_eq!((a.host.as_str(), a.port), ("::1", 5347));
    /// assert_eq!(a.to_string(), "[::1]:5347");
    /// assert!("localhost".parse::<ServerAddr>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<ServerAddr, String> {
        // The same syntax as a relay pin (`[relay.targets]`): one parser for both.
        let pin = Pin::parse(s).map_err(|_| {
            format!("invalid server address {s:?}: expected host:port, e.g. localhost:5347, xmpp.example.org:5347 or [::1]:5347")
        })?;
        Ok(ServerAddr {
            host: pin.host,
            port: pin.port,
        })
    }
}

impl TryFrom<String> for ServerAddr {
    type Error = String;

    fn try_from(s: String) -> Result<ServerAddr, String> {
        s.parse()
    }
}

impl From<ServerAddr> for String {
    fn from(a: ServerAddr) -> String {
        a.to_string()
    }
}

/// `host:port`, with brackets around an IPv6 host: what `tokio::net::lookup_host` takes.
impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
