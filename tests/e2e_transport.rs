//! The connection methods end to end, with the real binary: the HTTP preamble on the
//! `[http]` listener, STARTTLS with a certificate made at test time (and trusted by
//! the client as its root), both together, and IPv6 loopback (XEP "Connecting to
//! DSPS via HTTP method", "… via SSL method"; PROFILE 3, 12).
//!
//! The transfers run through a private Prosody; the refusals (a bad HTTP request,
//! `starttls` without `[tls]`) and the raw TLS checks only need the relay port, so
//! they run the binary with a component link that never comes up.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::blocks::read_payload;
use common::c2s::{within, STEP};
use common::dsps::{Component, Dsps};
use common::scenario::{create_and_invite, Peer, Rig, DOMAIN};
use dsps::client::session::DspsClient;
use dsps::client::transport::{trust_pem, ConnectOptions, RelayConn, Via};
use dsps::proto::query::{CreateRequest, Feature, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "transport-test-secret";
/// What the master sends in each transfer.
const PAYLOAD_LEN: usize = 4 * 1024 * 1024;
/// Bound on one whole transfer.
const TRANSFER: Duration = Duration::from_secs(60);

/// A certificate for `names` from `dsps gen-cert`'s code, in a temp dir kept by
/// the caller; returns (dir, cert, key).
fn cert_for(names: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let (cert, key) = dsps::certgen::write_pair(dir.path(), &names, false).expect("gen-cert");
    (dir, cert, key)
}

/// `[http]` and/or `[tls]` sections for the Dsps fixture.
fn sections(http: Option<&str>, tls: Option<(&Path, &Path)>) -> String {
    let mut s = String::new();
    if let Some(listen) = http {
        s += &format!("[http]\nlisten = \"{listen}\"\n");
    }
    if let Some((cert, key)) = tls {
        s += &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        );
    }
    s
}

fn http_addr(d: &Dsps) -> SocketAddr {
    d.logged_addr("HTTP listener listening", "http")
}

fn relay_addr(d: &Dsps) -> SocketAddr {
    d.logged_addr("relay port listening", "relay")
}

/// Waits (bounded by [`STEP`]) until the log holds `needle` exactly `n` times.
async fn wait_for_count(d: &Dsps, needle: &str, n: usize) {
    let start = Instant::now();
    while d.log().matches(needle).count() < n && start.elapsed() < STEP {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        d.log().matches(needle).count(),
        n,
        "{needle:?} in:\n{}",
        d.log()
    );
}

/// How to reach the relay: `via`, dialling `addr` instead of the advertised
/// address if given, trusting `tls` if given.
fn via(via: Via, addr: Option<&str>, tls: Option<&Arc<rustls::ClientConfig>>) -> ConnectOptions {
    ConnectOptions {
        via,
        addr: addr.map(str::to_string),
        tls: tls.cloned(),
        ..ConnectOptions::default()
    }
}

/// Waits until alice has heard `connect` for every JID in `jids`.
async fn wait_connected(alice: &mut Peer, jids: &[&str]) {
    let mut pending: BTreeSet<&str> = jids.iter().copied().collect();
    while !pending.is_empty() {
        let (_, push) = alice
            .next_presence(STEP)
            .await
            .unwrap_or_else(|| panic!("alice never heard connect for {pending:?}"));
        for (status, jid) in &push.peers {
            if status == "connect" {
                pending.remove(jid.as_str());
            }
        }
    }
}

/// Alice (already connected, `aw`) sends a random payload; every receiver must
/// get exactly it, from id 0. Prints each receiver's time.
async fn send_and_check(
    mut aw: impl tokio::io::AsyncWrite + Unpin,
    receivers: Vec<(&str, RelayConn)>,
) {
    let mut payload = vec![0u8; PAYLOAD_LEN];
    rand::thread_rng().fill_bytes(&mut payload);
    let want = Sha256::digest(&payload).to_vec();
    let tasks: Vec<_> = receivers
        .into_iter()
        .map(|(name, conn)| {
            let (r, w) = conn.into_split();
            (
                name,
                tokio::spawn(async move {
                    let out = read_payload(r, PAYLOAD_LEN).await;
                    drop(w);
                    out
                }),
            )
        })
        .collect();
    tokio::time::timeout(TRANSFER, async {
        aw.write_all(&payload).await?;
        aw.flush().await
    })
    .await
    .expect("send within the bound")
    .expect("send");
    for (name, task) in tasks {
        let got = tokio::time::timeout(TRANSFER, task)
            .await
            .unwrap_or_else(|_| panic!("{name} did not receive everything in time"))
            .expect("receiver task");
        assert_eq!(
            got.sha256, want,
            "{name}'s bytes differ from what alice sent"
        );
        assert_eq!(got.ids, ["0"], "{name}: sender ids");
        eprintln!("{name}: {PAYLOAD_LEN} bytes in {:?}", got.took());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slaves_via_http_starttls_and_both_receive_the_masters_bytes() {
    let (_certs, cert, key) = cert_for(&["127.0.0.1"]);
    let rig = Rig::start(
        SECRET,
        &["alice", "bob", "carol", "dave"],
        &sections(Some("127.0.0.1:0"), Some((&cert, &key))),
    );
    let http = http_addr(&rig.dsps).to_string();
    let tls = trust_pem(&cert).expect("the generated certificate is a root");
    let [mut alice, mut bob, mut carol, mut dave] =
        rig.peers(["alice", "bob", "carol", "dave"]).await;
    let (seat, seats) = create_and_invite(
        &alice,
        &CreateRequest::default(),
        &mut [
            (&mut bob, Role::Slave),
            (&mut carol, Role::Slave),
            (&mut dave, Role::Slave),
        ],
    )
    .await;
    let (_ar, aw) = alice.connect(&seat).await;
    let b = bob
        .connect_via(&seats[0], &via(Via::Http, Some(&http), None))
        .await;
    // The relay port and name as advertised: 127.0.0.1, which the certificate names.
    let c = carol
        .connect_via(&seats[1], &via(Via::Tls, None, Some(&tls)))
        .await;
    let d = dave
        .connect_via(&seats[2], &via(Via::HttpTls, Some(&http), Some(&tls)))
        .await;
    assert!(matches!(
        c.stream,
        dsps::client::transport::RelayStream::Tls(_)
    ));
    wait_connected(&mut alice, &[&bob.jid, &carol.jid, &dave.jid]).await;
    send_and_check(
        aw,
        vec![
            ("bob (http)", b),
            ("carol (tls)", c),
            ("dave (http+tls)", d),
        ],
    )
    .await;
    // Each way in is logged; TLS ones say so.
    wait_for_count(&rig.dsps, "relay peer attached", 4).await;
    assert_eq!(
        rig.dsps.log().matches("tls=true").count(),
        2,
        "{}",
        rig.dsps.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_runs_over_ipv6_loopback_plain_and_with_tls() {
    // Not a silent pass: without ::1 this test fails and says why.
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        panic!("IPv6 loopback [::1] is not available on this machine ({e}); this test needs it");
    }
    let (_certs, cert, key) = cert_for(&["::1"]);
    let extra = sections(Some("[::1]:0"), Some((&cert, &key)));
    let rig = Rig::with(
        &["alice", "bob", "carol"],
        &[Component::new(DOMAIN, SECRET)
            .relay("[::1]:0", "::1")
            .extra(&extra)],
    );
    let dsps = &rig.dsps;
    assert!(relay_addr(dsps).is_ipv6());
    let http = http_addr(dsps);
    assert!(http.is_ipv6(), "{http}");
    let [mut alice, mut bob, mut carol] = rig.peers(["alice", "bob", "carol"]).await;
    let (seat, seats) = create_and_invite(
        &alice,
        &CreateRequest::default(),
        &mut [(&mut bob, Role::Slave), (&mut carol, Role::Slave)],
    )
    .await;
    assert_eq!(seat.info.host, "::1", "the advertised host");
    // Alice dials the advertised "::1" as [::1]:port, the default method.
    let (_ar, aw) = alice.connect(&seat).await;
    let tls = trust_pem(&cert).expect("root");
    let b = bob
        .connect_via(&seats[0], &via(Via::Tls, None, Some(&tls)))
        .await;
    let http = http.to_string();
    let c = carol
        .connect_via(&seats[1], &via(Via::HttpTls, Some(&http), Some(&tls)))
        .await;
    wait_connected(&mut alice, &[&bob.jid, &carol.jid]).await;
    send_and_check(aw, vec![("bob (tls, v6)", b), ("carol (http+tls, v6)", c)]).await;
    let log = dsps.log();
    assert!(
        log.contains("peer=[::1]:"),
        "connections came from ::1:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_results_and_stats_advertise_exactly_the_enabled_features() {
    let (_certs, cert, key) = cert_for(&["127.0.0.1"]);
    let http = Feature {
        kind: "http".into(),
        version: "1.0".into(),
    };
    let ssl = Feature {
        kind: "ssl".into(),
        version: "1.3".into(),
    };
    let cases = [
        ("dsps-none.localhost", sections(None, None), vec![]),
        (
            "dsps-http.localhost",
            sections(Some("127.0.0.1:0"), None),
            vec![http.clone()],
        ),
        (
            "dsps-ssl.localhost",
            sections(None, Some((&cert, &key))),
            vec![ssl.clone()],
        ),
        (
            "dsps-both.localhost",
            sections(Some("127.0.0.1:0"), Some((&cert, &key))),
            vec![http, ssl],
        ),
    ];
    let components: Vec<Component> = cases
        .iter()
        .map(|(domain, extra, _)| Component::new(domain, SECRET).extra(extra))
        .collect();
    let rig = Rig::with(&["alice"], &components);
    let alice = rig.peer("alice").await;
    for (domain, _, want) in &cases {
        let client = DspsClient::new(alice.xmpp.clone(), domain);
        let seat = within(client.create(&CreateRequest::default()))
            .await
            .unwrap_or_else(|e| panic!("create on {domain}: {e}"));
        assert_eq!(&seat.info.features, want, "create result of {domain}");
        let stats = within(client.stats(&seat))
            .await
            .unwrap_or_else(|e| panic!("stats on {domain}: {e}"));
        assert_eq!(&stats.features, want, "stats of {domain}");
    }
}

/// Reads until the server closes (bounded); returns what it sent.
async fn read_until_closed(tcp: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    within(tcp.read_to_end(&mut got))
        .await
        .unwrap_or_else(|e| panic!("read failed: {e}"));
    got
}

#[tokio::test]
async fn malformed_http_requests_get_401_and_a_close() {
    let extra = sections(Some("127.0.0.1:0"), None);
    let d = Dsps::spawn("127.0.0.1:9", &Component::new(DOMAIN, SECRET).extra(&extra));
    let http = http_addr(&d);
    let oversize = format!(
        "GET /DSPS/STREAM/ HTTP/1.0\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(9000)
    );
    for (request, why) in [
        ("GET /wrong HTTP/1.0\r\n\r\n", "is not /DSPS/STREAM/"),
        ("POST /DSPS/STREAM/ HTTP/1.0\r\n\r\n", "is not GET"),
        (
            "GET /DSPS/STREAM/ HTTP/2\n\n",
            "is not HTTP/1.0 or HTTP/1.1",
        ),
        (
            "GET /DSPS/STREAM/ HTTP/1.0\r\nno colon\r\n\r\n",
            "malformed HTTP header",
        ),
        (oversize.as_str(), "longer than 8192 bytes"),
        (
            "GET /DSPS/STREAM/ HTTP/1.0\r\nHost: x\r\n",
            "connection closed inside",
        ),
        // The relay port's own first line is not an HTTP request.
        ("starttls\n", "malformed HTTP request line"),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(http).await.expect("dial");
        tcp.write_all(request.as_bytes()).await.expect("send");
        if why.contains("closed inside") {
            tcp.shutdown().await.expect("half-close");
        }
        let reply = read_until_closed(&mut tcp).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.starts_with("HTTP/1.0 401 Unauthorized\r\n"),
            "{request:?} got {reply:?}"
        );
        d.wait_for_log_async(why, STEP).await;
    }
    assert!(d.log().contains("answered HTTP 401"), "{}", d.log());
    // A valid request is answered 200; an unknown pair after it is then closed.
    let mut tcp = tokio::net::TcpStream::connect(http).await.expect("dial");
    tcp.write_all(
        b"GET /DSPS/STREAM/ HTTP/1.0\nHost: 127.0.0.1\n\nnobody@localhost/x dsps.localhost/none\n",
    )
    .await
    .expect("send");
    let reply = read_until_closed(&mut tcp).await;
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n",
        "200, then nothing for an unknown pair"
    );
}

#[tokio::test]
async fn starttls_without_tls_is_refused_with_a_log_line() {
    let extra = sections(Some("127.0.0.1:0"), None);
    let d = Dsps::spawn("127.0.0.1:9", &Component::new(DOMAIN, SECRET).extra(&extra));
    let ok = dsps::proto::http_preamble::OK_RESPONSE;
    for (addr, preamble, answer) in [
        (relay_addr(&d), "", ""),
        (http_addr(&d), "GET /DSPS/STREAM/ HTTP/1.0\r\n\r\n", ok),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("dial");
        tcp.write_all(format!("{preamble}starttls\n").as_bytes())
            .await
            .expect("send");
        let reply = read_until_closed(&mut tcp).await;
        assert_eq!(
            String::from_utf8_lossy(&reply),
            answer,
            "{addr}: closed with nothing more"
        );
    }
    // The line is written just after the socket closes: wait for both (bounded).
    let refused = "starttls refused: this DSPS has no [tls] certificate configured";
    wait_for_count(&d, refused, 2).await;
}

/// A sans-IO rustls client over a blocking socket: the ClientHello goes out in the
/// same write as `starttls\n`, so the relay reads both at once and must hand the
/// ClientHello bytes it buffered on to TLS. Returns the negotiated version.
fn tls_handshake_coalesced(
    addr: SocketAddr,
    versions: &[&'static rustls::SupportedProtocolVersion],
    roots: &Path,
) -> rustls::ProtocolVersion {
    let mut store = rustls::RootCertStore::empty();
    for c in dsps::relay::tls::read_certificates("ca", roots).expect("cert") {
        store.add(c).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(dsps::relay::tls::provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut sock = std::net::TcpStream::connect(addr).expect("dial");
    sock.set_read_timeout(Some(STEP)).expect("timeout");
    sock.set_write_timeout(Some(STEP)).expect("timeout");
    let mut first = b"starttls\n".to_vec();
    conn.write_tls(&mut first).expect("ClientHello");
    sock.write_all(&first).expect("one write");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("TLS handshake");
    }
    let version = conn.protocol_version().expect("negotiated");
    // Inside TLS, a hello for a pair that does not exist: the relay closes.
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"nobody@localhost/x dsps.localhost/none\n")
        .expect("hello inside TLS");
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no key line for an unknown pair: {rest:?}");
    version
}

#[tokio::test]
async fn a_client_hello_sent_with_starttls_is_not_lost_and_tls12_still_works() {
    let (_certs, cert, key) = cert_for(&["127.0.0.1"]);
    let extra = sections(None, Some((&cert, &key)));
    let d = Dsps::spawn("127.0.0.1:9", &Component::new(DOMAIN, SECRET).extra(&extra));
    let relay = relay_addr(&d);
    let v13 = tokio::task::spawn_blocking({
        let cert = cert.clone();
        move || tls_handshake_coalesced(relay, &[&rustls::version::TLS13], &cert)
    });
    assert_eq!(v13.await.expect("task"), rustls::ProtocolVersion::TLSv1_3);
    let v12 = tokio::task::spawn_blocking(move || {
        tls_handshake_coalesced(relay, &[&rustls::version::TLS12], &cert)
    });
    assert_eq!(v12.await.expect("task"), rustls::ProtocolVersion::TLSv1_2);
    d.wait_for_log_async("TLS established", STEP).await;
}
