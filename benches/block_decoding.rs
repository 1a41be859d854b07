//! Block decoding: `BlockDecoder` cutting blocks out of a read buffer, as the reader of
//! a relay link to another DSPS does (`read_relayed` in src/relay/data.rs), and as a
//! client does on every block it receives.
//!
//! Three shapes of input: a buffer of many default 16 KiB blocks, a buffer of many
//! 160 B blocks (the small-write case of issue 9), and the worst case, the 160 B
//! blocks arriving one byte at a time with a decode attempt after each byte.
//!
//! `cargo bench --bench block_decoding`; figures in docs/performance.md.

mod common;

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput};
use dsps::config::{DEFAULT_BLOCK_SIZE, DEFAULT_WINDOW, MAX_BLOCK_SIZE};
use dsps::proto::block::{encode, BlockDecoder, MAX_HEADER_LEN, MAX_ID_LEN};
use dsps::relay::queue::read_size;

/// The limit `read_relayed` decodes with: the largest block any DSPS of ours frames.
const MAX_BLOCK: u64 = (MAX_BLOCK_SIZE + MAX_ID_LEN + 1) as u64;
/// A typical peer id (PROFILE 14: short decimal strings).
const PEER_ID: &str = "12";

/// What a case decodes: `blocks` blocks of `data_len` bytes each, fed whole or one
/// byte at a time.
#[derive(Clone, Copy)]
struct Subject {
    blocks: usize,
    data_len: usize,
    bytewise: bool,
}

/// Every case, by its criterion id (group, name). Each buffer is about 1 MiB, the
/// byte-at-a-time one 10 KiB (every byte costs a decode attempt).
const CASES: &[(&str, &str, Subject)] = &[
    (
        "decode_buffer",
        "64x16KiB",
        Subject {
            blocks: 64,
            data_len: 16 * 1024,
            bytewise: false,
        },
    ),
    (
        "decode_buffer",
        "6400x160B",
        Subject {
            blocks: 6400,
            data_len: 160,
            bytewise: false,
        },
    ),
    (
        "decode_bytewise",
        "64x160B",
        Subject {
            blocks: 64,
            data_len: 160,
            bytewise: true,
        },
    ),
];

/// `blocks` blocks from [`PEER_ID`], back to back, and their data bytes in all.
fn stream(s: Subject) -> Vec<u8> {
    let data: Vec<u8> = (0..s.data_len).map(|i| (i % 251) as u8).collect();
    let one = encode(PEER_ID, &data).expect("valid id");
    one.repeat(s.blocks)
}

/// Decodes every block in `buf`; returns how many blocks and data bytes came out.
#[inline(never)]
fn decode_buffer(decoder: &mut BlockDecoder, buf: &mut BytesMut) -> (usize, usize) {
    let (mut blocks, mut bytes) = (0, 0);
    while let Some(block) = decoder.decode(buf).expect("bench stream is well-formed") {
        blocks += 1;
        bytes += block.data.len();
        black_box(block);
    }
    (blocks, bytes)
}

/// Feeds `stream` into `buf` one byte at a time, decoding after each byte, as a reader
/// that gets one byte per read would.
#[inline(never)]
fn decode_bytewise(
    decoder: &mut BlockDecoder,
    stream: &[u8],
    buf: &mut BytesMut,
) -> (usize, usize) {
    let (mut blocks, mut bytes) = (0, 0);
    for &b in stream {
        buf.extend_from_slice(&[b]);
        while let Some(block) = decoder.decode(buf).expect("bench stream is well-formed") {
            blocks += 1;
            bytes += block.data.len();
            black_box(block);
        }
    }
    (blocks, bytes)
}

/// Runs `s` under `driver`, after checking once, untimed, that every block and byte
/// comes out (a decode error would otherwise be timed as a fast decode).
fn run(s: Subject, driver: &mut impl common::Driver) {
    let bytes = stream(s);
    let mut decoder = BlockDecoder::new(MAX_BLOCK);
    let want = (s.blocks, s.blocks * s.data_len);
    // What `read_relayed` reserves before each read of a link fanned out.
    let reserve = MAX_HEADER_LEN + read_size(DEFAULT_WINDOW, DEFAULT_BLOCK_SIZE, 2);
    let fresh = || BytesMut::with_capacity(reserve);
    if s.bytewise {
        let mut buf = fresh();
        assert_eq!(decode_bytewise(&mut decoder, &bytes, &mut buf), want);
        assert!(buf.is_empty());
        driver.drive_batched(
            fresh,
            |mut buf| decode_bytewise(&mut decoder, &bytes, &mut buf),
            BatchSize::SmallInput,
        );
    } else {
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(decode_buffer(&mut decoder, &mut buf), want);
        assert!(buf.is_empty());
        driver.drive_batched(
            || BytesMut::from(&bytes[..]),
            |mut buf| decode_buffer(&mut decoder, &mut buf),
            BatchSize::LargeInput,
        );
    }
}

fn main() {
    if let Some(fixed) = common::fixed_mode() {
        let subject = common::find_case(CASES, &fixed.case);
        return run(subject, &mut common::Counted(fixed.iterations));
    }
    let mut c = Criterion::default().configure_from_args();
    for &(group, name, subject) in CASES {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Bytes(stream(subject).len() as u64));
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
