//! What the user sees while a command runs: informational lines and byte progress on
//! stderr.
//!
//! On a terminal, progress is an indicatif bar (bytes, rate, ETA; a spinner when the
//! length is unknown). Otherwise it is a plain line every [`PLAIN_INTERVAL`], so logs
//! of background runs stay readable. `--quiet` turns both off, and the informational
//! lines too; [`Output::always`] lines (results the user asked for, `--status`) still
//! print. Lines printed while a bar is shown go above it.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed when stderr is not a terminal.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(2);

/// The program's name, the prefix of every line it prints on stderr.
pub const PROGRAM: &str = "dsps-client";

/// Where informational lines and progress go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    quiet: bool,
    terminal: bool,
}

impl Output {
    /// Output for `--quiet` (or not), on a terminal if stderr is one.
    pub fn new(quiet: bool) -> Output {
        Output {
            quiet,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// An informational line on stderr, unless `--quiet`.
    pub fn info(&self, line: &str) {
        if !self.quiet {
            eprintln!("{PROGRAM}: {line}");
        }
    }

    /// A line on stderr even with `--quiet` (something the user asked for).
    pub fn always(&self, line: &str) {
        eprintln!("{PROGRAM}: {line}");
    }

    /// Progress for `label` over `total` bytes (`None`: unknown length).
    pub fn progress(&self, label: &str, total: Option<u64>) -> Progress {
        let inner = if self.quiet {
            Inner::Hidden
        } else if self.terminal {
            Inner::Bar(bar(label, total))
        } else {
            Inner::Plain(Mutex::new(Plain {
                label: label.to_string(),
                total,
                done: 0,
                started: Instant::now(),
                last: Instant::now(),
            }))
        };
        Progress {
            inner: Arc::new(inner),
        }
    }
}

/// Byte progress of one transfer; clones share it.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

enum Inner {
    Bar(ProgressBar),
    Plain(Mutex<Plain>),
    Hidden,
}

struct Plain {
    label: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    /// `n` more bytes done.
    pub fn inc(&self, n: u64) {
        match &*self.inner {
            Inner::Bar(b) => b.inc(n),
            Inner::Plain(p) => {
                // No await while the lock is held; a std Mutex is enough.
                let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
                p.done += n;
                if p.last.elapsed() >= PLAIN_INTERVAL {
                    p.last = Instant::now();
                    eprintln!("{PROGRAM}: {}", plain_line(&p));
                }
            }
            Inner::Hidden => {}
        }
    }

    /// A line on stderr that does not garble the bar (shown even with `--quiet`).
    pub fn println(&self, line: &str) {
        match &*self.inner {
            Inner::Bar(b) => b.println(format!("{PROGRAM}: {line}")),
            _ => eprintln!("{PROGRAM}: {line}"),
        }
    }

    /// The transfer is over; removes the bar.
    pub fn finish(&self) {
        if let Inner::Bar(b) = &*self.inner {
            b.finish_and_clear();
        }
    }

    /// The transfer failed; leaves the bar where it stopped.
    pub fn abandon(&self) {
        if let Inner::Bar(b) = &*self.inner {
            b.abandon();
        }
    }
}

/// `send: 12.0 MiB of 64.0 MiB (18%), 10.2 MiB/s, ETA 5 s`.
fn plain_line(p: &Plain) -> String {
    let secs = p.started.elapsed().as_secs_f64().max(1e-3);
    let rate = p.done as f64 / secs;
    let mut line = format!("{}: {}", p.label, mib(p.done as f64));
    if let Some(total) = p.total.filter(|t| *t > 0) {
        let pct = p.done as f64 * 100.0 / total as f64;
        line.push_str(&format!(" of {} ({pct:.0}%)", mib(total as f64)));
    }
    line.push_str(&format!(", {}/s", mib(rate)));
    if let Some(total) = p.total {
        if rate > 0.0 && total > p.done {
            let eta = (total - p.done) as f64 / rate;
            line.push_str(&format!(", ETA {eta:.0} s"));
        }
    }
    line
}

/// `12.0 MiB`.
fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn bar(label: &str, total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(len) => (
            ProgressBar::new(len),
            "{prefix} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{prefix} {spinner} {bytes} {binary_bytes_per_sec} {elapsed}",
        ),
    };
    let style = ProgressStyle::with_template(template)
        .expect("the templates are literals")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    if total.is_none() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}

/// "N bytes in T s (X MiB/s)", the common part of the summary lines.
pub fn throughput(bytes: u64, elapsed: Duration) -> String {
    format!("{bytes} bytes in {}", timing(bytes, elapsed))
}

/// "1 receiver", "2 receivers".
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// "T s (X MiB/s)".
pub fn timing(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    let mib_s = bytes as f64 / (1024.0 * 1024.0) / secs;
    format!("{secs:.2} s ({mib_s:.1} MiB/s)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_name_amount_share_and_rate() {
        let p = Plain {
            label: "send".into(),
            total: Some(4 * 1024 * 1024),
            done: 1024 * 1024,
            started: Instant::now() - Duration::from_secs(1),
            last: Instant::now(),
        };
        let line = plain_line(&p);
        assert!(
            line.starts_with("send: 1.0 MiB of 4.0 MiB (25%), "),
            "{line}"
        );
        assert!(line.contains("MiB/s, ETA "), "{line}");
    }

    #[test]
    fn unknown_lengths_have_no_eta() {
        let p = Plain {
            label: "join".into(),
            total: None,
            done: 0,
            started: Instant::now(),
            last: Instant::now(),
        };
        assert_eq!(plain_line(&p), "join: 0.0 MiB, 0.0 MiB/s");
    }

    #[test]
    fn throughput_is_bytes_time_and_rate() {
        assert_eq!(
            throughput(2 * 1024 * 1024, Duration::from_secs(2)),
            "2097152 bytes in 2.00 s (1.0 MiB/s)"
        );
    }
}
