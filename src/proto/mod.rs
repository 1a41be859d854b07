//! Sans-IO wire formats: nothing here touches a socket or tokio.
pub mod block;
pub mod units;
