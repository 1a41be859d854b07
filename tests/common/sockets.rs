//! What `ss` (iproute2, which `scripts/test.sh` installs when it is missing) shows
//! of established TCP sockets on this machine: the congestion control of each, and
//! the process holding it.

use std::process::Command;

/// One socket as `ss -tinp` shows it.
#[derive(Debug)]
pub struct Shown {
    /// The first line: state, queues, addresses and `users:((…,pid=…))`.
    pub line: String,
    /// The first word of the info line: the congestion control.
    pub congestion: String,
}

impl Shown {
    /// Whether process `pid` holds this socket.
    pub fn held_by(&self, pid: u32) -> bool {
        self.line.contains(&format!("pid={pid},"))
    }
}

/// Every established socket matching `filter` (ss's syntax, e.g.
/// `( sport = :5290 and dport = :40000 )`).
pub fn established(filter: &str) -> Vec<Shown> {
    shown("established", filter)
}

/// Every listening socket matching `filter`.
pub fn listening(filter: &str) -> Vec<Shown> {
    shown("listening", filter)
}

fn shown(state: &str, filter: &str) -> Vec<Shown> {
    let out = Command::new("ss")
        .args(["-tinpH", "state", state, filter])
        .output()
        .expect("run ss (iproute2)");
    assert!(out.status.success(), "ss failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let names = available_congestion();
    let mut shown = Vec::new();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    while let Some(line) = lines.next() {
        if line.starts_with(char::is_whitespace) {
            continue;
        }
        let info = lines
            .next_if(|l| l.starts_with(char::is_whitespace))
            .unwrap_or_else(|| panic!("ss shows no info line after {line:?}: {text:?}"));
        // The info line names the congestion control among other words (first,
        // unless options such as -o put timers before it).
        let congestion = info
            .split_whitespace()
            .find(|w| names.iter().any(|n| n == w))
            .unwrap_or_else(|| panic!("no congestion control in {info:?}"));
        shown.push(Shown {
            line: line.to_owned(),
            congestion: congestion.to_owned(),
        });
    }
    shown
}

fn available_congestion() -> Vec<String> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
        .expect("read the available congestion controls")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The system's TCP congestion control (what a new socket starts with).
pub fn system_congestion() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .expect("read the system's congestion control")
        .trim()
        .to_owned()
}
