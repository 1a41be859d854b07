//! Client side: what an application uses to talk to a DSPS.
//!
//! - [`c2s`]: a small XMPP client (SASL, bind, iq requests, incoming pushes).
//! - [`session`]: DSPS operations on top of it (create, invite, accept, who, stats)
//!   and the relay handshake that yields the data connection.
//! - [`transport`]: the connection methods (default, HTTP, STARTTLS, both) and
//!   `connect_via`.
pub mod c2s;
pub mod session;
pub mod transport;
