//! The text rendering: every metric present from the start, labelled series
//! complete, counters brought up to what the registry and the link report.

use super::*;
use crate::core::link_status::LinkState;
use crate::core::registry::DeadlineTally;
use crate::proto::query::Role;

/// The value of the sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a sample value is a number"))
}

#[test]
fn a_fresh_service_shows_every_series_at_zero() {
    let text = Metrics::new().render();
    for series in [
        "dsps_streams",
        "dsps_received_bytes_total",
        "dsps_sent_bytes_total",
        "dsps_blocks_total",
        "dsps_slow_peer_disconnects_total",
        "dsps_link_up",
        "dsps_link_reconnects_total",
        "dsps_handshakes_total{outcome=\"ok\"}",
        "dsps_handshakes_total{outcome=\"failed\"}",
        "dsps_handshakes_total{outcome=\"timeout\"}",
        "dsps_handshakes_total{outcome=\"evicted\"}",
        "dsps_handshakes_total{outcome=\"shutdown\"}",
        "dsps_timeouts_total{kind=\"handshake\"}",
        "dsps_timeouts_total{kind=\"wait\"}",
        "dsps_timeouts_total{kind=\"expire\"}",
        "dsps_peers{role=\"master\",status=\"connect\"}",
        "dsps_peers{role=\"relay\",status=\"expire\"}",
    ] {
        assert_eq!(sample(&text, series), Some(0.0), "{series} in\n{text}");
    }
    assert_eq!(text.matches("dsps_peers{").count(), 9, "{text}");
    assert!(
        text.contains("# TYPE dsps_received_bytes counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# UNIT dsps_received_bytes bytes\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn counts_and_observations_show_in_the_rendering() {
    let m = Metrics::new();
    let clone = m.clone();
    clone.received.inc_by(1_048_576);
    clone.sent.inc_by(2_097_300);
    clone.blocks.inc_by(64);
    m.slow_peers.inc();
    m.handshake(HandshakeOutcome::Ok);
    m.handshake(HandshakeOutcome::Ok);
    m.handshake(HandshakeOutcome::Timeout);
    let mut census = Census {
        streams: 1,
        deadlines: DeadlineTally { expire: 2, wait: 1 },
        ..Census::default()
    };
    census.peers[0][0] = 1; // master, connect
    census.peers[1][1] = 3; // slave, wait
    let link = LinkStatus {
        state: LinkState::Online,
        since_unix: 5,
        logins: 4,
    };
    m.observe(Some(&census), Some(&link));
    assert_eq!(census.peers_of(Role::Slave, "wait"), 3);
    let text = m.render();
    let want = [
        ("dsps_received_bytes_total", 1_048_576.0),
        ("dsps_sent_bytes_total", 2_097_300.0),
        ("dsps_blocks_total", 64.0),
        ("dsps_slow_peer_disconnects_total", 1.0),
        ("dsps_handshakes_total{outcome=\"ok\"}", 2.0),
        ("dsps_handshakes_total{outcome=\"timeout\"}", 1.0),
        ("dsps_timeouts_total{kind=\"handshake\"}", 1.0),
        ("dsps_timeouts_total{kind=\"wait\"}", 1.0),
        ("dsps_timeouts_total{kind=\"expire\"}", 2.0),
        ("dsps_streams", 1.0),
        ("dsps_peers{role=\"master\",status=\"connect\"}", 1.0),
        ("dsps_peers{role=\"slave\",status=\"wait\"}", 3.0),
        ("dsps_peers{role=\"slave\",status=\"connect\"}", 0.0),
        ("dsps_link_up", 1.0),
        ("dsps_link_reconnects_total", 3.0),
    ];
    for (series, value) in want {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // The stream ended and the link dropped: gauges follow, counters keep theirs
    // (observing the same totals twice adds nothing).
    let down = LinkStatus {
        state: LinkState::Connecting { attempt: 1 },
        ..link
    };
    census.streams = 0;
    census.peers = [[0; 3]; 3];
    m.observe(Some(&census), Some(&down));
    m.observe(None, None);
    let text = m.render();
    assert_eq!(sample(&text, "dsps_streams"), Some(0.0));
    assert_eq!(
        sample(&text, "dsps_peers{role=\"slave\",status=\"wait\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "dsps_link_up"), Some(0.0));
    assert_eq!(sample(&text, "dsps_link_reconnects_total"), Some(3.0));
    assert_eq!(
        sample(&text, "dsps_timeouts_total{kind=\"expire\"}"),
        Some(2.0)
    );
}

#[test]
fn each_outcome_counts_in_its_own_series() {
    let m = Metrics::new();
    for (i, o) in HandshakeOutcome::ALL.iter().enumerate() {
        assert_eq!(*o as usize, i, "ALL is in declaration order");
        for _ in 0..=i {
            m.handshake(*o);
        }
    }
    let text = m.render();
    for (i, o) in HandshakeOutcome::ALL.iter().enumerate() {
        let series = format!("dsps_handshakes_total{{outcome=\"{}\"}}", o.as_str());
        assert_eq!(sample(&text, &series), Some(i as f64 + 1.0), "{text}");
    }
}
