//! Async adapter for the relay port (TCP 5290): accept, handshake, then blocks.
pub mod advertise;
pub mod batch;
pub mod conn;
pub mod data;
pub mod dispatch;
pub mod gate;
pub mod ledger;
pub mod listener;
pub mod outbound;
pub mod outbox;
pub mod plane;
pub mod preamble;
pub mod queue;
pub mod tcp_options;
pub mod tls;
pub mod tls_reload;
pub mod traffic;
