//! Sans-IO wire formats: nothing here touches a socket or tokio.
pub mod adhoc;
pub mod block;
pub mod error;
pub mod forms;
pub mod handshake;
pub mod http_preamble;
pub mod iq;
pub mod limits;
pub mod outbound;
pub mod query;
pub mod units;
pub mod xml;
