//! `top` as Docker users expect it: the container's own view of its processes (pids as seen in
//! its pid namespace, uids as seen in its user namespace, names from its own /etc/passwd), with
//! the common `ps` options (`aux`, `-ef`, `-eo FIELD,...`) implemented here rather than by
//! running the host's `ps`, which would show the host's view. Other options are refused.

use std::collections::HashMap;
use std::path::PathBuf;

/// A `ps` option `top` does not implement, named with the ones it does.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopError {
    /// An option or field outside what `top` implements.
    #[error("top: ps option {0:?} is not supported: use aux, -ef, or -eo with fields {FIELDS}")]
    Unsupported(String),
}

/// The fields `-o` takes, for the error message.
const FIELDS: &str = "pid,ppid,user,uid,comm,args,etime,time,stat,tty,c,stime,vsz,rss,pcpu,pmem";

/// One field of a `top` table: its key as `-o` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Pid,
    Ppid,
    User,
    Uid,
    Comm,
    Args,
    Etime,
    Time,
    Stat,
    Tty,
    C,
    Stime,
    Vsz,
    Rss,
    Pcpu,
    Pmem,
}

impl Field {
    fn parse(s: &str) -> Option<Field> {
        Some(match s {
            "pid" => Field::Pid,
            "ppid" => Field::Ppid,
            "user" | "euser" | "uname" => Field::User,
            "uid" | "euid" => Field::Uid,
            "comm" | "ucomm" => Field::Comm,
            "args" | "cmd" | "command" => Field::Args,
            "etime" => Field::Etime,
            "time" | "cputime" => Field::Time,
            "stat" => Field::Stat,
            "tty" | "tt" => Field::Tty,
            "c" => Field::C,
            "stime" | "start_time" => Field::Stime,
            "vsz" => Field::Vsz,
            "rss" => Field::Rss,
            "pcpu" | "%cpu" => Field::Pcpu,
            "pmem" | "%mem" => Field::Pmem,
            _ => return None,
        })
    }

    /// The column heading procps gives it.
    fn header(self) -> &'static str {
        match self {
            Field::Pid => "PID",
            Field::Ppid => "PPID",
            Field::User => "USER",
            Field::Uid => "UID",
            Field::Comm | Field::Args => "COMMAND",
            Field::Etime => "ELAPSED",
            Field::Time => "TIME",
            Field::Stat => "STAT",
            Field::Tty => "TTY",
            Field::C => "C",
            Field::Stime => "STIME",
            Field::Vsz => "VSZ",
            Field::Rss => "RSS",
            Field::Pcpu => "%CPU",
            Field::Pmem => "%MEM",
        }
    }
}

/// What `top` prints: the headings and, per column, the field shown.
#[derive(Debug, PartialEq, Eq)]
pub struct Columns {
    /// Headings, in order.
    pub headers: Vec<String>,
    /// The field each column shows.
    pub fields: Vec<Field>,
}

/// The columns `top CTR [ps options]` prints. No options is `-ef`, as Docker's default.
pub fn columns(opts: &[String]) -> Result<Columns, TopError> {
    let ef = || {
        let f = [
            Field::User,
            Field::Pid,
            Field::Ppid,
            Field::C,
            Field::Stime,
            Field::Tty,
            Field::Time,
            Field::Args,
        ];
        let h = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
        (f.to_vec(), h.map(String::from).to_vec())
    };
    let (fields, headers) = match opts
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["-ef"] | ["-e", "-f"] | ["-f", "-e"] | ["-fe"] | ["-Af"] | ["-A", "-f"] => ef(),
        ["aux"] | ["-aux"] | ["axu"] => {
            let f = vec![
                Field::User,
                Field::Pid,
                Field::Pcpu,
                Field::Pmem,
                Field::Vsz,
                Field::Rss,
                Field::Tty,
                Field::Stat,
                Field::Stime,
                Field::Time,
                Field::Args,
            ];
            let mut h: Vec<String> = f.iter().map(|f| f.header().to_string()).collect();
            h[8] = "START".into();
            (f, h)
        }
        ["-eo", list] | ["-o", list] | ["-e", "-o", list] | ["-Ao", list] | ["-A", "-o", list] => {
            let mut f = Vec::new();
            for name in list.split([',', ' ']).filter(|s| !s.is_empty()) {
                f.push(Field::parse(name).ok_or_else(|| TopError::Unsupported(name.to_string()))?);
            }
            if f.is_empty() {
                return Err(TopError::Unsupported(opts.join(" ")));
            }
            let h = f.iter().map(|f| f.header().to_string()).collect();
            (f, h)
        }
        _ => return Err(TopError::Unsupported(opts.join(" "))),
    };
    Ok(Columns { headers, fields })
}

/// One process as the container sees it.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Pid in the container's pid namespace.
    pub pid: i32,
    /// Parent's pid there; 0 when the parent is outside the container.
    pub ppid: i32,
    /// Uid in the container's user namespace.
    pub uid: u32,
    /// Name from the container's /etc/passwd, else the uid.
    pub user: String,
    /// The kernel's short command name.
    pub comm: String,
    /// The command line (the name in brackets when it has none).
    pub args: String,
    /// State letter with ps's `s`, `l`, `+` marks.
    pub stat: String,
    /// Controlling terminal, `?` for none.
    pub tty: String,
    /// Seconds since it started.
    pub elapsed: u64,
    /// CPU seconds used.
    pub cpu: u64,
    /// Start time, local `HH:MM` today or `MonDD` before.
    pub stime: String,
    /// Virtual size and resident set in KiB.
    pub vsz_kib: u64,
    /// Resident set in KiB.
    pub rss_kib: u64,
    /// Share of memory, percent.
    pub pmem: f64,
}

impl Proc {
    /// The text of `f` for this process.
    pub fn show(&self, f: Field) -> String {
        match f {
            Field::Pid => self.pid.to_string(),
            Field::Ppid => self.ppid.to_string(),
            Field::User => self.user.clone(),
            Field::Uid => self.uid.to_string(),
            Field::Comm => self.comm.clone(),
            Field::Args => self.args.clone(),
            Field::Etime => etime(self.elapsed),
            Field::Time => cputime(self.cpu),
            Field::Stat => self.stat.clone(),
            Field::Tty => self.tty.clone(),
            Field::C => (self.cpu * 100 / self.elapsed.max(1)).to_string(),
            Field::Stime => self.stime.clone(),
            Field::Vsz => self.vsz_kib.to_string(),
            Field::Rss => self.rss_kib.to_string(),
            Field::Pcpu => format!(
                "{:.1}",
                self.cpu as f64 * 100.0 / self.elapsed.max(1) as f64
            ),
            Field::Pmem => format!("{:.1}", self.pmem),
        }
    }
}

/// `[[DD-]HH:]MM:SS` as ps shows elapsed time.
fn etime(s: u64) -> String {
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else if h > 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// `[DD-]HH:MM:SS` as ps shows CPU time.
fn cputime(s: u64) -> String {
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// The pid fields of `NSpid:` (outermost first) of a host pid.
fn nspids(status: &str) -> Vec<i32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

/// A host uid as the container's user namespace sees it, by its `uid_map` (inside, outside, count).
fn to_container_uid(uid_map: &str, host: u32) -> u32 {
    for l in uid_map.lines() {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [inside, outside, count] = f[..] {
            let h = u64::from(host);
            if h >= outside && h < outside + count {
                return u32::try_from(inside + (h - outside)).unwrap_or(host);
            }
        }
    }
    // Unmapped in the container: it shows as the overflow uid.
    65534
}

/// The `ps` name of a terminal device number.
fn tty_name(nr: u64) -> String {
    if nr == 0 {
        return "?".into();
    }
    let major = (nr >> 8) & 0xfff;
    let minor = ((nr >> 12) & 0xfff00) | (nr & 0xff);
    match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => format!("{major}:{minor}"),
    }
}

/// Gathers the container's view of the host pids `pids`, the first being its init. `passwd` is
/// the container's /etc/passwd (empty when unreadable: uids then show as numbers).
pub fn gather(pids: &[i32], init: i32, passwd: &str) -> Vec<Proc> {
    let clk = u64::try_from(
        nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100),
    )
    .unwrap_or(100)
    .max(1);
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let btime: i64 = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
        })
        .unwrap_or(0);
    let mem_total_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            status_field(&s, "MemTotal:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let page_kib = u64::try_from(
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096),
    )
    .unwrap_or(4096)
        / 1024;
    let names: HashMap<u32, &str> = super::super::spec::passwd::names(passwd);
    let uid_map = std::fs::read_to_string(format!("/proc/{init}/uid_map")).unwrap_or_default();
    // The container's pid namespace is the innermost of its init's; other processes may be in
    // namespaces nested deeper, so each is shown at the init's level.
    let level = std::fs::read_to_string(format!("/proc/{init}/status"))
        .map(|s| nspids(&s).len())
        .unwrap_or(0);
    let ns_pid = |host: i32| -> Option<i32> {
        let s = std::fs::read_to_string(format!("/proc/{host}/status")).ok()?;
        nspids(&s).get(level.checked_sub(1)?).copied()
    };
    let today = chrono::Local::now().date_naive();
    let mut out = Vec::new();
    for &p in pids {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let num = |i: usize| -> u64 { f.get(i).and_then(|x| x.parse().ok()).unwrap_or(0) };
        let Some(pid) = ns_pid(p) else { continue };
        let host_ppid = i32::try_from(num(1)).unwrap_or(0);
        let ppid = if p == init {
            0
        } else {
            ns_pid(host_ppid).unwrap_or(0)
        };
        let host_uid: u32 = status_field(&status, "Uid:")
            .and_then(|u| u.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let uid = to_container_uid(&uid_map, host_uid);
        let user = names
            .get(&uid)
            .map(|n| n.to_string())
            .unwrap_or_else(|| uid.to_string());
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let args = cmdline
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
            .replace(['\t', '\n'], " ");
        let args = if args.is_empty() {
            format!("[{comm}]")
        } else {
            args
        };
        let mut st = f.first().copied().unwrap_or("?").to_string();
        let host_pid = u64::try_from(p).unwrap_or(0);
        if num(3) == host_pid {
            st.push('s');
        }
        if num(17) > 1 {
            st.push('l');
        }
        if f.get(5).and_then(|x| x.parse::<i64>().ok()) == Some(num(2) as i64) {
            st.push('+');
        }
        let start = num(19) / clk;
        let elapsed = (uptime as u64).saturating_sub(start);
        let started = chrono::DateTime::from_timestamp(btime + start as i64, 0)
            .map(|t| t.with_timezone(&chrono::Local));
        let stime = match started {
            Some(t) if t.date_naive() == today => t.format("%H:%M").to_string(),
            Some(t) => t.format("%b%d").to_string(),
            None => "?".into(),
        };
        let rss_kib = num(21) * page_kib;
        out.push(Proc {
            pid,
            ppid,
            uid,
            user,
            comm,
            args,
            stat: st,
            tty: tty_name(num(4)),
            elapsed,
            cpu: (num(11) + num(12)) / clk,
            stime,
            vsz_kib: num(20) / 1024,
            rss_kib,
            pmem: if mem_total_kib > 0 {
                rss_kib as f64 * 100.0 / mem_total_kib as f64
            } else {
                0.0
            },
        });
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// The container's /etc/passwd as it is now: the merged view of its image layers and its own
/// changes (`upper`), read inside that view so a symlink in it cannot reach a host file.
pub fn container_passwd(layers: &[PathBuf], upper: PathBuf) -> String {
    let mut all = layers.to_vec();
    all.push(upper);
    skiff_store::inroot::read_merged_file(&all, "etc/passwd", crate::spec::passwd::MAX_ID_FILE)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options_pick_docker_columns_or_are_refused() {
        assert_eq!(
            columns(&[]).unwrap().headers[..3],
            v(&["UID", "PID", "PPID"])[..]
        );
        assert_eq!(columns(&v(&["-ef"])).unwrap(), columns(&[]).unwrap());
        assert_eq!(columns(&v(&["aux"])).unwrap().headers[0], "USER");
        let c = columns(&v(&["-eo", "pid,user,comm"])).unwrap();
        assert_eq!(c.fields, vec![Field::Pid, Field::User, Field::Comm]);
        assert_eq!(c.headers, v(&["PID", "USER", "COMMAND"]));
        assert!(
            matches!(columns(&v(&["-eo", "pid,wchan"])), Err(TopError::Unsupported(f)) if f == "wchan")
        );
        assert!(columns(&v(&["-x"])).is_err());
    }

    #[test]
    fn uids_and_times_are_the_containers_and_ps_shaped() {
        assert_eq!(to_container_uid("0 1000 1\n1 100000 65536\n", 1000), 0);
        assert_eq!(to_container_uid("0 1000 1\n1 100000 65536\n", 100041), 42);
        assert_eq!(to_container_uid("0 1000 1\n", 5), 65534);
        assert_eq!(etime(65), "01:05");
        assert_eq!(etime(90061), "1-01:01:01");
        assert_eq!(cputime(3), "00:00:03");
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
        assert_eq!(nspids("Name:\tx\nNSpid:\t4242\t1\n"), vec![4242, 1]);
    }
}
