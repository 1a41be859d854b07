//! The data phase of one relay connection, after its handshake.
//!
//! A reader takes in what the peer sends with large reads (sized to what arrives),
//! cuts each read into blocks framed once (`batch`) and hands a reference to every
//! recipient's queue, awaiting room — that wait is the back-pressure that paces
//! the stream to its slowest recipient (PROFILE 7). A writer sends this peer's
//! own queue to its socket, every queued batch in one vectored write where the
//! socket takes it (`outbox`). Reader and writer run side by side so two masters feeding each other
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

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tracing::debug;

use super::batch::{Batch, BatchBuilder};
use super::conn::{Attached, Control, RelaySettings};
use super::outbox::Outbox;
use super::plane::{routes_to, Member, Members};
use super::queue::{self, QueueRx};
use super::traffic::TrafficRecorder;
use crate::core::registry::ConnId;
use crate::core::throughput::BusyRate;
use crate::metrics::Metrics;
use crate::proto::block::{BlockDecoder, MAX_HEADER_LEN, MAX_ID_LEN};
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
        let fanout = Fanout::new(conn, role, members);
        if outbound {
            read_relayed(
                rd, leftover, &peer_id, fanout, rx_meter, settings, &activity, stop,
            )
            .await
        } else {
            read_blocks(
                rd, leftover, &peer_id, fanout, rx_meter, settings, &activity, stop,
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
            &settings.metrics,
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

/// Cuts what the peer sends into blocks and fans each read out to its recipients.
#[allow(clippy::too_many_arguments)]
async fn read_blocks<R: AsyncRead + Unpin>(
    mut rd: R,
    mut leftover: BytesMut,
    peer_id: &str,
    mut fanout: Fanout,
    mut meter: TrafficRecorder,
    settings: &RelaySettings,
    activity: &ReadActivity,
    mut stop: Stop,
) -> ReadEnd {
    // The handshake's buffer is held for the connection's life unless dropped here.
    if leftover.is_empty() {
        leftover = BytesMut::new();
    }
    let mut size = ReadSize::new(fanout.largest_read(settings));
    let mut arena = BytesMut::new();
    loop {
        let data = if !leftover.is_empty() {
            let k = leftover.len().min(size.max);
            leftover.split_to(k).freeze()
        } else {
            size.limit(fanout.largest_read(settings));
            let want = size.next();
            if arena.capacity() < want {
                // Reclaims the arena in place once every block cut from it is
                // written; otherwise starts a new one.
                arena.reserve(want);
            }
            let mut room = (&mut arena).limit(want);
            // Returning drops our view: its queue handles are what a draining
            // writer waits to see released.
            let n = match read_some(&mut rd, &mut room, &mut meter, activity, &mut stop).await {
                Ok(0) => return ReadEnd::Ended("peer closed its side".into()),
                Ok(n) => n,
                Err(end) => return end,
            };
            size.after(n);
            arena.split_to(n).freeze()
        };
        let batch = Batch::frame(peer_id, data, settings.block_size);
        fanout.hand_out(batch, &mut meter, settings).await;
    }
}

/// How much the next read asks for: it starts small, so an idle peer holds little
/// memory, doubles while reads fill it (a bulk stream reaches `max` within a few
/// reads) and halves while they come back far shorter (small messages).
#[derive(Debug)]
struct ReadSize {
    want: usize,
    max: usize,
}

/// The smallest read (and the first).
const MIN_READ: usize = 2048;

impl ReadSize {
    fn new(max: usize) -> Self {
        ReadSize {
            want: MIN_READ.min(max),
            max,
        }
    }

    fn next(&self) -> usize {
        self.want
    }

    /// A new largest read (the number of recipients changed).
    fn limit(&mut self, max: usize) {
        self.max = max;
        self.want = self.want.min(max);
    }

    fn after(&mut self, n: usize) {
        if n >= self.want {
            self.want = (self.want * 2).min(self.max);
        } else if n < self.want / 4 {
            self.want = (self.want / 2).max(MIN_READ.min(self.max));
        }
    }
}

/// Where a reader's batches go: the members of its stream that `role`'s data goes
/// to, from a view of the member list refreshed only when it changed. Dropping it
/// drops the view, whose queue handles a draining writer waits to see released.
struct Fanout {
    conn: ConnId,
    role: Role,
    members: watch::Receiver<Members>,
    view: Members,
    /// How many members of `view` the batches go to.
    recipients: usize,
}

impl Fanout {
    fn new(conn: ConnId, role: Role, mut members: watch::Receiver<Members>) -> Self {
        let view = members.borrow_and_update().clone();
        let mut fanout = Fanout {
            conn,
            role,
            members,
            view,
            recipients: 0,
        };
        fanout.recipients = fanout.targets().count();
        fanout
    }

    /// Takes the member list again if it changed since the last look.
    fn refresh(&mut self) {
        if self.members.has_changed().unwrap_or(false) {
            self.view = self.members.borrow_and_update().clone();
            self.recipients = self.targets().count();
        }
    }

    /// The largest read for the recipients there are now (`queue::read_size`).
    fn largest_read(&mut self, settings: &RelaySettings) -> usize {
        self.refresh();
        queue::read_size(settings.window, settings.block_size, self.recipients)
    }

    /// The members of the view that this reader's batches go to.
    fn targets(&self) -> impl Iterator<Item = &Member> {
        self.view
            .iter()
            .filter(|m| m.conn != self.conn && routes_to(self.role, m.role))
    }

    /// Records `batch`, just read, and hands it to every recipient, awaiting room
    /// in each queue (the back-pressure). Waiting for room holds up the sender's
    /// transfer of the batch, so it counts in `meter`.
    async fn hand_out(
        &mut self,
        batch: Batch,
        meter: &mut TrafficRecorder,
        settings: &RelaySettings,
    ) {
        // Waiting for the peer to send was idle time, not transfer time: the
        // transfer starts now.
        let read_at = Instant::now();
        meter.record(batch.data_len(), read_at, false);
        settings.metrics.received.inc_by(batch.data_len() as u64);
        settings.metrics.blocks.inc_by(batch.len() as u64);
        self.refresh();
        let batch = Arc::new(batch);
        for m in self.targets() {
            // An error means that recipient is gone; the others still get it.
            let _ = meter.held_up(read_at, m.queue.send(batch.clone())).await;
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
    mut rd: R,
    leftover: BytesMut,
    peer_id: &str,
    mut fanout: Fanout,
    mut meter: TrafficRecorder,
    settings: &RelaySettings,
    activity: &ReadActivity,
    mut stop: Stop,
) -> ReadEnd {
    let mut decoder = BlockDecoder::new(MAX_RELAYED_BLOCK);
    let mut inbuf = leftover;
    loop {
        let max = fanout.largest_read(settings);
        let mut batch = BatchBuilder::default();
        loop {
            match decoder.decode(&mut inbuf) {
                Ok(Some(b)) => batch.push(peer_id, b.data, settings.block_size),
                Ok(None) => break,
                Err(e) => {
                    return ReadEnd::Ended(format!("the far DSPS sent a malformed block: {e}"))
                }
            }
            if batch.data_len() >= max {
                break;
            }
        }
        if batch.data_len() > 0 {
            fanout.hand_out(batch.finish(), &mut meter, settings).await;
            continue;
        }
        inbuf.reserve(MAX_HEADER_LEN + max);
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
///
/// Each round takes every batch queued (up to [`MAX_ROUND`] bytes) and writes
/// it with as few vectored writes as the socket takes, then flushes once.
#[allow(clippy::too_many_arguments)]
async fn write_blocks<W: AsyncWrite + Unpin>(
    wr: &mut W,
    raw: bool,
    mut queue: QueueRx,
    control: &mut mpsc::Receiver<Control>,
    mut meter: TrafficRecorder,
    min_rate: u64,
    finish: &mut bool,
    stop_reading: &watch::Sender<bool>,
    metrics: &Metrics,
) -> String {
    let mut draining = false;
    let mut busy = BusyRate::default();
    let mut out = Outbox::new(raw);
    // A peer that stopped reading never completes a write, so the minthroughput
    // check also runs on a timer while a write is pending.
    let mut check = tokio::time::interval(MIN_RATE_CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !draining {
        let first = tokio::select! {
            biased;
            c = control.recv() => match command(c) {
                Some(Command::Close(why)) => { end_writes(wr).await; return format!("closed: {why}"); }
                Some(Command::Drain) => { draining = true; stop_reading.send_replace(true); continue; }
                Some(Command::Finish) => { end_writes(wr).await; *finish = true; return "finishing".into(); }
                None => continue,
            },
            q = queue.recv() => match q {
                Some(q) => q,
                None => return "queue closed".into(),
            },
        };
        out.take(first);
        while out.len() < MAX_ROUND {
            match queue.try_recv() {
                Some(q) => out.take(q),
                None => break,
            }
        }
        // Write piecewise so a Close is honoured even while a stalled peer keeps a
        // write pending; a Drain lets the round finish. Then flush: a TLS writer
        // may hold back ciphertext that a would-block left over, and it would sit
        // there until the next round (a no-op on plain TCP).
        let mut flushed = false;
        let started = Instant::now();
        // Each write is measured on its own for minthroughput: what a fast socket
        // took in at the start of a round says nothing about a stall after it.
        let mut step_at = started;
        while !out.is_empty() || !flushed {
            tokio::select! {
                biased;
                c = control.recv(), if !draining => match command(c) {
                    Some(Command::Close(why)) => { end_writes(wr).await; return format!("closed: {why}"); }
                    Some(Command::Drain) => { draining = true; stop_reading.send_replace(true); }
                    Some(Command::Finish) => { end_writes(wr).await; *finish = true; return "finishing".into(); }
                    None => {}
                },
                r = meter.held_up(started, write_or_flush(wr, &mut out)) => match r {
                    Ok(Written::Bytes(0)) => return "peer stopped accepting data".into(),
                    Ok(Written::Bytes(k)) => {
                        metrics.sent.inc_by(k as u64);
                        let now = Instant::now();
                        busy.record(k as u64, now.duration_since(step_at));
                        step_at = now;
                        meter.record(k, started, out.is_empty() && queue.is_empty());
                    }
                    Ok(Written::Flushed) => flushed = true,
                    Err(e) => return format!("write failed: {e}"),
                },
                _ = check.tick(), if min_rate > 0 && !draining => {
                    if busy.is_below(min_rate, step_at.elapsed(), 0) {
                        metrics.slow_peers.inc();
                        return TOO_SLOW.into();
                    }
                }
            }
        }
        if !draining && busy.is_below(min_rate, Duration::ZERO, 0) {
            metrics.slow_peers.inc();
            return TOO_SLOW.into();
        }
    }
    // XEP "Stream shutdown": what the masters sent reaches this peer before it goes.
    // The queue closes once the plane has let go of it (the drain removed this
    // peer) and every reader of the stream has stopped (each drops its view), so
    // `None` means every block read for this peer has been written.
    let drain = async {
        while let Some(q) = queue.recv().await {
            out.take(q);
            while let Some(q) = queue.try_recv() {
                out.take(q);
            }
            let started = Instant::now();
            let n = out.len();
            meter.held_up(started, out.write_all(wr)).await?;
            metrics.sent.inc_by(n as u64);
            meter.record(n, started, false);
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

/// Most bytes one writing round takes from the queue before it writes: a bound on
/// how long a round runs, far above a default queue's capacity.
pub const MAX_ROUND: usize = 4 << 20;

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

/// Writes some of what `out` holds, or flushes once it is empty. Cancel safe,
/// like the `write_vectored` and `flush` it calls.
async fn write_or_flush<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut Outbox,
) -> std::io::Result<Written> {
    if out.is_empty() {
        wr.flush().await.map(|()| Written::Flushed)
    } else {
        out.write_some(wr).await.map(Written::Bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(ConnId, Role)]) -> Members {
        Arc::new(
            list.iter()
                .map(|&(conn, role)| Member {
                    conn,
                    role,
                    queue: queue::queue(1 << 20).0,
                })
                .collect(),
        )
    }

    #[test]
    fn a_fanout_counts_the_members_its_reader_sends_to_and_follows_changes() {
        use Role::{Master, Slave};
        let (tx, rx) = watch::channel(members(&[(1, Master), (2, Slave), (3, Slave)]));
        // A master's data goes to every other peer; a slave's to the masters.
        let mut master = Fanout::new(1, Master, rx.clone());
        let mut slave = Fanout::new(2, Slave, rx);
        assert_eq!((master.recipients, slave.recipients), (2, 1));
        tx.send(members(&[(1, Master), (2, Slave), (3, Master), (4, Slave)]))
            .unwrap();
        // Seen at the next look, before the reader sizes its next read.
        master.refresh();
        slave.refresh();
        assert_eq!((master.recipients, slave.recipients), (3, 2));
    }

    #[test]
    fn reads_start_small_and_double_while_they_fill() {
        let mut size = ReadSize::new(256 << 10);
        assert_eq!(size.next(), MIN_READ);
        for _ in 0..20 {
            let n = size.next();
            size.after(n);
        }
        assert_eq!(size.next(), 256 << 10);
        // Far shorter reads halve it, down to the smallest.
        for _ in 0..20 {
            size.after(10);
        }
        assert_eq!(size.next(), MIN_READ);
    }

    #[test]
    fn a_new_limit_caps_the_next_read_and_a_higher_one_lets_it_grow() {
        let mut size = ReadSize::new(512 << 10);
        for _ in 0..20 {
            let n = size.next();
            size.after(n);
        }
        assert_eq!(size.next(), 512 << 10);
        // A second recipient joined: the next read is no larger than a fan-out's.
        size.limit(256 << 10);
        assert_eq!(size.next(), 256 << 10);
        size.after(256 << 10);
        assert_eq!(size.next(), 256 << 10);
        // Alone again: full reads grow back to the larger size.
        size.limit(512 << 10);
        size.after(256 << 10);
        assert_eq!(size.next(), 512 << 10);
    }
}
