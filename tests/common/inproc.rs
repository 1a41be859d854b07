//! The service in-process with channels in place of the component link
//! (`service::run_with_link`): the test plays the XMPP server, sending
//! `minidom::Element` stanzas in and reading what dsps sends out, and talks to the
//! relay port with raw `TcpStream`s on 127.0.0.1. No Prosody, no binary.
//!
//! Every wait is bounded by [`STEP`]. Under `tokio::time::pause()` that bound is
//! virtual time too, so tests keep the timers they exercise well below it.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dsps::config::Config;
use dsps::proto::iq::{Iq, IqKind};
use dsps::proto::query::{self, AdminAction, AdminRequest, CreateRequest, Role, WhoResult};
use dsps::proto::xml::NS_COMPONENT;
use dsps::service::{self, Stopped};
use minidom::Element;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Bound on one step (a reply, a push, a line).
pub const STEP: Duration = Duration::from_secs(20);
/// The component domain.
pub const DOMAIN: &str = "dsps.localhost";

/// Awaits `fut` for at most [`STEP`], panicking with `what` on timeout.
pub async fn step<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress within {STEP:?}"))
}

/// One seat as its owner sees it.
#[derive(Debug, Clone)]
pub struct Seat {
    /// The owner's full JID.
    pub jid: String,
    /// The seat's peer resource (full DSPS JID).
    pub peer_jid: String,
    /// (JID, peer resource) of a master of the same stream: `who` through it lists
    /// every seat (a slave's `who` lists only the masters).
    pub master: (String, String),
}

/// A running service and the test's ends of its link.
pub struct InProc {
    /// The relay port.
    pub relay: SocketAddr,
    to_dsps: mpsc::Sender<Element>,
    from_dsps: mpsc::Receiver<Element>,
    /// Stanzas read but not yet asked for.
    backlog: VecDeque<Element>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Stopped>>,
    next_id: u64,
}

impl InProc {
    /// Starts the service; `extra` is TOML appended to a minimal config (sections
    /// `[relay]` and `[component]` are already open, so add keys with their section
    /// as `[timeouts]\n…`, or relay keys through `relay_keys`).
    pub async fn start(relay_keys: &str, extra: &str) -> InProc {
        let text = format!(
            "[component]\njid = \"{DOMAIN}\"\nserver = \"127.0.0.1:9\"\nsecret = \"unused\"\n\
             [relay]\nlisten = \"127.0.0.1:0\"\nhost = \"127.0.0.1\"\n{relay_keys}\n{extra}\n"
        );
        // The service's log goes to the test's captured output (shown on failure).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("dsps=debug")
            .try_init();
        let config = Config::parse(&text).expect("test config parses");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay port");
        let relay = listener.local_addr().expect("relay address");
        let (ends, far) = service::link_channels();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(service::run_with_link(config, listener, ends, async {
            let _ = rx.await;
        }));
        InProc {
            relay,
            to_dsps: far.to_dsps,
            from_dsps: far.from_dsps,
            backlog: VecDeque::new(),
            shutdown: Some(tx),
            task: Some(task),
            next_id: 0,
        }
    }

    /// Sends a stanza to the service as the XMPP server would deliver it.
    pub async fn send(&mut self, e: Element) {
        self.to_dsps.send(e).await.expect("service is running");
    }

    /// Sends an iq request and returns its id.
    pub async fn request(
        &mut self,
        kind: IqKind,
        from: &str,
        to: &str,
        payload: Element,
    ) -> String {
        self.next_id += 1;
        let id = format!("t{}", self.next_id);
        self.send(Iq::request(kind, &id, from, to, payload).to_element(NS_COMPONENT))
            .await;
        id
    }

    /// The next stanza the service sends that matches `want`; others stay queued.
    pub async fn wait_for(&mut self, what: &str, want: impl Fn(&Iq) -> bool) -> Iq {
        if let Some(i) = self
            .backlog
            .iter()
            .position(|e| Iq::parse(e).is_ok_and(|q| want(&q)))
        {
            let e = self.backlog.remove(i).expect("index from position");
            return Iq::parse(&e).expect("checked");
        }
        loop {
            let e = step(what, self.from_dsps.recv())
                .await
                .unwrap_or_else(|| panic!("{what}: the service stopped sending"));
            match Iq::parse(&e) {
                Ok(q) if want(&q) => return q,
                _ => self.backlog.push_back(e),
            }
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn ask(&mut self, kind: IqKind, from: &str, to: &str, payload: Element) -> Iq {
        let id = self.request(kind, from, to, payload).await;
        self.wait_for(&format!("answer to {id}"), |q| {
            q.id == id && matches!(q.kind, IqKind::Result | IqKind::Error)
        })
        .await
    }

    /// `jid` creates a stream; returns its seat.
    pub async fn create(&mut self, jid: &str) -> Seat {
        let r = self
            .ask(IqKind::Get, jid, DOMAIN, (&CreateRequest::default()).into())
            .await;
        assert_eq!(r.kind, IqKind::Result, "create failed: {r:?}");
        Seat {
            jid: jid.to_string(),
            master: (jid.to_string(), r.from.clone()),
            peer_jid: r.from,
        }
    }

    /// `by` invites `jid` as `role`; `jid` accepts. Returns the new seat.
    pub async fn invite(&mut self, by: &Seat, role: Role, jid: &str) -> Seat {
        let admin = AdminRequest {
            actions: vec![AdminAction::Invite(role, jid.to_string())],
            ..AdminRequest::default()
        };
        let r = self
            .ask(IqKind::Set, &by.jid, &by.peer_jid, (&admin).into())
            .await;
        assert_eq!(r.kind, IqKind::Result, "admin failed: {r:?}");
        let inv = self
            .wait_for(&format!("invitation to {jid}"), |q| {
                q.to == jid && q.kind == IqKind::Get && q.dsps_type() == Some("acknowledge")
            })
            .await;
        self.send(
            inv.result(Some(query::acknowledge("connect")))
                .to_element(NS_COMPONENT),
        )
        .await;
        let waiting = self
            .wait_for(&format!("connection waiting for {jid}"), |q| {
                q.to == jid && q.kind == IqKind::Set && q.dsps_type() == Some("create")
            })
            .await;
        self.send(waiting.result(None).to_element(NS_COMPONENT))
            .await;
        Seat {
            jid: jid.to_string(),
            peer_jid: waiting.from,
            master: by.master.clone(),
        }
    }

    /// Runs the relay handshake for `seat` from `from` (None: 127.0.0.1) and waits
    /// until the service has attached it (`who` reports it `connect`: the KEY2 line
    /// and the `who` iq reach the registry by different paths, so ask until then).
    pub async fn connect(&mut self, seat: &Seat, from: Option<IpAddr>) -> TcpStream {
        let tcp = self.handshake(seat, from, None).await;
        step(&format!("{} attached", seat.jid), async {
            loop {
                let (jid, peer_jid) = &seat.master;
                let r = self
                    .ask(IqKind::Get, jid, peer_jid, query::empty("who"))
                    .await;
                let who = r
                    .payload
                    .as_ref()
                    .and_then(|p| WhoResult::try_from(p).ok())
                    .expect("who result");
                if who
                    .peers
                    .iter()
                    .any(|p| p.jid == seat.jid && p.status == "connect")
                {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        tcp
    }

    /// The handshake alone: hello, KEY1, auth iq, KEY2 (or `wrong_key2` instead).
    pub async fn handshake(
        &mut self,
        seat: &Seat,
        from: Option<IpAddr>,
        wrong_key2: Option<&str>,
    ) -> TcpStream {
        let tcp = dial(self.relay, from).await;
        let mut io = BufReader::new(tcp);
        io.write_all(format!("{} {}\n", seat.jid, seat.peer_jid).as_bytes())
            .await
            .expect("write hello");
        let mut key1 = String::new();
        step("KEY1 line", io.read_line(&mut key1))
            .await
            .expect("read KEY1");
        assert!(key1.ends_with('\n'), "no KEY1 line, got {key1:?}");
        let r = self
            .ask(
                IqKind::Get,
                &seat.jid,
                &seat.peer_jid,
                query::auth(key1.trim()),
            )
            .await;
        assert_eq!(r.kind, IqKind::Result, "auth failed: {r:?}");
        let key2 = r
            .payload
            .as_ref()
            .and_then(query::auth_key)
            .expect("auth result carries KEY2");
        let line = wrong_key2.map_or(key2, str::to_string);
        io.write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write KEY2");
        assert!(io.buffer().is_empty(), "nothing follows KEY1 before KEY2");
        io.into_inner()
    }

    /// Starts the drain (the first signal).
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the service to return after [`InProc::shutdown`]; returns every
    /// stanza it sent that no earlier wait took.
    pub async fn stopped(&mut self, bound: Duration) -> Vec<Iq> {
        let task = self.task.take().expect("not stopped yet");
        tokio::time::timeout(bound, task)
            .await
            .unwrap_or_else(|_| panic!("the service did not stop within {bound:?}"))
            .expect("service task");
        let mut out: Vec<Element> = self.backlog.drain(..).collect();
        while let Some(e) = self.from_dsps.recv().await {
            out.push(e);
        }
        out.iter().filter_map(|e| Iq::parse(e).ok()).collect()
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A TCP connection to `relay`, from the loopback address `from` if given (the whole
/// of 127/8 is loopback on Linux, so 127.0.0.2 is "another address").
pub async fn dial(relay: SocketAddr, from: Option<IpAddr>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(ip) = from {
        socket
            .bind(SocketAddr::new(ip, 0))
            .expect("bind the client address");
    }
    let tcp = step("connect", socket.connect(relay))
        .await
        .expect("connect to the relay");
    tcp.set_nodelay(true).expect("nodelay");
    tcp
}

/// Whether the peer closed `tcp` (EOF or reset) within [`STEP`], ignoring data.
pub async fn closed_by_peer(tcp: &mut TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    loop {
        match step("waiting for close", tcp.read(&mut buf)).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue,
        }
    }
}

/// The drop notice (`acknowledge status='drop'`) among `iqs` for `jid`, if any.
pub fn drop_notice_for<'a>(iqs: &'a [Iq], jid: &str) -> Option<&'a Iq> {
    iqs.iter().find(|q| {
        q.to == jid
            && q.kind == IqKind::Set
            && q.payload.as_ref().is_some_and(|p| {
                p.is("query", dsps::proto::xml::NS_DSPS)
                    && p.attr("type") == Some("acknowledge")
                    && p.attr("status") == Some("drop")
            })
    })
}
