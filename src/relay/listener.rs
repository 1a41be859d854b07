//! The relay port's accept loop: admission per source address (`gate`, over the
//! pure `core::admission`), socket options (`tcp_options`), and one task per
//! connection (the handshake runs inside that task, never in this loop). The
//! `[http]` listener, when there is one, is accepted by the same loop, so both ports
//! share one gate: the per-source limits count a client's connections on either.
//!
//! Refused connections are closed at once and counted; the count is logged at most
//! once per [`REFUSAL_LOG_INTERVAL`], so a flood of refusals cannot flood the log.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info_span, warn};

use super::conn::{self, Event, RelaySettings};
use super::gate::Gate;
use super::preamble::Entry;
use super::tcp_options::{self, LoopbackCongestion};
use crate::core::admission::{
    AdmissionLimits, Refusal, RefusalLog, Source, Tally, REFUSAL_LOG_INTERVAL,
};
use crate::logging::redact;
use crate::logging::span_per_poll::span_per_poll;

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

fn report(t: &Tally) {
    warn!(
        refused = t.refused(),
        over_max_connections = t.total,
        over_max_connections_per_ip = t.per_source,
        over_max_pending_per_ip = t.pending_per_source,
        evicted_silent_handshakes = t.evicted,
        last_source = %t.last_source.map_or_else(String::new, |s| {
            if redact::hidden() {
                redact::ip(s.ip()).to_string()
            } else {
                s.to_string()
            }
        }),
        "relay connections turned away (reported at most every {}s)",
        REFUSAL_LOG_INTERVAL.as_secs()
    );
}

/// Completes with the next connection on `listener`, or never without one.
async fn accept_on(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Accepts on the relay port (and the `[http]` listener, if any) until `drain`
/// turns true (the service is stopping); dropping the listeners then refuses new
/// connections at the TCP level.
pub async fn serve(
    listener: TcpListener,
    http: Option<TcpListener>,
    settings: Arc<RelaySettings>,
    limits: AdmissionLimits,
    events: mpsc::Sender<Event>,
    drain: watch::Receiver<bool>,
) {
    let gate = Gate::new(limits);
    let mut refusals = RefusalLog::new(REFUSAL_LOG_INTERVAL);
    let mut stop = drain.clone();
    let mut next_conn = 0u64;
    loop {
        let due = refusals.due().map(Instant::from_std);
        let accepted = tokio::select! {
            r = listener.accept() => r.map(|a| (a, Entry::Relay)),
            r = accept_on(http.as_ref()) => r.map(|a| (a, Entry::Http)),
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                if let Some(t) = refusals.flush(Instant::now().into_std()) {
                    report(&t);
                }
                continue;
            }
            _ = crate::service::stopped(&mut stop) => {
                if let Some(t) = refusals.take() {
                    report(&t);
                }
                return;
            }
        };
        let ((tcp, peer), entry) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!("relay accept failed: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        next_conn += 1;
        let conn = next_conn;
        let now = Instant::now().into_std();
        let source = Source::of(peer.ip());
        let admitted = match gate.admit(conn, peer.ip()) {
            Ok(a) => a,
            Err(why) => {
                // Dropping the socket closes it; the tally says how many and why.
                drop(tcp);
                if let Some(t) = refusals.record(why, source, now) {
                    report(&t);
                }
                continue;
            }
        };
        if admitted.made_room {
            if let Some(t) = refusals.record(Refusal::Evicted, source, now) {
                report(&t);
            }
        }
        tcp_options::apply(&tcp, peer, settings.loopback_congestion.as_ref());
        let (settings, events, drain) = (settings.clone(), events.clone(), drain.clone());
        tokio::spawn(span_per_poll(
            conn::serve(conn, tcp, peer, entry, settings, events, admitted, drain),
            move || info_span!("relay", conn, peer = %redact::addr(peer), %entry),
        ));
    }
}

/// What the relay serves on: the bound relay port, the bound `[http]` listener if
/// configured, the loaded `[tls]` config if configured, and the congestion control
/// the listeners give connections from this machine (`service::prepare`).
#[derive(Debug)]
pub struct Transports {
    /// The relay port.
    pub relay: TcpListener,
    /// The `[http]` listener.
    pub http: Option<TcpListener>,
    /// The `[tls]` certificate and key, for `starttls`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `relay.loopback_congestion`, already set on the listeners.
    pub congestion: Option<LoopbackCongestion>,
}

impl From<TcpListener> for Transports {
    /// The relay port alone: no HTTP listener, `starttls` refused.
    fn from(relay: TcpListener) -> Self {
        Transports {
            relay,
            http: None,
            tls: None,
            congestion: None,
        }
    }
}

impl Transports {
    /// The `<feature/>`s create results and stats advertise: exactly what is
    /// enabled (PROFILE 12).
    pub fn features(&self) -> Vec<crate::proto::query::Feature> {
        use crate::proto::query::Feature;
        let mut features = Vec::new();
        if self.http.is_some() {
            features.push(Feature {
                kind: "http".into(),
                version: "1.0".into(),
            });
        }
        if self.tls.is_some() {
            features.push(Feature {
                kind: "ssl".into(),
                version: super::tls::ADVERTISED_VERSION.into(),
            });
        }
        features
    }
}
