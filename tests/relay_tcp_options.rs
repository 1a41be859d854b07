//! Relay connections from this machine get `relay.loopback_congestion` (reno by
//! default) on the service's side of the socket, read from outside with `ss`
//! (iproute2, which `scripts/test.sh` installs when it is missing).

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::inproc::InProc;

const ALICE: &str = "alice@localhost/a";

/// The congestion control `ss` shows for the relay's end of the connection from
/// `client`: the first word of its info line.
fn service_side_congestion(relay: SocketAddr, client: SocketAddr) -> String {
    let filter = format!(
        "( sport = :{} and dport = :{} )",
        relay.port(),
        client.port()
    );
    let out = Command::new("ss")
        .args(["-tinH", "state", "established", &filter])
        .output()
        .expect("run ss (iproute2)");
    assert!(out.status.success(), "ss failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let info = text
        .lines()
        .find(|l| l.starts_with(char::is_whitespace) && !l.trim().is_empty())
        .unwrap_or_else(|| panic!("ss shows no info line for {client}: {text:?}"));
    info.split_whitespace().next().unwrap().to_owned()
}

fn system_default() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .expect("read the system's congestion control")
        .trim()
        .to_owned()
}

/// A handshaken master connection (so the service has set its options by now), and
/// the congestion control of the service's end of it.
async fn congestion_with(relay_keys: &str) -> String {
    let mut d = InProc::start(relay_keys, "").await;
    let alice = d.create(ALICE).await;
    let tcp = d.connect(&alice, None).await;
    service_side_congestion(d.relay, tcp.local_addr().unwrap())
}

// Where the system's choice is reno itself these two cannot tell whether the
// listener applies the setting; the unit tests in `relay::tcp_options` set a name
// other than the system's on a real socket, so they can.
#[tokio::test]
async fn a_peer_on_this_machine_gets_reno_by_default() {
    assert_eq!(congestion_with("").await, "reno");
}

#[tokio::test]
async fn empty_keeps_the_systems_choice() {
    assert_eq!(
        congestion_with("loopback_congestion = \"\"").await,
        system_default()
    );
}
