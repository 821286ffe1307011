//! Resolving `-u user[:group]` against the container's own /etc/passwd and /etc/group, as Docker
//! does: names must exist there; numeric ids work even when absent.

/// The most of /etc/passwd or /etc/group skiff reads (real ones are a few KiB; a directory with
/// a hundred thousand users some MiB): an image's file is never read whole if it is a bomb.
pub const MAX_ID_FILE: u64 = 4 << 20;

/// Reads the container's /etc/passwd or /etc/group from inside the container (its own root):
/// a regular file only, at most [`MAX_ID_FILE`] bytes, so a link to /dev/zero cannot make the
/// container's setup eat memory. Absent means empty.
pub fn read_id_file(path: &str) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a fifo in the image must not hang the container's setup.
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(format!("{path}: {e}")),
    };
    if !f.metadata().map_err(|e| format!("{path}: {e}"))?.is_file() {
        return Err(format!("{path} is not a regular file; fix the image"));
    }
    let mut bytes = Vec::new();
    f.take(MAX_ID_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{path}: {e}"))?;
    if bytes.len() as u64 > MAX_ID_FILE {
        return Err(format!(
            "{path} is larger than {} MiB; fix the image",
            MAX_ID_FILE >> 20
        ));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The identity the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary groups (from /etc/group membership).
    pub groups: Vec<u32>,
    /// Home directory for HOME.
    pub home: String,
}

struct PwEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PwEntry<'_>> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6)
            .then(|| {
                Some(PwEntry {
                    name: f[0],
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    home: f[5],
                })
            })
            .flatten()
    })
}

/// Uid to user name from an /etc/passwd, for showing processes by name (`top`); the first
/// entry of a uid wins, as getpwuid.
pub fn names(passwd: &str) -> std::collections::HashMap<u32, &str> {
    let mut m = std::collections::HashMap::new();
    for e in passwd_entries(passwd) {
        m.entry(e.uid).or_insert(e.name);
    }
    m
}

fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 3 {
            return None;
        }
        let members = f
            .get(3)
            .map(|m| m.split(',').filter(|x| !x.is_empty()).collect())
            .unwrap_or_default();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, …) with the container's files.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ExecUser, String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entry = match user.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.uid == uid),
        Err(_) => Some(passwd_entries(passwd).find(|e| e.name == user).ok_or_else(|| format!("unable to find user {user}: no matching entries in the container's /etc/passwd"))?),
    };
    let uid = match &entry {
        Some(e) => e.uid,
        None => user.parse().map_err(|_| format!("invalid user {user}"))?,
    };
    let mut gid = entry.as_ref().map(|e| e.gid).unwrap_or(0);
    if let Some(g) = grp {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_entries(group).find(|(n, _, _)| *n == g).map(|(_, id, _)| id).ok_or_else(|| format!("unable to find group {g}: no matching entries in the container's /etc/group"))?,
        };
    }
    let mut groups = vec![];
    if let Some(e) = &entry {
        for (_, id, members) in group_entries(group) {
            if members.contains(&e.name) && id != gid && !groups.contains(&id) {
                groups.push(id);
            }
        }
    }
    let home = entry
        .as_ref()
        .map(|e| e.home.to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home,
    })
}

/// The gid of a `--group-add` value: a number, or a group name in the container's /etc/group.
pub fn group_id(spec: &str, group: &str) -> Result<u32, String> {
    spec.parse::<u32>().or_else(|_| {
        group_entries(group)
            .find(|(n, _, _)| *n == spec)
            .map(|(_, id, _)| id)
            .ok_or_else(|| {
                format!("unable to find group {spec}: no matching entries in the container's /etc/group")
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:u:/home/user:/bin/sh\n";
    const GR: &str = "root:x:0:\nuser:x:1000:\nextra:x:2000:user,other\nwheel:x:10:root\n";

    #[test]
    fn names_and_numbers_resolve_like_docker() {
        assert_eq!(
            resolve("", PW, GR).unwrap(),
            ExecUser {
                uid: 0,
                gid: 0,
                groups: vec![10],
                home: "/root".into()
            }
        );
        assert_eq!(
            resolve("user", PW, GR).unwrap(),
            ExecUser {
                uid: 1000,
                gid: 1000,
                groups: vec![2000],
                home: "/home/user".into()
            }
        );
        assert_eq!(resolve("1000:extra", PW, GR).unwrap().gid, 2000);
        let absent = resolve("4242:77", PW, GR).unwrap();
        assert_eq!(
            (absent.uid, absent.gid, absent.home.as_str()),
            (4242, 77, "/")
        );
        assert!(resolve("nobody", PW, GR)
            .unwrap_err()
            .contains("unable to find user nobody"));
        assert!(resolve("user:nogroup", PW, GR)
            .unwrap_err()
            .contains("unable to find group nogroup"));
    }
}
