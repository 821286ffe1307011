//! The container verbs as users ask for them, with the rules the CLI used to apply itself: which
//! signal and timeout `stop` uses, that a user's KILL or TERM is a stop restart policies honour,
//! and when `wait` counts a container as down for good.

use std::time::Duration;

use crate::container::config::Status;
use crate::container::lifecycle::{signal_number, View};
use crate::container::records::Containers;
use crate::error::{Error, Result};
use crate::spec::error::SpecError;

/// A signal by name or number, refused with the forms that work.
pub fn parse_signal(s: &str) -> Result<i32> {
    signal_number(s).ok_or_else(|| {
        Error::from(SpecError::Flag {
            flag: "signal",
            value: s.to_string(),
            fix: "use a name like TERM or SIGKILL, or a number".into(),
        })
    })
}

/// The signal and grace time `stop` uses: the ones asked for, else the container's own
/// (`--stop-signal`/the image's StopSignal, `--stop-timeout`), else SIGTERM and 10 seconds.
pub fn stop_plan(
    asked_signal: Option<&str>,
    asked_time: Option<u64>,
    own_signal: Option<&str>,
    own_time: Option<u64>,
) -> Result<(i32, Duration)> {
    let sig = parse_signal(asked_signal.or(own_signal).unwrap_or("SIGTERM"))?;
    Ok((
        sig,
        Duration::from_secs(asked_time.or(own_time).unwrap_or(10)),
    ))
}

/// Whether a signal a user sends is a stop: restart policies then leave the container down.
pub fn is_user_stop(signal: i32) -> bool {
    signal == libc::SIGKILL || signal == libc::SIGTERM
}

impl Containers {
    /// `stop` as asked: the container resolved from `key`, stopped with [`stop_plan`]; its id.
    pub fn stop_as_asked(
        &self,
        key: &str,
        time: Option<u64>,
        signal: Option<&str>,
    ) -> Result<String> {
        let id = self.resolve(key)?;
        let (cfg, _) = self.load(&id)?;
        let (sig, timeout) = stop_plan(signal, time, cfg.stop_signal.as_deref(), cfg.stop_timeout)?;
        self.stop(&id, timeout, sig)?;
        Ok(id)
    }

    /// `kill` as asked: a KILL or TERM from the user also marks the container stopped by them.
    pub fn kill_as_asked(&self, id: &str, signal: i32) -> Result<()> {
        if is_user_stop(signal) {
            // A kill from the user is a stop: restart policies leave it down (except `always`
            // after a daemon restart, which skiff has no notion of).
            self.mark_stopped_by_user(id)?;
        }
        self.kill(id, signal)
    }

    /// Waits until the container is down for good: not running and no monitor left to restart
    /// it (or never started).
    pub fn wait_down(&self, id: &str) -> Result<View> {
        loop {
            let v = self.wait_exit(id, None)?;
            if !v.monitor_alive() || v.state.status == Status::Created {
                return Ok(v);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_uses_what_was_asked_then_the_containers_own_then_term_and_ten_seconds() {
        let s = |a, t, o, ot| stop_plan(a, t, o, ot).unwrap();
        assert_eq!(
            s(None, None, None, None),
            (libc::SIGTERM, Duration::from_secs(10))
        );
        assert_eq!(
            s(None, None, Some("SIGINT"), Some(3)),
            (libc::SIGINT, Duration::from_secs(3))
        );
        assert_eq!(
            s(Some("KILL"), Some(1), Some("SIGINT"), Some(3)),
            (libc::SIGKILL, Duration::from_secs(1))
        );
        let e = stop_plan(Some("NOPE"), None, None, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid signal \"NOPE\": use a name like TERM or SIGKILL, or a number"
        );
        assert_eq!(parse_signal("9").unwrap(), libc::SIGKILL);
        assert!(parse_signal("0").is_err() && parse_signal("65").is_err());
    }

    #[test]
    fn only_kill_and_term_count_as_a_users_stop() {
        assert!(is_user_stop(libc::SIGKILL) && is_user_stop(libc::SIGTERM));
        assert!(!is_user_stop(libc::SIGHUP) && !is_user_stop(libc::SIGUSR1));
    }
}
