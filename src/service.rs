//! Wiring: one task owns the [`Registry`] and carries out its actions; the XMPP
//! link and the relay listener run beside it and talk to it over channels.
//!
//! Because the registry has exactly one owner, no mutex guards it. The data path
//! (blocks) does not pass through here: this task only tells the relay's `plane` who
//! joined and who left.

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use minidom::Element;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::core::registry::{Input, Now, Registry, Settings};
use crate::proto::outbound;
use crate::relay::conn::{Event, RelaySettings};
use crate::relay::dispatch::RelayDispatch;
use crate::relay::listener;
use crate::xmpp::link::{self, LinkConfig};
use crate::xmpp::reader::ReaderLimits;

/// Stanzas waiting to go out on the component link (also while it reconnects).
pub const OUTBOUND_QUEUE: usize = 4096;
/// Stanzas and relay events waiting for the registry task.
pub const INBOUND_QUEUE: usize = 1024;

/// Why the service could not run.
#[derive(Debug)]
pub enum RunError {
    /// The relay port could not be bound.
    Bind(std::net::SocketAddr, std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Bind(addr, e) => write!(f, "cannot listen on relay address {addr}: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Binds the relay port and runs until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let addr = config.relay.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| RunError::Bind(addr, e))?;
    run_with_listener(config, listener, shutdown).await;
    Ok(())
}

/// Completes once the shutdown flag is set (or its sender is gone).
pub async fn stopped(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await.map(|_| ());
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the service on an already bound relay listener until `shutdown` completes.
pub async fn run_with_listener(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    if config.tls.is_some() {
        warn!("[tls] is configured but starttls is not implemented yet; not advertised");
    }
    if config.http.is_some() {
        warn!("[http] is configured but the HTTP preamble is not implemented yet; not advertised");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let (in_tx, mut in_rx) = mpsc::channel::<Element>(INBOUND_QUEUE);
    let (out_tx, out_rx) = mpsc::channel::<Element>(OUTBOUND_QUEUE);
    let link_cfg = LinkConfig {
        server: config.component.server.to_string(),
        domain: config.component.jid.clone(),
        secret: config.component.secret.clone(),
        limits: ReaderLimits {
            max_depth: config.component.max_depth,
            max_stanza_bytes: config.component.max_inbound_stanza_size,
            ..ReaderLimits::default()
        },
    };
    let link = tokio::spawn(link::run(link_cfg, in_tx, out_rx, stop_rx.clone()));

    let relay_settings = Arc::new(RelaySettings {
        handshake_timeout: config.timeouts.handshake,
        block_size: config.relay.block_size,
        window: config.relay.window,
    });
    let window = config.relay.window;
    let (ev_tx, mut ev_rx) = mpsc::channel::<Event>(INBOUND_QUEUE);
    match listener.local_addr() {
        Ok(a) => info!(relay = %a, "relay port listening"),
        Err(e) => warn!("relay port address unknown: {e}"),
    }
    let bound_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let relay = tokio::spawn(listener::serve(
        listener,
        relay_settings,
        config.relay.max_connections,
        ev_tx,
        stop_rx,
    ));

    // `listen = "…:0"` (tests) binds a free port; advertise the one we got.
    let port = match config.relay.port {
        0 => bound_port,
        p => p,
    };
    let mut registry = Registry::new(Settings {
        domain: config.component.jid.clone(),
        host: config.relay.host.clone(),
        port,
        wait_default_ms: config.timeouts.wait_ms(),
        expire_default_ms: config.timeouts.expire_ms(),
        features: Vec::new(),
        show_os: config.component.version_os,
        limits: config.limits,
        max_stanza_size: config.component.max_stanza_size,
    });
    let mut relays = RelayDispatch::new(window);
    tokio::pin!(shutdown);
    loop {
        let deadline = registry.next_deadline();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        let mut stanzas = Vec::new();
        let input = tokio::select! {
            Some(e) = in_rx.recv() => Input::Stanza(e),
            Some(ev) = ev_rx.recv() => match ev {
                Event::Hello { conn, hello, control } => {
                    relays.hello(conn, control);
                    Input::RelayHello { conn, hello }
                }
                Event::Key { conn, key } => Input::RelayKey { conn, key },
                Event::Closed { conn } => {
                    stanzas = relays.closed(conn);
                    Input::RelayClosed { conn }
                }
            },
            _ = sleep => Input::Tick,
            _ = &mut shutdown => break,
        };
        let now = Now {
            mono: tokio::time::Instant::now().into_std(),
            unix: unix_now(),
        };
        for action in registry.handle(input, now) {
            stanzas.extend(relays.apply(action));
        }
        for e in stanzas {
            // Prosody cuts the link on a stanza over its limit: never send one whole.
            let Some(e) = outbound::guard(e, config.component.max_stanza_size) else {
                continue;
            };
            tracing::trace!(stanza = %String::from(&e), "to XMPP");
            if let Err(e) = out_tx.try_send(e) {
                warn!("outbound stanza dropped: {e}");
            }
        }
    }
    info!("shutting down");
    let _ = stop_tx.send(true);
    // Dropping the controls closes every relay connection.
    relays.close_all();
    let _ = relay.await;
    drop(out_tx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), link).await;
}
