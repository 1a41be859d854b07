//! The soak harness behind `scripts/soak.sh`: many streams and peers joining,
//! leaving, dropping and reconnecting through a running dsps for a bounded time, with
//! hostile traffic mixed in, then checks that nothing was lost or leaked.
//!
//! It expects a Prosody and a dsps on loopback that `scripts/soak.sh` started, with
//! accounts `soak1`..`soakN` sharing one password. Run it through the script; run by
//! hand it needs every flag the script passes.
//!
//! What runs, until `--duration` is up (every loop is also bounded in count):
//! - `--workers` stream loops. Each iteration is one stream's life: create (some
//!   public), invite slaves (some reject), connect (some first try a wrong KEY1, a
//!   wrong KEY2 or a forged hello), then a few phases of master → slaves and
//!   slaves → master data, each checked by sha256 per receiver, with one event
//!   between phases: a slave reconnects, leaves, is dropped by the master, vanishes,
//!   a new slave is invited or joins the public stream, or the master reconnects.
//!   The master leaves at the end; every connected slave must then see end of stream
//!   and its drop notice.
//! - Hostile XML on a raw c2s connection (unless `--no-hostile-xml`): stanzas nesting
//!   5 000 levels, 16 000-byte attribute values, names and attribute names, a
//!   100 KB `minthroughput`, each addressed to the component.
//! - Garbage and slowloris sockets on the relay port, from 127.0.0.2 and 127.0.0.3 so
//!   that per-address limits do not lock out the legitimate peers on 127.0.0.1.
//! - An RSS sampler on the dsps process.
//!
//! At the end: every hostile iq got an answer, every peer resource handed out answers
//! `who` and `stats` with 404, the public listing is empty, dsps still runs and never
//! logged a lost link, RSS stayed within bounds. One figures line goes to stdout; any
//! failure exits 1.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Parser;
use dsps::client::c2s::XmppClient;
use dsps::client::session::{
    invite_slaves, BlockReader, ClientError, DspsClient, DspsEvent, DspsEvents, Seat,
};
use dsps::proto::error::DspsError;
use dsps::proto::query::{self, AdminAction, AdminRequest, CreateRequest, StatsResult};
use dsps::proto::xml::NS_DSPS;
use futures::future::join_all;
use futures::FutureExt;
use minidom::Element;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

/// Bound on one step of a stream's life (a request, a push, a phase's data).
const STEP: Duration = Duration::from_secs(20);
/// Slave accounts per worker (the master is one more).
const SLAVES_PER_WORKER: usize = 4;
/// Accounts beyond the workers': the hostile XML sender.
const EXTRA_ACCOUNTS: usize = 1;
/// Most stream iterations one worker runs, whatever the duration.
const MAX_ITERATIONS: u64 = 100_000;
/// Most seats kept for the final 404 check (the newest are kept).
const MAX_SEATS_CHECKED: usize = 3000;
/// Slowloris sockets held open at once.
const SLOWLORIS_SOCKETS: usize = 16;
/// Garbage connections in flight at once.
const GARBAGE_SOCKETS: usize = 4;
/// Nesting depth of the deep stanzas (issue 6, case 1).
const DEEP: usize = 5000;
/// Length of the long names and values (issue 6, case 2).
const LONG: usize = 16_000;
/// The hostile stanzas, by name (see [`hostile_stanza`]).
const HOSTILE_KINDS: [&str; 8] = [
    "deep-message",
    "deep-iq",
    "deep-create",
    "deep-presence",
    "long-value",
    "long-name",
    "long-attr-name",
    "long-minthroughput",
];

/// Soak a running dsps (see `scripts/soak.sh`).
#[derive(Parser, Debug)]
#[command(name = "soak", about)]
struct Args {
    /// Prosody's client port.
    #[arg(long)]
    server: String,
    /// The component's domain.
    #[arg(long)]
    dsps: String,
    /// The relay address (host:port) dsps listens on.
    #[arg(long)]
    relay_addr: String,
    /// Password of every `soakN` account.
    #[arg(long)]
    password: String,
    /// The accounts' domain.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// How long to run: `180`, `90s`, `3m`.
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent stream loops.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// dsps's `[timeouts] wait` in ms (how long an abandoned seat lives).
    #[arg(long, default_value_t = 3000)]
    wait_ms: u64,
    /// dsps's `[timeouts] handshake` in ms (how long a slowloris socket may live).
    #[arg(long, default_value_t = 3000)]
    handshake_ms: u64,
    /// The dsps process, for RSS samples.
    #[arg(long)]
    dsps_pid: u32,
    /// dsps's log file, checked for a lost component link.
    #[arg(long)]
    dsps_log: PathBuf,
    /// Leave out the hostile stanzas (deep nesting, long tokens).
    #[arg(long)]
    no_hostile_xml: bool,
    /// Which hostile stanzas to send, in rotation (comma-separated; default all).
    #[arg(long, value_delimiter = ',', default_values_t = HOSTILE_KINDS.map(String::from))]
    hostile_kinds: Vec<String>,
    /// Most RSS growth allowed from the warmed-up sample to the end, in MiB.
    #[arg(long, default_value_t = 32)]
    rss_growth_mib: u64,
    /// Most RSS allowed at any sample, in MiB.
    #[arg(long, default_value_t = 512)]
    rss_limit_mib: u64,
    /// Seed for the random choices (default: random; printed either way).
    #[arg(long)]
    seed: Option<u64>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = match s.strip_suffix('m') {
        Some(n) => (n, 60),
        None => (s.strip_suffix('s').unwrap_or(s), 1),
    };
    number
        .parse::<u64>()
        .map(|n| Duration::from_secs(n * scale))
        .map_err(|_| format!("{s:?} is not a duration like 180, 90s or 3m"))
}

/// Counters shared by every task.
#[derive(Default)]
struct Figures {
    streams: AtomicU64,
    peers: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_verified: AtomicU64,
    errors: AtomicU64,
    hostile_stanzas: AtomicU64,
    hostile_iqs: AtomicU64,
    hostile_iq_replies: AtomicU64,
    hostile_relogins: AtomicU64,
    garbage_sockets: AtomicU64,
    slowloris_sockets: AtomicU64,
    wrong_keys: AtomicU64,
    forged_hellos: AtomicU64,
    reconnects: AtomicU64,
    leaves: AtomicU64,
    kicks: AtomicU64,
    vanishes: AtomicU64,
    late_joins: AtomicU64,
    public_joins: AtomicU64,
    rejects: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// What every task can see.
struct Shared {
    args: Args,
    figures: Figures,
    /// Every seat handed out: (owner's full JID, peer resource), newest last.
    seats: Mutex<Vec<(String, String)>>,
    /// First lines of the failures, for the report.
    failures: Mutex<Vec<String>>,
    deadline: Instant,
    /// Set when dsps is gone: everything stops early.
    aborted: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn fail(&self, what: String) {
        add(&self.figures.errors, 1);
        eprintln!("soak: FAIL: {what}");
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(what);
        }
    }

    fn seat(&self, owner: &str, seat: &Seat) {
        add(&self.figures.peers, 1);
        let mut s = self.seats.lock().unwrap();
        s.push((owner.to_string(), seat.peer_jid.clone()));
        if s.len() > MAX_SEATS_CHECKED {
            s.remove(0);
        }
    }

    fn running(&self) -> bool {
        Instant::now() < self.deadline && !self.aborted.load(Ordering::Relaxed)
    }
}

type R<T> = Result<T, String>;

/// Awaits `fut` for at most [`STEP`], naming `what` if it takes longer.
async fn step<T>(what: &str, fut: impl std::future::Future<Output = T>) -> R<T> {
    tokio::time::timeout(STEP, fut)
        .await
        .map_err(|_| format!("{what}: no answer within {STEP:?}"))
}

async fn ok<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> R<T> {
    step(what, fut).await?.map_err(|e| format!("{what}: {e}"))
}

// ---- accounts -------------------------------------------------------------------------

/// One logged-in account.
struct Session {
    jid: String,
    dsps: DspsClient,
    events: DspsEvents,
    /// Events a wait skipped that a later wait may want (invitations, seats, drops).
    stash: Vec<DspsEvent>,
    /// The component's domain (the bare DSPS JID).
    domain: String,
}

impl Session {
    async fn login(sh: &Shared, n: usize) -> R<Session> {
        let jid = format!("soak{n}@{}/soak", sh.args.domain);
        let (x, inc) = ok(
            &format!("login {jid}"),
            XmppClient::connect(&sh.args.server, &jid, &sh.args.password),
        )
        .await?;
        Ok(Session {
            jid: x.jid().to_string(),
            dsps: DspsClient::new(x.clone(), &sh.args.dsps),
            events: DspsEvents::new(x, inc),
            stash: Vec::new(),
            domain: sh.args.dsps.clone(),
        })
    }

    /// Forgets every event queued so far (pushes are acknowledged as they are read).
    fn drain(&mut self) {
        self.stash.clear();
        while let Some(Some(_)) = self.events.next().now_or_never() {}
    }

    /// Waits (bounded by [`STEP`]) for the first event `want` picks. Presence pushes
    /// and admin reports it skips are dropped; other events are kept for later waits.
    async fn wait<T>(&mut self, what: &str, mut want: impl FnMut(&DspsEvent) -> Option<T>) -> R<T> {
        let deadline = tokio::time::Instant::now() + STEP;
        let mut kept = Vec::new();
        let mut stash = std::mem::take(&mut self.stash).into_iter();
        let found = loop {
            let event = match stash.next() {
                Some(e) => e,
                None => match tokio::time::timeout_at(deadline, self.events.next()).await {
                    Ok(Some(e)) => e,
                    Ok(None) => break Err(format!("{}: XMPP session ended ({what})", self.jid)),
                    Err(_) => break Err(format!("{}: {what}: not within {STEP:?}", self.jid)),
                },
            };
            if let Some(t) = want(&event) {
                break Ok(t);
            }
            match event {
                DspsEvent::Presence { .. }
                | DspsEvent::AdminReport { .. }
                | DspsEvent::Other(_) => {}
                e => kept.push(e),
            }
        };
        kept.extend(stash);
        self.stash = kept;
        found
    }

    /// Waits until presence pushes from our seat `seat` have announced `status` for
    /// every one of `jids`, in any order.
    async fn wait_presence(&mut self, seat: &str, status: &str, jids: &[String]) -> R<()> {
        let mut missing: Vec<String> = jids.to_vec();
        while !missing.is_empty() {
            let what = format!("presence {status} for {missing:?} from {seat}");
            self.wait(&what, |e| match e {
                DspsEvent::Presence { peer_jid, push } if peer_jid == seat => {
                    let before = missing.len();
                    missing.retain(|j| !push.peers.iter().any(|(s, pj)| s == status && pj == j));
                    (missing.len() < before).then_some(())
                }
                _ => None,
            })
            .await?;
        }
        Ok(())
    }

    async fn wait_dropped(&mut self, peer_jid: &str) -> R<()> {
        self.wait(&format!("drop notice from {peer_jid}"), |e| match e {
            DspsEvent::Dropped { peer_jid: p, .. } if p == peer_jid => Some(()),
            _ => None,
        })
        .await
    }

    async fn wait_seat(&mut self) -> R<Seat> {
        self.wait("the create message", |e| match e {
            DspsEvent::Waiting(seat) => Some(seat.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for the next invitation and accepts or rejects it; an accepted one
    /// gives the seat.
    async fn answer_invitation(&mut self, accept: bool) -> R<Option<Seat>> {
        let inv = self
            .wait("an invitation", |e| match e {
                DspsEvent::Invitation(inv) => Some(inv.clone()),
                _ => None,
            })
            .await?;
        ok("answering the invitation", self.dsps.answer(&inv, accept)).await?;
        if accept {
            self.wait_seat().await.map(Some)
        } else {
            Ok(None)
        }
    }
}

// ---- data -----------------------------------------------------------------------------

type Reader = BlockReader<OwnedReadHalf>;

/// A connected member of the stream under test.
struct Member {
    /// Index into the worker's sessions.
    who: usize,
    seat: Seat,
    /// `None` while disconnected.
    conn: Option<(Reader, OwnedWriteHalf)>,
}

fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Reads blocks until `len` data bytes arrived, all from `id`; returns their sha256.
async fn read_exact_from(r: &mut Reader, id: &str, len: usize) -> R<Vec<u8>> {
    let mut h = Sha256::new();
    let mut got = 0;
    while got < len {
        let b = match step("reading a block", r.next_block()).await? {
            Ok(Some(b)) => b,
            Ok(None) => return Err(format!("end of stream after {got} of {len} bytes")),
            Err(e) => return Err(format!("after {got} of {len} bytes: {e}")),
        };
        if b.id != id {
            return Err(format!("a block from id {:?}, expected {id:?}", b.id));
        }
        got += b.data.len();
        h.update(&b.data);
    }
    if got != len {
        return Err(format!("{got} bytes arrived, {len} were sent"));
    }
    Ok(h.finalize().to_vec())
}

/// Reads blocks until `want` (id → length) is complete; returns id → sha256.
async fn read_from_many(
    r: &mut Reader,
    want: &HashMap<String, usize>,
) -> R<HashMap<String, Vec<u8>>> {
    let total: usize = want.values().sum();
    let mut hashes: HashMap<String, (Sha256, usize)> = HashMap::new();
    let mut got = 0;
    while got < total {
        let b = match step("reading a block", r.next_block()).await? {
            Ok(Some(b)) => b,
            Ok(None) => return Err(format!("end of stream after {got} of {total} bytes")),
            Err(e) => return Err(format!("after {got} of {total} bytes: {e}")),
        };
        let Some(&limit) = want.get(&b.id) else {
            return Err(format!("a block from unexpected id {:?}", b.id));
        };
        let entry = hashes.entry(b.id.clone()).or_default();
        entry.0.update(&b.data);
        entry.1 += b.data.len();
        if entry.1 > limit {
            return Err(format!(
                "id {:?} sent {} bytes, expected {limit}",
                b.id, entry.1
            ));
        }
        got += b.data.len();
    }
    Ok(hashes
        .into_iter()
        .map(|(id, (h, _))| (id, h.finalize().to_vec()))
        .collect())
}

// ---- one stream -----------------------------------------------------------------------

/// One worker: a master session and [`SLAVES_PER_WORKER`] slave sessions.
struct Worker {
    n: usize,
    sessions: Vec<Session>,
    rng: StdRng,
    relay: SocketAddr,
}

impl Worker {
    async fn new(sh: &Shared, n: usize, seed: u64) -> R<Worker> {
        let mut sessions = Vec::new();
        for i in 0..=SLAVES_PER_WORKER {
            sessions.push(Session::login(sh, n * (SLAVES_PER_WORKER + 1) + i + 1).await?);
        }
        let relay = sh
            .args
            .relay_addr
            .parse()
            .map_err(|e| format!("--relay-addr: {e}"))?;
        Ok(Worker {
            n,
            sessions,
            rng: StdRng::seed_from_u64(seed),
            relay,
        })
    }

    fn relay_addr(&self) -> String {
        self.relay.to_string()
    }

    async fn connect(&mut self, sh: &Shared, m: &mut Member) -> R<()> {
        let s = &self.sessions[m.who];
        // Sometimes a bad attempt first; the seat must still take the good one.
        match self.rng.gen_range(0..10) {
            0 => {
                add(&sh.figures.wrong_keys, 1);
                wrong_key1(s, &m.seat, self.relay).await?;
            }
            1 => {
                add(&sh.figures.wrong_keys, 1);
                wrong_key2(s, &m.seat, self.relay).await?;
            }
            2 => {
                add(&sh.figures.forged_hellos, 1);
                forged_hello(&m.seat, self.relay).await?;
            }
            _ => {}
        }
        let conn = ok(
            &format!("{} connecting", s.jid),
            s.dsps.connect(&m.seat, Some(&self.relay_addr())),
        )
        .await?;
        m.conn = Some(conn.into_split());
        Ok(())
    }

    /// One stream's whole life; see the module doc.
    async fn stream(&mut self, sh: &Shared, iteration: u64) -> R<()> {
        let tag = format!("soak-w{}-i{iteration}", self.n);
        let public = self.rng.gen_bool(0.25);
        let req = CreateRequest {
            maxpublic: if public { 2 } else { 0 },
            comments: vec![Element::builder("comment", NS_DSPS)
                .append(tag.as_str())
                .build()],
            ..CreateRequest::default()
        };
        let master_seat = ok("create", self.sessions[0].dsps.create(&req)).await?;
        add(&sh.figures.streams, 1);
        let master_jid = self.sessions[0].jid.clone();
        sh.seat(&master_jid, &master_seat);
        let mut master = Member {
            who: 0,
            seat: master_seat,
            conn: None,
        };

        // Invite 1..=3 slaves; about one in ten invitations is rejected.
        let invited = self.rng.gen_range(1..=3usize);
        let jids: Vec<String> = (1..=invited)
            .map(|i| self.sessions[i].jid.clone())
            .collect();
        ok(
            "admin invite",
            self.sessions[0].dsps.admin(
                &master.seat,
                &invite_slaves(jids.iter().map(String::as_str)),
            ),
        )
        .await?;
        let mut members: Vec<Member> = Vec::new();
        let mut unused: Vec<usize> = ((invited + 1)..=SLAVES_PER_WORKER).collect();
        for i in 1..=invited {
            let accept = !self.rng.gen_bool(0.1);
            if !accept {
                add(&sh.figures.rejects, 1);
            }
            if let Some(seat) = self.sessions[i].answer_invitation(accept).await? {
                sh.seat(&self.sessions[i].jid.clone(), &seat);
                members.push(Member {
                    who: i,
                    seat,
                    conn: None,
                });
            }
        }

        self.connect(sh, &mut master).await?;
        for m in members.iter_mut() {
            self.connect(sh, m).await?;
        }
        let jids: Vec<String> = members
            .iter()
            .map(|m| self.sessions[m.who].jid.clone())
            .collect();
        let master_peer = master.seat.peer_jid.clone();
        self.sessions[0]
            .wait_presence(&master_peer, "connect", &jids)
            .await?;

        let phases = self.rng.gen_range(2..=4);
        for phase in 0..phases {
            self.phase(sh, &mut master, &mut members).await?;
            if phase + 1 < phases {
                self.event(sh, &tag, &mut master, &mut members, &mut unused)
                    .await?;
            }
        }

        // The master leaves: the stream ends, each connected slave sees end of stream
        // and then its drop notice.
        ok("master leaves", self.sessions[0].dsps.leave(&master.seat)).await?;
        for m in members.iter_mut() {
            if let Some((r, _w)) = m.conn.as_mut() {
                match step("end of stream", r.next_block()).await? {
                    Ok(None) => {}
                    Ok(Some(b)) => {
                        return Err(format!("{} bytes after the last phase", b.data.len()))
                    }
                    Err(e) => return Err(format!("end of stream: {e}")),
                }
            }
            let peer = m.seat.peer_jid.clone();
            self.sessions[m.who].wait_dropped(&peer).await?;
        }
        for s in self.sessions.iter_mut() {
            s.drain();
        }
        Ok(())
    }

    /// Master → every connected slave, then every connected slave → the master,
    /// checked per receiver by sha256.
    async fn phase(&mut self, sh: &Shared, master: &mut Member, members: &mut [Member]) -> R<()> {
        let ids = self.ids(master).await?;
        let master_id = ids
            .get(&self.sessions[0].jid)
            .cloned()
            .ok_or("who does not list the master")?;
        let len = match self.rng.gen_range(0..10) {
            0 => self.rng.gen_range(1..64),
            1..=6 => self.rng.gen_range(1024..256 * 1024),
            _ => self.rng.gen_range(256 * 1024..2 * 1024 * 1024),
        };
        let data = random_bytes(&mut self.rng, len);
        let want = Sha256::digest(&data).to_vec();
        let (_, mw) = master.conn.as_mut().ok_or("master not connected")?;
        let readers = members
            .iter_mut()
            .filter_map(|m| m.conn.as_mut().map(|(r, _)| r))
            .map(|r| read_exact_from(r, &master_id, len));
        let (sent, got) =
            tokio::join!(step("master sends", mw.write_all(&data)), join_all(readers));
        sent?.map_err(|e| format!("master sends: {e}"))?;
        add(&sh.figures.bytes_sent, len as u64);
        for g in got {
            if g? != want {
                return Err("a slave's bytes differ from the master's".into());
            }
            add(&sh.figures.bytes_verified, len as u64);
        }

        // Slaves → master.
        let mut expect = HashMap::new();
        let mut sums = HashMap::new();
        let mut writes = Vec::new();
        for m in members.iter_mut() {
            let Some((_, w)) = m.conn.as_mut() else {
                continue;
            };
            let jid = &self.sessions[m.who].jid;
            let id = ids
                .get(jid)
                .cloned()
                .ok_or_else(|| format!("who does not list {jid}"))?;
            let n = self.rng.gen_range(1..64 * 1024);
            let bytes = random_bytes(&mut self.rng, n);
            expect.insert(id.clone(), n);
            sums.insert(id, Sha256::digest(&bytes).to_vec());
            writes.push(async move { w.write_all(&bytes).await.map(|()| n) });
        }
        let (mr, _) = master.conn.as_mut().ok_or("master not connected")?;
        let (written, got) = tokio::join!(join_all(writes), async {
            if expect.is_empty() {
                Ok(HashMap::new())
            } else {
                read_from_many(mr, &expect).await
            }
        });
        for w in written {
            add(
                &sh.figures.bytes_sent,
                w.map_err(|e| format!("slave sends: {e}"))? as u64,
            );
        }
        let got = got?;
        if got != sums {
            return Err("the master's bytes from the slaves differ".into());
        }
        add(
            &sh.figures.bytes_verified,
            expect.values().sum::<usize>() as u64,
        );
        Ok(())
    }

    /// Asks `who` (bounded by [`STEP`]) until `jid` has `status`.
    async fn wait_status(&self, seat: &Seat, jid: &str, status: &str) -> R<()> {
        let deadline = Instant::now() + STEP;
        loop {
            let who = ok("who", self.sessions[0].dsps.who(seat)).await?;
            if who.peers.iter().any(|p| p.jid == jid && p.status == status) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{jid} never had status {status}: {who:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// JID → peer id, from the master's `who`.
    async fn ids(&self, master: &Member) -> R<HashMap<String, String>> {
        let who = ok("who", self.sessions[0].dsps.who(&master.seat)).await?;
        Ok(who.peers.into_iter().map(|p| (p.jid, p.id)).collect())
    }

    /// One thing happening between two phases.
    async fn event(
        &mut self,
        sh: &Shared,
        tag: &str,
        master: &mut Member,
        members: &mut Vec<Member>,
        unused: &mut Vec<usize>,
    ) -> R<()> {
        let connected: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].conn.is_some())
            .collect();
        let pick = self.rng.gen_range(0..8);
        match (pick, connected.is_empty(), unused.is_empty()) {
            // A slave drops its socket and reconnects.
            (0 | 1, false, _) => {
                let i = connected[self.rng.gen_range(0..connected.len())];
                members[i].conn = None;
                let jid = self.sessions[members[i].who].jid.clone();
                let mp = master.seat.peer_jid.clone();
                self.sessions[0]
                    .wait_presence(&mp, "waiting", std::slice::from_ref(&jid))
                    .await?;
                let mut m = members.remove(i);
                self.connect(sh, &mut m).await?;
                members.insert(i, m);
                self.sessions[0]
                    .wait_presence(&mp, "connect", &[jid])
                    .await?;
                add(&sh.figures.reconnects, 1);
            }
            // A slave leaves for good.
            (2, false, _) => {
                let i = connected[self.rng.gen_range(0..connected.len())];
                let m = members.remove(i);
                let s = &mut self.sessions[m.who];
                ok("slave leaves", s.dsps.leave(&m.seat)).await?;
                let jid = s.jid.clone();
                let mp = master.seat.peer_jid.clone();
                self.sessions[0].wait_presence(&mp, "drop", &[jid]).await?;
                add(&sh.figures.leaves, 1);
            }
            // The master drops a slave.
            (3, false, _) => {
                let i = connected[self.rng.gen_range(0..connected.len())];
                let m = members.remove(i);
                let jid = self.sessions[m.who].jid.clone();
                let drop = AdminRequest {
                    actions: vec![AdminAction::Drop(jid)],
                    ..AdminRequest::default()
                };
                ok(
                    "master drops a slave",
                    self.sessions[0].dsps.admin(&master.seat, &drop),
                )
                .await?;
                self.sessions[m.who].wait_dropped(&m.seat.peer_jid).await?;
                add(&sh.figures.kicks, 1);
            }
            // A slave vanishes: its socket closes and it never comes back; its seat
            // waits out `wait` and is dropped, or goes with the stream.
            (4, false, _) => {
                let i = connected[self.rng.gen_range(0..connected.len())];
                let m = members.remove(i);
                let jid = self.sessions[m.who].jid.clone();
                drop(m);
                let mp = master.seat.peer_jid.clone();
                self.sessions[0]
                    .wait_presence(&mp, "waiting", &[jid])
                    .await?;
                add(&sh.figures.vanishes, 1);
            }
            // A new slave: invited, or through the public JID when there is one.
            (5 | 6, _, false) => {
                let who = unused.remove(0);
                let jid = self.sessions[who].jid.clone();
                let public = self.public_jid(tag).await?;
                let seat = match public {
                    Some(public) if self.rng.gen_bool(0.5) => {
                        let s = &mut self.sessions[who];
                        ok(
                            "public join",
                            s.dsps
                                .request("set", &public, query::acknowledge("connect")),
                        )
                        .await?;
                        add(&sh.figures.public_joins, 1);
                        s.wait_seat().await?
                    }
                    _ => {
                        ok(
                            "late invite",
                            self.sessions[0]
                                .dsps
                                .admin(&master.seat, &invite_slaves([jid.as_str()])),
                        )
                        .await?;
                        add(&sh.figures.late_joins, 1);
                        self.sessions[who]
                            .answer_invitation(true)
                            .await?
                            .ok_or("accepted but no seat")?
                    }
                };
                sh.seat(&jid, &seat);
                let mut m = Member {
                    who,
                    seat,
                    conn: None,
                };
                self.connect(sh, &mut m).await?;
                let mp = master.seat.peer_jid.clone();
                self.sessions[0]
                    .wait_presence(&mp, "connect", &[jid])
                    .await?;
                members.push(m);
            }
            // The master drops its socket and reconnects.
            (7, _, _) => {
                // The observer may still hold pushes about an earlier reconnect of
                // the master (it was not the observer then): forget them, or a stale
                // "waiting" would let the new hello race the old connection's close.
                if let Some(first) = connected.first() {
                    let who = members[*first].who;
                    self.sessions[who].drain();
                }
                master.conn = None;
                let jid = self.sessions[0].jid.clone();
                if let Some(first) = connected.first() {
                    let (who, sp) = (members[*first].who, members[*first].seat.peer_jid.clone());
                    self.sessions[who]
                        .wait_presence(&sp, "waiting", std::slice::from_ref(&jid))
                        .await?;
                } else {
                    // Nobody to tell: ask until the seat says so, or a new hello
                    // could still find the old connection attached.
                    self.wait_status(&master.seat, &jid, "wait").await?;
                }
                self.connect(sh, master).await?;
                if let Some(first) = connected.first() {
                    let (who, sp) = (members[*first].who, members[*first].seat.peer_jid.clone());
                    self.sessions[who]
                        .wait_presence(&sp, "connect", &[jid])
                        .await?;
                }
                add(&sh.figures.reconnects, 1);
            }
            _ => {}
        }
        Ok(())
    }

    /// The public JID of our stream, found by its comment in the bare-JID listing.
    async fn public_jid(&self, tag: &str) -> R<Option<String>> {
        let x = self.sessions[0].dsps.xmpp();
        let reply = ok(
            "public stats",
            x.request("get", &self.sessions[0].domain, query::empty("stats"), STEP),
        )
        .await?;
        for q in reply.children().filter(|c| c.is("query", NS_DSPS)) {
            let Ok(stats) = StatsResult::try_from(q) else {
                continue;
            };
            if stats.comments.iter().any(|c| c.text() == tag) {
                return Ok(stats.peers.first().cloned());
            }
        }
        Ok(None)
    }
}

// ---- bad handshakes by legitimate clients ------------------------------------------------

/// Dials the relay from `source` (an address of 127.0.0.0/8).
async fn dial(relay: SocketAddr, source: [u8; 4]) -> R<TcpStream> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .map_err(|e| format!("binding {source:?}: {e}"))?;
    ok("connecting to the relay", socket.connect(relay)).await
}

/// Reads one line (the server's key), bounded.
async fn read_line(tcp: &mut TcpStream) -> R<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match step("reading a key line", tcp.read(&mut b)).await? {
            Ok(0) => return Err("closed before the key line".into()),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => line.push(b[0]),
            Err(e) => return Err(format!("reading a key line: {e}")),
        }
        if line.len() > 4096 {
            return Err("key line too long".into());
        }
    }
    String::from_utf8(line).map_err(|_| "key line not UTF-8".into())
}

/// Waits (bounded) until the server closes `tcp`.
async fn expect_closed(tcp: &mut TcpStream, what: &str) -> R<()> {
    let mut buf = [0u8; 4096];
    loop {
        match step(what, tcp.read(&mut buf)).await? {
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) => continue,
        }
    }
}

/// Hello, KEY1, then `auth` with a wrong key: 401, and the socket is closed.
async fn wrong_key1(s: &Session, seat: &Seat, relay: SocketAddr) -> R<()> {
    let mut tcp = dial(relay, [127, 0, 0, 1]).await?;
    let hello = format!("{} {}\n", s.jid, seat.peer_jid);
    ok("hello", tcp.write_all(hello.as_bytes())).await?;
    let key1 = read_line(&mut tcp).await?;
    let wrong = format!("{}x", key1.trim_end());
    match step(
        "wrong auth",
        s.dsps.request("get", &seat.peer_jid, query::auth(&wrong)),
    )
    .await?
    {
        Err(ClientError::Dsps(Some(DspsError::NotAuthorized), _)) => {}
        other => return Err(format!("a wrong KEY1 got {other:?}, not 401")),
    }
    expect_closed(&mut tcp, "close after a wrong KEY1").await
}

/// Hello, KEY1, a correct `auth`, then a wrong KEY2 on the socket: closed.
async fn wrong_key2(s: &Session, seat: &Seat, relay: SocketAddr) -> R<()> {
    let mut tcp = dial(relay, [127, 0, 0, 1]).await?;
    let hello = format!("{} {}\n", s.jid, seat.peer_jid);
    ok("hello", tcp.write_all(hello.as_bytes())).await?;
    let key1 = read_line(&mut tcp).await?;
    ok(
        "auth",
        s.dsps
            .request("get", &seat.peer_jid, query::auth(key1.trim_end())),
    )
    .await?;
    ok(
        "wrong KEY2",
        tcp.write_all(b"wrongkey2wrongkey2wrongkey2\n"),
    )
    .await?;
    expect_closed(&mut tcp, "close after a wrong KEY2").await
}

/// A hello that names a real seat with someone else's JID: closed at once.
async fn forged_hello(seat: &Seat, relay: SocketAddr) -> R<()> {
    let mut tcp = dial(relay, [127, 0, 0, 2]).await?;
    let hello = format!("eve@localhost/forged {}\n", seat.peer_jid);
    // The server may close before it has read everything.
    let _ = step("forged hello", tcp.write_all(hello.as_bytes())).await?;
    expect_closed(&mut tcp, "close after a forged hello").await
}

// ---- hostile traffic ------------------------------------------------------------------

/// Logs in on a raw socket (SASL PLAIN, bind) so that hand-written XML can follow.
async fn raw_login(sh: &Shared, user: &str) -> R<TcpStream> {
    let mut tcp = ok("hostile c2s connect", TcpStream::connect(&sh.args.server)).await?;
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0'>",
        sh.args.domain
    );
    let mut seen = String::new();
    async fn until(tcp: &mut TcpStream, seen: &mut String, marks: &[&str]) -> R<String> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(m) = marks.iter().find(|m| seen.contains(**m)) {
                let m = m.to_string();
                seen.clear();
                return Ok(m);
            }
            match step("hostile login", tcp.read(&mut buf)).await? {
                Ok(0) => return Err(format!("closed during login after {seen:?}")),
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) => return Err(format!("hostile login: {e}")),
            }
        }
    }
    ok("stream header", tcp.write_all(header.as_bytes())).await?;
    until(&mut tcp, &mut seen, &["</stream:features>"]).await?;
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{}", sh.args.password));
    let auth =
        format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>");
    ok("auth", tcp.write_all(auth.as_bytes())).await?;
    if until(&mut tcp, &mut seen, &["<success", "<failure"]).await? != "<success" {
        return Err("hostile account: SASL failure".into());
    }
    ok("stream header", tcp.write_all(header.as_bytes())).await?;
    until(&mut tcp, &mut seen, &["</stream:features>"]).await?;
    let bind = "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                <resource>hostile</resource></bind></iq>";
    ok("bind", tcp.write_all(bind.as_bytes())).await?;
    until(&mut tcp, &mut seen, &["</iq>", "/>"]).await?;
    Ok(tcp)
}

/// The hostile stanza `HOSTILE_KINDS[kind]` with id `h<n>`, and whether it is an iq.
fn hostile_stanza(kind: usize, n: u64, domain: &str) -> (String, bool) {
    let deep = format!("{}{}", "<a>".repeat(DEEP), "</a>".repeat(DEEP));
    let long = |c: &str| c.repeat(LONG);
    match kind {
        0 => (
            format!("<message to='{domain}' id='h{n}'><x xmlns='urn:x'>{deep}</x></message>"),
            false,
        ),
        1 => (
            format!(
                "<iq type='get' to='{domain}' id='h{n}'>\
                 <query xmlns='http://jabber.org/protocol/disco#info'>{deep}</query></iq>"
            ),
            true,
        ),
        2 => (
            format!(
                "<iq type='get' to='{domain}' id='h{n}'><query xmlns='jabber:iq:dsps' \
                 type='create'><comment>{deep}</comment></query></iq>"
            ),
            true,
        ),
        3 => (
            format!("<presence to='{domain}/x' id='h{n}'><x xmlns='urn:x'>{deep}</x></presence>"),
            false,
        ),
        4 => (
            format!(
                "<iq type='get' to='{domain}' id='h{n}'><query \
                 xmlns='http://jabber.org/protocol/disco#info' node='{}'/></iq>",
                long("v")
            ),
            true,
        ),
        5 => (
            format!(
                "<message to='{domain}' id='h{n}'><{} xmlns='urn:x'/></message>",
                long("n")
            ),
            false,
        ),
        6 => (
            format!(
                "<message to='{domain}' id='h{n}'><x xmlns='urn:x' {}='1'/></message>",
                long("n")
            ),
            false,
        ),
        _ => (
            format!(
                "<iq type='get' to='{domain}' id='h{n}'><query xmlns='jabber:iq:dsps' \
                 type='create' minthroughput='{}'/></iq>",
                "9".repeat(100_000)
            ),
            true,
        ),
    }
}

/// Sends hostile stanzas every 250 ms until the deadline, logging in again (at most
/// 50 times) if the server closes the connection.
async fn hostile_xml(sh: Arc<Shared>, account: usize) {
    let user = format!("soak{account}");
    let mut n = 0u64;
    let mut logins = 0;
    while sh.running() && logins < 50 {
        logins += 1;
        let tcp = match raw_login(&sh, &user).await {
            Ok(t) => t,
            Err(e) => {
                sh.fail(format!("hostile login: {e}"));
                continue;
            }
        };
        if logins > 1 {
            add(&sh.figures.hostile_relogins, 1);
        }
        let (mut rd, mut wr) = tcp.into_split();
        let answered = Arc::new(Mutex::new(HashSet::new()));
        let reader = {
            let answered = Arc::clone(&answered);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut text = String::new();
                while let Ok(k) = rd.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    text.push_str(&String::from_utf8_lossy(&buf[..k]));
                    let ids = answered_iqs(&mut text);
                    answered.lock().unwrap().extend(ids);
                }
            })
        };
        let mut sent_iqs = Vec::new();
        let mut broken = false;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        while sh.running() {
            tick.tick().await;
            let kinds = &sh.args.hostile_kinds;
            let kind = HOSTILE_KINDS
                .iter()
                .position(|k| *k == kinds[n as usize % kinds.len()])
                .expect("main checked the kind names");
            let (stanza, is_iq) = hostile_stanza(kind, n, &sh.args.dsps);
            match tokio::time::timeout(STEP, wr.write_all(stanza.as_bytes())).await {
                Ok(Ok(())) => {
                    if is_iq {
                        sent_iqs.push(format!("h{n}"));
                        add(&sh.figures.hostile_iqs, 1);
                    }
                    n += 1;
                    add(&sh.figures.hostile_stanzas, 1);
                }
                _ => {
                    broken = true;
                    break;
                }
            }
        }
        // Every iq gets exactly one answer (RFC 6120), an over-bound one included:
        // wait (bounded) for the last answers before judging.
        let deadline = Instant::now() + STEP;
        let unanswered = loop {
            let missing: Vec<String> = {
                let a = answered.lock().unwrap();
                sent_iqs
                    .iter()
                    .filter(|id| !a.contains(*id))
                    .cloned()
                    .collect()
            };
            if missing.is_empty() || broken || Instant::now() > deadline {
                break missing;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        add(
            &sh.figures.hostile_iq_replies,
            (sent_iqs.len() - unanswered.len()) as u64,
        );
        if !broken && !unanswered.is_empty() {
            sh.fail(format!(
                "{} of {} hostile iqs got no answer, e.g. {:?}",
                unanswered.len(),
                sent_iqs.len(),
                &unanswered[..unanswered.len().min(5)]
            ));
        }
        let _ = wr.write_all(b"</stream:stream>").await;
        reader.abort();
    }
}

/// Takes the ids of the complete `<iq …>` start tags at the front of `text` that
/// answer our hostile iqs (ids `h<n>`), leaving an incomplete tag for the next read.
fn answered_iqs(text: &mut String) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = text.as_str();
    loop {
        let Some(at) = rest.find("<iq") else {
            // Keep what could be the start of "<iq".
            let keep = rest.len().min(2);
            let mut cut = rest.len() - keep;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            rest = &rest[cut..];
            break;
        };
        let tag = &rest[at..];
        let Some(end) = tag.find('>') else {
            rest = tag;
            break;
        };
        for quote in ['\'', '"'] {
            let key = format!(" id={quote}");
            if let Some(i) = tag[..end].find(&key) {
                let value = &tag[i + key.len()..end];
                if let Some(close) = value.find(quote) {
                    if value.starts_with('h') {
                        ids.push(value[..close].to_string());
                    }
                }
            }
        }
        rest = &tag[end..];
    }
    *text = rest.to_string();
    ids
}

/// Garbage on the relay port from 127.0.0.2: each connection must be closed within
/// the handshake timeout (plus slack).
async fn garbage(sh: Arc<Shared>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let relay: SocketAddr = match sh.args.relay_addr.parse() {
        Ok(a) => a,
        Err(_) => return,
    };
    let bound = Duration::from_millis(sh.args.handshake_ms) + Duration::from_secs(5);
    let mut count = 0u64;
    // At most 20 connections a second per task: enough to keep the relay's
    // handshake path busy without starving the legitimate peers of CPU.
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    while sh.running() && count < 100_000 {
        pace.tick().await;
        count += 1;
        let bytes: Vec<u8> = match rng.gen_range(0..6) {
            0 => {
                let n = rng.gen_range(1..8192);
                random_bytes(&mut rng, n)
            }
            1 => [vec![b'a'; 10_000], b"\n".to_vec()].concat(),
            2 => b"not a jid\n".to_vec(),
            3 => b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            4 => [b"starttls\n".to_vec(), random_bytes(&mut rng, 300)].concat(),
            _ => format!("a@b/c {}/{}\n", sh.args.dsps, rng.gen::<u64>()).into_bytes(),
        };
        let Ok(mut tcp) = dial(relay, [127, 0, 0, 2]).await else {
            continue;
        };
        add(&sh.figures.garbage_sockets, 1);
        let _ = tcp.write_all(&bytes).await;
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        let closed = loop {
            match tokio::time::timeout(bound.saturating_sub(started.elapsed()), tcp.read(&mut buf))
                .await
            {
                Err(_) => break false,
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(_)) => continue,
            }
        };
        if !closed {
            sh.fail(format!(
                "a garbage connection was still open after {bound:?}"
            ));
        }
    }
}

/// Slowloris from 127.0.0.3: one byte of a hello line every 500 ms. The server must
/// close each socket within the handshake timeout (plus slack).
async fn slowloris(sh: Arc<Shared>) {
    let relay: SocketAddr = match sh.args.relay_addr.parse() {
        Ok(a) => a,
        Err(_) => return,
    };
    let bound = Duration::from_millis(sh.args.handshake_ms) + Duration::from_secs(5);
    let line = format!("eve@localhost/slow {}/{}\n", sh.args.dsps, "z".repeat(200));
    let mut count = 0u64;
    while sh.running() && count < 100_000 {
        count += 1;
        let Ok(mut tcp) = dial(relay, [127, 0, 0, 3]).await else {
            continue;
        };
        add(&sh.figures.slowloris_sockets, 1);
        let started = Instant::now();
        let mut at = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut buf = [0u8; 256];
        let closed = loop {
            if started.elapsed() > bound {
                break false;
            }
            tokio::select! {
                r = tcp.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break true,
                    Ok(_) => {}
                },
                _ = tick.tick() => {
                    if at < line.len() && tcp.write_all(&line.as_bytes()[at..at + 1]).await.is_err() {
                        break true;
                    }
                    at += 1;
                }
            }
        };
        if !closed {
            sh.fail(format!(
                "a slowloris connection was still open after {bound:?}"
            ));
        }
    }
}

// ---- measurements and checks ----------------------------------------------------------

/// Resident memory of `pid` in KiB, or `None` when the process is gone.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    if status
        .lines()
        .any(|l| l.starts_with("State:") && l.contains("zombie"))
    {
        return None;
    }
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Every seat handed out must be gone: `who` and `stats` to it answer 404.
async fn check_seats(sh: &Shared, clients: &HashMap<String, DspsClient>) -> (usize, Vec<String>) {
    let seats = sh.seats.lock().unwrap().clone();
    let mut leaks = Vec::new();
    for chunk in seats.chunks(32) {
        let checks = chunk.iter().map(|(owner, peer)| async move {
            let Some(c) = clients.get(owner) else {
                return Some(format!("{peer}: no session for {owner}"));
            };
            for kind in ["who", "stats"] {
                match step(kind, c.request("get", peer, query::empty(kind))).await {
                    Ok(Err(ClientError::Dsps(Some(DspsError::ItemNotFound), _))) => {}
                    other => return Some(format!("{kind} to {peer} ({owner}): {other:?}")),
                }
            }
            None
        });
        leaks.extend(join_all(checks).await.into_iter().flatten());
    }
    (seats.len(), leaks)
}

/// The public listing (`stats` to the bare JID) must name no stream.
async fn public_streams(sh: &Shared, c: &DspsClient) -> R<usize> {
    let reply = ok(
        "public stats",
        c.xmpp()
            .request("get", &sh.args.dsps, query::empty("stats"), STEP),
    )
    .await?;
    Ok(reply
        .children()
        .filter(|q| q.is("query", NS_DSPS))
        .filter_map(|q| StatsResult::try_from(q).ok())
        .filter(|s| !s.peers.is_empty() || s.maxpublic > 0)
        .count())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(bad) = args
        .hostile_kinds
        .iter()
        .find(|k| !HOSTILE_KINDS.contains(&k.as_str()))
    {
        eprintln!("soak: unknown --hostile-kinds {bad:?}; known: {HOSTILE_KINDS:?}");
        return ExitCode::FAILURE;
    }
    if args.hostile_kinds.is_empty() {
        eprintln!("soak: --hostile-kinds needs at least one kind");
        return ExitCode::FAILURE;
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    let accounts = args.workers * (SLAVES_PER_WORKER + 1) + EXTRA_ACCOUNTS;
    eprintln!(
        "soak: {} workers, {:?}, seed {seed}, accounts soak1..soak{accounts}{}",
        args.workers,
        args.duration,
        if args.no_hostile_xml {
            ", no hostile XML"
        } else {
            ""
        }
    );
    let pid = args.dsps_pid;
    let Some(rss_start) = rss_kib(pid) else {
        eprintln!("soak: dsps (pid {pid}) is not running");
        return ExitCode::FAILURE;
    };
    let started = Instant::now();
    let sh = Arc::new(Shared {
        deadline: started + args.duration,
        args,
        figures: Figures::default(),
        seats: Mutex::new(Vec::new()),
        failures: Mutex::new(Vec::new()),
        aborted: Default::default(),
    });

    // RSS every 500 ms: the peak, and the "warm" sample a third of the way in.
    let rss = Arc::new(Mutex::new((rss_start, None::<u64>)));
    let sampler = {
        let (sh, rss) = (Arc::clone(&sh), Arc::clone(&rss));
        let warm_at = sh.args.duration / 3;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let Some(now) = rss_kib(pid) else {
                    sh.fail(format!(
                        "dsps (pid {pid}) died after {:?}",
                        started.elapsed()
                    ));
                    sh.aborted.store(true, Ordering::Relaxed);
                    break;
                };
                let mut r = rss.lock().unwrap();
                r.0 = r.0.max(now);
                if r.1.is_none() && started.elapsed() >= warm_at {
                    r.1 = Some(now);
                }
                if started.elapsed() > sh.args.duration + Duration::from_secs(600) {
                    break;
                }
            }
        })
    };

    let mut background = Vec::new();
    if !sh.args.no_hostile_xml {
        let hostile_account = sh.args.workers * (SLAVES_PER_WORKER + 1) + 1;
        background.push(tokio::spawn(hostile_xml(Arc::clone(&sh), hostile_account)));
    }
    for i in 0..GARBAGE_SOCKETS {
        background.push(tokio::spawn(garbage(
            Arc::clone(&sh),
            seed ^ (i as u64 + 1),
        )));
    }
    for _ in 0..SLOWLORIS_SOCKETS {
        background.push(tokio::spawn(slowloris(Arc::clone(&sh))));
    }

    let workers: Vec<_> = (0..sh.args.workers)
        .map(|n| {
            let sh = Arc::clone(&sh);
            tokio::spawn(async move {
                let mut w = match Worker::new(&sh, n, seed.wrapping_add(n as u64)).await {
                    Ok(w) => w,
                    Err(e) => {
                        sh.fail(format!("worker {n}: {e}"));
                        return None;
                    }
                };
                let mut i = 0;
                while sh.running() && i < MAX_ITERATIONS {
                    if let Err(e) = w.stream(&sh, i).await {
                        sh.fail(format!("worker {n} stream {i}: {e}"));
                        // Pace failures so a broken service is not hammered; then
                        // start again from fresh sessions (the old seats time out).
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        match Worker::new(&sh, n, seed.wrapping_add(n as u64 + i)).await {
                            Ok(fresh) => w = fresh,
                            Err(e) => {
                                sh.fail(format!("worker {n}: {e}"));
                                return None;
                            }
                        }
                    }
                    i += 1;
                }
                Some(w)
            })
        })
        .collect();
    let mut done = Vec::new();
    for w in workers {
        match tokio::time::timeout(sh.args.duration + Duration::from_secs(300), w).await {
            Ok(Ok(Some(w))) => done.push(w),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => sh.fail(format!("a worker panicked: {e}")),
            Err(_) => sh.fail("a worker did not finish within 5 minutes of the end".into()),
        }
    }
    for b in background {
        if tokio::time::timeout(Duration::from_secs(60), b)
            .await
            .is_err()
        {
            sh.fail("a hostile task did not stop within 60 s of the end".into());
        }
    }
    let elapsed = started.elapsed();

    // Abandoned seats (the failed iterations') need `wait` to go; ours all ended.
    let clients: HashMap<String, DspsClient> = done
        .iter()
        .flat_map(|w| w.sessions.iter().map(|s| (s.jid.clone(), s.dsps.clone())))
        .collect();
    let (checked, leaks) = check_seats(&sh, &clients).await;
    for l in leaks.iter().take(10) {
        sh.fail(format!("leaked seat: {l}"));
    }
    if let Some(c) = clients.values().next() {
        match public_streams(&sh, c).await {
            Ok(0) => {}
            Ok(n) => sh.fail(format!("the public listing still names {n} streams")),
            Err(e) => sh.fail(e),
        }
    } else {
        sh.fail("no worker survived to run the final checks".into());
    }

    let log = std::fs::read_to_string(&sh.args.dsps_log).unwrap_or_default();
    let lost = log.matches("component link lost").count();
    let online = log.matches("component online").count();
    let panics = log.matches("panicked").count() + log.matches("overflowed its stack").count();
    if lost > 0 || online != 1 || panics > 0 {
        sh.fail(format!(
            "dsps log: {lost} 'component link lost', {online} 'component online', {panics} panics"
        ));
    }
    let rss_end = rss_kib(pid);
    if rss_end.is_none() {
        sh.fail(format!("dsps (pid {pid}) is no longer running"));
    }
    sampler.abort();
    let (peak, warm) = *rss.lock().unwrap();
    let rss_end = rss_end.unwrap_or(0);
    let warm = warm.unwrap_or(rss_start);
    let mib = |k: u64| k as f64 / 1024.0;
    if rss_end > warm + sh.args.rss_growth_mib * 1024 {
        sh.fail(format!(
            "RSS grew from {:.1} MiB (warm) to {:.1} MiB (end), more than {} MiB",
            mib(warm),
            mib(rss_end),
            sh.args.rss_growth_mib
        ));
    }
    if peak > sh.args.rss_limit_mib * 1024 {
        sh.fail(format!(
            "RSS peaked at {:.1} MiB, over {} MiB",
            mib(peak),
            sh.args.rss_limit_mib
        ));
    }

    let f = &sh.figures;
    let errors = get(&f.errors);
    println!(
        "soak {}: {:.0} s, streams {}, peers {}, bytes sent {} received and verified {}, errors {}, \
         hostile stanzas {} (iqs {} answered {}, relogins {}), garbage sockets {}, slowloris {}, \
         wrong keys {}, forged hellos {}, reconnects {}, leaves {}, kicks {}, vanishes {}, \
         late invites {}, public joins {}, rejects {}, seats checked {checked}, \
         RSS start {:.1} MiB warm {:.1} MiB peak {:.1} MiB end {:.1} MiB, seed {seed}",
        if errors == 0 { "OK" } else { "FAILED" },
        elapsed.as_secs_f64(),
        get(&f.streams),
        get(&f.peers),
        get(&f.bytes_sent),
        get(&f.bytes_verified),
        errors,
        get(&f.hostile_stanzas),
        get(&f.hostile_iqs),
        get(&f.hostile_iq_replies),
        get(&f.hostile_relogins),
        get(&f.garbage_sockets),
        get(&f.slowloris_sockets),
        get(&f.wrong_keys),
        get(&f.forged_hellos),
        get(&f.reconnects),
        get(&f.leaves),
        get(&f.kicks),
        get(&f.vanishes),
        get(&f.late_joins),
        get(&f.public_joins),
        get(&f.rejects),
        mib(rss_start),
        mib(warm),
        mib(peak),
        mib(rss_end),
    );
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        for line in sh.failures.lock().unwrap().iter() {
            eprintln!("soak: failure: {line}");
        }
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_iqs_are_read_across_reads() {
        let mut text =
            "<message id='h1'/><iq type='error' id='h2' to='x'><error/></iq><i".to_string();
        assert_eq!(answered_iqs(&mut text), vec!["h2".to_string()]);
        assert_eq!(text, "<i");
        text.push_str("q from='d' id=\"h3\"/><iq id='other'/>");
        assert_eq!(answered_iqs(&mut text), vec!["h3".to_string()]);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert!(parse_duration("soon").is_err());
    }
}
