//! One timed transfer over connections that are already set up: every sender and
//! receiver in its own OS thread, the clock started once the receivers are waiting,
//! stopped when the last receiver has its last byte. Connections are borrowed, so
//! several runs can share them.

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

/// Sends `bytes` from every flow's sender to its receivers, all flows at once, and
/// checks that every receiver got exactly what its sender sent.
pub fn transfer(flows: &mut [Flow], bytes: u64) -> R<Transfer> {
    let chunks = bytes.div_ceil(wire::CHUNK as u64);
    let results = thread::scope(|s| {
        let mut recv = Vec::new();
        let mut send = Vec::new();
        let mut senders = Vec::new();
        let mut spawn_err = None;
        for f in flows.iter_mut() {
            let Flow {
                sender,
                receivers,
                pat,
                chunks,
            } = f;
            let mut hs = Vec::new();
            for r in receivers.iter_mut() {
                let h = thread::Builder::new()
                    .stack_size(STACK)
                    .spawn_scoped(s, move || {
                        let mut crc = Crc::default();
                        let got = r.receive(bytes, &mut crc);
                        let tally = got.map(|n| Tally {
                            bytes: n,
                            crc: crc.0.finalize(),
                        });
                        (tally, Instant::now())
                    });
                match h {
                    Ok(h) => hs.push(h),
                    Err(e) => spawn_err = Some(e.to_string()),
                }
            }
            recv.push(hs);
            senders.push((sender, pat, *chunks));
        }
        let start = Instant::now();
        for (sock, pat, first) in senders {
            let h = thread::Builder::new()
                .stack_size(STACK)
                .spawn_scoped(s, move || wire::send(sock, pat, first, bytes));
            match h {
                Ok(h) => send.push(Some(h)),
                Err(e) => {
                    spawn_err = Some(e.to_string());
                    send.push(None);
                }
            }
        }
        let sent: Vec<_> = send
            .into_iter()
            .map(|h| h.map(|h| h.join().expect("sender thread panicked")))
            .collect();
        let got: Vec<Vec<_>> = recv
            .into_iter()
            .map(|hs| {
                hs.into_iter()
                    .map(|h| h.join().expect("receiver thread panicked"))
                    .collect()
            })
            .collect();
        (start, sent, got, spawn_err)
    });
    let (start, sent, got, spawn_err) = results;
    if let Some(e) = spawn_err {
        return Err(format!("starting a thread: {e}"));
    }
    let mut end = start;
    let mut delivered = 0;
    for (i, (sent, got)) in sent.into_iter().zip(got).enumerate() {
        let sent = sent
            .ok_or("sender not started")?
            .map_err(|e| format!("flow {i}: sending: {e}"))?;
        for (j, (g, at)) in got.into_iter().enumerate() {
            let g = g.map_err(|e| format!("flow {i} receiver {j}: {e}"))?;
            if g != sent {
                return Err(format!(
                    "flow {i} receiver {j}: got {} bytes with CRC {:08x}, sent {} bytes with CRC {:08x}",
                    g.bytes, g.crc, sent.bytes, sent.crc
                ));
            }
            delivered += g.bytes;
            end = end.max(at);
        }
    }
    for f in flows.iter_mut() {
        f.chunks += chunks;
    }
    Ok(Transfer {
        delivered,
        wall: end - start,
    })
}
