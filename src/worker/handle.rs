//! What happens to one delivered job: parse, run, publish what it produced, and only then
//! acknowledge it.
//!
//! Order matters for "nothing is lost": results, the retry copy, the failure and the dead letter
//! are each confirmed by the broker before the job is acked. If any of them cannot be published
//! the job is released (nack with requeue) for the broker to deliver again, and a broken
//! publisher connection ends the session so the worker reconnects.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::BasicProperties;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::headers;
use super::publisher::{PublishError, Publisher};
use super::topology::{result_routing_key, retry_queue, DEAD_EXCHANGE, RESULTS_EXCHANGE};
use crate::error_code::{ErrorInfo, ProjectCode};
use crate::job::contract::FailureResult;
use crate::job::parse::Job;
use crate::job::retry::{Decision, RetryPolicy};
use crate::job::run::{self, envelope, JobContext, JobMeta, JobOutcome, Output};
use crate::job::{parse, JobKind};
use crate::media::MediaStore;
use crate::sdk::ErrorClass;

/// Hands a delivery back to its queue, for this or another worker to take.
pub const REQUEUE: BasicNackOptions = BasicNackOptions {
    multiple: false,
    requeue: true,
};

/// What every job handler of one broker session shares.
pub struct Shared<S> {
    pub ctx: Arc<JobContext<S>>,
    pub publisher: Publisher,
    pub policy: RetryPolicy,
    /// The job queues' `x-delivery-limit`: a delivery the broker counts as the last one is not
    /// run but failed, so that a job which keeps killing its workers still gets a failure
    /// result and a dead letter that says why, instead of vanishing into the dead-letter queue
    /// without either.
    pub delivery_limit: u32,
    /// Fired when the session is lost (or a drain takes too long): handlers stop publishing.
    pub session: CancellationToken,
}

impl<S> Shared<S> {
    /// Whether the broker counts this delivery as the job's last one: it is then failed with
    /// 20305, not run.
    pub fn is_last_delivery(&self, properties: &BasicProperties) -> bool {
        headers::delivery_count(properties.headers().as_ref()) >= self.delivery_limit
    }
}

/// A non-empty property value, as text.
fn text(value: Option<&ShortString>) -> Option<String> {
    value
        .map(|s| s.as_str().to_owned())
        .filter(|s| !s.is_empty())
}

/// A short-string property, or none when the value does not fit AMQP's 255 bytes.
fn short_string(value: &str) -> Option<ShortString> {
    ShortString::try_new(value).ok()
}

/// The properties a job keeps when it is republished (retry copy, dead letter, replay): its ids,
/// reply address and headers. Not its `expiration` (a dead letter must not expire) nor its
/// `user_id` (which the broker checks against the publishing connection's user).
pub fn job_properties(original: &BasicProperties, headers: FieldTable) -> BasicProperties {
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers);
    if let Some(v) = original.content_type() {
        properties = properties.with_content_type(v.clone());
    }
    if let Some(v) = original.message_id() {
        properties = properties.with_message_id(v.clone());
    }
    if let Some(v) = original.correlation_id() {
        properties = properties.with_correlation_id(v.clone());
    }
    if let Some(v) = original.reply_to() {
        properties = properties.with_reply_to(v.clone());
    }
    if let Some(v) = original.timestamp() {
        properties = properties.with_timestamp(*v);
    }
    properties
}

/// Handles one delivery of a job of `kind` to the end: acked, or released for redelivery.
pub async fn handle_delivery<S>(delivery: Delivery, kind: JobKind, shared: Arc<Shared<S>>)
where
    S: MediaStore + Send + Sync + 'static,
    S::Partial: Send + 'static,
{
    let props = &delivery.properties;
    let attempt = headers::attempt(props.headers().as_ref());
    let meta = JobMeta {
        message_id: text(props.message_id().as_ref()),
        correlation_id: text(props.correlation_id().as_ref()),
        attempt,
        last_attempt: !shared.policy.allows_retry_after(attempt),
        progress: headers::progress(props.headers().as_ref()),
    };
    let parsed = parse(kind, &delivery.data);
    let job_id = match &parsed {
        Ok(job) => run::job_id(job.job_id(), &meta),
        Err(invalid) => run::job_id(invalid.job_id.as_deref(), &meta),
    };
    let span = tracing::info_span!(
        "job",
        kind = kind.name(),
        job_id = job_id.as_deref().unwrap_or("-"),
        attempt,
        corp = tracing::field::Empty
    );
    let work = async {
        let outcome = match parsed {
            Ok(_) if shared.is_last_delivery(props) => {
                let deliveries = headers::delivery_count(props.headers().as_ref());
                let message = format!(
                    "delivered {} times and never settled (its worker died, e.g. on an SDK \
                     abort, lost the broker, or released it unstarted); not run again",
                    deliveries + 1
                );
                tracing::error!(deliveries = deliveries + 1, "delivery limit reached");
                JobOutcome::Failed {
                    outputs: Vec::new(),
                    error: ErrorInfo::project(
                        ProjectCode::DeliveryLimitReached,
                        ErrorClass::Permanent,
                        message,
                    ),
                }
            }
            Ok(job) => {
                if let Some(corp) = job_corp(&job) {
                    tracing::Span::current().record("corp", corp);
                }
                run::run(job, &meta, &shared.ctx).await
            }
            Err(invalid) => {
                tracing::warn!(reason = %invalid.reason, "invalid job");
                let error = ErrorInfo::project(
                    ProjectCode::InvalidJob,
                    ErrorClass::Permanent,
                    invalid.to_string(),
                );
                JobOutcome::Failed {
                    outputs: Vec::new(),
                    error,
                }
            }
        };
        settle(&delivery, kind, &meta, job_id, outcome, &shared).await
    };
    // A panic is a bug, but it must not hold the delivery until the channel closes.
    let settled = AssertUnwindSafe(work.instrument(span.clone()))
        .catch_unwind()
        .await;
    // The span goes with the future (`instrument`), never entered across an await: a task may
    // move between threads, and an entered span would then corrupt the subscriber's span stack.
    acknowledge(&delivery, settled, &shared.session)
        .instrument(span)
        .await;
}

/// Acks a settled job; releases any other for redelivery.
async fn acknowledge(
    delivery: &Delivery,
    settled: Result<Result<(), PublishError>, Box<dyn std::any::Any + Send>>,
    session: &CancellationToken,
) {
    match settled {
        Ok(Ok(())) => {
            if let Err(err) = delivery.ack(BasicAckOptions::default()).await {
                tracing::warn!(error = %err, "ack failed; the broker will deliver the job again");
            }
            return;
        }
        Ok(Err(err)) => {
            if matches!(err, PublishError::Broker(_)) {
                session.cancel();
            }
            tracing::warn!(error = %err, "job not settled; released for redelivery");
        }
        Err(_) => tracing::error!("job handling panicked; released for redelivery"),
    }
    if let Err(err) = delivery.nack(REQUEUE).await {
        tracing::warn!(error = %err, "nack failed; the broker redelivers the job when the channel closes");
    }
}

fn job_corp(job: &Job) -> Option<&str> {
    let corp = match job {
        Job::Chatdata(job) => &job.corp,
        Job::Media(job) => &job.corp,
    };
    corp.corp.as_deref().or(corp.corpid.as_deref())
}

/// Publishes everything the outcome calls for, each confirmed.
async fn settle<S>(
    delivery: &Delivery,
    kind: JobKind,
    meta: &JobMeta,
    job_id: Option<String>,
    outcome: JobOutcome,
    shared: &Shared<S>,
) -> Result<(), PublishError> {
    let publisher = &shared.publisher;
    let stop = &shared.session;
    let reply_to = text(delivery.properties.reply_to().as_ref());
    let original_headers = delivery.properties.headers().as_ref();
    let (outputs, error, progress) = match outcome {
        JobOutcome::Done(outputs) => (outputs, None, None),
        JobOutcome::Retry {
            outputs,
            progress,
            error,
        } => (outputs, Some(error), progress),
        JobOutcome::Failed { outputs, error } => (outputs, Some(error), None),
    };
    for output in &outputs {
        publish_result(publisher, output, meta, reply_to.as_deref(), stop).await?;
    }
    let Some(error) = error else {
        tracing::info!(results = outputs.len(), "job done");
        return Ok(());
    };
    match shared
        .policy
        .decide(meta.attempt, error.class, rand::random::<f64>())
    {
        Decision::Retry { delay } => {
            tracing::info!(
                code = error.code,
                name = error.name,
                ?delay,
                "job will be retried"
            );
            let headers = headers::for_retry(original_headers, meta.attempt + 1, progress);
            let properties = job_properties(&delivery.properties, headers);
            let queue = retry_queue(delay, kind);
            publisher
                .publish_until_confirmed("", &queue, &delivery.data, &properties, stop)
                .await
        }
        Decision::GiveUp => {
            tracing::warn!(code = error.code, name = error.name, message = %error.message, "job failed");
            if let Some(id) = &job_id {
                // Its own result_id: a job replayed after a failure may still succeed, and a
                // consumer dropping duplicates must not drop that success.
                let result_id = Some(format!("{id}:failed"));
                let failure = FailureResult::new(
                    kind,
                    envelope(job_id.clone(), None, meta, result_id.clone()),
                    error.clone(),
                );
                let output = Output {
                    kind,
                    result_id,
                    body: serde_json::to_vec(&failure).expect("a failure serializes"),
                };
                publish_result(publisher, &output, meta, reply_to.as_deref(), stop).await?;
            }
            let headers = headers::for_dead_letter(original_headers, meta.attempt, &error);
            let properties = job_properties(&delivery.properties, headers);
            publisher
                .publish_until_confirmed(
                    DEAD_EXCHANGE,
                    kind.name(),
                    &delivery.data,
                    &properties,
                    stop,
                )
                .await
        }
    }
}

/// A result to the result queue of its kind, and to `reply_to` when the job asked.
async fn publish_result(
    publisher: &Publisher,
    output: &Output,
    meta: &JobMeta,
    reply_to: Option<&str>,
    stop: &CancellationToken,
) -> Result<(), PublishError> {
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_app_id("wecom-archive".into())
        .with_type(output.kind.result_type().into())
        .with_headers(FieldTable::default());
    if let Some(id) = output.result_id.as_deref().and_then(short_string) {
        properties = properties.with_message_id(id);
    }
    if let Some(id) = meta.correlation_id.as_deref().and_then(short_string) {
        properties = properties.with_correlation_id(id);
    }
    publisher
        .publish_until_confirmed(
            RESULTS_EXCHANGE,
            result_routing_key(output.kind),
            &output.body,
            &properties,
            stop,
        )
        .await?;
    if let Some(queue) = reply_to {
        // An extra copy for a caller waiting on its own queue: if that queue is gone, the
        // result is still safe in the result queue, so a return is logged, not retried.
        if let Err(err) = publisher
            .publish("", queue, &output.body, properties.clone())
            .await
        {
            tracing::warn!(error = %err, reply_to = queue, "reply_to copy not delivered");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn republished_jobs_keep_their_ids_but_never_an_expiration_or_user_id() {
        let original = BasicProperties::default()
            .with_message_id("m1".into())
            .with_correlation_id("c1".into())
            .with_reply_to("q".into())
            .with_expiration("1000".into())
            .with_user_id("someone".into());
        let copy = job_properties(&original, FieldTable::default());
        assert_eq!(
            copy.message_id().as_ref().map(ShortString::as_str),
            Some("m1")
        );
        assert_eq!(
            copy.correlation_id().as_ref().map(ShortString::as_str),
            Some("c1")
        );
        assert_eq!(copy.reply_to().as_ref().map(ShortString::as_str), Some("q"));
        assert_eq!(copy.expiration(), &None);
        assert_eq!(copy.user_id(), &None);
        assert_eq!(copy.delivery_mode(), &Some(2));
    }

    #[test]
    fn ids_too_long_for_amqp_are_left_out_rather_than_panicking() {
        assert!(short_string(&"x".repeat(255)).is_some());
        assert!(short_string(&"界".repeat(100)).is_none());
    }
}
