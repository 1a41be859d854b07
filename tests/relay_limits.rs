//! Fairness on the relay port, in-process: one source address cannot lock the
//! others out. Another source is simulated by binding the client socket to
//! 127.0.0.2 (all of 127/8 is loopback on Linux).

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use common::inproc::{closed_by_peer, dial, step, InProc};
use dsps::proto::query::Role;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const ALICE: &str = "alice@localhost/a";
const BOB: &str = "bob@localhost/b";
const CAROL: &str = "carol@localhost/c";

fn other() -> Option<IpAddr> {
    Some("127.0.0.2".parse().unwrap())
}

#[tokio::test]
async fn silent_sockets_from_one_address_lock_out_neither_another_address_nor_itself() {
    // The setting, scaled down: once 8 idle sockets from one address held
    // every place until the handshake timeout.
    let mut d = InProc::start(
        "max_connections = 8\nmax_pending_per_ip = 4",
        "[timeouts]\nhandshake = 60000\n",
    )
    .await;
    let alice = d.create(ALICE).await;
    let bob = d.invite(&alice, Role::Slave, BOB).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(dial(d.relay, None).await);
    }
    // Another address gets in, handshake and all.
    let _b = d.connect(&bob, other()).await;
    // So does the crowded address itself: its oldest silent socket makes room.
    let _a = d.connect(&alice, None).await;
    // Each newcomer closed the oldest silent socket of its address: the first 17.
    for (i, tcp) in idle.iter_mut().take(17).enumerate() {
        assert!(closed_by_peer(tcp).await, "idle socket {i} is still open");
    }
}

/// Collects what the service logs, for counting lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test]
async fn past_the_pending_limit_of_talking_handshakes_newcomers_are_refused_and_counted() {
    let log = Captured::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_env_filter("dsps=info")
        .finish();
    // One thread runs the test and the service, so this catches the service's log.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut d = InProc::start("max_pending_per_ip = 2", "[timeouts]\nhandshake = 60000\n").await;
    let alice = d.create(ALICE).await;
    let bob = d.invite(&alice, Role::Slave, BOB).await;
    let carol = d.invite(&alice, Role::Slave, CAROL).await;
    // Two handshakes from 127.0.0.1 that said hello and wait for their auth iq:
    // not silent, so neither is evicted.
    let mut talking = Vec::new();
    for seat in [&alice, &bob] {
        let mut io = BufReader::new(dial(d.relay, None).await);
        io.write_all(format!("{} {}\n", seat.jid, seat.peer_jid).as_bytes())
            .await
            .unwrap();
        let mut key1 = String::new();
        step("KEY1", io.read_line(&mut key1)).await.unwrap();
        assert!(key1.ends_with('\n'));
        talking.push(io);
    }
    const REFUSED: usize = 50;
    for i in 0..REFUSED {
        let mut tcp = dial(d.relay, None).await;
        assert!(closed_by_peer(&mut tcp).await, "newcomer {i} was let in");
    }
    // Another address is not affected.
    let _c = d.connect(&carol, other()).await;
    assert_eq!(
        log.lines("relay connections turned away").len(),
        1,
        "the first refusal is reported at once, the rest are held for the tally"
    );
    d.shutdown();
    d.stopped(std::time::Duration::from_secs(5)).await;
    let lines = log.lines("relay connections turned away");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].contains("refused=1 "), "{}", lines[0]);
    assert!(
        lines[1].contains(&format!("refused={} ", REFUSED - 1))
            && lines[1].contains("over_max_pending_per_ip=49")
            && lines[1].contains("last_source=127.0.0.1"),
        "{}",
        lines[1]
    );
}
