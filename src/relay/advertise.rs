//! The start-up check of the advertised relay host (`relay.host`): peers dial
//! what create results name, so a host that resolves to loopback or private
//! space works on this network and nowhere else, the first thing that breaks
//! for users behind NAT. dsps still starts (a LAN-only service is legitimate);
//! the operator gets one warning that says why peers outside cannot connect.

use std::net::IpAddr;
use std::time::Duration;

use tracing::warn;

use crate::core::relay_policy::is_public;
use crate::logging::redact;

/// Bound on resolving `relay.host` at start-up (a hung resolver must not hold
/// the service back longer than this).
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The addresses among `addrs` that peers on the Internet cannot reach
/// (loopback, private, link-local, shared, documentation and other
/// non-public space), in order, without repeats.
pub fn unreachable(addrs: &[IpAddr]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for a in addrs {
        if !is_public(*a) && !out.contains(a) {
            out.push(*a);
        }
    }
    out
}

/// Resolves `host` (an IP literal needs no lookup) and warns once if it does
/// not resolve or resolves to an address outside public space.
pub async fn check(host: &str, port: u16) {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let lookup =
                tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)));
            match lookup.await {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                Ok(Err(e)) => {
                    warn!(host = %redact::host(host), "relay.host does not resolve ({e}): peers cannot reach the relay by that name");
                    return;
                }
                Err(_) => {
                    warn!(host = %redact::host(host), "relay.host did not resolve within {RESOLVE_TIMEOUT:?}: peers may not reach the relay by that name");
                    return;
                }
            }
        }
    };
    let bad = unreachable(&addrs);
    if bad.is_empty() {
        return;
    }
    let shown: Vec<String> = bad.iter().map(|a| redact::ip(*a).to_string()).collect();
    warn!(
        host = %redact::host(host),
        addresses = %shown.join(", "),
        "relay.host resolves to a loopback or private address: peers outside this network cannot reach it (set relay.host to a public name or address)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn loopback_and_private_addresses_are_told_from_public_ones() {
        let unreachable_ones = [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.5",
            "172.16.0.1",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
        ];
        // Each is reported once, even when the name resolves to it twice.
        let twice = [&unreachable_ones[..], &["127.0.0.1"]].concat();
        assert_eq!(unreachable(&ips(&twice)), ips(&unreachable_ones));
        assert!(unreachable(&ips(&["8.8.8.8", "2001:4860::8888"])).is_empty());
        assert_eq!(
            unreachable(&ips(&["8.8.8.8", "10.0.0.1"])),
            ips(&["10.0.0.1"])
        );
    }
}
