//! Terminal handling for attached `-t` runs: raw mode restored on every exit path, window sizes.

use std::os::fd::{BorrowedFd, RawFd};

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// Puts a terminal into raw mode until dropped.
pub struct RawTerminal {
    fd: RawFd,
    saved: Termios,
}

impl RawTerminal {
    /// Enters raw mode on `fd`; `None` if it is not a terminal.
    pub fn enter(fd: RawFd) -> Option<RawTerminal> {
        // SAFETY: fd is open for the life of the process (our stdin).
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        let saved = tcgetattr(b).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(b, SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { fd, saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: as in enter.
        let b = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = tcsetattr(b, SetArg::TCSANOW, &self.saved);
    }
}

/// The window size of terminal `fd`.
pub fn window_size(fd: RawFd) -> Option<nix::pty::Winsize> {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize struct.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0).then_some(ws)
}

/// Sets the window size of pty master `fd`.
pub fn set_window_size(fd: RawFd, ws: &nix::pty::Winsize) {
    // SAFETY: TIOCSWINSZ reads a winsize struct.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) };
}

/// Turns echo off on a terminal (newlines still echo) for as long as it lives, so a password
/// typed at a prompt is not shown; the settings are restored on every path.
pub struct EchoOff {
    fd: RawFd,
    saved: Termios,
}

impl EchoOff {
    /// Turns echo off on `tty`, which must stay open while the guard lives.
    pub fn new(tty: &impl std::os::fd::AsFd) -> std::io::Result<EchoOff> {
        use nix::sys::termios::LocalFlags;
        let b = tty.as_fd();
        let saved = tcgetattr(b)?;
        let mut t = saved.clone();
        t.local_flags.remove(LocalFlags::ECHO);
        t.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(b, SetArg::TCSANOW, &t)?;
        Ok(EchoOff {
            fd: std::os::fd::AsRawFd::as_raw_fd(&b),
            saved,
        })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: the terminal the guard was made for is open for its life (see `new`).
        let b = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = tcsetattr(b, SetArg::TCSANOW, &self.saved);
    }
}
