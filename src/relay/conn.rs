//! One accepted relay connection: the timed handshake, then the data phase.
//!
//! Preamble (optional, `super::preamble`): the HTTP request on the `[http]`
//! listener, then `starttls` and the TLS handshake. The default handshake and the
//! data phase then run on the plain or TLS connection alike.
//!
//! Handshake (XEP "Connecting to DSPS via default method"): read the hello line,
//! tell the service, write the KEY1 it hands back, read the KEY2 line, tell the
//! service, and wait for the verdict. The whole exchange runs under the configured
//! handshake timeout, inside this connection's own task, so a slow or silent client
//! never holds up anyone else.
//!
//! The data phase itself is `super::data`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::data::data_phase;
use super::gate::Admitted;
use super::plane::Members;
use super::preamble::{self, Entry, RelayIo};
use super::queue::QueueRx;
use crate::core::registry::{ConnId, TrafficSlot};
use crate::logging::redact;
use crate::metrics::{HandshakeOutcome, Metrics};
use crate::proto::handshake::{parse_first_line, take_line, FirstLine, Hello, MAX_LINE_LEN};
use crate::proto::query::Role;

/// First capacity of a connection's handshake buffer.
const HANDSHAKE_BUF: usize = 256;

/// Tunables of the relay port.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Bound on the whole handshake.
    pub handshake_timeout: Duration,
    /// Most data bytes per block.
    pub block_size: usize,
    /// Blocks queued per recipient before senders are paused.
    pub window: usize,
    /// `[tls]`, loaded: `starttls` is refused without it.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Where connections count handshakes, bytes and blocks.
    pub metrics: Metrics,
    /// Congestion control for peers on this machine (`relay.loopback_congestion`);
    /// `None` keeps the system's.
    pub loopback_congestion: Option<super::tcp_options::LoopbackCongestion>,
}

/// What a connection tells the service.
#[derive(Debug)]
pub enum Event {
    /// The hello line arrived; `control` reaches this connection from now on.
    Hello {
        /// The connection.
        conn: ConnId,
        /// What it said.
        hello: Hello,
        /// Commands to this connection.
        control: mpsc::Sender<Control>,
    },
    /// The KEY2 line arrived.
    Key {
        /// The connection.
        conn: ConnId,
        /// The line.
        key: String,
    },
    /// Our outbound relay reached `target` and read its KEY1.
    Dialed {
        /// The connection.
        conn: ConnId,
        /// Which target answered.
        target: usize,
        /// The far DSPS's KEY1.
        key1: String,
    },
    /// Our outbound relay reached none of its targets; `Closed` follows.
    Unreachable {
        /// The connection.
        conn: ConnId,
        /// What went wrong with the last one.
        why: String,
    },
    /// The connection is over.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}

/// What the service tells a connection.
#[derive(Debug)]
pub enum Control {
    /// Write this handshake line.
    WriteLine(String),
    /// The handshake succeeded; start the data phase.
    Attach(Box<Attached>),
    /// Close now.
    Close(&'static str),
    /// Deliver what is queued, then close.
    Drain,
    /// The peer dropped itself: stop sending to it, keep forwarding what it sends
    /// until it closes its side (bounded by [`FINISH_TIMEOUT`]), then close.
    Finish,
}

/// The data phase's equipment, handed over by the service.
#[derive(Debug)]
pub struct Attached {
    /// The id framed in front of this peer's blocks.
    pub peer_id: String,
    /// Its rights.
    pub role: Role,
    /// Blocks for this peer.
    pub queue: QueueRx,
    /// The stream's members.
    pub members: watch::Receiver<Members>,
    /// Where to record throughput.
    pub traffic: TrafficSlot,
    /// The stream's minthroughput in bytes/s (0 = none).
    pub min_rate: u64,
    /// Our own link to another DSPS: read framed blocks, write raw data.
    pub outbound: bool,
}

/// Runs one accepted connection to its end, then reports `Closed`. `entry` is the
/// listener it came in on; `admitted` is its place at the gate (released when this
/// returns); `drain` turns true when the service stops.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    conn: ConnId,
    tcp: TcpStream,
    peer: SocketAddr,
    entry: Entry,
    settings: Arc<RelaySettings>,
    events: mpsc::Sender<Event>,
    admitted: Admitted,
    drain: watch::Receiver<bool>,
) {
    let Admitted {
        ticket,
        mut evicted,
        ..
    } = admitted;
    // Handshake lines are short; the buffer grows (up to MAX_LINE_LEN) only for a
    // long one, so thousands of handshakes at once stay cheap.
    let mut buf = BytesMut::with_capacity(HANDSHAKE_BUF);
    let (control, mut control_rx) = mpsc::channel(8);
    let mut stop = drain.clone();
    // In its own allocation, freed once the handshake is over: the task an idle
    // peer keeps is then no bigger than its data phase.
    let setup = Box::pin(async {
        let (mut io, first) = preamble::open(entry, tcp, &mut buf, settings.tls.as_ref()).await?;
        let attached = handshake(
            conn,
            &mut io,
            first,
            &mut buf,
            &events,
            control,
            &mut control_rx,
            &ticket,
        )
        .await?;
        Ok::<_, String>((io, attached))
    });
    // Biased: a handshake the registry has just completed (its Attach is waiting in
    // the channel) goes on to the data phase, where a drain delivers its queue,
    // rather than being abandoned by a signal that arrived at the same moment.
    let outcome = tokio::select! {
        biased;
        r = tokio::time::timeout(settings.handshake_timeout, setup) => {
            r.map(|h| h.map_err(Abandoned::Failed))
        }
        // Counted in the listener's tally of evictions; one line each would be a
        // flood under a slowloris.
        _ = &mut evicted => Ok(Err(Abandoned::Evicted)),
        _ = crate::service::stopped(&mut stop) => Ok(Err(Abandoned::ShuttingDown)),
    };
    let metrics = &settings.metrics;
    match outcome {
        Err(_) => {
            metrics.handshake(HandshakeOutcome::Timeout);
            warn!(peer = %redact::addr(peer), "relay handshake timed out; closing")
        }
        Ok(Err(Abandoned::Evicted)) => {
            metrics.handshake(HandshakeOutcome::Evicted);
            debug!(peer = %redact::addr(peer), "closed to make room for a newer connection from the same source")
        }
        Ok(Err(Abandoned::ShuttingDown)) => {
            metrics.handshake(HandshakeOutcome::Shutdown);
            debug!(peer = %redact::addr(peer), "handshake abandoned: shutting down")
        }
        Ok(Err(Abandoned::Failed(why))) => {
            metrics.handshake(HandshakeOutcome::Failed);
            warn!(peer = %redact::addr(peer), "relay handshake failed: {why}; closing")
        }
        Ok(Ok((io, attached))) => {
            metrics.handshake(HandshakeOutcome::Ok);
            ticket.attached();
            let tls = matches!(io, RelayIo::Tls(_));
            info!(peer = %redact::addr(peer), id = %attached.peer_id, tls, "relay peer attached");
            let end = match io {
                RelayIo::Plain(tcp) => {
                    let (rd, wr) = tcp.into_split();
                    let phase = data_phase(
                        conn,
                        rd,
                        wr,
                        buf,
                        attached,
                        &mut control_rx,
                        &settings,
                        drain,
                    );
                    phase.await
                }
                RelayIo::Tls(stream) => {
                    let (rd, wr) = tokio::io::split(*stream);
                    let phase = data_phase(
                        conn,
                        rd,
                        wr,
                        buf,
                        attached,
                        &mut control_rx,
                        &settings,
                        drain,
                    );
                    phase.await
                }
            };
            info!(peer = %redact::addr(peer), "relay connection ended: {end}");
        }
    }
    drop(ticket);
    let _ = events.send(Event::Closed { conn }).await;
}

/// Why a handshake did not complete (a timeout aside).
enum Abandoned {
    /// It went wrong; the reason is logged.
    Failed(String),
    /// Closed to make room for a newer connection from the same source.
    Evicted,
    /// The service is stopping.
    ShuttingDown,
}

/// Reads one handshake line (at most [`MAX_LINE_LEN`] bytes are buffered).
pub(super) async fn read_line<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
) -> Result<String, String> {
    loop {
        if let Some(line) = take_line(buf).map_err(|e| e.to_string())? {
            return Ok(line);
        }
        // Never buffer more than one line's worth while unauthenticated.
        let room = (MAX_LINE_LEN + 1).saturating_sub(buf.len());
        let n = io
            .read_buf(&mut (&mut *buf).limit(room))
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("peer closed the connection during the handshake".into());
        }
    }
}

/// The default handshake. `first` is the hello line if the preamble already read
/// it (no TLS); otherwise it is read here.
#[allow(clippy::too_many_arguments)]
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    conn: ConnId,
    io: &mut S,
    first: Option<String>,
    buf: &mut BytesMut,
    events: &mpsc::Sender<Event>,
    control: mpsc::Sender<Control>,
    control_rx: &mut mpsc::Receiver<Control>,
    ticket: &super::gate::Ticket,
) -> Result<Attached, String> {
    let first = match first {
        Some(line) => line,
        None => read_line(io, buf).await?,
    };
    // Preambles are over (`preamble::open`): only the hello line may come now.
    let hello = match parse_first_line(&first) {
        Ok(FirstLine::Hello(h)) => h,
        Ok(FirstLine::StartTls) => return Err("a second starttls inside TLS".into()),
        Ok(FirstLine::HttpGet) => return Err("an HTTP request inside TLS".into()),
        Err(e) => return Err(e.to_string()),
    };
    ticket.hello();
    debug!(client = %hello.client, dsps = %hello.dsps, "hello");
    events
        .send(Event::Hello {
            conn,
            hello,
            control,
        })
        .await
        .map_err(|_| "service stopped".to_string())?;
    match control_rx.recv().await {
        Some(Control::WriteLine(line)) => io
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("write failed: {e}"))?,
        Some(Control::Close(why)) => return Err(why.to_string()),
        other => return Err(format!("unexpected service answer {other:?}")),
    }
    // The service may close this attempt while we wait for KEY2 (a wrong KEY1 in
    // the auth iq, a newer attempt for the same pair, the seat dropped): listen for
    // that too, or the socket would stay open until the handshake timeout.
    let key = tokio::select! {
        line = read_line(io, buf) => line?,
        c = control_rx.recv() => return Err(match c {
            Some(Control::Close(why)) => why.to_string(),
            None => "service stopped".to_string(),
            Some(other) => format!("unexpected service answer {other:?}"),
        }),
    };
    events
        .send(Event::Key { conn, key })
        .await
        .map_err(|_| "service stopped".to_string())?;
    match control_rx.recv().await {
        Some(Control::Attach(a)) => Ok(*a),
        Some(Control::Close(why)) => Err(why.to_string()),
        other => Err(format!("unexpected service answer {other:?}")),
    }
}
