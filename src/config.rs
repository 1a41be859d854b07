//! The operator's TOML configuration: parsing, defaults and validation, and nothing else
//! (no sockets are bound and no files but the config itself are read here).
//!
//! ```toml
//! [component]
//! jid = "dsps.localhost"        # component domain (required)
//! server = "127.0.0.1:5347"     # the XMPP server's component port (required, ip:port)
//! secret = "s3cret"             # XEP-0114 shared secret (required)
//! version_os = false            # reveal the OS in XEP-0092 replies (default false)
//! max_depth = 64                # deepest element nesting accepted in one inbound stanza
//! max_inbound_stanza_size = 1048576  # most bytes of one inbound stanza (and of any name/value)
//! max_stanza_size = 262144      # most bytes of any stanza dsps sends (4096 to 524287)
//! [relay]
//! listen = "0.0.0.0:5290"       # TCP data port (required, ip:port; "[::]:5290" works too)
//! host = "dsps.example.org"     # advertised 'host' in create results (default: component.jid)
//! port = 5290                   # advertised 'port' (default: the listen port)
//! window = 64                   # blocks queued per stream before senders are paused
//! block_size = 16384            # most data bytes read into one block
//! max_connections = 10000       # relay connections open at once
//! max_connections_per_ip = 64   # of those, from one source address (IPv6: one /64)
//! max_pending_per_ip = 16       # of those, still in their handshake
//! allow_targets = ["dsps2.example.org", "127.0.0.1"]  # where relay chains may dial:
//!                               # domains, *.domains, IPs, CIDRs (default none: chains off)
//! [relay.targets]               # optional pins: the address a relay dials for a domain
//! "dsps2.example.org" = "192.0.2.7:5290"
//! [http]                        # optional: HTTP preamble listener (PROFILE 3)
//! listen = "0.0.0.0:80"
//! [tls]                         # optional: starttls on the relay port
//! cert = "cert.pem"             # relative paths are relative to the config file
//! key = "key.pem"
//! [limits]                      # optional: what one client can make the service hold
//! streams = 10000               # live streams in all
//! streams_per_jid = 64          # live streams one full JID has created
//! streams_per_account = 256     # live streams all resources of one bare JID have created
//! reply_bytes_per_second = 524288        # replies over 2 KiB one account may be sent per second
//! reply_bytes_per_second_total = 2097152 # the same for all accounts together
//! seats_per_stream = 1024       # peers (invited, waiting or connected) in one stream
//! comment_bytes = 4096          # most bytes of one <comment/> (+64 per node in it)
//! comments_per_request = 16     # most <comment/> elements in one request
//! stream_comment_bytes = 16384  # most comment bytes one stream keeps (create comments)
//! peers_per_admin = 64          # most <peer/> elements in one admin request
//! attribute_bytes = 3072        # most bytes of an attribute (or JID) dsps stores or repeats
//! [timeouts]                    # optional, milliseconds; 0 = no limit for wait/expire
//! wait = 60000                  # waitdefault
//! expire = 120000               # expiredefault
//! handshake = 10000             # a relay connection's preamble and handshake must end within this
//! drain = 10000                 # SIGTERM/SIGINT: deliver what was read, notify, close within this
//! ```
//!
//! Spec: XEP-0037 "Startup" (port 5290), "Stream administration" (`wait`, `expire`);
//! PROFILE 3, 7, 12, 13, 22. Every error is one line that names the key at fault, because the
//! operator reads it in a terminal or a journal, not in a debugger.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::relay_policy::{Pin, RelayPolicy, TargetRule};

/// The relay port the XEP names ("starts listening on port 5290").
pub const DEFAULT_RELAY_PORT: u16 = 5290;
/// Default `[relay] window`, in blocks.
pub const DEFAULT_WINDOW: usize = 64;
/// Default `[relay] block_size`, in bytes: big enough to amortise the header and the wake-up
/// per block, small enough that a slow recipient holds little memory.
pub const DEFAULT_BLOCK_SIZE: usize = 16 * 1024;
/// Largest accepted `[relay] block_size`, in bytes: blocks are buffered whole.
pub const MAX_BLOCK_SIZE: usize = 16 * 1024 * 1024;
/// Default `[relay] max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default `[timeouts] wait` (waitdefault), in milliseconds.
pub const DEFAULT_WAIT_MS: u64 = 60_000;
/// Default `[timeouts] expire` (expiredefault), in milliseconds.
pub const DEFAULT_EXPIRE_MS: u64 = 120_000;
/// Default `[timeouts] handshake`, in milliseconds.
pub const DEFAULT_HANDSHAKE_MS: u64 = 10_000;
/// Default `[component] max_depth`: real stanzas nest a dozen levels at most; 64
/// leaves room and keeps every recursive walk of an element tree shallow.
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Accepted `[component] max_depth` values (at most 1024 so that recursive
/// serialisation of the deepest tree stays far inside a worker's stack).
pub const MAX_DEPTH_RANGE: Range<usize> = 8..1025;
/// Default `[component] max_inbound_stanza_size`, in bytes: above the stanza limits
/// of Prosody (256 KiB c2s, 512 KiB s2s) and ejabberd, so whatever a server forwards
/// is read whole.
pub const DEFAULT_MAX_INBOUND_STANZA: usize = 1 << 20;
/// Accepted `[component] max_inbound_stanza_size` values, in bytes.
pub const MAX_INBOUND_STANZA_RANGE: Range<usize> = 16_384..(64 << 20) + 1;
/// Default `[component] max_stanza_size`, in bytes: half of Prosody's default
/// `component_stanza_size_limit`, so a stanza we send is never the one that makes the
/// XMPP server cut the link (notes/xmpp-component.md §5).
pub const DEFAULT_MAX_STANZA_SIZE: usize = 256 * 1024;
/// Smallest accepted `max_stanza_size`: below this not even an error reply with a long
/// JID and a long id would fit.
pub const MIN_MAX_STANZA_SIZE: usize = 4096;
/// Prosody's default `component_stanza_size_limit` (512 KiB); a stanza at or over it
/// makes Prosody close the component stream, so `max_stanza_size` must stay below.
pub const PROSODY_COMPONENT_STANZA_LIMIT: usize = 512 * 1024;
/// Bytes a stats reply needs besides the stream's comments and the four values in it
/// that are bounded by `attribute_bytes` (`from`, `to`, `id`, `minthroughput`): its
/// numeric attributes, names and features.
pub const STATS_REPLY_OVERHEAD: usize = 1024;
/// Default `[timeouts] drain`, in milliseconds.
pub const DEFAULT_DRAIN_MS: u64 = 10_000;
/// Default `[relay] max_connections_per_ip`: generous for one NAT's worth of users,
/// small next to the default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// Default `[relay] max_pending_per_ip`: a client needs one pending connection per
/// seat it is joining, and a legitimate handshake takes milliseconds.
pub const DEFAULT_MAX_PENDING_PER_IP: usize = 16;

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
    /// `[timeouts]`.
    pub timeouts: Timeouts,
    /// `[limits]`.
    pub limits: Limits,
}

/// `[limits]`: bounds on what clients can make the service hold or repeat, so that no
/// one account can exhaust its memory or make it send a stanza the XMPP server refuses.
/// Requests past the counts of streams and seats get 503 (the service is full); requests
/// carrying more than the size limits allow get 400 (the request is at fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Live streams in all (default 10000).
    pub streams: usize,
    /// Live streams created by one full JID (default 64).
    pub streams_per_jid: usize,
    /// Live streams created by all resources of one account, the bare JID (default
    /// 256): a client can bind any number of resources, so the per-JID count alone
    /// does not bound what one account holds.
    pub streams_per_account: usize,
    /// Seats (invited, waiting or connected peers) in one stream (default 1024).
    pub seats_per_stream: usize,
    /// Most bytes of one `<comment/>`, serialised as dsps writes it, plus
    /// `proto::limits::NODE_CHARGE` per element, attribute and text node (default 4096).
    pub comment_bytes: usize,
    /// Most `<comment/>` elements in one request (default 16).
    pub comments_per_request: usize,
    /// Most comment bytes one stream keeps, all its create comments together (default 16384).
    pub stream_comment_bytes: usize,
    /// Most `<peer/>` elements in one `admin` request (default 64).
    pub peers_per_admin: usize,
    /// Most bytes of any attribute value or JID dsps stores or repeats (default 3072:
    /// a JID is at most 3071 bytes, three parts of 1023 and two separators).
    pub attribute_bytes: usize,
    /// Bytes per second of replies (those over 2 KiB) one account may be sent
    /// (default 524288); the burst is twice that, and at least two
    /// `max_stanza_size` replies. Past it a reply becomes `500 resource-constraint`.
    pub reply_bytes_per_second: usize,
    /// The same for all accounts together (default 2097152), so that many accounts
    /// cannot fill the component link either.
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
    pub server: SocketAddr,
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
    /// Where relay chains may dial (`allow_targets`, `[relay.targets]`); empty by
    /// default, which turns relay chains off (PROFILE 23).
    pub policy: RelayPolicy,
}

/// `[http]`: a second listener whose connections start with an HTTP request (PROFILE 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where to listen (the XEP suggests port 80).
    pub listen: SocketAddr,
}

/// `[tls]`: certificate and key for `starttls` on the relay port (PROFILE 3).
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Why the configuration was refused. `Display` is one line naming the file or key at fault.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The path as given.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The text is not valid TOML.
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The TOML parser's complaint, on one line.
        message: String,
    },
    /// A key or section we do not know (often a typo).
    UnknownKey {
        /// Dotted path, e.g. `relay.windw`.
        key: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The keys allowed there, as the parser lists them.
        expected: String,
    },
    /// A required key is absent.
    MissingKey(&'static str),
    /// A key has a value of the wrong type or out of range.
    InvalidValue {
        /// Dotted path, e.g. `relay.listen`.
        key: String,
        /// What is wrong, e.g. `invalid socket address "x"`.
        message: String,
        /// 1-based line and column, when known.
        at: Option<(usize, usize)>,
    },
}

impl ConfigError {
    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::InvalidValue { key, .. } => {
                Some(key)
            }
            ConfigError::MissingKey(key) => Some(key),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }

    fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::InvalidValue {
            key: key.to_owned(),
            message: message.into(),
            at: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => {
                write!(f, "cannot read config file {}: {error}", path.display())
            }
            ConfigError::Syntax {
                line,
                column,
                message,
            } => write!(f, "invalid TOML at line {line}, column {column}: {message}"),
            ConfigError::UnknownKey {
                key,
                line,
                column,
                expected,
            } => {
                write!(f, "unknown key {key} at line {line}, column {column}")?;
                if !expected.is_empty() {
                    write!(f, " ({expected})")?;
                }
                Ok(())
            }
            ConfigError::MissingKey(key) => write!(f, "missing key {key}"),
            ConfigError::InvalidValue { key, message, at } => {
                write!(f, "{key}: {message}")?;
                if let Some((line, column)) = at {
                    write!(f, " (line {line}, column {column})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

// The file as written. Every leaf is optional so that a missing key is reported by its full
// dotted name by `resolve`, rather than by serde's bare field name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    component: RawComponent,
    #[serde(default)]
    relay: RawRelay,
    http: Option<RawHttp>,
    tls: Option<RawTls>,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    streams: Option<usize>,
    streams_per_jid: Option<usize>,
    streams_per_account: Option<usize>,
    seats_per_stream: Option<usize>,
    comment_bytes: Option<usize>,
    comments_per_request: Option<usize>,
    stream_comment_bytes: Option<usize>,
    peers_per_admin: Option<usize>,
    attribute_bytes: Option<usize>,
    reply_bytes_per_second: Option<usize>,
    reply_bytes_per_second_total: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    jid: Option<String>,
    server: Option<String>,
    secret: Option<String>,
    version_os: Option<bool>,
    max_depth: Option<usize>,
    max_inbound_stanza_size: Option<usize>,
    max_stanza_size: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    listen: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    window: Option<usize>,
    block_size: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_pending_per_ip: Option<usize>,
    allow_targets: Option<Vec<String>>,
    targets: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    wait: Option<u64>,
    expire: Option<u64>,
    handshake: Option<u64>,
    drain: Option<u64>,
}

impl Config {
    /// Reads and parses the file at `path`; relative TLS paths are taken relative to the
    /// file's directory, so the config works whatever directory the service starts in.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let mut config = Config::parse(&text)?;
        if let (Some(tls), Some(dir)) = (config.tls.as_mut(), path.parent()) {
            tls.cert = dir.join(&tls.cert);
            tls.key = dir.join(&tls.key);
        }
        Ok(config)
    }

    /// Parses configuration text, fills in defaults and validates it.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| from_toml_error(text, &e))?;
        resolve(raw)
    }
}

fn resolve(raw: RawConfig) -> Result<Config, ConfigError> {
    let c = raw.component;
    let jid = required(c.jid, "component.jid")?;
    check_domain(&jid)?;
    let server = socket_addr(required(c.server, "component.server")?, "component.server")?;
    let secret = required(c.secret, "component.secret")?;
    if secret.is_empty() {
        return Err(ConfigError::invalid(
            "component.secret",
            "must not be empty",
        ));
    }
    let max_stanza_size = c.max_stanza_size.unwrap_or(DEFAULT_MAX_STANZA_SIZE);
    if !(MIN_MAX_STANZA_SIZE..PROSODY_COMPONENT_STANZA_LIMIT).contains(&max_stanza_size) {
        return Err(ConfigError::invalid(
            "component.max_stanza_size",
            format!(
                "must be {MIN_MAX_STANZA_SIZE} to {} (below Prosody's component stanza limit)",
                PROSODY_COMPONENT_STANZA_LIMIT - 1
            ),
        ));
    }
    let component = ComponentConfig {
        jid,
        server,
        secret,
        version_os: c.version_os.unwrap_or(false),
        max_depth: in_range(
            c.max_depth.unwrap_or(DEFAULT_MAX_DEPTH),
            MAX_DEPTH_RANGE,
            "component.max_depth",
        )?,
        max_inbound_stanza_size: in_range(
            c.max_inbound_stanza_size
                .unwrap_or(DEFAULT_MAX_INBOUND_STANZA),
            MAX_INBOUND_STANZA_RANGE,
            "component.max_inbound_stanza_size",
        )?,
        max_stanza_size,
    };

    let r = raw.relay;
    let listen = socket_addr(required(r.listen, "relay.listen")?, "relay.listen")?;
    let host = match r.host {
        Some(host) if host.is_empty() || host.contains(|c: char| c.is_whitespace()) => {
            return Err(ConfigError::invalid(
                "relay.host",
                format!("invalid host name {host:?}"),
            ));
        }
        Some(host) => host,
        None => component.jid.clone(),
    };
    let port = match r.port {
        Some(0) => return Err(ConfigError::invalid("relay.port", "must be 1 to 65535")),
        Some(port) => port,
        None => listen.port(),
    };
    let window = at_least_one(r.window.unwrap_or(DEFAULT_WINDOW), "relay.window")?;
    let block_size = at_least_one(
        r.block_size.unwrap_or(DEFAULT_BLOCK_SIZE),
        "relay.block_size",
    )?;
    if block_size > MAX_BLOCK_SIZE {
        return Err(ConfigError::invalid(
            "relay.block_size",
            format!("must be at most {MAX_BLOCK_SIZE}"),
        ));
    }
    let max_connections = at_least_one(
        r.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
        "relay.max_connections",
    )?;
    let max_connections_per_ip = at_least_one(
        r.max_connections_per_ip
            .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IP),
        "relay.max_connections_per_ip",
    )?;
    let max_pending_per_ip = at_least_one(
        r.max_pending_per_ip.unwrap_or(DEFAULT_MAX_PENDING_PER_IP),
        "relay.max_pending_per_ip",
    )?;
    let mut rules = Vec::new();
    for (i, rule) in r.allow_targets.unwrap_or_default().iter().enumerate() {
        rules.push(
            TargetRule::parse(rule)
                .map_err(|e| ConfigError::invalid(&format!("relay.allow_targets[{i}]"), e))?,
        );
    }
    let mut pins = BTreeMap::new();
    for (domain, addr) in r.targets.unwrap_or_default() {
        let key = format!("relay.targets.{domain:?}");
        if TargetRule::parse(&domain).map_or(true, |r| !matches!(r, TargetRule::Domain(_))) {
            return Err(ConfigError::invalid(&key, "the key must be a domain"));
        }
        pins.insert(
            domain,
            Pin::parse(&addr).map_err(|e| ConfigError::invalid(&key, e))?,
        );
    }
    let relay = RelayConfig {
        listen,
        host,
        port,
        window,
        block_size,
        max_connections,
        max_connections_per_ip,
        max_pending_per_ip,
        policy: RelayPolicy::new(rules, pins),
    };

    let http = match raw.http {
        Some(h) => Some(HttpConfig {
            listen: socket_addr(required(h.listen, "http.listen")?, "http.listen")?,
        }),
        None => None,
    };
    let tls = match raw.tls {
        Some(t) => Some(TlsConfig {
            cert: required(t.cert, "tls.cert")?,
            key: required(t.key, "tls.key")?,
        }),
        None => None,
    };

    let t = raw.timeouts;
    let handshake = t.handshake.unwrap_or(DEFAULT_HANDSHAKE_MS);
    if handshake == 0 {
        return Err(ConfigError::invalid(
            "timeouts.handshake",
            "must be at least 1 (milliseconds); it cannot be unlimited",
        ));
    }
    // An unlimited drain could keep a stopping service up forever; a second signal
    // is the way to stop at once.
    let drain = t.drain.unwrap_or(DEFAULT_DRAIN_MS);
    if drain == 0 {
        return Err(ConfigError::invalid(
            "timeouts.drain",
            "must be at least 1 (milliseconds); it cannot be unlimited",
        ));
    }
    let timeouts = Timeouts {
        wait: limit(t.wait.unwrap_or(DEFAULT_WAIT_MS)),
        expire: limit(t.expire.unwrap_or(DEFAULT_EXPIRE_MS)),
        handshake: Duration::from_millis(handshake),
        drain: Duration::from_millis(drain),
    };

    let limits = resolve_limits(raw.limits, component.max_stanza_size)?;

    Ok(Config {
        component,
        relay,
        http,
        tls,
        timeouts,
        limits,
    })
}

fn resolve_limits(l: RawLimits, max_stanza_size: usize) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let get = |value: Option<usize>, default: usize, key: &str| {
        at_least_one(value.unwrap_or(default), &format!("limits.{key}"))
    };
    let limits = Limits {
        streams: get(l.streams, d.streams, "streams")?,
        streams_per_jid: get(l.streams_per_jid, d.streams_per_jid, "streams_per_jid")?,
        streams_per_account: get(
            l.streams_per_account,
            d.streams_per_account,
            "streams_per_account",
        )?,
        seats_per_stream: get(l.seats_per_stream, d.seats_per_stream, "seats_per_stream")?,
        comment_bytes: get(l.comment_bytes, d.comment_bytes, "comment_bytes")?,
        comments_per_request: get(
            l.comments_per_request,
            d.comments_per_request,
            "comments_per_request",
        )?,
        stream_comment_bytes: get(
            l.stream_comment_bytes,
            d.stream_comment_bytes,
            "stream_comment_bytes",
        )?,
        peers_per_admin: get(l.peers_per_admin, d.peers_per_admin, "peers_per_admin")?,
        attribute_bytes: get(l.attribute_bytes, d.attribute_bytes, "attribute_bytes")?,
        reply_bytes_per_second: get(
            l.reply_bytes_per_second,
            d.reply_bytes_per_second,
            "reply_bytes_per_second",
        )?,
        reply_bytes_per_second_total: get(
            l.reply_bytes_per_second_total,
            d.reply_bytes_per_second_total,
            "reply_bytes_per_second_total",
        )?,
    };
    // A stream's own stats reply carries all its comments: if they could not fit, every
    // stats on that stream would be refused, so refuse the configuration instead.
    let stats_reply = limits
        .stream_comment_bytes
        .saturating_add(limits.attribute_bytes.saturating_mul(4))
        .saturating_add(STATS_REPLY_OVERHEAD);
    if stats_reply > max_stanza_size {
        return Err(ConfigError::invalid(
            "limits.stream_comment_bytes",
            format!(
                "with 4 × limits.attribute_bytes and {STATS_REPLY_OVERHEAD} bytes of stats \
                 attributes it must fit in component.max_stanza_size ({max_stanza_size})"
            ),
        ));
    }
    Ok(limits)
}

fn required<T>(value: Option<T>, key: &'static str) -> Result<T, ConfigError> {
    value.ok_or(ConfigError::MissingKey(key))
}

fn socket_addr(value: String, key: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!("invalid socket address {value:?} (expected ip:port)"),
        )
    })
}

fn in_range(value: usize, range: Range<usize>, key: &str) -> Result<usize, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be {} to {}", range.start, range.end - 1),
        ))
    }
}

fn at_least_one(value: usize, key: &str) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be at least 1"));
    }
    Ok(value)
}

/// Milliseconds to a limit, 0 meaning none (PROFILE 13).
fn limit(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// The component JID must be a bare domain: it is the `to` of the XEP-0114 login and the
/// domain part of every peer resource we hand out.
fn check_domain(jid: &str) -> Result<(), ConfigError> {
    let reason = if jid.is_empty() {
        Some("must not be empty")
    } else if jid.contains(['@', '/']) {
        Some("must be a plain domain, without '@' or '/'")
    } else if jid.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain spaces or control characters")
    } else if jid.split('.').any(str::is_empty) {
        Some("must not have empty labels (leading, trailing or doubled '.')")
    } else if jid.len() > 1023 {
        Some("is longer than 1023 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::invalid(
            "component.jid",
            format!("invalid domain {jid:?}: {reason}"),
        )),
        None => Ok(()),
    }
}

/// Turns toml's multi-line error into one of ours, naming the dotted key where we can.
fn from_toml_error(text: &str, error: &toml::de::Error) -> ConfigError {
    // toml writes some messages over several lines ("invalid string\nexpected `\"`").
    let message = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    // serde names our private structs ("expected struct RawRelay"); the operator wrote a table.
    let message = match message.find("expected struct ") {
        Some(i) => format!("{}expected a table", &message[..i]),
        None => message,
    };
    let Some(span) = error.span() else {
        return ConfigError::Syntax {
            line: 1,
            column: 1,
            message,
        };
    };
    let (line, column) = line_column(text, span.start);

    // serde's messages for our structs have stable shapes; anything else is a syntax error.
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let key = key_path_at(text, &span).unwrap_or_else(|| field.to_owned());
        return ConfigError::UnknownKey {
            key,
            line,
            column,
            expected: expected.trim_start_matches([',', ' ']).to_owned(),
        };
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        if let Some(key) = key_path_at(text, &span) {
            return ConfigError::InvalidValue {
                key,
                message,
                at: Some((line, column)),
            };
        }
    }
    ConfigError::Syntax {
        line,
        column,
        message,
    }
}

/// 1-based line and character column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The dotted key an error span sits on, read back from the text: `section.key` for a
/// `key = value` line under `[section]`, or the header itself for a `[section]` line.
///
/// toml does not expose the key path of a serde error, only its span. This covers the flat
/// layout the config uses; for anything fancier (inline tables) the caller falls back to
/// what serde said.
fn key_path_at(text: &str, span: &Range<usize>) -> Option<String> {
    let before = text.get(..span.start)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = text[line_start..line_end].trim();
    if let Some(header) = table_header(line) {
        return Some(header);
    }
    let key = unquote(line.split_once('=')?.0.trim());
    if key.is_empty() || key.contains('{') {
        return None;
    }
    let section = text[..line_start].lines().rev().find_map(table_header);
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key,
    })
}

/// `relay` for a `[relay]` line (comments after it allowed), `None` for other lines.
fn table_header(line: &str) -> Option<String> {
    let inner = line.trim().strip_prefix('[')?;
    let (name, _) = inner.split_once(']')?;
    Some(unquote(name.trim()))
}

fn unquote(key: &str) -> String {
    key.split('.')
        .map(|part| part.trim().trim_matches(['"', '\'']))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[component]
jid = "dsps.localhost"        # component domain (required)
server = "127.0.0.1:5347"     # the XMPP server's component port (required, a SocketAddr "ip:port")
secret = "s3cret"             # XEP-0114 shared secret (required)
[relay]
listen = "0.0.0.0:5290"       # TCP data port (required SocketAddr; [::]:5290 must also parse)
host = "dsps.example.org"     # advertised 'host' in create results (default: component jid)
port = 5290                   # advertised 'port' (default: the listen port)
[http]                        # optional section: HTTP preamble listener
listen = "0.0.0.0:80"
[tls]                         # optional: starttls on the relay port
cert = "cert.pem"
key = "key.pem"
[timeouts]                    # optional section, milliseconds
wait = 60000                  # waitdefault
expire = 120000               # expiredefault
handshake = 10000             # relay handshake must finish within this
"#;

    const MINIMAL: &str = r#"
[component]
jid = "dsps.localhost"
server = "127.0.0.1:5347"
secret = "s3cret"
[relay]
listen = "[::]:6000"
"#;

    fn err(text: &str) -> String {
        match Config::parse(text) {
            Ok(config) => panic!("accepted: {config:?}"),
            Err(e) => {
                let message = e.to_string();
                assert!(!message.contains('\n'), "not one line: {message}");
                message
            }
        }
    }

    #[test]
    fn relay_targets_are_off_by_default_and_read_when_given() {
        let config = Config::parse(MINIMAL).unwrap();
        assert!(!config.relay.policy.enabled());
        let text = format!(
            "{MINIMAL}allow_targets = [\"dsps2.example.org\", \"127.0.0.1\", \"10.0.0.0/8\"]\n\
             [relay.targets]\n\"dsps2.example.org\" = \"192.0.2.7:5290\"\n"
        );
        let config = Config::parse(&text).unwrap();
        let expected = RelayPolicy::new(
            vec![
                TargetRule::Domain("dsps2.example.org".into()),
                TargetRule::parse("127.0.0.1").unwrap(),
                TargetRule::parse("10.0.0.0/8").unwrap(),
            ],
            [(
                "dsps2.example.org".to_string(),
                Pin::parse("192.0.2.7:5290").unwrap(),
            )]
            .into(),
        );
        assert_eq!(config.relay.policy, expected);
    }

    #[test]
    fn bad_relay_targets_are_named() {
        let m = err(&format!(
            "{MINIMAL}allow_targets = [\"ok.org\", \"not a name\"]\n"
        ));
        assert!(m.starts_with("relay.allow_targets[1]: "), "{m}");
        let m = err(&format!(
            "{MINIMAL}[relay.targets]\n\"dsps2.example.org\" = \"192.0.2.7\"\n"
        ));
        assert!(
            m.starts_with("relay.targets.\"dsps2.example.org\": "),
            "{m}"
        );
        let m = err(&format!(
            "{MINIMAL}[relay.targets]\n\"10.0.0.1\" = \"10.0.0.1:1\"\n"
        ));
        assert!(m.contains("must be a domain"), "{m}");
    }

    #[test]
    fn full_example_parses() {
        let config = Config::parse(FULL).unwrap();
        assert_eq!(config.component.jid, "dsps.localhost");
        assert_eq!(config.component.server, "127.0.0.1:5347".parse().unwrap());
        assert_eq!(config.component.secret, "s3cret");
        assert!(!config.component.version_os);
        assert_eq!(config.relay.listen, "0.0.0.0:5290".parse().unwrap());
        assert_eq!(config.relay.host, "dsps.example.org");
        assert_eq!(config.relay.port, 5290);
        assert_eq!(
            config.http,
            Some(HttpConfig {
                listen: "0.0.0.0:80".parse().unwrap()
            })
        );
        assert_eq!(
            config.tls,
            Some(TlsConfig {
                cert: "cert.pem".into(),
                key: "key.pem".into()
            })
        );
        assert_eq!(config.timeouts.wait, Some(Duration::from_secs(60)));
        assert_eq!(config.timeouts.expire, Some(Duration::from_secs(120)));
        assert_eq!(config.timeouts.handshake, Duration::from_secs(10));
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = Config::parse(MINIMAL).unwrap();
        assert_eq!(config.relay.listen, "[::]:6000".parse().unwrap());
        assert_eq!(config.relay.host, "dsps.localhost");
        assert_eq!(config.relay.port, 6000);
        assert_eq!(config.relay.window, DEFAULT_WINDOW);
        assert_eq!(config.relay.block_size, DEFAULT_BLOCK_SIZE);
        assert_eq!(config.relay.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            config.relay.max_connections_per_ip,
            DEFAULT_MAX_CONNECTIONS_PER_IP
        );
        assert_eq!(config.relay.max_pending_per_ip, DEFAULT_MAX_PENDING_PER_IP);
        assert_eq!(
            config.timeouts.drain,
            Duration::from_millis(DEFAULT_DRAIN_MS)
        );
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.http, None);
        assert_eq!(config.tls, None);
        assert_eq!(config.timeouts.wait_ms(), DEFAULT_WAIT_MS);
        assert_eq!(config.timeouts.expire_ms(), DEFAULT_EXPIRE_MS);
        assert_eq!(
            config.timeouts.handshake,
            Duration::from_millis(DEFAULT_HANDSHAKE_MS)
        );
    }

    #[test]
    fn zero_wait_and_expire_mean_no_limit() {
        let config =
            Config::parse(&format!("{MINIMAL}[timeouts]\nwait = 0\nexpire = 0\n")).unwrap();
        assert_eq!(config.timeouts.wait, None);
        assert_eq!(config.timeouts.expire, None);
        assert_eq!(config.timeouts.wait_ms(), 0);
    }

    #[test]
    fn extra_relay_keys_parse() {
        let text = MINIMAL.replace(
            "[relay]\n",
            "[relay]\nwindow = 8\nblock_size = 4096\nmax_connections = 3\n\
             max_connections_per_ip = 2\nmax_pending_per_ip = 1\n",
        );
        let config = Config::parse(&text).unwrap();
        assert_eq!(config.relay.window, 8);
        assert_eq!(config.relay.block_size, 4096);
        assert_eq!(config.relay.max_connections, 3);
        assert_eq!(config.relay.max_connections_per_ip, 2);
        assert_eq!(config.relay.max_pending_per_ip, 1);
        let text = format!("{MINIMAL}[timeouts]\ndrain = 2500\n");
        assert_eq!(
            Config::parse(&text).unwrap().timeouts.drain,
            Duration::from_millis(2500)
        );
        let text = MINIMAL.replace("[component]\n", "[component]\nversion_os = true\n");
        assert!(Config::parse(&text).unwrap().component.version_os);
    }

    #[test]
    fn missing_keys_are_named() {
        for key in ["jid", "server", "secret"] {
            let text: String = MINIMAL
                .lines()
                .filter(|l| !l.starts_with(key))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(err(&text), format!("missing key component.{key}"));
        }
        assert_eq!(
            err(&MINIMAL.replace("listen = \"[::]:6000\"", "")),
            "missing key relay.listen"
        );
        assert_eq!(err(""), "missing key component.jid");
        assert_eq!(
            err(&format!("{MINIMAL}[http]\n")),
            "missing key http.listen"
        );
        assert_eq!(
            err(&format!("{MINIMAL}[tls]\ncert = \"c.pem\"\n")),
            "missing key tls.key"
        );
    }

    #[test]
    fn bad_addresses_are_named() {
        assert_eq!(
            err(&MINIMAL.replace("[::]:6000", "x")),
            r#"relay.listen: invalid socket address "x" (expected ip:port)"#
        );
        let message = err(&MINIMAL.replace("127.0.0.1:5347", "localhost:5347"));
        assert!(message.starts_with("component.server: invalid socket address"));
        let message = err(&format!("{MINIMAL}[http]\nlisten = \"0.0.0.0\"\n"));
        assert!(message.starts_with("http.listen: invalid socket address"));
    }

    #[test]
    fn unknown_keys_are_named_with_their_section() {
        let message = err(&MINIMAL.replace("[relay]\n", "[relay]\nwindw = 3\n"));
        assert!(
            message.starts_with("unknown key relay.windw at line 7, column 1"),
            "{message}"
        );
        assert!(message.contains("`window`"), "{message}");
        let message = err(&format!("{MINIMAL}[logging]\nlevel = 1\n"));
        assert!(
            message.starts_with("unknown key logging at line 8"),
            "{message}"
        );
        let message = err(&format!("{MINIMAL}[timeouts]\nidle = 1\n"));
        assert!(
            message.starts_with("unknown key timeouts.idle"),
            "{message}"
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let message = err(&MINIMAL.replace("[relay]\n", "[relay]\nwindow = \"big\"\n"));
        assert!(
            message.starts_with("relay.window: invalid type: string \"big\""),
            "{message}"
        );
        assert!(message.ends_with("(line 7, column 10)"), "{message}");
        let message = err(&MINIMAL.replace("[relay]\n", "[relay]\nport = 70000\n"));
        assert!(
            message.starts_with("relay.port: invalid value"),
            "{message}"
        );
        let message = err(&format!("{MINIMAL}[timeouts]\nwait = -1\n"));
        assert!(
            message.starts_with("timeouts.wait: invalid value"),
            "{message}"
        );
        assert_eq!(
            err("component = 3\n"),
            "component: invalid type: integer `3`, expected a table (line 1, column 13)"
        );
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let message = err(&MINIMAL.replace("[relay]\n", "[relay]\nwindow = \n"));
        assert!(
            message.starts_with("invalid TOML at line 7, column 10"),
            "{message}"
        );
        let message = err("[component\n");
        assert!(message.starts_with("invalid TOML at line 1"), "{message}");
    }

    #[test]
    fn invalid_jids_are_refused() {
        for jid in [
            "",
            "user@dsps.localhost",
            "dsps.localhost/res",
            "a..b",
            ".a",
            "a b",
        ] {
            let message = err(&MINIMAL.replace("\"dsps.localhost\"", &format!("{jid:?}")));
            assert!(
                message.starts_with("component.jid: invalid domain"),
                "{message}"
            );
        }
    }

    #[test]
    fn zero_sizes_are_refused() {
        for key in [
            "window",
            "block_size",
            "max_connections",
            "max_connections_per_ip",
            "max_pending_per_ip",
        ] {
            let text = MINIMAL.replace("[relay]\n", &format!("[relay]\n{key} = 0\n"));
            assert_eq!(err(&text), format!("relay.{key}: must be at least 1"));
        }
        let text = MINIMAL.replace("[relay]\n", "[relay]\nblock_size = 999999999\n");
        assert!(err(&text).starts_with("relay.block_size: must be at most"));
        let text = MINIMAL.replace("[relay]\n", "[relay]\nport = 0\n");
        assert!(err(&text).starts_with("relay.port"));
        let text = format!("{MINIMAL}[timeouts]\nhandshake = 0\n");
        assert!(err(&text).starts_with("timeouts.handshake"));
        let text = format!("{MINIMAL}[timeouts]\ndrain = 0\n");
        assert!(err(&text).starts_with("timeouts.drain"));
        let text = MINIMAL.replace("\"s3cret\"", "\"\"");
        assert_eq!(err(&text), "component.secret: must not be empty");
    }

    #[test]
    fn limits_are_read_and_must_be_positive() {
        let text =
            format!("{MINIMAL}[limits]\nstreams = 5\nstreams_per_jid = 2\nseats_per_stream = 9\n");
        let limits = Config::parse(&text).unwrap().limits;
        assert_eq!(
            (
                limits.streams,
                limits.streams_per_jid,
                limits.seats_per_stream
            ),
            (5, 2, 9)
        );
        for key in [
            "streams",
            "streams_per_jid",
            "seats_per_stream",
            "comment_bytes",
            "comments_per_request",
            "stream_comment_bytes",
            "peers_per_admin",
            "attribute_bytes",
            "streams_per_account",
            "reply_bytes_per_second",
            "reply_bytes_per_second_total",
        ] {
            let text = format!("{MINIMAL}[limits]\n{key} = 0\n");
            assert_eq!(err(&text), format!("limits.{key}: must be at least 1"));
        }
        let text = format!("{MINIMAL}[limits]\nstreamz = 1\n");
        assert!(err(&text).contains("limits.streamz"), "{}", err(&text));
    }

    #[test]
    fn size_limits_have_documented_defaults() {
        let config = Config::parse(MINIMAL).unwrap();
        let l = config.limits;
        assert_eq!(
            (
                l.comment_bytes,
                l.comments_per_request,
                l.stream_comment_bytes,
                l.peers_per_admin,
                l.attribute_bytes
            ),
            (4096, 16, 16384, 64, 3072)
        );
        assert_eq!(config.component.max_stanza_size, 262_144);
        assert_eq!(config.component.max_stanza_size, DEFAULT_MAX_STANZA_SIZE);
    }

    #[test]
    fn inbound_bounds_and_reply_rates_have_defaults_ranges_and_are_read() {
        let config = Config::parse(MINIMAL).unwrap();
        assert_eq!(
            (
                config.component.max_depth,
                config.component.max_inbound_stanza_size
            ),
            (64, 1 << 20)
        );
        let l = config.limits;
        assert_eq!(
            (
                l.streams_per_account,
                l.reply_bytes_per_second,
                l.reply_bytes_per_second_total
            ),
            (256, 512 * 1024, 2 * 1024 * 1024)
        );
        let with = |line: &str| MINIMAL.replace("[component]\n", &format!("[component]\n{line}\n"));
        let c = Config::parse(&with("max_depth = 8\nmax_inbound_stanza_size = 16384")).unwrap();
        assert_eq!(
            (c.component.max_depth, c.component.max_inbound_stanza_size),
            (8, 16384)
        );
        for (line, want) in [
            ("max_depth = 7", "component.max_depth: must be 8 to 1024"),
            ("max_depth = 1025", "component.max_depth: must be 8 to 1024"),
            (
                "max_inbound_stanza_size = 16383",
                "component.max_inbound_stanza_size: must be 16384 to 67108864",
            ),
        ] {
            assert_eq!(err(&with(line)), want, "{line}");
        }
    }

    #[test]
    fn size_limits_are_read() {
        let text = format!(
            "{MINIMAL}[limits]\ncomment_bytes = 10\ncomments_per_request = 2\n\
             stream_comment_bytes = 30\npeers_per_admin = 5\nattribute_bytes = 100\n"
        )
        .replace("[component]\n", "[component]\nmax_stanza_size = 8192\n");
        let config = Config::parse(&text).unwrap();
        let l = config.limits;
        assert_eq!(
            (
                l.comment_bytes,
                l.comments_per_request,
                l.stream_comment_bytes,
                l.peers_per_admin,
                l.attribute_bytes
            ),
            (10, 2, 30, 5, 100)
        );
        assert_eq!(config.component.max_stanza_size, 8192);
    }

    #[test]
    fn max_stanza_size_must_stay_below_prosodys_limit() {
        let with = |n: usize| {
            MINIMAL.replace(
                "[component]\n",
                &format!("[component]\nmax_stanza_size = {n}\n"),
            )
        };
        for n in [0, 4095, 524_288, 10_000_000] {
            let message = err(&with(n));
            assert!(
                message.starts_with("component.max_stanza_size: must be 4096 to 524287"),
                "{n}: {message}"
            );
        }
        // At the smallest size the default limits no longer fit a stats reply: they must
        // be lowered with it, and the error names the limit at fault.
        let message = err(&with(4096));
        assert!(
            message.starts_with("limits.stream_comment_bytes:"),
            "{message}"
        );
        assert!(
            message.contains("component.max_stanza_size (4096)"),
            "{message}"
        );
        let small = format!(
            "{}[limits]\nstream_comment_bytes = 1024\nattribute_bytes = 512\n",
            with(4096)
        );
        assert_eq!(
            Config::parse(&small).unwrap().component.max_stanza_size,
            4096
        );
        assert_eq!(
            Config::parse(&with(524_287))
                .unwrap()
                .component
                .max_stanza_size,
            524_287
        );
    }

    #[test]
    fn a_streams_comments_must_fit_in_its_stats_reply() {
        // 16384 + 4 × 3072 + 1024 = 29696 bytes at the defaults.
        let text = |comments: usize| {
            format!("{MINIMAL}[limits]\nstream_comment_bytes = {comments}\n")
                .replace("[component]\n", "[component]\nmax_stanza_size = 29696\n")
        };
        assert!(Config::parse(&text(16384)).is_ok());
        let message = err(&text(16385));
        assert!(
            message.starts_with("limits.stream_comment_bytes:"),
            "{message}"
        );
        assert_eq!(
            Config::parse(&text(16385)).unwrap_err().key(),
            Some("limits.stream_comment_bytes")
        );
    }

    #[test]
    fn the_example_config_parses_and_lists_the_defaults() {
        let config = Config::parse(include_str!("../conf/dsps.toml")).unwrap();
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.component.max_stanza_size, DEFAULT_MAX_STANZA_SIZE);
        assert_eq!(config.relay.window, DEFAULT_WINDOW);
        assert_eq!(config.timeouts.wait_ms(), DEFAULT_WAIT_MS);
    }

    #[test]
    fn secret_stays_out_of_debug_output() {
        let config = Config::parse(MINIMAL).unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn load_reports_missing_file_and_resolves_tls_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dsps.toml");
        let message = Config::load(&path).unwrap_err().to_string();
        assert!(message.starts_with("cannot read config file"), "{message}");
        assert!(message.contains("dsps.toml"), "{message}");
        assert!(!message.contains('\n'));

        std::fs::write(&path, FULL).unwrap();
        let config = Config::load(&path).unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(tls.cert, dir.path().join("cert.pem"));
        assert_eq!(tls.key, dir.path().join("key.pem"));
    }

    #[test]
    fn error_key_accessor_names_the_key() {
        let e = Config::parse(&MINIMAL.replace("[::]:6000", "x")).unwrap_err();
        assert_eq!(e.key(), Some("relay.listen"));
        let e = Config::parse("").unwrap_err();
        assert_eq!(e.key(), Some("component.jid"));
    }
}
