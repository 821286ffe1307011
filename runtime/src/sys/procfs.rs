//! Facts about processes from /proc and wait statuses: start times (so a recycled pid is never
//! taken for ours) and exit codes.

/// The start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    start_time_in(&stat)
}

/// The start time in the text of a `/proc/PID/stat`, `None` for a zombie. Allocates nothing,
/// so a forked child may use it (with `read_stat`).
pub fn start_time_in(stat: &[u8]) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = stat.get(close + 2..)?;
    let mut fields = rest
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    // rest starts at field 3 (state); starttime is field 22.
    let state = fields.next()?;
    if state == b"Z" || state == b"X" {
        return None; // a zombie has exited
    }
    let digits = fields.nth(22 - 4)?;
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

/// Reads a `/proc/PID/stat` (its NUL-terminated path built beforehand) into `buf` with plain
/// system calls, returning the bytes read: for a forked child that must not allocate.
pub fn read_stat<'b>(path: &std::ffi::CStr, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    // SAFETY: open/read/close on a path and buffer that live for the calls.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        buf.get(..usize::try_from(n).ok()?)
    }
}

/// Whether `pid` is alive and is the same process that started at `start`.
pub fn alive(pid: i32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// `pid` and every process below it, by parent links in `/proc/*/stat` (readable for any
/// process, unlike `/proc/*/ns/*` of processes running as another — mapped — uid).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut children: std::collections::HashMap<i32, Vec<i32>> = Default::default();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // After the command name: state, then the parent's pid.
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                .and_then(|x| x.parse::<i32>().ok());
            if let Some(pp) = ppid {
                children.entry(pp).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out.sort();
    out
}

/// The processes of the container whose first process is `pid1`: its descendants, plus those
/// that joined its pid namespace from outside (`exec`) where their namespace link is readable.
pub fn container_processes(pid1: i32) -> Vec<i32> {
    let mut all = descendants(pid1);
    if let Ok(ns) = std::fs::read_link(format!("/proc/{pid1}/ns/pid")) {
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                if !all.contains(&p)
                    && std::fs::read_link(format!("/proc/{p}/ns/pid"))
                        .ok()
                        .as_ref()
                        == Some(&ns)
                {
                    all.push(p);
                }
            }
        }
    }
    all.sort();
    all
}

/// A process's exit code as a shell reports it: its status, or 128+N when signal N killed it;
/// `None` for a stop or continue.
pub fn exit_code(ws: nix::sys::wait::WaitStatus) -> Option<i32> {
    use nix::sys::wait::WaitStatus;
    match ws {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_field_22_even_with_odd_names() {
        let stat =
            b"42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time_in(stat), Some(987654));
        let zombie = b"42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time_in(zombie), None);
        assert_eq!(start_time_in(b"42 (x) S 1"), None);
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        let path = std::ffi::CString::new(format!("/proc/{me}/stat")).unwrap();
        let mut buf = [0u8; 1024];
        let raw = read_stat(&path, &mut buf).map(start_time_in);
        assert_eq!(raw, Some(start_time(me)));
    }

    #[test]
    fn a_child_is_among_our_descendants() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let found = descendants(me);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            found.contains(&me) && found.contains(&(child.id() as i32)),
            "{found:?}"
        );
    }

    #[test]
    fn our_own_start_time_is_stable_and_a_wrong_one_is_not_alive() {
        let me = std::process::id() as i32;
        let t = start_time(me).unwrap();
        assert!(alive(me, t));
        assert!(!alive(me, t + 1));
        assert!(start_time(i32::MAX).is_none());
    }
}
