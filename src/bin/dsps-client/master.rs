//! What `send` and `publish` share as the stream's master: wait until the audience
//! has connected, stream a source to the relay while watching the peers, and know
//! when the DSPS holds everything we sent.
//!
//! Order matters (XEP-0037 "Stream use"): data sent before a peer connects never
//! reaches it, so nothing is written until every awaited peer is connected. At the
//! end we half-close; the DSPS forwards what it read and then closes our connection,
//! so EOF on our socket means the data is queued for the receivers. The caller then
//! leaves the stream, which ends it: the DSPS delivers what is queued and drops the
//! slaves (docs/protocol-notes.md, "Dropping yourself keeps what you sent").

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dsps::client::file_meta::hex;
use dsps::client::session::{ClientError, DspsClient, DspsEvent, Seat};
use dsps::client::transport::RelayConn;
use dsps::proto::query::PresencePush;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::failure::{fail, Context, Exit, Failure, Result};
use crate::progress::Progress;
use crate::session::{closed, sleep_until, Session};

/// Bytes read from the source at a time.
pub const CHUNK: usize = 256 * 1024;
/// How long one write to the relay may make no progress. The stream runs at the
/// pace of its slowest receiver, so this is also how long a stalled receiver may
/// hold everyone up.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the DSPS may take to close our connection after we half-closed it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// After the DSPS closed our connection, how long the upload task may take to say
/// whether it had finished (it has, unless the close cut it off).
const UPLOAD_REPORT: Duration = Duration::from_secs(5);

/// Who a master waits for before it streams.
#[derive(Debug, Clone)]
pub struct Audience {
    /// Invited full JIDs; every one must connect.
    pub invited: Vec<String>,
    /// Public joiners to wait for (any JIDs not invited).
    pub joiners: u32,
}

impl Audience {
    /// The invitee `jid` stands for: the same full JID or, failing that, another
    /// resource of the same account (an invitee may answer from any resource).
    fn invitee(&self, jid: &str) -> Option<&str> {
        self.invited
            .iter()
            .find(|i| i.eq_ignore_ascii_case(jid))
            .or_else(|| {
                self.invited
                    .iter()
                    .find(|i| bare(i).eq_ignore_ascii_case(bare(jid)))
            })
            .map(String::as_str)
    }
}

/// The result of [`stream`].
#[derive(Debug)]
pub struct Streamed {
    /// Bytes written.
    pub bytes: u64,
    /// From the first byte until the DSPS had read the last one.
    pub elapsed: Duration,
    /// SHA-256 of what was written, lowercase hex.
    pub sha256: String,
    /// Invitees that left (or lost their connection) before the end.
    pub left: Vec<String>,
}

/// The bare part of a JID.
pub fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

/// Why an invitee is not coming, from an admin report's `acknowledge` value.
fn not_coming(reason: &str) -> &'static str {
    match reason {
        "reject" => "rejected the invitation (or is not online)",
        "expire" => "did not answer the invitation in time",
        "timeout" => "accepted but never connected to the relay",
        _ => "could not be invited",
    }
}

/// Waits (bounded by `--timeout`) until every invitee and `audience.joiners` public
/// joiners are connected to `seat`'s stream; fails on the first reject, expiry or
/// timeout report, or an invitee that leaves.
pub async fn wait_for_audience(s: &mut Session, seat: &Seat, audience: &Audience) -> Result<()> {
    const WHAT: &str = "waiting for the receivers";
    let mut pending: BTreeSet<String> = audience.invited.iter().cloned().collect();
    let mut joiners: BTreeSet<String> = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + s.timeout;
    while !pending.is_empty() || (joiners.len() as u64) < u64::from(audience.joiners) {
        let Ok(event) = tokio::time::timeout_at(deadline, s.pump.next()).await else {
            let mut missing: Vec<String> = pending.into_iter().collect();
            if (joiners.len() as u64) < u64::from(audience.joiners) {
                missing.push(format!(
                    "{} of {} public joiners",
                    u64::from(audience.joiners) - joiners.len() as u64,
                    audience.joiners
                ));
            }
            return fail(
                Exit::TimedOut,
                WHAT,
                format!(
                    "{} did not connect within {} s",
                    missing.join(", "),
                    s.timeout.as_secs()
                ),
            );
        };
        match event {
            None => return Err(closed(WHAT)),
            Some(DspsEvent::Presence { peer_jid, push }) if peer_jid == seat.peer_jid => {
                for (status, jid) in &push.peers {
                    match (audience.invitee(jid), status.as_str()) {
                        (Some(who), "connect") => {
                            pending.remove(who);
                            s.out.info(&format!("{who} connected"));
                        }
                        (Some(who), "drop") => {
                            return fail(Exit::PeerGone, WHAT, format!("{who} left the stream"))
                        }
                        (None, "connect") if joiners.insert(jid.clone()) => {
                            s.out.info(&format!("{jid} joined"));
                        }
                        (None, "waiting" | "drop") => {
                            joiners.remove(jid);
                        }
                        _ => {}
                    }
                }
            }
            Some(DspsEvent::AdminReport { report, .. }) => {
                if let Some((reason, jid)) = report.peers.first() {
                    return fail(
                        Exit::PeerGone,
                        WHAT,
                        format!("{jid} {}", not_coming(reason)),
                    );
                }
            }
            Some(DspsEvent::Dropped { peer_jid, .. }) if peer_jid == seat.peer_jid => {
                return fail(Exit::PeerGone, WHAT, "the DSPS dropped us from the stream")
            }
            Some(DspsEvent::Invitation(inv)) => reject_busy(s, &inv).await,
            Some(_) => {}
        }
    }
    Ok(())
}

/// Rejects an invitation that arrives while we are busy with our own stream.
pub async fn reject_busy(s: &Session, inv: &dsps::client::session::InvitationRequest) {
    let _ = s.dsps.answer(inv, false).await;
    s.out.info(&format!(
        "rejected an invitation from {}: busy",
        inv.invitation.inviters.join(", ")
    ));
}

/// Streams `source` to the relay connection `conn` of `seat`, with progress and,
/// every `status` seconds, the peers' `who` figures on stderr. Returns once the DSPS
/// has read everything (it closed our connection after our half-close).
pub async fn stream<R>(
    s: &mut Session,
    seat: &Seat,
    conn: RelayConn,
    source: R,
    progress: Progress,
    audience: &Audience,
    status: Option<u64>,
) -> Result<Streamed>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (mut reader, writer) = conn.into_split();
    // What receivers send us is not wanted, but it is read so that the DSPS closing
    // our connection shows up as EOF.
    let mut drain = tokio::spawn(async move {
        while reader.next_block().await?.is_some() {}
        Ok::<(), ClientError>(())
    });
    let started = Instant::now();
    let mut upload = tokio::spawn(upload(source, writer, progress.clone()));
    let _status = status.map(|secs| StatusTask::start(s, seat, progress.clone(), secs));

    let mut left: Vec<String> = Vec::new();
    let mut uploaded: Option<(u64, String)> = None;
    let mut close_deadline = None;
    let outcome = loop {
        tokio::select! {
            done = &mut upload, if uploaded.is_none() => match done {
                Ok(Ok(sent)) => {
                    uploaded = Some(sent);
                    close_deadline = Some(tokio::time::Instant::now() + CLOSE_TIMEOUT);
                }
                Ok(Err(e)) => break Err(e),
                Err(e) => break fail(Exit::Other, "streaming", e.to_string()),
            },
            done = &mut drain => {
                match done {
                    Ok(Ok(())) if uploaded.is_some() => break Ok(()),
                    // The DSPS closes our connection as soon as it has read our
                    // half-close, so EOF can win the race against the upload task's
                    // own completion: give the upload a moment to report.
                    Ok(Ok(())) => match tokio::time::timeout(UPLOAD_REPORT, &mut upload).await {
                        Ok(Ok(Ok(sent))) => {
                            uploaded = Some(sent);
                            break Ok(());
                        }
                        Ok(Ok(Err(e))) => break Err(e),
                        // Closed before we finished: the relay (or the stream) went away.
                        _ => break fail(Exit::PeerGone, "streaming", "the relay closed the connection before the end"),
                    },
                    Ok(Err(e)) => break Err(e).context("reading from the relay"),
                    Err(e) => break fail(Exit::Other, "reading from the relay", e.to_string()),
                }
            },
            _ = sleep_until(close_deadline) => {
                break fail(Exit::TimedOut, "finishing the stream", format!(
                    "the DSPS did not close the connection within {} s after the upload",
                    CLOSE_TIMEOUT.as_secs()
                ));
            },
            event = s.pump.next() => {
                if let Err(e) = watch(s, seat, event, audience, &mut left).await {
                    break Err(e);
                }
            }
        }
    };
    upload.abort();
    drain.abort();
    match (outcome, uploaded) {
        (Ok(()), Some((bytes, sha256))) => {
            progress.finish();
            Ok(Streamed {
                bytes,
                elapsed: started.elapsed(),
                sha256,
                left,
            })
        }
        (Err(e), _) => {
            progress.abandon();
            Err(e)
        }
        (Ok(()), None) => unreachable!("the loop ends well only after the upload"),
    }
}

/// Handles one event while streaming: notes invitees that leave or lose their
/// connection (they miss data); fails when we are dropped, when the XMPP link is
/// gone (we could not leave cleanly), or when there are invitees and all have left.
async fn watch(
    s: &Session,
    seat: &Seat,
    event: Option<DspsEvent>,
    audience: &Audience,
    left: &mut Vec<String>,
) -> Result<()> {
    const WHAT: &str = "streaming";
    match event {
        None => Err(closed(WHAT)),
        Some(DspsEvent::Dropped { peer_jid, .. }) if peer_jid == seat.peer_jid => {
            fail(Exit::PeerGone, WHAT, "the DSPS dropped us from the stream")
        }
        Some(DspsEvent::Presence { peer_jid, push }) if peer_jid == seat.peer_jid => {
            note_departures(s, &push, audience, left);
            if !audience.invited.is_empty()
                && audience.joiners == 0
                && left.len() == audience.invited.len()
            {
                return fail(
                    Exit::PeerGone,
                    WHAT,
                    format!("every receiver left ({})", left.join(", ")),
                );
            }
            Ok(())
        }
        Some(DspsEvent::Invitation(inv)) => {
            reject_busy(s, &inv).await;
            Ok(())
        }
        Some(_) => Ok(()),
    }
}

/// Records invitees whose status went `waiting` (connection broken: it may come
/// back, but has missed data) or `drop`; public joiners leaving are only reported.
fn note_departures(s: &Session, push: &PresencePush, audience: &Audience, left: &mut Vec<String>) {
    for (status, jid) in &push.peers {
        if !matches!(status.as_str(), "waiting" | "drop") {
            continue;
        }
        match audience.invitee(jid) {
            Some(who) if !left.iter().any(|l| l == who) => {
                s.out.info(&format!("{who} left before the end"));
                left.push(who.to_string());
            }
            Some(_) => {}
            None => s.out.info(&format!("{jid} left")),
        }
    }
}

/// Copies `source` to the relay, then half-closes. Returns bytes sent and their sha256.
async fn upload<R: AsyncRead + Unpin>(
    mut source: R,
    mut wr: tokio::io::WriteHalf<dsps::client::transport::RelayStream>,
    progress: Progress,
) -> Result<(u64, String)> {
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = Sha256::new();
    let mut sent = 0u64;
    loop {
        let n = source.read(&mut buf).await.context("reading the input")?;
        if n == 0 {
            break;
        }
        match tokio::time::timeout(STALL_TIMEOUT, wr.write_all(&buf[..n])).await {
            Ok(r) => r.context("writing to the relay")?,
            Err(_) => {
                return fail(
                    Exit::TimedOut,
                    "writing to the relay",
                    format!(
                        "the relay accepted no data for {} s (a receiver stalled?)",
                        STALL_TIMEOUT.as_secs()
                    ),
                )
            }
        }
        hasher.update(&buf[..n]);
        sent += n as u64;
        progress.inc(n as u64);
    }
    wr.shutdown()
        .await
        .context("half-closing the relay connection")?;
    Ok((sent, hex(&hasher.finalize())))
}

/// The `--status` task: every few seconds, `who` on our seat, one line per peer.
/// Stops when dropped.
struct StatusTask(JoinHandle<()>);

impl StatusTask {
    fn start(s: &Session, seat: &Seat, progress: Progress, secs: u64) -> StatusTask {
        let dsps: DspsClient = s.dsps.clone();
        let seat = seat.clone();
        let me = s.jid().to_string();
        StatusTask(tokio::spawn(async move {
            let period = Duration::from_secs(secs);
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                ticks.tick().await;
                match dsps.who(&seat).await {
                    Ok(who) => {
                        for p in who.peers.iter().filter(|p| p.jid != me) {
                            progress.println(&format!(
                                "who: {} {} id {} {} {}",
                                p.jid,
                                p.role.as_str(),
                                p.id,
                                p.status,
                                p.throughput
                            ));
                        }
                    }
                    Err(e) => progress.println(&format!("who: {e}")),
                }
            }
        }))
    }
}

impl Drop for StatusTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fails with `Exit::PeerGone` if invitees left before the end.
pub fn check_left(streamed: &Streamed) -> Result<()> {
    if streamed.left.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        Exit::PeerGone,
        "streaming",
        format!(
            "sent {} bytes, but {} left before the end",
            streamed.bytes,
            streamed.left.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitees_match_by_full_then_bare_jid() {
        let a = Audience {
            invited: vec!["bob@x/recv".into(), "carol@x/recv".into()],
            joiners: 0,
        };
        assert_eq!(a.invitee("Bob@x/recv"), Some("bob@x/recv"));
        assert_eq!(a.invitee("carol@x/phone"), Some("carol@x/recv"));
        assert_eq!(a.invitee("dave@x/recv"), None);
    }

    #[test]
    fn bare_strips_the_resource() {
        assert_eq!(bare("a@b/c/d"), "a@b");
        assert_eq!(bare("a@b"), "a@b");
    }
}
