//! The `dsps-client` binary end to end: a private Prosody, the real `dsps` binary and
//! `dsps-client` processes (plus library clients where a test needs a misbehaving
//! peer). Files and streams are checked by sha256, failures by their exit code and
//! their one line on stderr.
//!
//! Every wait is bounded: processes are killed by PID when a test ends, readiness is
//! a line a process prints (or an answered ping), never a sleep.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dsps::client::c2s::XmppClient;
use dsps::client::file_meta::FileMeta;
use dsps::client::session::{invite_slaves, DspsClient, DspsEvent, DspsEvents};
use dsps::proto::query::{AdminRequest, CreateRequest};
use minidom::Element;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use common::c2s::within;
use common::scenario::{Rig, DOMAIN, PASSWORD};

/// Unique per test file, so a stray instance can never accept our component.
const SECRET: &str = "cli-client-secret";
/// Bound on one client process's run.
const RUN: Duration = Duration::from_secs(40);
/// Bound on a client process getting ready (logged in, waiting).
const READY: Duration = Duration::from_secs(15);
/// The size of the random payloads.
const PAYLOAD: usize = 4 * 1024 * 1024;
/// What clients wait for peers (`--timeout`): short, so a broken test fails fast.
const PEER_TIMEOUT: &str = "20";

const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank"];

fn rig() -> Rig {
    Rig::start(SECRET, USERS, "")
}

/// A running `dsps-client`; killed by PID when dropped.
struct Client {
    child: Child,
    stderr_rx: mpsc::Receiver<String>,
    stderr: Vec<String>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    name: String,
}

/// How a finished client ended.
struct Outcome {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<String>,
}

impl Outcome {
    /// Asserts exit `code` and exactly one line on stderr, in our failure format.
    fn assert_failure(&self, code: i32, what: &str) -> String {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: expected exit {code}; stderr:\n{}",
            self.stderr.join("\n")
        );
        assert_eq!(
            self.stderr.len(),
            1,
            "{what}: expected one line on stderr, got:\n{}",
            self.stderr.join("\n")
        );
        let line = self.stderr[0].clone();
        assert!(line.starts_with("dsps-client: "), "{what}: {line}");
        line
    }

    fn assert_success(&self, what: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed; stderr:\n{}",
            self.stderr.join("\n")
        );
    }

    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Builds `dsps-client` with the login options for `user` on `rig`'s Prosody, which
/// requires STARTTLS: its self-signed certificate is trusted with `--ca`.
fn client_command(rig: &Rig, jid: &str, args: &[&str]) -> Command {
    let ca = rig.prosody.cert.display().to_string();
    command_trusting(rig, jid, &["--ca", &ca], args)
}

/// [`client_command`] with `trust` in place of `--ca <the server's certificate>`.
fn command_trusting(rig: &Rig, jid: &str, trust: &[&str], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsps-client"));
    cmd.args(trust)
        .args([
            "--server",
            &rig.prosody.c2s_addr,
            "--dsps",
            DOMAIN,
            "--timeout",
            PEER_TIMEOUT,
            "--jid",
            jid,
        ])
        .args(args)
        .env("DSPS_PASSWORD", PASSWORD)
        .env_remove("DSPS_JID")
        .env_remove("DSPS_SERVICE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl Client {
    fn spawn(mut cmd: Command, name: &str) -> Client {
        let mut child = cmd.spawn().expect("spawn dsps-client");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, stderr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stdout.read_to_end(&mut all);
            all
        });
        Client {
            child,
            stderr_rx,
            stderr: Vec::new(),
            stdout: Some(stdout),
            name: name.to_string(),
        }
    }

    fn run(rig: &Rig, jid: &str, args: &[&str], name: &str) -> Client {
        Client::spawn(client_command(rig, jid, args), name)
    }

    /// Waits (bounded) for a stderr line containing `needle`; returns it.
    fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.stderr.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_rx.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{} never printed {needle:?} within {timeout:?}; stderr:\n{}",
                    self.name,
                    self.stderr.join("\n")
                ),
            }
        }
    }

    /// The child's stdin (for `publish`).
    fn stdin(&mut self) -> std::process::ChildStdin {
        self.child.stdin.take().expect("piped stdin")
    }

    /// Waits (bounded by [`RUN`]) for the exit; collects the output.
    fn finish(&mut self) -> Outcome {
        let deadline = Instant::now() + RUN;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for dsps-client") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                while let Ok(l) = self.stderr_rx.recv_timeout(Duration::from_millis(100)) {
                    self.stderr.push(l);
                }
                panic!(
                    "{} did not exit within {RUN:?}; stderr:\n{}",
                    self.name,
                    self.stderr.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The reader threads end at EOF, which the exit brings.
        while let Ok(line) = self.stderr_rx.recv_timeout(Duration::from_secs(5)) {
            self.stderr.push(line);
        }
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().expect("stdout reader"))
            .unwrap_or_default();
        Outcome {
            code: status.code(),
            stdout,
            stderr: std::mem::take(&mut self.stderr),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn random_payload() -> Vec<u8> {
    let mut data = vec![0u8; PAYLOAD];
    rand::thread_rng().fill_bytes(&mut data);
    data
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn jid(user: &str, resource: &str) -> String {
    format!("{user}@localhost/{resource}")
}

fn dir_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .collect()
}

/// Logs a library client in as `user@localhost/<resource>`.
async fn library_login(rig: &Rig, user: &str, resource: &str) -> (XmppClient, DspsEvents) {
    let (xmpp, incoming) = within(XmppClient::connect_with(
        &jid(user, resource),
        PASSWORD,
        &common::c2s::tls_to(&rig.prosody),
    ))
    .await
    .unwrap_or_else(|e| panic!("library login as {user} failed: {e}"));
    let events = DspsEvents::new(xmpp.clone(), incoming);
    (xmpp, events)
}

/// A library sender (alice, resource `resource`) that offered `meta` to `receiver`
/// and holds its relay connection once the receiver has connected.
struct Offer {
    dsps: DspsClient,
    seat: dsps::client::session::Seat,
    reader: dsps::client::session::BlockReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

async fn offer_file(rig: &Rig, resource: &str, receiver: &str, meta: &FileMeta) -> Offer {
    let (alice, mut events) = library_login(rig, "alice", resource).await;
    wait_online(&alice, receiver).await;
    let dsps = DspsClient::new(alice.clone(), DOMAIN);
    let seat = within(dsps.create(&CreateRequest::default()))
        .await
        .expect("create");
    let invite = AdminRequest {
        comments: vec![meta.to_comment()],
        ..invite_slaves([receiver])
    };
    within(dsps.admin(&seat, &invite)).await.expect("invite");
    let (reader, writer) = within(dsps.connect(&seat, None))
        .await
        .expect("relay")
        .into_split();
    within(
        events.wait_for(
            Duration::from_secs(10),
            "the receiver connecting",
            |e| match e {
                DspsEvent::Presence { ref push, .. }
                    if push
                        .peers
                        .iter()
                        .any(|(s, j)| s == "connect" && j == receiver) =>
                {
                    std::ops::ControlFlow::Break(())
                }
                other => std::ops::ControlFlow::Continue(other),
            },
        ),
    )
    .await
    .expect("the receiver connects");
    Offer {
        dsps,
        seat,
        reader,
        writer,
    }
}

/// Pings `target` until it answers with a result (a `dsps-client` answers pings once
/// it is logged in), bounded by [`READY`].
async fn wait_online(xmpp: &XmppClient, target: &str) {
    let deadline = Instant::now() + READY;
    let ping = || Element::bare("ping", "urn:xmpp:ping");
    loop {
        if let Ok(reply) = xmpp.request("get", target, ping(), READY).await {
            if reply.attr("type") == Some("result") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{target} never came online");
        // Prosody answers at once for an offline JID; do not spin.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The HTTP listener's address, from the dsps log.
fn http_listener(rig: &Rig) -> String {
    rig.dsps.wait_for_log("HTTP listener listening", READY);
    let log = rig.dsps.log();
    let at = log.find("http=").expect("the HTTP listener is logged") + "http=".len();
    log[at..]
        .split_whitespace()
        .next()
        .expect("an address")
        .to_string()
}

/// Alice sends one file to bob, who connects to the relay through the HTTP
/// listener and STARTTLS, and carol, through STARTTLS on the relay port; alice
/// uses STARTTLS too. All trust the relay's self-signed certificate (`dsps gen-cert`).
#[test]
fn send_reaches_two_receivers() {
    let work = tempfile::tempdir().expect("temp dir");
    let (cert, key) =
        dsps::certgen::write_pair(&work.path().join("tls"), &["127.0.0.1".to_string()], false)
            .expect("relay certificate");
    let extra = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let rig = Rig::start(SECRET, USERS, &extra);
    let http = http_listener(&rig);
    let ca = cert.display().to_string();
    let input = work.path().join("payload.bin");
    let data = random_payload();
    std::fs::write(&input, &data).expect("write input");
    let mut receivers = Vec::new();
    let methods: [(&str, Vec<&str>); 2] = [
        (
            "bob",
            vec![
                "--via",
                "http+tls",
                "--relay-ca",
                &ca,
                "--relay-addr",
                &http,
            ],
        ),
        ("carol", vec!["--via", "tls", "--relay-ca", &ca]),
    ];
    for (user, via) in methods {
        let out = work.path().join(user);
        std::fs::create_dir(&out).expect("out dir");
        let mut args = via.clone();
        args.extend(["recv", "--out", out.to_str().expect("utf-8 path")]);
        let mut recv = Client::run(&rig, &jid(user, "recv"), &args, user);
        recv.wait_line("is waiting for an invitation", READY);
        receivers.push((recv, out));
    }
    let to_bob = jid("bob", "recv");
    let to_carol = jid("carol", "recv");
    // The sender's relay connection is TLS too (a master that leaves must see a
    // clean TLS end, not a truncation).
    let mut send = Client::run(
        &rig,
        &jid("alice", "send"),
        &[
            "--via",
            "tls",
            "--relay-ca",
            &ca,
            "send",
            input.to_str().expect("utf-8 path"),
            "--to",
            &to_bob,
            "--to",
            &to_carol,
        ],
        "send",
    );
    let sent = send.finish();
    sent.assert_success("send");
    let summary = sent.stdout_text();
    assert!(
        summary.starts_with(&format!("sent {PAYLOAD} bytes to 2 receivers in ")),
        "{summary}"
    );
    assert!(summary.trim_end().ends_with(&sha256(&data)), "{summary}");
    for (mut recv, out) in receivers {
        let got = recv.finish();
        got.assert_success(&recv.name);
        let file = out.join("payload.bin");
        let copy = std::fs::read(&file).expect("received file");
        assert_eq!(
            sha256(&copy),
            sha256(&data),
            "{} has other bytes",
            recv.name
        );
        assert_eq!(dir_entries(&out), vec![file], "only the file is left");
        assert!(got.stdout_text().contains(" OK: "), "{}", got.stdout_text());
    }
    // All three relay connections ran inside TLS.
    assert_eq!(
        rig.dsps.log().matches("tls=true").count(),
        3,
        "three TLS attachments:\n{}",
        rig.dsps.log()
    );
}

#[test]
fn publish_reaches_three_public_joiners() {
    let rig = rig();
    let data = random_payload();
    let mut cmd = client_command(&rig, &jid("alice", "pub"), &["publish", "--public", "3"]);
    cmd.stdin(Stdio::piped());
    let mut publish = Client::spawn(cmd, "publish");
    let line = publish.wait_line("public stream: ", READY);
    let public = line
        .split("public stream: ")
        .nth(1)
        .expect("the JID follows")
        .trim()
        .to_string();
    assert!(public.starts_with(&format!("{DOMAIN}/")), "{line}");
    let mut joiners: Vec<Client> = ["bob", "carol", "dave"]
        .iter()
        .map(|u| Client::run(&rig, &jid(u, "join"), &["join", "--public", &public], u))
        .collect();
    // publish reads standard input only once all three are connected.
    let mut stdin = publish.stdin();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        })
    };
    let published = publish.finish();
    writer.join().expect("stdin writer");
    published.assert_success("publish");
    assert!(
        published.stdout_text().starts_with(&format!(
            "published {PAYLOAD} bytes to at least 3 public readers"
        )),
        "{}",
        published.stdout_text()
    );
    for joiner in &mut joiners {
        let got = joiner.finish();
        got.assert_success(&joiner.name);
        assert_eq!(
            got.stdout.len(),
            PAYLOAD,
            "{} got a short stream",
            joiner.name
        );
        assert_eq!(
            sha256(&got.stdout),
            sha256(&data),
            "{} got other bytes",
            joiner.name
        );
    }
}

#[test]
fn login_failures_are_one_line_with_their_codes() {
    let rig = rig();
    // Wrong password: 3.
    let mut cmd = client_command(&rig, &jid("alice", "x"), &["streams"]);
    cmd.env("DSPS_PASSWORD", "not the password");
    let line = Client::spawn(cmd, "wrong password")
        .finish()
        .assert_failure(3, "wrong password");
    assert!(line.contains("logging in"), "{line}");

    // Nothing listens: 5.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = format!("127.0.0.1:{closed}");
    let mut cmd = client_command(&rig, &jid("alice", "x"), &["streams"]);
    cmd.args(["--server", &server]);
    let line = Client::spawn(cmd, "unreachable")
        .finish()
        .assert_failure(5, "unreachable server");
    assert!(line.contains(&server), "{line}");

    // The server's self-signed certificate is not among the system's roots: 4. The
    // "system" store is pinned to another certificate so the case does not depend
    // on the machine's CA bundle (rustls-native-certs reads SSL_CERT_FILE).
    let other = tempfile::tempdir().expect("temp dir");
    let (other_cert, _) =
        dsps::certgen::write_pair(other.path(), &["elsewhere.example".to_string()], false)
            .expect("another certificate");
    let mut cmd = command_trusting(&rig, &jid("alice", "x"), &[], &["streams"]);
    cmd.env("SSL_CERT_FILE", &other_cert)
        .env_remove("SSL_CERT_DIR");
    let line = Client::spawn(cmd, "untrusted")
        .finish()
        .assert_failure(4, "untrusted certificate");
    assert!(line.contains("not trusted"), "{line}");

    // --insecure takes any certificate (tests and labs only).
    let cmd = command_trusting(&rig, &jid("alice", "x"), &["--insecure"], &["streams"]);
    Client::spawn(cmd, "insecure")
        .finish()
        .assert_success("--insecure login");

    // A plaintext login to a server that requires TLS fails in one line.
    let cmd = command_trusting(&rig, &jid("alice", "x"), &["--plaintext"], &["streams"]);
    let outcome = Client::spawn(cmd, "plaintext").finish();
    assert_ne!(
        outcome.code,
        Some(0),
        "a plaintext login to a TLS-only server"
    );

    // No password anywhere (stdin is not a terminal): a usage error.
    let mut cmd = client_command(&rig, &jid("alice", "x"), &["streams"]);
    cmd.env_remove("DSPS_PASSWORD");
    let line = Client::spawn(cmd, "no password")
        .finish()
        .assert_failure(2, "no password");
    assert!(line.contains("DSPS_PASSWORD"), "{line}");

    // An empty DSPS_PASSWORD, or a password file that is not there: usage errors too.
    let mut cmd = client_command(&rig, &jid("alice", "x"), &["streams"]);
    cmd.env("DSPS_PASSWORD", "");
    let line = Client::spawn(cmd, "empty password")
        .finish()
        .assert_failure(2, "empty DSPS_PASSWORD");
    assert!(line.contains("empty"), "{line}");
    let mut cmd = client_command(
        &rig,
        &jid("alice", "x"),
        &["--password-file", "/nonexistent/pw", "streams"],
    );
    cmd.env_remove("DSPS_PASSWORD");
    Client::spawn(cmd, "missing password file")
        .finish()
        .assert_failure(2, "missing password file");

    // `who` on a seat that is not ours: the DSPS's 404 as a clear line.
    let seat = format!("{DOMAIN}/nosuchseat");
    let line = Client::run(&rig, &jid("alice", "x"), &["who", &seat], "who")
        .finish()
        .assert_failure(1, "who of an unknown seat");
    assert!(line.contains("no such seat"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_invitation_fails_send_with_6() {
    let rig = rig();
    let work = tempfile::tempdir().expect("temp dir");
    let input = work.path().join("payload.bin");
    std::fs::write(&input, b"a small file").expect("write input");
    // erin answers every invitation with drop.
    let (erin, mut erin_events) = library_login(&rig, "erin", "lib").await;
    let erin_dsps = DspsClient::new(erin.clone(), DOMAIN);
    let refuser = tokio::spawn(async move {
        let inv = erin_events
            .wait_for_invitation(Duration::from_secs(30))
            .await
            .expect("an invitation for erin");
        erin_dsps.answer(&inv, false).await.expect("reject");
    });
    let to = jid("erin", "lib");
    let input = input.to_str().expect("utf-8 path").to_string();
    let rig_ref = &rig;
    let outcome = tokio::task::block_in_place(|| {
        Client::run(
            rig_ref,
            &jid("alice", "send"),
            &["--quiet", "send", &input, "--to", &to],
            "send",
        )
        .finish()
    });
    let line = outcome.assert_failure(6, "send to a refuser");
    assert!(line.contains("rejected the invitation"), "{line}");
    within(refuser).await.expect("the refuser ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_mismatch_fails_recv_with_7_and_leaves_no_file() {
    let rig = rig();
    let out = tempfile::tempdir().expect("temp dir");
    let out_arg = out.path().to_str().expect("utf-8 path").to_string();
    let receiver = jid("frank", "recv");
    let mut recv = Client::run(
        &rig,
        &receiver,
        &["--quiet", "recv", "--out", &out_arg],
        "recv",
    );

    // A library sender whose metadata names the wrong digest.
    let data = random_payload();
    let meta = FileMeta {
        name: "payload.bin".into(),
        size: data.len() as u64,
        sha256: "00".repeat(32),
    };
    let offer = offer_file(&rig, "lib", &receiver, &meta).await;
    let (dsps, seat, mut reader, mut writer) = (offer.dsps, offer.seat, offer.reader, offer.writer);
    within(writer.write_all(&data)).await.expect("send data");
    within(writer.shutdown()).await.expect("half-close");
    while within(reader.next_block()).await.expect("read").is_some() {}
    within(dsps.leave(&seat)).await.expect("leave");

    let outcome = tokio::task::block_in_place(|| recv.finish());
    let line = outcome.assert_failure(7, "recv of a mislabelled file");
    assert!(line.contains("sha256 mismatch"), "{line}");
    assert_eq!(
        dir_entries(out.path()),
        Vec::<PathBuf>::new(),
        "no file is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_stats_show_a_public_stream_as_json() {
    let rig = rig();
    let (alice, _events) = library_login(&rig, "alice", "lib").await;
    let dsps = DspsClient::new(alice.clone(), DOMAIN);
    let comment = Element::builder("comment", "jabber:iq:dsps")
        .append("cli listing")
        .build();
    let seat = within(dsps.create(&CreateRequest {
        maxpublic: 2,
        comments: vec![comment],
        ..CreateRequest::default()
    }))
    .await
    .expect("create");
    let public = seat.info.public.clone().expect("the public JID");

    let rig_ref = &rig;
    let run = |args: &[&str], name: &str| {
        tokio::task::block_in_place(|| {
            Client::run(rig_ref, &jid("bob", "info"), args, name).finish()
        })
    };
    let listed = run(&["streams", "--json"], "streams");
    listed.assert_success("streams --json");
    let streams: serde_json::Value =
        serde_json::from_slice(&listed.stdout).expect("streams prints JSON");
    let entry = streams
        .as_array()
        .expect("an array of streams")
        .iter()
        .find(|s| s["jid"] == public.as_str())
        .unwrap_or_else(|| panic!("{public} is not listed: {streams}"));
    assert_eq!(entry["maxpublic"], 2, "{entry}");
    assert_eq!(entry["masters"], 1, "{entry}");
    assert_eq!(entry["comments"][0], "cli listing", "{entry}");

    let shown = run(&["stats", &public, "--json"], "stats");
    shown.assert_success("stats --json");
    let stats: serde_json::Value =
        serde_json::from_slice(&shown.stdout).expect("stats prints JSON");
    assert_eq!(stats["maxpublic"], 2, "{stats}");
    assert_eq!(stats["public"], 0, "{stats}");
    assert_eq!(stats["protocol"], "0.5", "{stats}");
    assert_eq!(stats["comments"][0], "cli listing", "{stats}");
    assert_eq!(stats["jid"], public.as_str(), "{stats}");
}

/// `publish --to` invites two readers who `join` by invitation (one only from the
/// publisher's account); both get standard input byte for byte.
#[test]
fn publish_to_invited_joiners() {
    let rig = rig();
    let data = random_payload();
    let mut joiners: Vec<Client> = [
        ("bob", vec!["join"]),
        ("carol", vec!["join", "--from", "alice@localhost"]),
    ]
    .into_iter()
    .map(|(u, args)| {
        let mut c = Client::run(&rig, &jid(u, "join"), &args, u);
        c.wait_line("is waiting for an invitation", READY);
        c
    })
    .collect();
    let (to_bob, to_carol) = (jid("bob", "join"), jid("carol", "join"));
    let mut cmd = client_command(
        &rig,
        &jid("alice", "pub"),
        &["publish", "--to", &to_bob, "--to", &to_carol],
    );
    cmd.stdin(Stdio::piped());
    let mut publish = Client::spawn(cmd, "publish");
    let mut stdin = publish.stdin();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        })
    };
    let published = publish.finish();
    writer.join().expect("stdin writer");
    published.assert_success("publish");
    for joiner in &mut joiners {
        let got = joiner.finish();
        got.assert_success(&joiner.name);
        assert_eq!(
            sha256(&got.stdout),
            sha256(&data),
            "{} got other bytes",
            joiner.name
        );
    }
}

/// Ctrl-C in the middle of a `recv` removes the partial file and says so in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_recv_leaves_no_partial_file() {
    let rig = rig();
    let out = tempfile::tempdir().expect("temp dir");
    let out_arg = out.path().to_str().expect("utf-8 path").to_string();
    let receiver = jid("erin", "recv");
    let mut recv = Client::run(
        &rig,
        &receiver,
        &["--quiet", "recv", "--out", &out_arg],
        "recv",
    );

    // A library sender that sends half the announced file, then waits.
    let data = random_payload();
    let meta = FileMeta {
        name: "half.bin".into(),
        size: data.len() as u64,
        sha256: sha256(&data),
    };
    let mut offer = offer_file(&rig, "lib2", &receiver, &meta).await;
    let writer = &mut offer.writer;
    within(writer.write_all(&data[..data.len() / 2]))
        .await
        .expect("send half");
    // Wait (bounded) until the partial file holds what was sent.
    let deadline = Instant::now() + READY;
    loop {
        let part: u64 = dir_entries(out.path())
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        // (The receiver writes through a buffer, so not quite all of it may show.)
        if part >= (data.len() / 4) as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the partial file never grew ({part} bytes)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &recv.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let outcome = tokio::task::block_in_place(|| recv.finish());
    let line = outcome.assert_failure(130, "interrupted recv");
    assert!(line.contains("interrupted"), "{line}");
    assert_eq!(
        dir_entries(out.path()),
        Vec::<PathBuf>::new(),
        "the partial file is removed"
    );
}
