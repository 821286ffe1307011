//! The user's subordinate id ranges (`/etc/subuid`, `/etc/subgid`) and the mapping built from them:
//! container root is the user, container ids 1..N are the user's range.

use std::path::Path;

/// One contiguous range: ids `inside..inside+count` map to `outside..outside+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First id in the namespace.
    pub inside: u32,
    /// First id on the host.
    pub outside: u32,
    /// How many.
    pub count: u32,
}

/// The uid and gid mappings for a rootless user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    /// uid ranges.
    pub uids: Vec<Range>,
    /// gid ranges.
    pub gids: Vec<Range>,
}

impl IdMap {
    /// The mapping for the calling user: itself as 0 plus its first subuid/subgid range as 1..N.
    /// `None` when the user has no range (then only a one-id namespace is possible).
    pub fn for_current_user() -> Option<IdMap> {
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name);
        let sub_u = read_range(Path::new("/etc/subuid"), name.as_deref(), uid.as_raw())?;
        let sub_g = read_range(Path::new("/etc/subgid"), name.as_deref(), uid.as_raw())?;
        Some(IdMap {
            uids: vec![
                Range {
                    inside: 0,
                    outside: uid.as_raw(),
                    count: 1,
                },
                Range {
                    inside: 1,
                    outside: sub_u.0,
                    count: sub_u.1,
                },
            ],
            gids: vec![
                Range {
                    inside: 0,
                    outside: gid.as_raw(),
                    count: 1,
                },
                Range {
                    inside: 1,
                    outside: sub_g.0,
                    count: sub_g.1,
                },
            ],
        })
    }

    /// `newuidmap`/`newgidmap` arguments after the pid: `inside outside count …`.
    pub fn args(ranges: &[Range]) -> Vec<String> {
        ranges
            .iter()
            .flat_map(|r| {
                [
                    r.inside.to_string(),
                    r.outside.to_string(),
                    r.count.to_string(),
                ]
            })
            .collect()
    }
}

/// Finds the first `name:start:count` (or `uid:start:count`) line for the user.
fn read_range(file: &Path, name: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    parse_range(&text, name, uid)
}

fn parse_range(text: &str, name: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    let uid_s = uid.to_string();
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let who = f.next()?;
        if Some(who) != name && who != uid_s {
            return None;
        }
        let start = f.next()?.parse().ok()?;
        let count: u32 = f.next()?.parse().ok()?;
        (count > 0).then_some((start, count))
    })
}

/// How many subordinate ids the proposed range has: 65536, as `useradd` gives by default.
const PROPOSED_COUNT: u64 = 65536;

/// The command that gives the calling user a subordinate range, for hints shown when it has none:
/// the proposed range overlaps none already in /etc/subuid or /etc/subgid (two users sharing host
/// ids could reach each other's files), and it names the user.
pub fn usermod_hint() -> String {
    let name = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "USER".into());
    let taken = [Path::new("/etc/subuid"), Path::new("/etc/subgid")]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect::<Vec<_>>()
        .join("\n");
    let start = free_start(&taken, PROPOSED_COUNT);
    let end = start + PROPOSED_COUNT - 1;
    format!("sudo usermod --add-subuids {start}-{end} --add-subgids {start}-{end} {name}")
}

/// The lowest start at or above 100000 (on a 65536 boundary) where `count` ids overlap no range
/// listed in `taken` (`who:start:count` lines).
fn free_start(taken: &str, count: u64) -> u64 {
    let ranges: Vec<(u64, u64)> = taken
        .lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let _who = f.next()?;
            let start: u64 = f.next()?.parse().ok()?;
            let n: u64 = f.next()?.parse().ok()?;
            Some((start, start + n))
        })
        .collect();
    let mut start = 100_000;
    while let Some(&(_, end)) = ranges
        .iter()
        .find(|(s, e)| *s < start + count && start < *e)
    {
        start = end.div_ceil(PROPOSED_COUNT) * PROPOSED_COUNT;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_users_range_by_name_or_uid() {
        let t = "# c\nalice:100000:65536\n1001:200000:1000\nbob:1:0\n";
        assert_eq!(parse_range(t, Some("alice"), 5), Some((100000, 65536)));
        assert_eq!(parse_range(t, Some("carol"), 1001), Some((200000, 1000)));
        assert_eq!(
            parse_range(t, Some("bob"), 7),
            None,
            "an empty range is no range"
        );
        assert_eq!(parse_range(t, None, 9), None);
        let r = [
            Range {
                inside: 0,
                outside: 1000,
                count: 1,
            },
            Range {
                inside: 1,
                outside: 100000,
                count: 65536,
            },
        ];
        assert_eq!(IdMap::args(&r), ["0", "1000", "1", "1", "100000", "65536"]);
    }

    #[test]
    fn the_proposed_range_overlaps_no_existing_one() {
        assert_eq!(free_start("", 65536), 100000);
        assert_eq!(free_start("alice:100000:65536\n", 65536), 196608);
        let t = "alice:100000:65536\nbob:196608:65536\ncarol:300000:10\n";
        let s = free_start(t, 65536);
        assert_eq!(s, 327680);
        assert_eq!(
            free_start("root:1:4294000000\n", 65536),
            4294000000_u64.div_ceil(65536) * 65536
        );
    }
}
