//! Keeping a long-lived monitor's resident memory small: once the container has started, the
//! start-up code (argument parsing, state files, namespace set-up, the child's first steps) and
//! the read-only data it used are not needed until the container exits, yet their pages stay
//! mapped. Unmapping them lets the kernel fault back in only what the wait loop touches.

/// One mapping of `/proc/self/smaps`, as far as [`release_clean_file_pages`] needs it.
struct Mapping {
    start: usize,
    end: usize,
    droppable: bool,
    anonymous_kib: u64,
}

impl Mapping {
    /// Parses a header line (`start-end perms offset dev inode [path]`); `None` for other lines.
    fn parse(line: &str) -> Option<Mapping> {
        let mut f = line.split_whitespace();
        let (a, b) = f.next()?.split_once('-')?;
        let start = usize::from_str_radix(a, 16).ok()?;
        let end = usize::from_str_radix(b, 16).ok()?;
        let perms = f.next()?;
        if perms.len() != 4 {
            return None;
        }
        let path = f.nth(3).unwrap_or("");
        // Private, never writable, backed by a file: its pages can be re-read from the file.
        let droppable = perms.starts_with('r')
            && perms.as_bytes()[1] == b'-'
            && perms.ends_with('p')
            && path.starts_with('/');
        Some(Mapping {
            start,
            end,
            droppable,
            anonymous_kib: 0,
        })
    }

    /// A page of a private mapping that was written (relocations applied before RELRO made it
    /// read-only) is anonymous: dropping it would lose the write, so such mappings stay.
    fn releasable(&self) -> bool {
        self.droppable && self.anonymous_kib == 0 && self.end > self.start
    }

    fn release(&self) {
        if self.releasable() {
            // SAFETY: the range is one whole private mapping of this process that holds no
            // written page; the kernel re-reads its pages from the file on the next access.
            unsafe {
                libc::madvise(
                    self.start as *mut libc::c_void,
                    self.end - self.start,
                    libc::MADV_DONTNEED,
                )
            };
        }
    }
}

/// Drops this process's page-table entries for its clean, read-only file mappings (its own
/// code and constants and its libraries'); the pages stay in the page cache and come back on
/// the next touch. Call it from a single-threaded process once its start-up work is done.
pub fn release_clean_file_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let found = parse_smaps(&smaps);
    drop(smaps);
    for m in &found {
        m.release();
    }
}

/// The mappings of an smaps text, each with its anonymous (written) size.
fn parse_smaps(smaps: &str) -> Vec<Mapping> {
    let mut found = Vec::new();
    for line in smaps.lines() {
        if let Some(m) = Mapping::parse(line) {
            found.push(m);
        } else if let (Some(rest), Some(m)) = (line.strip_prefix("Anonymous:"), found.last_mut()) {
            m.anonymous_kib = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(u64::MAX);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resident size of this process's file mappings, in KiB.
    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn header_lines_are_classified() {
        let code =
            Mapping::parse("5571c000-5572c000 r-xp 00035000 08:01 1234  /usr/bin/x").unwrap();
        assert!(code.droppable);
        assert_eq!((code.start, code.end), (0x5571c000, 0x5572c000));
        let rodata = Mapping::parse("5571c000-5572c000 r--p 00000000 08:01 1234 /lib/libc.so.6");
        assert!(rodata.unwrap().droppable);
        for kept in [
            "7f00-7f10 rw-p 00000000 08:01 1234 /lib/libc.so.6",
            "7f00-7f10 r-xs 00000000 08:01 1234 /lib/libc.so.6",
            "7f00-7f10 ---p 00000000 08:01 1234 /lib/libc.so.6",
            "7f00-7f10 r-xp 00000000 00:00 0 [vdso]",
            "7f00-7f10 r--p 00000000 00:00 0",
        ] {
            assert!(!Mapping::parse(kept).unwrap().droppable, "{kept}");
        }
        for other in [
            "Rss:                 4 kB",
            "VmFlags: rd ex mr mw me",
            "Anonymous: 0 kB",
        ] {
            assert!(Mapping::parse(other).is_none(), "{other}");
        }
    }

    #[test]
    fn written_read_only_mappings_are_kept() {
        let smaps = "\
55e0000-55e4000 r--p 00000000 08:01 77 /usr/bin/m
Rss:                  16 kB
Anonymous:             0 kB
55e4000-55e8000 r-xp 00004000 08:01 77 /usr/bin/m
Anonymous:             0 kB
55e8000-55e9000 r--p 00008000 08:01 77 /usr/bin/m
Anonymous:             4 kB
VmFlags: rd mr mw me ac
55e9000-55ea000 rw-p 00009000 08:01 77 /usr/bin/m
Anonymous:             4 kB
55ea000-55eb000 r--p 0000a000 08:01 77 /usr/bin/m
Anonymous:        nonsense
";
        let m = parse_smaps(smaps);
        assert_eq!(m.len(), 5);
        let releasable: Vec<bool> = m.iter().map(Mapping::releasable).collect();
        // Rodata and code go; relocated RELRO data, writable data and anything unreadable stay.
        assert_eq!(releasable, [true, true, false, false, false]);
    }

    #[test]
    fn releasing_shrinks_file_residency_and_the_process_keeps_working() {
        // Touch a good part of the test binary first so there is something to release.
        let before = rss_file_kib();
        release_clean_file_pages();
        let after = rss_file_kib();
        assert!(after < before, "RssFile {before} KiB -> {after} KiB");
        // Code and constants come back on use: formatting, allocation and I/O still work.
        let text = format!("{:?}", std::fs::read_to_string("/proc/self/comm").unwrap());
        assert!(text.len() > 2);
    }
}
