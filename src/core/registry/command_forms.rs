//! The data forms of the admin commands: what each form asks and how each result
//! shows the registry's records (`operator`). Pure presentation: no rights are
//! checked and nothing is changed here.

use minidom::Element;
use xmpp_parsers::data_forms::{DataFormType, FieldType};

use super::operator::{Counts, PeerSummary, StreamSummary};
use super::StreamId;
use crate::core::link_status::LinkStatus;
use crate::proto::forms::{self, Column, Table};

/// Peers listed by name in one stream's row; the rest are counted.
pub const PEERS_PER_ROW: usize = 32;
/// Streams offered as choices in a drop form; past this the field takes a number.
pub const STREAM_CHOICES: usize = 50;
/// Longest drop reason, in bytes (it travels in the drop notice).
pub const MAX_REASON_BYTES: usize = 1024;

/// The columns of "List streams".
pub const STREAM_COLUMNS: [Column; 8] = [
    Column {
        var: "stream",
        label: "Stream",
        multi: false,
    },
    Column {
        var: "creator",
        label: "Creator",
        multi: false,
    },
    Column {
        var: "age",
        label: "Age (s)",
        multi: false,
    },
    Column {
        var: "seats",
        label: "Peers by role and status",
        multi: false,
    },
    Column {
        var: "peers",
        label: "Peers",
        multi: true,
    },
    Column {
        var: "bytes_in",
        label: "Bytes in",
        multi: false,
    },
    Column {
        var: "bytes_out",
        label: "Bytes out",
        multi: false,
    },
    Column {
        var: "public",
        label: "Public JID",
        multi: false,
    },
];

fn role_name(rank: u8, n: usize) -> String {
    let name = ["master", "slave", "relay"][usize::from(rank.min(2))];
    format!("{n} {name}{}", if n == 1 { "" } else { "s" })
}

/// `1 master: 1 connect; 2 slaves: 1 connect, 1 wait` (roles without seats left out).
pub fn seats_by_role(s: &StreamSummary) -> String {
    let tally = s.tally();
    let mut parts = Vec::new();
    for rank in 0..3u8 {
        let of_role: Vec<(&str, usize)> = tally
            .iter()
            .filter(|((r, _), _)| *r == rank)
            .map(|((_, status), n)| (*status, *n))
            .collect();
        if of_role.is_empty() {
            continue;
        }
        let total = of_role.iter().map(|(_, n)| n).sum();
        let statuses: Vec<String> = of_role.iter().map(|(st, n)| format!("{n} {st}")).collect();
        parts.push(format!(
            "{}: {}",
            role_name(rank, total),
            statuses.join(", ")
        ));
    }
    parts.join("; ")
}

fn peer_line(p: &PeerSummary) -> String {
    format!(
        "{} {} {} {} in {} out (id {})",
        p.jid,
        p.role.as_str(),
        p.status,
        p.bytes_in,
        p.bytes_out,
        p.id
    )
}

/// One stream's row of "List streams".
pub fn stream_row(table: &Table, s: &StreamSummary) -> Element {
    let mut peers: Vec<String> = s.peers.iter().take(PEERS_PER_ROW).map(peer_line).collect();
    if s.peers.len() > PEERS_PER_ROW {
        peers.push(format!("… and {} more", s.peers.len() - PEERS_PER_ROW));
    }
    let (bytes_in, bytes_out) = s.peers.iter().fold((0u64, 0u64), |(i, o), p| {
        (i.saturating_add(p.bytes_in), o.saturating_add(p.bytes_out))
    });
    table.row(vec![
        vec![s.id.to_string()],
        vec![s.creator.clone()],
        vec![s.age_secs.to_string()],
        vec![seats_by_role(s)],
        peers,
        vec![bytes_in.to_string()],
        vec![bytes_out.to_string()],
        s.public_jid.iter().cloned().collect(),
    ])
}

/// "Server info" as one result form.
#[derive(Debug, Clone)]
pub struct ServerInfo<'a> {
    /// The component domain.
    pub domain: &'a str,
    /// When the service started (UNIX seconds) and how long ago (seconds).
    pub started_unix: u64,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The registry's counts.
    pub counts: Counts,
    /// The component link.
    pub link: &'a LinkStatus,
    /// The current log filter, if it can be changed.
    pub log_filter: Option<&'a str>,
    /// Whether the service is stopping.
    pub draining: bool,
}

/// The result form of "Server info".
pub fn server_info(i: &ServerInfo) -> Element {
    let c = &i.counts;
    let fields = vec![
        forms::shown(
            "version",
            "Version",
            format!("dsps {}", env!("CARGO_PKG_VERSION")),
        ),
        forms::shown("domain", "Component", i.domain),
        forms::shown("started", "Started (UNIX time)", i.started_unix.to_string()),
        forms::shown("uptime", "Uptime (s)", i.uptime_secs.to_string()),
        forms::shown("streams", "Streams", c.streams.to_string()),
        forms::shown(
            "public_streams",
            "Public streams",
            c.public_streams.to_string(),
        ),
        forms::shown("peers", "Peers", c.seats.to_string()),
        forms::shown("connected", "Peers connected", c.connected.to_string()),
        forms::shown("waiting", "Peers waiting", c.waiting.to_string()),
        forms::shown("invited", "Peers invited", c.invited.to_string()),
        forms::shown(
            "handshakes",
            "Handshakes under way",
            c.handshakes.to_string(),
        ),
        forms::shown(
            "relay_links_out",
            "Relay links dialled",
            c.relay_links_out.to_string(),
        ),
        forms::shown(
            "relay_links_in",
            "Peers through relay links",
            c.relay_links_in.to_string(),
        ),
        forms::shown("link", "Component link", i.link.describe()),
        forms::shown(
            "reconnects",
            "Link reconnects",
            i.link.reconnects().to_string(),
        ),
        forms::shown(
            "log_filter",
            "Log filter",
            i.log_filter
                .unwrap_or("(fixed: this process cannot change it)"),
        ),
        forms::shown(
            "draining",
            "Shutting down",
            if i.draining { "yes" } else { "no" },
        ),
    ];
    forms::form(DataFormType::Result_, "Server info", None, fields)
}

/// The stream field of a drop form: a choice of the live streams (`(id, label)`),
/// or a number to type when there are too many to offer.
fn stream_field(streams: &[(StreamId, String)]) -> xmpp_parsers::data_forms::Field {
    let field = if streams.len() <= STREAM_CHOICES {
        forms::choice(
            "stream",
            "Stream",
            streams
                .iter()
                .map(|(id, label)| (id.to_string(), label.clone()))
                .collect(),
        )
    } else {
        forms::described(
            forms::input("stream", "Stream", FieldType::TextSingle, None),
            "the stream's number, as List streams shows it",
        )
    };
    forms::required(field)
}

fn reason_field() -> xmpp_parsers::data_forms::Field {
    forms::described(
        forms::input("reason", "Reason", FieldType::TextSingle, None),
        "optional; sent to the dropped peers in their drop notice",
    )
}

/// The form of "Drop a peer".
pub fn drop_peer_form(streams: &[(StreamId, String)]) -> Element {
    let jid = forms::required(forms::described(
        forms::input("jid", "Peer", FieldType::JidSingle, None),
        "the peer's full JID as List streams shows it; a bare JID drops every seat of that account",
    ));
    forms::form(
        DataFormType::Form,
        "Drop a peer",
        Some("Its connection is closed and it gets a drop notice; the others are told."),
        vec![stream_field(streams), jid, reason_field()],
    )
}

/// The form of "End a stream".
pub fn drop_stream_form(streams: &[(StreamId, String)]) -> Element {
    forms::form(
        DataFormType::Form,
        "End a stream",
        Some("What masters already sent is delivered to the slaves still connected, then every peer is dropped."),
        vec![stream_field(streams), reason_field()],
    )
}

/// The form of "Set log level".
pub fn log_form(current: &str) -> Element {
    let field = forms::required(forms::described(
        forms::input("filter", "Log filter", FieldType::TextSingle, Some(current)),
        "RUST_LOG syntax: a level (error, warn, info, debug, trace, off) or target=level, comma separated, e.g. dsps=debug,info",
    ));
    forms::form(
        DataFormType::Form,
        "Set log level",
        Some("Takes effect at once and lasts until dsps restarts."),
        vec![field],
    )
}

/// How a drop form labels a stream: `3: alice@example.org/desk, 4 peers`.
pub fn stream_label(s: &StreamSummary) -> String {
    format!(
        "{}: {}, {} peer{}",
        s.id,
        s.creator,
        s.peers.len(),
        if s.peers.len() == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::query::Role;

    fn peer(id: u32, role: Role, status: &'static str) -> PeerSummary {
        PeerSummary {
            id,
            jid: format!("p{id}@localhost/r"),
            role,
            status,
            bytes_in: 10 * u64::from(id),
            bytes_out: 1,
        }
    }

    fn stream(peers: Vec<PeerSummary>) -> StreamSummary {
        StreamSummary {
            id: 7,
            creator: "p1@localhost/r".into(),
            age_secs: 42,
            public_jid: None,
            peers,
        }
    }

    #[test]
    fn seats_are_counted_by_role_then_status() {
        let s = stream(vec![
            peer(1, Role::Master, "connect"),
            peer(2, Role::Slave, "connect"),
            peer(3, Role::Slave, "wait"),
            peer(4, Role::Slave, "expire"),
        ]);
        assert_eq!(
            seats_by_role(&s),
            "1 master: 1 connect; 3 slaves: 1 connect, 1 expire, 1 wait"
        );
        assert_eq!(stream_label(&s), "7: p1@localhost/r, 4 peers");
    }

    #[test]
    fn a_row_names_at_most_its_share_of_peers_and_adds_up_the_bytes() {
        let many: Vec<PeerSummary> = (1..=40).map(|i| peer(i, Role::Slave, "connect")).collect();
        let s = stream(many);
        let t = Table::new("Streams", &STREAM_COLUMNS);
        let row = stream_row(&t, &s);
        let cells: Vec<&Element> = row.children().collect();
        assert_eq!(cells.len(), STREAM_COLUMNS.len());
        let peers: Vec<String> = cells[4].children().map(|v| v.text()).collect();
        assert_eq!(peers.len(), PEERS_PER_ROW + 1);
        assert_eq!(peers[0], "p1@localhost/r slave connect 10 in 1 out (id 1)");
        assert_eq!(peers[PEERS_PER_ROW], "… and 8 more");
        let total_in: u64 = (1..=40).map(|i| 10 * i).sum();
        assert_eq!(
            cells[5].children().next().unwrap().text(),
            total_in.to_string()
        );
        assert_eq!(cells[6].children().next().unwrap().text(), "40");
        assert_eq!(cells[7].children().count(), 0, "not public");
    }

    #[test]
    fn drop_forms_offer_the_streams_until_there_are_too_many() {
        let few = vec![(1, "1: a".to_string()), (2, "2: b".to_string())];
        let text = String::from(&drop_stream_form(&few));
        assert!(text.contains("type='list-single'"), "{text}");
        assert!(
            text.contains("<option label='2: b'><value>2</value></option>"),
            "{text}"
        );
        let lots: Vec<(StreamId, String)> = (0..=STREAM_CHOICES as u64)
            .map(|i| (i, i.to_string()))
            .collect();
        let text = String::from(&drop_peer_form(&lots));
        assert!(!text.contains("<option"), "{text}");
        assert!(text.contains("var='jid'"), "{text}");
    }
}
