//! Shared fixtures for the integration tests.
//!
//! Each `tests/*.rs` file is its own crate and uses only part of this, so unused items
//! are expected here.
#![allow(dead_code)]

pub mod blocks;
pub mod c2s;
pub mod dsps;
pub mod inproc;
pub mod pattern;
pub mod prosody;
pub mod raw_c2s;
pub mod scenario;
pub mod sockets;
