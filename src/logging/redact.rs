//! IP addresses in log lines: in clear, or, with `[log] ip_addresses = false`, as a
//! keyed hash (`ip-1a2b3c4d`), so the log holds no address (personal data in many
//! jurisdictions) while an operator can still follow one client through its lines.
//!
//! The key is random per process: the same address gets the same token for the
//! whole run and another one after a restart, and nobody without the key can turn
//! a token back into an address by hashing all 2^32 IPv4 addresses.
//!
//! Every log field that holds an address goes through [`ip`], [`addr`],
//! [`authority`] or [`host`]; they are `Display` wrappers read when the line is
//! written, so the choice is made once at start-up ([`hide_addresses`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

static HIDE: AtomicBool = AtomicBool::new(false);
static KEY: OnceLock<[u8; 16]> = OnceLock::new();

/// Hex digits of the hash shown: 32 bits tell thousands of clients apart, and a
/// collision only merges two clients' lines.
const TOKEN_HEX: usize = 8;

/// Whether addresses are hidden from now on (`[log] ip_addresses = false`).
pub fn hide_addresses(hide: bool) {
    HIDE.store(hide, Ordering::Relaxed);
}

/// Whether addresses are hidden.
pub fn hidden() -> bool {
    HIDE.load(Ordering::Relaxed)
}

/// The token that stands for `ip`: `ip-` and the first hex digits of a keyed hash.
pub fn token(ip: IpAddr) -> String {
    let key = KEY.get_or_init(rand::random);
    // An IPv4-mapped IPv6 address is the same client as the IPv4 address.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let mut h = Sha256::new();
    h.update(key);
    match ip {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("ip-{}", &hex[..TOKEN_HEX])
}

/// `ip` in clear or, with `hide`, as its token.
fn ip_text(ip: IpAddr, hide: bool) -> String {
    if hide {
        token(ip)
    } else {
        ip.to_string()
    }
}

/// `a` in clear or, with `hide`, with its address as a token and its port kept.
fn addr_text(a: SocketAddr, hide: bool) -> String {
    if hide {
        format!("{}:{}", token(a.ip()), a.port())
    } else {
        a.to_string()
    }
}

fn host_text(s: &str, hide: bool) -> String {
    match s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(a) if hide => token(a),
        _ => s.to_string(),
    }
}

fn authority_text(s: &str, hide: bool) -> String {
    if !hide {
        return s.to_string();
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return addr_text(a, true);
    }
    match s.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => format!("{}:{port}", host_text(h, true)),
        _ => host_text(s, true),
    }
}

/// An IP address as a log field.
#[derive(Debug, Clone, Copy)]
pub struct Ip(pub IpAddr);

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&ip_text(self.0, hidden()))
    }
}

/// A socket address as a log field: the port stays, the address is hidden.
#[derive(Debug, Clone, Copy)]
pub struct Addr(pub SocketAddr);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&addr_text(self.0, hidden()))
    }
}

/// `ip` as a log field.
pub fn ip(ip: IpAddr) -> Ip {
    Ip(ip)
}

/// `a` as a log field.
pub fn addr(a: SocketAddr) -> Addr {
    Addr(a)
}

/// A `host:port` (or `ip:port`, `[v6]:port`) as a log field: an address in it is
/// hidden, a host name is not (names are the operator's, not a client's).
pub fn authority(s: &str) -> String {
    authority_text(s, hidden())
}

/// A host as written in the config (`relay.host`): an IP literal is hidden, a
/// name is not.
pub fn host(s: &str) -> String {
    host_text(s, hidden())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The process-wide flag is never touched here: other tests format addresses.
    #[test]
    fn addresses_show_in_clear_or_as_stable_tokens() {
        let v4: SocketAddr = "127.0.0.1:5290".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(addr_text(v4, false), "127.0.0.1:5290");
        assert_eq!(ip_text(v6.ip(), false), "::1");
        assert_eq!(authority_text("127.0.0.1:5347", false), "127.0.0.1:5347");
        assert_eq!(host_text("10.0.0.1", false), "10.0.0.1");

        let shown = addr_text(v4, true);
        assert!(
            shown.starts_with("ip-") && shown.ends_with(":5290"),
            "{shown}"
        );
        assert!(!shown.contains("127.0.0.1"), "{shown}");
        assert_eq!(
            shown,
            addr_text(v4, true),
            "the same address, the same token"
        );
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            token(mapped),
            token(v4.ip()),
            "a mapped address is the same client"
        );
        assert_ne!(token(v4.ip()), token("127.0.0.2".parse().unwrap()));
        assert_eq!(token(v6.ip()).len(), 3 + TOKEN_HEX);
        assert_eq!(ip_text(v6.ip(), true), token(v6.ip()));
        assert_eq!(
            authority_text("127.0.0.1:5347", true),
            format!("{}:5347", token(v4.ip()))
        );
        assert_eq!(
            authority_text("[::1]:80", true),
            format!("{}:80", token(v6.ip()))
        );
        assert_eq!(
            authority_text("xmpp.example.org:5347", true),
            "xmpp.example.org:5347"
        );
        assert_eq!(host_text("127.0.0.1", true), token(v4.ip()));
        assert_eq!(host_text("dsps.example.org", true), "dsps.example.org");
        assert!(!hidden(), "addresses are shown unless [log] says otherwise");
    }
}
