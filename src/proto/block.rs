//! The DSPS block codec: `0` SIZE `\n` ID `\n` DATA (XEP-0037 "Stream use", PROFILE 4).
//!
//! SIZE counts the bytes of `ID \n DATA` and is spelled `[1-9][0-9]*[0-9A-Z]`: a decimal
//! mantissa times 1024 to the power of the last character read as a base-36 digit, so
//! `340` is 34 bytes, `11` is 1024 and `21` is 2048. The encoder always writes exponent `0`,
//! the one spelling every size has; the decoder accepts every valid spelling.
//!
//! This module owns the bytes only. It does not decide how big a block is (the relay cuts
//! what it reads, up to its configured block size) nor what happens after a decode error: the
//! spec says a receiver that loses sync "should disconnect and reconnect", and nothing in a
//! broken byte stream tells where the next block starts, so callers drop the connection.
//!
//! Our readings of the spec:
//! - `<CR>` is `\n` (PROFILE 1), but unlike the handshake lines a `\r` is never accepted
//!   here: SIZE counts bytes exactly, so a `\r` would be part of the id or the size.
//! - An empty id is legal ("empty string is legal", "Connection waiting").
//! - Ids are at most [`MAX_ID_LEN`] bytes of UTF-8 (ours are short decimal strings,
//!   PROFILE 14), which bounds the header and lets the decoder reject garbage early.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// Longest peer id, in bytes, that the codec writes or accepts.
pub const MAX_ID_LEN: usize = 20;

/// Longest SIZE spelling, in bytes, that fits a `u64`: a mantissa of at most 20 digits
/// (`u64::MAX` has 20) plus the exponent character. Any longer spelling overflows.
pub const MAX_SIZE_LEN: usize = 21;

/// Most bytes a header (`0` SIZE `\n` ID `\n`) can take: `1 + MAX_SIZE_LEN + 1 + MAX_ID_LEN + 1`.
///
/// This covers every body length up to `u64::MAX` with an id of up to [`MAX_ID_LEN`] bytes,
/// so a writer that reserves this many bytes before its data never runs short.
pub const MAX_HEADER_LEN: usize = 1 + MAX_SIZE_LEN + 1 + MAX_ID_LEN + 1;

/// The byte every block starts with ("for checking start of block").
const BLOCK_START: u8 = b'0';

/// One decoded block: who sent it and what they sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The sender's id, as reported by `who` (may be empty).
    pub id: String,
    /// The payload, split out of the read buffer without copying.
    pub data: Bytes,
}

/// What is wrong with a block, on decode or encode. Any of these ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// The first byte of a block was not `0`.
    BadStart {
        /// The byte found instead.
        found: u8,
    },
    /// The SIZE field was empty.
    EmptySize,
    /// SIZE had an exponent but no mantissa digits.
    EmptyMantissa,
    /// The mantissa started with `0`.
    LeadingZero,
    /// A mantissa character was not a decimal digit.
    InvalidSizeChar {
        /// The offending byte.
        found: u8,
    },
    /// The exponent character was not in `[0-9A-Z]`.
    InvalidExponent {
        /// The offending byte.
        found: u8,
    },
    /// SIZE does not fit in a `u64`.
    SizeOverflow,
    /// No `\n` within [`MAX_SIZE_LEN`] bytes after the leading `0`.
    SizeLineTooLong,
    /// SIZE is larger than the decoder's limit.
    TooLarge {
        /// The announced size.
        size: u64,
        /// The decoder's limit.
        max: u64,
    },
    /// The SIZE bytes of the block hold no `\n` ending the id.
    MissingIdTerminator,
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    IdTooLong,
    /// The id is not UTF-8.
    IdNotUtf8,
    /// An id to encode contains `\n`, which would end it early.
    IdHasNewline,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::BadStart { found } => {
                write!(f, "block does not start with '0' (found byte {found:#04x})")
            }
            BlockError::EmptySize => f.write_str("block size is empty"),
            BlockError::EmptyMantissa => {
                f.write_str("block size has no digits before the exponent")
            }
            BlockError::LeadingZero => f.write_str("block size has a leading zero"),
            BlockError::InvalidSizeChar { found } => {
                write!(f, "block size has a non-digit byte {found:#04x}")
            }
            BlockError::InvalidExponent { found } => {
                write!(f, "block size exponent {found:#04x} is not in [0-9A-Z]")
            }
            BlockError::SizeOverflow => f.write_str("block size overflows 64 bits"),
            BlockError::SizeLineTooLong => {
                write!(f, "block size line longer than {MAX_SIZE_LEN} bytes")
            }
            BlockError::TooLarge { size, max } => {
                write!(f, "block of {size} bytes exceeds the limit of {max}")
            }
            BlockError::MissingIdTerminator => f.write_str("block has no newline after its id"),
            BlockError::IdTooLong => write!(f, "block id longer than {MAX_ID_LEN} bytes"),
            BlockError::IdNotUtf8 => f.write_str("block id is not UTF-8"),
            BlockError::IdHasNewline => f.write_str("block id contains a newline"),
        }
    }
}

impl std::error::Error for BlockError {}

/// Parses a SIZE field (without the leading `0` or the trailing `\n`) into a byte count.
///
/// ```
/// use dsps::proto::block::parse_size;
/// assert_eq!(parse_size(b"340"), Ok(34));
/// assert_eq!(parse_size(b"21"), Ok(2048));
/// assert_eq!(parse_size(b"10"), Ok(1));
/// assert!(parse_size(b"0340").is_err()); // leading zero
/// ```
pub fn parse_size(s: &[u8]) -> Result<u64, BlockError> {
    let (&exp, mantissa) = s.split_last().ok_or(BlockError::EmptySize)?;
    let &first = mantissa.first().ok_or(BlockError::EmptyMantissa)?;
    if first == b'0' {
        return Err(BlockError::LeadingZero);
    }
    let mut value: u64 = 0;
    for &c in mantissa {
        if !c.is_ascii_digit() {
            return Err(BlockError::InvalidSizeChar { found: c });
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(BlockError::SizeOverflow)?;
    }
    let power = match exp {
        b'0'..=b'9' => u32::from(exp - b'0'),
        b'A'..=b'Z' => u32::from(exp - b'A') + 10,
        _ => return Err(BlockError::InvalidExponent { found: exp }),
    };
    1024u64
        .checked_pow(power)
        .and_then(|scale| value.checked_mul(scale))
        .ok_or(BlockError::SizeOverflow)
}

/// Checks that `id` can go into a block header.
pub fn check_id(id: &str) -> Result<(), BlockError> {
    if id.len() > MAX_ID_LEN {
        return Err(BlockError::IdTooLong);
    }
    if id.contains('\n') {
        return Err(BlockError::IdHasNewline);
    }
    Ok(())
}

/// Writes the header for a block of `data_len` data bytes from `id`, right-aligned at the end
/// of `out`, and returns how many bytes it used (the header is `out[MAX_HEADER_LEN - n..]`).
///
/// Right alignment lets the relay read data into a buffer just after a reserved gap of
/// [`MAX_HEADER_LEN`] bytes, then put the header immediately before the data: the block is one
/// contiguous slice and the data is never copied. SIZE is written with exponent `0`.
///
/// ```
/// use dsps::proto::block::{write_header, MAX_HEADER_LEN};
/// let data = b"this is the data in ASCII form";
/// let mut buf = vec![0u8; MAX_HEADER_LEN + data.len()];
/// buf[MAX_HEADER_LEN..].copy_from_slice(data); // in the relay: the socket read
/// let gap: &mut [u8; MAX_HEADER_LEN] = (&mut buf[..MAX_HEADER_LEN]).try_into().unwrap();
/// let n = write_header("010", data.len(), gap).unwrap();
/// assert_eq!(&buf[MAX_HEADER_LEN - n..], b"0340\n010\nthis is the data in ASCII form");
/// ```
pub fn write_header(
    id: &str,
    data_len: usize,
    out: &mut [u8; MAX_HEADER_LEN],
) -> Result<usize, BlockError> {
    check_id(id)?;
    // SIZE counts the id, its newline and the data.
    let size = (id.len() as u64)
        .checked_add(1)
        .and_then(|n| n.checked_add(data_len as u64))
        .ok_or(BlockError::SizeOverflow)?;

    // Fill from the end backwards: `\n`, id, `\n`, exponent, digits, `0`.
    let mut at = MAX_HEADER_LEN;
    at -= 1;
    out[at] = b'\n';
    at -= id.len();
    out[at..at + id.len()].copy_from_slice(id.as_bytes());
    at -= 1;
    out[at] = b'\n';
    at -= 1;
    out[at] = b'0';
    // `size >= 1` (the id's newline), so at least one digit is written and none is a
    // leading zero; at most 20 digits fit a u64, which MAX_SIZE_LEN accounts for.
    let mut rest = size;
    while rest > 0 {
        at -= 1;
        out[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    at -= 1;
    out[at] = BLOCK_START;
    Ok(MAX_HEADER_LEN - at)
}

/// Encodes one whole block into a new buffer: handy for tests and clients.
///
/// ```
/// use dsps::proto::block::encode;
/// assert_eq!(
///     encode("010", b"this is the data in ASCII form").unwrap(),
///     b"0340\n010\nthis is the data in ASCII form"
/// );
/// ```
pub fn encode(id: &str, data: &[u8]) -> Result<Vec<u8>, BlockError> {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = write_header(id, data.len(), &mut header)?;
    let mut out = Vec::with_capacity(n + data.len());
    out.extend_from_slice(&header[MAX_HEADER_LEN - n..]);
    out.extend_from_slice(data);
    Ok(out)
}

/// Cuts blocks out of a read buffer, one at a time (mini-redis `Frame` style).
///
/// It keeps no state between calls: each call looks at the front of the buffer again, which
/// costs at most a header's worth of scanning and means it cannot get out of step with the
/// buffer. After an error the buffer is in an unknown position; close the connection.
#[derive(Debug, Clone)]
pub struct BlockDecoder {
    max_block_len: u64,
}

impl BlockDecoder {
    /// A decoder that rejects blocks whose SIZE (id, newline and data) exceeds `max_block_len`.
    pub fn new(max_block_len: u64) -> Self {
        BlockDecoder { max_block_len }
    }

    /// The largest SIZE this decoder accepts.
    pub fn max_block_len(&self) -> u64 {
        self.max_block_len
    }

    /// Decodes the block at the front of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed (nothing is consumed), and
    /// `Ok(Some(block))` after removing exactly one block from `buf`. A size over the limit is
    /// reported as soon as the size line is complete, before any of the body is buffered.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Block>, BlockError> {
        let Some(&start) = buf.first() else {
            return Ok(None);
        };
        if start != BLOCK_START {
            return Err(BlockError::BadStart { found: start });
        }

        // The size line: up to MAX_SIZE_LEN bytes, then `\n`.
        let after_start = &buf[1..];
        let search = &after_start[..after_start.len().min(MAX_SIZE_LEN + 1)];
        let Some(size_len) = search.iter().position(|&b| b == b'\n') else {
            if search.len() > MAX_SIZE_LEN {
                return Err(BlockError::SizeLineTooLong);
            }
            // Reject garbage now instead of waiting for a newline that may never come.
            check_partial_size(search)?;
            return Ok(None);
        };
        let size = parse_size(&search[..size_len])?;
        if size > self.max_block_len {
            return Err(BlockError::TooLarge {
                size,
                max: self.max_block_len,
            });
        }
        // The limit is a usize on any sensible platform; if not, the block cannot be held.
        let size = usize::try_from(size).map_err(|_| BlockError::SizeOverflow)?;
        let body_start = 1 + size_len + 1;

        // The id line lies inside the SIZE bytes and is at most MAX_ID_LEN + 1 bytes long.
        let body = &buf[body_start..];
        let id_window = size.min(MAX_ID_LEN + 1);
        let visible = &body[..body.len().min(id_window)];
        let Some(id_len) = visible.iter().position(|&b| b == b'\n') else {
            if visible.len() == id_window {
                return Err(if id_window == size {
                    BlockError::MissingIdTerminator
                } else {
                    BlockError::IdTooLong
                });
            }
            return Ok(None);
        };
        if body.len() < size {
            return Ok(None);
        }

        let id = std::str::from_utf8(&body[..id_len])
            .map_err(|_| BlockError::IdNotUtf8)?
            .to_owned();
        buf.advance(body_start + id_len + 1);
        let data = buf.split_to(size - id_len - 1).freeze();
        Ok(Some(Block { id, data }))
    }
}

/// Checks a size line that has no `\n` yet: could more bytes still make it valid?
fn check_partial_size(s: &[u8]) -> Result<(), BlockError> {
    let Some((&first, rest)) = s.split_first() else {
        return Ok(());
    };
    match first {
        b'1'..=b'9' => {}
        // No valid size starts with `0`: it is a leading zero or an empty mantissa.
        b'0' => return Err(BlockError::LeadingZero),
        _ => return Err(BlockError::InvalidSizeChar { found: first }),
    }
    if let Some((&last, middle)) = rest.split_last() {
        if let Some(&c) = middle.iter().find(|c| !c.is_ascii_digit()) {
            return Err(BlockError::InvalidSizeChar { found: c });
        }
        // The last byte so far may be the exponent, so it may be a letter.
        if !(last.is_ascii_digit() || last.is_ascii_uppercase()) {
            return Err(BlockError::InvalidExponent { found: last });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_BLOCK: &[u8] = b"0340\n010\nthis is the data in ASCII form";

    fn decode_all(decoder: &mut BlockDecoder, bytes: &[u8]) -> Result<Vec<Block>, BlockError> {
        let mut buf = BytesMut::from(bytes);
        let mut blocks = Vec::new();
        while let Some(block) = decoder.decode(&mut buf)? {
            blocks.push(block);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(blocks)
    }

    fn decode_bytewise(decoder: &mut BlockDecoder, bytes: &[u8]) -> Result<Vec<Block>, BlockError> {
        let mut buf = BytesMut::new();
        let mut blocks = Vec::new();
        for &b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(block) = decoder.decode(&mut buf)? {
                blocks.push(block);
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(blocks)
    }

    fn block(id: &str, data: &[u8]) -> Block {
        Block {
            id: id.to_owned(),
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn spec_example_decodes() {
        let blocks = decode_all(&mut BlockDecoder::new(1024), SPEC_BLOCK).unwrap();
        assert_eq!(blocks, [block("010", b"this is the data in ASCII form")]);
    }

    #[test]
    fn spec_example_encodes() {
        assert_eq!(
            encode("010", b"this is the data in ASCII form").unwrap(),
            SPEC_BLOCK
        );
    }

    #[test]
    fn spec_sizes_parse() {
        assert_eq!(parse_size(b"340"), Ok(34));
        assert_eq!(parse_size(b"21"), Ok(2048));
        assert_eq!(parse_size(b"11"), Ok(1024));
        assert_eq!(parse_size(b"10"), Ok(1));
    }

    #[test]
    fn every_spelling_of_a_size_is_accepted() {
        assert_eq!(parse_size(b"20480"), Ok(2048));
        assert_eq!(parse_size(b"21"), Ok(2048));
        assert_eq!(parse_size(b"10240"), Ok(1024));
        assert_eq!(parse_size(b"11"), Ok(1024));
        assert_eq!(parse_size(b"10485760"), Ok(1 << 20));
        assert_eq!(parse_size(b"10241"), Ok(1 << 20));
        assert_eq!(parse_size(b"12"), Ok(1 << 20));
        assert_eq!(parse_size(b"16"), Ok(1 << 60));
        assert_eq!(parse_size(b"184467440737095516150"), Ok(u64::MAX));
    }

    #[test]
    fn bad_sizes_are_rejected() {
        assert_eq!(parse_size(b""), Err(BlockError::EmptySize));
        assert_eq!(parse_size(b"0"), Err(BlockError::EmptyMantissa));
        assert_eq!(parse_size(b"5"), Err(BlockError::EmptyMantissa));
        assert_eq!(parse_size(b"0340"), Err(BlockError::LeadingZero));
        assert_eq!(parse_size(b"00"), Err(BlockError::LeadingZero));
        assert_eq!(
            parse_size(b"3x0"),
            Err(BlockError::InvalidSizeChar { found: b'x' })
        );
        assert_eq!(
            parse_size(b"3A0"),
            Err(BlockError::InvalidSizeChar { found: b'A' })
        );
        assert_eq!(
            parse_size(b"34a"),
            Err(BlockError::InvalidExponent { found: b'a' })
        );
        assert_eq!(
            parse_size(b"34\r"),
            Err(BlockError::InvalidExponent { found: b'\r' })
        );
        assert_eq!(parse_size(b"17"), Err(BlockError::SizeOverflow));
        assert_eq!(parse_size(b"1Z"), Err(BlockError::SizeOverflow));
        assert_eq!(
            parse_size(b"184467440737095516160"),
            Err(BlockError::SizeOverflow)
        );
    }

    #[test]
    fn size_with_exponent_decodes() {
        let data = vec![b'x'; 1024 - 2];
        let mut bytes = b"011\n7\n".to_vec();
        bytes.extend_from_slice(&data);
        let blocks = decode_all(&mut BlockDecoder::new(4096), &bytes).unwrap();
        assert_eq!(blocks, [block("7", &data)]);
    }

    #[test]
    fn bytewise_feeding_matches_whole_feeding() {
        let mut stream = SPEC_BLOCK.to_vec();
        stream.extend(encode("", b"").unwrap());
        stream.extend(encode("3", b"\n0\n").unwrap());
        stream.extend(encode("12345678901234567890", &[0u8; 300]).unwrap());
        let whole = decode_all(&mut BlockDecoder::new(1024), &stream).unwrap();
        let bytewise = decode_bytewise(&mut BlockDecoder::new(1024), &stream).unwrap();
        assert_eq!(whole.len(), 4);
        assert_eq!(whole, bytewise);
        assert_eq!(whole[1], block("", b""));
        assert_eq!(whole[2], block("3", b"\n0\n"));
    }

    #[test]
    fn back_to_back_blocks_are_consumed_one_at_a_time() {
        let mut stream = SPEC_BLOCK.to_vec();
        stream.extend_from_slice(SPEC_BLOCK);
        let mut buf = BytesMut::from(&stream[..]);
        let mut decoder = BlockDecoder::new(1024);
        assert!(decoder.decode(&mut buf).unwrap().is_some());
        assert_eq!(&buf[..], SPEC_BLOCK);
        assert!(decoder.decode(&mut buf).unwrap().is_some());
        assert!(buf.is_empty());
        assert_eq!(decoder.decode(&mut buf), Ok(None));
    }

    #[test]
    fn incomplete_block_consumes_nothing() {
        let mut buf = BytesMut::from(&SPEC_BLOCK[..SPEC_BLOCK.len() - 1]);
        assert_eq!(BlockDecoder::new(1024).decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), SPEC_BLOCK.len() - 1);
    }

    #[test]
    fn size_over_limit_is_rejected_before_the_body_arrives() {
        let mut buf = BytesMut::from(&b"0340\n"[..]);
        assert_eq!(
            BlockDecoder::new(33).decode(&mut buf),
            Err(BlockError::TooLarge { size: 34, max: 33 })
        );
        let mut buf = BytesMut::from(&b"0340\n"[..]);
        assert_eq!(BlockDecoder::new(34).decode(&mut buf), Ok(None));
    }

    #[test]
    fn leading_zero_in_a_block_is_rejected() {
        let mut buf = BytesMut::from(&b"00340\n010\n"[..]);
        assert_eq!(
            BlockDecoder::new(1024).decode(&mut buf),
            Err(BlockError::LeadingZero)
        );
    }

    #[test]
    fn wrong_start_byte_is_rejected() {
        let mut buf = BytesMut::from(&b"1340\n"[..]);
        assert_eq!(
            BlockDecoder::new(1024).decode(&mut buf),
            Err(BlockError::BadStart { found: b'1' })
        );
    }

    #[test]
    fn garbage_size_is_rejected_without_waiting_for_a_newline() {
        for bad in [&b"0x"[..], b"0A", b"03a", b"03A4", b"034\r"] {
            let mut buf = BytesMut::from(bad);
            assert!(
                BlockDecoder::new(1024).decode(&mut buf).is_err(),
                "{bad:?} accepted"
            );
        }
        let mut buf = BytesMut::from(&b"00"[..]);
        assert_eq!(
            BlockDecoder::new(1024).decode(&mut buf),
            Err(BlockError::LeadingZero)
        );
        let mut buf = BytesMut::from(&b"00\n"[..]);
        assert_eq!(
            BlockDecoder::new(1024).decode(&mut buf),
            Err(BlockError::EmptyMantissa)
        );
    }

    #[test]
    fn endless_size_line_is_rejected() {
        let mut buf = BytesMut::from(&b"01111111111111111111111"[..]);
        assert_eq!(
            BlockDecoder::new(u64::MAX).decode(&mut buf),
            Err(BlockError::SizeLineTooLong)
        );
    }

    #[test]
    fn block_without_id_newline_is_rejected() {
        let mut buf = BytesMut::from(&b"050\nabcde"[..]);
        assert_eq!(
            BlockDecoder::new(1024).decode(&mut buf),
            Err(BlockError::MissingIdTerminator)
        );
    }

    #[test]
    fn long_id_is_rejected_early() {
        let mut buf = BytesMut::from(&b"01000\n123456789012345678901"[..]);
        assert_eq!(
            BlockDecoder::new(1024).decode(&mut buf),
            Err(BlockError::IdTooLong)
        );
        assert_eq!(
            encode("123456789012345678901", b""),
            Err(BlockError::IdTooLong)
        );
    }

    #[test]
    fn non_utf8_id_is_rejected() {
        let mut buf = BytesMut::from(&b"030\n\xff\nx"[..]);
        assert_eq!(
            BlockDecoder::new(1024).decode(&mut buf),
            Err(BlockError::IdNotUtf8)
        );
    }

    #[test]
    fn id_with_newline_cannot_be_encoded() {
        assert_eq!(encode("1\n2", b"x"), Err(BlockError::IdHasNewline));
    }

    #[test]
    fn header_is_right_aligned_and_fits_the_largest_size() {
        let mut out = [0xAAu8; MAX_HEADER_LEN];
        let id = "12345678901234567890";
        let max_data = usize::try_from(u64::MAX - 21).unwrap_or(usize::MAX);
        let n = write_header(id, max_data, &mut out).unwrap();
        assert!(n <= MAX_HEADER_LEN);
        let header = &out[MAX_HEADER_LEN - n..];
        assert!(header.starts_with(b"0"));
        assert!(header.ends_with(b"\n12345678901234567890\n"));
    }

    #[test]
    fn random_blocks_round_trip() {
        // A fixed xorshift keeps the test deterministic without a dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for i in 0..200 {
            let len = match i % 4 {
                0 => 0,
                1 => (next() % 16) as usize,
                _ => (next() % 5000) as usize,
            };
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let id = (next() % 100_000).to_string();
            stream.extend(encode(&id, &data).unwrap());
            expected.push(block(&id, &data));
        }
        let whole = decode_all(&mut BlockDecoder::new(8192), &stream).unwrap();
        assert_eq!(whole, expected);

        // Feed the same bytes in uneven chunks.
        let mut decoder = BlockDecoder::new(8192);
        let mut buf = BytesMut::new();
        let mut chunked = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let n = ((next() % 700) as usize + 1).min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(b) = decoder.decode(&mut buf).unwrap() {
                chunked.push(b);
            }
        }
        assert_eq!(chunked, expected);
    }

    #[test]
    fn errors_display_on_one_line() {
        let e = BlockError::TooLarge { size: 34, max: 33 };
        assert_eq!(e.to_string(), "block of 34 bytes exceeds the limit of 33");
        assert!(!BlockError::BadStart { found: b'1' }
            .to_string()
            .contains('\n'));
    }
}
