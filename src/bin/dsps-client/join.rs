//! `join [--public JID] [--from JID]`: become a reader of a stream and copy its data
//! to standard output until the stream ends.
//!
//! With `--public`, join that public stream: `acknowledge status='connect'` as a set
//! to the public JID, then the "Connection waiting" push brings our seat (PROFILE
//! 19). Otherwise wait for an invitation (only from `--from`'s account, if given)
//! and accept it. The stream ends for us when the DSPS closes our connection and
//! sends the drop notice (docs/protocol-notes.md, "Stream shutdown": data first,
//! then the close, then the notice). A live stream may pause for any time, so the
//! data itself has no idle bound; a publisher that vanishes is dropped by the DSPS
//! after its `wait`, which ends the stream.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dsps::client::session::{DspsEvent, Seat};
use tokio::io::AsyncWriteExt;

use crate::cli::JoinArgs;
use crate::failure::{fail, Context, Exit, Failure, Result};
use crate::invite::{self, Offer};
use crate::progress::throughput;
use crate::session::{closed, dsps_code, sleep_until, Session};

/// After EOF on the relay, how long to wait for the drop notice that says the
/// stream ended (it follows the close at once).
const DROP_NOTICE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `join`; returns the summary line (for stderr: stdout carries the data).
pub async fn run(s: &mut Session, args: &JoinArgs) -> Result<String> {
    let seat = match &args.public {
        Some(public) => join_public(s, public).await?,
        None => accept_invitation(s, args).await?,
    };
    match copy_out(s, &seat).await {
        Ok(line) => Ok(line),
        Err(e) => {
            s.leave_quietly(&seat).await;
            Err(e)
        }
    }
}

async fn join_public(s: &mut Session, public: &str) -> Result<Seat> {
    let what = format!("joining {public}");
    if let Err(e) = s.dsps.request_join(public).await {
        let why = match dsps_code(&e) {
            Some(404) => "no such public stream".to_string(),
            Some(503) => "the stream is full (its maxpublic readers have joined)".to_string(),
            _ => return Err(e).context(what),
        };
        return fail(Exit::Other, what, why);
    }
    seat_rejecting_others(s, &what).await
}

async fn accept_invitation(s: &mut Session, args: &JoinArgs) -> Result<Seat> {
    s.out
        .info(&format!("{} is waiting for an invitation", s.jid()));
    let mut queued: VecDeque<Offer> = VecDeque::new();
    let from = args.from.clone();
    let (offer, ()) = invite::next_offer(s, &mut queued, |inv| {
        invite::from_allowed(inv, from.as_deref())
    })
    .await?;
    s.out.info(&format!(
        "accepting the invitation from {}",
        offer.inviters()
    ));
    s.dsps
        .answer(&offer.request, true)
        .await
        .context("accepting the invitation")?;
    seat_rejecting_others(s, "accepting the invitation").await
}

/// Waits for our seat; invitations that arrive meanwhile are rejected (we join one
/// stream).
async fn seat_rejecting_others(s: &mut Session, what: &str) -> Result<Seat> {
    let mut others = Vec::new();
    let seat = s
        .wait_for_seat(what, |e| {
            if let DspsEvent::Invitation(inv) = e {
                others.push(inv);
            }
        })
        .await;
    for inv in others {
        crate::master::reject_busy(s, &inv).await;
    }
    seat
}

/// Copies the stream's data to standard output until the stream ends for us.
async fn copy_out(s: &mut Session, seat: &Seat) -> Result<String> {
    let conn = s.connect_relay(seat).await?;
    s.out
        .info("connected; writing the stream to standard output");
    let (mut reader, _writer) = conn.into_split();
    let mut stdout = tokio::io::stdout();
    let progress = s.out.progress("join", None);
    let mut got = 0u64;
    let mut started = None;
    let mut eof = false;
    let mut dropped = false;
    // Once one of EOF and the drop notice has come, the other should follow at once.
    let mut settle = None;
    let outcome: Result<()> = loop {
        if eof && dropped {
            break Ok(());
        }
        tokio::select! {
            block = reader.next_block(), if !eof => match block {
                Ok(Some(block)) => {
                    started.get_or_insert_with(Instant::now);
                    let written = async {
                        stdout.write_all(&block.data).await?;
                        stdout.flush().await
                    };
                    if let Err(e) = written.await {
                        break Err(e).context("writing to standard output");
                    }
                    got += block.data.len() as u64;
                    progress.inc(block.data.len() as u64);
                }
                Ok(None) => {
                    eof = true;
                    settle.get_or_insert(tokio::time::Instant::now() + DROP_NOTICE_TIMEOUT);
                }
                Err(e) => break Err(e).context("reading from the relay"),
            },
            event = s.pump.next() => match event {
                None => break Err(closed("reading the stream")),
                Some(DspsEvent::Dropped { peer_jid, .. }) if peer_jid == seat.peer_jid => {
                    dropped = true;
                    settle.get_or_insert(tokio::time::Instant::now() + DROP_NOTICE_TIMEOUT);
                }
                Some(DspsEvent::Invitation(inv)) => crate::master::reject_busy(s, &inv).await,
                Some(_) => {}
            },
            _ = sleep_until(settle) => {
                if dropped {
                    // The notice came; the socket's close is only late.
                    break Ok(());
                }
                break Err(Failure::new(
                    Exit::PeerGone,
                    "reading the stream",
                    "the relay closed our connection but the stream did not end (too slow for its minthroughput?)",
                ));
            }
        }
    };
    match outcome {
        Ok(()) => {
            progress.finish();
            let elapsed = started.map_or(Duration::ZERO, |t| t.elapsed());
            Ok(format!("received {}", throughput(got, elapsed)))
        }
        Err(e) => {
            progress.abandon();
            Err(e)
        }
    }
}
