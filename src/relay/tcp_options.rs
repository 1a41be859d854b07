//! Socket options for relay connections: TCP_NODELAY on every one, and for a peer on
//! this machine a congestion control that does not pace (`relay.loopback_congestion`,
//! `reno` by default).
//!
//! Why: congestion control exists to share a network path. Linux's BBR, a common
//! system default, needs pacing, and without the `fq` qdisc TCP paces by itself with
//! a timer as it sends. Over loopback there is no path to share, and that work took
//! about 40 % of the relay's fan-out rate (docs/performance.md). A peer anywhere else
//! keeps the system's choice.
//!
//! The setting goes on the listeners, so that an accepted connection starts with it:
//! once BBR has started on a socket, the socket keeps pacing whatever it is switched
//! to (at reno's rate, far above loopback's, but with a timer still armed now and
//! then). A connection from elsewhere is switched back to the system's choice as it
//! is accepted, before it carries any data. A dialled connection gets it before its
//! connect when the target is a loopback address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::SockRef;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tracing::warn;

use crate::logging::redact;

/// Whether the connection between our `local` address and `peer` stays on this
/// machine: `peer` is a loopback address, or our own end's (a client here that
/// dialled one of this host's other addresses gets that address as its source). The
/// kernel carries both over loopback. IPv4-mapped addresses count as their IPv4 ones.
pub fn is_local(local: IpAddr, peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    peer.is_loopback() || peer == local.to_canonical()
}

/// `relay.loopback_congestion` as the relay applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopbackCongestion {
    /// What connections with a peer on this machine get.
    name: String,
    /// The system's choice (what a new socket starts with), which the others keep.
    system: String,
}

impl LoopbackCongestion {
    /// Checks that this process may use `name` ([`check`]) and reads the system's
    /// choice from a new socket.
    pub fn new(name: &str) -> Result<Self, String> {
        check(name)?;
        let system = new_socket()
            .and_then(|s| get(SockRef::from(&s)))
            .map_err(|e| match e.kind() {
                io::ErrorKind::Unsupported => format!(
                    "this system does not let a process choose its TCP congestion control, so \
                     relay.loopback_congestion {name:?} is ignored"
                ),
                _ => format!("cannot read the system's TCP congestion control: {e}"),
            })?;
        Ok(LoopbackCongestion {
            name: name.to_owned(),
            system: name_of(&system),
        })
    }

    /// What connections with a peer on this machine get.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The system's choice, which connections with other peers keep.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// Gives `listener` the setting: the connections it accepts start with it.
    pub fn on_listener(&self, listener: &TcpListener) -> io::Result<()> {
        set(SockRef::from(listener), &self.name)
    }

    /// Before dialling `target`: the setting, when `target` is a loopback address.
    /// A failure is left to [`LoopbackCongestion::settle`], which tries again.
    pub fn before_connect(&self, socket: &TcpSocket, target: SocketAddr) {
        if target.ip().to_canonical().is_loopback() {
            let _ = set(SockRef::from(socket), &self.name);
        }
    }

    /// A connection once made, accepted or dialled: a peer elsewhere that started
    /// with the setting gets the system's choice back; a peer here that did not
    /// start with it (it dialled this host's own address, or the listener could not
    /// take the setting) gets it now. A socket whose choice cannot be read is given
    /// what it should have. Failures are logged once per process for each of the
    /// two cases.
    pub fn settle(&self, tcp: &TcpStream, peer: SocketAddr) {
        static WARNED_HERE: AtomicBool = AtomicBool::new(false);
        static WARNED_ELSEWHERE: AtomicBool = AtomicBool::new(false);
        let here = match tcp.local_addr() {
            Ok(local) => is_local(local.ip(), peer.ip()),
            Err(_) => peer.ip().to_canonical().is_loopback(),
        };
        let (want, warned) = if here {
            (&self.name, &WARNED_HERE)
        } else {
            (&self.system, &WARNED_ELSEWHERE)
        };
        if let Ok(current) = get(SockRef::from(tcp)).map(|raw| name_of(&raw)) {
            if current == *want || (current != self.name && !here) {
                // Already right, or a choice neither ours nor inherited (a route's).
                return;
            }
        }
        if let Err(e) = set(SockRef::from(tcp), want) {
            if !warned.swap(true, Ordering::Relaxed) {
                warn!(
                    peer = %redact::addr(peer),
                    "TCP congestion control {want:?} could not be set for a peer {}: {e} \
                     (reported once)",
                    if here { "on this machine" } else { "elsewhere" }
                );
            }
        }
    }
}

/// Sets TCP_NODELAY, and settles the congestion control (see
/// [`LoopbackCongestion::settle`]). A failure leaves the connection as it is.
pub fn apply(tcp: &TcpStream, peer: SocketAddr, congestion: Option<&LoopbackCongestion>) {
    if let Err(e) = tcp.set_nodelay(true) {
        warn!(peer = %redact::addr(peer), "set_nodelay failed: {e}");
    }
    if let Some(c) = congestion {
        c.settle(tcp, peer);
    }
}

/// TCP_CONGESTION, where the system lets a process choose (Linux, FreeBSD).
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn set(sock: SockRef<'_>, name: &str) -> io::Result<()> {
    sock.set_tcp_congestion(name.as_bytes())
}

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn get(sock: SockRef<'_>) -> io::Result<Vec<u8>> {
    sock.tcp_congestion()
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn set(_: SockRef<'_>, _: &str) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn get(_: SockRef<'_>) -> io::Result<Vec<u8>> {
    Err(io::ErrorKind::Unsupported.into())
}

/// A congestion control's name as `getsockopt` gives it (padded with NULs).
fn name_of(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .trim_end_matches('\0')
        .to_owned()
}

/// A TCP socket, IPv4 or else IPv6 (a host may have only one of them).
fn new_socket() -> io::Result<socket2::Socket> {
    let tcp =
        |domain| socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP));
    tcp(socket2::Domain::IPV4).or_else(|_| tcp(socket2::Domain::IPV6))
}

/// Whether this process may give a TCP socket the congestion control `name`, as one
/// line for the operator if not (checked at start and by `--check-config`). Where the
/// system offers no choice there is nothing to check; the service then warns once
/// that the setting is ignored.
pub fn check(name: &str) -> Result<(), String> {
    probe(name)
        .or_else(|e| {
            if e.kind() == io::ErrorKind::Unsupported {
                return Ok(());
            }
            Err(e)
        })
        .map_err(|e| {
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
    set(SockRef::from(&new_socket()?), name)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn peers_on_this_machine_are_loopback_or_our_own_address() {
        let ours = ip("198.51.100.4");
        for here in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert!(is_local(ours, ip(here)), "{here}");
        }
        // A client on this host that dialled one of its other addresses.
        for (local, peer) in [
            ("198.51.100.4", "198.51.100.4"),
            ("2001:db8::4", "2001:db8::4"),
            ("::ffff:198.51.100.4", "198.51.100.4"),
        ] {
            assert!(is_local(ip(local), ip(peer)), "{local} from {peer}");
        }
        for remote in [
            "192.0.2.7",
            "10.0.0.1",
            "2001:db8::1",
            "::ffff:192.0.2.7",
            "::",
        ] {
            assert!(!is_local(ours, ip(remote)), "{remote}");
        }
    }

    fn congestion(tcp: &TcpStream) -> String {
        name_of(&get(SockRef::from(tcp)).unwrap())
    }

    fn sysctl(key: &str) -> String {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{key}"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The setting with a name that is not the system's, so that a test can tell
    /// whether it was applied (reno where the system's is anything else; as root,
    /// any other available one).
    fn not_the_default() -> LoopbackCongestion {
        let default = sysctl("tcp_congestion_control");
        let available = sysctl("tcp_available_congestion_control");
        let found = std::iter::once("reno")
            .chain(available.split_whitespace())
            .find(|name| *name != default && check(name).is_ok())
            .expect("a second usable congestion control besides the system's");
        let c = LoopbackCongestion::new(found).unwrap();
        assert_eq!(
            c.system(),
            default,
            "the system's choice, read from a socket"
        );
        c
    }

    /// A listener on loopback (given `c` first if there is one), a client connected
    /// to it, and the accepted side with its peer's address.
    async fn accepted(c: Option<&LoopbackCongestion>) -> (TcpStream, SocketAddr, TcpStream) {
        accepted_on("127.0.0.1:0", c).await
    }

    async fn accepted_on(
        addr: &str,
        c: Option<&LoopbackCongestion>,
    ) -> (TcpStream, SocketAddr, TcpStream) {
        let listener = TcpListener::bind(addr).await.unwrap();
        if let Some(c) = c {
            c.on_listener(&listener).unwrap();
        }
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        (server, peer, client)
    }

    async fn still_carries_bytes(mut a: TcpStream, mut b: TcpStream) {
        a.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
    }

    #[tokio::test]
    async fn a_loopback_peer_starts_with_the_setting_from_the_listener() {
        let c = not_the_default();
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let (server, peer, client) = accepted_on(addr, Some(&c)).await;
            assert_eq!(peer.is_ipv6(), addr.starts_with('['), "{addr}");
            // Inherited at accept, before anything switched it.
            assert_eq!(congestion(&server), c.name(), "{addr}");
            apply(&server, peer, Some(&c));
            assert_eq!(congestion(&server), c.name(), "{addr}");
            assert!(server.nodelay().unwrap());
            still_carries_bytes(server, client).await;
        }
    }

    #[tokio::test]
    async fn a_peer_elsewhere_gets_the_systems_choice_back() {
        let c = not_the_default();
        let (server, _, client) = accepted(Some(&c)).await;
        apply(&server, "192.0.2.7:5000".parse().unwrap(), Some(&c));
        assert_eq!(congestion(&server), c.system());
        assert!(server.nodelay().unwrap());
        still_carries_bytes(server, client).await;
    }

    #[tokio::test]
    async fn a_loopback_peer_that_did_not_start_with_it_gets_it_late() {
        let c = not_the_default();
        let (server, peer, _client) = accepted(None).await;
        assert_eq!(congestion(&server), c.system());
        apply(&server, peer, Some(&c));
        assert_eq!(congestion(&server), c.name());
        let (server, peer, _client) = accepted(None).await;
        apply(&server, peer, None);
        assert_eq!(congestion(&server), c.system());
    }

    #[tokio::test]
    async fn a_dial_to_a_loopback_target_starts_with_the_setting() {
        let c = not_the_default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        c.before_connect(&socket, target);
        let tcp = socket.connect(target).await.unwrap();
        assert_eq!(congestion(&tcp), c.name());
        // Not for a target elsewhere (the socket is never connected there).
        let socket = TcpSocket::new_v4().unwrap();
        c.before_connect(&socket, "192.0.2.7:5290".parse().unwrap());
        let raw = get(SockRef::from(&socket)).unwrap();
        assert_eq!(name_of(&raw), c.system());
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
        assert_eq!(LoopbackCongestion::new("no-such-cc").unwrap_err(), why);
    }
}
