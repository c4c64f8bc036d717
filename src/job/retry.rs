//! The retry policy: a plain value, decided by attempt number and error class.
//!
//! Transient errors are retried after a delay that grows per attempt; everything else, and a
//! transient error on the last attempt, gives up. The delays map onto the broker's delay tiers
//! (one queue per delay, so a message never waits behind a longer one); jitter shortens each
//! delay by up to `jitter` of itself so that a burst of failures does not come back as a burst.

use std::time::Duration;

use crate::sdk::ErrorClass;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The delay before attempt 2, 3, ...; the last one repeats.
    pub delays: Vec<Duration>,
    /// Fraction (0..1) by which a delay may be shortened at random.
    pub jitter: f64,
}

/// What to do with a job whose attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Try again after `delay`, through delay tier `tier`.
    Retry { tier: usize, delay: Duration },
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
    /// Whether `attempt` (1-based) is the last one the policy allows.
    pub fn is_last(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts
    }

    /// The decision after attempt `attempt` failed with an error of `class`; `random` is a
    /// uniform draw in [0, 1) for the jitter.
    pub fn decide(&self, attempt: u32, class: ErrorClass, random: f64) -> Decision {
        if class != ErrorClass::Transient || self.is_last(attempt) || self.delays.is_empty() {
            return Decision::GiveUp;
        }
        let tier = (attempt.max(1) as usize - 1).min(self.delays.len() - 1);
        let full = self.delays[tier];
        let delay = full.mul_f64(1.0 - self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0));
        Decision::Retry { tier, delay }
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

    #[test]
    fn transient_errors_retry_through_growing_tiers_until_the_last_attempt() {
        let p = policy();
        let tiers: Vec<_> = (1..=4)
            .map(|a| p.decide(a, ErrorClass::Transient, 0.0))
            .collect();
        assert_eq!(
            tiers,
            [
                Decision::Retry {
                    tier: 0,
                    delay: Duration::from_secs(1)
                },
                Decision::Retry {
                    tier: 1,
                    delay: Duration::from_secs(10)
                },
                Decision::Retry {
                    tier: 1,
                    delay: Duration::from_secs(10)
                },
                Decision::GiveUp,
            ]
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
    fn jitter_only_ever_shortens_a_delay_within_its_bound() {
        let p = policy();
        for random in [0.0, 0.25, 0.5, 0.999] {
            let Decision::Retry { delay, .. } = p.decide(2, ErrorClass::Transient, random) else {
                panic!()
            };
            assert!(
                delay <= Duration::from_secs(10) && delay >= Duration::from_secs(5),
                "{delay:?}"
            );
        }
    }

    #[test]
    fn is_last_marks_the_final_attempt() {
        let p = policy();
        assert!(!p.is_last(3));
        assert!(p.is_last(4));
        assert!(RetryPolicy {
            max_attempts: 1,
            ..policy()
        }
        .is_last(1));
    }
}
