//! Wiring: one task owns the [`Registry`] and carries out its actions; the XMPP
//! link and the relay listener run beside it and talk to it over channels.
//!
//! Because the registry has exactly one owner, no mutex guards it. The data path
//! (blocks) does not pass through here: this task only tells the relay's `plane` who
//! joined and who left.
//!
//! Stopping (SIGTERM/SIGINT) is a graceful drain, bounded by `[timeouts] drain`:
//! the relay stops accepting and every connection stops reading; the registry ends
//! every stream the way "Stream shutdown" ends one (so the relay delivers what it
//! already read, then each peer gets its drop notice); `create` gets 503; once every
//! relay connection has closed (or the deadline, less a reserve for the link, has
//! passed and the rest is cut) the component link sends what is queued and closes
//! the XMPP stream.
//!
//! [`run_with_link`] runs everything but the component link, with channels in its
//! place, so tests can drive the relay without an XMPP server.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use minidom::Element;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::Config;
use crate::core::admission::AdmissionLimits;
use crate::core::link_status::LinkStatus;
use crate::core::registry::{Action, Input, Now, Registry, Settings};
use crate::core::reply_budget::{Rate, ReplyBudget};
use crate::logging::control::LogControl;
use crate::logging::redact;
use crate::metrics::endpoint::{self, CensusRequest, Sources};
use crate::metrics::Metrics;
use crate::proto::outbound;
use crate::relay::advertise;
use crate::relay::conn::{Event, RelaySettings};
use crate::relay::dispatch::RelayDispatch;
use crate::relay::listener::{self, Transports};
use crate::relay::outbound::Dialer;
use crate::relay::tcp_options::LoopbackCongestion;
use crate::relay::tls::{self, TlsError};
use crate::relay::tls_reload::TlsReloader;
use crate::xmpp::link::{self, LinkConfig};
use crate::xmpp::reader::ReaderLimits;

/// Stanzas waiting to go out on the component link (also while it reconnects).
pub const OUTBOUND_QUEUE: usize = 4096;
/// Stanzas and relay events waiting for the registry task.
pub const INBOUND_QUEUE: usize = 1024;
/// Most of the drain kept back for closing the component link (a quarter of the
/// drain when that is less): the link needs a moment to send the drop notices and
/// `</stream:stream>` after the relay is done.
pub const LINK_RESERVE: Duration = Duration::from_secs(1);
/// How long a link that missed the drain's deadline gets to close once told to.
pub const LINK_CUT_GRACE: Duration = Duration::from_millis(250);

/// Why the service could not run.
#[derive(Debug)]
pub enum RunError {
    /// The relay port could not be bound.
    Bind(std::net::SocketAddr, std::io::Error),
    /// The `[http]` listener could not be bound.
    BindHttp(std::net::SocketAddr, std::io::Error),
    /// The `[metrics]` listener could not be bound.
    BindMetrics(std::net::SocketAddr, std::io::Error),
    /// The `[tls]` certificate or key cannot be used.
    Tls(TlsError),
    /// `relay.loopback_congestion` names a congestion control this process cannot use.
    Congestion(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Bind(addr, e) => write!(f, "cannot listen on relay address {addr}: {e}"),
            RunError::BindHttp(addr, e) => {
                write!(f, "cannot listen on http.listen address {addr}: {e}")
            }
            RunError::BindMetrics(addr, e) => {
                write!(f, "cannot listen on metrics.listen address {addr}: {e}")
            }
            RunError::Tls(e) => write!(f, "{e}"),
            RunError::Congestion(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Loads `[tls]` (first, so a bad file is reported before any port is taken), checks
/// that `relay.loopback_congestion` can be used, and binds the relay port and the
/// `[http]` listener. With `[tls]`, also returns what reloads its certificate
/// (SIGHUP).
pub async fn prepare(config: &Config) -> Result<(Transports, Option<TlsReloader>), RunError> {
    let (tls, reloader) = match &config.tls {
        Some(t) => {
            let (tls, reloader) = tls::load(t).map_err(RunError::Tls)?;
            (Some(tls), Some(reloader))
        }
        None => (None, None),
    };
    if let Some(name) = &config.relay.loopback_congestion {
        crate::relay::tcp_options::check(name).map_err(RunError::Congestion)?;
    }
    let addr = config.relay.listen;
    let relay = TcpListener::bind(addr)
        .await
        .map_err(|e| RunError::Bind(addr, e))?;
    let http = match &config.http {
        Some(h) => Some(
            TcpListener::bind(h.listen)
                .await
                .map_err(|e| RunError::BindHttp(h.listen, e))?,
        ),
        None => None,
    };
    // At once, so that no connection accepted before the service runs (while it
    // dials Prosody) starts without it.
    let congestion = loopback_congestion(config, &relay, http.as_ref());
    let transports = Transports {
        relay,
        http,
        tls,
        congestion,
    };
    Ok((transports, reloader))
}

/// `relay.loopback_congestion`, set on the listeners so that connections from this
/// machine start with it (`relay::tcp_options`), or a warning. `prepare` does this;
/// the service does it for a caller that bound its own listeners (a test).
fn loopback_congestion(
    config: &Config,
    relay: &TcpListener,
    http: Option<&TcpListener>,
) -> Option<LoopbackCongestion> {
    let name = config.relay.loopback_congestion.as_deref()?;
    let c = match LoopbackCongestion::new(name) {
        Ok(c) => c,
        Err(why) => {
            warn!("{why}; connections from this machine keep the system's choice");
            return None;
        }
    };
    for listener in std::iter::once(relay).chain(http) {
        if let Err(e) = c.on_listener(listener) {
            warn!(
                "a relay listener did not take TCP congestion control {name:?}: {e}; \
                 it is set on each connection instead"
            );
        }
    }
    info!(
        loopback = c.name(),
        elsewhere = c.system(),
        "TCP congestion control for relay connections"
    );
    Some(c)
}

/// Binds the `[metrics]` endpoint's listener, if `[metrics]` is configured.
pub async fn bind_metrics(config: &Config) -> Result<Option<TcpListener>, RunError> {
    match &config.metrics {
        Some(m) => TcpListener::bind(m.listen)
            .await
            .map(Some)
            .map_err(|e| RunError::BindMetrics(m.listen, e)),
        None => Ok(None),
    }
}

/// What the binary may hand the service beyond its configuration.
#[derive(Debug, Default)]
pub struct Hooks {
    /// The process's log filter, so operators can change it ("Set log level").
    pub log: Option<LogControl>,
    /// The `[metrics]` endpoint's listener ([`bind_metrics`]); none: no endpoint.
    pub metrics: Option<TcpListener>,
}

/// Prepares the transports ([`prepare`]) and the `[metrics]` listener, and runs
/// them ([`run_prepared`]) until `shutdown` completes. The `[tls]` certificate
/// stays as loaded.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let (transports, _reloader) = prepare(&config).await?;
    let hooks = Hooks {
        metrics: bind_metrics(&config).await?,
        ..Hooks::default()
    };
    run_prepared(config, transports, hooks, shutdown).await;
    Ok(())
}

/// Checks the advertised relay host ([`advertise::check`], before the relay port
/// says it is listening) and runs on `transports` until `shutdown` completes and
/// the drain is over.
pub async fn run_prepared(
    config: Config,
    transports: Transports,
    hooks: Hooks,
    shutdown: impl Future<Output = ()>,
) {
    advertise::check(&config.relay.host, config.relay.port).await;
    run_with_listener(config, transports, hooks, shutdown).await;
}

/// The reply budget `[limits]` asks for: a burst of two seconds' worth, and room
/// for two of the largest replies whatever the rate.
fn reply_budget_of(config: &Config) -> ReplyBudget {
    let rate = |per_second: usize| Rate {
        per_second,
        burst: per_second
            .saturating_mul(2)
            .max(config.component.max_stanza_size.saturating_mul(2)),
    };
    ReplyBudget::new(
        rate(config.limits.reply_bytes_per_second),
        rate(config.limits.reply_bytes_per_second_total),
    )
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

/// The service's ends of the component link: stanzas from the XMPP server come in
/// on `inbound`; stanzas for it go out on `outbound`; `status` says what the
/// link is doing.
#[derive(Debug)]
pub struct LinkEnds {
    /// Stanzas from the XMPP server.
    pub inbound: mpsc::Receiver<Element>,
    /// Stanzas to the XMPP server. The service drops it when it is done, so the
    /// far end sees the channel close after the last stanza.
    pub outbound: mpsc::Sender<Element>,
    /// The link's state, for the operators' "Server info" (systemd's reporter
    /// subscribes to the same channel).
    pub status: watch::Receiver<LinkStatus>,
}

/// The far ends of [`LinkEnds`]: what `xmpp::link::run` (or a test) holds.
#[derive(Debug)]
pub struct FarEnds {
    /// Feeds the service's `inbound`.
    pub to_dsps: mpsc::Sender<Element>,
    /// Drains the service's `outbound`.
    pub from_dsps: mpsc::Receiver<Element>,
    /// Publishes the link's state.
    pub status: watch::Sender<LinkStatus>,
}

/// A connected pair of link channels, bounded by [`INBOUND_QUEUE`] and
/// [`OUTBOUND_QUEUE`].
pub fn link_channels() -> (LinkEnds, FarEnds) {
    let (to_dsps, inbound) = mpsc::channel(INBOUND_QUEUE);
    let (outbound, from_dsps) = mpsc::channel(OUTBOUND_QUEUE);
    let (status_tx, status) = watch::channel(LinkStatus::default());
    (
        LinkEnds {
            inbound,
            outbound,
            status,
        },
        FarEnds {
            to_dsps,
            from_dsps,
            status: status_tx,
        },
    )
}

/// How [`run_with_link`] ended.
#[derive(Debug)]
pub struct Stopped {
    /// When the whole drain must be over: the link has until then to close.
    pub link_deadline: Instant,
    /// The inbound end, handed back: a link whose inbound channel is gone stops at
    /// once, and what still arrives while it sends the last stanzas (clients
    /// acknowledging their drop notices) would then cut those stanzas off. The
    /// caller keeps reading (and dropping) from it until the link is closed.
    pub inbound: mpsc::Receiver<Element>,
}

/// The drain's clock, started by the first signal.
#[derive(Debug, Clone, Copy)]
struct Drain {
    started: Instant,
    relay_deadline: Instant,
    link_deadline: Instant,
}

impl Drain {
    fn start(bound: Duration) -> Drain {
        let started = Instant::now();
        let reserve = LINK_RESERVE.min(bound / 4);
        Drain {
            started,
            relay_deadline: started + (bound - reserve),
            link_deadline: started + bound,
        }
    }
}

/// Runs the service on an already bound relay listener (or [`Transports`]) until
/// `shutdown` completes and the drain is over, the component link included.
pub async fn run_with_listener(
    config: Config,
    listener: impl Into<Transports>,
    hooks: Hooks,
    shutdown: impl Future<Output = ()>,
) {
    let (ends, far) = link_channels();
    let (stop_tx, stop_rx) = watch::channel(false);
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
    // Both return at once unless systemd started us (NOTIFY_SOCKET, WATCHDOG_USEC).
    let reporter = tokio::spawn(crate::systemd::report_link(far.status.subscribe()));
    let watchdog = tokio::spawn(crate::systemd::watchdog());
    let mut link = tokio::spawn(link::run(
        link_cfg,
        far.to_dsps,
        far.from_dsps,
        stop_rx,
        far.status,
    ));
    let Stopped {
        link_deadline,
        mut inbound,
    } = run_with_link_hooks(config, listener, ends, hooks, shutdown).await;
    // `outbound` is closed now: the link sends what is still queued (the drop
    // notices), closes the XMPP stream and returns. Past the deadline it is told
    // to stop, and then abandoned.
    let closed = tokio::time::timeout_at(link_deadline, async {
        loop {
            tokio::select! {
                _ = &mut link => return,
                // Too late to act on; see `Stopped::inbound`.
                Some(_) = inbound.recv() => {}
            }
        }
    })
    .await;
    if closed.is_err() {
        warn!("the component link did not close within the drain; cutting it");
        let _ = stop_tx.send(true);
        if tokio::time::timeout(LINK_CUT_GRACE, &mut link)
            .await
            .is_err()
        {
            link.abort();
        }
    }
    watchdog.abort();
    // The link published `Closed` (or was aborted, dropping its sender): either
    // ends the reporter after its last status line.
    let _ = tokio::time::timeout(LINK_CUT_GRACE, reporter).await;
}

/// Runs the registry and the relay on `listener` (a bare relay port or
/// [`Transports`]), with `link` in place of the component link, until `shutdown`
/// completes and the relay has drained. Returns once every relay connection is
/// closed (or cut at the deadline) and every stanza is handed to `link.outbound`,
/// which it then drops.
pub async fn run_with_link(
    config: Config,
    listener: impl Into<Transports>,
    link: LinkEnds,
    shutdown: impl Future<Output = ()>,
) -> Stopped {
    run_with_link_hooks(config, listener, link, Hooks::default(), shutdown).await
}

/// [`run_with_link`] with what the binary hands over (`hooks`).
pub async fn run_with_link_hooks(
    config: Config,
    listener: impl Into<Transports>,
    link: LinkEnds,
    hooks: Hooks,
    shutdown: impl Future<Output = ()>,
) -> Stopped {
    let Hooks {
        log: mut log_control,
        metrics: metrics_listener,
    } = hooks;
    let transports = listener.into();
    let features = transports.features();
    let Transports {
        relay: listener,
        http,
        tls,
        congestion,
    } = transports;
    // Only a caller that passes a bare listener (a test) can get here with these.
    if config.tls.is_some() && tls.is_none() {
        warn!("[tls] is configured but no certificate was loaded; starttls is refused");
    }
    if config.http.is_some() && http.is_none() {
        warn!("[http] is configured but no HTTP listener was bound; not advertised");
    }
    let LinkEnds {
        inbound: mut in_rx,
        outbound: out_tx,
        status: mut link_status,
    } = link;
    // Turns true on the first signal: the listener stops, handshakes are abandoned
    // and every relay connection stops reading.
    let (drain_tx, drain_rx) = watch::channel(false);
    let metrics = Metrics::new();
    // Scrapes ask this task for the registry's figures; bounded like the scrapes.
    let (census_tx, mut census_rx) = mpsc::channel::<CensusRequest>(endpoint::MAX_SCRAPES);
    // Dropped with this function: the endpoint serves until the drain is over.
    let _metrics_endpoint = metrics_listener.map(|l| {
        AbortOnDrop(tokio::spawn(endpoint::serve(
            l,
            Sources {
                metrics: metrics.clone(),
                census: census_tx.clone(),
                link: link_status.clone(),
            },
        )))
    });
    let relay_settings = Arc::new(RelaySettings {
        handshake_timeout: config.timeouts.handshake,
        block_size: config.relay.block_size,
        window: config.relay.window,
        tls,
        metrics,
        loopback_congestion: congestion
            .or_else(|| loopback_congestion(&config, &listener, http.as_ref())),
    });
    let limits = AdmissionLimits {
        total: config.relay.max_connections,
        per_source: config.relay.max_connections_per_ip,
        pending_per_source: config.relay.max_pending_per_ip,
    };
    let queue_capacity =
        crate::relay::queue::capacity(config.relay.window, config.relay.block_size);
    let (ev_tx, mut ev_rx) = mpsc::channel::<Event>(INBOUND_QUEUE);
    match listener.local_addr() {
        Ok(a) => info!(relay = %redact::addr(a), "relay port listening"),
        Err(e) => warn!("relay port address unknown: {e}"),
    }
    if let Some(a) = http.as_ref().and_then(|l| l.local_addr().ok()) {
        info!(http = %redact::addr(a), "HTTP listener listening");
    }
    if relay_settings.tls.is_some() {
        info!("starttls enabled (TLS 1.3 and 1.2)");
    }
    let bound_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let dialer = Dialer::new(
        relay_settings.clone(),
        Arc::new(config.relay.policy.clone()),
        ev_tx.clone(),
        drain_rx.clone(),
    );
    let relay = tokio::spawn(listener::serve(
        listener,
        http,
        relay_settings,
        limits,
        ev_tx,
        drain_rx,
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
        features,
        show_os: config.component.version_os,
        limits: config.limits,
        max_stanza_size: config.component.max_stanza_size,
        relay_policy: config.relay.policy.clone(),
        admins: config.admins.clone(),
        started: Now {
            mono: Instant::now().into_std(),
            unix: unix_now(),
        },
        log_filter: log_control.as_ref().map(|l| l.current().to_string()),
    });
    let mut relays = RelayDispatch::new(queue_capacity).with_dialer(dialer);
    // Closed connections' memory goes back to the system, not just to the heap.
    let freed = crate::memory::Freed::default();
    let trimmer = tokio::spawn(freed.clone().trim_forever());
    let mut drain: Option<Drain> = None;
    let max_stanza_size = config.component.max_stanza_size;
    let mut replies = reply_budget_of(&config);
    let mut send = |stanzas: Vec<Element>| {
        let now = Instant::now().into_std();
        for e in stanzas {
            // Prosody cuts the link on a stanza over its limit: never send one whole.
            let Some(e) = outbound::guard(e, max_stanza_size) else {
                continue;
            };
            let e = replies.meter(e, max_stanza_size, now);
            tracing::trace!(stanza = %String::from(&e), "to XMPP");
            if let Err(e) = out_tx.try_send(e) {
                warn!("outbound stanza dropped: {e}");
            }
        }
    };
    tokio::pin!(shutdown);
    let drain = loop {
        if let Some(d) = drain {
            if relays.is_idle() {
                info!(
                    elapsed_ms = d.started.elapsed().as_millis() as u64,
                    "drain complete: every relay connection delivered what was read and closed"
                );
                break d;
            }
        }
        let deadline = registry.next_deadline();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        let cut_at = drain.map(|d| d.relay_deadline);
        let mut stanzas = Vec::new();
        let input = tokio::select! {
            Some(e) = in_rx.recv() => Input::Stanza(e),
            Some(ev) = ev_rx.recv() => match ev {
                Event::Hello { conn, hello, control } => {
                    relays.hello(conn, control);
                    Input::RelayHello { conn, hello }
                }
                Event::Key { conn, key } => {
                    // The handshake's buffers are freed as the connection attaches.
                    freed.note();
                    Input::RelayKey { conn, key }
                }
                Event::Dialed { conn, target, key1 } => Input::RelayDialed { conn, target, key1 },
                Event::Unreachable { conn, why } => Input::RelayUnreachable { conn, why },
                Event::Closed { conn } => {
                    freed.note();
                    stanzas = relays.closed(conn);
                    Input::RelayClosed { conn }
                }
            },
            Some(reply) = census_rx.recv() => {
                // Not an input: the registry is only read.
                let _ = reply.send(registry.census());
                continue;
            }
            _ = sleep => Input::Tick,
            _ = &mut shutdown, if drain.is_none() => {
                let d = Drain::start(config.timeouts.drain);
                drain = Some(d);
                let _ = drain_tx.send(true);
                info!(
                    streams = registry.stream_count(),
                    drain_ms = config.timeouts.drain.as_millis() as u64,
                    "shutting down: draining the relay"
                );
                Input::Shutdown
            }
            _ = tokio::time::sleep_until(cut_at.unwrap_or_else(Instant::now)), if cut_at.is_some() => {
                let [open, ..] = relays.held();
                warn!(open, "drain deadline passed; cutting the relay connections still open");
                send(relays.cut_all());
                break drain.expect("the cut is armed only while draining");
            }
        };
        let now = Now {
            mono: Instant::now().into_std(),
            unix: unix_now(),
        };
        // The link publishes before it forwards a stanza, so whatever this input
        // is sees the link as it is.
        if link_status.has_changed().unwrap_or(false) {
            let status = link_status.borrow_and_update().clone();
            registry.handle(Input::Link(status), now);
        }
        for action in registry.handle(input, now) {
            match action {
                Action::SetLogFilter(filter) => match log_control.as_mut() {
                    Some(l) => {
                        if let Err(e) = l.set(&filter) {
                            warn!("log filter {filter:?} not applied: {e}");
                        }
                    }
                    None => {
                        warn!("log filter {filter:?} asked for, but this process cannot change it")
                    }
                },
                action => {
                    // A stream's seats, maps and queues go with it, often after
                    // its connections closed.
                    if matches!(action, Action::StreamGone { .. }) {
                        freed.note();
                    }
                    stanzas.extend(relays.apply(action))
                }
            }
        }
        send(stanzas);
    };
    let _ = relay.await;
    trimmer.abort();
    Stopped {
        link_deadline: drain.link_deadline,
        inbound: in_rx,
    }
}

/// A task that stops when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
