//! A delivered job on RabbitMQ: [`JobTransport`] over a lapin delivery and the worker's
//! confirming publisher.
//!
//! Every publish is confirmed by the broker before it counts, and every one gives up when the
//! broker session ends (`session`): a publish that fails on the connection itself ends the
//! session, so the worker reconnects and the broker delivers the job again.

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::BasicProperties;
use tokio_util::sync::CancellationToken;

use super::delivered::Delivered;
use super::transport::JobTransport;
use crate::broker::headers;
use crate::broker::malformed::oversized;
use crate::broker::properties::job_properties;
use crate::broker::publisher::{PublishError, Publisher};
use crate::broker::signing::HeaderKey;
use crate::broker::topology::{
    is_own_queue, result_routing_key, retry_queue, DEAD_EXCHANGE, JOBS_EXCHANGE, RESULTS_EXCHANGE,
};
use crate::error_code::ErrorInfo;
use crate::job::contract::ChatProgress;
use crate::job::sink::Output;
use crate::job::JobKind;

/// Hands a delivery back to its queue, for this or another worker to take.
pub const REQUEUE: BasicNackOptions = BasicNackOptions {
    multiple: false,
    requeue: true,
};

/// One delivered job and what it needs to settle itself on RabbitMQ.
pub struct AmqpJob {
    /// The delivery as lapin gave it: the body, and the tag to ack or nack.
    pub delivery: Delivery,
    /// The job queue it came from.
    pub kind: JobKind,
    /// Its properties and headers, read once ([`Delivered::read`]).
    pub delivered: Delivered,
    /// The worker's confirming publisher, for results, retries, continuations and dead letters.
    pub publisher: Publisher,
    /// Signs the attempt and progress of the job's retry copy and continuation.
    pub header_key: Arc<HeaderKey>,
    /// Fired when the broker session is lost or a drain runs out of time.
    pub session: CancellationToken,
}

impl AmqpJob {
    /// Publishes until confirmed; a broken connection ends the session.
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: &BasicProperties,
    ) -> Result<(), PublishError> {
        let published = self
            .publisher
            .publish_until_confirmed(exchange, routing_key, body, properties, &self.session)
            .await;
        if published.as_ref().is_err_and(PublishError::ends_session) {
            self.session.cancel();
        }
        published
    }

    /// The job itself again, with `headers`.
    async fn republish(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: FieldTable,
    ) -> Result<(), PublishError> {
        let properties = job_properties(&self.delivery.properties, self.traced(headers));
        self.publish(exchange, routing_key, &self.delivery.data, &properties)
            .await
    }

    /// A result to the caller's `queue`, confirmed; a stopping worker does not wait for it.
    async fn copy_to(
        &self,
        queue: &str,
        body: &[u8],
        properties: &BasicProperties,
    ) -> Result<(), PublishError> {
        let copy = self.publisher.publish("", queue, body, properties.clone());
        tokio::select! {
            copied = copy => copied,
            _ = self.session.cancelled() => Err(PublishError::Stopped),
        }
    }

    /// `headers` with the job's `traceparent`.
    fn traced(&self, mut headers: FieldTable) -> FieldTable {
        headers::set_traceparent(&mut headers, &self.delivered.trace);
        headers
    }

    /// The publisher's headers to keep on what the worker republishes: none of a malformed
    /// message (they are not what was sent) or of an oversized table.
    fn headers(&self) -> Option<&FieldTable> {
        self.delivery
            .properties
            .headers()
            .as_ref()
            .filter(|table| self.delivered.malformed.is_none() && !oversized(table))
    }
}

impl JobTransport for AmqpJob {
    fn body(&self) -> &[u8] {
        &self.delivery.data
    }

    fn kind(&self) -> JobKind {
        self.kind
    }

    fn delivered(&self) -> &Delivered {
        &self.delivered
    }

    async fn publish_result(&self, output: &Output) -> Result<(), PublishError> {
        let mut properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_app_id("wecom-archive".into())
            .with_type(output.kind.result_type().into())
            .with_headers(self.traced(FieldTable::default()));
        if let Some(id) = output.result_id.as_deref().and_then(short_string) {
            properties = properties.with_message_id(id);
        }
        if let Some(id) = self
            .delivered
            .correlation_id
            .as_deref()
            .and_then(short_string)
        {
            properties = properties.with_correlation_id(id);
        }
        let reply_to = self
            .delivered
            .reply_to
            .as_deref()
            .filter(|queue| !is_own_queue(queue));
        if let (Some(queue), true) = (reply_to, self.delivered.reply_to_only) {
            match self.copy_to(queue, &output.body, &properties).await {
                Ok(()) => return Ok(()),
                // Its queue is gone, the caller stopped waiting: the result goes to the result
                // queue like any other, so that it is never dropped.
                Err(PublishError::Returned { .. }) => {}
                // The only copy: a failure releases the job, as an unpublished result does.
                Err(err) => {
                    if err.ends_session() {
                        self.session.cancel();
                    }
                    return Err(err);
                }
            }
        }
        self.publish(
            RESULTS_EXCHANGE,
            result_routing_key(output.kind),
            &output.body,
            &properties,
        )
        .await?;
        if let (Some(queue), false) = (reply_to, self.delivered.reply_to_only) {
            // An extra copy for a caller waiting on its own queue: the result is safe in the
            // result queue, so a failure here is logged, not retried.
            if let Err(err) = self.copy_to(queue, &output.body, &properties).await {
                tracing::warn!(error = %err, reply_to = queue, "reply_to copy not delivered");
            }
        }
        Ok(())
    }

    async fn publish_continuation(&self, progress: ChatProgress) -> Result<(), PublishError> {
        let signer = self.header_key.for_job(self.kind, &self.delivery.data);
        let headers = headers::for_continuation(self.headers(), progress, &signer);
        self.republish(JOBS_EXCHANGE, self.kind.name(), headers)
            .await
    }

    async fn publish_retry(
        &self,
        delay: Duration,
        attempt: u32,
        progress: Option<ChatProgress>,
    ) -> Result<(), PublishError> {
        let signer = self.header_key.for_job(self.kind, &self.delivery.data);
        let headers = headers::for_retry(self.headers(), attempt, progress, &signer);
        self.republish("", &retry_queue(delay, self.kind), headers)
            .await
    }

    async fn publish_dead_letter(
        &self,
        attempts: u32,
        error: &ErrorInfo,
    ) -> Result<(), PublishError> {
        let signer = self.header_key.for_job(self.kind, &self.delivery.data);
        let progress = self.delivered.progress;
        let headers = headers::for_dead_letter(self.headers(), attempts, error, progress, &signer);
        self.republish(DEAD_EXCHANGE, self.kind.name(), headers)
            .await
    }

    async fn ack(&self) {
        if let Err(err) = self.delivery.ack(BasicAckOptions::default()).await {
            tracing::warn!(error = %err, "ack failed; the broker will deliver the job again");
        }
    }

    async fn release(&self) {
        if let Err(err) = self.delivery.nack(REQUEUE).await {
            tracing::warn!(error = %err, "nack failed; the broker redelivers the job when the channel closes");
        }
    }
}

/// A short-string property, or none when the value does not fit AMQP's 255 bytes.
fn short_string(value: &str) -> Option<ShortString> {
    ShortString::try_new(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_too_long_for_amqp_are_left_out_rather_than_panicking() {
        assert!(short_string(&"x".repeat(255)).is_some());
        assert!(short_string(&"界".repeat(100)).is_none());
    }
}
