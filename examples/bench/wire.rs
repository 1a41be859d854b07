//! The data movers every system is measured with: one sender and one receiver, both
//! blocking std sockets in OS threads, 256 KiB writes and reads, identical for dsps and
//! for every baseline. The only difference is that a dsps receiver runs its bytes
//! through [`Deframer`] first, which strips the `0<size>\n<id>\n` headers without
//! copying the data.
//!
//! Every byte is checked: the sender stamps each 256 KiB chunk with its index (so a
//! lost, repeated or reordered chunk changes the sum) and both sides keep a CRC-32 of
//! the payload; the caller compares them and fails the run loudly on a mismatch.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes per write and per read.
pub const CHUNK: usize = 256 * 1024;

/// Bytes all bulk senders have written so far (the stalled-slave case watches it).
pub static SENT: AtomicU64 = AtomicU64::new(0);

/// A deterministic 256 KiB pattern for `seed` (xorshift64*).
pub fn pattern(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(CHUNK);
    while v.len() < CHUNK {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v
}

/// What a sender or receiver saw: payload bytes and their CRC-32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub bytes: u64,
    pub crc: u32,
}

/// Writes `total` bytes of `pat` to `sock` in [`CHUNK`] writes, chunk `i` starting
/// with `i` (so every chunk differs). `first_chunk` continues the numbering of an
/// earlier run on the same connection.
pub fn send(
    sock: &mut TcpStream,
    pat: &mut [u8],
    first_chunk: u64,
    total: u64,
) -> io::Result<Tally> {
    let mut crc = crc32fast::Hasher::new();
    let mut left = total;
    let mut i = first_chunk;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        pat[..8].copy_from_slice(&i.to_le_bytes());
        let part = &pat[..n];
        sock.write_all(part)?;
        SENT.fetch_add(n as u64, Ordering::Relaxed);
        crc.update(part);
        left -= n as u64;
        i += 1;
    }
    Ok(Tally {
        bytes: total,
        crc: crc.finalize(),
    })
}

/// Where a receiver's payload goes.
pub trait Sink {
    fn data(&mut self, bytes: &[u8]);
}

/// The throughput sink: a CRC-32 of everything.
#[derive(Default)]
pub struct Crc(pub crc32fast::Hasher);

impl Sink for Crc {
    fn data(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// One receiving connection, raw or dsps-framed. It keeps its read buffer and its
/// framing state between [`Receiver::receive`] calls so several runs can share a
/// connection.
pub struct Receiver {
    pub sock: TcpStream,
    deframer: Option<Deframer>,
    buf: Vec<u8>,
    /// Bytes read but not yet handed to a sink (what the handshake read past KEY2,
    /// or what a read brought beyond the previous run).
    pending: Vec<u8>,
}

impl Receiver {
    /// A receiver that takes the bytes as they come (the baselines).
    pub fn raw(sock: TcpStream) -> Receiver {
        Receiver::new(sock, None, Vec::new())
    }

    /// A receiver of dsps blocks, starting with `buffered` bytes already read.
    pub fn framed(sock: TcpStream, buffered: Vec<u8>) -> Receiver {
        Receiver::new(sock, Some(Deframer::default()), buffered)
    }

    fn new(sock: TcpStream, deframer: Option<Deframer>, pending: Vec<u8>) -> Receiver {
        Receiver {
            sock,
            deframer,
            buf: vec![0; CHUNK],
            pending,
        }
    }

    /// Reads until `expect` payload bytes have gone to `sink`. More payload than
    /// that in the same read, an early end of stream or broken framing is an error.
    pub fn receive(&mut self, expect: u64, sink: &mut impl Sink) -> io::Result<u64> {
        let mut got = 0u64;
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            got += self.feed(&pending, sink)?;
        }
        while got < expect {
            let n = match self.sock.read(&mut self.buf) {
                Ok(n) => n,
                // The read timeout (flows::IDLE or shorter) passed without a byte.
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("stalled: no data within the read timeout after {got} of {expect} bytes"),
                    ))
                }
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("end of stream after {got} of {expect} bytes"),
                ));
            }
            let buf = std::mem::take(&mut self.buf);
            let r = self.feed(&buf[..n], sink);
            self.buf = buf;
            got += r?;
        }
        if got != expect {
            return Err(io::Error::other(format!(
                "{got} payload bytes arrived, {expect} were sent"
            )));
        }
        Ok(got)
    }

    fn feed(&mut self, bytes: &[u8], sink: &mut impl Sink) -> io::Result<u64> {
        match self.deframer.as_mut() {
            None => {
                sink.data(bytes);
                Ok(bytes.len() as u64)
            }
            Some(d) => d.feed(bytes, sink),
        }
    }
}

/// Streaming decoder of `0<size>\n<id>\n<data>`: SIZE is a decimal mantissa and a
/// base-36 power-of-1024 digit and counts `<id>\n<data>`. Data slices go to the sink
/// straight from the read buffer. All blocks on one connection must carry the same
/// sender id (one sender per stream in every case here).
#[derive(Default)]
pub struct Deframer {
    state: State,
    /// SIZE characters so far (at most 21 fit a u64).
    size: Vec<u8>,
    id: Vec<u8>,
    sender: Option<Vec<u8>>,
    /// Bytes of `<id>\n<data>` still to come in the current block.
    left: u64,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Start,
    Size,
    Id,
    Data,
}

fn bad(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl Deframer {
    /// Feeds `bytes`; returns how many payload bytes went to `sink`.
    pub fn feed(&mut self, mut bytes: &[u8], sink: &mut impl Sink) -> io::Result<u64> {
        let mut payload = 0u64;
        while !bytes.is_empty() {
            match self.state {
                State::Start => {
                    if bytes[0] != b'0' {
                        return Err(bad(format!("block starts with byte {:#04x}", bytes[0])));
                    }
                    bytes = &bytes[1..];
                    self.size.clear();
                    self.state = State::Size;
                }
                State::Size => {
                    let c = bytes[0];
                    bytes = &bytes[1..];
                    if c != b'\n' {
                        if self.size.len() >= 21 {
                            return Err(bad("SIZE longer than 21 characters".into()));
                        }
                        self.size.push(c);
                        continue;
                    }
                    self.left = parse_size(&self.size)?;
                    self.id.clear();
                    self.state = State::Id;
                }
                State::Id => {
                    let c = bytes[0];
                    bytes = &bytes[1..];
                    if self.left == 0 {
                        return Err(bad("SIZE ends inside the id".into()));
                    }
                    self.left -= 1;
                    if c != b'\n' {
                        if self.id.len() >= 20 {
                            return Err(bad("id longer than 20 bytes".into()));
                        }
                        self.id.push(c);
                        continue;
                    }
                    match &self.sender {
                        None => self.sender = Some(self.id.clone()),
                        Some(s) if *s == self.id => {}
                        Some(s) => {
                            return Err(bad(format!(
                                "a block from id {:?}, earlier ones from {:?}",
                                String::from_utf8_lossy(&self.id),
                                String::from_utf8_lossy(s)
                            )))
                        }
                    }
                    self.state = if self.left == 0 {
                        State::Start
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let n = (self.left.min(bytes.len() as u64)) as usize;
                    sink.data(&bytes[..n]);
                    payload += n as u64;
                    self.left -= n as u64;
                    bytes = &bytes[n..];
                    if self.left == 0 {
                        self.state = State::Start;
                    }
                }
            }
        }
        Ok(payload)
    }
}

/// SIZE: `[1-9][0-9]*` then one `[0-9A-Z]` exponent of 1024.
fn parse_size(s: &[u8]) -> io::Result<u64> {
    let (exp, mantissa) = match s.split_last() {
        Some((e, m)) if !m.is_empty() && m[0] != b'0' => (e, m),
        _ => return Err(bad(format!("bad SIZE {:?}", String::from_utf8_lossy(s)))),
    };
    let exp = (*exp as char)
        .to_digit(36)
        .filter(|_| !exp.is_ascii_lowercase())
        .ok_or_else(|| bad(format!("bad SIZE exponent {:?}", *exp as char)))?;
    let mut v: u64 = 0;
    for &c in mantissa {
        if !c.is_ascii_digit() {
            return Err(bad(format!("bad SIZE digit {:?}", c as char)));
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or_else(|| bad("SIZE overflows".into()))?;
    }
    (0..exp)
        .try_fold(v, |v, _| v.checked_mul(1024))
        .ok_or_else(|| bad("SIZE overflows".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<u8>);
    impl Sink for Collect {
        fn data(&mut self, b: &[u8]) {
            self.0.extend_from_slice(b);
        }
    }

    #[test]
    fn deframes_split_input_like_whole_input() {
        let wire = b"0340\n010\nthis is the data in ASCII form0140\n010\n0123456789";
        let mut whole = Collect(Vec::new());
        Deframer::default().feed(wire, &mut whole).unwrap();
        assert_eq!(whole.0, b"this is the data in ASCII form0123456789");
        let mut split = Collect(Vec::new());
        let mut d = Deframer::default();
        for b in wire.chunks(1) {
            d.feed(b, &mut split).unwrap();
        }
        assert_eq!(split.0, whole.0);
        assert!(Deframer::default().feed(b"1", &mut split).is_err());
        assert_eq!(parse_size(b"11").unwrap(), 1024);
    }
}
