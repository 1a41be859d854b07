//! The relay port's accept loop: admission per source address (`gate`, over the
//! pure `core::admission`), TCP_NODELAY, and one task per connection (the
//! handshake runs inside that task, never in this loop).
//!
//! Refused connections are closed at once and counted; the count is logged at most
//! once per [`REFUSAL_LOG_INTERVAL`], so a flood of refusals cannot flood the log.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info_span, warn, Instrument};

use super::conn::{self, Event, RelaySettings};
use super::gate::Gate;
use crate::core::admission::{
    AdmissionLimits, Refusal, RefusalLog, Source, Tally, REFUSAL_LOG_INTERVAL,
};

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

fn report(t: &Tally) {
    warn!(
        refused = t.refused(),
        over_max_connections = t.total,
        over_max_connections_per_ip = t.per_source,
        over_max_pending_per_ip = t.pending_per_source,
        evicted_silent_handshakes = t.evicted,
        last_source = %t.last_source.map_or_else(String::new, |s| s.to_string()),
        "relay connections turned away (reported at most every {}s)",
        REFUSAL_LOG_INTERVAL.as_secs()
    );
}

/// Accepts until `drain` turns true (the service is stopping); dropping the
/// listener then refuses new connections at the TCP level.
pub async fn serve(
    listener: TcpListener,
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
            r = listener.accept() => r,
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
        let (tcp, peer) = match accepted {
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
        if let Err(e) = tcp.set_nodelay(true) {
            warn!(%peer, "set_nodelay failed: {e}");
        }
        let span = info_span!("relay", conn, %peer);
        let (settings, events, drain) = (settings.clone(), events.clone(), drain.clone());
        tokio::spawn(
            conn::serve(conn, tcp, peer, settings, events, admitted, drain).instrument(span),
        );
    }
}
