//! `stats` from /proc alone: CPU time, resident memory, pids, network and block I/O of a
//! container's processes. No cgroup is needed, so it works rootless on any cgroup layout (podman
//! needs cgroup v2 for rootless stats).

use crate::container::records::Containers;
use crate::error::Result;
use crate::sys::procfs;

/// One reading of a container's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// User + system CPU time of its processes, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident memory of its processes, in bytes.
    pub rss: u64,
    /// How many processes it has.
    pub pids: usize,
    /// Bytes received and sent on its network interfaces (loopback aside); `None` when it shares
    /// the host's network, whose counters are not its own.
    pub net: Option<(u64, u64)>,
    /// Bytes read from and written to storage, where the kernel lets us see them.
    pub block: (u64, u64),
}

/// The memory page size.
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}

/// Clock ticks per second, for turning `cpu_ticks` into time.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).unwrap_or(100)
}

/// The host's memory, in bytes (the limit shown for a container without `--memory`).
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

fn cpu_ticks(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s[s.rfind(')')? + 1..].to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the name: state is field 3; utime and stime are fields 14 and 15.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

fn rss(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page_size())
        .unwrap_or(0)
}

fn io(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("read_bytes:"), field("write_bytes:"))
}

/// Received and sent bytes of every interface but loopback, from a `/proc/net/dev` text.
fn net_dev(text: &str) -> (u64, u64) {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((*f.first()?, *f.get(8)?))
        })
        .fold((0, 0), |(r, t), (a, b)| (r + a, t + b))
}

impl Containers {
    /// Reads the counters of a running container.
    pub fn sample(&self, id: &str) -> Result<Sample> {
        let v = self.view(id)?;
        let pid = v.running_pid()?;
        let procs = procfs::container_processes(pid);
        let mut s = Sample {
            pids: procs.len(),
            ..Sample::default()
        };
        for p in &procs {
            s.cpu_ticks += cpu_ticks(*p);
            s.rss += rss(*p);
            let (r, w) = io(*p);
            s.block.0 += r;
            s.block.1 += w;
        }
        if v.cfg.network.private() {
            s.net = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
                .ok()
                .map(|t| net_dev(&t));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_sums_every_interface_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:  500  5 0 0 0 0 0 0  500  5 0 0 0 0 0 0\n  tap0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n  eth1:   24  1 0 0 0 0 0 0   12  1 0 0 0 0 0 0\n";
        assert_eq!(net_dev(text), (1024, 2012));
    }

    #[test]
    fn our_own_counters_are_read() {
        let me = std::process::id() as i32;
        assert!(rss(me) > 0);
        // Burn a little CPU so the tick count cannot be zero.
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0 && cpu_ticks(me) > 0);
        assert!(host_memory() > 0 && ticks_per_second() > 0);
    }
}
