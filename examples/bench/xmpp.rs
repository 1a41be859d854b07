//! Stream setup through the real XMPP path: logged-in accounts (c2s to Prosody with
//! `XmppClient::connect_with`), and a dsps stream made with `DspsClient` (create,
//! invite, accept, both relay handshakes), handed back as blocking std sockets.

use std::net::TcpStream;
use std::time::Duration;

use dsps::client::c2s::{ConnectOptions, Security, XmppClient};
use dsps::client::session::{invite_slaves, DataConn, DspsClient, DspsEvent, DspsEvents, Seat};
use dsps::proto::query::CreateRequest;
use dsps::proto::xml::to_xml;
use futures::future::join_all;
use minidom::Element;
use tokio::sync::mpsc;

use crate::R;

/// Bound on every XMPP step (a request, a push, a handshake).
pub const STEP: Duration = Duration::from_secs(30);
/// Events one account may have queued for the setup that waits for them.
const EVENT_QUEUE: usize = 1024;

/// One logged-in session (one full JID), with the events its setups wait for.
pub struct Account {
    pub dsps: DspsClient,
    pub jid: String,
    events: mpsc::Receiver<DspsEvent>,
}

/// Awaits `fut` for at most [`STEP`], naming `what` if it takes longer or fails.
pub async fn step<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> R<T> {
    match tokio::time::timeout(STEP, fut).await {
        Ok(r) => r.map_err(|e| format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {STEP:?}")),
    }
}

impl Account {
    /// Logs in as `jid` on `server` (loopback, no TLS) and starts its event pump.
    pub async fn login(server: &str, dsps: &str, jid: &str, password: &str) -> R<Account> {
        let opts = ConnectOptions {
            server: Some(server.to_string()),
            security: Security::Plaintext,
        };
        let (x, incoming) = step(
            &format!("login {jid}"),
            XmppClient::connect_with(jid, password, &opts),
        )
        .await?;
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(pump(DspsEvents::new(x.clone(), incoming), tx));
        Ok(Account {
            jid: x.jid().to_string(),
            dsps: DspsClient::new(x, dsps),
            events: rx,
        })
    }

    /// The next event `pick` takes, within [`STEP`]; events it passes over are stale
    /// (from an earlier setup of this account) and dropped.
    pub async fn wait<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(DspsEvent) -> Option<T>,
    ) -> R<T> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => {
                    if let Some(t) = pick(e) {
                        return Ok(t);
                    }
                }
                Ok(None) => return Err(format!("{}: XMPP session ended ({what})", self.jid)),
                Err(_) => return Err(format!("{}: {what}: not within {STEP:?}", self.jid)),
            }
        }
    }
}

/// Reads an account's DSPS events (pushes are acknowledged inside `DspsEvents`) and
/// keeps the ones a setup waits for: invitations, seats, "connect" presences and
/// other iq sets (XEP-0065 offers). Everything else is dropped here, so nothing piles up.
async fn pump(mut events: DspsEvents, tx: mpsc::Sender<DspsEvent>) {
    while let Some(e) = events.next().await {
        let keep = match &e {
            DspsEvent::Invitation(_) | DspsEvent::Waiting(_) => true,
            DspsEvent::Presence { push, .. } => push.peers.iter().any(|(s, _)| s == "connect"),
            DspsEvent::Other(el) => el.name() == "iq" && el.attr("type") == Some("set"),
            _ => false,
        };
        if keep && tx.send(e).await.is_err() {
            return;
        }
    }
}

/// A handshaken relay connection as a blocking socket, with what the handshake
/// read past KEY2.
pub struct Conn {
    pub sock: TcpStream,
    pub buffered: Vec<u8>,
}

fn to_std(c: DataConn) -> R<Conn> {
    let sock = c.tcp.into_std().map_err(|e| e.to_string())?;
    sock.set_nonblocking(false).map_err(|e| e.to_string())?;
    Ok(Conn {
        sock,
        buffered: c.buffered.to_vec(),
    })
}

/// One dsps stream ready to move data: every slave connected as the master's
/// presence pushes say.
pub struct DspsStream {
    pub master_seat: Seat,
    pub master: Conn,
    pub slaves: Vec<Conn>,
}

/// Creates a stream as `master`, invites `slaves`, each accepts; all connect to the
/// relay at `relay`. Returns once the master has seen every slave connect.
pub async fn dsps_stream(
    master: &mut Account,
    slaves: &mut [Account],
    relay: &str,
) -> R<DspsStream> {
    let seat = step("create", master.dsps.create(&CreateRequest::default())).await?;
    let jids: Vec<String> = slaves.iter().map(|s| s.jid.clone()).collect();
    for batch in jids.chunks(64) {
        let invite = invite_slaves(batch.iter().map(String::as_str));
        step("admin invite", master.dsps.admin(&seat, &invite)).await?;
    }
    let joins = slaves.iter_mut().map(|s| async move {
        let inv = s
            .wait("an invitation", |e| match e {
                DspsEvent::Invitation(i) => Some(i),
                _ => None,
            })
            .await?;
        step("accept", s.dsps.answer(&inv, true)).await?;
        let seat = s
            .wait("the seat", |e| match e {
                DspsEvent::Waiting(seat) => Some(seat),
                _ => None,
            })
            .await?;
        to_std(step("slave handshake", s.dsps.connect(&seat, Some(relay))).await?)
    });
    let (slave_conns, master_conn) = tokio::join!(
        join_all(joins),
        step("master handshake", master.dsps.connect(&seat, Some(relay)))
    );
    let slave_conns = slave_conns.into_iter().collect::<R<Vec<Conn>>>()?;
    let master_conn = to_std(master_conn?)?;
    let mut missing = jids;
    while !missing.is_empty() {
        let peer = seat.peer_jid.clone();
        master
            .wait("the slaves' connect presences", |e| match e {
                DspsEvent::Presence { peer_jid, push } if peer_jid == peer => {
                    missing.retain(|j| !push.peers.iter().any(|(s, pj)| s == "connect" && pj == j));
                    Some(())
                }
                _ => None,
            })
            .await?;
    }
    Ok(DspsStream {
        master_seat: seat,
        master: master_conn,
        slaves: slave_conns,
    })
}

/// Ends a stream: the master leaves (the slaves are dropped after their data).
pub async fn leave(master: &Account, seat: &Seat) -> R<()> {
    step("leave", master.dsps.leave(seat)).await
}

/// Sends an iq request with `payload` and fails unless a result comes back.
pub async fn iq(a: &Account, kind: &str, to: &str, payload: Element) -> R<Element> {
    let x = a.dsps.xmpp();
    let resp = step(
        &format!("iq {kind} to {to}"),
        x.request(kind, to, payload, STEP),
    )
    .await?;
    if resp.attr("type") != Some("result") {
        return Err(format!(
            "iq {kind} to {to}: {}",
            to_xml(&resp)
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    Ok(resp)
}
