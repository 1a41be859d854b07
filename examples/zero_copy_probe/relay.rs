//! The two relays under test. Both read one source socket until EOF, give every byte
//! to each destination in order, and close the destinations when done (by dropping).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};

use crate::sys::{self, Pipe};

/// Largest read (copy) or splice from the source, as socat -b 262144 does.
pub const CHUNK: usize = 256 * 1024;

/// What the relay did: bytes it took from the source, and the smallest pipe it got
/// (0 for the copy relay).
pub struct Relayed {
    pub bytes: u64,
    pub pipe_bytes: usize,
}

/// read() up to CHUNK, then write() it all to each destination in turn.
pub fn copy(mut src: TcpStream, mut dsts: Vec<TcpStream>) -> io::Result<Relayed> {
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            return Ok(Relayed {
                bytes,
                pipe_bytes: 0,
            });
        }
        for dst in &mut dsts {
            dst.write_all(&buf[..n])?;
        }
        bytes += n as u64;
    }
}

/// splice(source → pipe), then for one destination splice(pipe → socket); for more,
/// tee(pipe → a pipe per destination) and splice each of those to its socket.
/// `more` sets SPLICE_F_MORE (MSG_MORE) on the socket writes; write() in `copy` does not.
pub fn splice(
    src: TcpStream,
    dsts: Vec<TcpStream>,
    pipe_bytes: usize,
    more: bool,
) -> io::Result<Relayed> {
    let out_flags = if more { libc::SPLICE_F_MORE } else { 0 };
    let (inbound, mut smallest) = sized_pipe(pipe_bytes)?;
    let mut outs = Vec::new();
    if dsts.len() > 1 {
        for _ in &dsts {
            let (out, got) = sized_pipe(pipe_bytes)?;
            smallest = smallest.min(got);
            outs.push(out);
        }
    }
    // Consumed bytes are dropped by splicing them to /dev/null, which frees the pipe's
    // page references without copying (a read into a scratch buffer would copy).
    let null = File::options().write(true).open("/dev/null")?;
    let mut teed = vec![0usize; outs.len()];
    let mut bytes = 0u64;
    loop {
        let n = sys::splice(
            src.as_fd(),
            inbound.write.as_fd(),
            CHUNK,
            libc::SPLICE_F_MOVE,
        )?;
        if n == 0 {
            return Ok(Relayed {
                bytes,
                pipe_bytes: smallest,
            });
        }
        if outs.is_empty() {
            drain(inbound.read.as_fd(), dsts[0].as_fd(), n, out_flags)?;
        } else {
            fan_out(
                &inbound,
                &outs,
                &dsts,
                null.as_fd(),
                n,
                &mut teed,
                out_flags,
            )?;
        }
        bytes += n as u64;
    }
}

/// A pipe and the capacity it got when asked for `bytes`.
fn sized_pipe(bytes: usize) -> io::Result<(Pipe, usize)> {
    let pipe = sys::pipe()?;
    let got = sys::set_pipe_size(&pipe, bytes)?;
    Ok((pipe, got))
}

/// Gives the `n` bytes waiting in `inbound` to every destination, then drops them.
///
/// tee copies from the head of a pipe without consuming it, so a short tee cannot be
/// resumed at an offset. Each round therefore tees to every destination pipe (all
/// empty), sends every destination the prefix all of them got (the shortest tee),
/// discards the extra some got (the next round tees it again), and only then consumes
/// that prefix from `inbound`. Usually every tee takes all `n`: one round.
fn fan_out(
    inbound: &Pipe,
    outs: &[Pipe],
    dsts: &[TcpStream],
    null: BorrowedFd,
    n: usize,
    teed: &mut [usize],
    out_flags: u32,
) -> io::Result<()> {
    let mut left = n;
    while left > 0 {
        for (out, t) in outs.iter().zip(teed.iter_mut()) {
            *t = sys::tee(inbound.read.as_fd(), out.write.as_fd(), left)?;
        }
        let round = teed.iter().copied().min().unwrap_or(0);
        if round == 0 {
            return Err(io::Error::other("tee moved 0 bytes from a non-empty pipe"));
        }
        for ((out, dst), &t) in outs.iter().zip(dsts).zip(teed.iter()) {
            drain(out.read.as_fd(), dst.as_fd(), round, out_flags)?;
            drain(out.read.as_fd(), null, t - round, 0)?;
        }
        drain(inbound.read.as_fd(), null, round, 0)?;
        left -= round;
    }
    Ok(())
}

/// Splices exactly `n` bytes out of a pipe, looping over short moves.
fn drain(pipe: BorrowedFd, to: BorrowedFd, mut n: usize, flags: u32) -> io::Result<()> {
    while n > 0 {
        let moved = sys::splice(pipe, to, n, flags)?;
        if moved == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "splice moved 0 bytes",
            ));
        }
        n -= moved;
    }
    Ok(())
}
