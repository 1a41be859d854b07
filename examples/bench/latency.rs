//! Small blocks: many streams, each sending a 160-byte record 50 times a second
//! (a voice call's packets), with the send time (this process's clock) in the
//! record. The receiver takes the one-way latency when a record's last byte
//! arrives. Direct TCP pairs at the same load are the baseline; the figure that
//! matters is what dsps adds at the 99th percentile.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::baselines;
use crate::flows::{self, Flow};
use crate::report::{median, Row};
use crate::throughput::{dsps_flow, leave_all, many_streams};
use crate::wire::{Crc, Receiver, Sink, Tally};
use crate::{Ctx, R};

/// Bytes per record: send time (ns, u64), sequence number (u64), filler.
const RECORD: usize = 160;
/// Records per second per stream.
const RATE: u32 = 50;

/// Takes latencies from the records as their last bytes arrive.
struct Latency {
    base: Instant,
    head: [u8; 16],
    at: usize,
    next_seq: u64,
    samples: Vec<u32>,
    crc: Crc,
    error: Option<String>,
}

impl Sink for Latency {
    fn data(&mut self, mut bytes: &[u8]) {
        self.crc.data(bytes);
        while !bytes.is_empty() {
            let n = (RECORD - self.at).min(bytes.len());
            if self.at < 16 {
                let h = (16 - self.at).min(n);
                self.head[self.at..self.at + h].copy_from_slice(&bytes[..h]);
            }
            self.at += n;
            bytes = &bytes[n..];
            if self.at == RECORD {
                let now = self.base.elapsed().as_nanos() as u64;
                let sent = u64::from_le_bytes(self.head[..8].try_into().expect("8 bytes"));
                let seq = u64::from_le_bytes(self.head[8..].try_into().expect("8 bytes"));
                if seq != self.next_seq && self.error.is_none() {
                    self.error = Some(format!("record {seq} arrived, {} expected", self.next_seq));
                }
                self.next_seq += 1;
                self.samples.push((now.saturating_sub(sent) / 1000) as u32);
                self.at = 0;
            }
        }
    }
}

/// Writes `count` records, one every 1/[`RATE`] s from `start`.
fn paced_send(
    sock: &mut TcpStream,
    base: Instant,
    start: Instant,
    first: u64,
    count: u64,
) -> std::io::Result<Tally> {
    let mut crc = crc32fast::Hasher::new();
    let mut rec = [0x5au8; RECORD];
    let interval = Duration::from_secs(1) / RATE;
    for i in 0..count {
        let due = start + interval * i as u32;
        let now = Instant::now();
        if due > now {
            // Pacing the load, not synchronising: the records must be spread in time.
            thread::sleep(due - now);
        }
        rec[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
        rec[8..16].copy_from_slice(&(first + i).to_le_bytes());
        sock.write_all(&rec)?;
        crc.update(&rec);
    }
    Ok(Tally {
        bytes: count * RECORD as u64,
        crc: crc.finalize(),
    })
}

/// p50, p99 and p99.9 in ms of one run over `flows`.
fn run(flows: &mut [Flow], first: u64, count: u64) -> R<[f64; 3]> {
    let base = Instant::now();
    // The streams' records are spread over the interval, not sent in one burst.
    let spread = Duration::from_secs(1) / RATE / flows.len().max(1) as u32;
    let start = base + Duration::from_millis(50);
    let (_, got) = flows::run(
        flows,
        |i, sock, _, _| paced_send(sock, base, start + spread * i as u32, first, count),
        |r| {
            let mut sink = Latency {
                base,
                head: [0; 16],
                at: 0,
                next_seq: first,
                samples: Vec::with_capacity(count as usize),
                crc: Crc::default(),
                error: None,
            };
            let n = r.receive(count * RECORD as u64, &mut sink)?;
            if let Some(e) = sink.error {
                return Err(std::io::Error::other(e));
            }
            let crc = sink.crc.0.finalize();
            Ok((Tally { bytes: n, crc }, sink.samples))
        },
    )?;
    let mut all: Vec<u32> = got.into_iter().flatten().flat_map(|g| g.1).collect();
    all.sort_unstable();
    let pick = |q: f64| {
        let i = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1;
        f64::from(all[i]) / 1000.0
    };
    Ok([pick(0.50), pick(0.99), pick(0.999)])
}

/// The small-block case: direct pairs and dsps streams, same load, alternating runs.
pub fn small(ctx: &mut Ctx) -> R<Vec<Row>> {
    let (streams, secs, runs) = ctx.sizes.small;
    let count = u64::from(RATE) * secs;
    eprintln!(
        "bench: {streams} streams × {RATE} writes/s of {RECORD} B for {secs} s × {runs} runs"
    );
    let mut direct = Vec::new();
    for i in 0..streams {
        let (a, b) = baselines::direct_pair()?;
        direct.push(Flow::new(i as u64, a, vec![Receiver::raw(b)])?);
    }
    let made = many_streams(ctx, streams)?;
    let mut seats = Vec::new();
    let mut dsps = Vec::new();
    for (i, (w, s)) in made.into_iter().enumerate() {
        seats.push((w, s.master_seat.clone()));
        dsps.push(dsps_flow(i as u64, s)?);
    }
    let measured = (0..runs)
        .map(|r| {
            let first = r as u64 * count;
            let (a, b) = (
                run(&mut direct, first, count)?,
                run(&mut dsps, first, count)?,
            );
            eprintln!(
                "bench:   p50/p99/p99.9 ms: direct {:.3}/{:.3}/{:.3}, dsps {:.3}/{:.3}/{:.3}",
                a[0], a[1], a[2], b[0], b[1], b[2]
            );
            Ok((a, b))
        })
        .collect::<R<Vec<_>>>();
    drop(dsps);
    leave_all(ctx, &seats)?;
    let (d, x): (Vec<_>, Vec<_>) = measured?.into_iter().unzip();
    let col = |v: &[[f64; 3]], i: usize| v.iter().map(|a| a[i]).collect::<Vec<f64>>();
    let case = format!("{streams} streams × {RATE}/s × {RECORD} B, latency");
    let mut rows = Vec::new();
    for (i, name) in ["p50", "p99", "p99.9"].iter().enumerate() {
        let (b, y) = (col(&d, i), col(&x, i));
        rows.push(Row {
            case: format!("{case} {name}"),
            baseline: "direct TCP, same load".into(),
            baseline_figure: format!("{:.3} ms", median(&b)),
            dsps_figure: format!("{:.3} ms", median(&y)),
            ratio: format!("{:+.3} ms", median(&y) - median(&b)),
            target: if i == 1 {
                "+ < 0.5 ms".into()
            } else {
                "—".into()
            },
            unit: "ms".into(),
            baseline_runs: b,
            dsps_runs: y,
        });
    }
    Ok(rows)
}
