//! The project's own AMQP headers: attempt count, chat progress, and why a job was
//! dead-lettered. Attempts are counted here rather than read from `x-death`, whose shape
//! differs between RabbitMQ versions and which replay must be able to reset.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::error_code::ErrorInfo;
use crate::job::contract::ChatProgress;

/// Which attempt a delivery is (1 when absent).
pub const ATTEMPT: &str = "x-wecom-attempt";
/// JSON `{"seq", "pages_done"}`: where a multi-page chat job goes on (its continuation, its
/// retry copy, or a replay of either).
pub const PROGRESS: &str = "x-wecom-progress";
pub const ERROR_CODE: &str = "x-wecom-error-code";
pub const ERROR_NAME: &str = "x-wecom-error-name";
pub const ERROR_MESSAGE: &str = "x-wecom-error-message";
/// Set by a quorum queue on a redelivery: how many deliveries of the job ended unsettled
/// (RabbitMQ 3.x; 4.x counts differently, see the README).
pub const DELIVERY_COUNT: &str = "x-delivery-count";
/// RabbitMQ 4.x's count of deliveries.
const ACQUIRED_COUNT: &str = "x-acquired-count";

/// Headers the broker or we add while a job travels, which a replay removes. Not the progress:
/// a chat job replayed goes on from the page it died at, its earlier pages are published.
const TRAVEL: [&str; 13] = [
    ATTEMPT,
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

pub fn attempt(headers: Option<&FieldTable>) -> u32 {
    get(headers, ATTEMPT)
        .and_then(as_i64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// How many earlier deliveries of this job ended unsettled (0 when absent).
pub fn delivery_count(headers: Option<&FieldTable>) -> u32 {
    get(headers, DELIVERY_COUNT)
        .and_then(as_i64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

pub fn progress(headers: Option<&FieldTable>) -> Option<ChatProgress> {
    get(headers, PROGRESS)
        .and_then(as_text)
        .and_then(|text| serde_json::from_str(&text).ok())
}

pub fn error_code(headers: Option<&FieldTable>) -> Option<i64> {
    get(headers, ERROR_CODE).and_then(as_i64)
}

pub fn error_text(headers: Option<&FieldTable>, key: &str) -> Option<String> {
    get(headers, key).and_then(as_text)
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

/// The headers of the retry copy: attempt + 1, and the progress made.
pub fn for_retry(
    original: Option<&FieldTable>,
    next_attempt: u32,
    progress: Option<ChatProgress>,
) -> FieldTable {
    // The retry copy is a new message: the broker's delivery counts of this one do not apply.
    let mut table = without(original, &[PROGRESS, DELIVERY_COUNT, ACQUIRED_COUNT]);
    set(
        &mut table,
        ATTEMPT,
        AMQPValue::LongLongInt(next_attempt.into()),
    );
    if let Some(progress) = progress {
        let progress = serde_json::to_string(&progress).expect("progress serializes");
        set(&mut table, PROGRESS, long_string(&progress));
    }
    table
}

/// The headers of a chat job's continuation: where to go on, and a first attempt (attempts
/// count per page: the pages before it succeeded).
pub fn for_continuation(original: Option<&FieldTable>, progress: ChatProgress) -> FieldTable {
    let mut table = without(
        original,
        &[ATTEMPT, PROGRESS, DELIVERY_COUNT, ACQUIRED_COUNT],
    );
    let progress = serde_json::to_string(&progress).expect("progress serializes");
    set(&mut table, PROGRESS, long_string(&progress));
    table
}

/// The headers of a dead letter: why it died, after how many attempts.
pub fn for_dead_letter(
    original: Option<&FieldTable>,
    attempts: u32,
    error: &ErrorInfo,
) -> FieldTable {
    let mut table = original.cloned().unwrap_or_default();
    set(&mut table, ATTEMPT, AMQPValue::LongLongInt(attempts.into()));
    set(&mut table, ERROR_CODE, AMQPValue::LongLongInt(error.code));
    set(&mut table, ERROR_NAME, long_string(error.name));
    set(&mut table, ERROR_MESSAGE, long_string(&error.message));
    table
}

/// The headers of a replayed job: as first published, attempts reset.
pub fn for_replay(original: Option<&FieldTable>) -> FieldTable {
    without(original, &TRAVEL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_code::ProjectCode;
    use crate::sdk::ErrorClass;

    #[test]
    fn attempts_default_to_one_and_count_up_through_retries() {
        assert_eq!(attempt(None), 1);
        let retry = for_retry(
            None,
            2,
            Some(ChatProgress {
                seq: 40,
                pages_done: 2,
            }),
        );
        assert_eq!(attempt(Some(&retry)), 2);
        assert_eq!(
            progress(Some(&retry)),
            Some(ChatProgress {
                seq: 40,
                pages_done: 2
            })
        );
        let again = for_retry(Some(&retry), 3, None);
        assert_eq!((attempt(Some(&again)), progress(Some(&again))), (3, None));
    }

    #[test]
    fn a_retry_copy_starts_with_no_delivery_count() {
        assert_eq!(delivery_count(None), 0);
        let mut redelivered = FieldTable::default();
        redelivered.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(4));
        assert_eq!(delivery_count(Some(&redelivered)), 4);
        let retry = for_retry(Some(&redelivered), 2, None);
        assert_eq!(delivery_count(Some(&retry)), 0);
    }

    #[test]
    fn a_continuation_goes_on_from_its_progress_as_a_first_attempt() {
        let mut delivered = for_retry(None, 3, None);
        delivered.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(2));
        delivered.insert("app".into(), long_string("odoo"));
        let next = ChatProgress {
            seq: 2000,
            pages_done: 2,
        };
        let continuation = for_continuation(Some(&delivered), next);
        assert_eq!(progress(Some(&continuation)), Some(next));
        assert_eq!(attempt(Some(&continuation)), 1);
        assert_eq!(delivery_count(Some(&continuation)), 0);
        assert_eq!(
            error_text(Some(&continuation), "app").as_deref(),
            Some("odoo")
        );
    }

    #[test]
    fn dead_letters_say_why_and_replay_forgets_it() {
        let error = ErrorInfo::project(ProjectCode::InvalidJob, ErrorClass::Permanent, "not JSON");
        let mut original = FieldTable::default();
        original.insert("app".into(), long_string("odoo"));
        let dead = for_dead_letter(Some(&original), 3, &error);
        assert_eq!(error_code(Some(&dead)), Some(20301));
        assert_eq!(
            error_text(Some(&dead), ERROR_NAME).as_deref(),
            Some("invalid_job")
        );
        let replay = for_replay(Some(&dead));
        assert_eq!(attempt(Some(&replay)), 1);
        let at = ChatProgress {
            seq: 60,
            pages_done: 6,
        };
        let dead_page = for_dead_letter(Some(&for_retry(None, 3, Some(at))), 3, &error);
        assert_eq!(
            progress(Some(&for_replay(Some(&dead_page)))),
            Some(at),
            "a replayed chat job goes on from the page it died at"
        );
        assert_eq!(error_code(Some(&replay)), None);
        assert_eq!(error_text(Some(&replay), "app").as_deref(), Some("odoo"));
    }
}
