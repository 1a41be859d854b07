//! The non-dsps ways to move the same bytes: a direct loopback TCP connection,
//! `socat -b 262144` as a one-connection forwarder and `ncat --broker` as a fan-out
//! hub. The tool processes are ours: started here on ports we pick, stopped by PID.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::R;

/// How long a tool may take to start listening.
const START_BOUND: Duration = Duration::from_secs(10);

fn e(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// A connected loopback pair (sender side, receiver side), TCP_NODELAY like dsps's.
pub fn direct_pair() -> R<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(e("bind"))?;
    let a = TcpStream::connect(l.local_addr().map_err(e("addr"))?).map_err(e("connect"))?;
    let (b, _) = l.accept().map_err(e("accept"))?;
    a.set_nodelay(true).map_err(e("nodelay"))?;
    b.set_nodelay(true).map_err(e("nodelay"))?;
    Ok((a, b))
}

/// A loopback port free right now (the tool binds it a moment later).
fn free_port() -> R<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(e("bind"))?;
    Ok(l.local_addr().map_err(e("addr"))?.port())
}

/// A tool process we started; killed by its PID when dropped.
pub struct Tool {
    child: Child,
    name: &'static str,
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tool {
    fn spawn(name: &'static str, args: &[String]) -> R<Tool> {
        let child = Command::new(name)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("starting {name}: {err} (scripts/bench.sh installs it)"))?;
        Ok(Tool { child, name })
    }

    /// Connects to the tool's port, retrying while it is not listening yet.
    fn connect(&mut self, port: u16) -> R<TcpStream> {
        let deadline = Instant::now() + START_BOUND;
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_nodelay(true).map_err(e("nodelay"))?;
                    return Ok(s);
                }
                Err(err) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        return Err(format!("{} exited ({status}) before listening", self.name));
                    }
                    let _ = err;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(err) => return Err(format!("{} never listened on {port}: {err}", self.name)),
            }
        }
    }
}

/// A one-connection `socat -b 262144` forwarder: (its process, sender side,
/// receiver side).
pub fn socat_pair() -> R<(Tool, TcpStream, TcpStream)> {
    let sink = TcpListener::bind("127.0.0.1:0").map_err(e("bind"))?;
    let sink_port = sink.local_addr().map_err(e("addr"))?.port();
    let port = free_port()?;
    let mut tool = Tool::spawn(
        "socat",
        &[
            "-b".into(),
            "262144".into(),
            format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"),
            format!("TCP:127.0.0.1:{sink_port}"),
        ],
    )?;
    let a = tool.connect(port)?;
    let (b, _) = sink.accept().map_err(e("accept from socat"))?;
    b.set_nodelay(true).map_err(e("nodelay"))?;
    Ok((tool, a, b))
}

/// `ncat --broker` with one sender and `n` receivers connected: (its process,
/// sender, receivers). The broker sends each client's bytes to all the others, so
/// the receivers connect one by one, each announcing itself with one byte that the
/// sender must see before the next connects; then every receiver has been taken in
/// before any data flows, and each has exactly the later receivers' bytes to skip.
pub fn ncat_broker(n: usize) -> R<(Tool, TcpStream, Vec<TcpStream>)> {
    let port = free_port()?;
    let mut tool = Tool::spawn(
        "ncat",
        &[
            "--broker".into(),
            "--listen".into(),
            "127.0.0.1".into(),
            port.to_string(),
        ],
    )?;
    let mut sender = tool.connect(port)?;
    sender
        .set_read_timeout(Some(START_BOUND))
        .map_err(e("timeout"))?;
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let mut r = tool.connect(port)?;
        r.write_all(b"h").map_err(e("hello to ncat"))?;
        let mut one = [0u8; 1];
        sender
            .read_exact(&mut one)
            .map_err(e("waiting for a receiver's hello through ncat"))?;
        receivers.push(r);
    }
    for (i, r) in receivers.iter_mut().enumerate() {
        let mut skip = vec![0u8; n - 1 - i];
        r.set_read_timeout(Some(START_BOUND))
            .map_err(e("timeout"))?;
        r.read_exact(&mut skip)
            .map_err(e("reading the other receivers' hellos"))?;
        r.set_read_timeout(None).map_err(e("timeout"))?;
        if skip.iter().any(|&b| b != b'h') {
            return Err("ncat relayed something other than the hellos".into());
        }
    }
    sender.set_read_timeout(None).map_err(e("timeout"))?;
    Ok((tool, sender, receivers))
}
