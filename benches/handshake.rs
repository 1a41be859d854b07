//! The relay port's handshake parsing, without sockets: what `relay::conn` and
//! `relay::preamble` make of the bytes a client sends before its data.
//!
//! - `default`: the hello line and the KEY2 line (XEP "Connecting to DSPS via default
//!   method"): `take_line`, `parse_first_line`, `take_line`.
//! - `ssl`: `starttls` first, then the same two lines (inside TLS; the TLS handshake
//!   itself is rustls's and not measured here).
//! - `http_preamble`: `PreambleDecoder` on the request our client sends and on a
//!   browser-like one with more headers (XEP "Connecting to DSPS via HTTP method").
//!
//! The key check itself is the registry's (a constant-time compare) and not here.
//! `cargo bench --bench handshake`; figures in docs/performance.md.

mod common;

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput};
use dsps::proto::handshake::{hello_line, parse_first_line, take_line, FirstLine, Hello};
use dsps::proto::http_preamble::{HttpRequest, PreambleDecoder, PATH};

/// A client's full JID, as a desktop client would have it.
const CLIENT: &str = "alice@example.org/laptop";
/// A DSPS peer JID: the component's domain and a 32-hex-digit resource (core::ids).
const DSPS: &str = "dsps.example.org/0beec7b5ea3f0fdbc95d0dd47f3c5bc2";
/// A KEY2 line's key: 32 alphanumeric characters (core::ids::KEY_LEN).
const KEY2: &str = "Zx8Qm2LrT4vB7nKc1WpY9sHd3FgJ6eAu";

/// What a case parses.
#[derive(Clone, Copy)]
enum Subject {
    /// Hello line and KEY2 line.
    Default,
    /// `starttls`, then the hello and KEY2 lines inside TLS.
    Ssl,
    /// The HTTP request our client sends (`client::transport`).
    HttpClient,
    /// An HTTP request with the headers a browser or proxy adds.
    HttpBrowserLike,
}

/// Every case, by its criterion id (group, name).
const CASES: &[(&str, &str, Subject)] = &[
    ("handshake", "default", Subject::Default),
    ("handshake", "ssl", Subject::Ssl),
    ("http_preamble", "client_request", Subject::HttpClient),
    ("http_preamble", "browser_like", Subject::HttpBrowserLike),
];

fn default_lines() -> Vec<u8> {
    format!("{}{KEY2}\n", hello_line(CLIENT, DSPS)).into_bytes()
}

fn http_request(subject: Subject) -> Vec<u8> {
    match subject {
        Subject::HttpClient => format!("GET {PATH} HTTP/1.0\r\nHost: dsps.example.org\r\n\r\n"),
        _ => format!(
            "GET {PATH} HTTP/1.1\r\nHost: dsps.example.org\r\n\
             User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
             Accept: */*\r\nAccept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: identity\r\n\
             Connection: keep-alive\r\nCache-Control: no-cache\r\n\r\n"
        ),
    }
    .into_bytes()
}

/// The two lines of the default handshake, as `relay::conn::handshake` reads them.
#[inline(never)]
fn default_handshake(buf: &mut BytesMut) -> (Hello, String) {
    let first = take_line(buf)
        .expect("a short UTF-8 line")
        .expect("the hello line is complete");
    let Ok(FirstLine::Hello(hello)) = parse_first_line(&first) else {
        panic!("{first:?} is not a valid hello line");
    };
    let key = take_line(buf)
        .expect("a short UTF-8 line")
        .expect("the key line is complete");
    (hello, key)
}

/// `starttls` on the plain socket (`relay::preamble::open`), then the default
/// handshake on what TLS decrypts.
#[inline(never)]
fn ssl_handshake(plain: &mut BytesMut, inner: &mut BytesMut) -> (Hello, String) {
    let first = take_line(plain)
        .expect("a short UTF-8 line")
        .expect("the starttls line is complete");
    assert_eq!(parse_first_line(&first), Ok(FirstLine::StartTls));
    default_handshake(inner)
}

#[inline(never)]
fn http_preamble(buf: &mut BytesMut) -> HttpRequest {
    PreambleDecoder::new()
        .decode(buf)
        .expect("a valid request")
        .expect("the request is complete")
}

/// Runs `subject` under `driver`, after checking once, untimed, what it parses to.
fn run(subject: Subject, driver: &mut impl common::Driver) {
    let lines = default_lines();
    let check = |(hello, key): (Hello, String)| {
        assert_eq!((hello.client.as_str(), hello.dsps.as_str()), (CLIENT, DSPS));
        assert_eq!(key, KEY2);
    };
    match subject {
        Subject::Default => {
            check(default_handshake(&mut BytesMut::from(&lines[..])));
            driver.drive_batched(
                || BytesMut::from(&lines[..]),
                |mut buf| default_handshake(&mut buf),
                BatchSize::SmallInput,
            );
        }
        Subject::Ssl => {
            let fresh = || {
                (
                    BytesMut::from(&b"starttls\n"[..]),
                    BytesMut::from(&lines[..]),
                )
            };
            let (mut plain, mut inner) = fresh();
            check(ssl_handshake(&mut plain, &mut inner));
            driver.drive_batched(
                fresh,
                |(mut plain, mut inner)| ssl_handshake(&mut plain, &mut inner),
                BatchSize::SmallInput,
            );
        }
        Subject::HttpClient | Subject::HttpBrowserLike => {
            let request = http_request(subject);
            // What follows the request stays buffered for the handshake.
            let mut buf = BytesMut::from(&[&request[..], &lines[..]].concat()[..]);
            let parsed = http_preamble(&mut buf);
            assert_eq!(parsed.header("host"), Some("dsps.example.org"));
            assert_eq!(&buf[..], &lines[..]);
            driver.drive_batched(
                || BytesMut::from(&request[..]),
                |mut buf| black_box(http_preamble(&mut buf)),
                BatchSize::SmallInput,
            );
        }
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
        // One per connection: handshakes per second (docs/performance.md gives the bytes).
        g.throughput(Throughput::Elements(1));
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
