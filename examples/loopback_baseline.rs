//! The demo's baseline: the same file sent straight over one loopback TCP connection,
//! no XMPP and no relay, with the receiver hashing (sha256) and writing it like
//! `dsps-client recv` does. `scripts/demo.sh` prints the dsps rates as ratios to this one.
//!
//! `loopback_baseline FILE OUT` prints `direct N bytes in T s (X MiB/s)`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use sha2::{Digest, Sha256};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(file), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: loopback_baseline FILE OUT");
        std::process::exit(2);
    };
    if let Err(e) = run(file, out) {
        eprintln!("loopback_baseline: {e}");
        std::process::exit(1);
    }
}

fn run(file: &str, out: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let out = out.to_string();
    let receiver = std::thread::spawn(move || -> std::io::Result<(u64, String)> {
        let (mut sock, _) = listener.accept()?;
        let mut sink = std::io::BufWriter::new(std::fs::File::create(out)?);
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = sock.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            sink.write_all(&buf[..n])?;
            total += n as u64;
        }
        sink.flush()?;
        Ok((total, format!("{:x}", hash.finalize())))
    });
    let start = Instant::now();
    let mut sock = TcpStream::connect(addr)?;
    let mut src = std::fs::File::open(file)?;
    std::io::copy(&mut src, &mut sock)?;
    sock.shutdown(std::net::Shutdown::Write)?;
    let (total, _digest) = receiver
        .join()
        .map_err(|_| std::io::Error::other("receiver thread panicked"))??;
    let secs = start.elapsed().as_secs_f64();
    let mib = total as f64 / (1024.0 * 1024.0);
    println!(
        "direct {total} bytes in {secs:.2} s ({:.1} MiB/s)",
        mib / secs
    );
    Ok(())
}
