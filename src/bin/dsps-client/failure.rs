//! The one place where failures get their exit code and their one line.
//!
//! Every step that can fail returns a [`Failure`]: what failed (the step, e.g.
//! "logging in as bob@example.org/x"), why (the library's or the peer's reason) and
//! the [`Exit`] code. Library errors are classified here and nowhere else
//! ([`Classify`]); `main` prints `dsps-client: <what>: <why>` and exits with the code.

use std::fmt;
use std::io;

use dsps::client::c2s::C2sError;
use dsps::client::session::ClientError;

/// The process exit codes (documented in `--help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: anything not listed below.
    Other = 1,
    /// 2: usage: bad or missing options, no password available (clap uses 2 too).
    Usage = 2,
    /// 3: the XMPP server refused the login.
    LoginRefused = 3,
    /// 4: TLS for the login failed: the server's certificate is not trusted (or it
    /// offers no STARTTLS, or the handshake failed).
    Untrusted = 4,
    /// 5: the server could not be reached, or the connection to it was lost.
    Unreachable = 5,
    /// 6: a peer said no or went away.
    PeerGone = 6,
    /// 7: the data failed its size or sha256 check.
    DataCheck = 7,
    /// 8: a bounded wait ran out.
    TimedOut = 8,
    /// 130: interrupted by SIGINT (Ctrl-C); a partial file is removed.
    Interrupted = 130,
    /// 143: stopped by SIGTERM; a partial file is removed.
    Terminated = 143,
}

/// A failed step: one line for the user and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// What failed (the step).
    pub what: String,
    /// Why.
    pub why: String,
}

impl Failure {
    /// A failure of `what` because of `why`.
    pub fn new(exit: Exit, what: impl Into<String>, why: impl Into<String>) -> Failure {
        Failure {
            exit,
            what: what.into(),
            why: why.into(),
        }
    }

    /// A login failure. Unlike elsewhere, a login that times out means the server
    /// did not answer at all, so it counts as unreachable.
    pub fn login(what: impl Into<String>, e: C2sError) -> Failure {
        let exit = match e {
            C2sError::Timeout => Exit::Unreachable,
            ref other => other.exit(),
        };
        Failure::new(exit, what, flatten(&e.to_string()))
    }

    /// A failure to reach the relay port: any I/O error there means unreachable.
    pub fn relay_connect(what: impl Into<String>, e: ClientError) -> Failure {
        // TLS with the relay (--via tls) fails like TLS with the server does.
        if let ClientError::Io(io) = &e {
            if let Some(tls) = dsps::client::tls::rustls_error(io) {
                return Failure::new(Exit::Untrusted, what, dsps::client::tls::explain(tls));
            }
        }
        let exit = match e {
            ClientError::Io(_) => Exit::Unreachable,
            ref other => other.exit(),
        };
        Failure::new(exit, what, flatten(&e.to_string()))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

/// A result whose error is a [`Failure`].
pub type Result<T> = std::result::Result<T, Failure>;

/// Fails `what` with `why`.
pub fn fail<T>(exit: Exit, what: impl Into<String>, why: impl Into<String>) -> Result<T> {
    Err(Failure::new(exit, what, why))
}

/// Which exit code an error stands for.
pub trait Classify: fmt::Display {
    /// The exit code.
    fn exit(&self) -> Exit;
}

impl Classify for C2sError {
    fn exit(&self) -> Exit {
        match self {
            C2sError::Auth(_) => Exit::LoginRefused,
            // An untrusted certificate, mostly; also a server that offers no
            // STARTTLS or fails the handshake: TLS could not protect the login.
            C2sError::Tls(_) => Exit::Untrusted,
            C2sError::Connect(_) | C2sError::Unreachable(_) | C2sError::Closed => Exit::Unreachable,
            C2sError::Timeout => Exit::TimedOut,
            C2sError::Bind | C2sError::Protocol(_) => Exit::Other,
        }
    }
}

impl Classify for ClientError {
    fn exit(&self) -> Exit {
        match self {
            ClientError::Xmpp(e) => e.exit(),
            ClientError::Io(e) => e.exit(),
            ClientError::Timeout(_) => Exit::TimedOut,
            ClientError::Dsps(..) | ClientError::Protocol(_) => Exit::Other,
        }
    }
}

impl Classify for io::Error {
    fn exit(&self) -> Exit {
        use io::ErrorKind::*;
        match self.kind() {
            // The relay (and with it the stream's other peers) went away mid-transfer.
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => Exit::PeerGone,
            ConnectionRefused | AddrNotAvailable | NotConnected => Exit::Unreachable,
            TimedOut => Exit::TimedOut,
            _ => Exit::Other,
        }
    }
}

/// Makes an error text one line (a peer's error text may hold newlines).
pub fn flatten(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Turns any classified error into a [`Failure`] of the step `what`.
pub trait Context<T> {
    /// The error as a failure of `what`.
    fn context(self, what: impl Into<String>) -> Result<T>;
}

impl<T, E: Classify> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| Failure::new(e.exit(), what, flatten(&e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_errors_map_to_their_codes() {
        let refused = Failure::login("x", C2sError::Auth("not-authorized".into()));
        assert_eq!(refused.exit, Exit::LoginRefused);
        let down = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            Failure::login("x", C2sError::Connect(down)).exit,
            Exit::Unreachable
        );
        assert_eq!(
            Failure::login("x", C2sError::Timeout).exit,
            Exit::Unreachable
        );
        let tls = C2sError::Tls("certificate not trusted: UnknownIssuer".into());
        assert_eq!(Failure::login("x", tls).exit, Exit::Untrusted);
        let nobody = C2sError::Unreachable("no address answered".into());
        assert_eq!(Failure::login("x", nobody).exit, Exit::Unreachable);
    }

    #[test]
    fn client_errors_map_to_their_codes() {
        assert_eq!(ClientError::Timeout("x").exit(), Exit::TimedOut);
        let reset = ClientError::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(reset.exit(), Exit::PeerGone);
        assert_eq!(
            Failure::relay_connect("x", ClientError::Io(io::Error::other("no"))).exit,
            Exit::Unreachable
        );
        assert_eq!(ClientError::Dsps(None, "x".into()).exit(), Exit::Other);
    }

    #[test]
    fn failures_are_one_line() {
        let f: Result<()> = Err(ClientError::Dsps(None, "a\nb  c".into())).context("asking");
        let text = f.err().map(|f| f.to_string()).unwrap_or_default();
        assert_eq!(text, "asking: DSPS error: a b c");
    }
}
