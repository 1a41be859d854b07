//! Relay connections from this machine get `relay.loopback_congestion` (reno by
//! default) on the service's side of the socket, read from outside with `ss`
//! (`common::sockets`). Linux only: `ss` and `/proc/sys/net`.
#![cfg(target_os = "linux")]

mod common;

use std::net::SocketAddr;

use common::inproc::InProc;
use common::sockets::{established, listening, system_congestion};

const ALICE: &str = "alice@localhost/a";

/// The congestion control of the relay's end of the connection from `client`.
fn service_side_congestion(relay: SocketAddr, client: SocketAddr) -> String {
    let filter = format!(
        "( sport = :{} and dport = :{} )",
        relay.port(),
        client.port()
    );
    let shown = established(&filter);
    assert_eq!(shown.len(), 1, "one socket for {client}: {shown:?}");
    shown[0].congestion.clone()
}

/// A handshaken master connection (so the service has set its options by now): the
/// congestion control of the service's end of it, and of the relay's listening
/// socket (which shows that the connection inherited it rather than was switched).
async fn congestion_with(relay_keys: &str) -> (String, String) {
    let mut d = InProc::start(relay_keys, "").await;
    let alice = d.create(ALICE).await;
    let tcp = d.connect(&alice, None).await;
    let conn = service_side_congestion(d.relay, tcp.local_addr().unwrap());
    let listener = listening(&format!("( sport = :{} )", d.relay.port()));
    assert_eq!(listener.len(), 1, "one relay listener: {listener:?}");
    (conn, listener[0].congestion.clone())
}

// Where the system's choice is reno itself these two cannot tell whether the
// listener applies the setting; the unit tests in `relay::tcp_options` set a name
// other than the system's on a real socket, so they can.
#[tokio::test]
async fn a_peer_on_this_machine_gets_reno_by_default() {
    assert_eq!(congestion_with("").await, ("reno".into(), "reno".into()));
}

#[tokio::test]
async fn empty_keeps_the_systems_choice() {
    let system = system_congestion();
    assert_eq!(
        congestion_with("loopback_congestion = \"\"").await,
        (system.clone(), system)
    );
}
