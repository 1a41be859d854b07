//! A recipient's queue of batches, bounded in bytes.
//!
//! Batches vary from one small block to a whole large read, so the bound is on
//! what they hold, not on their count: a sender takes room for a batch before
//! queueing it and the room comes back once the recipient's writer has written
//! it. Waiting for room is the back-pressure that paces a stream to its slowest
//! recipient (PROFILE 7). When the writer goes away the room is closed, so no
//! sender waits for a recipient that will never read again.

use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::batch::Batch;

/// What a queued batch is charged beyond its data: its bookkeeping, so that a
/// flood of tiny blocks is bounded too.
pub const BATCH_OVERHEAD: usize = 256;

/// Room a recipient's queue has for `window` blocks of `block_size` bytes.
pub fn capacity(window: usize, block_size: usize) -> usize {
    window.max(1) * (block_size + BATCH_OVERHEAD)
}

/// Most data bytes one read takes in when the queues hold `window` blocks of
/// `block_size` and the read goes to `recipients`: large reads save system calls,
/// wake-ups and hand-offs, and half the window leaves room for the next read
/// while the last is written.
///
/// A read for one recipient may be twice as large as one for several: alone,
/// 1→1 moved about 20 % more with 512 KiB reads than with 256 KiB (alternating
/// runs); fanned out, a batch waits for room in every queue, and smaller ones let
/// the faster recipients run further ahead of the slowest (1→64 about 10 % slower
/// with 512 KiB).
pub fn read_size(window: usize, block_size: usize, recipients: usize) -> usize {
    let most = if recipients <= 1 {
        MAX_BLOCKS_PER_READ_ALONE
    } else {
        MAX_BLOCKS_PER_READ
    };
    (window / 2).clamp(1, most) * block_size
}

/// Most blocks one read is cut into when it goes to several recipients.
pub const MAX_BLOCKS_PER_READ: usize = 16;
/// Most blocks one read is cut into when it goes to one recipient (or none yet).
pub const MAX_BLOCKS_PER_READ_ALONE: usize = 32;

/// A batch in a queue, holding its room until it is dropped (written).
#[derive(Debug)]
pub struct Queued {
    pub batch: Arc<Batch>,
    _room: OwnedSemaphorePermit,
}

/// The sending side (one per stream member, cloned into every sender's view).
#[derive(Debug, Clone)]
pub struct QueueTx {
    tx: mpsc::UnboundedSender<Queued>,
    room: Arc<Semaphore>,
    capacity: usize,
}

/// The recipient's side.
#[derive(Debug)]
pub struct QueueRx {
    rx: mpsc::UnboundedReceiver<Queued>,
    room: Arc<Semaphore>,
}

/// The recipient went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// A queue with room for `capacity` bytes (see [`capacity`]).
pub fn queue(capacity: usize) -> (QueueTx, QueueRx) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let room = Arc::new(Semaphore::new(capacity));
    let (tx, rx) = mpsc::unbounded_channel();
    (
        QueueTx {
            tx,
            room: room.clone(),
            capacity,
        },
        QueueRx { rx, room },
    )
}

impl QueueTx {
    /// Queues `batch`, first waiting for room for it. A batch bigger than the
    /// whole queue waits for the queue to be empty.
    pub async fn send(&self, batch: Arc<Batch>) -> Result<(), Gone> {
        let cost = (batch.data_len() + BATCH_OVERHEAD).min(self.capacity);
        let room = self
            .room
            .clone()
            .acquire_many_owned(cost as u32)
            .await
            .map_err(|_| Gone)?;
        self.tx
            .send(Queued { batch, _room: room })
            .map_err(|_| Gone)
    }
}

impl QueueRx {
    /// The next batch; `None` once every sender is gone and nothing is left.
    pub async fn recv(&mut self) -> Option<Queued> {
        self.rx.recv().await
    }

    /// The next batch if one is queued now.
    pub fn try_recv(&mut self) -> Option<Queued> {
        self.rx.try_recv().ok()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        // Senders waiting for room would wait forever.
        self.room.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn batch(n: usize) -> Arc<Batch> {
        Arc::new(Batch::frame("1", Bytes::from(vec![7u8; n]), 1 << 20))
    }

    #[tokio::test]
    async fn a_full_queue_holds_the_sender_until_a_batch_is_written() {
        let (tx, mut rx) = queue(2 * (1000 + BATCH_OVERHEAD));
        tx.send(batch(1000)).await.unwrap();
        tx.send(batch(1000)).await.unwrap();
        let third = tx.send(batch(1000));
        tokio::pin!(third);
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut third)
            .await
            .is_err());
        let first = rx.recv().await.unwrap();
        // Received is not written: the room comes back when the batch is dropped.
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut third)
            .await
            .is_err());
        drop(first);
        third.await.unwrap();
        assert_eq!(rx.try_recv().unwrap().batch.data_len(), 1000);
    }

    #[tokio::test]
    async fn a_batch_bigger_than_the_queue_still_goes_through_alone() {
        let (tx, mut rx) = queue(100);
        tx.send(batch(5000)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().batch.data_len(), 5000);
    }

    #[tokio::test]
    async fn a_sender_waiting_for_room_learns_the_recipient_is_gone() {
        let (tx, rx) = queue(1000 + BATCH_OVERHEAD);
        tx.send(batch(1000)).await.unwrap();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(batch(1000)).await }
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(Gone));
        assert_eq!(tx.send(batch(1)).await, Err(Gone));
    }

    #[tokio::test]
    async fn the_queue_ends_when_every_sender_is_gone_and_it_is_empty() {
        let (tx, mut rx) = queue(10_000);
        tx.send(batch(10)).await.unwrap();
        drop(tx);
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_none());
        assert!(rx.is_empty());
    }

    #[test]
    fn reads_take_half_the_window_up_to_sixteen_blocks_when_fanned_out() {
        assert_eq!(read_size(64, 16384, 16), 16 * 16384);
        assert_eq!(read_size(64, 16384, 2), 16 * 16384);
        assert_eq!(read_size(4, 16384, 2), 2 * 16384);
        assert_eq!(read_size(1, 4096, 2), 4096);
    }

    #[test]
    fn a_lone_recipients_reads_go_to_thirty_two_blocks_within_half_the_window() {
        assert_eq!(read_size(64, 16384, 1), 32 * 16384);
        assert_eq!(read_size(64, 16384, 0), 32 * 16384);
        assert_eq!(read_size(128, 16384, 1), 32 * 16384);
        assert_eq!(read_size(4, 16384, 1), 2 * 16384);
        for recipients in 0..3 {
            for window in [1, 2, 7, 64, 1000] {
                let r = read_size(window, 16384, recipients);
                // Two reads fit in the queue; a window of 1 has room for one block,
                // and its reads are one block.
                assert!(2 * r <= capacity(window, 16384).max(2 * 16384), "{window}");
            }
        }
    }
}
