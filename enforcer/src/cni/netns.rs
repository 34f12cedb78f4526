//! Running code inside another network namespace: a dedicated thread enters the namespace
//! with setns(2), runs the closure and ends, so no other thread ever changes namespace.

// setns(2) on a file descriptor we own; see `enter`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Opens a network namespace file (`/var/run/netns/NAME`, `/proc/PID/ns/net`).
pub fn open(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Moves the calling thread into the network namespace `ns` refers to.
fn enter(ns: &File) -> io::Result<()> {
    // SAFETY: setns only reads the descriptor, which `ns` keeps open for the whole call; it
    // changes the calling thread's own namespace and touches no memory of ours.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a new thread inside the network namespace `ns`, and returns what it returns.
/// Sockets that `f` opens belong to that namespace for as long as they live, whichever thread
/// uses them afterwards; `/proc/sys/net` opened by `f` is that namespace's.
pub fn run_in<T, F>(ns: &File, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> io::Result<T> + Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(ns)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    })
}

/// [`run_in`] with the namespace given by its path.
pub fn run_in_path<T, F>(path: &Path, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> io::Result<T> + Send,
{
    let ns = open(path)?;
    run_in(&ns, f)
}
