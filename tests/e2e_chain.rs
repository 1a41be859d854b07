//! Relay chains end to end (XEP "Stream Creation/Relay", "DSPS relay setup",
//! PROFILE 23): two DSPS components on one Prosody, each with its own relay port.
//! A master on the first reaches slaves on both through one relay link that the
//! second dials, with the key exchange carried by the relayer's XMPP client; bytes
//! are checked by sha256 at every slave, and the way back (a slave on the second
//! to the master on the first) is checked too, and the link's socket options.

mod common;

use common::blocks::{expect_message, read_message, read_payload};
use common::c2s::{within, STEP};
use common::dsps::Component;
use common::scenario::{dsps_error, Rig};
use common::sockets::established;
use dsps::client::session::{invite_slaves, ClientError, DspsClient, Seat};
use dsps::proto::error::DspsError;
use dsps::proto::query::{CreateRequest, RelayTarget, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

const NEAR: &str = "dsps-b.localhost";
const FAR: &str = "dsps-a.localhost";
const SECRET_FAR: &str = "chain-far-secret";
const SECRET_NEAR: &str = "chain-near-secret";
const PAYLOAD_LEN: usize = 8 * 1024 * 1024;

/// One Prosody with the far DSPS and the near one, which may dial the far one's
/// relay port (it advertises 127.0.0.1).
fn start() -> Rig {
    Rig::with(
        &["master", "relayer", "s1", "s2", "s3"],
        &[
            Component::new(FAR, SECRET_FAR),
            Component::new(NEAR, SECRET_NEAR).extra("allow_targets = [\"127.0.0.1\"]"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_on_one_dsps_reaches_slaves_on_two_through_one_relay_link() {
    let rig = start();
    let mut master = rig.peer_on("master", FAR).await;
    let mut relayer = rig.peer_on("relayer", FAR).await;
    let mut s1 = rig.peer_on("s1", FAR).await;
    let mut s2 = rig.peer_on("s2", NEAR).await;
    let mut s3 = rig.peer_on("s3", NEAR).await;

    // The far stream: master, with s1 and the relayer invited as slaves.
    let far_seat = master.create(&CreateRequest::default()).await;
    master
        .admin(
            &far_seat,
            &invite_slaves([relayer.jid.as_str(), s1.jid.as_str()]),
        )
        .await;
    let (relayer_far, s1_seat) = tokio::join!(relayer.accept_next(), s1.accept_next());
    let (mut master_r, mut master_w) = master.connect(&far_seat).await;
    let (s1_r, _s1_w) = s1.connect(&s1_seat).await;
    master.wait_for_presence("connect", &s1.jid).await;

    // The relayer asks the near DSPS to relay its far seat: a new stream there.
    let near_client = DspsClient::new(relayer.xmpp.clone(), NEAR);
    let near_seat = within(near_client.relay(&relayer_far, &[], &mut relayer.events))
        .await
        .expect("relay create on the near DSPS");
    assert!(near_seat.peer_jid.starts_with(&format!("{NEAR}/")));
    // The far stream sees one relay, shown by the near DSPS's domain.
    master.wait_for_presence("connect", NEAR).await;
    let who = master.who(&far_seat).await;
    let relay = who
        .peers
        .iter()
        .find(|p| p.role == Role::Relay)
        .unwrap_or_else(|| panic!("no relay in {who:?}"));
    assert_eq!(
        (relay.jid.as_str(), relay.status.as_str()),
        (NEAR, "connect")
    );
    let relay_id_far = relay.id.clone();
    let stats = master.stats(&far_seat).await;
    assert_eq!((stats.relaycount, stats.slavecount), (1, 1));

    // The near stream: the relayer (master) invites s2 and s3.
    within(near_client.admin(
        &near_seat,
        &invite_slaves([s2.jid.as_str(), s3.jid.as_str()]),
    ))
    .await
    .expect("invite on the near DSPS");
    let (s2_seat, s3_seat) = tokio::join!(s2.accept_next(), s3.accept_next());
    let (s2_r, mut s2_w) = s2.connect(&s2_seat).await;
    let (s3_r, _s3_w) = s3.connect(&s3_seat).await;
    relayer.wait_for_presence("connect", &s2.jid).await;
    relayer.wait_for_presence("connect", &s3.jid).await;
    let near_who = within(near_client.who(&near_seat)).await.expect("who near");
    let link = near_who
        .peers
        .iter()
        .find(|p| p.role == Role::Relay)
        .unwrap_or_else(|| panic!("no relay link in {near_who:?}"));
    assert_eq!((link.jid.as_str(), link.status.as_str()), (FAR, "connect"));
    let link_id = link.id.clone();

    // The master's data reaches s1 directly and s2, s3 through the link.
    let mut payload = vec![0u8; PAYLOAD_LEN];
    rand::thread_rng().fill_bytes(&mut payload);
    let want = Sha256::digest(&payload).to_vec();
    let receivers = [s1_r, s2_r, s3_r].map(|r| tokio::spawn(read_payload(r, PAYLOAD_LEN)));
    tokio::time::timeout(STEP * 6, master_w.write_all(&payload))
        .await
        .expect("send within 60 s")
        .expect("send");
    let mut results = Vec::new();
    for r in receivers {
        results.push(
            tokio::time::timeout(STEP * 6, r)
                .await
                .expect("receive within 60 s")
                .expect("receiver task"),
        );
    }
    let far_master_id = "0".to_string();
    assert_eq!(
        (&results[0].sha256, &results[0].ids),
        (&want, &vec![far_master_id]),
        "s1 on the far DSPS"
    );
    for (who, r) in ["s2", "s3"].iter().zip(&results[1..]) {
        assert_eq!(r.sha256, want, "{who}'s bytes differ");
        // Ids name the sender as the near stream knows it: the link.
        assert_eq!(r.ids, vec![link_id.clone()], "{who}'s blocks name the link");
    }

    // The way back: a near slave's data goes to the near masters (the link), and
    // from the relay, with slave rights, to the far masters.
    let back = b"from s2 on the near DSPS to the master on the far one";
    s2_w.write_all(back).await.expect("s2 writes");
    expect_message(&mut master_r, &relay_id_far, back, "the way back").await;
    assert!(
        rig.service(NEAR).log().contains("relay link connected"),
        "the near DSPS logged the link"
    );
    // The link's socket, dialled on loopback, got relay.loopback_congestion (reno by
    // default), and so did every connection the far DSPS accepted from this machine.
    if cfg!(target_os = "linux") {
        let far = rig.service(FAR);
        let far_relay = far.logged_addr("relay port listening", "relay");
        let to_far = established(&format!("( dport = :{} )", far_relay.port()));
        let near_pid = rig.service(NEAR).pid();
        let link: Vec<_> = to_far.iter().filter(|s| s.held_by(near_pid)).collect();
        assert_eq!(link.len(), 1, "one link socket in {to_far:?}");
        assert_eq!(link[0].congestion, "reno", "{:?}", link[0]);
        let accepted = established(&format!("( sport = :{} )", far_relay.port()));
        let accepted: Vec<_> = accepted.iter().filter(|s| s.held_by(far.pid())).collect();
        // The master, s1 and the link's far end.
        assert!(accepted.len() >= 3, "{accepted:?}");
        for s in accepted {
            assert_eq!(s.congestion, "reno", "{s:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_creates_that_cannot_be_carried_out_get_clear_errors() {
    let rig = start();
    let master = rig.peer_on("master", FAR).await;
    let mut relayer = rig.peer_on("relayer", FAR).await;
    let far_seat = master.create(&CreateRequest::default()).await;
    master
        .admin(&far_seat, &invite_slaves([relayer.jid.as_str()]))
        .await;
    let relayer_far: Seat = relayer.accept_next().await;
    let near_client = DspsClient::new(relayer.xmpp.clone(), NEAR);
    let create = |jid: &str, host: Option<&str>, port: u16| CreateRequest {
        relays: vec![RelayTarget {
            jid: jid.to_string(),
            port: Some(port),
            host: host.map(str::to_string),
        }],
        ..CreateRequest::default()
    };
    let port = relayer_far.info.port;

    // The far DSPS does not allow relays (no allow_targets): 405.
    let far_client = DspsClient::new(relayer.xmpp.clone(), FAR);
    let (c, text) =
        dsps_error(within(far_client.create(&create(&relayer_far.peer_jid, None, port))).await);
    assert_eq!(c, Some(DspsError::NotAllowed), "{text}");

    // A destination outside allow_targets: 403, naming the rule.
    let (c, text) =
        dsps_error(within(near_client.create(&create(&relayer_far.peer_jid, None, port))).await);
    assert_eq!(c, Some(DspsError::Forbidden), "{text}");
    assert!(text.contains("allow_targets"), "{text}");

    // Nothing listens there: 504.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (c, text) = dsps_error(
        within(near_client.create(&create(&relayer_far.peer_jid, Some("127.0.0.1"), closed))).await,
    );
    assert_eq!(c, Some(DspsError::RemoteServerTimeout), "{text}");

    // The far DSPS does not know the stream: it closes the hello, also 504.
    let unknown = format!("{FAR}/{}", "0".repeat(32));
    let (c, text) =
        dsps_error(within(near_client.create(&create(&unknown, Some("127.0.0.1"), port))).await);
    assert_eq!(c, Some(DspsError::RemoteServerTimeout), "{text}");
    assert!(text.contains("closed"), "{text}");

    // The first destination fails, the second works: the stream is made.
    let two = CreateRequest {
        relays: vec![
            RelayTarget {
                jid: unknown.clone(),
                port: Some(closed),
                host: Some("127.0.0.1".into()),
            },
            RelayTarget {
                jid: relayer_far.peer_jid.clone(),
                port: Some(port),
                host: Some("127.0.0.1".into()),
            },
        ],
        ..CreateRequest::default()
    };
    let near_seat = within(near_client.create(&two))
        .await
        .expect("second target works");
    let key = within(relayer.events.wait_for_relay_key(&near_seat.peer_jid, STEP))
        .await
        .expect("relay key request");
    assert!(!key.key1.is_empty());
}

/// A TCP forwarder on loopback whose connections the test can cut: it stands
/// between the two DSPS so a relay link can be broken without touching either.
struct Cutter {
    port: u16,
    cut: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Cutter {
    async fn start(to: u16) -> Cutter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(tokio::sync::Notify::new());
        let c = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut a, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut b) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = c.notified() => {}
                    }
                });
            }
        });
        Cutter { port, cut, task }
    }

    /// Breaks every connection open now.
    fn cut(&self) {
        self.cut.notify_waiters();
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_link_is_reconnected_by_the_relayer_with_the_same_credentials() {
    let rig = start();
    let mut master = rig.peer_on("master", FAR).await;
    let mut relayer = rig.peer_on("relayer", FAR).await;
    let mut s2 = rig.peer_on("s2", NEAR).await;
    let far_seat = master.create(&CreateRequest::default()).await;
    master
        .admin(&far_seat, &invite_slaves([relayer.jid.as_str()]))
        .await;
    let relayer_far = relayer.accept_next().await;
    let (_master_r, mut master_w) = master.connect(&far_seat).await;
    // The link goes through the cutter.
    let cutter = Cutter::start(relayer_far.info.port).await;
    let mut via_cutter = relayer_far.clone();
    via_cutter.info.port = cutter.port;
    let near_client = DspsClient::new(relayer.xmpp.clone(), NEAR);
    let near_seat = within(near_client.relay(&via_cutter, &[], &mut relayer.events))
        .await
        .expect("relay");
    master.wait_for_presence("connect", NEAR).await;
    within(near_client.admin(&near_seat, &invite_slaves([s2.jid.as_str()])))
        .await
        .expect("invite s2");
    let s2_seat = s2.accept_next().await;
    let (mut s2_r, _s2_w) = s2.connect(&s2_seat).await;
    relayer.wait_for_presence("connect", &s2.jid).await;

    let first = vec![7u8; 256 * 1024];
    master_w.write_all(&first).await.unwrap();
    let (_, got) = read_message(&mut s2_r, first.len()).await;
    assert_eq!(
        Sha256::digest(&got),
        Sha256::digest(&first),
        "before the cut"
    );

    cutter.cut();
    // Both sides see the relay wait: the far stream by the near domain, ours by the far.
    master.wait_for_presence("waiting", NEAR).await;
    relayer.wait_for_presence("waiting", FAR).await;

    within(near_client.reconnect_relay(&near_seat, &via_cutter, &mut relayer.events))
        .await
        .expect("reconnect");
    master.wait_for_presence("connect", NEAR).await;
    relayer.wait_for_presence("connect", FAR).await;
    let mut second = vec![0u8; 1024 * 1024];
    rand::thread_rng().fill_bytes(&mut second);
    master_w.write_all(&second).await.unwrap();
    let (_, got) = read_message(&mut s2_r, second.len()).await;
    assert_eq!(
        Sha256::digest(&got),
        Sha256::digest(&second),
        "after the reconnect"
    );
    // A second reconnect while connected is refused.
    let again =
        within(near_client.reconnect_relay(&near_seat, &via_cutter, &mut relayer.events)).await;
    assert!(
        matches!(
            again,
            Err(ClientError::Dsps(Some(DspsError::NotAllowed), _))
        ),
        "{again:?}"
    );
}
