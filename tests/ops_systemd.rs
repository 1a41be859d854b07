//! systemd readiness without systemd: the test plays the service manager with a
//! unix datagram socket in `NOTIFY_SOCKET` (sd_notify(3)) and checks that the real
//! binary says `READY=1` only once its component handshake with a real Prosody
//! has succeeded, reports the link in `STATUS=` lines before that, and says
//! `STOPPING=1` when SIGTERM starts the drain.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::dsps::{Component, Dsps};
use common::prosody::Prosody;

const DOMAIN: &str = "dsps.localhost";
const SECRET: &str = "ops-systemd-secret";
/// Bound on each wait for a notification or a log line.
const BOUND: Duration = Duration::from_secs(30);

/// The service manager's end.
struct Manager {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: String,
    /// Every message received so far, in order.
    seen: Vec<String>,
}

impl Manager {
    fn new() -> Manager {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Manager {
            socket,
            path: path.to_str().expect("utf-8 path").to_string(),
            _dir: dir,
            seen: Vec::new(),
        }
    }

    /// Takes every message already waiting, without blocking.
    fn take_waiting(&mut self) {
        self.socket.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.socket.set_nonblocking(false).expect("blocking");
    }

    /// Waits (bounded) for a message with the line `line`; returns it.
    fn wait_for(&mut self, line: &str) -> String {
        self.wait_for_line(line, |l| l == line)
    }

    /// Waits (bounded) for a message with a line that `want` accepts; returns it.
    fn wait_for_line(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + BOUND;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what:?} within {BOUND:?}; got {:?}",
                self.seen
            );
            self.socket
                .set_read_timeout(Some(left))
                .expect("read timeout");
            if let Ok(n) = self.socket.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(m.clone());
                if m.lines().any(&want) {
                    return m;
                }
            }
        }
    }

    fn has(&self, line: &str) -> bool {
        self.seen.iter().any(|m| m.lines().any(|l| l == line))
    }
}

#[test]
fn ready_comes_only_after_the_component_handshake_and_stopping_on_sigterm() {
    let mut prosody = Prosody::start(&[(DOMAIN, SECRET)], &[]);
    // Nobody on the component port yet: every login fails.
    prosody.stop();
    let mut manager = Manager::new();
    let env = [("NOTIFY_SOCKET", manager.path.as_str())];
    let mut dsps = Dsps::spawn(
        &prosody.component_addr,
        &Component::new(DOMAIN, SECRET).env(&env),
    );
    // The status follows the link's latest state (a quick one may be skipped), so
    // any failed attempt will do; the backoff keeps each failure up for 250 ms+.
    let failed = "STATUS=component login failed (attempt ";
    manager.wait_for_line(failed, |l| l.starts_with(failed));
    dsps.wait_for_log("attempt=2", BOUND);
    manager.take_waiting();
    assert!(
        !manager.has("READY=1"),
        "ready before any handshake: {:?}",
        manager.seen
    );
    assert!(!dsps.log().contains("component online"));

    prosody.resume();
    let resumed = Instant::now();
    let ready = manager.wait_for("READY=1");
    eprintln!(
        "READY=1 {:?} after Prosody's component port came back",
        resumed.elapsed()
    );
    assert!(ready.contains("STATUS=component online"), "{ready:?}");
    assert!(
        dsps.log().contains("component online"),
        "READY=1 arrived before the handshake was logged:\n{}",
        dsps.log()
    );
    assert_eq!(
        manager
            .seen
            .iter()
            .filter(|m| m.contains("READY=1"))
            .count(),
        1
    );

    dsps.signal("TERM");
    let stopping = manager.wait_for("STOPPING=1");
    assert!(
        stopping.contains("STATUS=stopping: draining the relay"),
        "{stopping:?}"
    );
    let status = dsps.wait_exit(BOUND).expect("dsps exits after the drain");
    assert!(status.success(), "exit status {status:?}\n{}", dsps.log());
    manager.take_waiting();
    assert!(
        manager.has("STATUS=component link closed"),
        "{:?}",
        manager.seen
    );
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    // `scripts/test.sh` installs systemd-analyze when it is missing.
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/dsps.service"))
        .expect("conf/dsps.service");
    assert!(unit.contains("\nType=notify\n"), "{unit}");
    assert!(
        unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"),
        "{unit}"
    );
    // verify checks that ExecStart is executable: point it at the binary under test.
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("dsps.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/dsps", env!("CARGO_BIN_EXE_dsps")),
    )
    .expect("write the unit");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze is installed (apt-get install systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    assert!(
        !said.contains("dsps.service"),
        "systemd-analyze has remarks about the unit:\n{said}"
    );
}
