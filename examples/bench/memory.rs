//! dsps's resident memory (VmRSS of its process): fresh, with many idle handshaken
//! peers, after they all left and their seats are gone, and during a 1→2 transfer
//! whose second slave stopped reading.

use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use dsps::client::session::ClientError;
use dsps::proto::error::DspsError;
use futures::future::join_all;

use crate::flows::{self, transfer, Flow};
use crate::report::Row;
use crate::throughput::{leave_all, many_streams};
use crate::wire::{Receiver, SENT};
use crate::xmpp::{self, dsps_stream};
use crate::{Ctx, R};

/// dsps's VmRSS in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> R<u64> {
    status_kib(pid, "VmRSS:")
}

/// dsps's private resident memory (RssAnon: its heap and stacks, not the pages of
/// its binary), in KiB.
pub fn anon_kib(pid: u32) -> R<u64> {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, field: &str) -> R<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading dsps's /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// The lowest RSS over the next 3 s: dsps hands freed memory back a moment after a
/// wave of closes or handshakes.
fn settled_rss(pid: u32) -> R<u64> {
    let mut low = rss_kib(pid)?;
    for _ in 0..12 {
        thread::sleep(Duration::from_millis(250));
        low = low.min(rss_kib(pid)?);
    }
    Ok(low)
}

/// Streams of the warm-up: enough to run every code path of a stream's life once
/// on every worker, so that the binary's pages they touch are resident before
/// the baseline is taken.
const WARM_UP_STREAMS: usize = 16;

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn row(
    case: &str,
    base: &str,
    figure: String,
    ratio: String,
    target: &str,
    unit: &str,
    v: f64,
) -> Row {
    Row {
        case: case.into(),
        baseline: "—".into(),
        baseline_figure: base.into(),
        dsps_figure: figure,
        ratio,
        target: target.into(),
        unit: unit.into(),
        baseline_runs: Vec::new(),
        dsps_runs: vec![v],
    }
}

/// The memory case. `fresh` is dsps's RSS before the bench made any stream.
pub fn memory(ctx: &mut Ctx, fresh: u64) -> R<Vec<Row>> {
    let pid = ctx.args.dsps_pid;
    // A process that has never run a stream has not paged in the code that runs
    // one; "back to fresh" compares with the process after a warm-up instead.
    let warm_up = many_streams(ctx, WARM_UP_STREAMS)?;
    let warm_seats: Vec<_> = warm_up
        .into_iter()
        .map(|(w, s)| (w, s.master_seat.clone()))
        .collect();
    leave_all(ctx, &warm_seats)?;
    let warm = settled_rss(pid)?;
    eprintln!(
        "bench:   warm (after {WARM_UP_STREAMS} streams came and went): {} (RssAnon {})",
        mib(warm),
        mib(anon_kib(pid)?)
    );
    let streams = ctx.sizes.idle_peers / 2;
    let peers = streams * 2;
    eprintln!(
        "bench: memory: fresh {}; {peers} idle peers in {streams} streams",
        mib(fresh)
    );
    let setup = Instant::now();
    let made = many_streams(ctx, streams)?;
    eprintln!(
        "bench:   {peers} peers handshaken in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let loaded = settled_rss(pid)?;
    let per_peer = (loaded.saturating_sub(warm)) as f64 / peers as f64;
    eprintln!(
        "bench:   RSS with {peers} idle peers: {} ({per_peer:.1} KiB per peer)",
        mib(loaded)
    );

    // Everyone leaves: the masters drop themselves (the stream ends and its slave is
    // dropped) and every socket closes. Then each seat must answer 404.
    let mut seats = Vec::with_capacity(made.len());
    for (w, s) in made {
        seats.push((w, s.master_seat.clone()));
        drop(s.master);
        drop(s.slaves);
    }
    leave_all(ctx, &seats)?;
    let pool = &ctx.pool;
    let checks = seats.iter().map(|(w, seat)| async move {
        let deadline = tokio::time::Instant::now() + xmpp::STEP;
        loop {
            match pool[2 * w].dsps.who(seat).await {
                Err(ClientError::Dsps(Some(DspsError::ItemNotFound), _)) => return Ok(()),
                r if tokio::time::Instant::now() > deadline => {
                    return Err(format!(
                        "{}: still there after leaving: {r:?}",
                        seat.peer_jid
                    ))
                }
                // The stream ends once its slave has been drained; ask again shortly.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    ctx.rt
        .block_on(join_all(checks))
        .into_iter()
        .collect::<R<Vec<()>>>()?;
    let after = settled_rss(pid)?;
    eprintln!(
        "bench:   RSS after they left: {} (RssAnon {}; fresh {}, warm {})",
        mib(after),
        mib(anon_kib(pid)?),
        mib(fresh),
        mib(warm)
    );

    let (stalled, before_stall) = stall(ctx)?;

    let case_idle = format!("{peers} idle handshaken peers");
    let after_delta = after as f64 / 1024.0 - warm as f64 / 1024.0;
    Ok(vec![
        row(
            &case_idle,
            "—",
            format!("{per_peer:.1} KiB/peer ({} total)", mib(loaded)),
            "—".into(),
            "≤ 16 KiB/peer",
            "KiB/peer",
            per_peer,
        ),
        row(
            &format!("after {peers} peers left, seats gone"),
            &format!("warm {} (fresh {})", mib(warm), mib(fresh)),
            mib(after),
            format!("{after_delta:+.1} MiB"),
            "within 2 MiB of fresh",
            "MiB",
            after as f64 / 1024.0,
        ),
        row(
            "1→2, one slave stalled",
            &format!("before {}", mib(before_stall)),
            mib(stalled),
            format!(
                "{:+.1} MiB",
                (stalled as f64 - before_stall as f64) / 1024.0
            ),
            "within the window",
            "MiB",
            stalled as f64 / 1024.0,
        ),
    ])
}

/// 1→2 where slave B never reads: once the master's writes have stopped making
/// progress, dsps's RSS is taken; then B goes away and A must still get every byte.
/// Returns (RSS stalled, RSS before the transfer).
fn stall(ctx: &mut Ctx) -> R<(u64, u64)> {
    let bytes = ctx.sizes.stall_bytes;
    let relay = ctx.args.relay_addr.clone();
    let pid = ctx.args.dsps_pid;
    let (m, rest) = ctx.pool.split_at_mut(1);
    let s = ctx
        .rt
        .block_on(dsps_stream(&mut m[0], &mut rest[..2], &relay))?;
    let seat = s.master_seat.clone();
    let before = rss_kib(pid)?;
    let mut slaves = s.slaves.into_iter();
    let (a, b) = (
        slaves.next().ok_or("no slave A")?,
        slaves.next().ok_or("no slave B")?,
    );
    let mut flow = [Flow::new(
        77,
        s.master.sock,
        vec![Receiver::framed(a.sock, a.buffered)],
    )?];
    let result: R<(u64, u64)> = thread::scope(|sc| {
        let moving = flows::spawn(sc, || transfer(&mut flow, bytes));
        // Poll (bounded) until the sender has been stuck for a second.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = (SENT.load(Ordering::Relaxed), Instant::now());
        let stalled = loop {
            thread::sleep(Duration::from_millis(100));
            let now = SENT.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= Duration::from_secs(1) {
                break rss_kib(pid);
            }
            if moving.is_finished() || Instant::now() > deadline {
                break Err("the sender never stalled".to_string());
            }
        };
        drop(b);
        let moved = flows::join(moving);
        let rss = stalled?;
        moved.map_err(|e| format!("stalled case, slave A after B left: {e}"))?;
        Ok((rss, before))
    });
    ctx.rt.block_on(xmpp::leave(&ctx.pool[0], &seat))?;
    let (rss, before) = result?;
    eprintln!(
        "bench:   one slave stalled: RSS {} (before {})",
        mib(rss),
        mib(before)
    );
    Ok((rss, before))
}
