//! Socket options for relay connections: TCP_NODELAY on every one, and for a peer on
//! this machine a congestion control that does not pace (`relay.loopback_congestion`,
//! `reno` by default).
//!
//! Why: congestion control exists to share a network path. Linux's BBR, a common
//! system default, needs pacing, and without the `fq` qdisc TCP paces by itself with
//! a timer per packet. Over loopback there is no path to share, and that timer work
//! took about 40 % of the relay's rate in fan-out (docs/performance.md). A peer
//! anywhere else keeps the system's choice.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::SockRef;
use tokio::net::TcpStream;
use tracing::warn;

use crate::logging::redact;

/// The congestion control `peer`'s connection should get from us: `setting` for a
/// peer on this machine (a loopback address, IPv4-mapped included), none otherwise.
pub fn congestion_for(peer: IpAddr, setting: Option<&str>) -> Option<&str> {
    setting.filter(|_| peer.to_canonical().is_loopback())
}

/// Sets TCP_NODELAY, and the congestion control [`congestion_for`] names. A failure
/// leaves the connection as it is: it is logged (the congestion control once per
/// process, since every later connection would fail the same way).
pub fn apply(tcp: &TcpStream, peer: SocketAddr, loopback_congestion: Option<&str>) {
    if let Err(e) = tcp.set_nodelay(true) {
        warn!(peer = %redact::addr(peer), "set_nodelay failed: {e}");
    }
    if let Some(name) = congestion_for(peer.ip(), loopback_congestion) {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if let Err(e) = SockRef::from(tcp).set_tcp_congestion(name.as_bytes()) {
            if !WARNED.swap(true, Ordering::Relaxed) {
                warn!("relay.loopback_congestion {name:?} could not be set: {e} (reported once)");
            }
        }
    }
}

/// Whether this process may give a TCP socket the congestion control `name`, as one
/// line for the operator if not (checked at start and by `--check-config`).
pub fn check(name: &str) -> Result<(), String> {
    probe(name).map_err(|e| {
        let listed = |key: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv4/{key}"))
                .map_or_else(|_| "(unknown)".to_owned(), |s| s.trim().to_owned())
        };
        format!(
            "relay.loopback_congestion {name:?} cannot be used here: {e}; this kernel has: {}; \
             unprivileged processes may use: {}; \"\" keeps the system's choice",
            listed("tcp_available_congestion_control"),
            listed("tcp_allowed_congestion_control"),
        )
    })
}

/// Whether this process may give a TCP socket the congestion control `name`: the
/// kernel must have it, and an unprivileged process may only use those listed in
/// `net.ipv4.tcp_allowed_congestion_control`.
fn probe(name: &str) -> io::Result<()> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_tcp_congestion(name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_peers_on_this_machine_get_the_setting() {
        for local in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(
                congestion_for(ip(local), Some("reno")),
                Some("reno"),
                "{local}"
            );
        }
        for remote in [
            "192.0.2.7",
            "10.0.0.1",
            "2001:db8::1",
            "::ffff:192.0.2.7",
            "::",
        ] {
            assert_eq!(congestion_for(ip(remote), Some("reno")), None, "{remote}");
        }
        assert_eq!(congestion_for(ip("127.0.0.1"), None), None);
    }

    /// A connected pair over loopback: the accepted side and its peer's address.
    async fn accepted() -> (TcpStream, SocketAddr, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        (server, peer, client)
    }

    fn congestion(tcp: &TcpStream) -> String {
        let name = SockRef::from(tcp).tcp_congestion().unwrap();
        String::from_utf8_lossy(&name)
            .trim_end_matches('\0')
            .to_owned()
    }

    fn sysctl(key: &str) -> String {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{key}"))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn system_default() -> String {
        sysctl("tcp_congestion_control")
    }

    /// A congestion control this process may use that is not the system's, so that
    /// a test setting it can tell whether it was set (reno where the system's is
    /// anything else).
    fn not_the_default() -> String {
        let default = system_default();
        let available = sysctl("tcp_available_congestion_control");
        let found = std::iter::once("reno")
            .chain(available.split_whitespace())
            .find(|name| *name != default && check(name).is_ok());
        found
            .expect("a second usable congestion control besides the system's")
            .to_owned()
    }

    #[tokio::test]
    async fn a_loopback_peer_gets_the_setting_on_a_real_socket() {
        let other = not_the_default();
        let (server, peer, _client) = accepted().await;
        apply(&server, peer, Some(&other));
        assert_eq!(congestion(&server), other);
        assert!(server.nodelay().unwrap());
    }

    #[tokio::test]
    async fn a_remote_peer_or_no_setting_keeps_the_systems_choice() {
        let other = not_the_default();
        let (server, _, _client) = accepted().await;
        apply(&server, "192.0.2.7:5000".parse().unwrap(), Some(&other));
        assert_eq!(congestion(&server), system_default());
        assert!(server.nodelay().unwrap());
        let (server, peer, _client) = accepted().await;
        apply(&server, peer, None);
        assert_eq!(congestion(&server), system_default());
    }

    #[tokio::test]
    async fn a_setting_the_kernel_refuses_leaves_the_connection_working() {
        let (server, peer, _client) = accepted().await;
        apply(&server, peer, Some("no-such-cc"));
        assert_eq!(congestion(&server), system_default());
        assert!(server.nodelay().unwrap());
    }

    #[test]
    fn check_accepts_reno_and_names_what_there_is_for_an_unknown_name() {
        // reno is built into every Linux kernel and open to unprivileged processes.
        check("reno").unwrap();
        let why = check("no-such-cc").unwrap_err();
        assert!(why.contains("\"no-such-cc\" cannot be used here"), "{why}");
        assert!(
            why.contains("this kernel has: ") && why.contains("reno"),
            "{why}"
        );
    }
}
