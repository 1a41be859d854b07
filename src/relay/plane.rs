//! The data plane's membership: who in each stream receives whose blocks.
//!
//! Each connected peer has one queue of batches, bounded in bytes (`queue`).
//! Each stream publishes its member list through a `watch` channel; a sender task
//! looks at it only when it has changed (one atomic load per block), so the data
//! path takes no lock per block. A batch of blocks is one `Arc` shared by every
//! recipient: fanning out clones a reference count, never the data.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

use super::queue::{queue, QueueRx, QueueTx};
use crate::core::registry::{ConnId, StreamId};
use crate::core::sparse::ShrinkWhenSparse;
use crate::proto::query::Role;

/// One connected peer as the data path sees it.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its connection.
    pub conn: ConnId,
    /// Its rights (decides what it receives).
    pub role: Role,
    /// Its queue of framed blocks.
    pub queue: QueueTx,
}

/// A stream's current members.
pub type Members = Arc<Vec<Member>>;

/// Whether a block from a peer with role `from` goes to `to` (PROFILE 6): a
/// master's data goes to everyone else, a slave's or relay's to the masters.
pub fn routes_to(from: Role, to: Role) -> bool {
    from == Role::Master || to == Role::Master
}

/// Membership of every stream that has connected peers.
#[derive(Debug, Default)]
pub struct Plane {
    streams: HashMap<StreamId, watch::Sender<Members>>,
    conn_stream: HashMap<ConnId, StreamId>,
}

impl Plane {
    /// Adds a peer; returns the receiving end of its queue (room for `capacity`
    /// bytes, see `queue::capacity`) and a view of its stream's members.
    pub fn join(
        &mut self,
        stream: StreamId,
        conn: ConnId,
        role: Role,
        capacity: usize,
    ) -> (QueueRx, watch::Receiver<Members>) {
        let (tx, rx) = queue(capacity);
        let members = self
            .streams
            .entry(stream)
            .or_insert_with(|| watch::channel(Members::default()).0);
        members.send_modify(|m| {
            let mut list = m.as_ref().clone();
            list.push(Member {
                conn,
                role,
                queue: tx,
            });
            *m = Arc::new(list);
        });
        self.conn_stream.insert(conn, stream);
        (rx, members.subscribe())
    }

    /// Removes a peer (no-op if it is not a member); an emptied stream is forgotten.
    pub fn leave(&mut self, conn: ConnId) {
        let Some(stream) = self.conn_stream.remove(&conn) else {
            return;
        };
        if let Some(members) = self.streams.get(&stream) {
            members.send_modify(|m| {
                *m = Arc::new(m.iter().filter(|x| x.conn != conn).cloned().collect());
            });
            // A stream whose last member left holds nothing worth keeping.
            if members.borrow().is_empty() {
                self.streams.remove(&stream);
            }
        }
        self.streams.shrink_when_sparse();
        self.conn_stream.shrink_when_sparse();
    }

    /// The stream a connection is a member of.
    pub fn stream_of(&self, conn: ConnId) -> Option<StreamId> {
        self.conn_stream.get(&conn).copied()
    }

    /// Forgets a stream entirely.
    pub fn forget(&mut self, stream: StreamId) {
        self.streams.remove(&stream);
        self.conn_stream.retain(|_, s| *s != stream);
        self.streams.shrink_when_sparse();
        self.conn_stream.shrink_when_sparse();
    }

    /// (streams, members) held, for leak checks.
    pub fn held(&self) -> (usize, usize) {
        (self.streams.len(), self.conn_stream.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_follows_the_roles() {
        assert!(routes_to(Role::Master, Role::Slave));
        assert!(routes_to(Role::Master, Role::Master));
        assert!(routes_to(Role::Slave, Role::Master));
        assert!(!routes_to(Role::Slave, Role::Slave));
        assert!(!routes_to(Role::Relay, Role::Slave));
        assert!(routes_to(Role::Relay, Role::Master));
    }

    #[test]
    fn join_and_leave_update_the_view() {
        let mut p = Plane::default();
        let (_q1, view) = p.join(7, 1, Role::Master, 4);
        let (_q2, _) = p.join(7, 2, Role::Slave, 4);
        assert_eq!(view.borrow().len(), 2);
        p.leave(1);
        assert_eq!(
            view.borrow().iter().map(|m| m.conn).collect::<Vec<_>>(),
            vec![2]
        );
        p.forget(7);
        assert_eq!(p.held(), (0, 0));
    }
}
