//! Reading the data path of an end-to-end test: the next block, one message, a whole
//! payload with its sha256, the end of the connection. Every read of one block is
//! bounded by [`STEP`]; a whole payload is bounded by its caller.

use std::time::{Duration, Instant};

use dsps::client::session::BlockReader;
use dsps::proto::block::Block;
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;
use tokio::net::tcp::OwnedReadHalf;

use super::c2s::{within, STEP};

/// The block reader of a connected peer.
pub type Reader = BlockReader<OwnedReadHalf>;

/// The next block, bounded by [`STEP`]; panics on end of stream or a decode error.
pub async fn next_block<R: AsyncRead + Unpin>(r: &mut BlockReader<R>) -> Block {
    within(r.next_block())
        .await
        .unwrap_or_else(|e| panic!("reading a block failed: {e}"))
        .expect("the relay connection ended")
}

/// Reads blocks until at least `len` data bytes arrived; all must carry one id.
/// Returns (id, data); the caller compares both, so a wrong block shows in its message.
pub async fn read_message(r: &mut Reader, len: usize) -> (String, Vec<u8>) {
    let first = next_block(r).await;
    let id = first.id.clone();
    let mut data = first.data.to_vec();
    while data.len() < len {
        let b = next_block(r).await;
        assert_eq!(
            b.id,
            id,
            "a message was interleaved with another sender's blocks (so far {:?})",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&b.data);
    }
    (id, data)
}

/// Reads the next message and asserts it is `want` from the peer with id `id`.
pub async fn expect_message(r: &mut Reader, id: &str, want: &[u8], why: &str) {
    let (got_id, got) = read_message(r, want.len()).await;
    assert_eq!((got_id.as_str(), got.as_slice()), (id, want), "{why}");
}

/// Asserts the server closes the connection (end of stream or an error) within
/// [`STEP`], with no block before that.
pub async fn expect_closed(r: &mut Reader) {
    let end = tokio::time::timeout(STEP, r.next_block())
        .await
        .expect("EOF in time");
    assert!(
        matches!(end, Ok(None) | Err(_)),
        "expected the socket closed, got {end:?}"
    );
}

/// What a receiver got of a payload.
#[derive(Debug)]
pub struct Payload {
    /// Data bytes received.
    pub bytes: usize,
    /// Their sha256.
    pub sha256: Vec<u8>,
    /// The sender ids the blocks carried, each once, in the order first seen.
    pub ids: Vec<String>,
    /// When the first block arrived.
    pub first: Option<Instant>,
    /// When the reader was done.
    pub done: Instant,
}

/// Reads blocks until `len` data bytes arrived (no more may come in the last block).
pub async fn read_payload<R: AsyncRead + Unpin>(r: BlockReader<R>, len: usize) -> Payload {
    read_paced(r, len, None).await
}

/// [`read_payload`] that, with `rate`, never gets ahead of `rate` bytes per second
/// (it sleeps between reads: pacing the reader, not synchronising).
pub async fn read_paced<R: AsyncRead + Unpin>(
    mut r: BlockReader<R>,
    len: usize,
    rate: Option<f64>,
) -> Payload {
    let start = Instant::now();
    let mut got = Payload::default_at(start);
    let mut h = Sha256::new();
    while got.bytes < len {
        let b = next_block(&mut r).await;
        got.add(&b, &mut h);
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(got.bytes as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    assert_eq!(got.bytes, len, "received more than was sent");
    got.finish(h)
}

/// Reads blocks until the server closes the connection cleanly (each read bounded
/// by [`STEP`]); panics if the framing breaks.
pub async fn read_until_closed<R: AsyncRead + Unpin>(mut r: BlockReader<R>) -> Payload {
    let mut got = Payload::default_at(Instant::now());
    let mut h = Sha256::new();
    while let Some(b) = within(r.next_block()).await.expect("well-formed blocks") {
        got.add(&b, &mut h);
    }
    got.finish(h)
}

impl Payload {
    /// From the first block to the end.
    pub fn took(&self) -> Duration {
        self.first.map_or(Duration::ZERO, |f| self.done - f)
    }

    fn default_at(now: Instant) -> Payload {
        Payload {
            bytes: 0,
            sha256: Vec::new(),
            ids: Vec::new(),
            first: None,
            done: now,
        }
    }

    fn add(&mut self, b: &Block, h: &mut Sha256) {
        self.first.get_or_insert_with(Instant::now);
        if !self.ids.contains(&b.id) {
            self.ids.push(b.id.clone());
        }
        self.bytes += b.data.len();
        h.update(&b.data);
    }

    fn finish(mut self, h: Sha256) -> Payload {
        self.sha256 = h.finalize().to_vec();
        self.done = Instant::now();
        self
    }
}
