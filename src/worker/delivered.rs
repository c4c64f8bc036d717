//! What the worker reads from a delivery besides its body, read once: the ids a result
//! echoes, where an extra copy of the results goes, and the project's and the broker's headers,
//! each as far as it can be trusted: the project's only when signed by a worker of this
//! deployment ([`crate::broker::signing`]), the broker's delivery count only on a redelivery (on a first
//! delivery the header, if any, is the publisher's).

use lapin::message::Delivery;
use lapin::types::ShortString;

use crate::broker::headers;
use crate::broker::malformed::malformed;
use crate::broker::signing::HeaderKey;
use crate::job::contract::ChatProgress;
use crate::job::parse::MAX_JOB_BYTES;
use crate::job::JobKind;
use crate::telemetry::TraceContext;

/// A delivery's AMQP properties and headers, read once and checked (see the module docs).
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The AMQP `message_id`; it stands in for a job that names no `job_id` when it would pass
    /// as one.
    pub message_id: Option<String>,
    /// The AMQP `correlation_id`, echoed in the job's results.
    pub correlation_id: Option<String>,
    /// A queue the job asked its results to be copied to.
    pub reply_to: Option<String>,
    /// Whether the results go to `reply_to` only (`x-wecom-reply-to-only`).
    pub reply_to_only: bool,
    /// 1-based, from `x-wecom-attempt`.
    pub attempt: u32,
    /// Earlier deliveries of this message that ended unsettled (`x-delivery-count`).
    pub delivery_count: u32,
    /// Where an earlier delivery of a multi-page chat job left off (`x-wecom-progress`).
    pub progress: Option<ChatProgress>,
    /// Whether the broker delivered it before (to this or another consumer).
    pub redelivered: bool,
    /// A project header that is present but not signed for this job by this deployment (its
    /// name): the job is refused rather than steered by it.
    pub untrusted: Option<&'static str>,
    /// What the AMQP parser had to repair in the message's properties ([`crate::broker::malformed`]).
    pub malformed: Option<String>,
    /// When its publisher says it was published (the AMQP `timestamp`, seconds), if it does.
    pub published_at: Option<u64>,
    /// The trace its `traceparent` names, or a new one.
    pub trace: TraceContext,
}

impl Delivered {
    /// Reads `delivery` as a job of `kind`; the attempt and progress headers count only when
    /// signed with `key` for this job (else [`Delivered::untrusted`] names the header).
    pub fn read(delivery: &Delivery, kind: JobKind, key: &HeaderKey) -> Self {
        let properties = &delivery.properties;
        let table = properties.headers().as_ref();
        // The body is hashed only when a signature is to be checked, and not when it is too
        // large to be a job (it fails as one whatever its headers say).
        let signed = [headers::ATTEMPT, headers::PROGRESS]
            .iter()
            .any(|name| headers::get(table, name).is_some());
        let (attempt, progress) = if signed && delivery.data.len() <= MAX_JOB_BYTES {
            let signer = key.for_job(kind, &delivery.data);
            (
                headers::signed_attempt(table, &signer),
                headers::signed_progress(table, &signer),
            )
        } else {
            (Ok(1), Ok(None))
        };
        Self {
            message_id: text(properties.message_id().as_ref()),
            correlation_id: text(properties.correlation_id().as_ref()),
            reply_to: text(properties.reply_to().as_ref()),
            reply_to_only: headers::reply_to_only(table),
            untrusted: attempt.err().or(progress.err()),
            attempt: attempt.unwrap_or(1),
            progress: progress.ok().flatten(),
            delivery_count: if delivery.redelivered {
                headers::delivery_count(table)
            } else {
                0
            },
            redelivered: delivery.redelivered,
            malformed: malformed(properties),
            published_at: *properties.timestamp(),
            trace: headers::trace_context(table),
        }
    }

    /// Whether the broker counts this delivery as the job's last one under `limit`: the job is
    /// then failed with 20305, not run.
    pub fn is_last(&self, limit: u32) -> bool {
        self.delivery_count >= limit
    }
}

/// A non-empty property value, as text.
fn text(value: Option<&ShortString>) -> Option<String> {
    value
        .map(|s| s.as_str().to_owned())
        .filter(|s| !s.is_empty())
}
