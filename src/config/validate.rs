//! What serde cannot check, all in one place: ranges, the component domain's form, one
//! key's default taken from another, limits that must fit together, the relay-chain
//! rules, and the secret's source. Every error names its key.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::ops::Range;
use std::time::Duration;

use super::defaults::*;
use super::error::ConfigError;
use super::file::File;
use super::model::{ComponentConfig, Config, Limits, RelayConfig, Timeouts};
use super::secret::{self, SecretSource};
use crate::core::relay_policy::{Pin, RelayPolicy, TargetRule};

/// Checks `file` and builds the configuration the code runs with.
pub(super) fn validate(
    file: &File,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(Config, SecretSource), ConfigError> {
    let c = &file.component;
    check_domain(&c.jid)?;
    let (secret, source) = secret::read(c, env)?;
    let component = ComponentConfig {
        jid: c.jid.clone(),
        server: c.server.clone(),
        secret,
        version_os: c.version_os,
        max_depth: in_range(c.max_depth, MAX_DEPTH_RANGE, "component.max_depth")?,
        max_inbound_stanza_size: in_range(
            c.max_inbound_stanza_size,
            MAX_INBOUND_STANZA_RANGE,
            "component.max_inbound_stanza_size",
        )?,
        max_stanza_size: max_stanza_size(c.max_stanza_size)?,
    };
    let relay = relay(file, &component.jid)?;
    let t = &file.timeouts;
    let timeouts = Timeouts {
        wait: limit(t.wait),
        expire: limit(t.expire),
        handshake: Duration::from_millis(t.handshake.get()),
        drain: Duration::from_millis(t.drain.get()),
    };
    check_limits(&file.limits, component.max_stanza_size)?;
    let config = Config {
        component,
        relay,
        http: file.http.clone(),
        tls: file.tls.clone(),
        metrics: file.metrics.clone(),
        timeouts,
        limits: file.limits,
        log: file.log,
        admins: admin_jids(&file.admin.jids)?,
    };
    Ok((config, source))
}

fn max_stanza_size(value: usize) -> Result<usize, ConfigError> {
    if (MIN_MAX_STANZA_SIZE..PROSODY_COMPONENT_STANZA_LIMIT).contains(&value) {
        return Ok(value);
    }
    Err(ConfigError::invalid(
        "component.max_stanza_size",
        format!(
            "must be {MIN_MAX_STANZA_SIZE} to {} (below Prosody's component stanza limit)",
            PROSODY_COMPONENT_STANZA_LIMIT - 1
        ),
    ))
}

fn relay(file: &File, jid: &str) -> Result<RelayConfig, ConfigError> {
    let r = &file.relay;
    let host = match &r.host {
        Some(host) if host.is_empty() || host.contains(char::is_whitespace) => {
            return Err(ConfigError::invalid(
                "relay.host",
                format!("invalid host name {host:?}"),
            ));
        }
        Some(host) => host.clone(),
        None => jid.to_owned(),
    };
    let block_size = r.block_size.get();
    if block_size > MAX_BLOCK_SIZE {
        return Err(ConfigError::invalid(
            "relay.block_size",
            format!("must be at most {MAX_BLOCK_SIZE}"),
        ));
    }
    let mut rules = Vec::new();
    for (i, rule) in r.allow_targets.iter().enumerate() {
        rules.push(
            TargetRule::parse(rule)
                .map_err(|e| ConfigError::invalid(&format!("relay.allow_targets[{i}]"), e))?,
        );
    }
    let mut pins = BTreeMap::new();
    for (domain, addr) in &r.targets {
        let key = format!("relay.targets.{domain:?}");
        if TargetRule::parse(domain).map_or(true, |r| !matches!(r, TargetRule::Domain(_))) {
            return Err(ConfigError::invalid(&key, "the key must be a domain"));
        }
        pins.insert(
            domain.clone(),
            Pin::parse(addr).map_err(|e| ConfigError::invalid(&key, e))?,
        );
    }
    Ok(RelayConfig {
        listen: r.listen,
        host,
        // 0 only when `listen` has port 0 and no port is set (tests): see `RelayConfig::port`.
        port: r.port.map_or(r.listen.port(), |p| p.get()),
        window: r.window.get(),
        block_size,
        max_connections: r.max_connections.get(),
        max_connections_per_ip: r.max_connections_per_ip.get(),
        max_pending_per_ip: r.max_pending_per_ip.get(),
        loopback_congestion: congestion_name(&r.loopback_congestion)?,
        policy: RelayPolicy::new(rules, pins),
    })
}

/// `relay.loopback_congestion`: `""` for the system's choice, else a name the kernel
/// could know (whether it does is checked at start: `relay::tcp_options::check`).
fn congestion_name(name: &str) -> Result<Option<String>, ConfigError> {
    if name.is_empty() {
        return Ok(None);
    }
    let fits = name.len() <= MAX_CONGESTION_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !fits {
        return Err(ConfigError::invalid(
            "relay.loopback_congestion",
            format!(
                "a congestion control name is at most {MAX_CONGESTION_NAME} letters, digits, \
                 '_' or '-' (see /proc/sys/net/ipv4/tcp_available_congestion_control), \
                 or \"\" to keep the system's"
            ),
        ));
    }
    Ok(Some(name.to_owned()))
}

fn check_limits(limits: &Limits, max_stanza_size: usize) -> Result<(), ConfigError> {
    // A stream's own stats reply carries all its comments: if they could not fit, every
    // stats on that stream would be refused, so refuse the configuration instead.
    let stats_reply = limits
        .stream_comment_bytes
        .saturating_add(limits.attribute_bytes.saturating_mul(4))
        .saturating_add(STATS_REPLY_OVERHEAD);
    if stats_reply > max_stanza_size {
        return Err(ConfigError::invalid(
            "limits.stream_comment_bytes",
            format!(
                "with 4 × limits.attribute_bytes and {STATS_REPLY_OVERHEAD} bytes of stats \
                 attributes it must fit in component.max_stanza_size ({max_stanza_size})"
            ),
        ));
    }
    Ok(())
}

/// `[admin] jids`: each a bare JID (the XMPP server stamps `from`, and dsps compares
/// its bare part), kept in lower case since the domain and, in practice, the
/// localpart are compared without case.
fn admin_jids(jids: &[String]) -> Result<Vec<String>, ConfigError> {
    jids.iter()
        .enumerate()
        .map(|(i, jid)| {
            let key = format!("admin.jids[{i}]");
            match xmpp_parsers::jid::Jid::new(jid) {
                Ok(j) if j.resource().is_none() => Ok(jid.to_lowercase()),
                Ok(_) => Err(ConfigError::invalid(
                    &key,
                    format!("{jid:?} has a resource; give the bare JID"),
                )),
                Err(e) => Err(ConfigError::invalid(
                    &key,
                    format!("invalid JID {jid:?}: {e}"),
                )),
            }
        })
        .collect()
}

fn in_range(value: usize, range: Range<usize>, key: &str) -> Result<usize, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be {} to {}", range.start, range.end - 1),
        ))
    }
}

/// Milliseconds to a limit, 0 meaning none (PROFILE 13).
fn limit(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// The component JID must be a bare domain: it is the `to` of the XEP-0114 login and the
/// domain part of every peer resource we hand out.
fn check_domain(jid: &str) -> Result<(), ConfigError> {
    let reason = if jid.is_empty() {
        Some("must not be empty")
    } else if jid.contains(['@', '/']) {
        Some("must be a plain domain, without '@' or '/'")
    } else if jid.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain spaces or control characters")
    } else if jid.split('.').any(str::is_empty) {
        Some("must not have empty labels (leading, trailing or doubled '.')")
    } else if jid.len() > 1023 {
        Some("is longer than 1023 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::invalid(
            "component.jid",
            format!("invalid domain {jid:?}: {reason}"),
        )),
        None => Ok(()),
    }
}
