//! Every default and bound of the configuration, in one place: the constants the
//! rest of the code reads, and the functions serde calls for a key that is absent.

use std::num::{NonZeroU64, NonZeroUsize};
use std::ops::Range;

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
/// Default `[relay] max_connections_per_ip`: generous for one NAT's worth of users,
/// small next to the default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// Default `[relay] max_pending_per_ip`: a client needs one pending connection per
/// seat it is joining, and a legitimate handshake takes milliseconds.
pub const DEFAULT_MAX_PENDING_PER_IP: usize = 16;
/// Default `[relay] loopback_congestion`: reno does not pace, is built into every Linux
/// kernel and is open to unprivileged processes (`relay::tcp_options`).
pub const DEFAULT_LOOPBACK_CONGESTION: &str = "reno";
/// Longest congestion control name Linux takes (TCP_CA_NAME_MAX, less its NUL).
pub const MAX_CONGESTION_NAME: usize = 15;
/// Default `[metrics] listen`: loopback, so only this machine can read the counters.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9090";
/// Default `[timeouts] wait` (waitdefault), in milliseconds.
pub const DEFAULT_WAIT_MS: u64 = 60_000;
/// Default `[timeouts] expire` (expiredefault), in milliseconds.
pub const DEFAULT_EXPIRE_MS: u64 = 120_000;
/// Default `[timeouts] handshake`, in milliseconds.
pub const DEFAULT_HANDSHAKE_MS: u64 = 10_000;
/// Default `[timeouts] drain`, in milliseconds.
pub const DEFAULT_DRAIN_MS: u64 = 10_000;
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

// What serde calls for an absent key (`#[serde(default = "...")]`).

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("defaults of non-zero keys are non-zero")
}

pub(super) fn max_depth() -> usize {
    DEFAULT_MAX_DEPTH
}

pub(super) fn max_inbound_stanza_size() -> usize {
    DEFAULT_MAX_INBOUND_STANZA
}

pub(super) fn max_stanza_size() -> usize {
    DEFAULT_MAX_STANZA_SIZE
}

pub(super) fn window() -> NonZeroUsize {
    nonzero(DEFAULT_WINDOW)
}

pub(super) fn block_size() -> NonZeroUsize {
    nonzero(DEFAULT_BLOCK_SIZE)
}

pub(super) fn max_connections() -> NonZeroUsize {
    nonzero(DEFAULT_MAX_CONNECTIONS)
}

pub(super) fn max_connections_per_ip() -> NonZeroUsize {
    nonzero(DEFAULT_MAX_CONNECTIONS_PER_IP)
}

pub(super) fn max_pending_per_ip() -> NonZeroUsize {
    nonzero(DEFAULT_MAX_PENDING_PER_IP)
}

pub(super) fn loopback_congestion() -> String {
    DEFAULT_LOOPBACK_CONGESTION.to_owned()
}

pub(super) fn millis(ms: u64) -> NonZeroU64 {
    NonZeroU64::new(ms).expect("defaults of non-zero timeouts are non-zero")
}

/// `[metrics] listen` when the table is there without it.
pub(super) fn metrics_listen() -> std::net::SocketAddr {
    DEFAULT_METRICS_LISTEN
        .parse()
        .expect("DEFAULT_METRICS_LISTEN is an ip:port")
}
