//! The component link survives the XMPP server: it retries with backoff while the
//! server is down and comes back online when it returns, logging each attempt.

mod common;

use std::time::Duration;

use common::dsps::{Component, Dsps};
use common::prosody::Prosody;
use common::scenario::{Rig, DOMAIN, PASSWORD};
use dsps::proto::query::CreateRequest;

const SECRET: &str = "link-test-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_reconnects_after_the_server_restarts() {
    let mut rig = Rig::start(SECRET, &["alice"], "");
    assert_eq!(rig.dsps.log().matches("component online").count(), 1);

    rig.prosody.stop();
    // While the server is down the link logs failed attempts with a retry delay.
    rig.dsps
        .wait_for_log_async("component login failed", Duration::from_secs(10))
        .await;
    rig.prosody.resume();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while rig.dsps.log().matches("component online").count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "component did not come back online:\n{}",
            rig.dsps.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        rig.dsps.log().contains("attempt=2"),
        "attempts are numbered in the log"
    );

    // And it serves again.
    let alice = rig.peer("alice").await;
    let seat = alice.create(&CreateRequest::default()).await;
    assert!(seat.peer_jid.starts_with("dsps.localhost/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_waits_for_a_server_that_is_not_up_yet() {
    // Not a Rig: a Rig waits for the component to come online.
    let mut prosody = Prosody::start(&[(DOMAIN, SECRET)], &[("alice", PASSWORD)]);
    prosody.stop();
    let dsps = Dsps::spawn(&prosody.component_addr, &Component::new(DOMAIN, SECRET));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dsps.log().matches("component login failed").count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retries logged:\n{}",
            dsps.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    prosody.resume();
    dsps.wait_for_log_async("component online", Duration::from_secs(20))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_the_component_stream_cleanly_and_exits_zero() {
    let mut rig = Rig::start(SECRET, &["alice"], "");
    let status = rig
        .dsps
        .terminate(Duration::from_secs(10))
        .expect("dsps exits within 10 s");
    let (dsps, prosody) = (&rig.dsps, &rig.prosody);
    assert!(status.success(), "exit status {status:?}\n{}", dsps.log());
    assert!(dsps.log().contains("shutting down"));
    // The server answered our footer with its own: everything we sent was read.
    assert!(
        dsps.log().contains("component link closed"),
        "{}",
        dsps.log()
    );
    assert!(
        !dsps.log().contains("without the server's footer"),
        "{}",
        dsps.log()
    );
    // Prosody saw the component leave (it words every close "(stream error)":
    // mod_component's session close always reports that reason).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !prosody.log().contains("component disconnected") {
        assert!(tokio::time::Instant::now() < deadline, "{}", prosody.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_server_may_be_a_host_name() {
    let prosody = Prosody::start(&[(DOMAIN, SECRET)], &[("alice", PASSWORD)]);
    let port = prosody.component_addr.rsplit_once(':').unwrap().1;
    // `localhost` resolves through the hosts file when the link dials.
    let dsps = Dsps::spawn(
        &format!("localhost:{port}"),
        &Component::new(DOMAIN, SECRET),
    );
    dsps.wait_for_log_async("component online", Duration::from_secs(15))
        .await;
    assert!(
        dsps.log().contains(&format!("server=localhost:{port}")),
        "the log names the server as configured:\n{}",
        dsps.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_name_that_does_not_resolve_is_logged_and_retried() {
    // `.invalid` never resolves (RFC 6761); no XMPP server is needed.
    let dsps = Dsps::spawn("dsps-test.invalid:5347", &Component::new(DOMAIN, SECRET));
    let needle = "component login failed: cannot resolve dsps-test.invalid:5347";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dsps.log().matches(needle).count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retried resolution failure logged:\n{}",
            dsps.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dsps.log().contains("attempt=2"), "{}", dsps.log());
}
