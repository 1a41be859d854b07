//! The c2s client against a real Prosody that requires encryption: STARTTLS login,
//! iq round trips through the server and between two clients, wrong passwords, an
//! untrusted certificate, a plaintext attempt, closing, and fixtures side by side.

mod common;

use std::time::{Duration, Instant};

use dsps::client::c2s::{C2sError, ConnectOptions, Security, XmppClient};
use minidom::Element;

use common::c2s::{login, tls_to, within, STEP};
use common::prosody::Prosody;

const NS_PING: &str = "urn:xmpp:ping";
const NS_TEST: &str = "urn:example:dsps:test";

fn users() -> [(&'static str, &'static str); 2] {
    [("alice", "alice-pw"), ("bob", "bob-pw")]
}

fn start() -> Prosody {
    Prosody::start(&[("dsps.localhost", "test-secret")], &users())
}

#[tokio::test]
async fn ping_to_server_gets_result() {
    let prosody = start();
    let (alice, _incoming) = login(&prosody, "alice", "alice-pw").await;
    assert_eq!(alice.jid(), "alice@localhost/test");

    let reply = alice
        .request("get", "localhost", Element::bare("ping", NS_PING), STEP)
        .await
        .unwrap_or_else(|e| panic!("ping failed: {e}\n{}", prosody.log()));
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(reply.attr("from"), Some("localhost"));
}

#[tokio::test]
async fn iq_set_reaches_other_client_without_presence() {
    let prosody = start();
    let (alice, _alice_in) = login(&prosody, "alice", "alice-pw").await;
    let (bob, mut bob_in) = login(&prosody, "bob", "bob-pw").await;

    let payload = Element::builder("query", NS_TEST)
        .append(Element::bare("hello", NS_TEST))
        .build();
    let bob_side = async {
        let push = within(bob_in.next()).await.expect("bob's stream ended");
        assert_eq!(push.attr("type"), Some("set"));
        assert_eq!(push.attr("from"), Some(alice.jid()));
        assert!(push.has_child("query", NS_TEST));
        let answer = Element::bare("answer", NS_TEST);
        within(bob.reply_result(&push, Some(answer)))
            .await
            .unwrap_or_else(|e| panic!("bob's reply failed: {e}"));
    };
    let (reply, ()) = tokio::join!(alice.request("set", bob.jid(), payload, STEP), bob_side);

    let reply = reply.unwrap_or_else(|e| panic!("alice's request failed: {e}"));
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(reply.attr("from"), Some(bob.jid()));
    assert!(reply.has_child("answer", NS_TEST));
}

#[tokio::test]
async fn iq_to_offline_resource_returns_error_iq() {
    let prosody = start();
    let (alice, _incoming) = login(&prosody, "alice", "alice-pw").await;

    let to = "bob@localhost/nowhere";
    let reply = alice
        .request("get", to, Element::bare("ping", NS_PING), STEP)
        .await
        .unwrap_or_else(|e| panic!("request failed: {e}"));
    assert_eq!(reply.attr("type"), Some("error"));
    assert_eq!(reply.attr("from"), Some(to));
}

#[tokio::test]
async fn wrong_password_fails_auth_quickly() {
    let prosody = start();
    let started = Instant::now();
    let result = within(XmppClient::connect_with(
        "alice@localhost/test",
        "not-the-password",
        &tls_to(&prosody),
    ))
    .await;
    match result {
        Err(C2sError::Auth(reason)) => assert!(reason.contains("not-authorized"), "{reason}"),
        Err(e) => panic!("expected an auth error, got: {e}"),
        Ok(_) => panic!("login with a wrong password succeeded"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_certificate_nobody_vouches_for_is_refused_and_insecure_takes_it() {
    let prosody = start();
    // Another self-signed certificate: the server's is not among the roots.
    let other = tempfile::tempdir().unwrap();
    let (other_cert, _) =
        dsps::certgen::write_pair(other.path(), &["localhost".to_string()], false).unwrap();
    let untrusted = ConnectOptions {
        server: Some(prosody.c2s_addr.clone()),
        security: Security::Tls(dsps::client::tls::trust_pem(&other_cert).unwrap()),
    };
    let result = within(XmppClient::connect_with(
        "alice@localhost/test",
        "alice-pw",
        &untrusted,
    ))
    .await;
    match result {
        Err(C2sError::Tls(why)) => assert!(why.contains("not trusted"), "{why}"),
        Err(e) => panic!("expected a TLS error, got: {e}"),
        Ok(_) => panic!("an untrusted certificate was accepted"),
    }
    let insecure = ConnectOptions {
        server: Some(prosody.c2s_addr.clone()),
        security: Security::Tls(dsps::client::tls::insecure()),
    };
    let (alice, _in) = within(XmppClient::connect_with(
        "alice@localhost/test",
        "alice-pw",
        &insecure,
    ))
    .await
    .unwrap_or_else(|e| panic!("--insecure login failed: {e}"));
    assert_eq!(alice.jid(), "alice@localhost/test");
}

#[tokio::test]
async fn a_plaintext_login_to_a_server_that_requires_tls_fails_clearly() {
    let prosody = start();
    let result = within(XmppClient::connect(
        &prosody.c2s_addr,
        "alice@localhost/test",
        "alice-pw",
    ))
    .await;
    // Prosody offers no SASL before TLS; PLAIN would be refused by us anyway.
    match result {
        Err(C2sError::Auth(why)) => {
            assert!(why.contains("mechanism") || why.contains("TLS"), "{why}")
        }
        Err(e) => panic!("expected an auth error, got: {e}"),
        Ok(_) => panic!("logged in without TLS"),
    }
}

#[tokio::test]
async fn close_ends_incoming_and_later_requests() {
    let prosody = start();
    let (bob, mut bob_in) = login(&prosody, "bob", "bob-pw").await;

    within(bob.close()).await;
    assert!(within(bob_in.next()).await.is_none());
    let after = bob
        .request("get", "localhost", Element::bare("ping", NS_PING), STEP)
        .await;
    assert!(matches!(after, Err(C2sError::Closed)), "{after:?}");
}

#[tokio::test]
async fn two_fixtures_run_side_by_side() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(start);
        let b = s.spawn(start);
        (a.join(), b.join())
    });
    let (a, b) = (a.expect("first fixture"), b.expect("second fixture"));
    assert_ne!(a.c2s_addr, b.c2s_addr);
    assert_ne!(a.component_addr, b.component_addr);

    // The same account exists on both, in separate data dirs.
    let (on_a, _ia) = login(&a, "alice", "alice-pw").await;
    let (on_b, _ib) = login(&b, "alice", "alice-pw").await;
    for client in [&on_a, &on_b] {
        let reply = client
            .request("get", "localhost", Element::bare("ping", NS_PING), STEP)
            .await
            .unwrap_or_else(|e| panic!("ping failed: {e}"));
        assert_eq!(reply.attr("type"), Some("result"));
    }
}

#[tokio::test]
async fn refused_connection_is_an_unreachable_error() {
    // A port that was free a moment ago; nothing listens on it now.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port");
    let result = within(XmppClient::connect(
        &addr.to_string(),
        "alice@localhost/test",
        "pw",
    ))
    .await;
    assert!(
        matches!(&result, Err(C2sError::Unreachable(why)) if why.contains(&addr.to_string())),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn bare_jid_is_rejected_before_connecting() {
    let result = XmppClient::connect("127.0.0.1:1", "alice@localhost", "pw").await;
    assert!(
        matches!(result, Err(C2sError::Protocol(_))),
        "{:?}",
        result.err()
    );
}
