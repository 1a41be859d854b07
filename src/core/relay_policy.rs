//! Where an outbound relay may dial (PROFILE 23): deny by default.
//!
//! A relay chain makes this DSPS open a TCP connection because a user asked it to,
//! so the destination is the operator's decision, not the user's. `[relay]
//! allow_targets` lists domains (`dsps2.example.org`, or `*.example.org` for its
//! subdomains) and addresses or networks (`127.0.0.1`, `2001:db8::/32`); `[relay.targets]`
//! pins a domain to an address. A destination is admitted when its domain is listed,
//! or its `host` hint is an address inside a listed network, or its domain is pinned.
//! Every address it resolves to must then be inside a listed network, or be a public
//! unicast address reached through a listed domain: a listed domain whose name
//! resolves to loopback, private or link-local space is refused (a user could
//! otherwise reach the operator's internal services through a `host` hint or a DNS
//! record). Pinned addresses are the operator's own and are dialled as written.
//!
//! Pure: name resolution is the caller's; this only judges names and addresses.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::proto::iq::{bare, resource};
use crate::proto::query::RelayTarget;

/// The relay port the XEP names, used when a `<peer/>` has no `port`.
pub const DEFAULT_RELAY_PORT: u16 = 5290;

/// One entry of `allow_targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRule {
    /// Exactly this domain (lower case).
    Domain(String),
    /// Any subdomain of this domain (`*.example.org`), not the domain itself.
    Subdomains(String),
    /// Addresses in this network (a single address is a /32 or /128).
    Net(IpNet),
}

impl TargetRule {
    /// Reads one `allow_targets` entry.
    pub fn parse(s: &str) -> Result<TargetRule, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(TargetRule::Net(net));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(TargetRule::Net(IpNet::from(ip)));
        }
        let (wild, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if !is_domain(name) {
            return Err(format!(
                "{s:?} is neither a domain, a *.domain, an IP address nor a network"
            ));
        }
        let name = name.to_ascii_lowercase();
        Ok(if wild {
            TargetRule::Subdomains(name)
        } else {
            TargetRule::Domain(name)
        })
    }

    fn admits_domain(&self, domain: &str) -> bool {
        match self {
            TargetRule::Domain(d) => d == domain,
            TargetRule::Subdomains(d) => domain
                .strip_suffix(d.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            TargetRule::Net(_) => false,
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        matches!(self, TargetRule::Net(n) if n.contains(&canonical(ip)))
    }
}

/// A pinned address for a domain: `host:port`, where host is a name or an address
/// (`[v6]:port` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Name or address to dial.
    pub host: String,
    /// Port to dial.
    pub port: u16,
}

impl Pin {
    /// Reads one `[relay.targets]` value.
    pub fn parse(s: &str) -> Result<Pin, String> {
        let bad = || format!("{s:?} is not host:port (use [addr]:port for IPv6)");
        let (host, port) = s.trim().rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => {
                v6.parse::<Ipv6Addr>().map_err(|_| bad())?;
                v6.to_string()
            }
            None if host.parse::<Ipv4Addr>().is_ok() || is_domain(host) => host.to_string(),
            None => return Err(bad()),
        };
        Ok(Pin { host, port })
    }
}

/// Where to dial for one `<peer/>` of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPlan {
    /// The far stream's full JID (the hello line's second JID).
    pub far_jid: String,
    /// The far DSPS's domain, lower case.
    pub domain: String,
    /// The name or address to resolve and dial.
    pub host: String,
    /// The port to dial.
    pub port: u16,
    /// The operator pinned this address: dialled as written.
    pub pinned: bool,
}

impl DialPlan {
    /// `host:port` for resolving (`[v6]:port` for IPv6 literals).
    pub fn authority(&self) -> String {
        match self.host.parse::<Ipv6Addr>() {
            Ok(_) => format!("[{}]:{}", self.host, self.port),
            Err(_) => format!("{}:{}", self.host, self.port),
        }
    }
}

/// Why a destination will not be dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The `<peer/>` itself is wrong (not a stream JID, a bad host): the client's
    /// mistake (400).
    Malformed(String),
    /// The operator's policy does not allow it (403).
    NotAllowed(String),
}

impl Refused {
    /// The reason, for the error text.
    pub fn text(&self) -> &str {
        match self {
            Refused::Malformed(t) | Refused::NotAllowed(t) => t,
        }
    }
}

/// The operator's rules for outbound relays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayPolicy {
    rules: Vec<TargetRule>,
    pins: BTreeMap<String, Pin>,
}

impl RelayPolicy {
    /// A policy from `allow_targets` and `[relay.targets]` (domains lower-cased).
    pub fn new(rules: Vec<TargetRule>, pins: BTreeMap<String, Pin>) -> RelayPolicy {
        let pins = pins
            .into_iter()
            .map(|(d, p)| (d.to_ascii_lowercase(), p))
            .collect();
        RelayPolicy { rules, pins }
    }

    /// Whether relay chains are offered at all (something is allowed or pinned).
    pub fn enabled(&self) -> bool {
        !self.rules.is_empty() || !self.pins.is_empty()
    }

    /// Decides whether `t` may be dialled, and how; `Err` says why not.
    pub fn plan(&self, t: &RelayTarget) -> Result<DialPlan, Refused> {
        let jid = t.jid.trim();
        let domain = bare(jid);
        if domain.contains('@') || resource(jid).is_none_or(str::is_empty) || !is_domain(domain) {
            return Err(Refused::Malformed(format!(
                "{jid:?} is not the full JID of a stream on a DSPS (domain/resource)"
            )));
        }
        let domain = domain.to_ascii_lowercase();
        if let Some(pin) = self.pins.get(&domain) {
            return Ok(DialPlan {
                far_jid: jid.to_string(),
                domain,
                host: pin.host.clone(),
                port: pin.port,
                pinned: true,
            });
        }
        // An IPv6 hint may come bracketed, as in a URL.
        let host = match t.host.as_deref().map(str::trim) {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            _ => domain.clone(),
        };
        let host_ip = host.parse::<IpAddr>().ok();
        if host_ip.is_none() && !is_domain(&host) {
            return Err(Refused::Malformed(format!(
                "host {host:?} is not a host name or an address"
            )));
        }
        let by_domain = self.rules.iter().any(|r| r.admits_domain(&domain));
        let by_net = host_ip.is_some_and(|ip| self.rules.iter().any(|r| r.contains(ip)));
        if !by_domain && !by_net {
            return Err(Refused::NotAllowed(format!(
                "{domain} is not in this DSPS's relay.allow_targets"
            )));
        }
        Ok(DialPlan {
            far_jid: jid.to_string(),
            domain,
            host,
            port: t.port.filter(|p| *p != 0).unwrap_or(DEFAULT_RELAY_PORT),
            pinned: false,
        })
    }

    /// Whether an address `plan`'s host resolved to may be dialled.
    pub fn permits(&self, plan: &DialPlan, ip: IpAddr) -> bool {
        if plan.pinned || self.rules.iter().any(|r| r.contains(ip)) {
            return true;
        }
        is_public(ip) && self.rules.iter().any(|r| r.admits_domain(&plan.domain))
    }
}

/// An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is ordinary public unicast space: not loopback, private, link-local,
/// shared (CGNAT), documentation, benchmarking, multicast, broadcast, reserved or
/// unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x0064 && s[1] == 0xff9b)
                || s[0] == 0x0100)
        }
    }
}

/// A DNS name as a relay destination may use: dot-separated labels of letters,
/// digits and hyphens, 253 bytes at most.
fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str], pins: &[(&str, &str)]) -> RelayPolicy {
        RelayPolicy::new(
            rules
                .iter()
                .map(|r| TargetRule::parse(r).unwrap())
                .collect(),
            pins.iter()
                .map(|(d, p)| (d.to_string(), Pin::parse(p).unwrap()))
                .collect(),
        )
    }

    fn target(jid: &str, host: Option<&str>, port: Option<u16>) -> RelayTarget {
        RelayTarget {
            jid: jid.into(),
            port,
            host: host.map(str::to_string),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let p = RelayPolicy::default();
        assert!(!p.enabled());
        let e = p
            .plan(&target("dsps.example.org/abc", None, None))
            .unwrap_err();
        assert!(
            matches!(&e, Refused::NotAllowed(t) if t.contains("allow_targets")),
            "{e:?}"
        );
    }

    #[test]
    fn rules_parse_domains_wildcards_addresses_and_networks() {
        assert_eq!(
            TargetRule::parse("DSPS2.Example.org"),
            Ok(TargetRule::Domain("dsps2.example.org".into()))
        );
        assert_eq!(
            TargetRule::parse("*.example.org"),
            Ok(TargetRule::Subdomains("example.org".into()))
        );
        assert_eq!(
            TargetRule::parse("127.0.0.1"),
            Ok(TargetRule::Net("127.0.0.1/32".parse().unwrap()))
        );
        assert_eq!(
            TargetRule::parse("::1"),
            Ok(TargetRule::Net("::1/128".parse().unwrap()))
        );
        assert!(matches!(
            TargetRule::parse("10.0.0.0/8"),
            Ok(TargetRule::Net(_))
        ));
        for bad in ["", "a b", "*.", "exa_mple.org", "10.0.0.0/33", "-x.org"] {
            assert!(TargetRule::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn pins_parse_host_and_port() {
        assert_eq!(
            Pin::parse("192.0.2.7:5290"),
            Ok(Pin {
                host: "192.0.2.7".into(),
                port: 5290
            })
        );
        assert_eq!(Pin::parse("[::1]:7").unwrap().host, "::1");
        assert_eq!(Pin::parse("relay.example.org:80").unwrap().port, 80);
        for bad in ["192.0.2.7", "::1:5290", "x:0", "x:70000", "a b:1"] {
            assert!(Pin::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_listed_domain_is_dialled_on_its_public_addresses_only() {
        let p = policy(&["dsps2.example.org"], &[]);
        let plan = p
            .plan(&target("DSPS2.example.org/r1", None, Some(7000)))
            .unwrap();
        assert_eq!(
            (plan.host.as_str(), plan.port, plan.pinned),
            ("dsps2.example.org", 7000, false)
        );
        assert!(p.permits(&plan, ip("203.0.114.9")));
        assert!(p.permits(&plan, ip("2a00:1450::1")));
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                !p.permits(&plan, ip(internal)),
                "{internal} must be refused"
            );
        }
        // The default port, and subdomains only through a wildcard.
        assert_eq!(
            p.plan(&target("dsps2.example.org/r", None, None))
                .unwrap()
                .port,
            DEFAULT_RELAY_PORT
        );
        assert!(p
            .plan(&target("x.dsps2.example.org/r", None, None))
            .is_err());
    }

    #[test]
    fn a_host_hint_does_not_open_internal_space() {
        let p = policy(&["dsps2.example.org"], &[]);
        let plan = p
            .plan(&target("dsps2.example.org/r", Some("127.0.0.1"), None))
            .unwrap();
        assert_eq!(plan.host, "127.0.0.1");
        assert!(!p.permits(&plan, ip("127.0.0.1")));
        // A domain that is not listed cannot be reached through a public host hint.
        assert!(p
            .plan(&target("other.example.org/r", Some("203.0.114.9"), None))
            .is_err());
    }

    #[test]
    fn a_listed_network_admits_addresses_inside_it() {
        let p = policy(&["127.0.0.1", "10.0.0.0/8"], &[]);
        let plan = p
            .plan(&target("dsps-a.localhost/r", Some("127.0.0.1"), Some(6000)))
            .unwrap();
        assert!(p.permits(&plan, ip("127.0.0.1")));
        assert!(p.permits(&plan, ip("::ffff:127.0.0.1")));
        assert!(!p.permits(&plan, ip("127.0.0.2")));
        let plan = p
            .plan(&target("d.localhost/r", Some("10.9.8.7"), None))
            .unwrap();
        assert!(p.permits(&plan, ip("10.9.8.7")));
        // Without a host hint the domain itself must be listed.
        assert!(p.plan(&target("dsps-a.localhost/r", None, None)).is_err());
        assert!(p
            .plan(&target("dsps-a.localhost/r", Some("127.0.0.2"), None))
            .is_err());
    }

    #[test]
    fn a_pin_decides_the_address() {
        let p = policy(&[], &[("DSPS-A.localhost", "127.0.0.1:6001")]);
        assert!(p.enabled());
        let plan = p
            .plan(&target("dsps-a.localhost/r", Some("203.0.114.9"), Some(1)))
            .unwrap();
        assert_eq!(
            (plan.host.as_str(), plan.port, plan.pinned),
            ("127.0.0.1", 6001, true)
        );
        assert!(p.permits(&plan, ip("127.0.0.1")));
        assert_eq!(plan.authority(), "127.0.0.1:6001");
    }

    #[test]
    fn destinations_must_be_stream_jids() {
        let p = policy(&["*.example.org"], &[]);
        for bad in [
            "dsps.example.org",
            "dsps.example.org/",
            "user@dsps.example.org/r",
            "dsps example.org/r",
        ] {
            assert!(
                matches!(p.plan(&target(bad, None, None)), Err(Refused::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(p.plan(&target("dsps.example.org/r", None, None)).is_ok());
        let bracketed = p
            .plan(&target("dsps.example.org/r", Some("[2001:db8::1]"), None))
            .unwrap();
        assert_eq!(bracketed.authority(), "[2001:db8::1]:5290");
        assert!(matches!(
            p.plan(&target("dsps.example.org/r", Some("a b"), None)),
            Err(Refused::Malformed(_))
        ));
    }

    #[test]
    fn public_space_is_told_from_the_rest() {
        for public in ["8.8.8.8", "203.0.114.1", "2001:4860::8888"] {
            assert!(is_public(ip(public)), "{public}");
        }
        for private in [
            "192.0.2.1",
            "198.18.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "2001:db8::1",
            "ff02::1",
            "64:ff9b::1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
        assert_eq!(
            DialPlan {
                far_jid: String::new(),
                domain: String::new(),
                host: "::1".into(),
                port: 9,
                pinned: true
            }
            .authority(),
            "[::1]:9"
        );
    }
}
