//! The HTTP preamble of the `[http]` listener (XEP "Connecting to DSPS via HTTP
//! method"; PROFILE 3): the request a client sends before the DSPS handshake, and
//! the two replies.
//!
//! Sans-IO: [`PreambleDecoder::decode`] looks at the bytes read so far and says "not yet"
//! (`Ok(None)`), "this is the request" (and takes it off the buffer, leaving what
//! follows: `starttls` or the hello line may already be there), or "this is wrong".
//! The relay adapter owns the socket, the timeout and the replies' writing.
//!
//! Our reading (docs/protocol-notes.md, "HTTP method"):
//! - The request line is exactly `GET /DSPS/STREAM/ HTTP/1.0` or `… HTTP/1.1`:
//!   method, path and version as the XEP writes them, case-sensitive, single
//!   spaces. No query string, no absolute URI.
//! - Any headers may follow (`Host` is not required, as in HTTP/1.0); each is
//!   `name: value` with a token as name. Obsolete line folding and control
//!   characters are refused. Header values are not looked at.
//! - Lines end in `\r\n` or `\n`; the preamble ends at the first empty line.
//! - Bounds: [`MAX_REQUEST_LINE`] for the request line and [`MAX_PREAMBLE`] for the
//!   whole preamble, terminators included. A wrong request line is refused as soon
//!   as it is complete, without waiting for the headers.
//! - The answer is always HTTP/1.0 ([`OK_RESPONSE`], or [`UNAUTHORIZED_RESPONSE`]
//!   before the connection is closed).

use bytes::BytesMut;

/// Longest request line accepted, terminator included. The only valid one is 26
/// bytes long; this leaves room for nothing but a clear "too long".
pub const MAX_REQUEST_LINE: usize = 1024;
/// Most bytes of the whole preamble (request line, headers, empty line).
pub const MAX_PREAMBLE: usize = 8192;
/// The path the XEP names.
pub const PATH: &str = "/DSPS/STREAM/";
/// What the DSPS answers to a valid request; the DSPS handshake follows on the
/// same connection.
pub const OK_RESPONSE: &str = "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";
/// What the DSPS answers to any other request, before it closes the connection
/// (the XEP's optional 401 "Returned if any error in HTTP handshake").
pub const UNAUTHORIZED_RESPONSE: &str =
    "HTTP/1.0 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The HTTP version a client asked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// `HTTP/1.0`, as in the XEP.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

/// A valid preamble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The version of the request line.
    pub version: HttpVersion,
    /// The headers as sent, `(name, value)`, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl HttpRequest {
    /// The first value of header `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a preamble is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The request line is longer than [`MAX_REQUEST_LINE`].
    RequestLineTooLong,
    /// The preamble is longer than [`MAX_PREAMBLE`].
    PreambleTooLong,
    /// The request line is not `METHOD SP PATH SP VERSION`.
    MalformedRequestLine,
    /// A method other than `GET`.
    Method(String),
    /// A path other than [`PATH`].
    Path(String),
    /// A version other than `HTTP/1.0` or `HTTP/1.1`.
    Version(String),
    /// A header line that is not `name: value` (or a folded line).
    MalformedHeader,
    /// The connection ended inside the preamble.
    Truncated,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Client-supplied text is shown with {:?} so it cannot forge log lines.
        match self {
            HttpError::RequestLineTooLong => {
                write!(f, "HTTP request line longer than {MAX_REQUEST_LINE} bytes")
            }
            HttpError::PreambleTooLong => {
                write!(f, "HTTP request headers longer than {MAX_PREAMBLE} bytes")
            }
            HttpError::MalformedRequestLine => write!(f, "malformed HTTP request line"),
            HttpError::Method(m) => write!(f, "HTTP method {m:?} is not GET"),
            HttpError::Path(p) => write!(f, "HTTP path {p:?} is not {PATH}"),
            HttpError::Version(v) => write!(f, "HTTP version {v:?} is not HTTP/1.0 or HTTP/1.1"),
            HttpError::MalformedHeader => write!(f, "malformed HTTP header line"),
            HttpError::Truncated => write!(f, "connection closed inside the HTTP request"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Decodes the preamble at the front of a buffer that is only appended to between
/// calls (each byte is looked at once, however the request is split).
#[derive(Debug, Default)]
pub struct PreambleDecoder {
    /// Where the next line starts.
    line_start: usize,
    /// How far the current line has been searched for its `\n`.
    searched: usize,
    /// The request line's version, once it is read.
    version: Option<HttpVersion>,
    headers: Vec<(String, String)>,
}

impl PreambleDecoder {
    /// A decoder at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Ok(None)`: not complete yet, read more. `Ok(Some(_))`: the preamble is
    /// taken off `buf`; what follows it stays.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<HttpRequest>, HttpError> {
        loop {
            let from = self.searched.max(self.line_start);
            let Some(nl) = buf[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| from + i)
            else {
                self.searched = buf.len();
                return match self.version {
                    None if buf.len() >= MAX_REQUEST_LINE => Err(HttpError::RequestLineTooLong),
                    Some(_) if buf.len() >= MAX_PREAMBLE => Err(HttpError::PreambleTooLong),
                    _ => Ok(None),
                };
            };
            let end = nl + 1;
            let text_end = if nl > self.line_start && buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            let line = &buf[self.line_start..text_end];
            self.line_start = end;
            match self.version {
                None if end > MAX_REQUEST_LINE => return Err(HttpError::RequestLineTooLong),
                None => self.version = Some(request_line(line)?),
                Some(_) if end > MAX_PREAMBLE => return Err(HttpError::PreambleTooLong),
                Some(version) if line.is_empty() => {
                    let _ = buf.split_to(end);
                    let headers = std::mem::take(&mut self.headers);
                    *self = PreambleDecoder::new();
                    return Ok(Some(HttpRequest { version, headers }));
                }
                Some(_) => {
                    let h = header(line)?;
                    self.headers.push(h);
                }
            }
        }
    }

    /// [`PreambleDecoder::decode`] once the connection has ended: an incomplete
    /// preamble is [`HttpError::Truncated`].
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<HttpRequest, HttpError> {
        self.decode(buf)?.ok_or(HttpError::Truncated)
    }
}

fn request_line(line: &[u8]) -> Result<HttpVersion, HttpError> {
    let text = std::str::from_utf8(line).map_err(|_| HttpError::MalformedRequestLine)?;
    let mut parts = text.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::MalformedRequestLine);
    };
    if method.is_empty() || path.is_empty() || version.is_empty() {
        return Err(HttpError::MalformedRequestLine);
    }
    if method != "GET" {
        return Err(HttpError::Method(method.to_string()));
    }
    if path != PATH {
        return Err(HttpError::Path(path.to_string()));
    }
    match version {
        "HTTP/1.0" => Ok(HttpVersion::Http10),
        "HTTP/1.1" => Ok(HttpVersion::Http11),
        other => Err(HttpError::Version(other.to_string())),
    }
}

/// RFC 9110 `tchar`: what a header name is made of.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn header(line: &[u8]) -> Result<(String, String), HttpError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::MalformedHeader)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // A line starting with a space or tab is obsolete folding (RFC 9112 §5.2);
    // a name with spaces before the colon is refused by RFC 9112 §5.1 too.
    if name.is_empty() || !name.iter().all(|&b| is_token_char(b)) {
        return Err(HttpError::MalformedHeader);
    }
    // Field values: visible characters, spaces, tabs and obs-text (bytes ≥ 0x80).
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HttpError::MalformedHeader);
    }
    let value = String::from_utf8_lossy(value)
        .trim_matches([' ', '\t'])
        .to_string();
    Ok((String::from_utf8_lossy(name).into_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The XEP's example, with its `<CR>` read as `\n` (PROFILE 1).
    const SPEC_REQUEST: &str = "GET /DSPS/STREAM/ HTTP/1.0\nHost: dsps.server\n\n";

    fn all_at_once(text: &[u8]) -> (Result<Option<HttpRequest>, HttpError>, BytesMut) {
        let mut buf = BytesMut::from(text);
        let r = PreambleDecoder::new().decode(&mut buf);
        (r, buf)
    }

    /// Feeds `text` one byte at a time; returns the first decision and the rest.
    fn byte_by_byte(text: &[u8]) -> (Result<Option<HttpRequest>, HttpError>, BytesMut) {
        let mut buf = BytesMut::new();
        let mut decoder = PreambleDecoder::new();
        for &b in text {
            buf.extend_from_slice(&[b]);
            match decoder.decode(&mut buf) {
                Ok(None) => continue,
                other => return (other, buf),
            }
        }
        (Ok(None), buf)
    }

    #[test]
    fn the_spec_request_is_accepted_and_what_follows_stays() {
        let text = format!("{SPEC_REQUEST}starttls\n");
        let (r, rest) = all_at_once(text.as_bytes());
        let req = r.expect("valid").expect("complete");
        assert_eq!(req.version, HttpVersion::Http10);
        assert_eq!(req.header("host"), Some("dsps.server"));
        assert_eq!(&rest[..], b"starttls\n", "the next line stays buffered");
        let (r, rest) = byte_by_byte(SPEC_REQUEST.as_bytes());
        assert_eq!(r, Ok(Some(req)), "the same request, fed one byte at a time");
        assert!(rest.is_empty());
    }

    #[test]
    fn crlf_lf_and_mixed_line_ends_are_accepted() {
        for text in [
            "GET /DSPS/STREAM/ HTTP/1.0\r\nHost: a\r\n\r\n",
            "GET /DSPS/STREAM/ HTTP/1.0\nHost: a\r\n\n",
            "GET /DSPS/STREAM/ HTTP/1.0\r\n\r\n",
            "GET /DSPS/STREAM/ HTTP/1.0\n\n",
        ] {
            let (r, rest) = all_at_once(text.as_bytes());
            assert!(matches!(r, Ok(Some(_))), "{text:?}: {r:?}");
            assert!(rest.is_empty(), "{text:?} left {rest:?}");
        }
    }

    #[test]
    fn any_headers_are_accepted_and_kept() {
        let text = "GET /DSPS/STREAM/ HTTP/1.1\r\nHost: dsps.example.org:80\r\nUser-Agent: x/1.0 (y)\r\nX-Empty:\r\nAccept:\t*/*  \r\n\r\n";
        let req = all_at_once(text.as_bytes()).0.unwrap().unwrap();
        assert_eq!(req.version, HttpVersion::Http11);
        assert_eq!(
            req.headers,
            vec![
                ("Host".into(), "dsps.example.org:80".into()),
                ("User-Agent".into(), "x/1.0 (y)".into()),
                ("X-Empty".into(), "".into()),
                ("Accept".into(), "*/*".into()),
            ]
        );
    }

    #[test]
    fn wrong_method_path_or_version_is_refused_once_the_line_is_complete() {
        let cases = [
            (
                "POST /DSPS/STREAM/ HTTP/1.0\n",
                HttpError::Method("POST".into()),
            ),
            (
                "get /DSPS/STREAM/ HTTP/1.0\n",
                HttpError::Method("get".into()),
            ),
            (
                "GET /DSPS/STREAM HTTP/1.0\n",
                HttpError::Path("/DSPS/STREAM".into()),
            ),
            (
                "GET /dsps/stream/ HTTP/1.0\n",
                HttpError::Path("/dsps/stream/".into()),
            ),
            (
                "GET /DSPS/STREAM/?x=1 HTTP/1.0\n",
                HttpError::Path("/DSPS/STREAM/?x=1".into()),
            ),
            (
                "GET /DSPS/STREAM/ HTTP/2.0\n",
                HttpError::Version("HTTP/2.0".into()),
            ),
            (
                "GET /DSPS/STREAM/ http/1.0\n",
                HttpError::Version("http/1.0".into()),
            ),
            ("GET /DSPS/STREAM/\n", HttpError::MalformedRequestLine),
            (
                "GET  /DSPS/STREAM/ HTTP/1.0\n",
                HttpError::MalformedRequestLine,
            ),
            (
                "GET /DSPS/STREAM/ HTTP/1.0 x\n",
                HttpError::MalformedRequestLine,
            ),
            ("\n", HttpError::MalformedRequestLine),
            // The relay port's own first lines are not HTTP.
            ("starttls\n", HttpError::MalformedRequestLine),
        ];
        for (text, want) in cases {
            // No header has arrived: the request line alone decides.
            assert_eq!(
                all_at_once(text.as_bytes()).0,
                Err(want.clone()),
                "{text:?}"
            );
            assert_eq!(byte_by_byte(text.as_bytes()).0, Err(want), "{text:?}");
        }
    }

    #[test]
    fn a_request_line_that_is_not_utf8_is_malformed() {
        assert_eq!(
            all_at_once(b"GET /DSPS/STREAM\xff/ HTTP/1.0\n").0,
            Err(HttpError::MalformedRequestLine)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for h in [
            "NoColon",
            ": no name",
            "Bad Name: x",
            "Host : x",
            " folded: x",
            "\tfolded",
            "Ctl: a\u{1}b",
        ] {
            let text = format!("GET /DSPS/STREAM/ HTTP/1.0\r\n{h}\r\n\r\n");
            assert_eq!(
                all_at_once(text.as_bytes()).0,
                Err(HttpError::MalformedHeader),
                "{h:?}"
            );
        }
    }

    #[test]
    fn an_overlong_request_line_is_refused_before_its_end() {
        let mut text = b"GET /".to_vec();
        text.resize(MAX_REQUEST_LINE, b'a');
        assert_eq!(all_at_once(&text).0, Err(HttpError::RequestLineTooLong));
        assert_eq!(
            all_at_once(&text[..MAX_REQUEST_LINE - 1]).0,
            Ok(None),
            "one byte short of the bound is still incomplete"
        );
        text.push(b'\n');
        assert_eq!(all_at_once(&text).0, Err(HttpError::RequestLineTooLong));
    }

    #[test]
    fn overlong_headers_are_refused_at_the_bound() {
        let mut text = b"GET /DSPS/STREAM/ HTTP/1.0\r\n".to_vec();
        while text.len() < MAX_PREAMBLE {
            text.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(all_at_once(&text).0, Err(HttpError::PreambleTooLong));
        assert_eq!(byte_by_byte(&text).0, Err(HttpError::PreambleTooLong));
        // One header line that never ends is caught at the same bound.
        let mut endless = b"GET /DSPS/STREAM/ HTTP/1.0\r\nX: ".to_vec();
        endless.resize(MAX_PREAMBLE, b'a');
        assert_eq!(all_at_once(&endless).0, Err(HttpError::PreambleTooLong));
        // Just within the bound is fine.
        let mut fits = b"GET /DSPS/STREAM/ HTTP/1.0\r\nX: ".to_vec();
        fits.resize(MAX_PREAMBLE - 4, b'a');
        fits.extend_from_slice(b"\r\n\r\n");
        assert_eq!(fits.len(), MAX_PREAMBLE);
        assert!(matches!(all_at_once(&fits).0, Ok(Some(_))));
    }

    #[test]
    fn an_early_end_of_file_is_truncated_at_every_point() {
        let text = "GET /DSPS/STREAM/ HTTP/1.0\r\nHost: dsps.server\r\n\r\n";
        for cut in 0..text.len() {
            let mut buf = BytesMut::from(&text.as_bytes()[..cut]);
            assert_eq!(
                PreambleDecoder::new().decode_eof(&mut buf),
                Err(HttpError::Truncated),
                "cut at {cut}"
            );
        }
        let mut whole = BytesMut::from(text);
        assert!(PreambleDecoder::new().decode_eof(&mut whole).is_ok());
    }

    #[test]
    fn the_replies_are_the_spec_bytes() {
        assert_eq!(
            OK_RESPONSE,
            "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        assert!(UNAUTHORIZED_RESPONSE.starts_with("HTTP/1.0 401 Unauthorized\r\n"));
        assert!(UNAUTHORIZED_RESPONSE.ends_with("\r\n\r\n"));
    }
}
