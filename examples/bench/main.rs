//! The side-by-side benchmark behind `scripts/bench.sh` (issue 9): dsps against a
//! direct connection, socat, Prosody's mod_proxy65 and `ncat --broker`, with the
//! same senders and receivers for every system (see `wire.rs`).
//!
//! It expects what the script starts: a private Prosody with a proxy65 component, a
//! release dsps attached to it, and an account whose resources the bench logs in as
//! many times as it needs. Streams are set up through the real XMPP path; data then
//! moves over the handshaken relay sockets. One aligned table goes to stdout
//! (medians over the runs, ratios from this same run), progress to stderr, and
//! `--tsv`/`--json` write the rows for docs/performance.md. Any lost or altered
//! byte fails the run (exit 1).

mod baselines;
mod flows;
mod latency;
mod memory;
mod proxy65;
mod report;
mod setups;
mod throughput;
mod wire;
mod xmpp;

use std::process::ExitCode;

use clap::Parser;
use futures::future::join_all;

use report::Row;
use xmpp::Account;

type R<T> = Result<T, String>;

/// The cases, in the order a full run takes them. `memory` goes first: its "fresh"
/// figure is dsps's RSS before the bench made any stream.
const CASES: [&str; 6] = ["memory", "1to1", "1toN", "many", "small", "setup"];

/// Side-by-side benchmark of a running dsps (see scripts/bench.sh).
#[derive(Parser, Debug)]
#[command(name = "bench", about)]
pub struct Args {
    /// Prosody's client port, ip:port.
    #[arg(long)]
    server: String,
    /// The dsps component's domain.
    #[arg(long)]
    dsps: String,
    /// The relay address (ip:port) dsps listens on.
    #[arg(long)]
    relay_addr: String,
    /// The proxy65 component's JID.
    #[arg(long)]
    proxy65: String,
    /// The account the bench logs in as (one resource per session).
    #[arg(long, default_value = "bench@localhost")]
    account: String,
    /// Its password.
    #[arg(long, env = "BENCH_PASSWORD")]
    password: String,
    /// The dsps process, for its RSS.
    #[arg(long)]
    dsps_pid: u32,
    /// Fewer runs and smaller sizes (well under 90 s).
    #[arg(long)]
    quick: bool,
    /// Run only these cases (repeat or comma-separate): memory, 1to1, 1toN, many,
    /// small, setup.
    #[arg(long = "case", value_delimiter = ',')]
    cases: Vec<String>,
    /// Also write the rows as TSV here.
    #[arg(long)]
    tsv: Option<std::path::PathBuf>,
    /// Also write the rows as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// How big each case is.
#[derive(Clone)]
pub struct Sizes {
    /// Runs of the 1→1 case.
    runs: usize,
    one_to_one: u64,
    /// (N, bytes each receiver gets, runs).
    fan_out: Vec<(usize, u64, usize)>,
    /// (streams, bytes each, runs).
    many: (usize, u64, usize),
    /// (streams, seconds, runs).
    small: (usize, u64, usize),
    idle_peers: usize,
    stall_bytes: u64,
    /// (setups per run, runs).
    setups: (usize, usize),
    /// (master, slave) account pairs setting streams up in parallel.
    workers: usize,
}

const MIB: u64 = 1024 * 1024;

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                runs: 2,
                one_to_one: 256 * MIB,
                fan_out: vec![(4, 64 * MIB, 2), (16, 32 * MIB, 2), (64, 16 * MIB, 1)],
                many: (100, 4 * MIB, 2),
                small: (20, 2, 1),
                idle_peers: 1000,
                stall_bytes: 64 * MIB,
                setups: (80, 1),
                workers: 8,
            }
        } else {
            Sizes {
                runs: 5,
                one_to_one: 1024 * MIB,
                fan_out: vec![(4, 256 * MIB, 5), (16, 256 * MIB, 5), (64, 128 * MIB, 3)],
                many: (500, 4 * MIB, 3),
                small: (100, 5, 3),
                idle_peers: 10_000,
                stall_bytes: 64 * MIB,
                setups: (200, 3),
                workers: 8,
            }
        }
    }

    /// Sessions the chosen cases need at once.
    fn accounts(&self, cases: &[String]) -> usize {
        let fan = if cases.iter().any(|c| c == "1toN") {
            self.fan_out.iter().map(|f| f.0 + 1).max().unwrap_or(0)
        } else {
            0
        };
        fan.max(2 * self.workers).max(3)
    }
}

/// What every case works with.
pub struct Ctx {
    args: Args,
    sizes: Sizes,
    rt: tokio::runtime::Runtime,
    pool: Vec<Account>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut args: Args) -> R<()> {
    let cases: Vec<String> = if args.cases.is_empty() {
        CASES.iter().map(|c| c.to_string()).collect()
    } else {
        for c in &args.cases {
            if !CASES.contains(&c.as_str()) {
                return Err(format!("unknown case {c:?}; cases: {}", CASES.join(", ")));
            }
        }
        CASES
            .iter()
            .filter(|c| args.cases.iter().any(|a| a == *c))
            .map(|c| c.to_string())
            .collect()
    };
    args.cases = cases.clone();
    let fresh = memory::rss_kib(args.dsps_pid)?;
    let sizes = Sizes::new(args.quick);
    // Two workers: the XMPP side is light, and the movers are OS threads of their own.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let n = sizes.accounts(&cases);
    eprintln!("bench: logging in {n} sessions as {}", args.account);
    let logins = (0..n).map(|i| {
        let jid = format!("{}/bench{i}", args.account);
        let (server, dsps, pw) = (
            args.server.clone(),
            args.dsps.clone(),
            args.password.clone(),
        );
        async move { Account::login(&server, &dsps, &jid, &pw).await }
    });
    let pool = rt
        .block_on(join_all(logins))
        .into_iter()
        .collect::<R<Vec<_>>>()?;
    let mut ctx = Ctx {
        args,
        sizes,
        rt,
        pool,
    };
    let mut rows: Vec<Row> = Vec::new();
    for case in &cases {
        let r = match case.as_str() {
            "memory" => memory::memory(&mut ctx, fresh),
            "1to1" => throughput::one_to_one(&mut ctx),
            "1toN" => throughput::fan_out(&mut ctx),
            "many" => throughput::many(&mut ctx),
            "small" => latency::small(&mut ctx),
            "setup" => setups::setups(&mut ctx),
            _ => unreachable!("cases were checked against CASES"),
        };
        rows.extend(r.map_err(|e| format!("case {case}: {e}"))?);
    }
    print!("{}", report::table(&rows));
    if let Some(p) = &ctx.args.tsv {
        std::fs::write(p, report::tsv(&rows)).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &ctx.args.json {
        let j = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(p, j + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let closes = ctx.pool.iter().map(|a| a.dsps.xmpp().close());
    ctx.rt.block_on(join_all(closes));
    Ok(())
}
