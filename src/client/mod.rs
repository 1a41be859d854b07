//! Client side: what an application uses to talk to a DSPS.
//!
//! - [`c2s`]: a small XMPP client (SRV, STARTTLS, SASL SCRAM, bind, iq requests,
//!   incoming pushes).
//! - [`tls`]: whom TLS trusts (system roots, a PEM file, or, for tests, anyone).
//! - [`session`]: DSPS operations on top of it (create, invite, accept, who, stats)
//!   and the relay handshake that yields the data connection.
//! - [`transport`]: the connection methods (default, HTTP, STARTTLS, both) and
//!   `connect_via`.
pub mod c2s;
pub mod session;
pub mod tls;
pub mod transport;
