//! dsps: an XEP-0037 Data Stream Proxy Service, run as an XMPP external component.
#![forbid(unsafe_code)]

pub mod config;
pub mod proto;
pub mod core;
pub mod client;
