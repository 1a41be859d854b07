//! Runs the real `dsps` binary against a test Prosody, with a private config.

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::prosody::Prosody;

/// How long the component may take to log in to Prosody.
pub const ONLINE_TIMEOUT: Duration = Duration::from_secs(15);

/// What one `dsps` process is started with: the component it logs in as and its
/// config beyond that. Build it with [`Component::new`] and the setters.
#[derive(Clone, Copy, Debug)]
pub struct Component<'a> {
    /// The component domain (e.g. `dsps.localhost`).
    pub domain: &'a str,
    /// Its secret on the XMPP server; unique per test file, so a stray instance can
    /// never accept our component.
    pub secret: &'a str,
    /// Lines added to the `[component]` section (e.g. `max_stanza_size = 8192`).
    pub component_extra: &'a str,
    /// Where the relay listens and the host it advertises.
    pub relay: (&'a str, &'a str),
    /// Appended to the config (e.g. a `[timeouts]` section, or `[relay]` keys).
    pub extra: &'a str,
    /// Environment variables set for the process, after the defaults (so
    /// `RUST_LOG` here replaces the fixture's).
    pub env: &'a [(&'a str, &'a str)],
}

impl<'a> Component<'a> {
    /// `domain` with `secret`, relay on a free loopback port advertised as
    /// 127.0.0.1, nothing else configured.
    pub fn new(domain: &'a str, secret: &'a str) -> Component<'a> {
        Component {
            domain,
            secret,
            component_extra: "",
            relay: ("127.0.0.1:0", "127.0.0.1"),
            extra: "",
            env: &[],
        }
    }

    /// With `env` set for the process.
    pub fn env(self, env: &'a [(&'a str, &'a str)]) -> Component<'a> {
        Component { env, ..self }
    }

    /// With `extra` appended to the config.
    pub fn extra(self, extra: &'a str) -> Component<'a> {
        Component { extra, ..self }
    }

    /// With `lines` added to the `[component]` section.
    pub fn component_extra(self, lines: &'a str) -> Component<'a> {
        Component {
            component_extra: lines,
            ..self
        }
    }

    /// With the relay listening on `listen` (e.g. `[::1]:0`), advertised as `host`.
    pub fn relay(self, listen: &'a str, host: &'a str) -> Component<'a> {
        Component {
            relay: (listen, host),
            ..self
        }
    }
}

/// A running `dsps` process; killed by PID on drop.
pub struct Dsps {
    child: Child,
    /// The component domain.
    pub domain: String,
    dir: tempfile::TempDir,
}

impl Dsps {
    /// Starts `dsps` as `component` of `prosody` and waits for "component online".
    pub fn start(prosody: &Prosody, component: &Component) -> Dsps {
        let d = Dsps::spawn(&prosody.component_addr, component);
        d.wait_for_log("component online", ONLINE_TIMEOUT);
        d
    }

    /// Starts `dsps` as `component` against the component port `server`, without
    /// waiting for it to come online.
    pub fn spawn(server: &str, component: &Component) -> Dsps {
        let Component {
            domain,
            secret,
            component_extra,
            relay: (listen, host),
            extra,
            env,
        } = *component;
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = dir.path().join("dsps.toml");
        let text = format!(
            "[component]\njid = \"{domain}\"\nserver = \"{server}\"\nsecret = \"{secret}\"\n{component_extra}\n\n[relay]\nlisten = \"{listen}\"\nhost = \"{host}\"\n{extra}\n"
        );
        fs::write(&cfg, text).expect("write config");
        let log = fs::File::create(dir.path().join("dsps.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_dsps"))
            .arg("--config")
            .arg(&cfg)
            // A test run under systemd must not make every dsps report to it.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("RUST_LOG", "dsps=trace,info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn dsps");
        Dsps {
            child,
            domain: domain.to_string(),
            dir,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("dsps.log")
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits (bounded) until the log contains `needle`; panics with the log if not.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "dsps never logged {needle:?} within {timeout:?}; log:\n{}",
            self.log()
        );
    }

    /// Async variant of [`Dsps::wait_for_log`].
    pub async fn wait_for_log_async(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "dsps never logged {needle:?} within {timeout:?}; log:\n{}",
            self.log()
        );
    }

    /// Waits (bounded) for the log line containing `message` and returns the
    /// address in its `field=ADDR` (e.g. `relay` of "relay port listening").
    pub fn logged_addr(&self, message: &str, field: &str) -> std::net::SocketAddr {
        self.wait_for_log(message, ONLINE_TIMEOUT);
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains(message))
            .expect("the line was just seen");
        let key = format!("{field}=");
        let at = line
            .find(&key)
            .unwrap_or_else(|| panic!("no {key} in {line:?}"));
        let value = line[at + key.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default();
        value
            .parse()
            .unwrap_or_else(|e| panic!("{field} in {line:?} is not an address: {e}"))
    }

    /// Resident memory of the process in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `"HUP"`) to the process, by PID.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -{signal} {} failed",
            self.child.id()
        );
    }

    /// Sends SIGTERM (by PID) and waits, bounded, for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.wait_exit(timeout)
    }

    /// Waits, bounded, for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Dsps {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- dsps log ---\n{}", self.log());
        }
    }
}
