//! What happens to one delivered job: parse, run, publish what it produced, and only then
//! acknowledge it.
//!
//! Order matters for "nothing is lost": results, the retry copy, the failure and the dead letter
//! are each confirmed by the broker before the job is acked. If any of them cannot be published
//! the job is not acked, and the broker delivers it again (to this worker or another).

use std::sync::Arc;

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::types::{FieldTable, ShortString};
use lapin::BasicProperties;
use tracing::Instrument;

use super::headers;
use super::publisher::{PublishError, Publisher};
use super::topology::{result_routing_key, retry_queue, DEAD_EXCHANGE, RESULTS_EXCHANGE};
use crate::error_code::ErrorInfo;
use crate::job::contract::{Envelope, FailureResult};
use crate::job::retry::{Decision, RetryPolicy};
use crate::job::run::{self, JobContext, JobMeta, JobOutcome, Output};
use crate::job::{parse, JobKind};
use crate::media::MediaStore;

/// What every job handler shares.
pub struct Shared<S> {
    pub ctx: Arc<JobContext<S>>,
    pub publisher: Publisher,
    pub policy: RetryPolicy,
}

fn short(value: Option<&ShortString>) -> Option<String> {
    value
        .map(|s| s.as_str().to_owned())
        .filter(|s| !s.is_empty())
}

/// Handles one delivery of a job of `kind` to the end: acked, or left for redelivery.
pub async fn handle<S>(delivery: Delivery, kind: JobKind, shared: Arc<Shared<S>>)
where
    S: MediaStore + Send + Sync + 'static,
    S::Partial: Send + 'static,
{
    let props = &delivery.properties;
    let attempt = headers::attempt(props.headers().as_ref());
    let meta = JobMeta {
        message_id: short(props.message_id().as_ref()),
        correlation_id: short(props.correlation_id().as_ref()),
        attempt,
        last_attempt: shared.policy.is_last(attempt),
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
    async move {
        let outcome = match parsed {
            Ok(job) => {
                if let Some(corp) = job_corp(&job) {
                    tracing::Span::current().record("corp", corp);
                }
                run::run(job, &meta, &shared.ctx).await
            }
            Err(invalid) => {
                tracing::warn!(reason = %invalid.reason, "invalid job");
                let error = ErrorInfo::project(crate::error_code::ProjectCode::InvalidJob, crate::sdk::ErrorClass::Permanent, invalid.to_string());
                JobOutcome::Failed { outputs: Vec::new(), error }
            }
        };
        match settle(&delivery, kind, &meta, job_id, outcome, &shared).await {
            Ok(()) => {
                if let Err(err) = delivery.ack(BasicAckOptions::default()).await {
                    tracing::warn!(error = %err, "ack failed; the broker will deliver the job again");
                }
            }
            Err(err) => tracing::warn!(error = %err, "job not acknowledged; the broker will deliver it again"),
        }
    }
    .instrument(span)
    .await
}

fn job_corp(job: &parse::Job) -> Option<&str> {
    let corp = match job {
        parse::Job::Chatdata(job) => &job.corp,
        parse::Job::Media(job) => &job.corp,
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
    let reply_to = short(delivery.properties.reply_to().as_ref());
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
        publish_result(publisher, output, meta, reply_to.as_deref()).await?;
    }
    let Some(error) = error else {
        tracing::info!(results = outputs.len(), "job done");
        return Ok(());
    };
    let decision = shared
        .policy
        .decide(meta.attempt, error.class, rand::random::<f64>());
    match decision {
        Decision::Retry { tier, delay } => {
            let queue = retry_queue(shared.policy.delays[tier], kind);
            tracing::info!(
                code = error.code,
                name = error.name,
                ?delay,
                "job will be retried"
            );
            let properties = delivery
                .properties
                .clone()
                .with_headers(headers::for_retry(
                    delivery.properties.headers().as_ref(),
                    meta.attempt + 1,
                    progress,
                ))
                .with_expiration(delay.as_millis().to_string().into());
            publisher
                .publish_until_confirmed("", &queue, &delivery.data, &properties)
                .await
        }
        Decision::GiveUp => {
            tracing::warn!(code = error.code, name = error.name, message = %error.message, "job failed");
            // Its own result_id: a job replayed after a failure may still succeed, and a
            // consumer dropping duplicates must not drop that success.
            let result_id = job_id.as_ref().map(|id| format!("{id}:failed"));
            let envelope = Envelope {
                job_id: job_id.clone(),
                correlation_id: meta.correlation_id.clone(),
                result_id: result_id.clone(),
                corpid: None,
                attempts: meta.attempt,
            };
            if job_id.is_some() {
                let failure = FailureResult::new(kind, envelope, error.clone());
                let output = Output {
                    kind,
                    result_id,
                    body: serde_json::to_vec(&failure).expect("a failure serializes"),
                };
                publish_result(publisher, &output, meta, reply_to.as_deref()).await?;
            }
            let properties = delivery
                .properties
                .clone()
                .with_headers(headers::for_dead_letter(
                    delivery.properties.headers().as_ref(),
                    meta.attempt,
                    &error,
                ));
            publisher
                .publish_until_confirmed(DEAD_EXCHANGE, kind.name(), &delivery.data, &properties)
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
) -> Result<(), PublishError> {
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_app_id("wecom-archive".into())
        .with_type(output.kind.result_type().into())
        .with_headers(FieldTable::default());
    if let Some(id) = &output.result_id {
        properties = properties.with_message_id(id.as_str().into());
    }
    if let Some(id) = &meta.correlation_id {
        properties = properties.with_correlation_id(id.as_str().into());
    }
    publisher
        .publish_until_confirmed(
            RESULTS_EXCHANGE,
            result_routing_key(output.kind),
            &output.body,
            &properties,
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
