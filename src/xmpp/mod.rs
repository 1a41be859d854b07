//! Async adapter for the XEP-0114 component link to the XMPP server.
pub mod link;
pub mod reader;
pub mod stream;
