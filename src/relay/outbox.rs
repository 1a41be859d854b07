//! What a connection's writer has taken from its queue and not yet written: the
//! batches' segments in order, written with as few vectored writes as the socket
//! allows. Each batch keeps its room in the queue until its last byte is written,
//! so the queue's bound covers what is in flight too.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;

use tokio::io::AsyncWrite;

use super::queue::Queued;

/// Most segments handed to one vectored write (well under every IOV_MAX).
pub const MAX_SEGMENTS_PER_WRITE: usize = 128;

/// Batches taken from the queue and not yet written, with where writing is in the
/// first of them. Their segments are read in place: nothing is copied or
/// reference-counted per recipient.
#[derive(Debug)]
pub struct Outbox {
    /// Write data only, without block headers (our own relay link).
    raw: bool,
    held: VecDeque<Queued>,
    /// The first batch's segment being written, and how much of it is written.
    segment: usize,
    offset: usize,
    /// Bytes still to write.
    bytes: usize,
}

impl Outbox {
    pub fn new(raw: bool) -> Self {
        Outbox {
            raw,
            held: VecDeque::new(),
            segment: 0,
            offset: 0,
            bytes: 0,
        }
    }

    /// Takes a queued batch in, behind what is already here.
    pub fn take(&mut self, q: Queued) {
        let len = q.batch.wire_len(self.raw);
        if len > 0 {
            self.bytes += len;
            self.held.push_back(q);
        }
    }

    /// Bytes still to write.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether everything taken has been written.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// One vectored write of what is waiting; returns the bytes written (0: the
    /// peer accepts no more). Cancel safe: nothing is consumed unless the write
    /// completed.
    pub async fn write_some<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
    ) -> std::io::Result<usize> {
        // The slices are built on the stack at each poll, not kept in the future:
        // every idle connection holds this future, so its size is memory per peer.
        let this = &*self;
        let n = poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS_PER_WRITE];
            let count = this.fill(&mut slices);
            Pin::new(&mut *wr).poll_write_vectored(cx, &slices[..count])
        })
        .await?;
        self.consume(n);
        Ok(n)
    }

    /// Writes everything waiting.
    pub async fn write_all<W: AsyncWrite + Unpin>(&mut self, wr: &mut W) -> std::io::Result<()> {
        while !self.is_empty() {
            if self.write_some(wr).await? == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Points `slices` at the unwritten segments, in order; returns how many.
    fn fill<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        let (mut segment, mut offset) = (self.segment, self.offset);
        for q in &self.held {
            for i in segment..q.batch.segment_count(self.raw) {
                if count == slices.len() {
                    return count;
                }
                slices[count] = IoSlice::new(&q.batch.segment(self.raw, i)[offset..]);
                offset = 0;
                count += 1;
            }
            segment = 0;
        }
        count
    }

    /// Moves past `n` written bytes, giving back the room of every batch written
    /// to the end.
    fn consume(&mut self, mut n: usize) {
        self.bytes -= n.min(self.bytes);
        while n > 0 {
            let Some(q) = self.held.front() else {
                return;
            };
            let left = q.batch.segment(self.raw, self.segment).len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            self.segment += 1;
            if self.segment == q.batch.segment_count(self.raw) {
                self.segment = 0;
                self.held.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::batch::Batch;
    use crate::relay::queue::{queue, BATCH_OVERHEAD};
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::Duration;

    /// A writer that accepts at most `step` bytes per write.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let k = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..k]);
            std::task::Poll::Ready(Ok(k))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn partial_writes_deliver_every_byte_in_order_and_free_room_per_batch() {
        let one = 1000 + BATCH_OVERHEAD;
        let (tx, mut rx) = queue(2 * one);
        tx.send(Arc::new(Batch::frame(
            "1",
            Bytes::from(vec![1u8; 1000]),
            300,
        )))
        .await
        .unwrap();
        tx.send(Arc::new(Batch::frame(
            "2",
            Bytes::from(vec![2u8; 1000]),
            300,
        )))
        .await
        .unwrap();
        let mut out = Outbox::new(false);
        out.take(rx.try_recv().unwrap());
        out.take(rx.try_recv().unwrap());
        let total = out.len();
        let mut wr = Trickle {
            got: vec![],
            step: 700,
        };
        // After the first batch is written (a little over 1000 bytes), its room
        // is back: a third batch fits while the second is still in flight.
        while wr.got.len() < 1100 {
            out.write_some(&mut wr).await.unwrap();
        }
        tokio::time::timeout(
            Duration::from_secs(1),
            tx.send(Arc::new(Batch::frame(
                "3",
                Bytes::from(vec![3u8; 1000]),
                300,
            ))),
        )
        .await
        .expect("room came back")
        .unwrap();
        out.write_all(&mut wr).await.unwrap();
        assert!(out.is_empty());
        assert_eq!(wr.got.len(), total);
        let mut buf = bytes::BytesMut::from(&wr.got[..]);
        let mut dec = crate::proto::block::BlockDecoder::new(1 << 20);
        let mut data = Vec::new();
        while let Some(b) = dec.decode(&mut buf).unwrap() {
            data.extend_from_slice(&b.data);
        }
        assert_eq!(data.len(), 2000);
        assert!(data[..1000].iter().all(|b| *b == 1) && data[1000..].iter().all(|b| *b == 2));
    }

    #[tokio::test]
    async fn raw_outbox_writes_the_data_alone() {
        let (tx, mut rx) = queue(1 << 20);
        tx.send(Arc::new(Batch::frame(
            "9",
            Bytes::from_static(b"abcdef"),
            4,
        )))
        .await
        .unwrap();
        let mut out = Outbox::new(true);
        out.take(rx.try_recv().unwrap());
        let mut wr = Trickle {
            got: vec![],
            step: 1,
        };
        out.write_all(&mut wr).await.unwrap();
        assert_eq!(wr.got, b"abcdef");
    }
}
