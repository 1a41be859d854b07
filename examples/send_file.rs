//! Sends one file to one or more XMPP users through a DSPS.
//!
//! ```text
//! cargo run --release --example send_file -- --server 127.0.0.1:5222 \
//!     --jid alice@localhost/send --password pw --dsps dsps.localhost \
//!     --file big.bin --to bob@localhost/recv --to carol@localhost/recv
//! ```
//!
//! Steps: create a stream (we are its master), invite every `--to` as a slave with
//! the file's name, size and sha256 in the invitation's `<comment>` (see
//! `examples/common/mod.rs`), connect to the relay, wait until every invitee has
//! connected, stream the file, half-close, wait for the DSPS to close our socket (it
//! then holds everything we sent), and drop ourselves: the last master leaving ends
//! the stream, and the DSPS delivers what is queued to the slaves before it drops them
//! (XEP-0037 "Stream shutdown"). Start the receivers (`recv_file`) first: an
//! invitation to a JID that is not online is refused by its server.
//!
//! Exits 0 after printing `sent N bytes in T s (X MiB/s), sha256 H`, or 1 with a
//! one-line reason.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use dsps::client::c2s::XmppClient;
use dsps::client::session::{
    invite_slaves, BlockReader, ClientError, DspsClient, DspsEvent, DspsEvents, Seat,
    REQUEST_TIMEOUT,
};
use dsps::client::transport::RelayStream;
use dsps::proto::query::{AdminRequest, CreateRequest};
use indicatif::ProgressBar;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use common::{bare, fail, progress_bar, throughput, Context, FileMeta, Result, CHUNK};
use dsps::client::transport::ConnectOptions;

/// How long one write to the relay may make no progress before we give up. The stream
/// runs at the pace of the slowest receiver, so this is also how long a stalled
/// receiver may hold everyone up.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the DSPS may take to close our connection after we half-closed it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Send a file through a DSPS (XEP-0037) to one or more XMPP users.
#[derive(Parser, Debug)]
#[command(name = "send_file", about)]
struct Args {
    #[command(flatten)]
    account: common::Account,
    /// The DSPS component's JID, e.g. dsps.example.org.
    #[arg(long)]
    dsps: String,
    /// The file to send.
    #[arg(long)]
    file: PathBuf,
    /// A receiver's full JID (user@domain/resource); repeat for several.
    #[arg(long = "to", required = true, value_name = "JID")]
    to: Vec<String>,
    /// Seconds to wait for every receiver to accept and connect.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    common::finish("send_file", run(Args::parse()).await)
}

async fn run(args: Args) -> Result<String> {
    for to in &args.to {
        // Invitations are iqs, and an iq to a bare JID is answered by the server, not
        // delivered to any of the user's clients.
        if !to.contains('/') {
            return fail(format!(
                "--to {to}: need a full JID (user@domain/resource) of a running recv_file"
            ));
        }
    }
    let meta = FileMeta::of_file(&args.file).await?;
    let connect = args.account.connect_options()?;

    let (xmpp, incoming) = XmppClient::connect(
        &args.account.server,
        &args.account.jid,
        &args.account.password,
    )
    .await
    .context(&format!(
        "logging in to {} as {}",
        args.account.server, args.account.jid
    ))?;
    let dsps = DspsClient::new(xmpp.clone(), &args.dsps);
    let mut events = DspsEvents::new(xmpp.clone(), incoming);

    let create = CreateRequest {
        comments: vec![meta.to_comment()],
        ..CreateRequest::default()
    };
    let seat = dsps
        .create(&create)
        .await
        .context(&format!("creating a stream on {}", args.dsps))?;
    let outcome = transfer(&args, &connect, &meta, &dsps, &mut events, &seat).await;
    // Leave the stream whatever happened. After a transfer this ends it: the last
    // master leaving makes the DSPS deliver what is queued, then drop the receivers.
    // After a failure it spares the receivers the wait for a stream that went quiet.
    let left = tokio::time::timeout(REQUEST_TIMEOUT, dsps.leave(&seat))
        .await
        .unwrap_or(Err(ClientError::Timeout("leaving the stream")));
    xmpp.close().await;
    let (sent, elapsed) = outcome?;
    left.context("leaving the stream")?;
    Ok(format!(
        "sent {}, sha256 {}",
        throughput(sent, elapsed),
        meta.sha256
    ))
}

/// Invites, connects, waits for the receivers and streams the file. Returns the bytes
/// sent and the time from the first byte until the DSPS had taken the last one.
async fn transfer(
    args: &Args,
    connect: &ConnectOptions,
    meta: &FileMeta,
    dsps: &DspsClient,
    events: &mut DspsEvents,
    seat: &Seat,
) -> Result<(u64, Duration)> {
    let invite = AdminRequest {
        comments: vec![meta.to_comment()],
        ..invite_slaves(args.to.iter().map(String::as_str))
    };
    dsps.admin(seat, &invite)
        .await
        .context("inviting the receivers")?;

    // Connect before the receivers do: our seat's `wait` timer stops, and nothing is
    // written until every receiver is there, because data sent before a peer connects
    // never reaches it.
    let conn = dsps
        .connect_via(seat, connect)
        .await
        .context("connecting to the relay")?;
    let wait = Duration::from_secs(args.timeout);
    wait_for_receivers(dsps, events, &args.to, wait).await?;

    let (reader, writer) = conn.into_split();
    let bar = progress_bar(meta.size, "send");
    let started = Instant::now();
    let mut upload = tokio::spawn(upload(args.file.clone(), writer, bar.clone()));
    let mut left = Vec::new();
    let sent = loop {
        tokio::select! {
            done = &mut upload => break done.context("upload task")?,
            ev = events.next() => {
                if let Err(e) = watch_transfer(dsps, ev, &args.to, &mut left).await {
                    upload.abort();
                    bar.abandon();
                    return Err(e);
                }
            }
        }
    };
    let sent = match sent {
        Ok(n) => n,
        Err(e) => {
            bar.abandon();
            return Err(e);
        }
    };
    // Our EOF reached the DSPS after everything we wrote; it closes our connection once
    // it has read all of it, so the data is queued for the receivers when we see EOF.
    let closed = tokio::time::timeout(CLOSE_TIMEOUT, read_to_eof(reader)).await;
    bar.finish_and_clear();
    match closed {
        Ok(result) => result.context("waiting for the DSPS to close the connection")?,
        Err(_) => return fail("the DSPS did not close the connection after the upload"),
    }
    let elapsed = started.elapsed();
    if sent != meta.size {
        return fail(format!(
            "{} changed while it was sent: {sent} bytes sent, {} announced",
            args.file.display(),
            meta.size
        ));
    }
    if !left.is_empty() {
        return fail(format!(
            "sent {sent} bytes, but {} left before the end",
            left.join(", ")
        ));
    }
    Ok((sent, elapsed))
}

/// The receiver in `invited` that `jid` stands for: the same full JID, or another
/// resource of the same account (an invitee may answer from any of its resources).
fn match_invitee<'a>(invited: &'a [String], jid: &str) -> Option<&'a str> {
    invited
        .iter()
        .find(|i| i.eq_ignore_ascii_case(jid))
        .or_else(|| {
            invited
                .iter()
                .find(|i| bare(i).eq_ignore_ascii_case(bare(jid)))
        })
        .map(String::as_str)
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

/// Waits (bounded) for a `presence status='connect'` push for every invitee; fails on
/// the first reject, expiry or timeout report.
async fn wait_for_receivers(
    dsps: &DspsClient,
    events: &mut DspsEvents,
    invited: &[String],
    wait: Duration,
) -> Result<()> {
    let mut pending: BTreeSet<&str> = invited.iter().map(String::as_str).collect();
    let deadline = tokio::time::Instant::now() + wait;
    while !pending.is_empty() {
        let Ok(ev) = tokio::time::timeout_at(deadline, events.next()).await else {
            let missing: Vec<&str> = pending.into_iter().collect();
            return fail(format!(
                "{} did not connect within {} s",
                missing.join(", "),
                wait.as_secs()
            ));
        };
        match ev {
            None => return fail("the XMPP connection closed while waiting for the receivers"),
            Some(DspsEvent::Presence { push, .. }) => {
                for (status, jid) in &push.peers {
                    let Some(who) = match_invitee(invited, jid) else {
                        continue;
                    };
                    match status.as_str() {
                        "connect" => {
                            pending.remove(who);
                        }
                        "drop" => return fail(format!("{who} left the stream before the start")),
                        _ => {}
                    }
                }
            }
            Some(DspsEvent::AdminReport { report, .. }) => {
                if let Some((reason, jid)) = report.peers.first() {
                    return fail(format!("{jid} {}", not_coming(reason)));
                }
            }
            Some(DspsEvent::Dropped { .. }) => return fail("the DSPS dropped us from the stream"),
            Some(DspsEvent::Invitation(inv)) => {
                // Someone else's stream; we are busy.
                let _ = dsps.answer(&inv, false).await;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Handles one event during the upload: notes receivers that leave; fails when we are
/// dropped, when the XMPP link is gone (we could not leave the stream cleanly), or
/// when no receiver is left.
async fn watch_transfer(
    dsps: &DspsClient,
    ev: Option<DspsEvent>,
    invited: &[String],
    left: &mut Vec<String>,
) -> Result<()> {
    match ev {
        None => fail("the XMPP connection closed during the upload"),
        Some(DspsEvent::Dropped { .. }) => fail("the DSPS dropped us from the stream"),
        Some(DspsEvent::Presence { push, .. }) => {
            for (status, jid) in &push.peers {
                // "waiting": its connection broke; it may reconnect but has missed data.
                if matches!(status.as_str(), "waiting" | "drop") {
                    if let Some(who) = match_invitee(invited, jid) {
                        if !left.iter().any(|l| l == who) {
                            left.push(who.to_string());
                        }
                    }
                }
            }
            if left.len() == invited.len() {
                return fail(format!("every receiver left ({})", left.join(", ")));
            }
            Ok(())
        }
        Some(DspsEvent::Invitation(inv)) => {
            let _ = dsps.answer(&inv, false).await;
            Ok(())
        }
        Some(_) => Ok(()),
    }
}

/// Copies the file to the relay connection, then half-closes it. Returns the bytes sent.
async fn upload(path: PathBuf, mut wr: WriteHalf<RelayStream>, bar: ProgressBar) -> Result<u64> {
    let shown = path.display().to_string();
    let mut file = tokio::fs::File::open(&path)
        .await
        .context(&format!("opening {shown}"))?;
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .context(&format!("reading {shown}"))?;
        if n == 0 {
            break;
        }
        match tokio::time::timeout(STALL_TIMEOUT, wr.write_all(&buf[..n])).await {
            Ok(r) => r.context("writing to the relay")?,
            Err(_) => {
                return fail(format!(
                    "the relay accepted no data for {} s (a receiver stalled?)",
                    STALL_TIMEOUT.as_secs()
                ))
            }
        }
        sent += n as u64;
        bar.inc(n as u64);
    }
    wr.shutdown().await.context("half-closing the relay")?;
    Ok(sent)
}

/// Reads (and ignores) whatever the receivers send until the DSPS closes the socket.
async fn read_to_eof(mut reader: BlockReader<ReadHalf<RelayStream>>) -> Result<()> {
    while reader.next_block().await.context("reading")?.is_some() {}
    Ok(())
}
