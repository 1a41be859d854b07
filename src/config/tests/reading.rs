//! Values are read, and absent keys get their defaults.

use std::time::Duration;

use super::*;
use crate::core::relay_policy::{Pin, RelayPolicy, TargetRule};

#[test]
fn relay_targets_are_off_by_default_and_read_when_given() {
    let config = Config::parse(MINIMAL).unwrap();
    assert!(!config.relay.policy.enabled());
    let text = format!(
        "{MINIMAL}allow_targets = [\"dsps2.example.org\", \"127.0.0.1\", \"10.0.0.0/8\"]\n\
         [relay.targets]\n\"dsps2.example.org\" = \"192.0.2.7:5290\"\n"
    );
    let config = Config::parse(&text).unwrap();
    let expected = RelayPolicy::new(
        vec![
            TargetRule::Domain("dsps2.example.org".into()),
            TargetRule::parse("127.0.0.1").unwrap(),
            TargetRule::parse("10.0.0.0/8").unwrap(),
        ],
        [(
            "dsps2.example.org".to_string(),
            Pin::parse("192.0.2.7:5290").unwrap(),
        )]
        .into(),
    );
    assert_eq!(config.relay.policy, expected);
}

#[test]
fn log_defaults_to_text_with_addresses_and_reads_its_keys() {
    assert_eq!(Config::parse(MINIMAL).unwrap().log, LogConfig::default());
    assert_eq!(
        LogConfig::default(),
        LogConfig {
            format: LogFormat::Text,
            ip_addresses: true
        }
    );
    let text = format!("{MINIMAL}[log]\nformat = \"json\"\nip_addresses = false\n");
    assert_eq!(
        Config::parse(&text).unwrap().log,
        LogConfig {
            format: LogFormat::Json,
            ip_addresses: false
        }
    );
    let message = err(&format!("{MINIMAL}[log]\nformat = \"xml\"\n"));
    assert!(message.contains("log.format"), "{message}");
    let message = err(&format!("{MINIMAL}[log]\nlevel = \"debug\"\n"));
    assert!(message.contains("log.level"), "{message}");
}

#[test]
fn full_example_parses() {
    let config = Config::parse(FULL).unwrap();
    assert_eq!(config.component.jid, "dsps.localhost");
    assert_eq!(
        config.component.server,
        ServerAddr {
            host: "127.0.0.1".into(),
            port: 5347
        }
    );
    assert_eq!(config.component.secret, "s3cret");
    assert!(!config.component.version_os);
    assert_eq!(config.relay.listen, "0.0.0.0:5290".parse().unwrap());
    assert_eq!(config.relay.host, "dsps.example.org");
    assert_eq!(config.relay.port, 5290);
    assert_eq!(
        config.http,
        Some(HttpConfig {
            listen: "0.0.0.0:80".parse().unwrap()
        })
    );
    assert_eq!(
        config.tls,
        Some(TlsConfig {
            cert: "cert.pem".into(),
            key: "key.pem".into()
        })
    );
    assert_eq!(config.timeouts.wait, Some(Duration::from_secs(60)));
    assert_eq!(config.timeouts.expire, Some(Duration::from_secs(120)));
    assert_eq!(config.timeouts.handshake, Duration::from_secs(10));
}

#[test]
fn minimal_config_gets_defaults() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(config.relay.listen, "[::]:6000".parse().unwrap());
    assert_eq!(config.relay.host, "dsps.localhost");
    assert_eq!(config.relay.port, 6000);
    assert_eq!(config.relay.window, DEFAULT_WINDOW);
    assert_eq!(config.relay.block_size, DEFAULT_BLOCK_SIZE);
    assert_eq!(config.relay.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(
        config.relay.max_connections_per_ip,
        DEFAULT_MAX_CONNECTIONS_PER_IP
    );
    assert_eq!(config.relay.max_pending_per_ip, DEFAULT_MAX_PENDING_PER_IP);
    assert_eq!(config.relay.loopback_congestion.as_deref(), Some("reno"));
    assert_eq!(
        config.timeouts.drain,
        Duration::from_millis(DEFAULT_DRAIN_MS)
    );
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.http, None);
    assert_eq!(config.tls, None);
    assert_eq!(config.timeouts.wait_ms(), DEFAULT_WAIT_MS);
    assert_eq!(config.timeouts.expire_ms(), DEFAULT_EXPIRE_MS);
    assert_eq!(
        config.timeouts.handshake,
        Duration::from_millis(DEFAULT_HANDSHAKE_MS)
    );
}

#[test]
fn zero_wait_and_expire_mean_no_limit() {
    let config = Config::parse(&format!("{MINIMAL}[timeouts]\nwait = 0\nexpire = 0\n")).unwrap();
    assert_eq!(config.timeouts.wait, None);
    assert_eq!(config.timeouts.expire, None);
    assert_eq!(config.timeouts.wait_ms(), 0);
}

#[test]
fn extra_relay_keys_parse() {
    let text = MINIMAL.replace(
        "[relay]\n",
        "[relay]\nwindow = 8\nblock_size = 4096\nmax_connections = 3\n\
         max_connections_per_ip = 2\nmax_pending_per_ip = 1\nloopback_congestion = \"cubic\"\n",
    );
    let config = Config::parse(&text).unwrap();
    assert_eq!(config.relay.window, 8);
    assert_eq!(config.relay.block_size, 4096);
    assert_eq!(config.relay.max_connections, 3);
    assert_eq!(config.relay.max_connections_per_ip, 2);
    assert_eq!(config.relay.max_pending_per_ip, 1);
    assert_eq!(config.relay.loopback_congestion.as_deref(), Some("cubic"));
    let text = MINIMAL.replace("[relay]\n", "[relay]\nloopback_congestion = \"\"\n");
    assert_eq!(
        Config::parse(&text).unwrap().relay.loopback_congestion,
        None
    );
    let text = format!("{MINIMAL}[timeouts]\ndrain = 2500\n");
    assert_eq!(
        Config::parse(&text).unwrap().timeouts.drain,
        Duration::from_millis(2500)
    );
    let text = MINIMAL.replace("[component]\n", "[component]\nversion_os = true\n");
    assert!(Config::parse(&text).unwrap().component.version_os);
}

#[test]
fn limits_are_read() {
    let text =
        format!("{MINIMAL}[limits]\nstreams = 5\nstreams_per_jid = 2\nseats_per_stream = 9\n");
    let limits = Config::parse(&text).unwrap().limits;
    assert_eq!(
        (
            limits.streams,
            limits.streams_per_jid,
            limits.seats_per_stream
        ),
        (5, 2, 9)
    );
}

#[test]
fn size_limits_have_documented_defaults() {
    let config = Config::parse(MINIMAL).unwrap();
    let l = config.limits;
    assert_eq!(
        (
            l.comment_bytes,
            l.comments_per_request,
            l.stream_comment_bytes,
            l.peers_per_admin,
            l.attribute_bytes
        ),
        (4096, 16, 16384, 64, 3072)
    );
    assert_eq!(config.component.max_stanza_size, 262_144);
    assert_eq!(config.component.max_stanza_size, DEFAULT_MAX_STANZA_SIZE);
}

#[test]
fn inbound_bounds_and_reply_rates_have_defaults_ranges_and_are_read() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(
        (
            config.component.max_depth,
            config.component.max_inbound_stanza_size
        ),
        (64, 1 << 20)
    );
    let l = config.limits;
    assert_eq!(
        (
            l.streams_per_account,
            l.reply_bytes_per_second,
            l.reply_bytes_per_second_total
        ),
        (256, 512 * 1024, 2 * 1024 * 1024)
    );
    let with = |line: &str| MINIMAL.replace("[component]\n", &format!("[component]\n{line}\n"));
    let c = Config::parse(&with("max_depth = 8\nmax_inbound_stanza_size = 16384")).unwrap();
    assert_eq!(
        (c.component.max_depth, c.component.max_inbound_stanza_size),
        (8, 16384)
    );
    for (line, want) in [
        ("max_depth = 7", "component.max_depth: must be 8 to 1024"),
        ("max_depth = 1025", "component.max_depth: must be 8 to 1024"),
        (
            "max_inbound_stanza_size = 16383",
            "component.max_inbound_stanza_size: must be 16384 to 67108864",
        ),
    ] {
        assert_eq!(err(&with(line)), want, "{line}");
    }
}

#[test]
fn size_limits_are_read() {
    let text = format!(
        "{MINIMAL}[limits]\ncomment_bytes = 10\ncomments_per_request = 2\n\
         stream_comment_bytes = 30\npeers_per_admin = 5\nattribute_bytes = 100\n"
    )
    .replace("[component]\n", "[component]\nmax_stanza_size = 8192\n");
    let config = Config::parse(&text).unwrap();
    let l = config.limits;
    assert_eq!(
        (
            l.comment_bytes,
            l.comments_per_request,
            l.stream_comment_bytes,
            l.peers_per_admin,
            l.attribute_bytes
        ),
        (10, 2, 30, 5, 100)
    );
    assert_eq!(config.component.max_stanza_size, 8192);
}

#[test]
fn secret_stays_out_of_debug_output() {
    let config = Config::parse(MINIMAL).unwrap();
    assert!(!format!("{config:?}").contains("s3cret"));
    let loaded = Loaded::from_text(MINIMAL, None, &|_| None).unwrap();
    let shown = format!("{loaded:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn the_server_may_be_a_host_name_or_an_address() {
    for (written, host, port, shown) in [
        ("localhost:5347", "localhost", 5347, "localhost:5347"),
        (
            "xmpp.example.org:5347",
            "xmpp.example.org",
            5347,
            "xmpp.example.org:5347",
        ),
        ("127.0.0.1:5347", "127.0.0.1", 5347, "127.0.0.1:5347"),
        ("[::1]:5347", "::1", 5347, "[::1]:5347"),
    ] {
        let text = MINIMAL.replace("127.0.0.1:5347", written);
        let server = Config::parse(&text).unwrap().component.server;
        assert_eq!(
            (server.host.as_str(), server.port),
            (host, port),
            "{written}"
        );
        // What the component link dials: brackets back around an IPv6 address.
        assert_eq!(server.to_string(), shown);
    }
}

#[test]
fn load_resolves_relative_paths_from_the_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsps.toml");
    std::fs::write(dir.path().join("secret"), "from-file\n").unwrap();
    let text = FULL.replace("secret = \"s3cret\"", "secret_file = \"secret\"");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let tls = config.tls.unwrap();
    assert_eq!(tls.cert, dir.path().join("cert.pem"));
    assert_eq!(tls.key, dir.path().join("key.pem"));
    assert_eq!(config.component.secret, "from-file");
}

#[test]
fn admin_jids_are_bare_jids_read_in_lower_case() {
    assert!(Config::parse(MINIMAL).unwrap().admins.is_empty());
    let text = format!("{MINIMAL}[admin]\njids = [\"Ops@Example.org\", \"root@x\"]\n");
    assert_eq!(
        Config::parse(&text).unwrap().admins,
        ["ops@example.org", "root@x"]
    );
    assert_eq!(
        err(&format!(
            "{MINIMAL}[admin]\njids = [\"a@b\", \"ops@x/laptop\"]\n"
        )),
        "admin.jids[1]: \"ops@x/laptop\" has a resource; give the bare JID"
    );
    assert!(err(&format!("{MINIMAL}[admin]\njids = [\"@x\"]\n"))
        .starts_with("admin.jids[0]: invalid JID \"@x\""));
    assert!(err(&format!("{MINIMAL}[admin]\njid = []\n")).contains("admin.jid"));
}

#[test]
fn metrics_are_off_by_default_and_listen_on_loopback_when_the_table_is_there() {
    assert_eq!(Config::parse(MINIMAL).unwrap().metrics, None);
    let config = Config::parse(&format!("{MINIMAL}[metrics]\n")).unwrap();
    assert_eq!(
        config.metrics,
        Some(MetricsConfig {
            listen: DEFAULT_METRICS_LISTEN.parse().unwrap()
        })
    );
    let config = Config::parse(FULL).unwrap();
    assert_eq!(
        config.metrics.map(|m| m.listen),
        Some("127.0.0.1:9090".parse().unwrap())
    );
    let config = Config::parse(&format!("{MINIMAL}[metrics]\nlisten = \"[::]:9100\"\n")).unwrap();
    assert_eq!(
        config.metrics.map(|m| m.listen),
        Some("[::]:9100".parse().unwrap())
    );
}
