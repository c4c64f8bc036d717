//! The one doubling backoff: a pause that starts at `first` and doubles after each failure, up
//! to `longest`. The broker's reconnects, a consume not answered, a refused publish and a media
//! chunk's retries all wait by it; a job's own retries follow its [`crate::job::retry`] policy
//! instead, since those are settings an operator chooses per deployment.

use std::time::Duration;

/// A doubling pause, as a plain value: [`Backoff::delay_after`] for a counted failure, or
/// [`Backoff::pauses`] for a loop that keeps its own count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The pause after the first failure.
    pub first: Duration,
    /// The pause it never grows past.
    pub longest: Duration,
}

impl Backoff {
    /// A backoff from `first` up to `longest`.
    pub const fn new(first: Duration, longest: Duration) -> Self {
        Self { first, longest }
    }

    /// The pause after failure number `failures` (1-based): `first` doubled for each failure
    /// before it, at most `longest`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wecom_archive::backoff::Backoff;
    ///
    /// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
    /// let pauses: Vec<u128> = (1..=5).map(|n| backoff.delay_after(n).as_millis()).collect();
    /// assert_eq!(pauses, [100, 200, 400, 500, 500]);
    /// ```
    pub fn delay_after(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.first.saturating_mul(factor).min(self.longest)
    }

    /// The pauses one after another, for a loop that waits after each failure.
    pub fn pauses(self) -> Pauses {
        Pauses {
            backoff: self,
            failures: 0,
        }
    }
}

/// A [`Backoff`] with its count of failures: the next pause, and a fresh start after a success.
#[derive(Debug, Clone)]
pub struct Pauses {
    backoff: Backoff,
    failures: u32,
}

impl Pauses {
    /// The pause after one more failure.
    pub fn next_pause(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.backoff.delay_after(self.failures)
    }

    /// After a success: the next pause is `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_longest_and_start_over_after_a_reset() {
        let mut pauses = Backoff::new(Duration::from_millis(500), Duration::from_secs(30)).pauses();
        let got: Vec<u128> = (0..8).map(|_| pauses.next_pause().as_millis()).collect();
        assert_eq!(
            got,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
        pauses.reset();
        assert_eq!(pauses.next_pause(), Duration::from_millis(500));
    }

    #[test]
    fn a_zero_backoff_never_waits_and_many_failures_do_not_overflow() {
        let zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.delay_after(1), Duration::ZERO);
        let long = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(long.delay_after(u32::MAX), Duration::from_secs(60));
        assert_eq!(long.delay_after(0), Duration::from_secs(1));
    }
}
