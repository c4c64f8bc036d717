//! A job's fate, decided in one place: [`decide`] takes how a run ended and the retry policy,
//! and says what happens to the job next. A door carries the [`Fate`] out (the AMQP worker
//! acks, republishes a retry copy, publishes a failure and a dead letter, or releases the
//! delivery) and decides nothing itself.

use std::time::Duration;

use super::contract::ChatProgress;
use super::error::JobError;
use super::retry::{Decision, RetryPolicy};
use super::sink::SinkError;

/// Why a run stopped before the job was done.
#[derive(Debug)]
pub enum Stop {
    /// The job failed; `progress` is how far a chat job got (pages already delivered).
    Failed {
        /// The error; its class weighs in the choice between a retry and a failure.
        error: JobError,
        /// Where a chat job's retry goes on from (after the pages it published); `None` for
        /// a media job, or a failure before the run began.
        progress: Option<ChatProgress>,
    },
    /// Its cancellation token fired (a drain ran out of time, the broker session was lost).
    Cancelled,
    /// An output could not be delivered.
    Unpublished(SinkError),
}

impl From<SinkError> for Stop {
    /// A sink that stopped taking outputs because its door is stopping cancels the job.
    fn from(err: SinkError) -> Self {
        match err {
            SinkError::Stopped => Self::Cancelled,
            refused => Self::Unpublished(refused),
        }
    }
}

impl Stop {
    /// A failure with no progress to keep.
    pub fn failed(error: impl Into<JobError>) -> Self {
        Self::Failed {
            error: error.into(),
            progress: None,
        }
    }
}

/// What happens to a job next.
#[derive(Debug)]
pub enum Fate {
    /// Every output was delivered: settle the job.
    Done,
    /// Deliver the job again after `delay`, going on from `progress`.
    Retry {
        /// Why the attempt failed; transient.
        error: JobError,
        /// One of the retry policy's delays ([`RetryPolicy::all_delays`]).
        delay: Duration,
        /// Where the retry copy goes on from, as in [`Stop::Failed`].
        progress: Option<ChatProgress>,
    },
    /// Report the failure and dead-letter the job.
    Fail {
        /// Why: a permanent or configuration error, or a transient one on the last attempt.
        error: JobError,
    },
    /// Hand the job back unsettled, for this or another worker to run again; counted as a
    /// delivery by the broker. `unpublished` says which output could not be delivered, if
    /// that is why.
    Release {
        /// Why an output could not be delivered; `None` when the job was cancelled.
        unpublished: Option<SinkError>,
    },
}

/// The fate of a job whose attempt `attempt` (1-based) ended as `ended`; `random` is a uniform
/// draw in [0, 1) that picks a retry delay's jitter variant.
///
/// ```
/// use wecom_archive::job::fate::{decide, Fate, Stop};
/// use wecom_archive::job::retry::RetryPolicy;
///
/// let policy = RetryPolicy::default();
/// assert!(matches!(decide(Ok(()), 1, &policy, 0.5), Fate::Done));
/// // A cancelled run (its worker is stopping) goes back to the broker unsettled.
/// let cancelled = decide(Err(Stop::Cancelled), 1, &policy, 0.5);
/// assert!(matches!(cancelled, Fate::Release { unpublished: None }));
/// ```
pub fn decide(ended: Result<(), Stop>, attempt: u32, policy: &RetryPolicy, random: f64) -> Fate {
    match ended {
        Ok(()) => Fate::Done,
        Err(Stop::Cancelled) => Fate::Release { unpublished: None },
        Err(Stop::Unpublished(err)) => Fate::Release {
            unpublished: Some(err),
        },
        Err(Stop::Failed { error, progress }) => {
            match policy.decide(attempt, error.class(), random) {
                Decision::Retry { delay } => Fate::Retry {
                    error,
                    delay,
                    progress,
                },
                Decision::GiveUp => Fate::Fail { error },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::corps::CorpError;
    use crate::sdk::{SdkCode, SdkError, SdkOp};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            delays: vec![Duration::from_secs(1), Duration::from_secs(4)],
            jitter: 0.0,
        }
    }

    fn network() -> JobError {
        JobError::Sdk(SdkError::Code {
            op: SdkOp::GetChatData,
            code: SdkCode::Network,
        })
    }

    fn at(seq: u64, pages_done: u32) -> Option<ChatProgress> {
        Some(ChatProgress { seq, pages_done })
    }

    #[test]
    fn a_finished_job_is_done() {
        assert!(matches!(decide(Ok(()), 1, &policy(), 0.5), Fate::Done));
    }

    #[test]
    fn a_transient_failure_is_retried_with_its_progress_and_a_growing_delay() {
        let fate = decide(
            Err(Stop::Failed {
                error: network(),
                progress: at(200, 2),
            }),
            2,
            &policy(),
            0.0,
        );
        let Fate::Retry {
            delay, progress, ..
        } = fate
        else {
            panic!("{fate:?}")
        };
        assert_eq!((delay, progress), (Duration::from_secs(4), at(200, 2)));
    }

    #[test]
    fn the_last_attempt_fails_even_a_transient_error() {
        let fate = decide(Err(Stop::failed(network())), 3, &policy(), 0.0);
        assert!(matches!(fate, Fate::Fail { error } if error.info().code == 10001));
    }

    #[test]
    fn permanent_and_configuration_errors_fail_at_once() {
        for error in [
            JobError::Corp(CorpError::InlineRefused),
            JobError::Corp(CorpError::UnknownAlias("acme".into())),
            JobError::DeliveryLimitReached { deliveries: 5 },
        ] {
            let fate = decide(Err(Stop::failed(error)), 1, &policy(), 0.0);
            assert!(matches!(fate, Fate::Fail { .. }), "{fate:?}");
        }
    }

    #[test]
    fn a_cancelled_or_undelivered_job_is_released_undecided() {
        assert!(matches!(
            decide(Err(Stop::Cancelled), 1, &policy(), 0.0),
            Fate::Release { unpublished: None }
        ));
        let refused = SinkError::Refused("nack".into());
        assert!(matches!(
            decide(Err(refused.into()), 3, &policy(), 0.0),
            Fate::Release {
                unpublished: Some(_)
            }
        ));
        assert!(matches!(
            decide(Err(SinkError::Stopped.into()), 1, &policy(), 0.0),
            Fate::Release { unpublished: None }
        ));
    }
}
