//! Does zero-copy forwarding (splice, and tee for fan-out) beat plain copying on this
//! machine? One process, one sender, one relay thread and N receiver threads over
//! 127.0.0.1 TCP sockets the probe opens itself; 256 KiB writes, reads and splices.
//!
//! - `copy`: the relay read()s up to 256 KiB and write()s it to each destination.
//! - `splice`: splice(socket → pipe); for N = 1 splice(pipe → socket); for N > 1
//!   tee(pipe → a pipe per destination), splice each to its socket, and splice the
//!   consumed bytes to /dev/null. Pipes are asked for 1 MiB (F_SETPIPE_SZ).
//!
//! Runs alternate copy, splice, copy, …; the table gives the median aggregate MB/s
//! (bytes delivered to all receivers ÷ seconds, MB = 10^6 B) and splice ÷ copy.
//! Every receiver checks its bytes against the sent pattern; a lost, extra or altered
//! byte, an error, or a run past `--timeout` exits 1.
//!
//! Run: `cargo run --release --example zero_copy_probe` (`-- --quick` for a quarter
//! of the bytes, `-- --help` for the rest). The machine is noisy: compare the ratio
//! of one invocation, and note the load average it prints.
//!
//! On the machine it was written on (2 shared cores, Linux 6.18, load average 1.7–3.2
//! around the runs, mostly the probe's own threads), four invocations gave medians:
//! 1→1 copy 1 210–1 465 MB/s, splice 1 189–1 327 (0.89–0.98×); 1→16 copy 2 664–3 290,
//! tee+splice 2 241–2 583 (0.77–0.97×). With `--splice-more` 1→16 fell to 0.46–0.67×
//! (five invocations; not profiled, MSG_MORE probably holds each destination's last
//! partial segment back). So zero-copy did not beat copying here; single runs of
//! either mode swing ±30 %, only medians count.

#[cfg(target_os = "linux")]
mod relay;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod sys;

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("zero_copy_probe: linux only (splice and tee are Linux calls)");
}

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    match probe(&Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zero_copy_probe: FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Splice/tee against read/write relaying over loopback.
#[cfg(target_os = "linux")]
#[derive(clap::Parser, Debug)]
#[command(name = "zero_copy_probe", about)]
struct Args {
    /// Receiver counts to try, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    fanout: Vec<usize>,
    /// MiB each receiver gets when N = 1.
    #[arg(long, default_value_t = 1024)]
    mib_one: u64,
    /// MiB each receiver gets when N > 1.
    #[arg(long, default_value_t = 256)]
    mib_many: u64,
    /// A quarter of those sizes.
    #[arg(long)]
    quick: bool,
    /// Runs per mode.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Pipe size to ask for, in KiB.
    #[arg(long, default_value_t = 1024)]
    pipe_kib: usize,
    /// Set SPLICE_F_MORE (MSG_MORE) on the splice relay's socket writes. Off by
    /// default, as copy's write() sets no MSG_MORE either.
    #[arg(long)]
    splice_more: bool,
    /// Seconds one run may take before the probe fails.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Skip the receivers' byte comparison (it costs their CPU in both modes alike).
    #[arg(long)]
    no_verify: bool,
}

#[cfg(target_os = "linux")]
fn probe(args: &Args) -> Result<(), String> {
    use run::{Mode, Plan};
    if args.runs == 0 || args.fanout.contains(&0) {
        return Err("--runs and every --fanout must be at least 1".into());
    }
    println!("load average: {}", load_average());
    let mut rows = Vec::new();
    for &fanout in &args.fanout {
        let mib = if fanout == 1 {
            args.mib_one
        } else {
            args.mib_many
        };
        let mib = if args.quick { (mib / 4).max(1) } else { mib };
        let (mut copy, mut splice) = (Vec::new(), Vec::new());
        for i in 0..args.runs * 2 {
            let mode = if i % 2 == 0 { Mode::Copy } else { Mode::Splice };
            let plan = Plan {
                mode,
                fanout,
                bytes: mib << 20,
                pipe_bytes: args.pipe_kib << 10,
                splice_more: args.splice_more,
                verify: !args.no_verify,
                deadline: std::time::Duration::from_secs(args.timeout),
            };
            let out = run::run(&plan).map_err(|e| format!("1→{fanout} {mode:?}: {e}"))?;
            let pipes = match mode {
                Mode::Copy => String::new(),
                Mode::Splice => format!(", pipes {} KiB", out.pipe_bytes >> 10),
            };
            println!(
                "1→{fanout} run {}/{} {mode:?}: {:.0} MB/s ({:.2} s{pipes})",
                i / 2 + 1,
                args.runs,
                out.mb_s,
                out.secs
            );
            if mode == Mode::Copy {
                &mut copy
            } else {
                &mut splice
            }
            .push(out.mb_s);
        }
        rows.push((fanout, mib, median(&mut copy), median(&mut splice)));
    }
    println!("load average: {}", load_average());
    println!();
    println!(
        "{:<6} {:>12} {:>10} {:>12} {:>12}",
        "case", "MiB/receiver", "copy MB/s", "splice MB/s", "splice/copy"
    );
    for (fanout, mib, copy, splice) in rows {
        let case = format!("1→{fanout}");
        println!(
            "{case:<6} {mib:>12} {copy:>10.0} {splice:>12.0} {:>11.2}×",
            splice / copy
        );
    }
    let more = if args.splice_more { "with" } else { "without" };
    println!(
        "(medians of {} runs per mode, alternating; splice writes {more} SPLICE_F_MORE)",
        args.runs
    );
    Ok(())
}

/// The middle value (the mean of the middle two for an even count).
#[cfg(target_os = "linux")]
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
#[cfg(target_os = "linux")]
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
