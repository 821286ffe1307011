//! File descriptors handed to a process by number (the monitor's report pipe), and the ones a
//! process holds.

use std::os::fd::RawFd;

/// Marks `fd` close-on-exec, so a pipe meant for this process never reaches the container.
pub fn close_on_exec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: F_SETFD only changes the flags of `fd`; an fd that is not open yields EBADF.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The descriptors this process has open now (from /proc/self/fd; empty if it cannot be read).
pub fn open_fds() -> Vec<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
