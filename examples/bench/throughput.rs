//! Bulk cases: 1→1 (direct, socat, proxy65, dsps), 1→N (ncat --broker, dsps) and
//! many streams at once (direct pairs, dsps). Each system's connections are set up
//! once per case; the runs then alternate between the systems, so drift on this
//! shared machine hits them alike.

use futures::future::join_all;

use crate::baselines::{self, Tool};
use crate::flows::{transfer, Flow};
use crate::report::{median, Row};
use crate::wire::Receiver;
use crate::xmpp::{self, dsps_stream, Account, DspsStream};
use crate::{Ctx, R};

const MIB: u64 = 1024 * 1024;
/// Most bytes one proxy65 run moves.
const PROXY65_MAX: u64 = 256 * MIB;

fn label(bytes: u64) -> String {
    if bytes >= 1024 * MIB && bytes.is_multiple_of(1024 * MIB) {
        format!("{} GiB", bytes / (1024 * MIB))
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

pub fn dsps_flow(seed: u64, s: DspsStream) -> R<Flow> {
    let receivers = s
        .slaves
        .into_iter()
        .map(|c| Receiver::framed(c.sock, c.buffered))
        .collect();
    Flow::new(seed, s.master.sock, receivers)
}

/// Runs `runs` rounds; in each, every system moves its bytes per flow once, after
/// `renew` had a chance to replace its flows. Returns the MB/s of each system, per run.
fn rounds_with(
    systems: &mut [(&str, Vec<Flow>, u64)],
    runs: usize,
    mut renew: impl FnMut(&str, &mut Vec<Flow>) -> R<()>,
) -> R<Vec<Vec<f64>>> {
    let mut out = vec![Vec::new(); systems.len()];
    for run in 0..runs {
        for (i, (name, flows, bytes)) in systems.iter_mut().enumerate() {
            if run > 0 {
                renew(name, flows)?;
            }
            let t = match transfer(flows, *bytes) {
                Ok(t) => t,
                // A baseline that stops forwarding counts as a stalled run (shown in
                // the table) instead of ending the bench.
                Err(e) if *name == "proxy65" && e.contains("stalled:") => {
                    eprintln!("bench:   {name}: run {} stalled: {e}", run + 1);
                    out[i].push(f64::NAN);
                    continue;
                }
                Err(e) => return Err(format!("{name}, run {}: {e}", run + 1)),
            };
            eprintln!(
                "bench:   {name}: {:.0} MB/s ({} MB in {:.2} s)",
                t.mb_s(),
                t.delivered / 1_000_000,
                t.wall.as_secs_f64()
            );
            out[i].push(t.mb_s());
        }
    }
    Ok(out)
}

fn rounds(systems: &mut [(&str, Vec<Flow>, u64)], runs: usize) -> R<Vec<Vec<f64>>> {
    rounds_with(systems, runs, |_, _| Ok(()))
}

/// 1→1: one sender, one receiver, through each system.
pub fn one_to_one(ctx: &mut Ctx) -> R<Vec<Row>> {
    let bytes = ctx.sizes.one_to_one;
    let runs = ctx.sizes.runs;
    eprintln!("bench: 1→1, {} × {runs} runs", label(bytes));
    let (a, b) = baselines::direct_pair()?;
    let direct = Flow::new(1, a, vec![Receiver::raw(b)])?;
    let (socat_tool, a, b) = baselines::socat_pair()?;
    let socat = Flow::new(2, a, vec![Receiver::raw(b)])?;
    let relay = ctx.args.relay_addr.clone();
    let proxy = ctx.args.proxy65.clone();
    let (left, right) = ctx.pool.split_at_mut(1);
    let (init, target) = (&mut left[0], &mut right[0]);
    let stream = ctx
        .rt
        .block_on(dsps_stream(init, std::slice::from_mut(target), &relay))?;
    let rt = &ctx.rt;
    // mod_proxy65 passes its last bytes on when the initiator closes (without that
    // the last 4 KiB stayed in Prosody), so every proxy65 run gets a fresh
    // bytestream, set up before its clock starts.
    let mut bytestream = |seed| {
        let (a, b) = rt.block_on(crate::proxy65::bytestream(init, target, &proxy))?;
        let mut f = Flow::new(seed, a, vec![Receiver::raw(b)])?;
        f.close_after = true;
        // Loopback with nothing between: 5 s without a byte is a stall.
        let stall = Some(std::time::Duration::from_secs(5));
        let set = f
            .sender
            .set_write_timeout(stall)
            .and(f.receivers[0].sock.set_read_timeout(stall));
        set.map_err(|e| e.to_string())?;
        Ok::<_, String>(f)
    };
    let proxy65 = bytestream(3)?;
    let seat = stream.master_seat.clone();
    let dsps = dsps_flow(4, stream)?;

    // mod_proxy65 moves tens of MB/s: a smaller transfer gives the same rate and
    // keeps the whole bench within its time bound.
    let proxy65_bytes = bytes.min(PROXY65_MAX);
    let mut systems = vec![
        ("direct", vec![direct], bytes),
        ("socat", vec![socat], bytes),
        ("proxy65", vec![proxy65], proxy65_bytes),
        ("dsps", vec![dsps], bytes),
    ];
    let r = rounds_with(&mut systems, runs, |name, flows| {
        if name == "proxy65" {
            flows[0] = bytestream(3)?;
        }
        Ok(())
    });
    drop(systems);
    drop(socat_tool);
    ctx.rt.block_on(xmpp::leave(&ctx.pool[0], &seat))?;
    let r = r?;
    let case = format!("1→1, {}", label(bytes));
    Ok(vec![
        Row::rate(
            &case,
            "direct TCP (no relay; the system's congestion control)",
            &r[0],
            &r[3],
            "—",
        ),
        Row::rate(&case, "socat -b 262144", &r[1], &r[3], "≥ 1.0×"),
        Row::rate(
            &case,
            &format!("Prosody mod_proxy65 ({} per run)", label(proxy65_bytes)),
            &r[2],
            &r[3],
            "—",
        ),
    ])
}

/// 1→N for each N: `ncat --broker` against a dsps stream with N slaves.
pub fn fan_out(ctx: &mut Ctx) -> R<Vec<Row>> {
    let mut rows = Vec::new();
    let relay = ctx.args.relay_addr.clone();
    for &(n, bytes, runs) in &ctx.sizes.fan_out.clone() {
        eprintln!("bench: 1→{n}, {} each × {runs} runs", label(bytes));
        let (tool, sender, receivers): (Tool, _, _) = baselines::ncat_broker(n)?;
        let ncat = Flow::new(
            10,
            sender,
            receivers.into_iter().map(Receiver::raw).collect(),
        )?;
        let (m, rest) = ctx.pool.split_at_mut(1);
        if rest.len() < n {
            return Err(format!(
                "1→{n} needs {} accounts, {} logged in",
                n + 1,
                rest.len() + 1
            ));
        }
        let stream = ctx
            .rt
            .block_on(dsps_stream(&mut m[0], &mut rest[..n], &relay))?;
        let seat = stream.master_seat.clone();
        let dsps = dsps_flow(11, stream)?;
        let mut systems = vec![
            ("ncat --broker", vec![ncat], bytes),
            ("dsps", vec![dsps], bytes),
        ];
        let r = rounds(&mut systems, runs);
        drop(systems);
        drop(tool);
        ctx.rt.block_on(xmpp::leave(&ctx.pool[0], &seat))?;
        let r = r?;
        let target = match n {
            16 => "≥ 2.5×",
            64 => "≥ 2.0×",
            _ => "—",
        };
        rows.push(Row::rate(
            &format!("1→{n}, {} each", label(bytes)),
            "ncat --broker",
            &r[0],
            &r[1],
            target,
        ));
    }
    Ok(rows)
}

/// Sets up `count` one-slave dsps streams with the pool's first `2 × workers`
/// accounts as (master, slave) pairs, the pairs working in parallel.
pub fn many_streams(ctx: &mut Ctx, count: usize) -> R<Vec<(usize, DspsStream)>> {
    let relay = ctx.args.relay_addr.clone();
    let workers = ctx.sizes.workers.min(count.max(1));
    let pairs = ctx.pool[..2 * workers]
        .chunks_mut(2)
        .enumerate()
        .map(|(w, pair)| {
            let relay = relay.clone();
            async move {
                let (m, s) = pair.split_at_mut(1);
                let mut made = Vec::new();
                for _ in (w..count).step_by(workers) {
                    made.push((w, dsps_stream(&mut m[0], s, &relay).await?));
                }
                Ok::<_, String>(made)
            }
        });
    let made = ctx.rt.block_on(join_all(pairs));
    let mut all = Vec::with_capacity(count);
    for m in made {
        all.extend(m?);
    }
    Ok(all)
}

/// Every master in `streams` leaves (worker `w`'s streams belong to account `2w`).
pub fn leave_all(ctx: &mut Ctx, seats: &[(usize, dsps::client::session::Seat)]) -> R<()> {
    let pool: &[Account] = &ctx.pool;
    let leaves = seats
        .iter()
        .map(|(w, seat)| xmpp::leave(&pool[2 * w], seat));
    ctx.rt
        .block_on(join_all(leaves))
        .into_iter()
        .collect::<R<Vec<()>>>()
        .map(|_| ())
}

/// Many 1→1 streams moving data at once: direct pairs against dsps streams.
pub fn many(ctx: &mut Ctx) -> R<Vec<Row>> {
    let (count, bytes, runs) = ctx.sizes.many;
    eprintln!(
        "bench: {count} streams × {} at once × {runs} runs",
        label(bytes)
    );
    let mut direct = Vec::with_capacity(count);
    for i in 0..count {
        let (a, b) = baselines::direct_pair()?;
        direct.push(Flow::new(100 + i as u64, a, vec![Receiver::raw(b)])?);
    }
    let made = many_streams(ctx, count)?;
    let mut seats = Vec::with_capacity(count);
    let mut dsps = Vec::with_capacity(count);
    for (i, (w, s)) in made.into_iter().enumerate() {
        seats.push((w, s.master_seat.clone()));
        dsps.push(dsps_flow(10_000 + i as u64, s)?);
    }
    let mut systems = vec![("direct", direct, bytes), ("dsps", dsps, bytes)];
    let r = rounds(&mut systems, runs);
    drop(systems);
    leave_all(ctx, &seats)?;
    let r = r?;
    eprintln!(
        "bench:   median direct {:.0} MB/s, dsps {:.0} MB/s",
        median(&r[0]),
        median(&r[1])
    );
    Ok(vec![Row::rate(
        &format!("{count} streams × 2 peers, {} each", label(bytes)),
        &format!("{count} direct TCP pairs"),
        &r[0],
        &r[1],
        "—",
    )])
}
