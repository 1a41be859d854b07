//! The file as written, one serde struct per table: typed fields (addresses, non-zero
//! counts, milliseconds as numbers), serde defaults for absent keys, and
//! `deny_unknown_fields` so that a typo is an error rather than a silent default.
//! The same structs, with the derived defaults filled in, are what `--check-config`
//! prints (see [`super::effective`]).
//!
//! What serde cannot say (ranges, one key's default taken from another, the secret's
//! sources) is checked in [`super::validate`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::defaults::{self, *};
use super::model::{HttpConfig, Limits, LogConfig, MetricsConfig, TlsConfig};
use super::server_addr::ServerAddr;

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct File {
    pub component: FileComponent,
    pub relay: FileRelay,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
    #[serde(default)]
    pub timeouts: FileTimeouts,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub admin: FileAdmin,
}

/// `[admin]`: who may run the XEP-0050 admin commands.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct FileAdmin {
    pub jids: Vec<String>,
}

/// `[component]`. `Debug` is written by hand so that the secret never reaches a log.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct FileComponent {
    pub jid: String,
    pub server: ServerAddr,
    // Exactly one of the three secret sources must be set (checked in `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub version_os: bool,
    #[serde(default = "defaults::max_depth")]
    pub max_depth: usize,
    #[serde(default = "defaults::max_inbound_stanza_size")]
    pub max_inbound_stanza_size: usize,
    #[serde(default = "defaults::max_stanza_size")]
    pub max_stanza_size: usize,
}

impl fmt::Debug for FileComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileComponent")
            .field("jid", &self.jid)
            .field("server", &self.server)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .field("secret_env", &self.secret_env)
            .field("version_os", &self.version_os)
            .field("max_depth", &self.max_depth)
            .field("max_inbound_stanza_size", &self.max_inbound_stanza_size)
            .field("max_stanza_size", &self.max_stanza_size)
            .finish()
    }
}

/// `[relay]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct FileRelay {
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    // Both default to another key's value, so they stay optional here and are filled
    // in by `validate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<NonZeroU16>,
    #[serde(default = "defaults::window")]
    pub window: NonZeroUsize,
    #[serde(default = "defaults::block_size")]
    pub block_size: NonZeroUsize,
    #[serde(default = "defaults::max_connections")]
    pub max_connections: NonZeroUsize,
    #[serde(default = "defaults::max_connections_per_ip")]
    pub max_connections_per_ip: NonZeroUsize,
    #[serde(default = "defaults::max_pending_per_ip")]
    pub max_pending_per_ip: NonZeroUsize,
    #[serde(default = "defaults::loopback_congestion")]
    pub loopback_congestion: String,
    #[serde(default)]
    pub allow_targets: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, String>,
}

/// `[timeouts]`, in milliseconds. `wait` and `expire` may be 0 (no limit, PROFILE 13);
/// `handshake` and `drain` may not: an unauthenticated peer or a stopping service
/// must never be able to wait forever.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct FileTimeouts {
    pub wait: u64,
    pub expire: u64,
    pub handshake: NonZeroU64,
    pub drain: NonZeroU64,
}

impl Default for FileTimeouts {
    fn default() -> Self {
        FileTimeouts {
            wait: DEFAULT_WAIT_MS,
            expire: DEFAULT_EXPIRE_MS,
            handshake: defaults::millis(DEFAULT_HANDSHAKE_MS),
            drain: defaults::millis(DEFAULT_DRAIN_MS),
        }
    }
}

/// An `ip:port` listen address. serde's own message ("invalid socket address syntax")
/// neither repeats the value nor shows the form, and this is where operators write
/// `localhost:5290` or forget the port.
pub(super) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid socket address {text:?}: expected ip:port, e.g. 0.0.0.0:5290 or [::]:5290"
        ))
    })
}
