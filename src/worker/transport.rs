//! What a worker does with a delivered job, as calls: the fate of a job ([`crate::job::fate`])
//! and its outputs turn into these, and nothing else touches the broker for a job. The AMQP
//! implementation is [`super::amqp_job::AmqpJob`]; a test implements it in memory to check each
//! fate without a broker.

use std::future::Future;
use std::time::Duration;

use super::delivered::Delivered;
use crate::broker::publisher::PublishError;
use crate::error_code::ErrorInfo;
use crate::job::contract::ChatProgress;
use crate::job::sink::Output;
use crate::job::JobKind;

/// Everything a worker may do with one delivered job: read it, publish what it produced, and
/// settle it.
pub trait JobTransport: Send + Sync {
    /// The job as published.
    fn body(&self) -> &[u8];

    /// The queue it came from.
    fn kind(&self) -> JobKind;

    /// What the delivery says besides the body.
    fn delivered(&self) -> &Delivered;

    /// A result (or failure) to the result queue of its kind, and a copy to `reply_to`, if any
    /// (there only, while that queue exists, when the job says `x-wecom-reply-to-only`).
    fn publish_result(
        &self,
        output: &Output,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// The job again, to be taken up by any worker from `progress` (the pages before it are
    /// published).
    fn publish_continuation(
        &self,
        progress: ChatProgress,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// The job again after `delay`, as attempt `attempt`, going on from `progress`.
    fn publish_retry(
        &self,
        delay: Duration,
        attempt: u32,
        progress: Option<ChatProgress>,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// The job to its dead-letter queue, saying why, after `attempts` attempts.
    fn publish_dead_letter(
        &self,
        attempts: u32,
        error: &ErrorInfo,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// Settles the delivery: the broker forgets the job.
    fn ack(&self) -> impl Future<Output = ()> + Send;

    /// Hands the delivery back unsettled, for this or another worker.
    fn release(&self) -> impl Future<Output = ()> + Send;
}
