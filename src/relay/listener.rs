//! The relay port's accept loop: a connection limit, TCP_NODELAY, and one task per
//! connection (the handshake runs inside that task, never in this loop).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{info_span, warn, Instrument};

use super::conn::{self, Event, RelaySettings};

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    settings: Arc<RelaySettings>,
    max_connections: usize,
    events: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(max_connections));
    let mut next_conn = 0u64;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = crate::service::stopped(&mut shutdown) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!("relay accept failed: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, max_connections, "relay connection limit reached; closing");
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            warn!(%peer, "set_nodelay failed: {e}");
        }
        next_conn += 1;
        let conn = next_conn;
        let span = info_span!("relay", conn, %peer);
        let (settings, events) = (settings.clone(), events.clone());
        tokio::spawn(
            async move {
                conn::serve(conn, tcp, peer, settings, events).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}
