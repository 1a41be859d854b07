//! Open XEP-0050 command sessions: a command with a form to fill is a session from
//! the form to its submission (XEP-0050 "Session Lifetime"), valid only for the
//! full JID that started it and for that command.
//!
//! Bounded twice, so an admin's client that opens forms and never submits them
//! holds nothing for long: at most [`MAX_SESSIONS`] are open (opening one more
//! forgets the oldest) and each lasts [`SESSION_TTL`]. Pure: the caller passes
//! the time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most sessions open at once.
pub const MAX_SESSIONS: usize = 64;
/// How long a form may wait for its submission.
pub const SESSION_TTL: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Session {
    id: String,
    node: String,
    requester: String,
    opened: Instant,
}

/// The open sessions, oldest first.
#[derive(Debug, Default)]
pub struct Sessions {
    open: VecDeque<Session>,
    next: u64,
}

impl Sessions {
    /// A new session of command `node` for `requester`; returns its id, unique for
    /// the life of the process (XEP-0050: a session id is never used again).
    pub fn open(&mut self, node: &str, requester: &str, now: Instant) -> String {
        self.expire(now);
        if self.open.len() >= MAX_SESSIONS {
            self.open.pop_front();
        }
        self.next += 1;
        let id = format!("{node}:{}", self.next);
        self.open.push_back(Session {
            id: id.clone(),
            node: node.to_string(),
            requester: requester.to_string(),
            opened: now,
        });
        id
    }

    /// Ends session `id` if it is open for `node` and `requester`; whether it was.
    pub fn close(&mut self, id: &str, node: &str, requester: &str, now: Instant) -> bool {
        self.expire(now);
        let Some(at) = self.open.iter().position(|s| s.id == id) else {
            return false;
        };
        let s = &self.open[at];
        if s.node != node || s.requester != requester {
            return false;
        }
        self.open.remove(at);
        true
    }

    /// Whether session `id` is open for `node` and `requester`.
    pub fn is_open(&mut self, id: &str, node: &str, requester: &str, now: Instant) -> bool {
        self.expire(now);
        self.open
            .iter()
            .any(|s| s.id == id && s.node == node && s.requester == requester)
    }

    /// An id for a command that completes at once: it opens nothing.
    pub fn one_shot(&mut self, node: &str) -> String {
        self.next += 1;
        format!("{node}:{}", self.next)
    }

    /// Sessions open now (for tests and figures).
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while self
            .open
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.opened) >= SESSION_TTL)
        {
            self.open.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "ops@localhost/gajim";

    #[test]
    fn a_session_is_closed_once_by_its_own_requester_and_command() {
        let t = Instant::now();
        let mut s = Sessions::default();
        let id = s.open("drop-stream", ADMIN, t);
        assert!(!s.close(&id, "drop-peer", ADMIN, t), "another command");
        assert!(
            !s.close(&id, "drop-stream", "ops@localhost/other", t),
            "another resource"
        );
        assert!(s.is_open(&id, "drop-stream", ADMIN, t));
        assert!(!s.is_open(&id, "drop-peer", ADMIN, t));
        assert!(s.close(&id, "drop-stream", ADMIN, t));
        assert!(!s.is_open(&id, "drop-stream", ADMIN, t));
        assert!(!s.close(&id, "drop-stream", ADMIN, t), "never twice");
        assert!(s.is_empty());
        assert_ne!(s.open("drop-stream", ADMIN, t), id, "ids are not reused");
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let t = Instant::now();
        let mut s = Sessions::default();
        let old = s.open("drop-peer", ADMIN, t);
        assert!(!s.close(&old, "drop-peer", ADMIN, t + SESSION_TTL));
        let first = s.open("drop-peer", ADMIN, t);
        for _ in 0..MAX_SESSIONS {
            s.open("drop-peer", ADMIN, t);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(
            !s.close(&first, "drop-peer", ADMIN, t),
            "the oldest made room"
        );
    }
}
