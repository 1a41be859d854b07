//! Block framing: `write_header` alone, and one read framed the way the relay's
//! reader does it (`read_blocks` in src/relay/data.rs): `Batch::frame` cuts the read
//! into blocks of the default 16 KiB and writes their headers back to back into one
//! small buffer, each block's data staying a slice of the read. A 16 KiB read is one
//! block; 256 KiB is the largest read at the default window for a fan-out
//! (`queue::read_size`), 16 blocks. A lone recipient's reads go to 32 blocks;
//! framing costs per block, so that is twice the 16-block figure. `segments` is what each recipient's writer then does with the batch
//! (`Outbox::write_some`): an I/O slice per header and per data slice, read in place.
//!
//! Framing copies no data, so its cost is per block, not per byte.
//!
//! `cargo bench --bench block_framing`; figures in docs/performance.md.

mod common;

use std::hint::black_box;
use std::io::IoSlice;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use dsps::config::{DEFAULT_BLOCK_SIZE, DEFAULT_WINDOW};
use dsps::proto::block::{write_header, BlockDecoder, MAX_HEADER_LEN, MAX_ID_LEN};
use dsps::relay::batch::Batch;
use dsps::relay::queue::read_size;

/// A typical peer id (PROFILE 14: short decimal strings).
const SHORT_ID: &str = "7";
/// The longest id the codec accepts.
const LONG_ID: &str = "12345678901234567890";
const SMALL_READ: usize = 16 * 1024;
const LARGE_READ: usize = 256 * 1024;

/// What a case measures.
#[derive(Clone, Copy)]
enum Subject {
    /// `write_header` for this id and a default (16 KiB) block.
    Header(&'static str),
    /// A read of this many bytes framed as the relay does.
    Frame(usize),
    /// A writer taking the segments of a batch framed from a read of this many bytes.
    Segments(usize),
}

/// Every case, by its criterion id (group, name): the same list for both modes.
const CASES: &[(&str, &str, Subject)] = &[
    ("write_header", "short_id", Subject::Header(SHORT_ID)),
    ("write_header", "long_id", Subject::Header(LONG_ID)),
    ("frame_as_relay", "16KiB", Subject::Frame(SMALL_READ)),
    ("frame_as_relay", "256KiB", Subject::Frame(LARGE_READ)),
    ("segments", "16KiB", Subject::Segments(SMALL_READ)),
    ("segments", "256KiB", Subject::Segments(LARGE_READ)),
];

#[inline(never)]
fn header_only(id: &str, data_len: usize, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
    write_header(id, data_len, out).expect("bench ids are valid")
}

/// Frames one read and lets the batch go, as the last recipient to write it does.
#[inline(never)]
fn frame_read(read: &Bytes) -> usize {
    let batch = Batch::frame(SHORT_ID, read.clone(), DEFAULT_BLOCK_SIZE);
    black_box(&batch);
    batch.len()
}

/// What a recipient's writer does with one batch: points an I/O slice at each
/// segment, in place.
#[inline(never)]
fn take_segments(batch: &Batch) -> usize {
    let mut bytes = 0;
    for i in 0..batch.segment_count(false) {
        bytes += black_box(IoSlice::new(batch.segment(false, i))).len();
    }
    bytes
}

/// A read's data as the relay holds it: a slice of a shared read buffer.
fn read_of(len: usize) -> Bytes {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut arena = bytes::BytesMut::from(&data[..]);
    arena.split_to(len).freeze()
}

/// Checks once, outside the timing, that the batch is what a receiver decodes back.
fn check_framing(read: &Bytes) {
    let batch = Batch::frame(SHORT_ID, read.clone(), DEFAULT_BLOCK_SIZE);
    assert_eq!(batch.len(), read.len().div_ceil(DEFAULT_BLOCK_SIZE));
    let wire: Vec<u8> = (0..batch.segment_count(false))
        .flat_map(|i| batch.segment(false, i).iter().copied())
        .collect();
    let mut buf = bytes::BytesMut::from(&wire[..]);
    let mut decoder = BlockDecoder::new(DEFAULT_BLOCK_SIZE as u64 + 64);
    let mut data = Vec::new();
    while let Some(block) = decoder.decode(&mut buf).expect("the batch decodes") {
        assert_eq!(block.id, SHORT_ID);
        data.extend_from_slice(&block.data);
    }
    assert!(
        buf.is_empty() && data == read[..],
        "framing lost or changed data"
    );
}

/// Runs `subject` under `driver`.
fn run(subject: Subject, driver: &mut impl common::Driver) {
    match subject {
        Subject::Header(id) => {
            let mut out = [0u8; MAX_HEADER_LEN];
            driver.drive(|| header_only(black_box(id), black_box(DEFAULT_BLOCK_SIZE), &mut out));
        }
        Subject::Frame(size) => {
            let read = read_of(size);
            check_framing(&read);
            driver.drive(|| frame_read(black_box(&read)));
        }
        Subject::Segments(size) => {
            let read = read_of(size);
            check_framing(&read);
            let batch = Batch::frame(SHORT_ID, read, DEFAULT_BLOCK_SIZE);
            driver.drive(|| take_segments(black_box(&batch)));
        }
    }
}

fn throughput(subject: Subject) -> Throughput {
    match subject {
        Subject::Header(_) => Throughput::Elements(1),
        Subject::Frame(size) | Subject::Segments(size) => Throughput::Bytes(size as u64),
    }
}

fn main() {
    assert_eq!(LONG_ID.len(), MAX_ID_LEN);
    assert_eq!(
        read_size(DEFAULT_WINDOW, DEFAULT_BLOCK_SIZE, 2),
        LARGE_READ,
        "the large case should be the largest read of a fan-out at the defaults; update it"
    );
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
