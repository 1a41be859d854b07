//! The DSPS state machine and its helpers, free of I/O.
pub mod admission;
pub mod command_sessions;
pub mod ids;
pub mod info;
pub mod link_status;
pub mod log_filter;
pub mod registry;
pub mod relay_policy;
pub mod reply_budget;
pub mod sparse;
pub mod throughput;
pub mod timers;
