//! What the worker reads from a delivery besides its body, read once: the ids a result
//! echoes, where an extra copy of the results goes, and the project's and the broker's headers.

use lapin::message::Delivery;
use lapin::types::ShortString;

use super::headers;
use crate::job::contract::ChatProgress;

#[derive(Debug, Clone)]
pub struct Delivered {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    /// A queue the job asked its results to be copied to.
    pub reply_to: Option<String>,
    /// 1-based, from `x-wecom-attempt`.
    pub attempt: u32,
    /// Earlier deliveries of this message that ended unsettled (`x-delivery-count`).
    pub delivery_count: u32,
    /// Where an earlier delivery of a multi-page chat job left off (`x-wecom-progress`).
    pub progress: Option<ChatProgress>,
    /// Whether the broker delivered it before (to this or another consumer).
    pub redelivered: bool,
}

impl Delivered {
    pub fn read(delivery: &Delivery) -> Self {
        let properties = &delivery.properties;
        let table = properties.headers().as_ref();
        Self {
            message_id: text(properties.message_id().as_ref()),
            correlation_id: text(properties.correlation_id().as_ref()),
            reply_to: text(properties.reply_to().as_ref()),
            attempt: headers::attempt(table),
            delivery_count: headers::delivery_count(table),
            progress: headers::progress(table),
            redelivered: delivery.redelivered,
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
