//! What one read of a peer becomes: its data cut into blocks of at most the block
//! size, framed once and shared by every recipient.
//!
//! The headers of a batch sit back to back in one small buffer and each block's
//! data is a slice of the read buffer, so framing copies no data and fanning out
//! to N recipients clones one reference per recipient, not one per block. A
//! writer reads its queued batches' segments (header, data, header, data…) in
//! place for one vectored write.

use bytes::{Bytes, BytesMut};

use crate::proto::block::{write_header, MAX_HEADER_LEN};

/// Blocks framed from one read (or, on a relay link, from one buffer of decoded
/// blocks).
#[derive(Debug, Default)]
pub struct Batch {
    /// Every block's header, back to back.
    heads: Bytes,
    /// Each block: where its header ends in `heads`, and its data.
    blocks: Vec<(usize, Bytes)>,
    /// Data bytes in all blocks.
    data_len: usize,
}

impl Batch {
    /// Frames `data`, read from the peer with id `id`, as blocks of at most
    /// `block_size` bytes.
    pub fn frame(id: &str, data: Bytes, block_size: usize) -> Batch {
        let mut b = BatchBuilder::default();
        b.push(id, data, block_size);
        b.finish()
    }

    /// Data bytes (headers not counted).
    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// Blocks in the batch.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the batch has no block.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// How many segments a writer sends of this batch: each block's header and
    /// data, or with `raw` the data alone (our own relay link, whose far DSPS
    /// frames the data again).
    pub fn segment_count(&self, raw: bool) -> usize {
        if raw {
            self.blocks.len()
        } else {
            2 * self.blocks.len()
        }
    }

    /// Bytes a writer sends of this batch (see [`Self::segment_count`]).
    pub fn wire_len(&self, raw: bool) -> usize {
        if raw {
            self.data_len
        } else {
            self.data_len + self.heads.len()
        }
    }

    /// Segment `i` of [`Self::segment_count`], in place.
    pub fn segment(&self, raw: bool, i: usize) -> &[u8] {
        let (block, head) = if raw {
            (i, false)
        } else {
            (i / 2, i.is_multiple_of(2))
        };
        let (end, data) = &self.blocks[block];
        if head {
            let start = block.checked_sub(1).map_or(0, |b| self.blocks[b].0);
            &self.heads[start..*end]
        } else {
            data
        }
    }
}

/// Builds a [`Batch`] block by block.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    heads: BytesMut,
    blocks: Vec<(usize, Bytes)>,
    data_len: usize,
}

impl BatchBuilder {
    /// Adds `data` from the peer with id `id`, cut into blocks of at most
    /// `block_size` bytes (empty data adds nothing: a block always carries data).
    pub fn push(&mut self, id: &str, mut data: Bytes, block_size: usize) {
        while !data.is_empty() {
            let piece = data.split_to(data.len().min(block_size.max(1)));
            let mut gap = [0u8; MAX_HEADER_LEN];
            let h = write_header(id, piece.len(), &mut gap)
                .expect("peer ids are short decimal strings, within MAX_ID_LEN");
            self.heads.extend_from_slice(&gap[MAX_HEADER_LEN - h..]);
            self.data_len += piece.len();
            self.blocks.push((self.heads.len(), piece));
        }
    }

    /// Data bytes added so far.
    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// The batch built.
    pub fn finish(self) -> Batch {
        Batch {
            heads: self.heads.freeze(),
            blocks: self.blocks,
            data_len: self.data_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::block::BlockDecoder;

    fn wire(b: &Batch, raw: bool) -> Vec<u8> {
        (0..b.segment_count(raw))
            .flat_map(|i| b.segment(raw, i).iter().copied())
            .collect()
    }

    #[test]
    fn a_read_is_cut_into_blocks_that_decode_back_to_it() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let b = Batch::frame("42", Bytes::from(data.clone()), 4096);
        assert_eq!((b.len(), b.data_len()), (3, 10_000));
        let mut buf = BytesMut::from(&wire(&b, false)[..]);
        let mut dec = BlockDecoder::new(1 << 20);
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Some(block) = dec.decode(&mut buf).unwrap() {
            assert_eq!(block.id, "42");
            sizes.push(block.data.len());
            got.extend_from_slice(&block.data);
        }
        assert_eq!(sizes, [4096, 4096, 1808]);
        assert_eq!(got, data);
        assert!(buf.is_empty());
    }

    #[test]
    fn raw_segments_are_the_data_alone() {
        let mut bb = BatchBuilder::default();
        bb.push("1", Bytes::from_static(b"hello "), 4);
        bb.push("7", Bytes::from_static(b"world"), 16);
        bb.push("7", Bytes::new(), 16);
        assert_eq!(bb.data_len(), 11);
        let b = bb.finish();
        assert_eq!(b.len(), 3);
        assert_eq!(wire(&b, true), b"hello world");
        assert_eq!(
            wire(&b, false),
            b"060\n1\nhell040\n1\no 070\n7\nworld".to_vec()
        );
    }

    #[test]
    fn an_empty_batch_writes_nothing() {
        let b = Batch::frame("1", Bytes::new(), 16);
        assert!(b.is_empty());
        assert!(wire(&b, false).is_empty());
    }
}
