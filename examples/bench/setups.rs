//! Stream setups per second through Prosody: for dsps, create + invite + accept +
//! both relay handshakes, until the master has seen the slave connect (the point
//! where data can flow); for mod_proxy65 the whole mediated XEP-0065 exchange up to
//! the activation. Several (master, slave) pairs work in parallel; everything made
//! is taken down after the clock stops.

use std::time::Instant;

use futures::future::join_all;

use crate::proxy65::bytestream;
use crate::report::{median, Row};
use crate::throughput::{leave_all, many_streams};
use crate::{Ctx, R};

/// One timed round of `count` proxy65 bytestreams; setups per second.
fn proxy65_round(ctx: &mut Ctx, count: usize) -> R<f64> {
    let workers = ctx.sizes.workers;
    let proxy = ctx.args.proxy65.clone();
    let start = Instant::now();
    let pairs = ctx.pool[..2 * workers]
        .chunks_mut(2)
        .enumerate()
        .map(|(w, pair)| {
            let proxy = proxy.clone();
            async move {
                let (a, b) = pair.split_at_mut(1);
                let mut made = Vec::new();
                for _ in (w..count).step_by(workers) {
                    made.push(bytestream(&mut a[0], &mut b[0], &proxy).await?);
                }
                Ok::<_, String>(made)
            }
        });
    let made = ctx.rt.block_on(join_all(pairs));
    let rate = count as f64 / start.elapsed().as_secs_f64();
    for m in made {
        m?;
    }
    Ok(rate)
}

/// One timed round of `count` dsps streams; setups per second.
fn dsps_round(ctx: &mut Ctx, count: usize) -> R<f64> {
    let start = Instant::now();
    let made = many_streams(ctx, count)?;
    let rate = count as f64 / start.elapsed().as_secs_f64();
    let seats: Vec<_> = made.into_iter().map(|(w, s)| (w, s.master_seat)).collect();
    leave_all(ctx, &seats)?;
    Ok(rate)
}

/// The setup-rate case.
pub fn setups(ctx: &mut Ctx) -> R<Vec<Row>> {
    let (count, runs) = ctx.sizes.setups;
    let workers = ctx.sizes.workers;
    eprintln!("bench: {count} stream setups by {workers} pairs in parallel × {runs} runs");
    let (mut p, mut d) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        p.push(proxy65_round(ctx, count)?);
        d.push(dsps_round(ctx, count)?);
        eprintln!(
            "bench:   proxy65 {:.0}/s, dsps {:.0}/s",
            p.last().unwrap_or(&0.0),
            d.last().unwrap_or(&0.0)
        );
    }
    let (mp, md) = (median(&p), median(&d));
    Ok(vec![Row {
        case: format!("stream setups through Prosody, {workers} in parallel"),
        baseline: "Prosody mod_proxy65 (XEP-0065)".into(),
        baseline_figure: format!("{mp:.0} /s"),
        dsps_figure: format!("{md:.0} /s"),
        ratio: format!("{:.2}×", md / mp),
        target: "—".into(),
        unit: "setups/s".into(),
        baseline_runs: p,
        dsps_runs: d,
    }])
}
