//! Client side: what an application uses to talk to a DSPS.
//!
//! - [`c2s`]: a small XMPP client (SRV, STARTTLS, SASL SCRAM, bind, iq requests,
//!   incoming pushes).
//! - [`tls`]: whom TLS trusts (system roots, a PEM file, or, for tests, anyone).
//! - [`session`]: DSPS operations on top of it (create, invite, accept, who, stats)
//!   and the relay handshake that yields the data connection.
//! - [`transport`]: the connection methods (default, HTTP, STARTTLS, both) and
//!   `connect_via`.
//! - [`public`]: requests by JID: the public stream listing, `stats` and `who` of a
//!   stream JID, joining a public stream.
//! - [`file_meta`]: the file name, size and sha256 that a file transfer carries in its
//!   invitation's `<comment>`.
pub mod c2s;
pub mod file_meta;
pub mod public;
pub mod session;
pub mod tls;
pub mod transport;
