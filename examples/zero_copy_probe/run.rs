//! One timed run: a sender, the relay and N receivers, each on its own thread, over
//! 127.0.0.1 sockets the run opens. Every receiver checks that it got exactly the
//! sender's bytes, in order; the whole run is bounded by a deadline.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::relay::{self, CHUNK};

/// The sent pattern repeats every PERIOD bytes. A prime, so a lost, repeated or
/// swapped chunk (256 KiB, or a page) shifts it and the receiver notices.
const PERIOD: usize = 251;
/// A socket read or write blocked this long fails the run (splice honours it too).
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Copy,
    Splice,
}

/// What one run does.
pub struct Plan {
    pub mode: Mode,
    pub fanout: usize,
    /// Bytes the sender sends, and so each receiver must get.
    pub bytes: u64,
    pub pipe_bytes: usize,
    /// SPLICE_F_MORE on the splice relay's socket writes.
    pub splice_more: bool,
    pub verify: bool,
    pub deadline: Duration,
}

pub struct Outcome {
    /// Bytes delivered to all receivers together, per second, in 10^6.
    pub mb_s: f64,
    pub secs: f64,
    /// The smallest pipe the splice relay got (0 for copy).
    pub pipe_bytes: usize,
}

/// A finished thread's report.
struct Done {
    who: String,
    bytes: io::Result<u64>,
    pipe_bytes: usize,
}

pub fn run(plan: &Plan) -> Result<Outcome, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let (sender, relay_in) = pair(&listener)?;
    let (mut relay_outs, mut receivers) = (Vec::new(), Vec::new());
    for _ in 0..plan.fanout {
        let (out, inn) = pair(&listener)?;
        relay_outs.push(out);
        receivers.push(inn);
    }
    let pattern: Arc<Vec<u8>> = Arc::new((0..CHUNK + PERIOD).map(|i| (i % PERIOD) as u8).collect());
    let (tx, rx) = mpsc::channel::<Done>();
    let start = Instant::now();
    for (i, sock) in receivers.into_iter().enumerate() {
        let (tx, pattern, verify) = (tx.clone(), pattern.clone(), plan.verify);
        thread::spawn(move || {
            let bytes = receive(sock, &pattern, verify);
            let _ = tx.send(Done {
                who: format!("receiver {i}"),
                bytes,
                pipe_bytes: 0,
            });
        });
    }
    let (relay_tx, mode, pipe_bytes, more) =
        (tx.clone(), plan.mode, plan.pipe_bytes, plan.splice_more);
    thread::spawn(move || {
        let relayed = match mode {
            Mode::Copy => relay::copy(relay_in, relay_outs),
            Mode::Splice => relay::splice(relay_in, relay_outs, pipe_bytes, more),
        };
        let (bytes, pipe_bytes) = match relayed {
            Ok(r) => (Ok(r.bytes), r.pipe_bytes),
            Err(e) => (Err(e), 0),
        };
        let _ = relay_tx.send(Done {
            who: "relay".into(),
            bytes,
            pipe_bytes,
        });
    });
    let total = plan.bytes;
    thread::spawn(move || {
        let bytes = send(sender, &pattern, total);
        let _ = tx.send(Done {
            who: "sender".into(),
            bytes,
            pipe_bytes: 0,
        });
    });

    let mut pipe_got = 0;
    for _ in 0..plan.fanout + 2 {
        let left = plan.deadline.saturating_sub(start.elapsed());
        let done = rx.recv_timeout(left).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => format!("timed out after {:?}", plan.deadline),
            mpsc::RecvTimeoutError::Disconnected => "a thread panicked".to_string(),
        })?;
        let bytes = done.bytes.map_err(|e| format!("{}: {e}", done.who))?;
        if bytes != total {
            return Err(format!("{}: {bytes} bytes, expected {total}", done.who));
        }
        pipe_got = pipe_got.max(done.pipe_bytes);
    }
    let secs = start.elapsed().as_secs_f64();
    let mb_s = (total * plan.fanout as u64) as f64 / secs / 1e6;
    Ok(Outcome {
        mb_s,
        secs,
        pipe_bytes: pipe_got,
    })
}

/// A connected pair over the listener: (connecting end, accepted end).
fn pair(listener: &TcpListener) -> Result<(TcpStream, TcpStream), String> {
    let connect = |addr| -> io::Result<(TcpStream, TcpStream)> {
        let near = TcpStream::connect(addr)?;
        let (far, _) = listener.accept()?;
        for s in [&near, &far] {
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
        }
        Ok((near, far))
    };
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    connect(addr).map_err(|e| format!("connect {addr}: {e}"))
}

/// Writes `bytes` of the pattern in CHUNK writes, then ends the stream.
fn send(mut sock: TcpStream, pattern: &[u8], bytes: u64) -> io::Result<u64> {
    let mut sent = 0u64;
    while sent < bytes {
        let at = (sent % PERIOD as u64) as usize;
        let len = (bytes - sent).min(CHUNK as u64) as usize;
        sock.write_all(&pattern[at..at + len])?;
        sent += len as u64;
    }
    sock.shutdown(Shutdown::Write)?;
    Ok(sent)
}

/// Reads in CHUNK reads until EOF, comparing each read with the pattern where it
/// should be. Returns the byte count.
fn receive(mut sock: TcpStream, pattern: &[u8], verify: bool) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            return Ok(got);
        }
        let at = (got % PERIOD as u64) as usize;
        if verify && buf[..n] != pattern[at..at + n] {
            let msg = format!("bytes {got}..{} differ from what was sent", got + n as u64);
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        got += n as u64;
    }
}
