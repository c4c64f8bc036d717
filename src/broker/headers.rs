//! The project's own AMQP headers: attempt count, chat progress, and why a job was
//! dead-lettered. Attempts are counted here rather than read from `x-death`, whose shape
//! differs between RabbitMQ versions and which replay must be able to reset. The attempt and
//! the progress steer a job, so they are signed ([`super::signing`]) and read only when the
//! signature holds.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use super::signing::JobSigner;
use crate::error_code::ErrorInfo;
use crate::job::contract::ChatProgress;
use crate::telemetry::trace_context::{TraceContext, TRACEPARENT};

/// Which attempt a delivery is (1 when absent).
pub const ATTEMPT: &str = "x-wecom-attempt";
/// The signature of [`ATTEMPT`].
pub const ATTEMPT_MAC: &str = "x-wecom-attempt-mac";
/// JSON `{"seq", "pages_done"}`: where a multi-page chat job goes on (its continuation, its
/// retry copy, or a replay of either).
pub const PROGRESS: &str = "x-wecom-progress";
/// The signature of [`PROGRESS`].
pub const PROGRESS_MAC: &str = "x-wecom-progress-mac";
/// On a dead letter: the numeric code of the failure that killed the job.
pub const ERROR_CODE: &str = "x-wecom-error-code";
/// On a dead letter: the failure's stable snake_case name.
pub const ERROR_NAME: &str = "x-wecom-error-name";
/// On a dead letter: the failure's message, for people.
pub const ERROR_MESSAGE: &str = "x-wecom-error-message";
/// `true` on a job whose caller waits for its results on its `reply_to` queue and wants them
/// nowhere else (the HTTP gateway's jobs): no copy in the result queues, which nobody would
/// consume, unless that queue is gone (then they go there, never nowhere). A replay removes
/// it, so that a replayed job's results reach the result queues.
pub const REPLY_TO_ONLY: &str = "x-wecom-reply-to-only";
/// Set by a quorum queue on a redelivery: how many deliveries of the job ended unsettled
/// (RabbitMQ 3.x; 4.x counts differently, see docs/clusters.md).
pub const DELIVERY_COUNT: &str = "x-delivery-count";
/// RabbitMQ 4.x's count of deliveries.
const ACQUIRED_COUNT: &str = "x-acquired-count";

/// Headers the broker or we add while a job travels, which a replay removes. Not the progress:
/// a chat job replayed goes on from the page it died at, its earlier pages are published.
const TRAVEL: [&str; 15] = [
    ATTEMPT,
    REPLY_TO_ONLY,
    ATTEMPT_MAC,
    ERROR_CODE,
    ERROR_NAME,
    ERROR_MESSAGE,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    DELIVERY_COUNT,
    ACQUIRED_COUNT,
];

/// The raw value of header `key`, if the message has headers and that one among them.
pub fn get<'a>(headers: Option<&'a FieldTable>, key: &str) -> Option<&'a AMQPValue> {
    headers?.inner().get(key)
}

fn as_i64(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some((*v).into()),
        AMQPValue::LongUInt(v) => Some((*v).into()),
        AMQPValue::ShortInt(v) => Some((*v).into()),
        AMQPValue::ShortUInt(v) => Some((*v).into()),
        AMQPValue::ShortShortInt(v) => Some((*v).into()),
        AMQPValue::ShortShortUInt(v) => Some((*v).into()),
        _ => None,
    }
}

fn as_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Whether the job asks for its results on its `reply_to` queue only: `true`, nothing else.
pub fn reply_to_only(headers: Option<&FieldTable>) -> bool {
    matches!(get(headers, REPLY_TO_ONLY), Some(AMQPValue::Boolean(true)))
}

/// The attempt number as written, signed or not: for showing dead letters, never for
/// deciding (1 when absent).
pub fn attempt(headers: Option<&FieldTable>) -> u32 {
    get(headers, ATTEMPT)
        .and_then(as_i64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// Which attempt a delivery is: 1 when the header is absent, its value when a worker of this
/// deployment signed it for this job, else `Err` with the header's name.
pub fn signed_attempt(
    headers: Option<&FieldTable>,
    signer: &JobSigner<'_>,
) -> Result<u32, &'static str> {
    let Some(value) = get(headers, ATTEMPT) else {
        return Ok(1);
    };
    let attempt = as_i64(value)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .ok_or(ATTEMPT)?;
    match get(headers, ATTEMPT_MAC).and_then(as_text) {
        Some(mac) if signer.verify(ATTEMPT, &attempt.to_string(), &mac) => Ok(attempt),
        None if signer.key.accept_unsigned => Ok(attempt),
        _ => Err(ATTEMPT),
    }
}

/// How many earlier deliveries of this job ended unsettled (0 when absent).
pub fn delivery_count(headers: Option<&FieldTable>) -> u32 {
    get(headers, DELIVERY_COUNT)
        .and_then(as_i64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// Where a chat job goes on: none when the header is absent, the progress when a worker of
/// this deployment signed it for this job, else `Err` with the header's name.
pub fn signed_progress(
    headers: Option<&FieldTable>,
    signer: &JobSigner<'_>,
) -> Result<Option<ChatProgress>, &'static str> {
    let Some(value) = get(headers, PROGRESS) else {
        return Ok(None);
    };
    let text = as_text(value).ok_or(PROGRESS)?;
    match get(headers, PROGRESS_MAC).and_then(as_text) {
        Some(mac) if signer.verify(PROGRESS, &text, &mac) => {}
        None if signer.key.accept_unsigned => {}
        _ => return Err(PROGRESS),
    }
    serde_json::from_str(&text).map(Some).map_err(|_| PROGRESS)
}

/// A dead letter's [`ERROR_CODE`], if present and an integer.
pub fn error_code(headers: Option<&FieldTable>) -> Option<i64> {
    get(headers, ERROR_CODE).and_then(as_i64)
}

/// The text of header `key` ([`ERROR_NAME`], [`ERROR_MESSAGE`]), if present and a string.
pub fn error_text(headers: Option<&FieldTable>, key: &str) -> Option<String> {
    get(headers, key).and_then(as_text)
}

/// The job's trace context: the trace its `traceparent` names, or a new one.
pub fn trace_context(headers: Option<&FieldTable>) -> TraceContext {
    let given = get(headers, TRACEPARENT).and_then(as_text);
    TraceContext::continue_or_start(given.as_deref())
}

/// Sets the `traceparent` of what a job publishes: its trace, its span as the parent.
pub fn set_traceparent(table: &mut FieldTable, trace: &TraceContext) {
    set(table, TRACEPARENT, long_string(&trace.header()));
}

fn set(table: &mut FieldTable, key: &str, value: AMQPValue) {
    table.insert(ShortString::from(key), value);
}

/// `table` without `keys` (FieldTable has no remove).
fn without(table: Option<&FieldTable>, keys: &[&str]) -> FieldTable {
    let mut kept = FieldTable::default();
    for (key, value) in table.map(FieldTable::inner).into_iter().flatten() {
        if !keys.contains(&key.as_str()) {
            kept.insert(key.clone(), value.clone());
        }
    }
    kept
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

/// Sets the attempt and its signature.
fn set_attempt(table: &mut FieldTable, attempt: u32, signer: &JobSigner<'_>) {
    set(table, ATTEMPT, AMQPValue::LongLongInt(attempt.into()));
    let mac = signer.sign(ATTEMPT, &attempt.to_string());
    set(table, ATTEMPT_MAC, long_string(&mac));
}

/// Sets the progress and its signature.
fn set_progress(table: &mut FieldTable, progress: ChatProgress, signer: &JobSigner<'_>) {
    let text = serde_json::to_string(&progress).expect("progress serializes");
    set(table, PROGRESS, long_string(&text));
    set(
        table,
        PROGRESS_MAC,
        long_string(&signer.sign(PROGRESS, &text)),
    );
}

/// The headers of the retry copy: attempt + 1, and the progress made, both signed.
pub fn for_retry(
    original: Option<&FieldTable>,
    next_attempt: u32,
    progress: Option<ChatProgress>,
    signer: &JobSigner<'_>,
) -> FieldTable {
    // The retry copy is a new message: the broker's delivery counts of this one do not apply.
    let mut table = without(
        original,
        &[PROGRESS, PROGRESS_MAC, DELIVERY_COUNT, ACQUIRED_COUNT],
    );
    set_attempt(&mut table, next_attempt, signer);
    if let Some(progress) = progress {
        set_progress(&mut table, progress, signer);
    }
    table
}

/// The headers of a chat job's continuation: where to go on (signed), and a first attempt
/// (attempts count per page: the pages before it succeeded).
pub fn for_continuation(
    original: Option<&FieldTable>,
    progress: ChatProgress,
    signer: &JobSigner<'_>,
) -> FieldTable {
    let mut table = without(
        original,
        &[
            ATTEMPT,
            ATTEMPT_MAC,
            PROGRESS,
            PROGRESS_MAC,
            DELIVERY_COUNT,
            ACQUIRED_COUNT,
        ],
    );
    set_progress(&mut table, progress, signer);
    table
}

/// The headers of a dead letter: why it died, after how many attempts, and how far a chat job
/// got (`progress`, the trusted one: a publisher's is dropped, so that a replay can run the job).
pub fn for_dead_letter(
    original: Option<&FieldTable>,
    attempts: u32,
    error: &ErrorInfo,
    progress: Option<ChatProgress>,
    signer: &JobSigner<'_>,
) -> FieldTable {
    // The attempt count is for people to read here, unsigned: `dlq replay` removes it.
    let mut table = without(original, &[ATTEMPT_MAC, PROGRESS, PROGRESS_MAC]);
    set(&mut table, ATTEMPT, AMQPValue::LongLongInt(attempts.into()));
    set(&mut table, ERROR_CODE, AMQPValue::LongLongInt(error.code));
    set(&mut table, ERROR_NAME, long_string(error.name));
    set(&mut table, ERROR_MESSAGE, long_string(&error.message));
    if let Some(progress) = progress {
        set_progress(&mut table, progress, signer);
    }
    table
}

/// The headers of a replayed job: as first published, attempts reset.
pub fn for_replay(original: Option<&FieldTable>) -> FieldTable {
    without(original, &TRAVEL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::signing::HeaderKey;
    use crate::error_code::ProjectCode;
    use crate::job::JobKind;
    use crate::sdk::ErrorClass;

    fn key() -> HeaderKey {
        HeaderKey::new(None, "guest", "guest", "/")
    }

    const BODY: &[u8] = b"{\"corp\": \"acme\", \"max_pages\": 10}";

    fn at(seq: u64, pages_done: u32) -> ChatProgress {
        ChatProgress { seq, pages_done }
    }

    #[test]
    fn attempts_default_to_one_and_count_up_through_signed_retries() {
        let key = key();
        let signer = key.for_job(JobKind::FetchChatdata, BODY);
        assert_eq!(signed_attempt(None, &signer), Ok(1));
        let retry = for_retry(None, 2, Some(at(40, 2)), &signer);
        assert_eq!(signed_attempt(Some(&retry), &signer), Ok(2));
        assert_eq!(signed_progress(Some(&retry), &signer), Ok(Some(at(40, 2))));
        let again = for_retry(Some(&retry), 3, None, &signer);
        assert_eq!(signed_attempt(Some(&again), &signer), Ok(3));
        assert_eq!(signed_progress(Some(&again), &signer), Ok(None));
    }

    #[test]
    fn forged_or_moved_headers_are_not_trusted() {
        let key = key();
        let signer = key.for_job(JobKind::FetchChatdata, BODY);
        let mut forged = FieldTable::default();
        forged.insert(ATTEMPT.into(), AMQPValue::LongLongInt(4_294_967_295));
        forged.insert(
            PROGRESS.into(),
            long_string(r#"{"seq":4990,"pages_done":0}"#),
        );
        assert_eq!(signed_attempt(Some(&forged), &signer), Err(ATTEMPT));
        assert_eq!(signed_progress(Some(&forged), &signer), Err(PROGRESS));
        // Signed headers copied onto another job do not hold there.
        let genuine = for_retry(None, 2, Some(at(40, 2)), &signer);
        let other = key.for_job(JobKind::FetchChatdata, b"{\"corp\": \"other\"}");
        assert_eq!(signed_attempt(Some(&genuine), &other), Err(ATTEMPT));
        assert_eq!(signed_progress(Some(&genuine), &other), Err(PROGRESS));
        // Nor does a signed value edited.
        let mut edited = genuine.clone();
        edited.insert(ATTEMPT.into(), AMQPValue::LongLongInt(5));
        assert_eq!(signed_attempt(Some(&edited), &signer), Err(ATTEMPT));
    }

    #[test]
    fn a_dead_letter_keeps_only_a_trusted_progress_and_an_upgrade_may_accept_unsigned_ones() {
        let mut key = key();
        let signer = key.for_job(JobKind::FetchChatdata, BODY);
        let error = ErrorInfo::project(ProjectCode::UntrustedHeader, ErrorClass::Permanent, "x");
        let mut forged = FieldTable::default();
        forged.insert(
            PROGRESS.into(),
            long_string(r#"{"seq":4990,"pages_done":0}"#),
        );
        let dead = for_dead_letter(Some(&forged), 1, &error, None, &signer);
        let replay = for_replay(Some(&dead));
        assert_eq!(
            signed_progress(Some(&replay), &signer),
            Ok(None),
            "replayable"
        );
        assert_eq!(signed_attempt(Some(&replay), &signer), Ok(1));

        key.accept_unsigned = true;
        let signer = key.for_job(JobKind::FetchChatdata, BODY);
        let mut unsigned = forged.clone();
        unsigned.insert(ATTEMPT.into(), AMQPValue::LongLongInt(2));
        assert_eq!(signed_attempt(Some(&unsigned), &signer), Ok(2));
        assert_eq!(
            signed_progress(Some(&unsigned), &signer),
            Ok(Some(at(4990, 0)))
        );
        unsigned.insert(ATTEMPT_MAC.into(), long_string("00"));
        assert_eq!(
            signed_attempt(Some(&unsigned), &signer),
            Err(ATTEMPT),
            "a wrong one never"
        );
    }

    #[test]
    fn a_retry_copy_starts_with_no_delivery_count() {
        let key = key();
        let signer = key.for_job(JobKind::FetchChatdata, BODY);
        assert_eq!(delivery_count(None), 0);
        let mut redelivered = FieldTable::default();
        redelivered.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(4));
        assert_eq!(delivery_count(Some(&redelivered)), 4);
        let retry = for_retry(Some(&redelivered), 2, None, &signer);
        assert_eq!(delivery_count(Some(&retry)), 0);
    }

    #[test]
    fn a_continuation_goes_on_from_its_progress_as_a_first_attempt() {
        let key = key();
        let signer = key.for_job(JobKind::FetchChatdata, BODY);
        let mut delivered = for_retry(None, 3, None, &signer);
        delivered.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(2));
        delivered.insert("app".into(), long_string("odoo"));
        let continuation = for_continuation(Some(&delivered), at(2000, 2), &signer);
        assert_eq!(
            signed_progress(Some(&continuation), &signer),
            Ok(Some(at(2000, 2)))
        );
        assert_eq!(signed_attempt(Some(&continuation), &signer), Ok(1));
        assert_eq!(delivery_count(Some(&continuation)), 0);
        assert_eq!(
            error_text(Some(&continuation), "app").as_deref(),
            Some("odoo")
        );
    }

    #[test]
    fn dead_letters_say_why_and_replay_forgets_it_but_keeps_the_progress() {
        let key = key();
        let signer = key.for_job(JobKind::FetchChatdata, BODY);
        let error = ErrorInfo::project(ProjectCode::InvalidJob, ErrorClass::Permanent, "not JSON");
        let mut original = for_retry(None, 3, Some(at(60, 6)), &signer);
        original.insert("app".into(), long_string("odoo"));
        let dead = for_dead_letter(Some(&original), 3, &error, Some(at(60, 6)), &signer);
        assert_eq!(error_code(Some(&dead)), Some(20301));
        assert_eq!(attempt(Some(&dead)), 3);
        assert_eq!(
            error_text(Some(&dead), ERROR_NAME).as_deref(),
            Some("invalid_job")
        );
        let replay = for_replay(Some(&dead));
        assert_eq!(signed_attempt(Some(&replay), &signer), Ok(1));
        assert_eq!(error_code(Some(&replay)), None);
        assert_eq!(error_text(Some(&replay), "app").as_deref(), Some("odoo"));
        assert_eq!(
            signed_progress(Some(&replay), &signer),
            Ok(Some(at(60, 6))),
            "a replayed chat job goes on from the page it died at"
        );
    }

    #[test]
    fn reply_to_only_is_a_boolean_true_that_retries_keep_and_a_replay_drops() {
        let with = |value: AMQPValue| {
            let mut table = FieldTable::default();
            table.insert(REPLY_TO_ONLY.into(), value);
            table
        };
        assert!(reply_to_only(Some(&with(AMQPValue::Boolean(true)))));
        for not_true in [
            AMQPValue::Boolean(false),
            long_string("true"),
            AMQPValue::LongLongInt(1),
        ] {
            assert!(!reply_to_only(Some(&with(not_true))));
        }
        assert!(!reply_to_only(None));

        let original = with(AMQPValue::Boolean(true));
        let key = key();
        let signer = key.for_job(JobKind::FetchChatdata, BODY);
        assert!(reply_to_only(Some(&for_retry(
            Some(&original),
            2,
            None,
            &signer
        ))));
        assert!(reply_to_only(Some(&for_continuation(
            Some(&original),
            at(5, 1),
            &signer
        ))));
        assert!(!reply_to_only(Some(&for_replay(Some(&original)))));
    }
}
