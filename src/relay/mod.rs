//! Async adapter for the relay port (TCP 5290): accept, handshake, then blocks.
pub mod conn;
pub mod listener;
pub mod plane;
