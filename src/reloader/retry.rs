//! What every reloading part does after a failure: log it once until its
//! message changes, and try unchanged files again with a doubling back-off,
//! because what failed may depend on something other than the files (a
//! not-yet-valid certificate becomes valid, a passphrase variable appears).
//! Changed files are tried on the next tick.

use std::time::Duration;

/// The longest wait between retries of files that did not change.
pub(crate) const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The last failure logged, so that a failure repeats in the log only when its
/// message changes.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    last: Option<String>,
}

impl FailureLog {
    /// A log that has already said `message` (a failure logged at start-up).
    pub(crate) fn said(message: String) -> Self {
        Self {
            last: Some(message),
        }
    }

    /// Whether `message` differs from the last failure logged; it is the last
    /// one from now on. Log it when this is true.
    pub(crate) fn is_new(&mut self, message: &str) -> bool {
        if self.last.as_deref() == Some(message) {
            return false;
        }
        self.last = Some(message.to_owned());
        true
    }

    /// Forgets the failure; whether there was one (then say it is over).
    pub(crate) fn recovered(&mut self) -> bool {
        self.last.take().is_some()
    }
}

/// The wait before each retry of files that did not change: the poll
/// interval, doubled after each failure up to [`MAX_RETRY_DELAY`].
#[derive(Debug)]
pub(crate) struct Backoff {
    interval: Duration,
    delay: Duration,
}

impl Backoff {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            delay: interval,
        }
    }

    /// The wait before the next retry; the one after it is twice as long.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.delay;
        self.delay = delay.saturating_mul(2).min(MAX_RETRY_DELAY);
        delay
    }

    /// Back to the poll interval: the files changed, or an attempt succeeded.
    pub(crate) fn reset(&mut self) {
        self.delay = self.interval;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Backoff, FailureLog, MAX_RETRY_DELAY};

    #[test]
    fn a_failure_is_logged_once_until_it_changes() {
        let mut log = FailureLog::default();
        assert!(log.is_new("a"));
        assert!(!log.is_new("a"));
        assert!(log.is_new("b"));
        assert!(log.recovered());
        assert!(!log.recovered());
        assert!(log.is_new("b"));
        assert!(!FailureLog::said("c".into()).is_new("c"));
    }

    #[test]
    fn the_delay_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1));
        let delays: Vec<_> = (0..8).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(MAX_RETRY_DELAY.as_secs(), 60);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
    }
}
