//! The component link's state as the operator sees it: the link task
//! (`xmpp::link`) publishes it, the registry keeps the latest copy for the admin
//! command "Server info".
//!
//! Only a record; it decides nothing (a request can only reach the registry while
//! the link is up, so no rule here depends on it).

/// What the component link last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Logged in and serving stanzas.
    pub online: bool,
    /// UNIX seconds of the last change between online and offline (0: never online).
    pub since_unix: u64,
    /// Successful logins since start: the first, then one per reconnect.
    pub logins: u64,
    /// Login attempts that failed since the last successful one.
    pub failed_attempts: u64,
}

impl LinkStatus {
    /// One line for people: `online since 1700000000 (2 logins)`.
    pub fn describe(&self) -> String {
        let state = if self.online { "online" } else { "offline" };
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
        if self.failed_attempts > 0 {
            s.push_str(&format!(
                ", {} failed attempts since the last login",
                self.failed_attempts
            ));
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

    #[test]
    fn describes_itself_in_one_line() {
        assert_eq!(
            LinkStatus::default().describe(),
            "offline (never logged in), 0 logins"
        );
        let up = LinkStatus {
            online: true,
            since_unix: 1_700_000_000,
            logins: 3,
            failed_attempts: 0,
        };
        assert_eq!(up.describe(), "online since 1700000000, 3 logins");
        assert_eq!(up.reconnects(), 2);
        let down = LinkStatus {
            online: false,
            failed_attempts: 4,
            logins: 1,
            ..up
        };
        assert_eq!(
            down.describe(),
            "offline since 1700000000, 1 login, 4 failed attempts since the last login"
        );
    }
}
