//! One timed transfer over connections that are already set up: every sender and
//! receiver in its own OS thread, the clock started once the receivers are waiting,
//! stopped when the last receiver has its last byte. Connections are borrowed, so
//! several runs can share them.

use std::io;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::wire::{self, Crc, Receiver, Tally};
use crate::R;

/// Stack of each mover thread: the buffers are on the heap, so little is needed,
/// and 1 000 threads must fit.
pub const STACK: usize = 256 * 1024;
/// Longest a mover may wait on its socket: a hung system fails the run instead of
/// hanging the bench.
pub const IDLE: Duration = Duration::from_secs(30);

/// One sender and the receivers that get all its bytes.
pub struct Flow {
    pub sender: TcpStream,
    pub receivers: Vec<Receiver>,
    pat: Vec<u8>,
    /// Chunks sent on this connection so far (runs continue the numbering).
    chunks: u64,
    /// Shut the sender's write side after the transfer: how a XEP-0065 transfer
    /// ends, and what makes mod_proxy65 pass on the bytes it still holds.
    pub close_after: bool,
}

impl Flow {
    pub fn new(seed: u64, sender: TcpStream, receivers: Vec<Receiver>) -> R<Flow> {
        let io = |e: std::io::Error| format!("socket timeouts: {e}");
        sender.set_write_timeout(Some(IDLE)).map_err(io)?;
        for r in &receivers {
            r.sock.set_read_timeout(Some(IDLE)).map_err(io)?;
        }
        Ok(Flow {
            sender,
            receivers,
            pat: wire::pattern(seed),
            chunks: 0,
            close_after: false,
        })
    }
}

/// What one transfer measured.
pub struct Transfer {
    /// Payload bytes delivered, summed over all receivers.
    pub delivered: u64,
    pub wall: Duration,
}

impl Transfer {
    /// Aggregate rate in MB/s (10^6 bytes).
    pub fn mb_s(&self) -> f64 {
        self.delivered as f64 / 1e6 / self.wall.as_secs_f64()
    }
}

/// What one receiver thread hands back: its tally, what its sink measured, and
/// when it had its last byte.
pub type Got<T> = (Tally, T, Instant);

/// Runs `send` for every flow (flow index, socket, pattern, first chunk number) and
/// `recv` for each of its receivers, all in threads at once, with the receivers
/// started first. Checks that each receiver got exactly what its sender sent and
/// returns the start time and every receiver's result, by flow.
pub fn run<T: Send>(
    flows: &mut [Flow],
    send: impl Fn(usize, &mut TcpStream, &mut [u8], u64) -> io::Result<Tally> + Sync,
    recv: impl Fn(&mut Receiver) -> io::Result<(Tally, T)> + Sync,
) -> R<(Instant, Vec<Vec<Got<T>>>)> {
    let (send, recv) = (&send, &recv);
    let (start, sent, got) = thread::scope(|s| {
        let mut receivers = Vec::new();
        let mut senders = Vec::new();
        for (i, f) in flows.iter_mut().enumerate() {
            let hs: Vec<_> = f
                .receivers
                .iter_mut()
                .map(|r| spawn(s, move || (recv(r), Instant::now())))
                .collect();
            receivers.push(hs);
            senders.push((i, &mut f.sender, &mut f.pat, f.chunks));
        }
        let start = Instant::now();
        let sent: Vec<_> = senders
            .into_iter()
            .map(|(i, sock, pat, first)| spawn(s, move || send(i, sock, pat, first)))
            .collect();
        let sent: Vec<_> = sent.into_iter().map(join).collect();
        let got: Vec<Vec<_>> = receivers
            .into_iter()
            .map(|hs| hs.into_iter().map(join).collect())
            .collect();
        (start, sent, got)
    });
    let mut out = Vec::with_capacity(flows.len());
    for (i, (sent, got)) in sent.into_iter().zip(got).enumerate() {
        let sent = sent.map_err(|e| format!("flow {i}: sending: {e}"))?;
        let mut results = Vec::with_capacity(got.len());
        for (j, (g, at)) in got.into_iter().enumerate() {
            let (tally, t) = g.map_err(|e| format!("flow {i} receiver {j}: {e}"))?;
            if tally != sent {
                return Err(format!(
                    "flow {i} receiver {j}: got {} bytes with CRC {:08x}, sent {} with CRC {:08x}",
                    tally.bytes, tally.crc, sent.bytes, sent.crc
                ));
            }
            results.push((tally, t, at));
        }
        out.push(results);
    }
    Ok((start, out))
}

/// Starts a mover thread with a small stack. Failing to start one is a resource
/// limit of this machine, not a result, so it panics.
pub fn spawn<'s, X: Send + 's>(
    s: &'s thread::Scope<'s, '_>,
    f: impl FnOnce() -> X + Send + 's,
) -> thread::ScopedJoinHandle<'s, X> {
    thread::Builder::new()
        .stack_size(STACK)
        .spawn_scoped(s, f)
        .expect("spawning a mover thread")
}

pub fn join<X>(h: thread::ScopedJoinHandle<'_, X>) -> X {
    h.join().expect("a mover thread panicked")
}

/// Sends `bytes` from every flow's sender to its receivers, all flows at once.
pub fn transfer(flows: &mut [Flow], bytes: u64) -> R<Transfer> {
    let close: Vec<bool> = flows.iter().map(|f| f.close_after).collect();
    let (start, got) = run(
        flows,
        |i, sock, pat, first| {
            let t = wire::send(sock, pat, first, bytes)?;
            if close[i] {
                sock.shutdown(std::net::Shutdown::Write)?;
            }
            Ok(t)
        },
        |r| {
            let mut crc = Crc::default();
            let n = r.receive(bytes, &mut crc)?;
            Ok((
                Tally {
                    bytes: n,
                    crc: crc.0.finalize(),
                },
                (),
            ))
        },
    )?;
    for f in flows.iter_mut() {
        f.chunks += bytes.div_ceil(wire::CHUNK as u64);
    }
    let all = got.iter().flatten();
    Ok(Transfer {
        delivered: all.clone().map(|g| g.0.bytes).sum(),
        wall: all.map(|g| g.2).max().unwrap_or(start) - start,
    })
}
