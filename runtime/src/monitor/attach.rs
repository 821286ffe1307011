//! `skiff attach` without a daemon: each monitor listens on a unix socket in the user's private
//! runtime dir (`$XDG_RUNTIME_DIR/skiff/attach/ID16.sock`, the dir 0700, the socket 0600), streams
//! the container's output to whoever connects from then on, and takes their input for the
//! container's stdin (when it was started with `-i`), window sizes and proxied signals.
//!
//! Both ways the stream is frames: a kind byte, a 4-byte big-endian length, the payload. The
//! monitor never waits on an attacher: output for one is buffered up to [`PEER_BUFFER`] and an
//! attacher that falls further behind is dropped (its terminal was not reading). The container's
//! stdin is written without blocking; while a write is pending the attachers' input is not read.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Ctx, Error, Result};

/// Output frames: the container's stdout and stderr, and its exit code (4 bytes) at the end.
pub const OUT_STDOUT: u8 = 1;
pub const OUT_STDERR: u8 = 2;
pub const OUT_EXIT: u8 = 3;
/// Input frames: bytes for stdin, a window size (rows, cols as 2 bytes each), a signal number.
pub const IN_STDIN: u8 = 0;
pub const IN_RESIZE: u8 = 1;
pub const IN_SIGNAL: u8 = 2;

/// Output held for one attacher before it is dropped as too slow.
pub const PEER_BUFFER: usize = 1 << 20;
/// At most this many attachers at once; more are turned away.
const MAX_PEERS: usize = 16;
/// The largest input frame taken (a read's worth of stdin).
const MAX_FRAME: usize = 64 * 1024;

fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + data.len());
    f.push(kind);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// Splits whole frames off the front of `buf`.
fn frames(buf: &mut Vec<u8>) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut out = Vec::new();
    loop {
        if buf.len() < 5 {
            return Some(out);
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if len > MAX_FRAME {
            return None;
        }
        if buf.len() < 5 + len {
            return Some(out);
        }
        let data = buf[5..5 + len].to_vec();
        out.push((buf[0], data));
        buf.drain(..5 + len);
    }
}

/// What an attacher asked of the container.
pub enum Input {
    Stdin(Vec<u8>),
    Resize(u16, u16),
    Signal(i32),
}

struct Peer {
    sock: UnixStream,
    out: Vec<u8>,
    inbuf: Vec<u8>,
}

/// The monitor's side: the listening socket and the attachers.
pub struct Hub {
    listener: Option<UnixListener>,
    path: PathBuf,
    peers: Vec<Peer>,
    /// Not reading the attachers' input (a write to the container's stdin is pending).
    pub hold_input: bool,
}

impl Hub {
    /// Listens at `path` (its dir made 0700, the socket 0600). Best effort: without a socket
    /// the container runs, it just cannot be attached to.
    pub fn bind(path: &Path) -> Hub {
        let listener = (|| -> std::io::Result<UnixListener> {
            if let Some(dir) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            let _ = std::fs::remove_file(path);
            let l = UnixListener::bind(path)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })()
        .ok();
        Hub {
            listener,
            path: path.to_path_buf(),
            peers: Vec::new(),
            hold_input: false,
        }
    }

    /// The descriptors to poll: the listener, then each attacher.
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut v = Vec::new();
        if let Some(l) = &self.listener {
            v.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        for p in &self.peers {
            let mut ev = PollFlags::empty();
            if !self.hold_input {
                ev |= PollFlags::POLLIN;
            }
            if !p.out.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            v.push(PollFd::new(p.sock.as_fd(), ev));
        }
        v
    }

    /// Handles what `poll` reported for [`Hub::poll_fds`]: new attachers, their input (handed to
    /// `input`), pending output, and those gone.
    pub fn handle(&mut self, revents: &[PollFlags], input: &mut dyn FnMut(Input)) {
        let mut i = 0;
        if self.listener.is_some() {
            if revents
                .first()
                .is_some_and(|r| r.contains(PollFlags::POLLIN))
            {
                self.accept();
            }
            i = 1;
        }
        let mut gone = Vec::new();
        let n = self.peers.len().min(revents.len().saturating_sub(i));
        for (k, p) in self.peers.iter_mut().enumerate().take(n) {
            let r = revents[i + k];
            let mut ok = true;
            if r.contains(PollFlags::POLLOUT) {
                ok &= flush(p);
            }
            if r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                ok &= read_input(p, input);
            }
            if !ok {
                gone.push(k);
            }
        }
        for k in gone.into_iter().rev() {
            self.peers.remove(k);
        }
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        while let Ok((sock, _)) = l.accept() {
            // The socket is 0600 in a 0700 dir: only this user gets here; the check is a second lock.
            let mine =
                nix::sys::socket::getsockopt(&sock, nix::sys::socket::sockopt::PeerCredentials)
                    .is_ok_and(|c| c.uid() == nix::unistd::geteuid().as_raw() || c.uid() == 0);
            if !mine || self.peers.len() >= MAX_PEERS || sock.set_nonblocking(true).is_err() {
                continue;
            }
            self.peers.push(Peer {
                sock,
                out: Vec::new(),
                inbuf: Vec::new(),
            });
        }
    }

    /// Sends output to every attacher, dropping one whose backlog would pass [`PEER_BUFFER`].
    pub fn broadcast(&mut self, kind: u8, data: &[u8]) {
        if self.peers.is_empty() {
            return;
        }
        let f = frame(kind, data);
        self.peers.retain_mut(|p| {
            if p.out.len() + f.len() > PEER_BUFFER {
                return false;
            }
            p.out.extend_from_slice(&f);
            flush(p)
        });
    }

    /// The container ended with `code`: each attacher gets what is left and the code (waiting
    /// at most a second for each), then is let go.
    pub fn finish(&mut self, code: i32) {
        for mut p in self.peers.drain(..) {
            p.out
                .extend_from_slice(&frame(OUT_EXIT, &code.to_be_bytes()));
            let _ = p.sock.set_nonblocking(false);
            let _ = p.sock.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = p.sock.write_all(&p.out);
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if self.listener.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes what it can of a peer's backlog; false when the peer is gone.
fn flush(p: &mut Peer) -> bool {
    while !p.out.is_empty() {
        match p.sock.write(&p.out) {
            Ok(0) => return false,
            Ok(n) => {
                p.out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads a peer's frames; false when it has gone (or sent garbage).
fn read_input(p: &mut Peer, input: &mut dyn FnMut(Input)) -> bool {
    let mut buf = [0u8; 16 * 1024];
    let alive = match p.sock.read(&mut buf) {
        Ok(0) => false,
        Ok(n) => {
            p.inbuf.extend_from_slice(&buf[..n]);
            true
        }
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ),
    };
    let Some(fs) = frames(&mut p.inbuf) else {
        return false;
    };
    for (kind, data) in fs {
        match kind {
            IN_STDIN => input(Input::Stdin(data)),
            IN_RESIZE if data.len() == 4 => input(Input::Resize(
                u16::from_be_bytes([data[0], data[1]]),
                u16::from_be_bytes([data[2], data[3]]),
            )),
            IN_SIGNAL if data.len() == 4 => input(Input::Signal(i32::from_be_bytes([
                data[0], data[1], data[2], data[3],
            ]))),
            _ => {}
        }
    }
    alive
}

/// Docker's `--detach-keys`: comma-separated `ctrl-X` (X a letter or one of `@[\]^_`) or single
/// characters; `ctrl-p,ctrl-q` by default.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let bad = || {
        Error::from(crate::spec::error::SpecError::Flag {
            flag: "detach-keys",
            value: s.to_string(),
            fix: "use comma-separated keys like ctrl-p,ctrl-q: ctrl- with a letter or one of @[\\]^_, or a single character".into(),
        })
    };
    let mut keys = Vec::new();
    for part in s.split(',') {
        let b = match part.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let c = c.as_bytes()[0].to_ascii_lowercase();
                match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => return Err(bad()),
                }
            }
            None if part.len() == 1 => part.as_bytes()[0],
            _ => return Err(bad()),
        };
        keys.push(b);
    }
    if keys.is_empty() {
        return Err(bad());
    }
    Ok(keys)
}

/// Watches typed bytes for the detach sequence, holding back a partial match (Docker's escape
/// proxy): bytes that turn out not to be the sequence are passed on after all.
struct Escape {
    keys: Vec<u8>,
    held: usize,
}

impl Escape {
    /// The bytes to forward, and whether the sequence was completed.
    fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
                if b == self.keys[0] {
                    self.held = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// How an attach ended.
pub enum Attached {
    /// The container exited with this code.
    Exited(i32),
    /// The user typed the detach keys; the container runs on.
    Detached,
    /// The monitor went away without a code (killed).
    Lost,
}

/// What `skiff attach` asked.
pub struct AttachOptions {
    /// Forward this terminal's stdin (the container has one: it was started with `-i`).
    pub stdin: bool,
    /// The container has a terminal: raw mode here, window sizes there.
    pub tty: bool,
    /// Forward SIGINT/SIGTERM/... to a container without a terminal.
    pub sig_proxy: bool,
    pub detach_keys: Vec<u8>,
}

/// The attacher's side: connects to the monitor's socket at `path`, copies output to this
/// process's stdout and stderr and stdin to the container, until the container exits or the
/// detach keys are typed.
pub fn attach(path: &Path, opts: &AttachOptions) -> Result<Attached> {
    let mut sock = UnixStream::connect(path).ctx(|| format!("connecting to {}", path.display()))?;
    let stdin = std::io::stdin();
    let is_tty = nix::unistd::isatty(stdin.as_fd()).unwrap_or(false);
    let _raw = if opts.tty && opts.stdin && is_tty {
        crate::sys::tty::RawTerminal::enter(0)
    } else {
        None
    };
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGWINCH);
    if opts.sig_proxy && !opts.tty {
        // The signals a monitor proxies to its container, proxied here to the monitor.
        for s in super::PROXIED {
            mask.add(s);
        }
    }
    mask.thread_block().ctx(|| "blocking signals".into())?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .ctx(|| "signalfd".into())?;
    let send = |sock: &mut UnixStream, kind: u8, data: &[u8]| sock.write_all(&frame(kind, data));
    let resize = |sock: &mut UnixStream| {
        if let Some(ws) = crate::sys::tty::window_size(0) {
            let mut d = ws.ws_row.to_be_bytes().to_vec();
            d.extend_from_slice(&ws.ws_col.to_be_bytes());
            let _ = send(sock, IN_RESIZE, &d);
        }
    };
    if opts.tty && is_tty {
        resize(&mut sock);
    }
    let mut esc = Escape {
        keys: opts.detach_keys.clone(),
        held: 0,
    };
    let mut reading_stdin = opts.stdin;
    let mut inbuf = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = vec![
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        if reading_stdin {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(Error::Io {
                    context: "poll".into(),
                    source: e.into(),
                })
            }
            Ok(_) => {}
        }
        let rev: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if rev[0].intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            let n = match sock.read(&mut buf) {
                Ok(0) | Err(_) => return Ok(Attached::Lost),
                Ok(n) => n,
            };
            inbuf.extend_from_slice(&buf[..n]);
            for (kind, data) in frames_any(&mut inbuf) {
                match kind {
                    OUT_STDOUT => {
                        let mut o = std::io::stdout();
                        let _ = o.write_all(&data).and_then(|_| o.flush());
                    }
                    OUT_STDERR => {
                        let _ = std::io::stderr().write_all(&data);
                    }
                    OUT_EXIT if data.len() == 4 => {
                        return Ok(Attached::Exited(i32::from_be_bytes([
                            data[0], data[1], data[2], data[3],
                        ])))
                    }
                    _ => {}
                }
            }
        }
        if rev[1].contains(PollFlags::POLLIN) {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGWINCH {
                    if opts.tty {
                        resize(&mut sock);
                    }
                } else {
                    let _ = send(&mut sock, IN_SIGNAL, &sig.to_be_bytes());
                }
            }
        }
        if reading_stdin && rev[2].intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            match nix::unistd::read(&stdin, &mut buf) {
                // Our stdin ended: keep showing output; the container's stdin stays open for
                // other attachers (Docker's `run -d -i`).
                Ok(0) | Err(_) => reading_stdin = false,
                Ok(n) => {
                    let (pass, detach) = esc.feed(&buf[..n]);
                    if !pass.is_empty() && send(&mut sock, IN_STDIN, &pass).is_err() {
                        return Ok(Attached::Lost);
                    }
                    if detach {
                        return Ok(Attached::Detached);
                    }
                }
            }
        }
    }
}

/// Output frames as they come (the monitor's are never larger than a read).
fn frames_any(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while buf.len() >= 5 {
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() < 5 + len {
            break;
        }
        out.push((buf[0], buf[5..5 + len].to_vec()));
        buf.drain(..5 + len);
    }
    out
}

/// Writes bytes an attacher typed to the container's stdin without blocking; what did not fit
/// stays in `pending` (and the hub holds further input until it has gone).
pub fn write_stdin(to: &OwnedFd, pending: &mut Vec<u8>) -> bool {
    while !pending.is_empty() {
        match nix::unistd::write(to, pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_and_match_across_reads() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-@,a").unwrap(), vec![0, b'a']);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("").is_err());
        let mut e = Escape {
            keys: vec![16, 17],
            held: 0,
        };
        assert_eq!(e.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(e.feed(b"x"), (b"\x10x".to_vec(), false));
        assert_eq!(e.feed(b"\x10"), (vec![], false));
        assert_eq!(e.feed(b"\x11rest"), (vec![], true));
    }

    #[test]
    fn frames_split_whole_ones() {
        let mut b = frame(IN_STDIN, b"hi");
        b.extend_from_slice(&frame(IN_RESIZE, &[0, 24, 0, 80])[..3]);
        let f = frames(&mut b).unwrap();
        assert_eq!(f, vec![(IN_STDIN, b"hi".to_vec())]);
        assert_eq!(b.len(), 3);
    }
}
