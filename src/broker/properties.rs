//! The AMQP properties a job carries when it is published again: a continuation, a retry
//! copy, a dead letter, a replay.

use lapin::types::{FieldTable, ShortString};
use lapin::BasicProperties;

use super::malformed::repaired;

/// The properties a job keeps when it is republished (continuation, retry copy, dead letter,
/// replay): its ids, reply address and headers. Not its `expiration` (a dead letter must not
/// expire) nor its `user_id` (which the broker checks against the publishing connection's user),
/// nor a value the AMQP parser had to repair (it is not what was sent).
pub fn job_properties(original: &BasicProperties, headers: FieldTable) -> BasicProperties {
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers);
    let sent = |value: &Option<ShortString>| value.clone().filter(|v| !repaired(v));
    if let Some(v) = sent(original.content_type()) {
        properties = properties.with_content_type(v);
    }
    if let Some(v) = sent(original.message_id()) {
        properties = properties.with_message_id(v);
    }
    if let Some(v) = sent(original.correlation_id()) {
        properties = properties.with_correlation_id(v);
    }
    if let Some(v) = sent(original.reply_to()) {
        properties = properties.with_reply_to(v);
    }
    if let Some(v) = original.timestamp() {
        properties = properties.with_timestamp(*v);
    }
    properties
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
}
