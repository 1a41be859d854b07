//! Block framing: `write_header` alone, and one block framed the way the relay's
//! reader does it (`read_blocks` in src/relay/data.rs), for the default 16 KiB block
//! and a 256 KiB one.
//!
//! The relay reads into an arena right behind a reserved header gap and writes the
//! header backwards into the gap (`frame_in_place`), so the data is never copied by
//! us; the one copy per block is the kernel's, into the arena. Here a `put_slice`
//! stands in for that read, and `copy_only` measures that copy alone, so the
//! framing's own cost is the difference. The last `DEFAULT_WINDOW` blocks stay
//! alive, as in a recipient's full queue, so arenas are really given up and
//! reallocated as in the relay's paced steady state.
//!
//! `cargo bench --bench block_framing`; figures in docs/performance.md.

mod common;

use std::collections::VecDeque;
use std::hint::black_box;

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput};
use dsps::config::DEFAULT_WINDOW;
use dsps::proto::block::{write_header, MAX_HEADER_LEN, MAX_ID_LEN};
use dsps::relay::data::{frame_in_place, ARENA_BLOCKS};

/// A typical peer id (PROFILE 14: short decimal strings).
const SHORT_ID: &str = "7";
/// The longest id the codec accepts.
const LONG_ID: &str = "12345678901234567890";
const SMALL_BLOCK: usize = 16 * 1024;
const LARGE_BLOCK: usize = 256 * 1024;

/// What a case measures.
#[derive(Clone, Copy)]
enum Subject {
    /// `write_header` for this id and a 16 KiB block.
    Header(&'static str),
    /// One block of this many data bytes framed as the relay does.
    Frame(usize),
    /// The copy that stands in for the socket read, alone.
    Copy(usize),
}

/// Every case, by its criterion id (group, name): the same list for both modes.
const CASES: &[(&str, &str, Subject)] = &[
    ("write_header", "short_id", Subject::Header(SHORT_ID)),
    ("write_header", "long_id", Subject::Header(LONG_ID)),
    ("frame_as_relay", "16KiB", Subject::Frame(SMALL_BLOCK)),
    ("frame_as_relay", "256KiB", Subject::Frame(LARGE_BLOCK)),
    ("copy_only", "16KiB", Subject::Copy(SMALL_BLOCK)),
    ("copy_only", "256KiB", Subject::Copy(LARGE_BLOCK)),
];

#[inline(never)]
fn header_only(id: &str, data_len: usize, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
    write_header(id, data_len, out).expect("bench ids are valid")
}

/// What `read_blocks` keeps from one read to the next: its arena, and (standing in
/// for the recipients' queues) the blocks not yet written out.
struct RelayReader {
    arena: BytesMut,
    block_size: usize,
    queued: VecDeque<Bytes>,
}

impl RelayReader {
    fn new(block_size: usize) -> Self {
        RelayReader {
            arena: BytesMut::with_capacity((MAX_HEADER_LEN + block_size) * ARENA_BLOCKS),
            block_size,
            queued: VecDeque::with_capacity(DEFAULT_WINDOW),
        }
    }

    /// One turn of `read_blocks`'s loop, with `payload` as what the socket read gave.
    #[inline(never)]
    fn frame_one_block(&mut self, payload: &[u8], peer_id: &str) -> usize {
        self.arena.reserve(MAX_HEADER_LEN + self.block_size);
        self.arena.put_bytes(0, MAX_HEADER_LEN);
        self.arena.put_slice(payload);
        let block = frame_in_place(self.arena.split_to(MAX_HEADER_LEN + payload.len()), peer_id);
        let len = block.len();
        // The oldest block has been written to every recipient: its arena share goes.
        if self.queued.len() == DEFAULT_WINDOW {
            self.queued.pop_front();
        }
        self.queued.push_back(black_box(block));
        len
    }
}

#[inline(never)]
fn copy_only(dst: &mut [u8], payload: &[u8]) {
    dst.copy_from_slice(payload);
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Checks once, outside the timing, that the framed block is what a receiver expects.
fn check_framing(block_size: usize) {
    let data = payload(block_size);
    let mut reader = RelayReader::new(block_size);
    reader.frame_one_block(&data, SHORT_ID);
    let block = reader.queued.back().expect("one block was framed");
    let expected = dsps::proto::block::encode(SHORT_ID, &data).expect("valid id");
    assert!(
        block[..] == expected[..],
        "framed block differs from encode()"
    );
}

/// Runs `subject` under `driver`.
fn run(subject: Subject, driver: &mut impl common::Driver) {
    match subject {
        Subject::Header(id) => {
            let mut out = [0u8; MAX_HEADER_LEN];
            driver.drive(|| header_only(black_box(id), black_box(SMALL_BLOCK), &mut out));
        }
        Subject::Frame(size) => {
            check_framing(size);
            let data = payload(size);
            let mut reader = RelayReader::new(size);
            driver.drive(|| reader.frame_one_block(black_box(&data), SHORT_ID));
        }
        Subject::Copy(size) => {
            let data = payload(size);
            let mut dst = vec![0u8; size];
            driver.drive(|| copy_only(black_box(&mut dst), black_box(&data)));
        }
    }
}

fn throughput(subject: Subject) -> Throughput {
    match subject {
        Subject::Header(_) => Throughput::Elements(1),
        Subject::Frame(size) | Subject::Copy(size) => Throughput::Bytes(size as u64),
    }
}

fn main() {
    assert_eq!(LONG_ID.len(), MAX_ID_LEN);
    if let Some(fixed) = common::fixed_mode() {
        let subject = common::find_case(CASES, &fixed.case);
        return run(subject, &mut common::Counted(fixed.iterations));
    }
    let mut c = Criterion::default().configure_from_args();
    for &(group, name, subject) in CASES {
        let mut g = c.benchmark_group(group);
        g.throughput(throughput(subject));
        run(
            subject,
            &mut common::Timed {
                group: &mut g,
                name,
            },
        );
        g.finish();
    }
    c.final_summary();
}
