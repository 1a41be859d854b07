//! Relay links this DSPS dials (XEP "Stream Creation/Relay", PROFILE 23): the
//! client half of "Connecting to DSPS via default method", run against another DSPS.
//!
//! For each target in order, within the handshake timeout: resolve it, keep only
//! the addresses the operator's policy permits, connect, write the hello line and
//! read KEY1. The first target that answers is reported (`Event::Dialed`); if none
//! does, `Event::Unreachable` says why the last one failed. The registry then has
//! the creator's client trade KEY1 for KEY2 and tells this task to write it
//! (`Control::WriteLine`) and to join the stream (`Control::Attach`), within the
//! handshake timeout again. From then on the link is a relay connection like an
//! accepted one, except for its framing (see `data`): it reads the far DSPS's
//! framed blocks and writes raw data.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{info, info_span, warn};

use super::conn::{read_line, Attached, Control, Event, RelaySettings};
use super::data::data_phase;
use super::tcp_options::{self, LoopbackCongestion};
use crate::core::registry::ConnId;
use crate::core::relay_policy::{DialPlan, RelayPolicy};
use crate::logging::redact;
use crate::logging::span_per_poll::span_per_poll;
use crate::proto::handshake::{hello_line, MAX_LINE_LEN};

/// Longest KEY1 accepted from a far DSPS.
const MAX_KEY_LEN: usize = 256;

/// Starts relay links; owned by the relay dispatch.
#[derive(Debug, Clone)]
pub struct Dialer {
    settings: Arc<RelaySettings>,
    policy: Arc<RelayPolicy>,
    events: mpsc::Sender<Event>,
    drain: watch::Receiver<bool>,
}

impl Dialer {
    /// A dialer that reports to `events` and stops when `drain` turns true.
    pub fn new(
        settings: Arc<RelaySettings>,
        policy: Arc<RelayPolicy>,
        events: mpsc::Sender<Event>,
        drain: watch::Receiver<bool>,
    ) -> Dialer {
        Dialer {
            settings,
            policy,
            events,
            drain,
        }
    }

    /// Starts one link in its own task; returns the handle that commands it.
    pub fn dial(
        &self,
        conn: ConnId,
        client: String,
        targets: Vec<DialPlan>,
    ) -> mpsc::Sender<Control> {
        let (tx, rx) = mpsc::channel(8);
        let task = run(conn, client, targets, self.clone(), rx);
        tokio::spawn(span_per_poll(task, move || info_span!("relay-link", conn)));
        tx
    }
}

async fn run(
    conn: ConnId,
    client: String,
    targets: Vec<DialPlan>,
    d: Dialer,
    mut control: mpsc::Receiver<Control>,
) {
    let mut stop = d.drain.clone();
    let reached = tokio::select! {
        r = reach_any(&client, &targets, &d) => r,
        _ = crate::service::stopped(&mut stop) => Err("the DSPS is shutting down".into()),
        // The registry gave the link up (its stream ended) while we dialled.
        _ = control.recv() => Err("no longer wanted".into()),
    };
    let (tcp, buf, target, key1) = match reached {
        Ok(r) => r,
        Err(why) => {
            let _ = d.events.send(Event::Unreachable { conn, why }).await;
            let _ = d.events.send(Event::Closed { conn }).await;
            return;
        }
    };
    let far = targets[target].far_jid.clone();
    let _ = d.events.send(Event::Dialed { conn, target, key1 }).await;
    let mut tcp = tcp;
    let attached = tokio::select! {
        r = tokio::time::timeout(d.settings.handshake_timeout, key_exchange(&mut tcp, &mut control)) => {
            r.unwrap_or_else(|_| Err("the key exchange through the creator timed out".into()))
        }
        _ = crate::service::stopped(&mut stop) => Err("the DSPS is shutting down".into()),
    };
    match attached {
        Err(why) => warn!(%far, "relay link handshake failed: {why}; closing"),
        Ok(a) => {
            info!(%far, id = %a.peer_id, "relay link attached");
            let (rd, wr) = tcp.into_split();
            let end = data_phase(conn, rd, wr, buf, a, &mut control, &d.settings, d.drain).await;
            info!(%far, "relay link ended: {end}");
        }
    }
    let _ = d.events.send(Event::Closed { conn }).await;
}

/// Waits for KEY2 to write, then for the order to join the stream.
async fn key_exchange(
    tcp: &mut TcpStream,
    control: &mut mpsc::Receiver<Control>,
) -> Result<Attached, String> {
    match control.recv().await {
        Some(Control::WriteLine(line)) => tcp
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("write failed: {e}"))?,
        Some(Control::Close(why)) => return Err(why.to_string()),
        None => return Err("service stopped".into()),
        Some(other) => return Err(format!("unexpected service answer {other:?}")),
    }
    match control.recv().await {
        Some(Control::Attach(a)) => Ok(*a),
        Some(Control::Close(why)) => Err(why.to_string()),
        None => Err("service stopped".into()),
        Some(other) => Err(format!("unexpected service answer {other:?}")),
    }
}

type Reached = (TcpStream, BytesMut, usize, String);

async fn reach_any(client: &str, targets: &[DialPlan], d: &Dialer) -> Result<Reached, String> {
    let mut last = String::from("no destination to try");
    for (i, plan) in targets.iter().enumerate() {
        let attempt = tokio::time::timeout(d.settings.handshake_timeout, reach(client, plan, d));
        let why = match attempt.await {
            Ok(Ok((tcp, buf, key1))) => return Ok((tcp, buf, i, key1)),
            Ok(Err(why)) => why,
            Err(_) => "timed out".to_string(),
        };
        let addr = redact::authority(&plan.authority());
        warn!(far = %plan.far_jid, %addr, "relay destination failed: {why}");
        last = format!("{addr}: {why}");
    }
    Err(last)
}

/// One target: its permitted addresses in turn, then hello and KEY1.
async fn reach(
    client: &str,
    plan: &DialPlan,
    d: &Dialer,
) -> Result<(TcpStream, BytesMut, String), String> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(plan.authority())
        .await
        .map_err(|e| format!("does not resolve: {e}"))?
        .collect();
    let permitted: Vec<SocketAddr> = resolved
        .iter()
        .copied()
        .filter(|a| d.policy.permits(plan, a.ip()))
        .collect();
    if permitted.is_empty() {
        let list: Vec<String> = resolved
            .iter()
            .map(|a| redact::ip(a.ip()).to_string())
            .collect();
        return Err(format!(
            "resolves only to addresses relays may not dial ({}); see relay.allow_targets",
            list.join(", ")
        ));
    }
    let mut last = String::new();
    let congestion = d.settings.loopback_congestion.as_ref();
    for addr in permitted {
        match connect(addr, congestion).await {
            Ok(tcp) => {
                tcp_options::apply(&tcp, addr, congestion);
                return hello(tcp, client, plan).await;
            }
            Err(e) => last = format!("connect to {} failed: {e}", redact::addr(addr)),
        }
    }
    Err(last)
}

/// Connects to `addr`, with the congestion control a loopback target gets set
/// before the connect (`tcp_options`).
async fn connect(
    addr: SocketAddr,
    congestion: Option<&LoopbackCongestion>,
) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(c) = congestion {
        c.before_connect(&socket, addr);
    }
    socket.connect(addr).await
}

async fn hello(
    mut tcp: TcpStream,
    client: &str,
    plan: &DialPlan,
) -> Result<(TcpStream, BytesMut, String), String> {
    tcp.write_all(hello_line(client, &plan.far_jid).as_bytes())
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    let mut buf = BytesMut::with_capacity(MAX_LINE_LEN);
    let key1 = read_line(&mut tcp, &mut buf)
        .await
        .map_err(|e| format!("{e} (does the far DSPS know {}?)", plan.far_jid))?;
    if key1.is_empty() || key1.len() > MAX_KEY_LEN || key1.contains(char::is_whitespace) {
        return Err("the far DSPS answered the hello with something that is not a key".into());
    }
    Ok((tcp, buf, key1))
}
