//! What happens to one delivered job: parse it, run it with the job core (each output published
//! as it comes), let [`fate::decide`] say what comes next, carry that out, and only then settle
//! the delivery.
//!
//! Order matters for "nothing is lost": results, continuations, retry copies, failures and dead
//! letters are each confirmed by the broker before the job is acked. If any of them cannot be
//! published, or the run was cancelled, the job is released for the broker to deliver again.
//!
//! A multi-page chat job runs a few pages per delivery (`WECOM_CHAT_PAGES_PER_DELIVERY`), its
//! calls for the next pages out while a page is decrypted and published; after the last of
//! them, the page's result and the job's continuation (the same job, with the next `seq` and
//! the pages done in a header) are both confirmed before the delivery is acked. A worker killed
//! during a delivery costs that delivery's pages, not the job's; the job's memory is a few
//! pages; and the continuation queues behind the jobs already waiting, so one long catch-up
//! cannot hold a worker's slot for hours.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::delivered::Delivered;
use super::transport::JobTransport;
use crate::broker::publisher::PublishError;
use crate::broker::topology::is_own_queue;
use crate::job::contract::ChatProgress;
use crate::job::error::JobError;
use crate::job::fate::{self, Fate, Stop};
use crate::job::parse::{is_valid_job_id, InvalidJob};
use crate::job::sink::{Flow, Output, OutputSink, SinkError};
use crate::job::{parse, Core, Job, JobKind, JobMeta};
use crate::media::MediaStore;

/// How much one delivery may do.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRules {
    /// The job queues' `x-delivery-limit`: the delivery the broker counts as the last one is
    /// not run but failed, so that a job which keeps killing its workers still gets a failure
    /// result and a dead letter that says why, instead of vanishing into the dead-letter queue
    /// without either.
    pub delivery_limit: u32,
    /// Pages of a chat job run before its continuation is published.
    pub pages_per_delivery: u32,
}

/// Handles one delivered job to the end: settled, or released for redelivery. `cancel` stops
/// the run at its next page or chunk.
pub async fn handle<S, T>(
    core: &Arc<Core<S>>,
    transport: T,
    rules: DeliveryRules,
    cancel: CancellationToken,
) where
    S: MediaStore + Send + Sync + 'static,
    S::Partial: Send + 'static,
    T: JobTransport,
{
    let (kind, delivered) = (transport.kind(), transport.delivered());
    let parsed = parse(kind, transport.body());
    let job_id = match &parsed {
        Ok(job) => job.job_id(),
        Err(invalid) => invalid.job_id.as_deref(),
    }
    .map(str::to_owned)
    // A message id serves as the job id only when it would pass as one: it is echoed in results.
    .or_else(|| {
        delivered
            .message_id
            .clone()
            .filter(|id| is_valid_job_id(id))
    });
    let meta = JobMeta {
        job_id,
        correlation_id: delivered.correlation_id.clone(),
        attempt: delivered.attempt,
        progress: delivered.progress,
    };
    let span = tracing::info_span!(
        "job",
        kind = kind.name(),
        job_id = meta.job_id.as_deref().unwrap_or("-"),
        attempt = meta.attempt,
        corp = tracing::field::Empty,
        trace_id = %delivered.trace.trace_id,
    );
    let metrics = core.metrics();
    if let Some(queued) = delivered.published_at.and_then(since_epoch_secs) {
        metrics.job_queued(kind, queued);
    }
    let started = Instant::now();
    metrics.jobs_in_flight(1);
    let work = async {
        let ended = match parsed.map_err(JobError::from).and_then(|job| {
            match refusal(delivered, kind, &meta, rules.delivery_limit) {
                Some(refused) => Err(refused),
                None => Ok(job),
            }
        }) {
            Err(error) => {
                tracing::warn!(%error, "job refused unrun");
                Err(Stop::failed(error))
            }
            Ok(job) => {
                if let Some(corp) = job_corp(&job) {
                    tracing::Span::current().record("corp", corp);
                }
                let mut sink = PublishingSink {
                    transport: &transport,
                    pages_per_delivery: rules.pages_per_delivery,
                    pages: 0,
                };
                core.run(job, &meta, &mut sink, &cancel).await
            }
        };
        let fate = fate::decide(ended, meta.attempt, core.policy(), rand::random::<f64>());
        metrics.job_fate(kind, &fate, started.elapsed());
        carry_out(fate, &transport, &meta, kind).await
    };
    // A panic is a bug, but it must not hold the delivery until the channel closes.
    let settled = AssertUnwindSafe(work.instrument(span.clone()))
        .catch_unwind()
        .await;
    // The span goes with the future (`instrument`), never entered across an await: a task may
    // move between threads, and an entered span would then corrupt the subscriber's span stack.
    async {
        match settled {
            Ok(Ok(Settle::Ack)) => return transport.ack().await,
            Ok(Ok(Settle::Release)) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "job not settled; released for redelivery");
            }
            Err(_) => tracing::error!("job handling panicked; released for redelivery"),
        }
        transport.release().await;
    }
    .instrument(span)
    .await;
    metrics.jobs_in_flight(-1);
}

/// The time since `published` (seconds since the epoch), if that is in the past.
fn since_epoch_secs(published: u64) -> Option<Duration> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    now.checked_sub(Duration::from_secs(published))
}

/// Why a parsed job is not run, in order: its properties are not what was sent (nothing else
/// of them can be trusted), a worker header no worker signed, a `reply_to` that would loop, the
/// broker's last delivery of a job that keeps dying.
fn refusal(
    delivered: &Delivered,
    kind: JobKind,
    meta: &JobMeta,
    delivery_limit: u32,
) -> Option<JobError> {
    if let Some(what) = &delivered.malformed {
        return Some(JobError::MalformedMessage { what: what.clone() });
    }
    if let Some(header) = delivered.untrusted {
        return Some(JobError::UntrustedHeader { header });
    }
    if delivered.reply_to.as_deref().is_some_and(is_own_queue) {
        return Some(JobError::Invalid(InvalidJob {
            kind,
            job_id: meta.job_id.clone(),
            reason: "reply_to names one of the worker's own queues".to_owned(),
        }));
    }
    if delivered.is_last(delivery_limit) {
        return Some(JobError::DeliveryLimitReached {
            deliveries: delivered.delivery_count + 1,
        });
    }
    None
}

/// How a delivery is settled once its fate is carried out.
enum Settle {
    Ack,
    Release,
}

/// Publishes what `fate` calls for, each confirmed.
async fn carry_out<T: JobTransport>(
    fate: Fate,
    transport: &T,
    meta: &JobMeta,
    kind: JobKind,
) -> Result<Settle, PublishError> {
    match fate {
        Fate::Done => {
            tracing::info!("job done");
            Ok(Settle::Ack)
        }
        Fate::Retry {
            error,
            delay,
            progress,
        } => {
            let info = error.info();
            // A first transient error is routine; one that comes back is for an operator,
            // with what to check (a wrong secret shows as 10001 on every attempt).
            if meta.attempt > 1 {
                tracing::warn!(code = info.code, name = info.name, reason = %info.message,
                    attempt = meta.attempt, ?delay, "job failed again; it will be retried");
            } else {
                tracing::info!(code = info.code, name = info.name, reason = %info.message,
                    ?delay, "job will be retried");
            }
            transport
                .publish_retry(delay, meta.attempt + 1, progress)
                .await?;
            Ok(Settle::Ack)
        }
        Fate::Fail { error } => {
            let info = error.info();
            tracing::warn!(code = info.code, name = info.name, reason = %info.message, "job failed");
            if let Some(failure) = meta.failure_output(kind, &error) {
                transport.publish_result(&failure).await?;
            }
            transport.publish_dead_letter(meta.attempt, &info).await?;
            Ok(Settle::Ack)
        }
        Fate::Release { unpublished } => {
            match unpublished {
                Some(err) => tracing::warn!(error = %err, "an output was not published"),
                None => tracing::info!("job cancelled"),
            }
            Ok(Settle::Release)
        }
    }
}

/// The sink a worker hands the core: each output is published and confirmed, and where a chat
/// job has pages left after this delivery's share, its continuation is too, which takes the
/// rest of the job over.
struct PublishingSink<'a, T> {
    transport: &'a T,
    pages_per_delivery: u32,
    /// Pages published by this delivery.
    pages: u32,
}

impl<T: JobTransport> OutputSink for PublishingSink<'_, T> {
    fn pages_before_handoff(&self) -> Option<u32> {
        Some(self.pages_per_delivery)
    }

    async fn emit(
        &mut self,
        output: Output,
        next: Option<ChatProgress>,
    ) -> Result<Flow, SinkError> {
        let unpublished = |err: PublishError| match err {
            PublishError::Stopped => SinkError::Stopped,
            other => SinkError::Refused(Box::new(other)),
        };
        self.transport
            .publish_result(&output)
            .await
            .map_err(unpublished)?;
        self.pages += 1;
        let Some(progress) = next.filter(|_| self.pages >= self.pages_per_delivery) else {
            return Ok(Flow::Continue);
        };
        self.transport
            .publish_continuation(progress)
            .await
            .map_err(unpublished)?;
        tracing::info!(
            seq = progress.seq,
            pages_done = progress.pages_done,
            "page published; the job continues from a new delivery"
        );
        Ok(Flow::HandedOff)
    }
}

fn job_corp(job: &Job) -> Option<&str> {
    let corp = match job {
        Job::Chatdata(job) => &job.corp,
        Job::Media(job) => &job.corp,
    };
    corp.corp.as_deref().or(corp.corpid.as_deref())
}
