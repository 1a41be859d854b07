//! Properties of the block codec and its SIZE notation (`proto::block`; PROFILE 4).
//!
//! - Arbitrary bytes, fed in arbitrary pieces, never panic the decoder, and what it
//!   reports is consistent: `Ok(None)` consumes nothing, `Ok(Some)` consumes exactly
//!   one block, an error is never taken back by more bytes.
//! - Valid blocks round-trip through `encode` and `decode`, whole or split anywhere.
//! - Every valid spelling of a size decodes to its value; leading zeros, an empty
//!   mantissa and sizes over the decoder's limit are rejected.
//!
//! `parse_size` is checked against a plain oracle written here with u128 arithmetic.
//! Found while writing them: nothing in `proto::block` (the one failure was the
//! oracle's, which checked the exponent before the mantissa's length).

mod prop_support;

use bytes::BytesMut;
use dsps::proto::block::{
    encode, parse_size, write_header, Block, BlockDecoder, BlockError, MAX_HEADER_LEN, MAX_ID_LEN,
    MAX_SIZE_LEN,
};
use proptest::prelude::*;

/// The base-36 digit for exponent `e` (0..36).
fn exp_char(e: u32) -> char {
    char::from_digit(e, 36)
        .expect("exponents are below 36")
        .to_ascii_uppercase()
}

/// What `parse_size` should answer, computed the slow, obvious way.
fn size_oracle(s: &[u8]) -> Result<u64, BlockError> {
    let Some((&exp, mantissa)) = s.split_last() else {
        return Err(BlockError::EmptySize);
    };
    let Some(&first) = mantissa.first() else {
        return Err(BlockError::EmptyMantissa);
    };
    if first == b'0' {
        return Err(BlockError::LeadingZero);
    }
    if let Some(&c) = mantissa.iter().find(|c| !c.is_ascii_digit()) {
        return Err(BlockError::InvalidSizeChar { found: c });
    }
    let power = match exp {
        b'0'..=b'9' => u32::from(exp - b'0'),
        b'A'..=b'Z' => u32::from(exp - b'A') + 10,
        _ => return Err(BlockError::InvalidExponent { found: exp }),
    };
    if mantissa.len() > 20 {
        return Err(BlockError::SizeOverflow);
    }
    let mut value: u128 = std::str::from_utf8(mantissa).unwrap().parse().unwrap();
    for _ in 0..power {
        value *= 1024;
        if value > u128::from(u64::MAX) {
            return Err(BlockError::SizeOverflow);
        }
    }
    u64::try_from(value).map_err(|_| BlockError::SizeOverflow)
}

/// Bytes that look like block headers often enough to reach the deep branches.
fn blockish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> = b"0123456789AZaz\n\r \xff".to_vec();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::collection::vec(proptest::sample::select(alphabet), 0..256),
        // A plausible header followed by anything.
        (
            1u64..5000,
            "[0-9]{0,22}",
            proptest::collection::vec(any::<u8>(), 0..512)
        )
            .prop_map(|(size, id, rest)| {
                let mut v = format!("0{size}0\n{id}\n").into_bytes();
                v.extend(rest);
                v
            }),
    ]
}

/// Block ids the encoder accepts: at most MAX_ID_LEN bytes of UTF-8, no `\n`.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,20}",
        "[ -~]{0,20}",
        // Up to 5 characters of at most 4 bytes each: never over MAX_ID_LEN.
        "[^\n]{0,5}",
    ]
}

fn blocks() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    proptest::collection::vec(
        (id(), proptest::collection::vec(any::<u8>(), 0..1500)),
        0..12,
    )
}

fn stream_of(blocks: &[(String, Vec<u8>)]) -> Vec<u8> {
    blocks
        .iter()
        .flat_map(|(id, data)| encode(id, data).expect("generated ids are valid"))
        .collect()
}

fn expected(blocks: &[(String, Vec<u8>)]) -> Vec<Block> {
    blocks
        .iter()
        .map(|(id, data)| Block {
            id: id.clone(),
            data: data.clone().into(),
        })
        .collect()
}

/// Feeds `bytes` in pieces cut at `cuts` (sorted, deduplicated positions), decoding
/// after every piece; returns the blocks, the first error and the bytes left over.
fn feed(
    decoder: &mut BlockDecoder,
    bytes: &[u8],
    cuts: &[usize],
) -> (Vec<Block>, Option<BlockError>, BytesMut) {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut from = 0;
    for to in points {
        buf.extend_from_slice(&bytes[from..to]);
        from = to;
        loop {
            let before = buf.clone();
            match decoder.decode(&mut buf) {
                Ok(Some(block)) => {
                    // Exactly one block came off the front.
                    let used = before.len() - buf.len();
                    assert!(used > block.data.len() + block.id.len() + 2);
                    assert!(used <= MAX_HEADER_LEN + block.data.len());
                    assert_eq!(&before[used..], &buf[..]);
                    assert_eq!(&before[used - block.data.len()..used], &block.data[..]);
                    assert!(block.id.len() <= MAX_ID_LEN);
                    assert!(!block.id.contains('\n'));
                    out.push(block);
                }
                Ok(None) => {
                    assert_eq!(before, buf, "Ok(None) consumed bytes");
                    break;
                }
                Err(e) => return (out, Some(e), buf),
            }
        }
    }
    (out, None, buf)
}

proptest! {
    #![proptest_config(prop_support::config())]

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_are_final(
        bytes in blockish_bytes(),
        cuts in proptest::collection::vec(0usize..600, 0..8),
        extra in proptest::collection::vec(any::<u8>(), 0..64),
        max in prop_oneof![Just(u64::MAX), 0u64..4096],
    ) {
        let mut decoder = BlockDecoder::new(max);
        let (blocks, err, rest) = feed(&mut decoder, &bytes, &cuts);
        for b in &blocks {
            prop_assert!((b.id.len() + 1 + b.data.len()) as u64 <= max);
        }
        if let Some(e) = err {
            // More bytes never make a rejected block acceptable.
            let mut longer = rest.clone();
            longer.extend_from_slice(&extra);
            prop_assert!(decoder.decode(&mut longer).is_err(), "{e:?} then accepted");
        }
    }

    #[test]
    fn valid_blocks_round_trip(blocks in blocks()) {
        let bytes = stream_of(&blocks);
        let (got, err, rest) = feed(&mut BlockDecoder::new(4096), &bytes, &[]);
        prop_assert_eq!(err, None);
        prop_assert!(rest.is_empty());
        prop_assert_eq!(got, expected(&blocks));
    }

    #[test]
    fn split_feeding_matches_whole_feeding(
        blocks in blocks(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..40),
    ) {
        let bytes = stream_of(&blocks);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        let (whole, _, _) = feed(&mut BlockDecoder::new(4096), &bytes, &[]);
        let (split, err, rest) = feed(&mut BlockDecoder::new(4096), &bytes, &cuts);
        prop_assert_eq!(err, None);
        prop_assert!(rest.is_empty());
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn bytewise_feeding_matches_whole_feeding(
        blocks in proptest::collection::vec(
            (id(), proptest::collection::vec(any::<u8>(), 0..40)), 0..5),
    ) {
        let bytes = stream_of(&blocks);
        let every: Vec<usize> = (0..bytes.len()).collect();
        let (got, err, rest) = feed(&mut BlockDecoder::new(4096), &bytes, &every);
        prop_assert_eq!(err, None);
        prop_assert!(rest.is_empty());
        prop_assert_eq!(got, expected(&blocks));
    }

    /// A block whose SIZE is spelled with any exponent that divides it decodes like the
    /// exponent-0 spelling the encoder writes.
    #[test]
    fn every_spelling_of_a_block_size_decodes(
        id in "[0-9]{0,20}",
        power in 0u32..3,
        mantissa in 1u64..5,
        fill in any::<u8>(),
    ) {
        let size = mantissa * 1024u64.pow(power);
        // The id and its newline must fit in SIZE (small sizes take short ids).
        let id = &id[..id.len().min(size as usize - 1)];
        let data = vec![fill; (size - id.len() as u64 - 1) as usize];
        let canonical = encode(id, &data).unwrap();
        let mut spelled = format!("0{mantissa}{}\n{id}\n", exp_char(power)).into_bytes();
        spelled.extend_from_slice(&data);
        let (a, ea, _) = feed(&mut BlockDecoder::new(1 << 22), &canonical, &[]);
        let (b, eb, _) = feed(&mut BlockDecoder::new(1 << 22), &spelled, &[]);
        prop_assert_eq!((ea, eb), (None, None));
        prop_assert_eq!(a.len(), 1);
        prop_assert_eq!(a, b);
    }

    /// A size over the limit is refused as soon as its line is complete, with the
    /// announced size and the limit in the error; at or under the limit it waits.
    #[test]
    fn sizes_over_the_limit_are_rejected(
        max in 0u64..1_000_000,
        over in 1u64..1_000_000,
        under in 0u64..1_000_000,
        power in 0u32..3,
    ) {
        let size = max + over;
        let mut buf = BytesMut::from(format!("0{size}0\n").as_bytes());
        prop_assert_eq!(
            BlockDecoder::new(max).decode(&mut buf),
            Err(BlockError::TooLarge { size, max })
        );
        // The same size with another exponent, where it has one.
        let scale = 1024u64.pow(power);
        if size % scale == 0 {
            let mut buf = BytesMut::from(format!("0{}{}\n", size / scale, exp_char(power)).as_bytes());
            prop_assert_eq!(
                BlockDecoder::new(max).decode(&mut buf),
                Err(BlockError::TooLarge { size, max })
            );
        }
        let ok = max.saturating_sub(under).max(1);
        let mut buf = BytesMut::from(format!("0{ok}0\n").as_bytes());
        prop_assert_eq!(BlockDecoder::new(max.max(1)).decode(&mut buf), Ok(None));
    }

    #[test]
    fn parse_size_agrees_with_the_oracle(
        s in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..24),
            "[0-9]{0,22}[0-9A-Za-z]?".prop_map(String::into_bytes),
        ],
    ) {
        // Where several things are wrong the two may name different ones (an overlong
        // mantissa and a bad exponent); they must agree on the value and on failing.
        match (parse_size(&s), size_oracle(&s)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "parse_size {a:?}, oracle {b:?}"),
        }
    }

    /// Every (mantissa, exponent) pair is accepted and equals mantissa × 1024^exponent,
    /// or is an overflow when that does not fit 64 bits.
    #[test]
    fn every_valid_spelling_equals_its_value(m in 1u64..=u64::MAX, e in 0u32..36) {
        let s = format!("{m}{}", exp_char(e));
        let want = 1024u64.checked_pow(e).and_then(|scale| m.checked_mul(scale));
        match want {
            Some(v) => prop_assert_eq!(parse_size(s.as_bytes()), Ok(v)),
            None => prop_assert_eq!(parse_size(s.as_bytes()), Err(BlockError::SizeOverflow)),
        }
    }

    /// All spellings of one value agree: v, v/1024 with exponent 1, and so on while
    /// 1024^e divides v.
    #[test]
    fn all_spellings_of_a_value_agree(m in 1u64..100_000, e in 0u32..4) {
        let v = m * 1024u64.pow(e);
        let mut power = 0;
        while power <= e {
            let scale = 1024u64.pow(power);
            prop_assert_eq!(parse_size(format!("{}{}", v / scale, exp_char(power)).as_bytes()), Ok(v));
            power += 1;
        }
    }

    #[test]
    fn leading_zero_and_empty_mantissa_are_rejected(digits in "[0-9]{0,19}", exp in "[0-9A-Z]") {
        let zero = format!("0{digits}{exp}");
        prop_assert_eq!(parse_size(zero.as_bytes()), Err(BlockError::LeadingZero));
        prop_assert_eq!(parse_size(exp.as_bytes()), Err(BlockError::EmptyMantissa));
        let mut buf = BytesMut::from(format!("0{zero}\n").as_bytes());
        prop_assert_eq!(BlockDecoder::new(u64::MAX).decode(&mut buf), Err(BlockError::LeadingZero));
    }

    /// The header the relay writes carries a size that parses back to id + 1 + data,
    /// and never needs more than MAX_HEADER_LEN / MAX_SIZE_LEN bytes.
    #[test]
    fn written_headers_parse_back(id in id(), data_len in prop_oneof![0usize..100_000, any::<usize>()]) {
        prop_assume!((id.len() as u64 + 1).checked_add(data_len as u64).is_some());
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = write_header(&id, data_len, &mut out).unwrap();
        let header = &out[MAX_HEADER_LEN - n..];
        prop_assert_eq!(header[0], b'0');
        let size_end = header.iter().position(|&b| b == b'\n').unwrap();
        prop_assert!(size_end - 1 <= MAX_SIZE_LEN);
        prop_assert_eq!(
            parse_size(&header[1..size_end]),
            Ok(id.len() as u64 + 1 + data_len as u64)
        );
        prop_assert_eq!(&header[size_end + 1..n - 1], id.as_bytes());
        prop_assert_eq!(header[n - 1], b'\n');
    }
}
