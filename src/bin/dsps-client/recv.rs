//! `recv [--out DIR] [--count N] [--from JID]`: receive files sent with `send`.
//!
//! Wait for an invitation whose `<comment>` names a file (`dsps::client::file_meta`);
//! reject others, or ones not from `--from`, with a line and keep waiting. Accept,
//! connect, write the data to a hidden temporary file in DIR, check size and sha256,
//! stay until the sender ends the stream, then give the file its name: the sender's
//! name made safe, never overwriting (`name (1)` and so on). A failed check leaves no
//! file. Invitations that arrive during a transfer wait their turn (until they
//! expire).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dsps::client::file_meta::{hex, numbered, FileMeta};
use dsps::client::session::{DspsEvent, InvitationRequest, Seat};
use dsps::client::transport::RelayConn;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::cli::RecvArgs;
use crate::failure::{fail, Context, Exit, Failure, Result};
use crate::invite::{self, Offer};
use crate::progress::throughput;
use crate::session::{closed, Session};

/// How long to wait, after the whole file arrived, for the sender to end the stream.
/// Leaving earlier would show up at the sender as a receiver that dropped out.
const END_TIMEOUT: Duration = Duration::from_secs(30);
/// Output buffer: a few relay blocks' worth.
const WRITE_BUFFER: usize = 256 * 1024;
/// Most `name (n)` candidates tried before giving up on a free name.
const MAX_NAME_TRIES: u32 = 10_000;

/// Checks the arguments that need no connection.
pub fn check(args: &RecvArgs) -> Result<()> {
    match std::fs::metadata(&args.out) {
        Ok(m) if m.is_dir() => writable(&args.out),
        Ok(_) => fail(
            Exit::Usage,
            format!("--out {}", args.out.display()),
            "not a directory",
        ),
        Err(e) => fail(
            Exit::Usage,
            format!("--out {}", args.out.display()),
            e.to_string(),
        ),
    }
}

/// Fails now, not after accepting someone's file, if `dir` does not take new files.
fn writable(dir: &Path) -> Result<()> {
    let probe = dir.join(format!(".dsps-client-{:08x}.probe", rand::random::<u32>()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => fail(
            Exit::Usage,
            format!("--out {}", dir.display()),
            format!("cannot create files there: {e}"),
        ),
    }
}

/// Runs `recv`: one summary line on stdout per file.
pub async fn run(s: &mut Session, args: &RecvArgs) -> Result<()> {
    s.out
        .info(&format!("{} is waiting for an invitation", s.jid()));
    let mut queued: VecDeque<Offer> = VecDeque::new();
    for _ in 0..args.count {
        let (offer, meta) = next_file_offer(s, args, &mut queued).await?;
        let inviter = offer.request.invitation.inviters.join(", ");
        s.out.info(&format!(
            "{inviter} offers {:?} ({} bytes); accepting",
            meta.name, meta.size
        ));
        s.dsps
            .answer(&offer.request, true)
            .await
            .context("accepting the invitation")?;
        let seat = s
            .wait_for_seat("accepting the invitation", |e| queue(&mut queued, e))
            .await?;
        match receive(s, args, &meta, &seat, &mut queued).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                // Leave at once rather than let the stream wait for us to come back.
                s.leave_quietly(&seat).await;
                return Err(e);
            }
        }
    }
    // Invitations still queued get a clear no rather than an expiry.
    for offer in queued {
        let _ = s.dsps.answer(&offer.request, false).await;
    }
    Ok(())
}

/// Keeps invitations that arrive while we are busy, in order.
fn queue(queued: &mut VecDeque<Offer>, event: DspsEvent) {
    if let DspsEvent::Invitation(request) = event {
        queued.push_back(Offer::new(request));
    }
}

/// The next invitation that names a file (and comes from `--from`, if given),
/// rejecting the others.
async fn next_file_offer(
    s: &mut Session,
    args: &RecvArgs,
    queued: &mut VecDeque<Offer>,
) -> Result<(Offer, FileMeta)> {
    let from = args.from.clone();
    invite::next_offer(s, queued, |inv: &InvitationRequest| {
        invite::from_allowed(inv, from.as_deref())?;
        FileMeta::from_comments(&inv.invitation.comments)
            .ok_or_else(|| "it names no file (no <file/> in its comment)".to_string())
    })
    .await
}

/// A temporary file that is removed unless it was given its final name.
struct PartFile {
    path: PathBuf,
    done: bool,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Receives one file over `seat`; returns its summary line.
async fn receive(
    s: &mut Session,
    args: &RecvArgs,
    meta: &FileMeta,
    seat: &Seat,
    queued: &mut VecDeque<Offer>,
) -> Result<String> {
    let conn = s.connect_relay(seat).await?;
    let name = meta.safe_name();
    let mut part = PartFile {
        // Not derived from the sender's name, so it stays short and hidden.
        path: args
            .out
            .join(format!(".dsps-client-{:08x}.part", rand::random::<u32>())),
        done: false,
    };
    let shown = part.path.display().to_string();
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part.path)
        .await
        .context(format!("creating {shown}"))?;
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let (elapsed, digest) = copy_blocks(s, conn, meta, &mut out, queued).await?;
    out.flush().await.context(format!("writing {shown}"))?;
    out.into_inner()
        .sync_all()
        .await
        .context(format!("writing {shown}"))?;
    if digest != meta.sha256 {
        return fail(
            Exit::DataCheck,
            format!("receiving {:?}", meta.name),
            format!(
                "sha256 mismatch: received {digest}, the sender announced {}",
                meta.sha256
            ),
        );
    }
    let target = settle(&part.path, &args.out, &name)?;
    part.done = true;
    Ok(format!(
        "received {}, sha256 {digest} OK: {}",
        throughput(meta.size, elapsed),
        target.display()
    ))
}

/// Writes the data of every block to `out` until `meta.size` bytes arrived, then
/// waits (bounded) for the sender to end the stream. Returns the transfer time and
/// the sha256 of what was written.
async fn copy_blocks(
    s: &mut Session,
    conn: RelayConn,
    meta: &FileMeta,
    out: &mut (impl AsyncWriteExt + Unpin),
    queued: &mut VecDeque<Offer>,
) -> Result<(Duration, String)> {
    let what = format!("receiving {:?}", meta.name);
    let (mut reader, _writer) = conn.into_split();
    let progress = s.out.progress("recv", Some(meta.size));
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    let mut started = None;
    let mut idle = tokio::time::Instant::now() + s.timeout;
    let outcome: Result<()> = loop {
        if got == meta.size {
            break Ok(());
        }
        tokio::select! {
            block = reader.next_block() => {
                let block = match block {
                    Ok(Some(b)) => b,
                    Ok(None) => break fail(Exit::PeerGone, &what, format!("the stream ended after {got} of {} bytes", meta.size)),
                    Err(e) => break Err(e).context("reading from the relay"),
                };
                started.get_or_insert_with(Instant::now);
                idle = tokio::time::Instant::now() + s.timeout;
                let len = block.data.len() as u64;
                if got + len > meta.size {
                    break fail(Exit::DataCheck, &what, format!("received more than the announced {} bytes", meta.size));
                }
                if let Err(e) = out.write_all(&block.data).await {
                    break Err(e).context("writing the file");
                }
                hasher.update(&block.data);
                got += len;
                progress.inc(len);
            }
            event = s.pump.next() => {
                if let Some(e) = on_event(event, &what, queued) {
                    break Err(e);
                }
            }
            _ = tokio::time::sleep_until(idle) => {
                break fail(Exit::TimedOut, &what, format!("no data for {} s after {got} of {} bytes", s.timeout.as_secs(), meta.size));
            }
        }
    };
    if let Err(e) = outcome {
        progress.abandon();
        return Err(e);
    }
    progress.finish();
    let elapsed = started.map_or(Duration::ZERO, |t| t.elapsed());

    // Stay until the sender leaves: the DSPS then closes our connection (EOF).
    let end = tokio::time::Instant::now() + END_TIMEOUT;
    loop {
        tokio::select! {
            block = reader.next_block() => match block {
                Ok(None) => break,
                Ok(Some(_)) => return fail(Exit::DataCheck, &what, format!("received more than the announced {} bytes", meta.size)),
                Err(e) => {
                    s.out.info(&format!("after the file arrived: {e}"));
                    break;
                }
            },
            event = s.pump.next() => match event {
                None => return Err(closed(&what)),
                // Dropped after the whole file: that is the end we waited for.
                Some(DspsEvent::Dropped { .. }) => break,
                Some(other) => queue(queued, other),
            },
            _ = tokio::time::sleep_until(end) => {
                s.out.info(&format!("the sender did not end the stream within {} s; leaving", END_TIMEOUT.as_secs()));
                break;
            }
        }
    }
    Ok((elapsed, hex(&hasher.finalize())))
}

/// Handles a push during a transfer: queues invitations; the end of the XMPP
/// connection ends the transfer. A drop notice does not: the DSPS sends it after it
/// wrote our last block, which may still be unread in the socket, so the end of the
/// data is the socket's EOF.
fn on_event(event: Option<DspsEvent>, what: &str, queued: &mut VecDeque<Offer>) -> Option<Failure> {
    match event {
        None => Some(closed(what)),
        Some(other) => {
            queue(queued, other);
            None
        }
    }
}

/// Gives the verified temporary file `part` its final name in `dir`: `name`, or
/// `name (1)` and so on, never replacing a file. A hard link fails when the name is
/// taken, so no check-then-rename race can overwrite a file that appears meanwhile;
/// where links are not supported we fall back to that check and a rename.
fn settle(part: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    for n in 0..MAX_NAME_TRIES {
        let target = dir.join(numbered(name, n));
        match std::fs::hard_link(part, &target) {
            Ok(()) => {
                let _ = std::fs::remove_file(part);
                return Ok(target);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) if !target.exists() => {
                std::fs::rename(part, &target)
                    .context(format!("naming the file {}", target.display()))?;
                return Ok(target);
            }
            Err(_) => continue,
        }
    }
    fail(
        Exit::Other,
        format!("naming the file {name}"),
        format!("{MAX_NAME_TRIES} names are taken in {}", dir.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settling_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("dsps-client-settle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("temp dir");
        std::fs::write(dir.join("a.txt"), "old").expect("existing file");
        let part = dir.join(".a.txt.part");
        std::fs::write(&part, "new").expect("part file");
        let target = settle(&part, &dir, "a.txt").expect("a free name");
        assert_eq!(target, dir.join("a (1).txt"));
        assert_eq!(
            std::fs::read_to_string(dir.join("a.txt")).ok().as_deref(),
            Some("old")
        );
        assert_eq!(
            std::fs::read_to_string(&target).ok().as_deref(),
            Some("new")
        );
        assert!(!part.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
