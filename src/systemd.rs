//! systemd's service notifications (`Type=notify`, sd_notify(3)): `READY=1` once
//! the component link has logged in for the first time, `STATUS=` whenever the
//! link changes, `STOPPING=1` when the drain starts, and `WATCHDOG=1` pings when
//! the unit sets `WatchdogSec=`.
//!
//! Every call is a no-op when `NOTIFY_SOCKET` is unset (not started by systemd),
//! so the same binary runs anywhere. Readiness waits for the link and not for the
//! relay port alone: a DSPS that cannot reach its XMPP server serves nobody, and
//! `systemctl start` should say so (it keeps waiting, `TimeoutStartSec=` decides).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::core::link_status::{LinkState, LinkStatus};

/// Whether a failed notification was logged already (one line, not one per change).
static WARNED: AtomicBool = AtomicBool::new(false);

/// Whether a service manager listens (`NOTIFY_SOCKET` is set).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            warn!("systemd notification failed (NOTIFY_SOCKET is set): {e}");
        }
    }
}

/// What to tell systemd about `state`: whether to say `READY=1` (the first time
/// the link is up) and the `STATUS=` line.
pub fn notices(state: &LinkState, ready_sent: bool) -> (bool, String) {
    (state.is_online() && !ready_sent, state.to_string())
}

/// Reports every change of the component link until it closes: `READY=1` the
/// first time it is online, `STATUS=` each time. Returns at once without
/// `NOTIFY_SOCKET`.
pub async fn report_link(mut link: watch::Receiver<LinkStatus>) {
    if !enabled() {
        return;
    }
    let mut ready_sent = false;
    loop {
        let current = link.borrow_and_update().state.clone();
        let (ready, status) = notices(&current, ready_sent);
        if ready {
            debug!("telling systemd we are ready");
            send(&[NotifyState::Ready, NotifyState::Status(&status)]);
            ready_sent = true;
        } else {
            send(&[NotifyState::Status(&status)]);
        }
        if current == LinkState::Closed || link.changed().await.is_err() {
            return;
        }
    }
}

/// The drain has started: `STOPPING=1`, with `status` saying what happens now.
pub fn stopping(status: &str) {
    if enabled() {
        send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }
}

/// With `WatchdogSec=` set, pings systemd at half the interval for as long as
/// the runtime runs its tasks, so a wedged process is restarted. Returns at once
/// otherwise.
pub async fn watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (interval / 2).max(Duration::from_millis(100));
    debug!(
        every_ms = every.as_millis() as u64,
        "systemd watchdog enabled"
    );
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        send(&[NotifyState::Watchdog]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_said_once_when_the_link_first_comes_up() {
        let connecting = LinkState::Connecting { attempt: 1 };
        assert_eq!(
            notices(&connecting, false),
            (false, "connecting to the XMPP server (attempt 1)".into())
        );
        assert_eq!(
            notices(&LinkState::Online, false),
            (true, "component online".into())
        );
        // Back online after a loss: a status line, not a second READY.
        assert!(!notices(&LinkState::Online, true).0);
        let down = LinkState::Down {
            attempt: 2,
            why: "handshake refused".into(),
            retry_in: Duration::from_secs(1),
        };
        assert!(!notices(&down, false).0);
    }
}
