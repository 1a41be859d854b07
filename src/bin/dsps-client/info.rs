//! `streams`, `stats JID` and `who SEAT`: what the DSPS says about streams, as text
//! tables on stdout or as JSON (`--json`).
//!
//! The JSON shapes are ours, stable field names from the XEP's attributes:
//! `streams` prints an array of stream objects, `stats` one stream object, `who` an
//! array of peers. `created` is the XEP's `init` (UNIX seconds) and `created_utc` the
//! same as `YYYY-MM-DD HH:MM:SS`.

use dsps::proto::query::{StatsResult, WhoResult};
use dsps::proto::xml::to_xml;
use minidom::Element;
use serde::Serialize;

use crate::cli::{StatsArgs, StreamsArgs, WhoArgs};
use crate::failure::{fail, Context, Exit, Result};
use crate::session::{dsps_code, Session};

/// One stream as `streams` and `stats` show it.
#[derive(Debug, Serialize)]
struct StreamView {
    /// The public JID (absent for `stats` of a seat, which names none).
    #[serde(skip_serializing_if = "Option::is_none")]
    jid: Option<String>,
    created: u64,
    created_utc: String,
    public: u32,
    maxpublic: u32,
    masters: u32,
    slaves: u32,
    relays: u32,
    minthroughput: String,
    protocol: String,
    port: u16,
    wait: u64,
    waitdefault: u64,
    expiredefault: u64,
    features: Vec<FeatureView>,
    comments: Vec<String>,
}

#[derive(Debug, Serialize)]
struct FeatureView {
    #[serde(rename = "type")]
    kind: String,
    version: String,
}

/// One peer as `who` shows it.
#[derive(Debug, Serialize)]
struct PeerView {
    jid: String,
    role: String,
    id: String,
    status: String,
    throughput: String,
}

impl StreamView {
    fn new(jid: Option<&str>, s: &StatsResult) -> StreamView {
        StreamView {
            jid: jid.map(str::to_string),
            created: s.init,
            created_utc: utc(s.init),
            public: s.public,
            maxpublic: s.maxpublic,
            masters: s.mastercount,
            slaves: s.slavecount,
            relays: s.relaycount,
            minthroughput: s.minthroughput.clone(),
            protocol: s.protocol.clone(),
            port: s.port,
            wait: s.wait,
            waitdefault: s.waitdefault,
            expiredefault: s.expiredefault,
            features: s
                .features
                .iter()
                .map(|f| FeatureView {
                    kind: f.kind.clone(),
                    version: f.version.clone(),
                })
                .collect(),
            comments: s.comments.iter().map(comment_text).collect(),
        }
    }
}

/// A comment as one line: its text, or its child elements as XML (e.g. file
/// metadata).
fn comment_text(c: &Element) -> String {
    let children: Vec<String> = c.children().filter_map(to_xml).collect();
    let text = if children.is_empty() {
        c.text()
    } else {
        children.join(" ")
    };
    crate::failure::flatten(&text)
}

/// `streams`.
pub async fn streams(s: &Session, args: &StreamsArgs) -> Result<()> {
    let listing = s.dsps.public_streams().await.context(format!(
        "listing the public streams of {}",
        s.dsps.service()
    ))?;
    // A listing entry may name several public JIDs whose statistics all match (XEP
    // "Stream statistics"); show one row per JID.
    let views: Vec<StreamView> = listing
        .iter()
        .flat_map(|st| {
            st.peers
                .iter()
                .map(move |jid| StreamView::new(Some(jid), st))
        })
        .collect();
    if args.json {
        return print_json(&views);
    }
    let mut rows = vec![[
        "JID",
        "CREATED (UTC)",
        "PUBLIC",
        "MASTERS",
        "SLAVES",
        "RELAYS",
        "COMMENTS",
    ]
    .map(String::from)];
    for v in &views {
        rows.push([
            v.jid.clone().unwrap_or_default(),
            v.created_utc.clone(),
            format!("{}/{}", v.public, v.maxpublic),
            v.masters.to_string(),
            v.slaves.to_string(),
            v.relays.to_string(),
            v.comments.join(" | "),
        ]);
    }
    print_table(&rows);
    Ok(())
}

/// `stats JID`.
pub async fn stats(s: &Session, args: &StatsArgs) -> Result<()> {
    let what = format!("stats of {}", args.stream);
    let stats = match s.dsps.stats_at(&args.stream).await {
        Ok(st) => st,
        Err(e) if dsps_code(&e) == Some(404) => {
            return fail(
                Exit::Other,
                what,
                "no such stream: not a public stream of this DSPS, nor a seat of ours",
            )
        }
        Err(e) => return Err(e).context(what),
    };
    // The JID asked about, as `streams --json` names each stream.
    let view = StreamView::new(Some(args.stream.as_str()), &stats);
    if args.json {
        return print_json(&view);
    }
    let features: Vec<String> = view
        .features
        .iter()
        .map(|f| format!("{} {}", f.kind, f.version))
        .collect();
    let lines = [
        ("stream", args.stream.clone()),
        (
            "created",
            format!("{} UTC ({})", view.created_utc, view.created),
        ),
        ("public", format!("{}/{}", view.public, view.maxpublic)),
        ("masters", view.masters.to_string()),
        ("slaves", view.slaves.to_string()),
        ("relays", view.relays.to_string()),
        ("minthroughput", view.minthroughput.clone()),
        ("protocol", view.protocol.clone()),
        ("port", view.port.to_string()),
        ("wait", format!("{} ms", view.wait)),
        ("waitdefault", format!("{} ms", view.waitdefault)),
        ("expiredefault", format!("{} ms", view.expiredefault)),
        ("features", features.join(", ")),
        ("comments", view.comments.join(" | ")),
    ];
    for (k, v) in lines {
        println!("{:<14} {v}", format!("{k}:"));
    }
    Ok(())
}

/// `who SEAT`.
pub async fn who(s: &Session, args: &WhoArgs) -> Result<()> {
    let what = format!("who of {}", args.seat);
    let who: WhoResult = match s.dsps.who_at(&args.seat).await {
        Ok(w) => w,
        Err(e) if dsps_code(&e) == Some(404) => {
            return fail(
                Exit::Other,
                what,
                format!(
                    "no such seat for {}: the DSPS answers only the seat's own full JID (run with the same --jid, resource included)",
                    s.jid()
                ),
            )
        }
        Err(e) => return Err(e).context(what),
    };
    let views: Vec<PeerView> = who
        .peers
        .iter()
        .map(|p| PeerView {
            jid: p.jid.clone(),
            role: p.role.as_str().to_string(),
            id: p.id.clone(),
            status: p.status.clone(),
            throughput: p.throughput.clone(),
        })
        .collect();
    if args.json {
        return print_json(&views);
    }
    let mut rows =
        vec![["JID", "ROLE", "ID", "STATUS", "THROUGHPUT (1/2/4/8/16 s)"].map(String::from)];
    for v in views {
        rows.push([v.jid, v.role, v.id, v.status, v.throughput]);
    }
    print_table(&rows);
    Ok(())
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| crate::failure::Failure::new(Exit::Other, "writing JSON", e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Prints rows with columns padded to their widest cell (the last one unpadded).
fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// UNIX seconds as `YYYY-MM-DD HH:MM:SS` (UTC, proleptic Gregorian).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_match_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
    }

    #[test]
    fn comments_show_text_or_their_elements() {
        let text: Element = "<comment xmlns='jabber:iq:dsps'> live\n radio </comment>"
            .parse()
            .expect("test XML");
        assert_eq!(comment_text(&text), "live radio");
        let file: Element =
            "<comment xmlns='jabber:iq:dsps'><file name='a' size='1' sha256='00'/></comment>"
                .parse()
                .expect("test XML");
        assert!(
            comment_text(&file).starts_with("<file "),
            "{}",
            comment_text(&file)
        );
    }
}
