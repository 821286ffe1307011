//! Sizes as users write them — `512m`, `1.5g`, `10MB`, `2KiB`, `1048576` — in one parser for every
//! flag and setting (`--memory`, `--shm-size`, `[logs] max_size`, …). Units are binary, as
//! Docker's: k = KiB, m = MiB, g = GiB; `b` and a trailing `b`/`ib` are accepted.

/// Bytes in `s`; `None` for anything else, zero or negative.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let bytes = if num.contains('.') {
        let n: f64 = num.parse().ok()?;
        let b = n * mult as f64;
        (b.is_finite() && b < u64::MAX as f64).then_some(b as u64)?
    } else {
        num.parse::<u64>().ok()?.checked_mul(mult)?
    };
    (bytes > 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_users_write() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("10MB"), Some(10 << 20));
        assert_eq!(parse_size("2KiB"), Some(2048));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("100b"), Some(100));
        for bad in ["lots", "0", "", "k", "1.x", ".5g", "5.g", "-1m", "1q"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_size("99999999999999999999g"), None);
    }
}
