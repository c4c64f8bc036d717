//! The retry policy: a plain value, decided by attempt number and error class.
//!
//! Transient errors (the class of 10001, 10002, 10003, 10008, a broken response, a store error)
//! are retried after a delay that grows per attempt; everything else, and a transient error on
//! the last attempt, gives up. Delays map onto the broker's delay queues, one TTL per queue, so
//! a message never waits behind a longer one. Jitter is made of queues too: each delay has
//! [`JITTER_STEPS`] variants spread over `delay * (1 - jitter) ..= delay`, one picked at random,
//! so that a burst of failures does not come back as one burst.

use std::time::Duration;

use crate::sdk::ErrorClass;

/// Delay variants per tier.
pub const JITTER_STEPS: u32 = 3;

/// How many times a job is tried, and how long it waits before each retry.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The delay before attempt 2, 3, ...; the last one repeats.
    pub delays: Vec<Duration>,
    /// Fraction (0..1) by which a delay may be shortened.
    pub jitter: f64,
}

/// What to do with a job whose attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Try again after `delay` (one of [`RetryPolicy::all_delays`]).
    Retry {
        /// How long the job waits in its delay queue.
        delay: Duration,
    },
    /// Stop: publish the failure and dead-letter the job.
    GiveUp,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            delays: vec![
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120),
                Duration::from_secs(600),
            ],
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Whether a failed attempt `attempt` (1-based) may be followed by another.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts && !self.delays.is_empty()
    }

    /// The delay variants of tier `tier`, longest first.
    fn variants(&self, tier: usize) -> impl Iterator<Item = Duration> + '_ {
        let full = self.delays[tier];
        let jitter = self.jitter.clamp(0.0, 1.0);
        (0..JITTER_STEPS).map(move |step| {
            let cut = jitter * f64::from(step) / f64::from((JITTER_STEPS - 1).max(1));
            // Whole milliseconds: each variant is a queue's TTL and part of its name.
            Duration::from_millis(full.mul_f64(1.0 - cut).as_millis() as u64)
        })
    }

    /// Every delay the policy can choose: one delay queue each per job kind.
    pub fn all_delays(&self) -> Vec<Duration> {
        let mut all: Vec<Duration> = (0..self.delays.len())
            .flat_map(|tier| self.variants(tier))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The decision after attempt `attempt` failed with an error of `class`; `random` is a
    /// uniform draw in [0, 1) that picks the jitter variant.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wecom_archive::job::retry::{Decision, RetryPolicy};
    /// use wecom_archive::sdk::ErrorClass;
    ///
    /// let policy = RetryPolicy {
    ///     max_attempts: 3,
    ///     delays: vec![Duration::from_secs(5), Duration::from_secs(30)],
    ///     jitter: 0.0,
    /// };
    /// let retry = |attempt| policy.decide(attempt, ErrorClass::Transient, 0.5);
    /// assert_eq!(retry(1), Decision::Retry { delay: Duration::from_secs(5) });
    /// assert_eq!(retry(2), Decision::Retry { delay: Duration::from_secs(30) });
    /// assert_eq!(retry(3), Decision::GiveUp);
    /// // Only a transient error is retried.
    /// assert_eq!(policy.decide(1, ErrorClass::Permanent, 0.5), Decision::GiveUp);
    /// ```
    pub fn decide(&self, attempt: u32, class: ErrorClass, random: f64) -> Decision {
        if class != ErrorClass::Transient || !self.allows_retry_after(attempt) {
            return Decision::GiveUp;
        }
        let tier = (attempt.max(1) as usize - 1).min(self.delays.len() - 1);
        let step = ((random.clamp(0.0, 0.999_999) * f64::from(JITTER_STEPS)) as usize)
            .min(JITTER_STEPS as usize - 1);
        let delay = self.variants(tier).nth(step).expect("step < JITTER_STEPS");
        Decision::Retry { delay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            delays: vec![Duration::from_secs(1), Duration::from_secs(10)],
            jitter: 0.5,
        }
    }

    fn retry(delay_ms: u64) -> Decision {
        Decision::Retry {
            delay: Duration::from_millis(delay_ms),
        }
    }

    #[test]
    fn transient_errors_retry_through_growing_tiers_until_the_last_attempt() {
        let p = policy();
        let decisions: Vec<_> = (1..=4)
            .map(|a| p.decide(a, ErrorClass::Transient, 0.0))
            .collect();
        assert_eq!(
            decisions,
            [retry(1000), retry(10_000), retry(10_000), Decision::GiveUp]
        );
    }

    #[test]
    fn permanent_and_configuration_errors_give_up_at_once() {
        let p = policy();
        assert_eq!(p.decide(1, ErrorClass::Permanent, 0.3), Decision::GiveUp);
        assert_eq!(
            p.decide(1, ErrorClass::Configuration, 0.3),
            Decision::GiveUp
        );
    }

    #[test]
    fn jitter_picks_one_of_the_declared_variants_within_the_bound() {
        let p = policy();
        let all = p.all_delays();
        assert_eq!(
            all.len(),
            6,
            "three variants for each of two tiers: {all:?}"
        );
        let picked: Vec<_> = [0.0, 0.5, 0.99]
            .iter()
            .map(|r| p.decide(2, ErrorClass::Transient, *r))
            .collect();
        assert_eq!(picked, [retry(10_000), retry(7_500), retry(5_000)]);
        for decision in picked {
            let Decision::Retry { delay } = decision else {
                panic!()
            };
            assert!(all.contains(&delay));
        }
    }

    #[test]
    fn no_delays_or_one_attempt_means_no_retry() {
        assert!(!RetryPolicy {
            delays: vec![],
            ..policy()
        }
        .allows_retry_after(1));
        assert!(!RetryPolicy {
            max_attempts: 1,
            ..policy()
        }
        .allows_retry_after(1));
        assert!(policy().allows_retry_after(3));
        assert!(!policy().allows_retry_after(4));
    }
}
