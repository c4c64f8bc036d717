//! Dead letters, for operators: list them, show one, replay them as new jobs, or purge them.
//!
//! A dead letter is the job as it was published, with headers saying why it died
//! ([`crate::broker::headers`]). Dead letters are read with `basic.get` and held unacked while
//! the command runs; what a command does not consume it gives back, in order, and waits until
//! the queue counts them again, so a `list` followed at once by a `replay` sees them all.
//! Replay republishes to the jobs exchange with the attempts reset, waits for the broker's
//! confirm, and only then acks the dead copy: a replay never loses a job.

use std::time::{Duration, Instant};

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::{BasicProperties, Channel};

use serde::Serialize;
use serde_json::Value;

use crate::broker::headers;
use crate::broker::properties::job_properties;
use crate::broker::topology::{dead_queue, JOBS_EXCHANGE};
use crate::broker::{PublishError, Publisher};
use crate::job::JobKind;

/// Which dead letters a command acts on.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only those that died with this error code.
    pub code: Option<i64>,
    /// Only the one with this job id (a dead letter's place changes as others are replayed;
    /// its job id does not).
    pub job_id: Option<String>,
    /// At most this many (after the other filters).
    pub count: Option<usize>,
}

/// One dead letter as an operator sees it. Credentials in the body are redacted.
#[derive(Debug, Serialize)]
pub struct DeadLetter {
    /// 1-based place in the dead-letter queue, as read.
    pub position: usize,
    /// The body's `job_id`, if it has one.
    pub job_id: Option<String>,
    /// The AMQP `message_id` of the dead job.
    pub message_id: Option<String>,
    /// The code of the error it died with (the `x-wecom-error-code` header).
    pub error_code: Option<i64>,
    /// That code's snake_case name (`x-wecom-error-name`).
    pub error_name: Option<String>,
    /// The error's message (`x-wecom-error-message`).
    pub error_message: Option<String>,
    /// The attempt it died on, as its header says, signed or not (1 when absent).
    pub attempts: u32,
    /// The job body, every field but a few known-safe ones `<redacted>`; a body that is not a
    /// JSON object is shown as its length.
    pub body: Value,
}

/// Fields of a job body shown as they are; every other field may hold a secret (a misspelt
/// `secret`, credentials in a proxy URL) and is redacted.
const SHOWN_FIELDS: [&str; 14] = [
    "job_id",
    "type",
    "corp",
    "corpid",
    "seq",
    "limit",
    "max_pages",
    "timeout",
    "sdkfileid",
    "md5sum",
    "filesize",
    "msgid",
    "msgtype",
    "inline",
];

fn redacted_body(data: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(mut object)) => {
            for (field, value) in &mut object {
                if !SHOWN_FIELDS.contains(&field.as_str()) {
                    *value = Value::String("<redacted>".into());
                }
            }
            Value::Object(object)
        }
        // Not an object: nothing in it is known to be safe to show.
        Ok(_) => Value::String(format!("<{} bytes of JSON, not an object>", data.len())),
        // Not JSON: shown as a length only, since it may hold anything.
        Err(_) => Value::String(format!("<{} bytes, not JSON>", data.len())),
    }
}

struct Fetched {
    letter: DeadLetter,
    delivery_tag: u64,
    data: Vec<u8>,
    properties: BasicProperties,
}

/// Reads every dead letter of `kind`, holding them unacked on `channel`.
async fn fetch_all(channel: &Channel, kind: JobKind) -> lapin::Result<Vec<Fetched>> {
    let queue = dead_queue(kind);
    let mut all = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.as_str().into(), BasicGetOptions::default())
        .await?
    {
        let delivery = message.delivery;
        let props = &delivery.properties;
        let hdrs = props.headers().as_ref();
        let body = redacted_body(&delivery.data);
        let letter = DeadLetter {
            position: all.len() + 1,
            job_id: body
                .get("job_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            message_id: props.message_id().as_ref().map(|s| s.as_str().to_owned()),
            error_code: headers::error_code(hdrs),
            error_name: headers::error_text(hdrs, headers::ERROR_NAME),
            error_message: headers::error_text(hdrs, headers::ERROR_MESSAGE),
            attempts: headers::attempt(hdrs),
            body,
        };
        all.push(Fetched {
            letter,
            delivery_tag: delivery.delivery_tag,
            properties: delivery.properties.clone(),
            data: delivery.data,
        });
    }
    Ok(all)
}

/// How long [`give_back`] waits for the queue to show the returned dead letters again.
const GIVE_BACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Returns every dead letter still held on `channel` to its queue and waits (up to
/// [`GIVE_BACK_TIMEOUT`], then warns) until the queue counts them again. A requeue is
/// asynchronous in the broker (a quorum queue applies it through its log), and a command that
/// returned before it landed would let the next command, or an operator's depth check, miss
/// those letters. On an error path the letters go back when the channel closes, unwaited.
async fn give_back(channel: &Channel, kind: JobKind, held: usize) -> lapin::Result<()> {
    if held == 0 {
        return Ok(());
    }
    let queue = dead_queue(kind);
    // Held letters are not in the count: once back, it is at least this plus them (dead
    // queues have no consumers, so the count only grows meanwhile).
    let expected = ready_count(channel, &queue).await? as usize + held;
    // Tag 0 with `multiple` covers every unacked delivery on the channel.
    channel
        .basic_nack(
            0,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await?;
    let deadline = Instant::now() + GIVE_BACK_TIMEOUT;
    loop {
        let count = ready_count(channel, &queue).await? as usize;
        if count >= expected {
            return Ok(());
        }
        if Instant::now() >= deadline {
            tracing::warn!(queue = %queue, held, count, expected, "returned dead letters not yet counted");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The messages `queue` holds ready for delivery (not those held unacked).
async fn ready_count(channel: &Channel, queue: &str) -> lapin::Result<u32> {
    let queue = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await?;
    Ok(queue.message_count())
}

fn select(all: Vec<Fetched>, filter: &Filter) -> Vec<Fetched> {
    all.into_iter()
        .filter(|f| {
            let code = filter.code;
            let job_id = filter.job_id.as_deref();
            code.is_none_or(|code| f.letter.error_code == Some(code))
                && job_id.is_none_or(|id| f.letter.job_id.as_deref() == Some(id))
        })
        .take(filter.count.unwrap_or(usize::MAX))
        .collect()
}

/// The dead letters of `kind` that match `filter`; the queue is left as it was.
pub async fn list(
    channel: &Channel,
    kind: JobKind,
    filter: &Filter,
) -> lapin::Result<Vec<DeadLetter>> {
    let all = fetch_all(channel, kind).await?;
    let held = all.len();
    let selected = select(all, filter);
    give_back(channel, kind, held).await?;
    Ok(selected.into_iter().map(|f| f.letter).collect())
}

/// Why a replay stopped; the dead letters not yet replayed stay in (or go back to) their
/// queue.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading, acking or giving back dead letters failed.
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    /// A dead letter could not be republished (returned, nacked, or the connection failed);
    /// it is kept.
    #[error("republishing failed, the dead letter is kept: {0}")]
    Publish(#[from] PublishError),
}

/// Republishes the matching dead letters as fresh jobs (attempts reset), each confirmed
/// before its dead copy is acked. With `dry_run`, only says which.
pub async fn replay(
    channel: &Channel,
    publisher: &Publisher,
    kind: JobKind,
    filter: &Filter,
    dry_run: bool,
) -> Result<Vec<DeadLetter>, ReplayError> {
    let all = fetch_all(channel, kind).await?;
    let mut held = all.len();
    let selected = select(all, filter);
    let mut done = Vec::new();
    for fetched in selected {
        if !dry_run {
            let headers = headers::for_replay(fetched.properties.headers().as_ref());
            let properties = job_properties(&fetched.properties, headers);
            publisher
                .publish(JOBS_EXCHANGE, kind.name(), &fetched.data, properties)
                .await?;
            channel
                .basic_ack(fetched.delivery_tag, BasicAckOptions::default())
                .await?;
            held -= 1;
        }
        done.push(fetched.letter);
    }
    give_back(channel, kind, held).await?;
    Ok(done)
}

/// Deletes the matching dead letters. With `dry_run`, only says which.
pub async fn purge(
    channel: &Channel,
    kind: JobKind,
    filter: &Filter,
    dry_run: bool,
) -> lapin::Result<Vec<DeadLetter>> {
    let all = fetch_all(channel, kind).await?;
    let mut held = all.len();
    let selected = select(all, filter);
    let mut done = Vec::new();
    for fetched in selected {
        if !dry_run {
            channel
                .basic_ack(fetched.delivery_tag, BasicAckOptions::default())
                .await?;
            held -= 1;
        }
        done.push(fetched.letter);
    }
    give_back(channel, kind, held).await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_dead_job_are_redacted() {
        let body = br#"{"job_id":"j","corpid":"ww","secret":"s3cret","private_keys":[{"publickey_ver":1,"private_key":"PEM"}],"paswd":"u:p","Secret":"typo-s3cret","proxy":"http://u:pw@h:1"}"#;
        let shown = redacted_body(body).to_string();
        for secret in ["s3cret", "PEM", "u:p", "typo-s3cret", "u:pw"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("\"job_id\":\"j\""));
        assert_eq!(
            redacted_body(b"\xff\x00"),
            Value::String("<2 bytes, not JSON>".into())
        );
    }
}
