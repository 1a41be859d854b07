//! The component link's state: the link task (`xmpp::link`) publishes a
//! [`LinkStatus`] on one `watch` channel at every change, and two readers report
//! it: the registry keeps the latest copy for the admin command "Server info", and
//! `systemd` turns it into readiness and `STATUS=` lines.
//!
//! Only a record; it decides nothing (a request can only reach the registry while
//! the link is up, so no rule here depends on it).

use std::fmt;
use std::time::Duration;

/// What the component link is doing now.
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
    /// One line for `systemctl status`, e.g. `component login failed (attempt 3):
    /// …; retrying in 2.00s`.
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

/// The link's state with its history: when it last went up or down, and how
/// often it logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// What it is doing now.
    pub state: LinkState,
    /// UNIX seconds of the last change between online and offline (0: never online).
    pub since_unix: u64,
    /// Successful logins since start: the first, then one per reconnect.
    pub logins: u64,
}

impl Default for LinkStatus {
    /// Before the link task's first report: about to make its first attempt.
    fn default() -> Self {
        LinkStatus {
            state: LinkState::Connecting { attempt: 1 },
            since_unix: 0,
            logins: 0,
        }
    }
}

impl LinkStatus {
    /// The link moved to `state` at `now_unix`: a login is counted, and the
    /// change time kept when it went from offline to online or back.
    pub fn enter(&mut self, state: LinkState, now_unix: u64) {
        if state.is_online() {
            self.logins += 1;
        }
        if state.is_online() != self.state.is_online() {
            self.since_unix = now_unix;
        }
        self.state = state;
    }

    /// Whether stanzas flow.
    pub fn is_online(&self) -> bool {
        self.state.is_online()
    }

    /// Login attempts that failed since the last successful one.
    pub fn failed_attempts(&self) -> u64 {
        match self.state {
            LinkState::Connecting { attempt } => attempt.saturating_sub(1),
            LinkState::Down { attempt, .. } => attempt,
            LinkState::Online | LinkState::Closed => 0,
        }
    }

    /// One line for "Server info": `online since 1700000000, 2 logins`.
    pub fn describe(&self) -> String {
        let state = if self.is_online() {
            "online"
        } else {
            "offline"
        };
        let mut s = if self.since_unix == 0 {
            format!("{state} (never logged in)")
        } else {
            format!("{state} since {}", self.since_unix)
        };
        s.push_str(&format!(
            ", {} login{}",
            self.logins,
            if self.logins == 1 { "" } else { "s" }
        ));
        let failed = self.failed_attempts();
        if failed > 0 {
            s.push_str(&format!(", {failed} failed attempts since the last login"));
        }
        s
    }

    /// Reconnects since start: every login after the first.
    pub fn reconnects(&self) -> u64 {
        self.logins.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(attempt: u64) -> LinkState {
        LinkState::Down {
            attempt,
            why: "Connection refused (os error 111)".into(),
            retry_in: Duration::from_millis(500),
        }
    }

    #[test]
    fn each_state_reads_as_one_line() {
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

    #[test]
    fn describes_itself_in_one_line() {
        assert_eq!(
            LinkStatus::default().describe(),
            "offline (never logged in), 0 logins"
        );
        let up = LinkStatus {
            state: LinkState::Online,
            since_unix: 1_700_000_000,
            logins: 3,
        };
        assert_eq!(up.describe(), "online since 1700000000, 3 logins");
        assert_eq!(up.reconnects(), 2);
        let down = LinkStatus {
            state: down(4),
            logins: 1,
            ..up
        };
        assert_eq!(
            down.describe(),
            "offline since 1700000000, 1 login, 4 failed attempts since the last login"
        );
    }

    #[test]
    fn entering_states_counts_logins_and_keeps_the_time_of_each_up_or_down() {
        let mut s = LinkStatus::default();
        s.enter(LinkState::Connecting { attempt: 1 }, 10);
        s.enter(down(1), 11);
        s.enter(LinkState::Connecting { attempt: 2 }, 12);
        assert_eq!((s.since_unix, s.logins, s.failed_attempts()), (0, 0, 1));
        s.enter(LinkState::Online, 13);
        assert_eq!((s.since_unix, s.logins, s.failed_attempts()), (13, 1, 0));
        // Lost: offline from now; the attempts after it count as failures.
        s.enter(down(0), 20);
        assert_eq!((s.since_unix, s.failed_attempts()), (20, 0));
        s.enter(LinkState::Connecting { attempt: 1 }, 21);
        s.enter(down(1), 22);
        s.enter(LinkState::Connecting { attempt: 2 }, 23);
        assert_eq!((s.since_unix, s.failed_attempts()), (20, 1));
        s.enter(LinkState::Online, 24);
        assert_eq!((s.since_unix, s.logins, s.reconnects()), (24, 2, 1));
        s.enter(LinkState::Closed, 30);
        assert_eq!((s.since_unix, s.is_online()), (30, false));
    }
}
