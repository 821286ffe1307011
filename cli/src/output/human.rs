//! Human-readable sizes and ages in the forms Docker prints them.

/// `4.26MB`, `512B`: decimal units, three significant digits (Docker's `HumanSizeWithPrecision`).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = if v >= 100.0 || i == 0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[i])
}

/// `2 hours ago`, `About a minute ago` (Docker's `HumanDuration` plus " ago").
pub fn ago(secs: i64) -> String {
    let s = secs.max(0);
    let d = match s {
        0 => return "Less than a second ago".into(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_string(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s if s < 7 * 86400 * 2 => format!("{} days", s / 86400),
        s if s < 30 * 86400 * 3 => format!("{} weeks", s / (7 * 86400)),
        s if s < 365 * 86400 * 2 => format!("{} months", s / (30 * 86400)),
        s => format!("{} years", s / (365 * 86400)),
    };
    format!("{d} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(999), "999B");
        assert_eq!(size(1000), "1kB");
        assert_eq!(size(4_260_000), "4.26MB");
        assert_eq!(size(12_345_678), "12.3MB");
        assert_eq!(size(123_456_789), "123MB");
        assert_eq!(size(1_500_000_000), "1.5GB");
    }

    #[test]
    fn ages_like_docker() {
        assert_eq!(ago(0), "Less than a second ago");
        assert_eq!(ago(5), "5 seconds ago");
        assert_eq!(ago(90), "About a minute ago");
        assert_eq!(ago(3 * 3600), "3 hours ago");
        assert_eq!(ago(3 * 86400), "3 days ago");
        assert_eq!(ago(400 * 86400 * 2), "2 years ago");
    }
}
