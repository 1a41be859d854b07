//! SIGHUP reloads the `[tls]` certificate without dropping streams: a stream runs
//! over TLS with certificate A, the files are replaced with B and dsps gets SIGHUP;
//! a new TLS connection is then served B (its peer certificate is compared byte
//! for byte), and the running stream's bytes still all arrive (sha256). A broken
//! file on the next SIGHUP keeps B and logs one error line.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::blocks::read_payload;
use common::c2s::{within, STEP};
use common::scenario::{alice_streams_to_bob, Rig};
use dsps::client::transport::{trust_pem, ConnectOptions, Via};
use rand::RngCore;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

const SECRET: &str = "ops-tls-reload-secret";
/// Bytes alice sends before the reload and again after it.
const HALF: usize = 2 * 1024 * 1024;
/// Bound on the whole transfer.
const TRANSFER: Duration = Duration::from_secs(60);

/// A self-signed pair for 127.0.0.1 (what the relay is advertised as).
fn pair() -> dsps::certgen::GeneratedPair {
    dsps::certgen::self_signed(&["127.0.0.1".to_string()]).expect("certificate")
}

fn install(dir: &Path, p: &dsps::certgen::GeneratedPair) {
    std::fs::write(dir.join("cert.pem"), &p.cert_pem).expect("write cert");
    std::fs::write(dir.join("key.pem"), &p.key_pem).expect("write key");
}

/// The DER of the first certificate in `pem`.
fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .expect("one certificate")
        .expect("valid PEM")
        .to_vec()
}

/// A new connection to the relay port: `starttls`, then a TLS handshake trusting
/// `roots`; returns the certificate the relay presented.
async fn served_certificate(
    relay: std::net::SocketAddr,
    roots: &Arc<rustls::ClientConfig>,
) -> Vec<u8> {
    let mut tcp = within(tokio::net::TcpStream::connect(relay))
        .await
        .expect("dial the relay");
    tcp.write_all(b"starttls\n").await.expect("starttls");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let tls = within(tokio_rustls::TlsConnector::from(roots.clone()).connect(name, tcp))
        .await
        .expect("TLS handshake with a trusted certificate");
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("the relay presents a certificate")
        .to_vec()
}

/// Waits (bounded by [`STEP`]) until the log holds `needle` `n` times.
async fn wait_for_count(rig: &Rig, needle: &str, n: usize) {
    let start = Instant::now();
    while rig.dsps.log().matches(needle).count() < n && start.elapsed() < STEP {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        rig.dsps.log().matches(needle).count(),
        n,
        "{needle:?}:\n{}",
        rig.dsps.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_serves_the_new_certificate_to_new_connections_and_keeps_streams() {
    let files = tempfile::tempdir().expect("temp dir");
    let (a, b) = (pair(), pair());
    install(files.path(), &a);
    // Clients trust both, so the handshake succeeds either way and the test
    // reads which one the relay chose.
    let both = files.path().join("both.pem");
    std::fs::write(&both, format!("{}{}", a.cert_pem, b.cert_pem)).expect("write roots");
    let roots = trust_pem(&both).expect("roots");
    let trust_a = {
        let p = files.path().join("a.pem");
        std::fs::write(&p, &a.cert_pem).expect("write a");
        trust_pem(&p).expect("a")
    };
    let extra = format!(
        "[tls]\ncert = \"{0}/cert.pem\"\nkey = \"{0}/key.pem\"\n",
        files.path().display()
    );
    let rig = Rig::start(SECRET, &["alice", "bob"], &extra);
    let relay = rig.dsps.logged_addr("relay port listening", "relay");
    assert_eq!(served_certificate(relay, &roots).await, der(&a.cert_pem));

    let (mut alice, bob, seat, b_seat) = alice_streams_to_bob(&rig).await;
    let (_ar, mut aw) = alice.connect(&seat).await;
    let tls_a = ConnectOptions {
        via: Via::Tls,
        tls: Some(trust_a),
        ..ConnectOptions::default()
    };
    let conn = bob.connect_via(&b_seat, &tls_a).await;
    let (br, _bw) = conn.into_split();
    // Data sent before bob is on the data path would not be his.
    alice.wait_for_presence("connect", &bob.jid).await;
    let reader = tokio::spawn(read_payload(br, 2 * HALF));
    let mut payload = vec![0u8; 2 * HALF];
    rand::thread_rng().fill_bytes(&mut payload);
    let want = Sha256::digest(&payload).to_vec();
    within(aw.write_all(&payload[..HALF]))
        .await
        .expect("first half");

    // Mid-stream: B replaces A on disk, then SIGHUP.
    install(files.path(), &b);
    let hup = Instant::now();
    rig.dsps.signal("HUP");
    wait_for_count(&rig, "SIGHUP: TLS certificate reloaded", 1).await;
    eprintln!("reload logged {:?} after SIGHUP", hup.elapsed());
    assert_eq!(
        served_certificate(relay, &roots).await,
        der(&b.cert_pem),
        "a new connection gets the new certificate"
    );

    tokio::time::timeout(TRANSFER, aw.write_all(&payload[HALF..]))
        .await
        .expect("second half within the bound")
        .expect("second half");
    let got = tokio::time::timeout(TRANSFER, reader)
        .await
        .expect("bob got everything in time")
        .expect("reader task");
    assert_eq!(
        got.sha256, want,
        "the stream over certificate A kept every byte"
    );

    // A broken file: one error line, B stays.
    std::fs::write(files.path().join("cert.pem"), "not a certificate\n").expect("break cert");
    rig.dsps.signal("HUP");
    wait_for_count(
        &rig,
        "SIGHUP: TLS reload failed, keeping the previous certificate",
        1,
    )
    .await;
    let log = rig.dsps.log();
    let line = log
        .lines()
        .find(|l| l.contains("TLS reload failed"))
        .expect("just seen");
    assert!(
        line.contains("ERROR") && line.contains("tls.cert"),
        "{line}"
    );
    assert_eq!(served_certificate(relay, &roots).await, der(&b.cert_pem));
    assert_eq!(
        rig.dsps
            .log()
            .matches("SIGHUP: TLS certificate reloaded")
            .count(),
        1,
        "the broken file was not taken"
    );
}
