//! The `[metrics]` endpoint through a real Prosody and the real binary: a known
//! transfer (1 MiB from a master to two slaves), then the endpoint is scraped
//! over HTTP and its counters and gauges compared with what moved.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::blocks::read_payload;
use common::c2s::within;
use common::scenario::Rig;
use dsps::client::session::{invite_slaves, DspsEvent};
use dsps::proto::query::CreateRequest;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "metrics-test-secret";
const PAYLOAD_LEN: usize = 1024 * 1024;
/// Bound on waiting for a metric to reach a value.
const SETTLE: Duration = Duration::from_secs(10);

/// One HTTP request to the endpoint; returns the status line and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect to metrics");
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        tcp.write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.expect("read answer");
        answer
    };
    let answer = within(exchange).await;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {answer:?}"));
    let status = head.lines().next().unwrap_or_default().to_string();
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{head}"
    );
    (status, body.to_string())
}

/// The samples of a scrape, by series (name and labels as rendered).
struct Samples(HashMap<String, f64>, String);

impl Samples {
    fn parse(body: String) -> Samples {
        let map = body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect();
        Samples(map, body)
    }

    fn get(&self, series: &str) -> f64 {
        *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.1))
    }

    fn peers(&self, role: &str, status: &str) -> f64 {
        self.get(&format!(
            "dsps_peers{{role=\"{role}\",status=\"{status}\"}}"
        ))
    }
}

async fn scrape(addr: SocketAddr) -> Samples {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    Samples::parse(body)
}

/// Scrapes until `ok` holds, for at most [`SETTLE`]; panics with the last scrape.
async fn scrape_until(addr: SocketAddr, what: &str, ok: impl Fn(&Samples) -> bool) -> Samples {
    let start = Instant::now();
    loop {
        let s = scrape(addr).await;
        if ok(&s) {
            return s;
        }
        if start.elapsed() > SETTLE {
            panic!("metrics never showed {what} within {SETTLE:?}:\n{}", s.1);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_known_transfer_shows_in_the_metrics() {
    let rig = Rig::start(
        SECRET,
        &["alice", "bob", "carol"],
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let addr = rig
        .dsps
        .logged_addr("metrics endpoint listening", "metrics");
    let relay = rig.dsps.logged_addr("relay port listening", "relay");

    // Before anything: the link is up, nothing has moved.
    let s = scrape(addr).await;
    assert_eq!(s.get("dsps_link_up"), 1.0);
    assert_eq!(s.get("dsps_link_reconnects_total"), 0.0);
    assert_eq!(s.get("dsps_streams"), 0.0);
    assert_eq!(s.get("dsps_received_bytes_total"), 0.0);
    assert_eq!(s.get("dsps_handshakes_total{outcome=\"ok\"}"), 0.0);
    let (status, body) = get(addr, "/other").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found", "{body}");

    // A connection whose hello line is garbage is a failed handshake.
    let mut bad = TcpStream::connect(relay).await.unwrap();
    bad.write_all(b"not a hello line\n").await.unwrap();
    scrape_until(addr, "one failed handshake", |s| {
        s.get("dsps_handshakes_total{outcome=\"failed\"}") == 1.0
    })
    .await;

    let [mut alice, mut bob, mut carol] = rig.peers(["alice", "bob", "carol"]).await;
    let seat = alice.create(&CreateRequest::default()).await;
    alice
        .admin(
            &seat,
            &invite_slaves([bob.jid.as_str(), carol.jid.as_str()]),
        )
        .await;
    let (bob_seat, carol_seat) = tokio::join!(bob.accept_next(), carol.accept_next());
    let (_ar, mut aw) = alice.connect(&seat).await;
    let (br, _bw) = bob.connect(&bob_seat).await;
    let (cr, _cw) = carol.connect(&carol_seat).await;
    let mut connected = 0;
    while connected < 2 {
        match alice.event().await {
            DspsEvent::Presence { push, .. } => connected += push.peers.len(),
            other => panic!("alice expected presence pushes, got {other:?}"),
        }
    }
    // Each connection counts its handshake once it has its Attach, a moment after
    // the registry sent the presence pushes.
    let s = scrape_until(addr, "three good handshakes", |s| {
        s.get("dsps_handshakes_total{outcome=\"ok\"}") == 3.0
    })
    .await;
    assert_eq!(s.get("dsps_streams"), 1.0, "{}", s.1);
    assert_eq!(s.peers("master", "connect"), 1.0, "{}", s.1);
    assert_eq!(s.peers("slave", "connect"), 2.0, "{}", s.1);
    assert_eq!(s.peers("slave", "wait"), 0.0, "{}", s.1);

    let mut payload = vec![0u8; PAYLOAD_LEN];
    rand::thread_rng().fill_bytes(&mut payload);
    let want = Sha256::digest(&payload).to_vec();
    let bob_rx = tokio::spawn(read_payload(br, PAYLOAD_LEN));
    let carol_rx = tokio::spawn(read_payload(cr, PAYLOAD_LEN));
    within(aw.write_all(&payload)).await.expect("send");
    let bob_got = within(bob_rx).await.unwrap();
    let carol_got = within(carol_rx).await.unwrap();
    assert_eq!(bob_got.sha256, want);
    assert_eq!(carol_got.sha256, want);

    // Alice leaves: the stream ends, its seats go.
    alice.leave(&seat).await;
    let s = scrape_until(addr, "the stream's end", |s| {
        s.get("dsps_streams") == 0.0 && s.peers("slave", "connect") == 0.0
    })
    .await;
    let seats: f64 =
        s.0.iter()
            .filter(|(k, _)| k.starts_with("dsps_peers{"))
            .map(|(_, v)| v)
            .sum();
    assert_eq!(seats, 0.0, "{}", s.1);
    let payload = PAYLOAD_LEN as f64;
    assert_eq!(s.get("dsps_received_bytes_total"), payload, "{}", s.1);
    let blocks = s.get("dsps_blocks_total");
    // At most relay.block_size (16 KiB) per block, at least one byte.
    assert!((payload / 16384.0..=payload).contains(&blocks), "{}", s.1);
    // Each slave got every block: its data and a header `0<size>0\n0\n` of 6 to
    // 10 bytes (size up to 16386 in decimal, exponent 0, id "0").
    let sent = s.get("dsps_sent_bytes_total");
    let (low, high) = (
        2.0 * (payload + 6.0 * blocks),
        2.0 * (payload + 10.0 * blocks),
    );
    assert!(
        (low..=high).contains(&sent),
        "sent {sent} not in {low}..={high}:\n{}",
        s.1
    );
    assert_eq!(s.get("dsps_handshakes_total{outcome=\"ok\"}"), 3.0);
    assert_eq!(s.get("dsps_handshakes_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(s.get("dsps_slow_peer_disconnects_total"), 0.0);
    assert_eq!(s.get("dsps_timeouts_total{kind=\"handshake\"}"), 0.0);
    assert_eq!(s.get("dsps_link_up"), 1.0);
    drop(bad);
}
