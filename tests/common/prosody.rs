//! A private Prosody for integration tests: its own temp dir (config, accounts, log),
//! its own loopback ports, killed by PID on drop.
//!
//! Readiness is taken from the log ("Activated service ... on [127.0.0.1]:PORT" for both
//! our ports), never from an open port: Prosody keeps running when a port is taken, so
//! an open port may belong to someone else's instance (notes/xmpp-component.md §6).
//! Ports come from binding 127.0.0.1:0 and letting go; if another process grabs one in
//! between, activation is not logged and we start over with new ports.
//!
//! Like a production server it requires encryption on c2s (`c2s_require_encryption`),
//! with a self-signed certificate for "localhost" made at start ([`Prosody::cert`]):
//! clients log in over STARTTLS, trusting that file.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long one start attempt may take before we give up on it.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Start attempts, each with fresh ports, before the fixture panics.
const START_ATTEMPTS: usize = 3;
/// How often the log is re-read while waiting for activation.
const LOG_POLL: Duration = Duration::from_millis(20);
/// Lines of log shown when the fixture panics.
const LOG_TAIL_LINES: usize = 40;

/// A running private Prosody; see the module doc.
pub struct Prosody {
    /// Client-to-server listener, "127.0.0.1:PORT".
    pub c2s_addr: String,
    /// XEP-0114 component listener, "127.0.0.1:PORT".
    pub component_addr: String,
    /// The one VirtualHost, "localhost".
    pub domain: String,
    /// The server's self-signed certificate (PEM), for clients to trust.
    pub cert: PathBuf,
    dir: TempDir,
    child: Child,
}

/// Why a start attempt failed, with the log so far.
struct StartFailure {
    reason: String,
    log: String,
}

impl Prosody {
    /// Starts a private Prosody with VirtualHost "localhost", one `Component` per
    /// `(domain, secret)` and the accounts `(name, password)` registered on "localhost".
    /// Waits (bounded) until both listeners are activated; retries with new ports up to
    /// three times, then panics with the tail of the log.
    pub fn start(components: &[(&str, &str)], users: &[(&str, &str)]) -> Prosody {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Prosody::try_start(components, users) {
                Ok(prosody) => return prosody,
                Err(failure) => failures.push(failure),
            }
        }
        let last = failures.last().map_or("", |f| f.log.as_str());
        let reasons: Vec<&str> = failures.iter().map(|f| f.reason.as_str()).collect();
        panic!(
            "Prosody did not start after {START_ATTEMPTS} attempts ({}); last log:\n{}",
            reasons.join("; "),
            tail(last, LOG_TAIL_LINES)
        );
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(log_path(self.dir.path())).unwrap_or_default()
    }

    fn try_start(
        components: &[(&str, &str)],
        users: &[(&str, &str)],
    ) -> Result<Prosody, StartFailure> {
        let dir = tempfile::Builder::new()
            .prefix("dsps-prosody-")
            .tempdir()
            .expect("create temp dir for Prosody");
        // The certs dir holds the generated certificate for "localhost".
        for sub in ["data", "certs"] {
            fs::create_dir(dir.path().join(sub)).expect("create Prosody subdir");
        }
        let cert = dir.path().join("certs/localhost.crt");
        let pair = dsps::certgen::self_signed(&["localhost".to_string()])
            .expect("generate a certificate for the test Prosody");
        fs::write(&cert, pair.cert_pem).expect("write the certificate");
        fs::write(dir.path().join("certs/localhost.key"), pair.key_pem).expect("write the key");
        let (c2s_port, component_port) = (free_port(), free_port());
        let config = config_path(dir.path());
        fs::write(
            &config,
            config_text(dir.path(), c2s_port, component_port, components),
        )
        .expect("write Prosody config");
        for (name, password) in users {
            register(&config, name, password);
        }

        let child = spawn(&config, dir.path());
        let mut prosody = Prosody {
            c2s_addr: format!("127.0.0.1:{c2s_port}"),
            component_addr: format!("127.0.0.1:{component_port}"),
            domain: "localhost".to_owned(),
            cert,
            dir,
            child,
        };
        // On failure `prosody` is dropped here, which kills the child.
        prosody.await_activation(c2s_port, component_port, 0)?;
        Ok(prosody)
    }

    /// Kills the server (by PID), as a crash would; [`Prosody::resume`] starts it again.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same ports and data, after [`Prosody::stop`].
    pub fn resume(&mut self) {
        let port = |a: &str| {
            a.rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port")
        };
        let (c2s_port, component_port) = (port(&self.c2s_addr), port(&self.component_addr));
        let offset = self.log().len();
        self.child = spawn(&config_path(self.dir.path()), self.dir.path());
        if let Err(f) = self.await_activation(c2s_port, component_port, offset) {
            panic!(
                "Prosody did not restart ({}):\n{}",
                f.reason,
                tail(&f.log, LOG_TAIL_LINES)
            );
        }
    }

    /// Waits until the log past byte `offset` shows both of our listeners activated.
    fn await_activation(
        &mut self,
        c2s_port: u16,
        component_port: u16,
        offset: usize,
    ) -> Result<(), StartFailure> {
        let wanted = [
            format!("Activated service 'c2s' on [127.0.0.1]:{c2s_port}"),
            format!("Activated service 'component' on [127.0.0.1]:{component_port}"),
        ];
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log().get(offset..).unwrap_or_default().to_owned();
            if wanted.iter().all(|line| log.contains(line.as_str())) {
                return Ok(());
            }
            let fail = |reason: String| {
                Err(StartFailure {
                    reason,
                    log: log.clone(),
                })
            };
            if log.contains("Failed to open server port") {
                return fail("a port was taken".to_owned());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return fail(format!("prosody exited with {status}"));
            }
            if Instant::now() > deadline {
                return fail(format!("no activation within {START_TIMEOUT:?}"));
            }
            thread::sleep(LOG_POLL);
        }
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        // SIGKILL by our own child's PID: fast, and it can never hit another instance.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `prosody -F` on `config`, output into the temp dir.
fn spawn(config: &Path, dir: &Path) -> Child {
    let output = File::create(dir.join("stdout.log")).expect("create stdout log");
    Command::new("prosody")
        .arg("-F")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("clone log handle"))
        .stderr(output)
        .spawn()
        .expect("spawn prosody (is it installed? apt-get install prosody)")
}

fn config_path(dir: &Path) -> PathBuf {
    dir.join("prosody.cfg.lua")
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("prosody.log")
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// The config: loopback only, real accounts in the temp dir, c2s only over STARTTLS,
/// no s2s or HTTP.
///
/// Strings are written with Rust's `{:?}`, which matches Lua's quoting for the plain
/// ASCII names and secrets tests use.
fn config_text(
    dir: &Path,
    c2s_port: u16,
    component_port: u16,
    components: &[(&str, &str)],
) -> String {
    let dir = dir.display();
    let mut text = format!(
        r#"-- Written by tests/common/prosody.rs; test use only.
-- Running the tests as root (CI containers) needs this; as another user it does nothing.
run_as_root = true
data_path = "{dir}/data"
pidfile = "{dir}/prosody.pid"
certificates = "{dir}/certs"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}; c2s_interfaces = {{ "127.0.0.1" }}
component_ports = {{ {component_port} }}; component_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}; http_ports = {{ }}; https_ports = {{ }}; c2s_direct_tls_ports = {{ }}
network_settings = {{ nagle = false }}
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "version" }}
modules_disabled = {{ "s2s", "offline", "register", "http", "bosh", "websocket" }}
ssl = {{ certificate = "{dir}/certs/localhost.crt"; key = "{dir}/certs/localhost.key" }}
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
authentication = "internal_hashed"
storage = "internal"
component_conflict_resolve = "kick_old"
VirtualHost "localhost"
"#
    );
    for (domain, secret) in components {
        text.push_str(&format!(
            "Component {domain:?}\n    component_secret = {secret:?}\n"
        ));
    }
    text
}

/// Creates an account with prosodyctl, which writes to the same data_path the server
/// reads, so it must run before the server starts.
fn register(config: &Path, name: &str, password: &str) {
    let out = Command::new("prosodyctl")
        .arg("--config")
        .arg(config)
        .args(["register", name, "localhost", password])
        .stdin(Stdio::null())
        .output()
        .expect("run prosodyctl");
    assert!(
        out.status.success(),
        "prosodyctl register {name} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
