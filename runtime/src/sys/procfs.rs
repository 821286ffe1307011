//! Facts about processes from /proc and wait statuses: start times (so a recycled pid is never
//! taken for ours) and exit codes.

/// The start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); starttime is field 22.
    let state = fields.first()?;
    if *state == "Z" || *state == "X" {
        return None; // a zombie has exited
    }
    fields.get(22 - 3)?.parse().ok()
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
