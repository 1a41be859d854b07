//! The listener's side of `core::admission`: one shared [`Admission`] behind a
//! mutex, a [`Ticket`] per admitted connection that reports its progress and
//! releases its place when dropped, and the eviction signal for a connection that
//! was closed to make room.
//!
//! A `std::sync::Mutex`, not tokio's: it is held for a few map operations and never
//! across an await, and `Ticket::drop` must be able to take it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::core::admission::{Admission, AdmissionLimits, Refusal, Verdict};
use crate::core::registry::ConnId;
use crate::core::sparse::ShrinkWhenSparse;

#[derive(Debug)]
struct Inner {
    admission: Admission,
    /// How to close each admitted connection that is still in its handshake.
    evict: HashMap<ConnId, oneshot::Sender<()>>,
}

/// The relay port's admission control, shared by the listener and its connections.
#[derive(Debug)]
pub struct Gate {
    inner: Mutex<Inner>,
}

/// What an admitted connection holds.
#[derive(Debug)]
pub struct Admitted {
    /// Its place; dropping it releases the place.
    pub ticket: Ticket,
    /// Completes if the connection is closed to make room for a newer one.
    pub evicted: oneshot::Receiver<()>,
    /// Whether an older connection was closed to let this one in.
    pub made_room: bool,
}

impl Gate {
    /// A gate with these limits.
    pub fn new(limits: AdmissionLimits) -> Arc<Gate> {
        Arc::new(Gate {
            inner: Mutex::new(Inner {
                admission: Admission::new(limits),
                evict: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The bookkeeping stays consistent across a panic elsewhere: each call
        // completes its few map updates before returning.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits `conn` from `ip` or says why not; closes an older silent handshake
    /// of the same source if that makes room.
    pub fn admit(self: &Arc<Self>, conn: ConnId, ip: IpAddr) -> Result<Admitted, Refusal> {
        let mut g = self.lock();
        let evict = match g.admission.admit(conn, ip) {
            Verdict::Refuse(why) => return Err(why),
            Verdict::Admit { evict } => evict,
        };
        if let Some(old) = evict {
            if let Some(tx) = g.evict.remove(&old) {
                let _ = tx.send(());
            }
        }
        let (tx, rx) = oneshot::channel();
        g.evict.insert(conn, tx);
        Ok(Admitted {
            ticket: Ticket {
                gate: self.clone(),
                conn,
            },
            evicted: rx,
            made_room: evict.is_some(),
        })
    }

    /// (open connections, sources, eviction handles) held, for leak checks.
    pub fn held(&self) -> (usize, usize, usize) {
        let g = self.lock();
        let (conns, sources) = g.admission.held();
        (conns, sources, g.evict.len())
    }
}

/// One admitted connection's place at the gate.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<Gate>,
    conn: ConnId,
}

impl Ticket {
    /// The hello line arrived: this connection is no longer first to be evicted.
    pub fn hello(&self) {
        self.gate.lock().admission.hello(self.conn);
    }

    /// The handshake is done: it no longer counts as pending and cannot be evicted.
    pub fn attached(&self) {
        let mut g = self.gate.lock();
        g.admission.attached(self.conn);
        g.evict.remove(&self.conn);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut g = self.gate.lock();
        g.admission.closed(self.conn);
        g.evict.remove(&self.conn);
        g.evict.shrink_when_sparse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_release_their_place_and_evictions_are_signalled() {
        let gate = Gate::new(AdmissionLimits {
            total: 10,
            per_source: 10,
            pending_per_source: 1,
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut first = gate.admit(1, ip).expect("admitted");
        assert!(!first.made_room);
        let second = gate.admit(2, ip).expect("room is made");
        assert!(second.made_room);
        assert_eq!(first.evicted.try_recv(), Ok(()), "the silent one is told");
        second.ticket.hello();
        assert_eq!(gate.admit(3, ip).err(), Some(Refusal::PendingPerSource));
        second.ticket.attached();
        drop(first);
        let third = gate.admit(4, ip).expect("admitted");
        drop((second, third));
        assert_eq!(gate.held(), (0, 0, 0));
    }
}
