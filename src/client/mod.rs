//! Client side: what an application uses to talk to a DSPS.
pub mod c2s;
