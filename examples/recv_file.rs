//! Receives one file sent with `send_file` through a DSPS.
//!
//! ```text
//! cargo run --release --example recv_file -- --server 127.0.0.1:5222 \
//!     --jid bob@localhost/recv --password pw --out big.bin
//! ```
//!
//! Steps: log in and wait (bounded by `--timeout`) for an invitation whose
//! `<comment>` names a file (see `examples/common/mod.rs`), accept it, connect to the
//! relay, write the data of every block to `--out` until the announced size has
//! arrived, stay until the sender ends the stream (bounded), and check the sha256.
//! Invitations without file metadata are rejected.
//!
//! Exits 0 after printing `received N bytes in T s (X MiB/s), sha256 H OK`, or 1 with
//! a one-line reason (including a digest mismatch).

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use dsps::client::c2s::XmppClient;
use dsps::client::session::{DspsClient, DspsEvents, REQUEST_TIMEOUT};
use dsps::client::transport::RelayConn;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use common::{bare, fail, hex, progress_bar, throughput, Context, FileMeta, Result};

/// How long to wait, after the whole file arrived, for the sender to end the stream.
/// Leaving earlier would show up at the sender as a receiver that dropped out.
const END_TIMEOUT: Duration = Duration::from_secs(30);
/// Output buffer: a few relay blocks' worth.
const WRITE_BUFFER: usize = 256 * 1024;

/// Receive a file through a DSPS (XEP-0037), sent with send_file.
#[derive(Parser, Debug)]
#[command(name = "recv_file", about)]
struct Args {
    #[command(flatten)]
    account: common::Account,
    /// Where to write the file (created or truncated).
    #[arg(long)]
    out: PathBuf,
    /// Seconds to wait for the invitation, and for data while the transfer is idle.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    common::finish("recv_file", run(Args::parse()).await)
}

async fn run(args: Args) -> Result<String> {
    let timeout = Duration::from_secs(args.timeout);
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
    let mut events = DspsEvents::new(xmpp.clone(), incoming);
    // scripts/demo.sh waits for this line before it starts the sender.
    eprintln!("recv_file: {} is waiting for an invitation", xmpp.jid());

    let inv = events
        .wait_for_invitation(timeout)
        .await
        .context("waiting for an invitation")?;
    // The invitation comes from a resource of the DSPS, so its domain is the DSPS JID.
    let dsps = DspsClient::new(xmpp.clone(), bare(&inv.from));
    let inviter = inv.invitation.inviters.join(", ");
    let Some(meta) = FileMeta::from_comments(&inv.invitation.comments) else {
        let _ = dsps.answer(&inv, false).await;
        return fail(format!(
            "the invitation from {inviter} names no file (no <file/> in its comment); rejected"
        ));
    };
    eprintln!(
        "recv_file: {inviter} offers {:?} ({} bytes); accepting",
        meta.name, meta.size
    );
    let seat = dsps
        .accept(&inv, &mut events)
        .await
        .context("accepting the invitation")?;
    let outcome = match dsps
        .connect_via(&seat, &connect)
        .await
        .context("connecting to the relay")
    {
        Ok(conn) => {
            // Keep answering pushes (presence, drop) while the data flows.
            let pushes = tokio::spawn(async move { while events.next().await.is_some() {} });
            let received = receive(conn, &args, &meta, timeout).await;
            pushes.abort();
            received
        }
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        // Leave at once rather than let the stream wait for us to come back.
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, dsps.leave(&seat)).await;
    }
    xmpp.close().await;
    let (elapsed, digest) = outcome?;
    if digest != meta.sha256 {
        return fail(format!(
            "sha256 mismatch: received {digest}, the sender announced {}",
            meta.sha256
        ));
    }
    Ok(format!(
        "received {}, sha256 {digest} OK",
        throughput(meta.size, elapsed)
    ))
}

/// Writes the data of every block to `args.out` until `meta.size` bytes arrived, then
/// waits (bounded) for the end of the stream. Returns the transfer time (first block
/// to last byte) and the digest of what was written.
async fn receive(
    conn: RelayConn,
    args: &Args,
    meta: &FileMeta,
    idle: Duration,
) -> Result<(Duration, String)> {
    let shown = args.out.display().to_string();
    let file = tokio::fs::File::create(&args.out)
        .await
        .context(&format!("creating {shown}"))?;
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let (mut reader, _writer) = conn.into_split();
    let bar = progress_bar(meta.size, "recv");
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    let mut started = None;
    while got < meta.size {
        let block = match tokio::time::timeout(idle, reader.next_block()).await {
            Ok(b) => b.context("reading from the relay")?,
            Err(_) => {
                bar.abandon();
                return fail(format!(
                    "no data for {} s after {got} of {} bytes",
                    idle.as_secs(),
                    meta.size
                ));
            }
        };
        let Some(block) = block else {
            bar.abandon();
            return fail(format!(
                "the stream ended after {got} of {} bytes",
                meta.size
            ));
        };
        started.get_or_insert_with(Instant::now);
        let len = block.data.len() as u64;
        if got + len > meta.size {
            bar.abandon();
            return fail(format!(
                "received more than the announced {} bytes",
                meta.size
            ));
        }
        out.write_all(&block.data)
            .await
            .context(&format!("writing {shown}"))?;
        hasher.update(&block.data);
        got += len;
        bar.inc(len);
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    bar.finish_and_clear();
    out.flush().await.context(&format!("writing {shown}"))?;
    out.into_inner()
        .sync_all()
        .await
        .context(&format!("syncing {shown}"))?;

    // Stay until the sender leaves: the DSPS then closes our connection (EOF).
    match tokio::time::timeout(END_TIMEOUT, reader.next_block()).await {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(_))) => return fail("received data after the end of the file"),
        Ok(Err(e)) => eprintln!("recv_file: after the file arrived: {e}"),
        Err(_) => eprintln!(
            "recv_file: the sender did not end the stream within {} s; leaving",
            END_TIMEOUT.as_secs()
        ),
    }
    Ok((elapsed, hex(&hasher.finalize())))
}
