//! The service's metrics, for the optional Prometheus endpoint (`[metrics]`).
//!
//! One [`Metrics`] handle is made per service and cloned into the adapters that
//! count: the relay's data path (bytes, blocks, slow peers), its connections
//! (handshake outcomes and timeouts). Each count is one relaxed atomic add per
//! batch or per connection, never per byte, and it costs the same whether the
//! endpoint is on or off. What only the registry knows (streams, seats by role
//! and status, the `wait`/`expire` deadlines) and the component link's state are
//! read when a scrape asks ([`Metrics::observe`]), so the registry stays sans-IO
//! and pays nothing between scrapes. No label carries a JID or an address.
//!
//! Rendering is `prometheus-client`'s OpenMetrics text; `endpoint` serves it.

pub mod endpoint;

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::core::link_status::LinkStatus;
use crate::core::registry::{Census, ROLES, STATUSES};

/// Every name starts with this.
pub const PREFIX: &str = "dsps";

/// How a relay connection's handshake ended (in the order of [`Self::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// It attached to its stream.
    Ok,
    /// It went wrong (a bad line, a wrong key, the peer closed, refused by the registry).
    Failed,
    /// It did not finish within `[timeouts] handshake`.
    Timeout,
    /// Closed to make room for a newer connection from the same source.
    Evicted,
    /// Abandoned because the service is stopping.
    Shutdown,
}

impl HandshakeOutcome {
    /// Every outcome, as the label values list them.
    pub const ALL: [HandshakeOutcome; 5] = [
        HandshakeOutcome::Ok,
        HandshakeOutcome::Failed,
        HandshakeOutcome::Timeout,
        HandshakeOutcome::Evicted,
        HandshakeOutcome::Shutdown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeOutcome::Ok => "ok",
            HandshakeOutcome::Failed => "failed",
            HandshakeOutcome::Timeout => "timeout",
            HandshakeOutcome::Evicted => "evicted",
            HandshakeOutcome::Shutdown => "shutdown",
        }
    }
}

/// The deadlines `dsps_timeouts_total` counts, in the order of `Metrics::timeouts`.
pub const TIMEOUT_KINDS: [&str; 3] = ["handshake", "wait", "expire"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    role: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// The service's metrics; clones share the same counters.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Data bytes read from peers' relay connections (after their handshake; on a
    /// relay link, the data of the blocks the far DSPS sent).
    pub received: Counter,
    /// Bytes written to peers' relay connections: the framed blocks, headers
    /// included (on a relay link we dial, the raw data).
    pub sent: Counter,
    /// Blocks cut from what peers sent, each counted once however many peers
    /// receive it.
    pub blocks: Counter,
    /// Peers disconnected for falling below their stream's `minthroughput`.
    pub slow_peers: Counter,
    /// One counter per [`HandshakeOutcome::ALL`], shared with their family: no
    /// lookup (and no lock) per connection.
    handshakes: [Counter; 5],
    /// `handshake`, `wait`, `expire`, as [`TIMEOUT_KINDS`].
    timeouts: [Counter; 3],
    streams: Gauge,
    peers: Family<PeerLabels, Gauge>,
    link_up: Gauge,
    link_reconnects: Counter,
    /// Serialises [`Metrics::observe`]: two scrapes at once must not both add the
    /// same increase of a counter read from elsewhere.
    observing: Arc<Mutex<()>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, every labelled series present (so a rate over a
    /// series that has not moved yet reads 0, not "no data").
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix(PREFIX);
        let handshakes = Family::<OutcomeLabels, Counter>::default();
        let timeouts = Family::<KindLabels, Counter>::default();
        let m = Metrics {
            registry: Arc::default(),
            received: Counter::default(),
            sent: Counter::default(),
            blocks: Counter::default(),
            slow_peers: Counter::default(),
            handshakes: HandshakeOutcome::ALL.map(|o| {
                handshakes
                    .get_or_create(&OutcomeLabels {
                        outcome: o.as_str(),
                    })
                    .clone()
            }),
            timeouts: TIMEOUT_KINDS
                .map(|kind| timeouts.get_or_create(&KindLabels { kind }).clone()),
            streams: Gauge::default(),
            peers: Family::default(),
            link_up: Gauge::default(),
            link_reconnects: Counter::default(),
            observing: Arc::default(),
        };
        r.register("streams", "Live streams", m.streams.clone());
        r.register(
            "peers",
            "Seats by role (master, slave, relay) and who status (connect, wait, expire)",
            m.peers.clone(),
        );
        r.register_with_unit(
            "received",
            "Data bytes read from peers' relay connections",
            Unit::Bytes,
            m.received.clone(),
        );
        r.register_with_unit(
            "sent",
            "Bytes written to peers' relay connections, block headers included",
            Unit::Bytes,
            m.sent.clone(),
        );
        r.register(
            "blocks",
            "Blocks cut from what peers sent, each counted once",
            m.blocks.clone(),
        );
        r.register(
            "handshakes",
            "Relay connection handshakes by outcome",
            handshakes,
        );
        r.register(
            "slow_peer_disconnects",
            "Peers disconnected for falling below their stream's minthroughput",
            m.slow_peers.clone(),
        );
        r.register(
            "timeouts",
            "Deadlines that ran out: relay handshakes, seats' wait, invitations' expire",
            timeouts,
        );
        r.register(
            "link_up",
            "Whether the component link to the XMPP server is online (1) or not (0)",
            m.link_up.clone(),
        );
        r.register(
            "link_reconnects",
            "Component logins after the first",
            m.link_reconnects.clone(),
        );
        m.observe(Some(&Census::default()), None);
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// Counts one handshake's outcome (a timeout is also a handshake timeout).
    pub fn handshake(&self, outcome: HandshakeOutcome) {
        self.handshakes[outcome as usize].inc();
        if outcome == HandshakeOutcome::Timeout {
            self.timeouts[0].inc();
        }
    }

    /// Takes in what a scrape read from the registry and the component link: the
    /// gauges are set to it, the counters brought up to it. What is `None` (the
    /// registry did not answer in time) keeps its last values.
    pub fn observe(&self, census: Option<&Census>, link: Option<&LinkStatus>) {
        let _one_at_a_time = self.observing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(census) = census {
            self.observe_census(census);
        }
        if let Some(link) = link {
            self.link_up.set(i64::from(link.is_online()));
            raise(&self.link_reconnects, link.reconnects());
        }
    }

    fn observe_census(&self, census: &Census) {
        self.streams.set(census.streams as i64);
        for (r, role) in ROLES.iter().enumerate() {
            for (s, status) in STATUSES.iter().enumerate() {
                let labels = PeerLabels {
                    role: role.as_str(),
                    status,
                };
                self.peers
                    .get_or_create(&labels)
                    .set(census.peers[r][s] as i64);
            }
        }
        raise(&self.timeouts[1], census.deadlines.wait);
        raise(&self.timeouts[2], census.deadlines.expire);
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; a label set that could not be encoded
        // is a bug in this module, caught by its tests.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("metrics could not be rendered: {e}");
        }
        out
    }
}

/// Brings `counter` up to `total`, a count kept elsewhere that only grows.
fn raise(counter: &Counter, total: u64) {
    let have = counter.get();
    if total > have {
        counter.inc_by(total - have);
    }
}

#[cfg(test)]
mod tests;
