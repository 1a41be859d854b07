//! The `[http]` listener shares the relay port's admission gate: one source's
//! pending connections are counted across both ports (README "HTTP and TLS").
//! In-process, with channels in place of the component link.

mod common;

use common::inproc::{closed_by_peer, dial, step};
use dsps::config::Config;
use dsps::relay::listener::Transports;
use dsps::service;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn a_pending_http_connection_makes_room_for_a_relay_one_from_the_same_source() {
    let text = "[component]\njid = \"dsps.localhost\"\nserver = \"127.0.0.1:9\"\nsecret = \"x\"\n\
                [relay]\nlisten = \"127.0.0.1:0\"\nmax_pending_per_ip = 1\n\
                [http]\nlisten = \"127.0.0.1:0\"\n";
    let config = Config::parse(text).expect("config");
    let relay = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let (relay_addr, http_addr) = (relay.local_addr().unwrap(), http.local_addr().unwrap());
    let transports = Transports {
        relay,
        http: Some(http),
        tls: None,
        congestion: None,
    };
    let (ends, _far) = service::link_channels();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service::run_with_link(config, transports, ends, async {
        let _ = stopped.await;
    }));

    // An HTTP connection that has had its 200 (so the gate admitted it) but has
    // not said hello yet: it is this source's one pending connection.
    let mut http_conn = dial(http_addr, None).await;
    http_conn
        .write_all(b"GET /DSPS/STREAM/ HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut reply = [0u8; 15];
    step("HTTP reply", http_conn.read_exact(&mut reply))
        .await
        .expect("the HTTP connection is served");
    assert_eq!(&reply, b"HTTP/1.0 200 OK");
    // A new connection from the same source on the relay port makes room by
    // closing it: the quota is shared.
    let _newcomer = dial(relay_addr, None).await;
    assert!(
        closed_by_peer(&mut http_conn).await,
        "the pending HTTP connection was closed to make room on the relay port"
    );
    let _ = stop.send(());
    step("service stops", task).await.expect("service task");
}
