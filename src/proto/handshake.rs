//! The relay port's line protocol before data flows (XEP "Connecting to DSPS via
//! default method"; PROFILE 1–3).
//!
//! Lines end in `\n` or `\r\n` and are capped at [`MAX_LINE_LEN`]; a longer line
//! or one that is not UTF-8 is an error and the connection is closed. The first
//! line is either a preamble (`starttls`, or an HTTP `GET`) or the hello line
//! `CLIENT_FULL_JID SP DSPS_FULL_JID`. This module only classifies bytes; keys are
//! checked by the registry and sockets are owned by the relay adapter.

use bytes::{Buf, BytesMut};

/// Longest handshake line we accept, terminator included (issue: > 4 KiB closes).
pub const MAX_LINE_LEN: usize = 4096;

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// No newline within [`MAX_LINE_LEN`] bytes.
    TooLong,
    /// The line is not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::TooLong => write!(f, "handshake line longer than {MAX_LINE_LEN} bytes"),
            LineError::NotUtf8 => write!(f, "handshake line is not UTF-8"),
        }
    }
}

/// Takes one complete line off the front of `buf`, without its terminator.
/// `Ok(None)` means no newline yet; bytes after the line stay in `buf` (they may be
/// data sent right behind the last handshake line).
pub fn take_line(buf: &mut BytesMut) -> Result<Option<String>, LineError> {
    let Some(pos) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_LINE_LEN {
            Err(LineError::TooLong)
        } else {
            Ok(None)
        };
    };
    if pos + 1 > MAX_LINE_LEN {
        return Err(LineError::TooLong);
    }
    let mut line = buf.split_to(pos + 1);
    line.truncate(pos);
    if line.last() == Some(&b'\r') {
        line.truncate(pos - 1);
    }
    let s = std::str::from_utf8(line.chunk()).map_err(|_| LineError::NotUtf8)?;
    Ok(Some(s.to_string()))
}

/// The hello line: who is connecting, to which seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The client's full JID as given in create/acknowledge.
    pub client: String,
    /// The DSPS full JID (peer resource) from the create result.
    pub dsps: String,
}

/// What the first line of a relay connection asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstLine {
    /// `starttls`: a TLS handshake follows.
    StartTls,
    /// `GET /DSPS/STREAM/ HTTP/1.x`: HTTP headers follow, then an empty line.
    HttpGet,
    /// The default handshake's hello.
    Hello(Hello),
}

/// Why a first line is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloError {
    /// Not two space-separated JIDs.
    Malformed,
    /// The DSPS JID has no resource, or the client JID is not a full JID.
    NotFullJid,
}

impl std::fmt::Display for HelloError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelloError::Malformed => write!(f, "hello line is not 'CLIENT_JID DSPS_JID'"),
            HelloError::NotFullJid => write!(f, "hello line names a JID without a resource"),
        }
    }
}

/// Classifies the first line of a connection.
pub fn parse_first_line(line: &str) -> Result<FirstLine, HelloError> {
    if line == "starttls" {
        return Ok(FirstLine::StartTls);
    }
    if line.starts_with("GET /DSPS/STREAM/ HTTP/1.") {
        return Ok(FirstLine::HttpGet);
    }
    parse_hello(line).map(FirstLine::Hello)
}

/// Parses `CLIENT_FULL_JID SP DSPS_FULL_JID`.
pub fn parse_hello(line: &str) -> Result<Hello, HelloError> {
    // Split at the last space: a client's resource may contain spaces ("my phone",
    // RFC 7622 allows them), a DSPS JID never does (its resources are ours).
    let Some((client, dsps)) = line.rsplit_once(' ') else {
        return Err(HelloError::Malformed);
    };
    if client.is_empty() || dsps.is_empty() || client.starts_with(' ') || client.ends_with(' ') {
        return Err(HelloError::Malformed);
    }
    let jid = |j: &str| xmpp_parsers::jid::FullJid::new(j).is_ok();
    // Only the resource may hold spaces; other whitespace (tabs, a stray CR) never.
    let clean_client = !client.chars().any(|c| c.is_whitespace() && c != ' ')
        && !client
            .split_once('/')
            .is_some_and(|(bare, _)| bare.contains(' '));
    if !jid(client) || !clean_client || !jid(dsps) || dsps.chars().any(char::is_whitespace) {
        return Err(HelloError::NotFullJid);
    }
    Ok(Hello {
        client: client.to_string(),
        dsps: dsps.to_string(),
    })
}

/// The hello line a client writes.
pub fn hello_line(client: &str, dsps: &str) -> String {
    format!("{client} {dsps}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_hello_line_parses() {
        let h = parse_hello(
            "rob@nauseum.org/dspsclient dsps.jabber.org/0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33",
        )
        .unwrap();
        assert_eq!(h.client, "rob@nauseum.org/dspsclient");
        assert_eq!(
            h.dsps,
            "dsps.jabber.org/0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33"
        );
    }

    #[test]
    fn a_client_resource_may_contain_spaces() {
        let h = parse_hello("alice@localhost/my phone dsps.localhost/abc").unwrap();
        assert_eq!(h.client, "alice@localhost/my phone");
        assert_eq!(h.dsps, "dsps.localhost/abc");
    }

    #[test]
    fn hello_needs_two_full_jids() {
        assert_eq!(parse_hello("a@b/c"), Err(HelloError::Malformed));
        // Three words: the client JID would be "a@b/c d/e", the DSPS JID "f".
        assert_eq!(parse_hello("a@b/c d/e f"), Err(HelloError::NotFullJid));
        assert_eq!(parse_hello("a b@c/d e/f"), Err(HelloError::NotFullJid));
        assert_eq!(parse_hello("a@b/c\td e/f"), Err(HelloError::NotFullJid));
        assert_eq!(parse_hello("a@b/c  d/e"), Err(HelloError::Malformed));
        assert_eq!(parse_hello("a@b d/e"), Err(HelloError::NotFullJid));
        assert_eq!(
            parse_hello("a@b/c dsps.example"),
            Err(HelloError::NotFullJid)
        );
    }

    #[test]
    fn preambles_are_recognised() {
        assert_eq!(parse_first_line("starttls"), Ok(FirstLine::StartTls));
        assert_eq!(
            parse_first_line("GET /DSPS/STREAM/ HTTP/1.0"),
            Ok(FirstLine::HttpGet)
        );
    }

    #[test]
    fn lines_end_in_lf_or_crlf_and_leave_the_rest() {
        let mut b = BytesMut::from(&b"one\r\ntwo\nrest"[..]);
        assert_eq!(take_line(&mut b), Ok(Some("one".into())));
        assert_eq!(take_line(&mut b), Ok(Some("two".into())));
        assert_eq!(take_line(&mut b), Ok(None));
        assert_eq!(&b[..], b"rest");
    }

    #[test]
    fn long_and_non_utf8_lines_are_refused() {
        let mut b = BytesMut::from(&vec![b'a'; MAX_LINE_LEN][..]);
        assert_eq!(take_line(&mut b), Err(LineError::TooLong));
        let mut b = BytesMut::from(&vec![b'a'; MAX_LINE_LEN - 1][..]);
        assert_eq!(take_line(&mut b), Ok(None));
        let mut b = BytesMut::from(&b"\xff\xfe\n"[..]);
        assert_eq!(take_line(&mut b), Err(LineError::NotUtf8));
    }
}
