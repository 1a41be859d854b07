//! Safe wrappers over the Linux calls the splice relay needs (pipe2, F_SETPIPE_SZ,
//! splice, tee). Each one turns a -1 return into the errno as an `io::Error`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Both ends of one pipe; closed when dropped.
pub struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
}

fn check(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// A new pipe (O_CLOEXEC).
pub fn pipe() -> io::Result<Pipe> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two fds into the two-element array it is given and touches
    // nothing else.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } as isize)?;
    // SAFETY: on success both fds are new and nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok(Pipe { read, write })
}

/// Asks for `bytes` of capacity and returns what the pipe has afterwards. A refusal
/// (EPERM over /proc/sys/fs/pipe-max-size or the user's pipe quota) is not an error:
/// the pipe keeps its size and the relay copes with smaller moves.
pub fn set_pipe_size(pipe: &Pipe, bytes: usize) -> io::Result<usize> {
    let fd = pipe.write.as_raw_fd();
    let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: fcntl on an fd we own; F_SETPIPE_SZ takes an int and touches no memory.
    if let Ok(got) = check(unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, want) } as isize) {
        return Ok(got);
    }
    // SAFETY: as above; F_GETPIPE_SZ takes no argument.
    check(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) } as isize)
}

/// Moves up to `len` bytes from `from` to `to` inside the kernel (one end must be a
/// pipe). Returns how many moved; 0 means end of input.
pub fn splice(from: BorrowedFd, to: BorrowedFd, len: usize, flags: u32) -> io::Result<usize> {
    // SAFETY: null offsets mean "use the fds' own positions" (pipes and sockets have no
    // offset to pass); the call reads and writes no user memory.
    let ret = unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    check(ret)
}

/// Duplicates up to `len` bytes from the head of pipe `from` into pipe `to` without
/// consuming them from `from`.
pub fn tee(from: BorrowedFd, to: BorrowedFd, len: usize) -> io::Result<usize> {
    // SAFETY: both are pipe fds we hold; the call reads and writes no user memory.
    check(unsafe { libc::tee(from.as_raw_fd(), to.as_raw_fd(), len, 0) })
}
