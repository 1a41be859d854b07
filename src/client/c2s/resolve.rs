//! Where to connect for an account's domain (RFC 6120 §3.2): the `_xmpp-client._tcp`
//! SRV records in RFC 2782 order, or the domain itself on 5222 when there are none.
//! An explicit `host:port` skips the lookup.

use std::time::Duration;

use hickory_resolver::TokioAsyncResolver;
use rand::Rng;

/// The c2s port to use when the domain has no SRV records.
pub const DEFAULT_C2S_PORT: u16 = 5222;
/// Bound on the SRV lookup: a resolver that cannot be reached must not hold up a login
/// that would fall back to the domain anyway.
pub const SRV_TIMEOUT: Duration = Duration::from_secs(5);

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower is tried first.
    pub priority: u16,
    /// Share of the traffic among records of one priority.
    pub weight: u16,
    /// Port to connect to.
    pub port: u16,
    /// Host to connect to, without the trailing dot.
    pub target: String,
}

/// Why no address to try could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The domain publishes a "." target: it offers no XMPP client service.
    NoService(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NoService(d) => {
                write!(
                    f,
                    "{d} says it offers no XMPP client service (SRV target \".\")"
                )
            }
        }
    }
}

/// `host:port`, with an IPv6 literal in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]:{port}"),
        Err(_) => format!("{host}:{port}"),
    }
}

/// RFC 2782 order: by priority, and within one priority a weighted random order.
/// A lone record with target "." means the service is not offered.
pub fn order(mut records: Vec<Srv>, rng: &mut impl Rng) -> Result<Vec<(String, u16)>, String> {
    if records.len() == 1 && records[0].target.is_empty() {
        return Err("no service".into());
    }
    records.retain(|r| !r.target.is_empty());
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let mut group: Vec<&Srv> = rest[..same].iter().collect();
        rest = &rest[same..];
        // Zero weights first, as the RFC asks, then pick by running sums.
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rng.gen_range(0..=total);
            let mut sum = 0;
            let i = group
                .iter()
                .position(|r| {
                    sum += u32::from(r.weight);
                    sum >= pick
                })
                .unwrap_or(0);
            let r = group.remove(i);
            out.push((r.target.clone(), r.port));
        }
    }
    Ok(out)
}

/// The host:port pairs to try for `domain`, in order.
pub async fn candidates(domain: &str) -> Result<Vec<(String, u16)>, ResolveError> {
    let fallback = vec![(domain.to_string(), DEFAULT_C2S_PORT)];
    let Ok(resolver) = TokioAsyncResolver::tokio_from_system_conf() else {
        return Ok(fallback);
    };
    let name = format!("_xmpp-client._tcp.{domain}.");
    let lookup = tokio::time::timeout(SRV_TIMEOUT, resolver.srv_lookup(name)).await;
    let records: Vec<Srv> = match lookup {
        Ok(Ok(found)) => found
            .iter()
            .map(|r| Srv {
                priority: r.priority(),
                weight: r.weight(),
                port: r.port(),
                target: r.target().to_utf8().trim_end_matches('.').to_string(),
            })
            .collect(),
        // No records, no resolver, or too slow: the domain itself (RFC 6120 §3.2.2).
        _ => return Ok(fallback),
    };
    match order(records, &mut rand::thread_rng()) {
        Ok(list) if !list.is_empty() => Ok(list),
        Ok(_) => Ok(fallback),
        Err(_) => Err(ResolveError::NoService(domain.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5222,
            target: target.into(),
        }
    }

    #[test]
    fn priorities_come_first_and_weights_share_within_one() {
        let records = vec![srv(20, 0, "c"), srv(10, 90, "a"), srv(10, 10, "b")];
        let mut firsts = [0u32; 2];
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let o = order(records.clone(), &mut rng).unwrap();
            assert_eq!(o.len(), 3);
            assert_eq!(o[2].0, "c", "priority 20 always last");
            firsts[usize::from(o[0].0 == "b")] += 1;
        }
        // About 90 % "a" first; far from 50/50 either way.
        assert!(firsts[0] > 1600 && firsts[1] > 100, "{firsts:?}");
    }

    #[test]
    fn a_lone_dot_target_means_no_service() {
        assert!(order(vec![srv(0, 0, "")], &mut rand::thread_rng()).is_err());
        assert_eq!(
            order(vec![], &mut rand::thread_rng()).unwrap(),
            Vec::<(String, u16)>::new()
        );
    }

    #[tokio::test]
    async fn a_domain_without_records_falls_back_to_itself() {
        // "invalid" is reserved (RFC 6761): it never has records.
        let c = candidates("example.invalid").await.unwrap();
        assert_eq!(c, vec![("example.invalid".to_string(), DEFAULT_C2S_PORT)]);
    }
}
