//! A container's terminal, made inside the container: the pty comes from the container's own
//! devpts (so `tty` prints `/dev/pts/0` and `ttyname()` works there), and its master end is
//! handed back to the monitor or to `skiff exec` over a socket pair (SCM_RIGHTS), as crun and
//! runc do with their console socket.

use std::io::{IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// Both ends of the socket that carries a pty master from the container to its watcher.
pub fn channel() -> std::io::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)
}

/// Opens a new pty through `/dev/ptmx` (in a container, a link to its own `/dev/pts/ptmx`) and
/// returns (master, slave), both close-on-exec.
pub fn open_pty(size: Option<&nix::pty::Winsize>) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: opening a path we name; the fd is owned below.
    let m = unsafe { libc::open(c"/dev/ptmx".as_ptr(), flags) };
    if m < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: m was just opened and is owned from here on.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int; TIOCGPTPEER opens the slave of this master (Linux 4.13+).
    let s = unsafe {
        if libc::ioctl(m, libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::ioctl(m, libc::TIOCGPTPEER, flags)
    };
    if s < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: s was just opened and is owned from here on.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    if let Some(ws) = size {
        crate::sys::tty::set_window_size(master.as_raw_fd(), ws);
    }
    Ok((master, slave))
}

/// Makes `slave` this process's stdin, stdout, stderr and controlling terminal. The process
/// must lead its own session (after `setsid`).
pub fn attach_stdio(slave: &OwnedFd) -> std::io::Result<()> {
    for i in 0..3 {
        // SAFETY: duplicating an fd we own onto 0, 1, 2.
        if unsafe { libc::dup2(slave.as_raw_fd(), i) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: TIOCSCTTY on our stdin, a pty slave, in our own session.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `fd` over the socket `sock`.
pub fn send_fd(sock: RawFd, fd: &OwnedFd) -> std::io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(b"pty")];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)
        .map(|_| ())
        .map_err(std::io::Error::from)
}

/// Receives an fd sent by [`send_fd`], without waiting: `None` if none is there.
pub fn try_recv_fd(sock: RawFd) -> Option<OwnedFd> {
    let mut buf = [0u8; 8];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    for c in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed these fds in this process; we own them now.
            let mut owned = fds.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) });
            return owned.next();
        }
    }
    None
}

/// Relays between skiff's terminal and a command's pty master until `child` has exited and its
/// output is drained: master to stdout, stdin to the master with `forward_stdin` (in raw mode
/// when stdin is a terminal; EOF is passed on as the terminal's ^D), window-size changes to the
/// master. Returns the child's exit code (128+N for a signal). The caller is single-threaded.
pub fn relay(master: &OwnedFd, child: Pid, forward_stdin: bool) -> i32 {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGWINCH);
    let sfd = mask.thread_block().ok().and_then(|_| {
        SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok()
    });
    let _raw = if forward_stdin {
        crate::sys::tty::RawTerminal::enter(0)
    } else {
        None
    };
    let stdin = std::io::stdin();
    let mut forwarding = forward_stdin;
    let mut master_open = true;
    let mut code: Option<i32> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if code.is_none() {
            code = reap(child);
        }
        if code.is_some() && !master_open {
            break;
        }
        let mut fds = Vec::with_capacity(3);
        if master_open {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
        }
        if let Some(s) = &sfd {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        let stdin_idx = forwarding.then(|| {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        // Without a signalfd, or once the child is gone, look again every 100 ms.
        let timeout = if code.is_some() || sfd.is_none() {
            PollTimeout::from(100u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) if code.is_some() => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready = |i: usize| {
            fds[i].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let master_ready = master_open && ready(0);
        let stdin_ready = stdin_idx.is_some_and(ready);
        drop(fds);
        if master_ready {
            match nix::unistd::read(master, &mut buf) {
                // EIO: every slave fd is closed.
                Ok(0) | Err(nix::errno::Errno::EIO) => master_open = false,
                Ok(n) => {
                    let mut out = std::io::stdout().lock();
                    if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                        master_open = false;
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => master_open = false,
            }
        }
        if let Some(s) = &sfd {
            while let Ok(Some(info)) = s.read_signal() {
                if info.ssi_signo == libc::SIGWINCH as u32 {
                    if let Some(ws) = crate::sys::tty::window_size(0) {
                        crate::sys::tty::set_window_size(master.as_raw_fd(), &ws);
                    }
                }
            }
        }
        if stdin_ready {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    let _ = nix::unistd::write(master, &[4u8]);
                    forwarding = false;
                }
                Ok(n) => {
                    if nix::unistd::write(master, &buf[..n]).is_err() {
                        forwarding = false;
                    }
                }
            }
        }
    }
    let _ = mask.thread_unblock();
    code.or_else(|| {
        waitpid(child, None)
            .ok()
            .and_then(crate::sys::procfs::exit_code)
    })
    .unwrap_or(125)
}

/// Relays a command that has no terminal (`exec` without `-t`) while `child` (the process that
/// waits for it) lives: `outs` (its stdout and stderr pipes, where ours are terminals) to our
/// stdout and stderr, our stdin to `stdin_w`, and SIGINT, SIGQUIT, SIGTERM and SIGHUP to
/// `child`, which passes them on. `errors` is the close-on-exec error pipe: text there means the
/// command never started. Returns its exit code, or (code, message) if it failed to start. The
/// caller is single-threaded.
pub fn relay_pipes(
    child: Pid,
    errors: OwnedFd,
    stdin_w: Option<OwnedFd>,
    outs: [Option<OwnedFd>; 2],
) -> Result<i32, (i32, String)> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGHUP,
    ] {
        mask.add(s);
    }
    let sfd = mask.thread_block().ok().and_then(|_| {
        SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok()
    });
    let stdin = std::io::stdin();
    let mut stdin_w = stdin_w;
    let mut errors = Some(errors);
    let mut outs = outs;
    let mut msg = Vec::new();
    let mut code: Option<i32> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if code.is_none() {
            code = reap(child);
        }
        let open = outs.iter().any(Option::is_some) || errors.is_some();
        if code.is_some() && !open {
            break;
        }
        // Slots: 0 errors, 1 stdout, 2 stderr, 3 stdin, 4 signals.
        let mut fds = Vec::with_capacity(5);
        let mut slot = [usize::MAX; 5];
        fn watch<'a>(
            slot: &mut [usize; 5],
            i: usize,
            fd: std::os::fd::BorrowedFd<'a>,
            fds: &mut Vec<PollFd<'a>>,
        ) {
            slot[i] = fds.len();
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        if let Some(e) = &errors {
            watch(&mut slot, 0, e.as_fd(), &mut fds);
        }
        for (i, o) in outs.iter().enumerate() {
            if let Some(o) = o {
                watch(&mut slot, 1 + i, o.as_fd(), &mut fds);
            }
        }
        // Our stdin is read only once the command runs (the error pipe has closed).
        if stdin_w.is_some() && errors.is_none() {
            watch(&mut slot, 3, stdin.as_fd(), &mut fds);
        }
        if let Some(s) = &sfd {
            watch(&mut slot, 4, s.as_fd(), &mut fds);
        }
        let timeout = if code.is_some() || sfd.is_none() {
            PollTimeout::from(100u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) if code.is_some() => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready: Vec<bool> = (0..5)
            .map(|i| {
                slot[i] != usize::MAX
                    && fds[slot[i]].revents().is_some_and(|r| {
                        r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                    })
            })
            .collect();
        drop(fds);
        if ready[0] {
            if let Some(e) = &errors {
                match nix::unistd::read(e, &mut buf) {
                    Ok(0) | Err(_) => errors = None,
                    Ok(n) => msg.extend_from_slice(&buf[..n]),
                }
            }
        }
        for i in 0..2 {
            if !ready[1 + i] {
                continue;
            }
            let Some(o) = &outs[i] else { continue };
            match nix::unistd::read(o, &mut buf) {
                Ok(0) => outs[i] = None,
                Ok(n) => {
                    let r = if i == 0 {
                        let mut w = std::io::stdout().lock();
                        w.write_all(&buf[..n]).and_then(|_| w.flush())
                    } else {
                        std::io::stderr().lock().write_all(&buf[..n])
                    };
                    if r.is_err() {
                        outs[i] = None;
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => outs[i] = None,
            }
        }
        if let (true, Some(w)) = (ready[3], &stdin_w) {
            match nix::unistd::read(&stdin, &mut buf) {
                // EOF (or an unreadable stdin) closes the command's stdin.
                Ok(0) | Err(_) => stdin_w = None,
                Ok(n) => {
                    if nix::unistd::write(w, &buf[..n]).is_err() {
                        stdin_w = None;
                    }
                }
            }
        }
        if ready[4] {
            if let Some(s) = &sfd {
                while let Ok(Some(info)) = s.read_signal() {
                    let sig = info.ssi_signo as i32;
                    if sig != libc::SIGCHLD {
                        // SAFETY: signalling our own child.
                        unsafe { libc::kill(child.as_raw(), sig) };
                    }
                }
            }
        }
    }
    let _ = mask.thread_unblock();
    let code = code
        .or_else(|| {
            waitpid(child, None)
                .ok()
                .and_then(crate::sys::procfs::exit_code)
        })
        .unwrap_or(125);
    let msg = String::from_utf8_lossy(&msg).trim().to_string();
    if msg.is_empty() {
        Ok(code)
    } else {
        Err((code, msg))
    }
}

/// The child's exit code if it has exited, without waiting.
fn reap(child: Pid) -> Option<i32> {
    waitpid(child, Some(WaitPidFlag::WNOHANG))
        .ok()
        .and_then(crate::sys::procfs::exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pty_master_crosses_the_channel_and_still_talks_to_its_slave() {
        let (a, b) = channel().unwrap();
        assert!(try_recv_fd(b.as_raw_fd()).is_none(), "nothing sent yet");
        let ws = nix::pty::Winsize {
            ws_row: 33,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let (master, slave) = open_pty(Some(&ws)).unwrap();
        send_fd(a.as_raw_fd(), &master).unwrap();
        drop(master);
        let got = try_recv_fd(b.as_raw_fd()).expect("the master arrives");
        let seen = crate::sys::tty::window_size(slave.as_raw_fd()).unwrap();
        assert_eq!((seen.ws_row, seen.ws_col), (33, 101));
        nix::unistd::write(&slave, b"ping\n").unwrap();
        let mut buf = [0u8; 16];
        let n = nix::unistd::read(&got, &mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("ping"));
    }
}
