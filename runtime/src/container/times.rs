//! Times as users give them to `logs --since/--until` and `container prune --filter until=`:
//! RFC 3339, a Unix timestamp, or a duration back from now (10m, 1h30m, 45s, 2d).

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::spec::error::SpecError;

/// The one-line error for a time skiff cannot read, with the forms it can.
fn invalid(s: &str) -> Error {
    Error::from(SpecError::Flag {
        flag: "time",
        value: s.to_string(),
        fix:
            "use RFC 3339 (2024-01-02T15:04:05Z), a Unix timestamp, or a duration like 10m or 1h30m"
                .into(),
    })
}

/// Parses `s` as RFC 3339, a Unix timestamp, or a duration before `now`.
pub fn parse_time_at(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = s.parse::<i64>() {
        return DateTime::from_timestamp(secs, 0).ok_or_else(|| {
            Error::from(SpecError::Flag {
                flag: "time",
                value: s.to_string(),
                fix: "the timestamp is out of range".into(),
            })
        });
    }
    let mut total = 0i64;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| invalid(s))?;
        num.clear();
        total += n * match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(invalid(s)),
        };
    }
    if !num.is_empty() || s.is_empty() {
        return Err(invalid(s));
    }
    Ok(now - chrono::Duration::seconds(total))
}

/// Parses `s` as [`parse_time_at`] does, durations counting back from the present.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    parse_time_at(s, Utc::now())
}

/// Seconds from the RFC 3339 time `t` to now (0 when there is none or it cannot be read).
pub fn seconds_since(t: Option<&str>) -> i64 {
    t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_every_form_users_give() {
        let now = DateTime::parse_from_rfc3339("2024-01-02T15:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_time_at("2024-01-02T15:04:05Z", now).unwrap(), now);
        assert_eq!(
            parse_time_at("1704207845", now).unwrap(),
            now,
            "a Unix timestamp"
        );
        assert_eq!(
            parse_time_at("1h30m", now).unwrap(),
            now - chrono::Duration::seconds(5400)
        );
        assert_eq!(
            parse_time_at("2d", now).unwrap(),
            now - chrono::Duration::days(2)
        );
        for bad in ["", "10x", "m", "1h30"] {
            let e = parse_time_at(bad, now).unwrap_err().to_string();
            assert!(e.starts_with("invalid time"), "{bad:?}: {e}");
            assert!(e.contains("RFC 3339"), "{e}");
        }
        assert!(seconds_since(None) == 0 && seconds_since(Some("nonsense")) == 0);
    }
}
