//! Carries out the registry's relay actions: commands to connections, membership
//! of the data plane, and the order of a stream's ending.
//!
//! Ordering rules live here because they are about the data path, which the
//! registry does not see: a slave's drain waits until every peer of its stream that
//! is still *finishing* (forwarding what it sent before it dropped itself) has
//! closed, and a drained peer's drop notice is sent only after its connection has
//! delivered everything and closed (PROFILE 21: "first delivers … then drops").

use std::collections::{HashMap, HashSet};

use minidom::Element;
use tokio::sync::mpsc;
use tracing::info;

use super::conn::{Attached, Control};
use super::ledger::Ledger;
use super::outbound::Dialer;
use super::plane::Plane;
use crate::core::registry::{Action, ConnId, StreamId};
use crate::core::sparse::ShrinkWhenSparse;

/// The relay side of the service task: owned by it, never shared.
#[derive(Debug)]
pub struct RelayDispatch {
    controls: HashMap<ConnId, mpsc::Sender<Control>>,
    plane: Plane,
    queue_capacity: usize,
    /// Peers that dropped themselves and are still forwarding, per stream.
    finishing: HashMap<StreamId, HashSet<ConnId>>,
    /// Drains held back until the stream's finishing peers are done.
    deferred: HashMap<StreamId, Vec<(ConnId, Option<Element>)>>,
    /// Drop notices to send when a draining connection has closed.
    notices: HashMap<ConnId, Element>,
    /// Starts the relay links we dial (none in unit tests).
    dialer: Option<Dialer>,
    /// Each stream's bytes, for its "stream ended" line.
    ledger: Ledger,
}

impl RelayDispatch {
    /// Nothing connected yet; `queue_capacity` is the room in each recipient's
    /// queue, in bytes (`queue::capacity`).
    pub fn new(queue_capacity: usize) -> Self {
        RelayDispatch {
            controls: HashMap::new(),
            plane: Plane::default(),
            queue_capacity,
            finishing: HashMap::new(),
            deferred: HashMap::new(),
            notices: HashMap::new(),
            dialer: None,
            ledger: Ledger::default(),
        }
    }

    /// Relay links (`Action::RelayDial`) are started with `dialer`.
    pub fn with_dialer(mut self, dialer: Dialer) -> Self {
        self.dialer = Some(dialer);
        self
    }

    /// A connection said hello: from now on it can be commanded.
    pub fn hello(&mut self, conn: ConnId, control: mpsc::Sender<Control>) {
        self.controls.insert(conn, control);
    }

    /// A connection ended. Returns the stanzas that were waiting for that.
    pub fn closed(&mut self, conn: ConnId) -> Vec<Element> {
        self.controls.remove(&conn);
        self.plane.leave(conn);
        self.ledger.closed(conn);
        let mut out: Vec<Element> = self.notices.remove(&conn).into_iter().collect();
        let done: Vec<StreamId> = self
            .finishing
            .iter_mut()
            .filter_map(|(stream, conns)| {
                (conns.remove(&conn) && conns.is_empty()).then_some(*stream)
            })
            .collect();
        for stream in done {
            self.finishing.remove(&stream);
            for (c, notice) in self.deferred.remove(&stream).unwrap_or_default() {
                out.extend(self.drain(c, notice));
            }
        }
        self.controls.shrink_when_sparse();
        self.notices.shrink_when_sparse();
        self.finishing.shrink_when_sparse();
        self.deferred.shrink_when_sparse();
        out
    }

    /// Whether nothing is left to wait for: no connection that said hello is open,
    /// no drain is under way or held back, no notice is waiting.
    pub fn is_idle(&self) -> bool {
        self.controls.is_empty()
            && self.notices.is_empty()
            && self.finishing.is_empty()
            && self.deferred.is_empty()
    }

    /// Cuts every connection (the drain's deadline passed): each is told to close
    /// and its handle dropped. Returns the drop notices that were waiting for
    /// drains, so the peers still hear that they were dropped.
    pub fn cut_all(&mut self) -> Vec<Element> {
        for tx in self.controls.values() {
            let _ = tx.try_send(Control::Close("the drain's deadline passed"));
        }
        self.controls.clear();
        self.finishing.clear();
        self.ledger.cut_all();
        let mut out: Vec<Element> = self.notices.drain().map(|(_, n)| n).collect();
        for (_, held) in self.deferred.drain() {
            out.extend(held.into_iter().filter_map(|(_, n)| n));
        }
        out
    }

    fn tell(&self, conn: ConnId, c: Control) {
        if let Some(tx) = self.controls.get(&conn) {
            // The connection may have ended a moment ago; its Closed event follows.
            let _ = tx.try_send(c);
        }
    }

    /// Starts a drain; returns the notice at once if the connection is already gone.
    fn drain(&mut self, conn: ConnId, notice: Option<Element>) -> Option<Element> {
        self.plane.leave(conn);
        if self.controls.contains_key(&conn) {
            self.tell(conn, Control::Drain);
            if let Some(n) = notice {
                self.notices.insert(conn, n);
            }
            None
        } else {
            notice
        }
    }

    /// Carries out one relay action; returns stanzas to send now (`Send` actions
    /// are the caller's).
    pub fn apply(&mut self, action: Action) -> Vec<Element> {
        match action {
            Action::Send(e) => vec![e],
            Action::RelayDial {
                conn,
                client,
                targets,
            } => {
                match &self.dialer {
                    Some(d) => {
                        let control = d.dial(conn, client, targets);
                        self.controls.insert(conn, control);
                    }
                    None => tracing::warn!(conn, "no dialer: relay link not started"),
                }
                vec![]
            }
            Action::RelayWrite { conn, line } => {
                self.tell(conn, Control::WriteLine(line));
                vec![]
            }
            Action::RelayClose { conn, reason } => {
                info!(conn, "closing relay connection: {reason}");
                self.plane.leave(conn);
                self.tell(conn, Control::Close(reason));
                self.controls.remove(&conn);
                vec![]
            }
            Action::RelayAttach { conn, attach } => {
                self.ledger
                    .attached(attach.stream, conn, attach.traffic.clone());
                let (queue, members) =
                    self.plane
                        .join(attach.stream, conn, attach.role, self.queue_capacity);
                self.tell(
                    conn,
                    Control::Attach(Box::new(Attached {
                        peer_id: attach.peer_id,
                        role: attach.role,
                        queue,
                        members,
                        traffic: attach.traffic,
                        min_rate: attach.min_rate,
                        outbound: attach.outbound,
                    })),
                );
                vec![]
            }
            Action::RelayFinish { conn } => {
                if let Some(stream) = self.plane.stream_of(conn) {
                    self.finishing.entry(stream).or_default().insert(conn);
                }
                // Nobody sends to it any more; it keeps its own view of the others.
                self.plane.leave(conn);
                self.tell(conn, Control::Finish);
                vec![]
            }
            Action::RelayDrain { conn, notice } => {
                let stream = self.plane.stream_of(conn);
                match stream.filter(|s| self.finishing.contains_key(s)) {
                    Some(s) => {
                        self.deferred.entry(s).or_default().push((conn, notice));
                        vec![]
                    }
                    None => self.drain(conn, notice).into_iter().collect(),
                }
            }
            // Membership of a finishing stream stays until its drains have run.
            Action::StreamGone { stream, started } => {
                self.ledger.gone(stream, started);
                if !self.finishing.contains_key(&stream) {
                    self.plane.forget(stream);
                }
                vec![]
            }
            // The service applies it; nothing of the relay's.
            Action::SetLogFilter(_) => vec![],
        }
    }

    /// (controls, notices, finishing streams, deferred streams, plane streams,
    /// plane members) held, for leak checks.
    pub fn held(&self) -> [usize; 6] {
        let (streams, members) = self.plane.held();
        [
            self.controls.len(),
            self.notices.len(),
            self.finishing.len(),
            self.deferred.len(),
            streams,
            members,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::{Attach, TrafficSlot};
    use crate::proto::query::Role;

    fn notice(to: &str) -> Element {
        Element::builder("iq", "jabber:component:accept")
            .attr(minidom::rxml::NcName::try_from("to").unwrap(), to)
            .build()
    }

    fn attach(d: &mut RelayDispatch, conn: ConnId, role: Role) -> mpsc::Receiver<Control> {
        let (tx, rx) = mpsc::channel(8);
        d.hello(conn, tx);
        d.apply(Action::RelayAttach {
            conn,
            attach: Attach {
                stream: 7,
                peer_id: conn.to_string(),
                role,
                traffic: TrafficSlot::default(),
                min_rate: 0,
                outbound: false,
            },
        });
        rx
    }

    fn last(rx: &mut mpsc::Receiver<Control>) -> Option<Control> {
        let mut last = None;
        while let Ok(c) = rx.try_recv() {
            last = Some(c);
        }
        last
    }

    #[test]
    fn drains_wait_for_a_finishing_master_and_notices_wait_for_the_close() {
        let mut d = RelayDispatch::new(4);
        let mut master = attach(&mut d, 1, Role::Master);
        let mut slave = attach(&mut d, 2, Role::Slave);
        // The master dropped itself, the stream ends: the slave's drain waits.
        assert!(d.apply(Action::RelayFinish { conn: 1 }).is_empty());
        assert!(matches!(last(&mut master), Some(Control::Finish)));
        let out = d.apply(Action::RelayDrain {
            conn: 2,
            notice: Some(notice("slave")),
        });
        assert!(out.is_empty());
        assert!(d
            .apply(Action::StreamGone {
                stream: 7,
                started: std::time::Instant::now(),
            })
            .is_empty());
        assert!(matches!(last(&mut slave), Some(Control::Attach(_))));
        // The master is done forwarding: now the slave drains, notice held back.
        assert!(d.closed(1).is_empty());
        assert!(matches!(last(&mut slave), Some(Control::Drain)));
        // The slave has everything and closed: its notice goes out.
        let out = d.closed(2);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].attr("to"), Some("slave"));
        assert_eq!(d.held(), [0; 6], "nothing is left behind");
    }

    #[test]
    fn cutting_at_the_deadline_closes_everyone_and_returns_every_held_notice() {
        let mut d = RelayDispatch::new(4);
        let mut master = attach(&mut d, 1, Role::Master);
        let mut slave = attach(&mut d, 2, Role::Slave);
        let _handshake = {
            let (tx, rx) = mpsc::channel(8);
            d.hello(3, tx);
            rx
        };
        // The master is finishing, so the slave's drain (and its notice) is held
        // back; connection 3 is still in its handshake.
        d.apply(Action::RelayFinish { conn: 1 });
        d.apply(Action::RelayDrain {
            conn: 2,
            notice: Some(notice("slave")),
        });
        assert!(!d.is_idle());
        let mut out: Vec<_> = d
            .cut_all()
            .iter()
            .filter_map(|e| e.attr("to").map(str::to_string))
            .collect();
        out.sort();
        assert_eq!(out, vec!["slave".to_string()]);
        assert!(matches!(last(&mut master), Some(Control::Close(_))));
        assert!(matches!(last(&mut slave), Some(Control::Close(_))));
        assert!(d.is_idle(), "nothing is left to wait for");
    }

    #[test]
    fn without_a_finishing_peer_the_drain_starts_at_once() {
        let mut d = RelayDispatch::new(4);
        let _master = attach(&mut d, 1, Role::Master);
        let mut slave = attach(&mut d, 2, Role::Slave);
        d.apply(Action::RelayClose {
            conn: 1,
            reason: "dropped",
        });
        d.closed(1);
        assert!(d
            .apply(Action::RelayDrain {
                conn: 2,
                notice: Some(notice("slave")),
            })
            .is_empty());
        assert!(matches!(last(&mut slave), Some(Control::Drain)));
        d.apply(Action::StreamGone {
            stream: 7,
            started: std::time::Instant::now(),
        });
        assert_eq!(d.closed(2).len(), 1);
        assert_eq!(d.held(), [0; 6]);
    }
}
