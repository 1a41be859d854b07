//! Properties of the relay's handshake lines (`proto::handshake`; PROFILE 1–3) and of
//! the unit notation of `minthroughput` and throughput strings (`proto::units`;
//! PROFILE 16).
//!
//! - `take_line` never panics on arbitrary bytes fed in arbitrary pieces; it hands out
//!   exactly the lines that were sent, ended by `\n` or `\r\n`, leaves what follows in
//!   the buffer, and refuses a line of more than `MAX_LINE_LEN` bytes.
//! - `parse_first_line`/`parse_hello` never panic; two full JIDs make a hello that
//!   survives `hello_line` → `take_line` → `parse_hello`.
//! - `parse_rate` never panics, accepts every spelling of a number with a unit and
//!   gives its exact value; `format_rate` always prints PROFILE 16's shape and parses
//!   back to within its one-decimal rounding.

mod prop_support;

use bytes::BytesMut;
use dsps::proto::handshake::{
    hello_line, parse_first_line, parse_hello, take_line, FirstLine, LineError, MAX_LINE_LEN,
};
use dsps::proto::units::{format_rate, parse_rate, parse_rate_or_zero, parse_throughput};
use proptest::prelude::*;

/// Feeds `bytes` in pieces ending at `cuts`, taking lines after every piece. Returns
/// the lines, the first error and what is left in the buffer.
fn feed_lines(bytes: &[u8], cuts: &[usize]) -> (Vec<String>, Option<LineError>, BytesMut) {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    let mut buf = BytesMut::new();
    let mut lines = Vec::new();
    let mut from = 0;
    for to in points {
        buf.extend_from_slice(&bytes[from..to]);
        from = to;
        loop {
            let before = buf.clone();
            match take_line(&mut buf) {
                Ok(Some(line)) => {
                    let used = before.len() - buf.len();
                    assert!(used <= MAX_LINE_LEN, "took a {used}-byte line");
                    assert_eq!(before[used - 1], b'\n');
                    assert!(!line.contains('\n'));
                    assert!(used == line.len() + 1 || used == line.len() + 2);
                    assert_eq!(&before[..line.len()], line.as_bytes());
                    lines.push(line);
                }
                Ok(None) => {
                    assert_eq!(before, buf, "Ok(None) consumed bytes");
                    assert!(!buf.contains(&b'\n'));
                    assert!(buf.len() < MAX_LINE_LEN);
                    break;
                }
                Err(e) => return (lines, Some(e), buf),
            }
        }
    }
    (lines, None, buf)
}

/// A line's content: anything but `\n`, not ending in `\r` (that would be read as a
/// CRLF terminator, which is the point of accepting both).
fn line_content() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\n]{0,60}",
        "[ -~]{0,200}",
        // Around the limit.
        (MAX_LINE_LEN - 4..MAX_LINE_LEN).prop_map(|n| "a".repeat(n)),
    ]
    .prop_filter("no trailing CR", |s| !s.ends_with('\r'))
}

fn jid_part() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,15}".prop_filter("no dot at the end or twice", |s| {
        !s.ends_with('.') && !s.contains("..")
    })
}

fn full_jid() -> impl Strategy<Value = String> {
    (
        proptest::option::of(jid_part()),
        "[a-z0-9]{1,12}(\\.[a-z]{2,6}){0,2}",
        "[A-Za-z0-9_.-]{1,40}",
    )
        .prop_map(|(local, domain, resource)| match local {
            Some(l) => format!("{l}@{domain}/{resource}"),
            None => format!("{domain}/{resource}"),
        })
}

const UNITS: [&str; 7] = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];

proptest! {
    #![proptest_config(prop_support::config())]

    #[test]
    fn arbitrary_bytes_never_panic_the_line_reader(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600),
            proptest::collection::vec(proptest::sample::select(b"ab\r\n\xff\xc3 ".to_vec()), 0..600),
            (MAX_LINE_LEN - 8..MAX_LINE_LEN + 8).prop_map(|n| vec![b'x'; n]),
        ],
        cuts in proptest::collection::vec(0usize..700, 0..10),
    ) {
        let (_, err, rest) = feed_lines(&bytes, &cuts);
        if let Some(LineError::TooLong) = err {
            let within = &rest[..rest.len().min(MAX_LINE_LEN)];
            prop_assert!(!within.contains(&b'\n'), "a newline within the limit");
        }
    }

    #[test]
    fn lines_come_back_as_sent_with_lf_or_crlf(
        lines in proptest::collection::vec((line_content(), any::<bool>()), 0..10),
        tail in "[^\n]{0,20}",
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..20),
    ) {
        let mut bytes = Vec::new();
        for (line, crlf) in &lines {
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
        }
        let fits = lines
            .iter()
            .all(|(l, crlf)| l.len() + 1 + usize::from(*crlf) <= MAX_LINE_LEN);
        bytes.extend_from_slice(tail.as_bytes());
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        let (got, err, rest) = feed_lines(&bytes, &cuts);
        if fits {
            prop_assert_eq!(err, None);
            let want: Vec<String> = lines.into_iter().map(|(l, _)| l).collect();
            prop_assert_eq!(got, want);
            // What follows the last line (data sent right behind the key) stays put.
            prop_assert_eq!(&rest[..], tail.as_bytes());
        } else {
            prop_assert_eq!(err, Some(LineError::TooLong));
        }
    }

    /// A line of more than MAX_LINE_LEN bytes (terminator included) is refused,
    /// whether its newline has arrived yet or not.
    #[test]
    fn over_long_lines_are_refused(extra in 0usize..5000, crlf in any::<bool>(), whole in any::<bool>()) {
        let content = MAX_LINE_LEN + extra - usize::from(crlf);
        let mut bytes = vec![b'k'; content];
        bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        let cuts: Vec<usize> = if whole { vec![] } else { (0..bytes.len()).step_by(97).collect() };
        let (lines, err, _) = feed_lines(&bytes, &cuts);
        prop_assert!(lines.is_empty());
        prop_assert_eq!(err, Some(LineError::TooLong));
    }

    #[test]
    fn first_line_parsers_never_panic(line in prop_oneof![
        any::<String>(),
        "[a-z@./ ]{0,40}",
        "(starttls|GET /DSPS/STREAM/ HTTP/1\\.[0-9]|[a-z]+@[a-z]+/[a-z]*)( [a-z./@]*){0,3}",
    ]) {
        let first = parse_first_line(&line);
        let hello = parse_hello(&line);
        if let Ok(FirstLine::Hello(h)) = &first {
            prop_assert_eq!(Ok(h.clone()), hello.clone());
        }
        if let Ok(h) = hello {
            // A hello names exactly two JIDs separated by one space.
            prop_assert_eq!(format!("{} {}", h.client, h.dsps), line);
        }
    }

    #[test]
    fn valid_hello_lines_round_trip(client in full_jid(), dsps in full_jid(), crlf in any::<bool>()) {
        let mut bytes = hello_line(&client, &dsps).into_bytes();
        if crlf {
            bytes.insert(bytes.len() - 1, b'\r');
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let line = take_line(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());
        let hello = parse_hello(&line).unwrap();
        prop_assert_eq!((hello.client.as_str(), hello.dsps.as_str()), (client.as_str(), dsps.as_str()));
        prop_assert_eq!(parse_first_line(&line), Ok(FirstLine::Hello(hello)));
    }

    #[test]
    fn unit_parsers_never_panic(s in prop_oneof![
        any::<String>(),
        "[-+ ]?[0-9.]{0,25} ?[KMGTPEkmgtpe]?[Bb]?[/ ]?",
        "([0-9.]{0,6}[KMGT]?B?/){0,7}",
    ]) {
        let rate = parse_rate(&s);
        let lenient = parse_rate_or_zero(&s);
        // The lenient form differs only for negatives, which it reads as 0.
        if rate.is_ok() {
            prop_assert_eq!(rate.clone(), lenient.clone());
        }
        if s.trim().starts_with('-') && lenient.is_ok() {
            prop_assert_eq!(lenient, Ok(0));
        }
        let _ = parse_throughput(&s);
    }

    /// `int[.frac][ ]unit` in any letter case equals int × 1024^unit plus the fraction
    /// of a unit, rounded down; or overflows when that is past u64::MAX.
    #[test]
    fn every_spelling_of_a_rate_gives_its_exact_value(
        int in prop_oneof![0u64..5000, any::<u64>()],
        frac in proptest::option::of("[0-9]{0,25}"),
        unit in proptest::option::of(0usize..UNITS.len()),
        lower in any::<bool>(),
        space in any::<bool>(),
    ) {
        let mut s = int.to_string();
        if let Some(f) = &frac {
            s.push('.');
            s.push_str(f);
        }
        let power = unit.unwrap_or(0);
        if let Some(u) = unit {
            if space {
                s.push(' ');
            }
            let name = UNITS[u];
            s.push_str(&if lower { name.to_ascii_lowercase() } else { name.to_string() });
        }
        let scale = 1u128 << (10 * power);
        // Up to 19 decimals count, as the parser documents.
        let digits = frac.as_deref().unwrap_or("");
        let digits = &digits[..digits.len().min(19)];
        let frac_value: u128 = if digits.is_empty() { 0 } else { digits.parse().unwrap() };
        let want = u128::from(int) * scale + frac_value * scale / 10u128.pow(digits.len() as u32);
        match u64::try_from(want) {
            Ok(v) => prop_assert_eq!(parse_rate(&s), Ok(v), "{}", s),
            Err(_) => prop_assert!(parse_rate(&s).is_err(), "{} accepted", s),
        }
    }

    /// What `format_rate` prints has PROFILE 16's shape and reads back to the value
    /// within half a tenth of the unit it chose (exact for whole bytes under 1 KB).
    #[test]
    fn formatted_rates_parse_back(v in prop_oneof![0f64..2048.0, 0f64..1e15, any::<f64>()]) {
        let s = format_rate(v);
        let unit_at = s.find(|c: char| c.is_ascii_alphabetic()).unwrap();
        let (number, unit) = s.split_at(unit_at);
        prop_assert!(["B", "KB", "MB", "GB", "TB"].contains(&unit), "{}", s);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        prop_assert!(!int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()), "{}", s);
        prop_assert!(frac.len() <= 1 && frac != "0", "{}", s);
        if (0.0..1e15).contains(&v) {
            let back = parse_rate(&s).unwrap() as f64;
            let power = ["B", "KB", "MB", "GB", "TB"].iter().position(|u| *u == unit).unwrap();
            let scale = 1024f64.powi(power as i32);
            prop_assert!((back - v).abs() <= 0.05 * scale + 1.0, "{} -> {} -> {}", v, s, back);
            if v < 1024.0 && v.fract() == 0.0 {
                prop_assert_eq!(back, v);
            }
        }
    }

    #[test]
    fn throughput_strings_round_trip(fields in proptest::collection::vec(proptest::option::of(0u64..(1 << 40)), 1..8)) {
        let s: Vec<String> = fields.iter().map(|f| f.map(|v| format!("{v}B")).unwrap_or_default()).collect();
        prop_assert_eq!(parse_throughput(&s.join("/")), Ok(fields));
    }
}
