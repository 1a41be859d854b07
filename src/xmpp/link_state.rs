//! What the component link is doing, published by `link::run` on a `watch`
//! channel for whoever reports on it (systemd's `STATUS=`, readiness).

use std::fmt;
use std::time::Duration;

/// The component link's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Connecting and logging in; `attempt` counts since the link was last up.
    Connecting {
        /// 1 for the first attempt.
        attempt: u64,
    },
    /// The XEP-0114 handshake succeeded: stanzas flow.
    Online,
    /// The login failed or the link was lost; the next attempt follows `retry_in`.
    Down {
        /// Attempts made since the link was last up (0: it was up until now).
        attempt: u64,
        /// What went wrong, on one line.
        why: String,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
    /// Closed for good: the service is stopping.
    Closed,
}

impl LinkState {
    /// Whether stanzas flow.
    pub fn is_online(&self) -> bool {
        matches!(self, LinkState::Online)
    }
}

impl fmt::Display for LinkState {
    /// One line for `systemctl status`, e.g. `component link down (attempt 3): …;
    /// retrying in 2s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkState::Connecting { attempt } => {
                write!(f, "connecting to the XMPP server (attempt {attempt})")
            }
            LinkState::Online => f.write_str("component online"),
            LinkState::Down {
                attempt: 0,
                why,
                retry_in,
            } => write!(
                f,
                "component link lost: {why}; reconnecting in {}",
                secs(*retry_in)
            ),
            LinkState::Down {
                attempt,
                why,
                retry_in,
            } => write!(
                f,
                "component login failed (attempt {attempt}): {why}; retrying in {}",
                secs(*retry_in)
            ),
            LinkState::Closed => f.write_str("component link closed"),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_reads_as_one_line() {
        let down = |attempt| LinkState::Down {
            attempt,
            why: "Connection refused (os error 111)".into(),
            retry_in: Duration::from_millis(500),
        };
        for (state, text) in [
            (
                LinkState::Connecting { attempt: 2 },
                "connecting to the XMPP server (attempt 2)",
            ),
            (LinkState::Online, "component online"),
            (
                down(3),
                "component login failed (attempt 3): Connection refused (os error 111); retrying in 0.50s",
            ),
            (
                down(0),
                "component link lost: Connection refused (os error 111); reconnecting in 0.50s",
            ),
            (LinkState::Closed, "component link closed"),
        ] {
            assert_eq!(state.to_string(), text);
            assert!(!text.contains('\n'));
        }
        assert!(LinkState::Online.is_online());
        assert!(!down(1).is_online());
    }
}
