//! The DSPS state machine and its helpers, free of I/O.
pub mod throughput;
