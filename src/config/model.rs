//! The configuration as the rest of the code reads it: every default filled in and
//! every value checked. Built by [`super::validate`] from the file's serde form
//! ([`super::file`]); `Limits`, `HttpConfig`, `TlsConfig` and `MetricsConfig` are read
//! as written.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::server_addr::ServerAddr;
use crate::core::relay_policy::RelayPolicy;

/// The whole configuration, with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[component]`: the XEP-0114 link to the XMPP server.
    pub component: ComponentConfig,
    /// `[relay]`: the TCP data port.
    pub relay: RelayConfig,
    /// `[http]`: the HTTP preamble listener, if enabled.
    pub http: Option<HttpConfig>,
    /// `[tls]`: starttls on the relay port, if enabled.
    pub tls: Option<TlsConfig>,
    /// `[metrics]`: the Prometheus endpoint, if enabled.
    pub metrics: Option<MetricsConfig>,
    /// `[timeouts]`.
    pub timeouts: Timeouts,
    /// `[limits]`.
    pub limits: Limits,
    /// `[log]`.
    pub log: LogConfig,
    /// `[admin] jids`: the bare JIDs (lower case) that may run the ad-hoc admin commands.
    pub admins: Vec<String>,
}

/// `[log]`: how log lines are written (the level is `RUST_LOG`'s at start; the admin
/// command "Set log level" changes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub struct LogConfig {
    /// Text lines or JSON objects (default text).
    pub format: LogFormat,
    /// Whether IP addresses appear in clear (default true); false hashes them.
    pub ip_addresses: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            ip_addresses: true,
        }
    }
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (colour only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

/// `[limits]`: bounds on what clients can make the service hold or repeat, so that no
/// one account can exhaust its memory or make it send a stanza the XMPP server refuses.
/// Requests past the counts of streams and seats get 503 (the service is full); requests
/// carrying more than the size limits allow get 400 (the request is at fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub struct Limits {
    /// Live streams in all (default 10000).
    #[serde(deserialize_with = "nonzero")]
    pub streams: usize,
    /// Live streams created by one full JID (default 64).
    #[serde(deserialize_with = "nonzero")]
    pub streams_per_jid: usize,
    /// Live streams created by all resources of one account, the bare JID (default
    /// 256): a client can bind any number of resources, so the per-JID count alone
    /// does not bound what one account holds.
    #[serde(deserialize_with = "nonzero")]
    pub streams_per_account: usize,
    /// Seats (invited, waiting or connected peers) in one stream (default 1024).
    #[serde(deserialize_with = "nonzero")]
    pub seats_per_stream: usize,
    /// Most bytes of one `<comment/>`, serialised as dsps writes it, plus
    /// `proto::limits::NODE_CHARGE` per element, attribute and text node (default 4096).
    #[serde(deserialize_with = "nonzero")]
    pub comment_bytes: usize,
    /// Most `<comment/>` elements in one request (default 16).
    #[serde(deserialize_with = "nonzero")]
    pub comments_per_request: usize,
    /// Most comment bytes one stream keeps, all its create comments together (default 16384).
    #[serde(deserialize_with = "nonzero")]
    pub stream_comment_bytes: usize,
    /// Most `<peer/>` elements in one `admin` request (default 64).
    #[serde(deserialize_with = "nonzero")]
    pub peers_per_admin: usize,
    /// Most bytes of any attribute value or JID dsps stores or repeats (default 3072:
    /// a JID is at most 3071 bytes, three parts of 1023 and two separators).
    #[serde(deserialize_with = "nonzero")]
    pub attribute_bytes: usize,
    /// Bytes per second of replies (those over 2 KiB) one account may be sent
    /// (default 524288); the burst is twice that, and at least two
    /// `max_stanza_size` replies. Past it a reply becomes `500 resource-constraint`.
    #[serde(deserialize_with = "nonzero")]
    pub reply_bytes_per_second: usize,
    /// The same for all accounts together (default 2097152), so that many accounts
    /// cannot fill the component link either.
    #[serde(deserialize_with = "nonzero")]
    pub reply_bytes_per_second_total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            streams: 10_000,
            streams_per_jid: 64,
            streams_per_account: 256,
            seats_per_stream: 1024,
            comment_bytes: 4096,
            comments_per_request: 16,
            stream_comment_bytes: 16 * 1024,
            peers_per_admin: 64,
            attribute_bytes: 3072,
            reply_bytes_per_second: 512 * 1024,
            reply_bytes_per_second_total: 2 * 1024 * 1024,
        }
    }
}

/// `[component]`: how we log in to the XMPP server.
#[derive(Clone, PartialEq, Eq)]
pub struct ComponentConfig {
    /// The component's domain, the bare DSPS JID (a plain domain, no `@` or `/`).
    pub jid: String,
    /// The XMPP server's component port.
    pub server: ServerAddr,
    /// The XEP-0114 shared secret.
    pub secret: String,
    /// Whether XEP-0092 version replies name the operating system (default false).
    pub version_os: bool,
    /// Deepest element nesting accepted in one inbound stanza (default 64).
    pub max_depth: usize,
    /// Most bytes of one inbound stanza, and of any one name, attribute value or
    /// text chunk in it (default 1 MiB).
    pub max_inbound_stanza_size: usize,
    /// Most bytes of any stanza dsps sends (default 262144); bigger ones are cut,
    /// refused or replaced by an error (see `proto::outbound`).
    pub max_stanza_size: usize,
}

// Hand-written so that logging the config never leaks the secret.
impl fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentConfig")
            .field("jid", &self.jid)
            .field("server", &self.server)
            .field("secret", &"<redacted>")
            .field("version_os", &self.version_os)
            .field("max_depth", &self.max_depth)
            .field("max_inbound_stanza_size", &self.max_inbound_stanza_size)
            .field("max_stanza_size", &self.max_stanza_size)
            .finish()
    }
}

/// `[relay]`: the TCP port that carries the blocks (PROFILE 2-7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The `host` advertised in create results; defaults to the component JID.
    pub host: String,
    /// The `port` advertised in create results; defaults to the listen port.
    ///
    /// It is 0 only when `listen` has port 0 and no `port` is set (tests); whoever binds the
    /// listener must then advertise the port it actually got.
    pub port: u16,
    /// Blocks a stream may hold for its slowest recipient before senders are paused
    /// (PROFILE 7). Blocks are shared between recipients, not copied, so a stream holds at
    /// most about `window * block_size` bytes of queued data: 1 MiB at the defaults. A full
    /// queue needs a sender and a slow recipient, so across the server the bound is roughly
    /// `max_connections / 2 * window * block_size` (about 5 GiB at the defaults, reached
    /// only if every stream is stalled); lower these on small machines.
    pub window: usize,
    /// Most data bytes the relay reads into one block (default 16384).
    pub block_size: usize,
    /// Relay connections open at once; further ones are closed at once with a log line (default 10000).
    pub max_connections: usize,
    /// Relay connections open at once from one source address (default 64). IPv6
    /// sources count per /64, since one host can use a whole /64.
    pub max_connections_per_ip: usize,
    /// Of those, connections still in their handshake (default 16), so idle sockets
    /// from one address cannot hold the relay port for everyone until the handshake
    /// timeout.
    pub max_pending_per_ip: usize,
    /// The TCP congestion control given to connections with a peer on this machine
    /// (`loopback_congestion`, default `reno`); `None` (set to `""`) keeps the
    /// system's. Peers elsewhere always keep the system's (`relay::tcp_options`).
    pub loopback_congestion: Option<String>,
    /// Where relay chains may dial (`allow_targets`, `[relay.targets]`); empty by
    /// default, which turns relay chains off (PROFILE 23).
    pub policy: RelayPolicy,
}

/// `[http]`: a second listener whose connections start with an HTTP request (PROFILE 3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct HttpConfig {
    /// Where to listen (the XEP suggests port 80).
    #[serde(deserialize_with = "super::file::socket_addr")]
    pub listen: SocketAddr,
}

/// `[metrics]`: the Prometheus text endpoint (`GET /metrics`). Present means on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct MetricsConfig {
    /// Where it listens (default `127.0.0.1:9090`). Another address than loopback
    /// is allowed, and warned about at start-up: the counters are not secret, but
    /// say how busy the service is to whoever can reach the port.
    #[serde(
        default = "super::defaults::metrics_listen",
        deserialize_with = "super::file::socket_addr"
    )]
    pub listen: SocketAddr,
}

/// `[tls]`: certificate and key for `starttls` on the relay port (PROFILE 3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct TlsConfig {
    /// PEM certificate chain. [`Config::load`] makes relative paths relative to the config
    /// file's directory; [`Config::parse`] leaves them as written.
    pub cert: PathBuf,
    /// PEM private key, same path rule as `cert`.
    pub key: PathBuf,
}

/// `[timeouts]`. `None` means no limit (configured as `0`, PROFILE 13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// waitdefault: how long a seat waits for its peer to connect (default 60 s).
    pub wait: Option<Duration>,
    /// expiredefault: how long an invitation waits for its answer (default 120 s).
    pub expire: Option<Duration>,
    /// How long a relay connection may take for its preamble and handshake (default 10 s).
    /// Never unlimited: it is what stops an unauthenticated peer holding a task open.
    pub handshake: Duration,
    /// Bound on the graceful drain after SIGTERM/SIGINT (default 10 s): delivering
    /// what the relay has read, the drop notices and closing the XMPP stream.
    pub drain: Duration,
}

impl Timeouts {
    /// `wait` in milliseconds as the protocol writes it (`waitdefault`), 0 for no limit.
    pub fn wait_ms(&self) -> u64 {
        limit_ms(self.wait)
    }

    /// `expire` in milliseconds as the protocol writes it (`expiredefault`), 0 for no limit.
    pub fn expire_ms(&self) -> u64 {
        limit_ms(self.expire)
    }
}

fn limit_ms(limit: Option<Duration>) -> u64 {
    // Configured in whole milliseconds as a u64, so this never saturates in practice.
    limit.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A count that must be at least 1, read as `NonZeroUsize` so that serde names the key
/// and the problem, kept as `usize` because that is what the code compares against.
fn nonzero<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    NonZeroUsize::deserialize(d).map(NonZeroUsize::get)
}
