//! The data phase of one relay connection, after its handshake.
//!
//! A reader cuts what the peer sends into blocks (one `Bytes` each,
//! header included) and hands a reference to every recipient's bounded queue,
//! awaiting room — that wait is the back-pressure that paces the stream to its
//! slowest recipient (PROFILE 7). A writer sends this peer's own queue to its
//! socket. Reader and writer run side by side so two masters feeding each other
//! cannot deadlock. The connection ends on EOF, a socket error, or the service's
//! `Close`/`Drain`.
//!
//! Drain (XEP "Stream shutdown", and the whole service's graceful stop): the reader
//! stops reading the socket, finishes handing out the block it already read, and
//! ends; the writer sends its queue until the queue is closed, that is until every
//! reader that could still add to it has ended, so it delivers every block the
//! relay read and no more. The service flag `drain` (SIGTERM/SIGINT) stops every
//! reader and every handshake at once; a `Close` (the drain's deadline) cuts a
//! drain short.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tracing::debug;

use super::conn::{Attached, Control, RelaySettings};
use super::plane::{routes_to, Members};
use super::traffic::TrafficRecorder;
use crate::core::registry::ConnId;
use crate::core::throughput::BusyRate;
use crate::proto::block::{write_header, BlockDecoder, MAX_HEADER_LEN, MAX_ID_LEN};
use crate::proto::query::Role;

/// How long a peer that dropped itself may keep sending before it is closed.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the socket of a peer that dropped itself may stay silent before we
/// take it that everything it sent has arrived.
pub const FINISH_IDLE: Duration = Duration::from_secs(1);
/// How long a drain (delivering what is queued before closing) may take.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a pending write re-checks the stream's minthroughput.
pub const MIN_RATE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Blocks per read arena: reads are carved out of one allocation this many blocks
/// big, so a block costs no allocation of its own, while a slow reader pins at most
/// a few arenas' worth of memory per queued block.
pub const ARENA_BLOCKS: usize = 4;

/// Why a connection closes itself for being too slow.
const TOO_SLOW: &str = "throughput over 16 s of waiting on its socket is below minthroughput";

#[allow(clippy::too_many_arguments)]
pub(super) async fn data_phase<R, W>(
    conn: ConnId,
    rd: R,
    wr: W,
    leftover: BytesMut,
    a: Attached,
    control: &mut mpsc::Receiver<Control>,
    settings: &RelaySettings,
    drain: watch::Receiver<bool>,
) -> String
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Attached {
        peer_id,
        role,
        queue,
        members,
        traffic,
        min_rate,
        outbound,
    } = a;
    let rx_meter = TrafficRecorder::new(traffic.clone(), true);
    let tx_meter = TrafficRecorder::new(traffic, false);
    let activity = ReadActivity::default();
    // The writer tells the reader to stop when it starts a drain.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Stop {
        service: drain,
        own: stop_rx,
    };
    let reader = async {
        if outbound {
            read_relayed(
                conn, rd, leftover, &peer_id, role, members, rx_meter, settings, &activity, stop,
            )
            .await
        } else {
            read_blocks(
                conn, rd, leftover, &peer_id, role, members, rx_meter, settings, &activity, stop,
            )
            .await
        }
    };
    tokio::pin!(reader);
    let mut finish = false;
    let mut reading = true;
    let mut wr = wr;
    let end = {
        let writer = write_blocks(
            &mut wr,
            outbound,
            queue,
            control,
            tx_meter,
            min_rate,
            &mut finish,
            &stop_tx,
        );
        tokio::pin!(writer);
        loop {
            tokio::select! {
                r = &mut reader, if reading => match r {
                    ReadEnd::Ended(why) => break Err(why),
                    // Stopped, not ended: what is queued for this peer still goes out.
                    ReadEnd::Stopped => reading = false,
                },
                w = &mut writer => break Ok(w),
            }
        }
    };
    let end = match end {
        Ok(end) => end,
        // The peer closed its side (or the read failed): close ours politely, so a
        // TLS peer sees close_notify rather than a truncation.
        Err(why) => {
            end_writes(&mut wr).await;
            return why;
        }
    };
    if !finish || !reading {
        return end;
    }
    // The peer dropped itself: what it already sent still reaches the others
    // (XEP "File transfer": it "closes the stream and drops itself"). We read on
    // until it closes its side, or until its socket has stayed empty for
    // FINISH_IDLE (time spent waiting on slow recipients does not count), within
    // FINISH_TIMEOUT in all.
    let deadline = tokio::time::Instant::now() + FINISH_TIMEOUT;
    let mut seen = activity.reads.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            r = &mut reader => return match r {
                ReadEnd::Ended(why) => format!("dropped itself; forwarded until: {why}"),
                ReadEnd::Stopped => "dropped itself; forwarded until the service stopped".into(),
            },
            _ = tokio::time::sleep_until(deadline) => {
                return "dropped itself; still sending after the finish timeout".into()
            }
            _ = tokio::time::sleep(FINISH_IDLE) => {
                let now = activity.reads.load(Ordering::Relaxed);
                if now == seen && activity.waiting.load(Ordering::Relaxed) {
                    return "dropped itself; nothing more came".into();
                }
                seen = now;
            }
        }
    }
}

/// What the reader is doing, for the finish logic (plain atomics: no lock).
#[derive(Debug, Default)]
struct ReadActivity {
    /// Reads completed so far.
    reads: AtomicU64,
    /// Whether the reader is waiting on the socket (not on recipients).
    waiting: AtomicBool,
}

/// What stops a reader: the service stopping, or this connection's own drain.
struct Stop {
    service: watch::Receiver<bool>,
    own: watch::Receiver<bool>,
}

impl Stop {
    async fn wait(&mut self) {
        tokio::select! {
            _ = crate::service::stopped(&mut self.service) => {}
            _ = crate::service::stopped(&mut self.own) => {}
        }
    }
}

/// How a reader ended.
enum ReadEnd {
    /// The connection is over (EOF, error); the reason is logged.
    Ended(String),
    /// Told to stop reading (a drain): every block it read has been handed out.
    Stopped,
}

/// Cuts what the peer sends into blocks and fans each out to its recipients.
#[allow(clippy::too_many_arguments)]
async fn read_blocks<R: AsyncRead + Unpin>(
    conn: ConnId,
    mut rd: R,
    leftover: BytesMut,
    peer_id: &str,
    role: Role,
    mut members: watch::Receiver<Members>,
    mut meter: TrafficRecorder,
    settings: &RelaySettings,
    activity: &ReadActivity,
    mut stop: Stop,
) -> ReadEnd {
    let unit = MAX_HEADER_LEN + settings.block_size;
    let mut arena = BytesMut::with_capacity(unit * ARENA_BLOCKS);
    let mut view = members.borrow_and_update().clone();
    let mut leftover = leftover;
    loop {
        arena.reserve(unit);
        // Reserve the header's room in front, read the data right behind it, then
        // write the header backwards into the gap: the block is framed in place.
        arena.put_bytes(0, MAX_HEADER_LEN);
        let n = if !leftover.is_empty() {
            let k = leftover.len().min(settings.block_size);
            arena.put_slice(&leftover[..k]);
            leftover.advance(k);
            k
        } else {
            let mut room = (&mut arena).limit(settings.block_size);
            // Returning drops our view: its queue handles are what a draining
            // writer waits to see released.
            match read_some(&mut rd, &mut room, &mut meter, activity, &mut stop).await {
                Ok(0) => return ReadEnd::Ended("peer closed its side".into()),
                Ok(n) => n,
                Err(end) => return end,
            }
        };
        let block = frame_in_place(arena.split_to(MAX_HEADER_LEN + n), peer_id);
        // Waiting for the peer to send is idle time, not transfer time.
        let read_at = Instant::now();
        meter.record(n, read_at, false);
        fan_out(
            conn,
            role,
            block,
            &mut members,
            &mut view,
            &mut meter,
            read_at,
        )
        .await;
    }
}

/// Frames `buf` (`MAX_HEADER_LEN` reserved bytes, then the data) as one block from
/// `peer_id`: the header is written backwards into the gap and the unused front
/// dropped, so the data is never copied.
fn frame_in_place(mut buf: BytesMut, peer_id: &str) -> Bytes {
    let n = buf.len() - MAX_HEADER_LEN;
    let gap: &mut [u8; MAX_HEADER_LEN] = (&mut buf[..MAX_HEADER_LEN])
        .try_into()
        .expect("the block starts with exactly MAX_HEADER_LEN reserved bytes");
    let h = write_header(peer_id, n, gap)
        .expect("peer ids are short decimal strings, within MAX_ID_LEN");
    buf.advance(MAX_HEADER_LEN - h);
    buf.freeze()
}

/// Hands `block` to every member of the stream that `role`'s data goes to,
/// awaiting room in each queue (the back-pressure). Waiting for room holds up the
/// sender's transfer of `block`, read at `read_at`, so it counts in `meter`.
async fn fan_out(
    conn: ConnId,
    role: Role,
    block: Bytes,
    members: &mut watch::Receiver<Members>,
    view: &mut Members,
    meter: &mut TrafficRecorder,
    read_at: Instant,
) {
    if members.has_changed().unwrap_or(false) {
        *view = members.borrow_and_update().clone();
    }
    for m in view.iter() {
        if m.conn != conn && routes_to(role, m.role) {
            // An error means that recipient is gone; the others still get it.
            let _ = meter.held_up(read_at, m.queue.send(block.clone())).await;
        }
    }
}

/// Largest block a far DSPS may send us on a relay link: the largest any DSPS of
/// ours frames (`relay.block_size` at most), with the longest id.
const MAX_RELAYED_BLOCK: u64 = (crate::config::MAX_BLOCK_SIZE + MAX_ID_LEN + 1) as u64;

/// The reader of our own relay link (PROFILE 23): the far DSPS sends framed
/// blocks; their data is framed again with this link's id before it is fanned
/// out, so ids always name the sender as our stream knows it.
#[allow(clippy::too_many_arguments)]
async fn read_relayed<R: AsyncRead + Unpin>(
    conn: ConnId,
    mut rd: R,
    leftover: BytesMut,
    peer_id: &str,
    role: Role,
    mut members: watch::Receiver<Members>,
    mut meter: TrafficRecorder,
    settings: &RelaySettings,
    activity: &ReadActivity,
    mut stop: Stop,
) -> ReadEnd {
    let mut decoder = BlockDecoder::new(MAX_RELAYED_BLOCK);
    let mut inbuf = leftover;
    let mut view = members.borrow_and_update().clone();
    loop {
        loop {
            let block = match decoder.decode(&mut inbuf) {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    return ReadEnd::Ended(format!("the far DSPS sent a malformed block: {e}"))
                }
            };
            for chunk in block.data.chunks(settings.block_size) {
                let mut framed = BytesMut::with_capacity(MAX_HEADER_LEN + chunk.len());
                framed.put_bytes(0, MAX_HEADER_LEN);
                framed.extend_from_slice(chunk);
                let framed = frame_in_place(framed, peer_id);
                let read_at = Instant::now();
                meter.record(chunk.len(), read_at, false);
                fan_out(
                    conn,
                    role,
                    framed,
                    &mut members,
                    &mut view,
                    &mut meter,
                    read_at,
                )
                .await;
            }
        }
        inbuf.reserve(MAX_HEADER_LEN + settings.block_size);
        match read_some(&mut rd, &mut inbuf, &mut meter, activity, &mut stop).await {
            Ok(0) => return ReadEnd::Ended("the far DSPS closed the link".into()),
            Ok(_) => {}
            Err(end) => return end,
        }
    }
}

/// One read from the peer into `buf`, unless a stop comes first (`Err(Stopped)`); a
/// failed read is `Err(Ended)`, end of file `Ok(0)`. Waiting for the peer is idle
/// time, so what was read so far is published for `who` first.
async fn read_some<R: AsyncRead + Unpin, B: BufMut>(
    rd: &mut R,
    buf: &mut B,
    meter: &mut TrafficRecorder,
    activity: &ReadActivity,
    stop: &mut Stop,
) -> Result<usize, ReadEnd> {
    activity.waiting.store(true, Ordering::Relaxed);
    // `read_buf` is cancel safe: a stop that wins the race has read nothing, so no
    // byte is taken from the socket and then lost.
    let r = meter
        .idle_until(async {
            tokio::select! {
                biased;
                _ = stop.wait() => None,
                r = rd.read_buf(buf) => Some(r),
            }
        })
        .await;
    let Some(r) = r else {
        return Err(ReadEnd::Stopped);
    };
    activity.waiting.store(false, Ordering::Relaxed);
    activity.reads.fetch_add(1, Ordering::Relaxed);
    r.map_err(|e| ReadEnd::Ended(format!("read failed: {e}")))
}

/// What a raw writer sends of one of our blocks: its data, without the header.
fn payload_of(block: Bytes) -> Bytes {
    let head = &block[..block.len().min(MAX_HEADER_LEN)];
    let mut newlines = head
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i);
    match (newlines.next(), newlines.next()) {
        (Some(_), Some(end)) => block.slice(end + 1..),
        _ => block,
    }
}

enum Command {
    Close(&'static str),
    Drain,
    Finish,
}

fn command(c: Option<Control>) -> Option<Command> {
    match c {
        Some(Control::Close(why)) => Some(Command::Close(why)),
        Some(Control::Drain) => Some(Command::Drain),
        Some(Control::Finish) => Some(Command::Finish),
        None => Some(Command::Close("service stopped")),
        Some(other) => {
            debug!("ignoring {other:?} in the data phase");
            None
        }
    }
}

/// Writes this peer's queue to its socket until told to close, drain or finish
/// (`finish` is then set: the caller keeps reading). A drain tells this
/// connection's reader to stop (`stop_reading`). `raw`: write the blocks' data
/// without their headers (our own relay link to another DSPS).
#[allow(clippy::too_many_arguments)]
async fn write_blocks<W: AsyncWrite + Unpin>(
    wr: &mut W,
    raw: bool,
    mut queue: mpsc::Receiver<Bytes>,
    control: &mut mpsc::Receiver<Control>,
    mut meter: TrafficRecorder,
    min_rate: u64,
    finish: &mut bool,
    stop_reading: &watch::Sender<bool>,
) -> String {
    let mut draining = false;
    let mut busy = BusyRate::default();
    // A peer that stopped reading never completes a write, so the minthroughput
    // check also runs on a timer while a write is pending.
    let mut check = tokio::time::interval(MIN_RATE_CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !draining {
        let block = tokio::select! {
            biased;
            c = control.recv() => match command(c) {
                Some(Command::Close(why)) => { end_writes(wr).await; return format!("closed: {why}"); }
                Some(Command::Drain) => { draining = true; stop_reading.send_replace(true); continue; }
                Some(Command::Finish) => { end_writes(wr).await; *finish = true; return "finishing".into(); }
                None => continue,
            },
            b = queue.recv() => match b {
                Some(b) if raw => payload_of(b),
                Some(b) => b,
                None => return "queue closed".into(),
            },
        };
        // Write piecewise so a Close is honoured even while a stalled peer keeps a
        // write pending; a Drain lets the current block finish. Then flush: a TLS
        // writer may hold back ciphertext that a would-block left over, and it would
        // sit there until the next block (a no-op on plain TCP).
        let mut off = 0;
        let mut flushed = false;
        let started = Instant::now();
        while off < block.len() || !flushed {
            tokio::select! {
                biased;
                c = control.recv(), if !draining => match command(c) {
                    Some(Command::Close(why)) => { end_writes(wr).await; return format!("closed: {why}"); }
                    Some(Command::Drain) => { draining = true; stop_reading.send_replace(true); }
                    Some(Command::Finish) => { end_writes(wr).await; *finish = true; return "finishing".into(); }
                    None => {}
                },
                r = meter.held_up(started, write_or_flush(wr, &block[off..])) => match r {
                    Ok(Written::Bytes(0)) => return "peer stopped accepting data".into(),
                    Ok(Written::Bytes(k)) => { off += k; meter.record(k, started, off == block.len() && queue.is_empty()); }
                    Ok(Written::Flushed) => flushed = true,
                    Err(e) => return format!("write failed: {e}"),
                },
                _ = check.tick(), if min_rate > 0 && !draining => {
                    if busy.is_below(min_rate, started.elapsed(), off as u64) {
                        return TOO_SLOW.into();
                    }
                }
            }
        }
        busy.record(block.len() as u64, started.elapsed());
        if !draining && busy.is_below(min_rate, Duration::ZERO, 0) {
            return TOO_SLOW.into();
        }
    }
    // XEP "Stream shutdown": what the masters sent reaches this peer before it goes.
    // The queue closes once the plane has let go of it (the drain removed this
    // peer) and every reader of the stream has stopped (each drops its view), so
    // `None` means every block read for this peer has been written.
    let drain = async {
        while let Some(b) = queue.recv().await {
            let b = if raw { payload_of(b) } else { b };
            let started = Instant::now();
            meter.held_up(started, wr.write_all(&b)).await?;
            meter.record(b.len(), started, false);
        }
        wr.shutdown().await
    };
    tokio::select! {
        r = tokio::time::timeout(DRAIN_TIMEOUT, drain) => match r {
            Ok(Ok(())) => "drained and closed".into(),
            Ok(Err(e)) => format!("drain failed: {e}"),
            Err(_) => "drain timed out".into(),
        },
        // The service's drain deadline passed: what is left is cut.
        why = cut(control) => format!("drain cut: {why}"),
    }
}

/// How long a connection we stop writing to may take to take our close (a TLS
/// close_notify, then FIN): a peer that does not read must not hold us up.
pub const END_WRITES_TIMEOUT: Duration = Duration::from_millis(500);

/// Ends our sending side politely: TLS sends close_notify, so a TLS client sees a
/// clean end rather than a truncation; TCP sends FIN. Bounded by
/// [`END_WRITES_TIMEOUT`]; errors do not matter here.
async fn end_writes<W: AsyncWrite + Unpin>(wr: &mut W) {
    let _ = tokio::time::timeout(END_WRITES_TIMEOUT, wr.shutdown()).await;
}

/// What one step of writing a block did.
enum Written {
    /// Wrote this many bytes of the block.
    Bytes(usize),
    /// The whole block was written before; now it is flushed.
    Flushed,
}

/// Writes some of `rest`, or flushes once it is empty. Cancel safe, like the
/// `write` and `flush` it calls.
async fn write_or_flush<W: AsyncWrite + Unpin>(
    wr: &mut W,
    rest: &[u8],
) -> std::io::Result<Written> {
    if rest.is_empty() {
        wr.flush().await.map(|()| Written::Flushed)
    } else {
        wr.write(rest).await.map(Written::Bytes)
    }
}

/// Completes when the service closes this connection (or is gone).
async fn cut(control: &mut mpsc::Receiver<Control>) -> &'static str {
    loop {
        match control.recv().await {
            Some(Control::Close(why)) => return why,
            None => return "service stopped",
            Some(_) => {}
        }
    }
}
