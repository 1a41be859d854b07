//! A payload that is a function of the offset, so a receiver can check every
//! byte of any prefix without holding the whole payload, and a raw block reader that
//! says whether a relay connection ended on a block boundary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use dsps::proto::block::BlockDecoder;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The payload repeats with this period: a prime, so no block size lines up with
/// it; a table of two periods makes generating and checking a memcpy/memcmp even
/// in a debug build.
const PERIOD: usize = 1_000_003;

fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let one: Vec<u8> = (0..PERIOD as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        [one.as_slice(), one.as_slice()].concat()
    })
}

/// The payload bytes from `offset` on, at most `len` of them (at most one period).
pub fn payload_at(offset: u64, len: usize) -> &'static [u8] {
    let start = (offset % PERIOD as u64) as usize;
    &table()[start..start + len.min(PERIOD)]
}

/// Writes `total` payload bytes in 64 KiB chunks, counting what was written into
/// `written`; returns the count when done or when the socket fails.
pub async fn send<W: AsyncWrite + Unpin>(mut w: W, total: u64, written: Arc<AtomicU64>) -> u64 {
    let mut off = 0u64;
    while off < total {
        let n = (64 * 1024).min((total - off) as usize);
        if w.write_all(payload_at(off, n)).await.is_err() {
            break;
        }
        off += n as u64;
        written.store(off, Ordering::Relaxed);
    }
    off
}

/// What a receiver got, read raw off the socket until it closed.
#[derive(Debug, Default)]
pub struct Received {
    /// Whole blocks decoded.
    pub blocks: u64,
    /// Data bytes in them.
    pub bytes: u64,
    /// Bytes left over after the last whole block (a cut block if not 0).
    pub leftover: usize,
    /// The first data offset whose byte was not the payload's, if any.
    pub first_wrong: Option<u64>,
    /// Sender ids seen other than the expected one.
    pub foreign_ids: Vec<String>,
    /// sha256 of the data bytes.
    pub sha256: Vec<u8>,
    /// A decode error, if the framing itself broke.
    pub error: Option<String>,
}

/// Reads blocks off `r` until EOF, an error or `until` data bytes, checking that
/// each came from `id` and that the data is a prefix of the payload; `progress`
/// counts data bytes.
pub async fn receive<R: AsyncRead + Unpin>(
    mut r: R,
    id: &str,
    max_block: u64,
    until: u64,
    progress: Arc<AtomicU64>,
) -> Received {
    let mut dec = BlockDecoder::new(max_block);
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut got = Received::default();
    let mut h = Sha256::new();
    loop {
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(b)) => {
                    if b.id != id && got.foreign_ids.len() < 4 {
                        got.foreign_ids.push(b.id.clone());
                    }
                    if got.first_wrong.is_none() {
                        let mut at = 0;
                        while at < b.data.len() {
                            let want = payload_at(got.bytes + at as u64, b.data.len() - at);
                            if b.data[at..at + want.len()] != *want {
                                got.first_wrong = Some(got.bytes + at as u64);
                                break;
                            }
                            at += want.len();
                        }
                    }
                    h.update(&b.data);
                    got.blocks += 1;
                    got.bytes += b.data.len() as u64;
                    progress.store(got.bytes, Ordering::Relaxed);
                }
                Ok(None) if got.bytes >= until => {
                    got.leftover = buf.len();
                    got.sha256 = h.finalize().to_vec();
                    return got;
                }
                Ok(None) => break,
                Err(e) => {
                    got.error = Some(format!("{e:?}"));
                    got.leftover = buf.len();
                    got.sha256 = h.finalize().to_vec();
                    return got;
                }
            }
        }
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    got.leftover = buf.len();
    got.sha256 = h.finalize().to_vec();
    got
}
