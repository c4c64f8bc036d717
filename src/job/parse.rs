//! From bytes to a [`Job`], or to an [`InvalidJob`] that says why, without a secret in it.
//!
//! A job is checked against its JSON Schema (`schemas/*.job.schema.json`, compiled once) before
//! it is deserialized, so a wrong type, a missing or unknown field, or a limit out of range is
//! refused with the rule it breaks. Refusals name the field and the rule, never the value: the
//! value might be the corp secret or a private key.
//!
//! The schema and the parser accept the same jobs: where JSON Schema is lenient and serde would
//! not be, the body is brought to the stricter form first (a number with a zero fraction, `5e0`
//! or `10.0`, is the integer it equals; a UTF-8 byte-order mark before the JSON is dropped), and
//! what serde would refuse besides (`paswd` beside its alias `proxy_password`) the schema refuses
//! too. A field given as `null` is absent, in both.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::Value;

use super::contract::{ChatdataJob, JobKind, MediaJob};

/// A job body larger than this is refused unread (a page of keys is a few KiB). The schemas
/// allow fields that could add up to more; this limit on the whole body comes first.
pub const MAX_JOB_BYTES: usize = 256 * 1024;

/// Whether `id` may serve as a job id (the schema's `job_id` rule: 1 to 200 printable ASCII
/// characters), so that it can be echoed in results and fits, with a suffix, in an AMQP
/// `message_id`.
pub fn is_valid_job_id(id: &str) -> bool {
    (1..=200).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

static CHATDATA_SCHEMA: LazyLock<Validator> =
    LazyLock::new(|| compile(include_str!("../../schemas/fetch-chatdata.job.schema.json")));
static MEDIA_SCHEMA: LazyLock<Validator> =
    LazyLock::new(|| compile(include_str!("../../schemas/fetch-media.job.schema.json")));

fn compile(schema: &str) -> Validator {
    let schema: Value = serde_json::from_str(schema).expect("the bundled schema is JSON");
    jsonschema::validator_for(&schema).expect("the bundled schema is valid")
}

/// A job, typed.
#[derive(Debug)]
pub enum Job {
    /// A `fetch-chatdata` job.
    Chatdata(ChatdataJob),
    /// A `fetch-media` job.
    Media(MediaJob),
}

impl Job {
    /// Which kind of job it is.
    pub fn kind(&self) -> JobKind {
        match self {
            Self::Chatdata(_) => JobKind::FetchChatdata,
            Self::Media(_) => JobKind::FetchMedia,
        }
    }

    /// The job's `job_id` field, if it has one (not the AMQP `message_id`).
    pub fn job_id(&self) -> Option<&str> {
        match self {
            Self::Chatdata(job) => job.job_id.as_deref(),
            Self::Media(job) => job.job_id.as_deref(),
        }
    }
}

/// Why a body is not a job, and its `job_id` when one could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} job: {reason}", kind = kind.name())]
pub struct InvalidJob {
    /// The kind the body was sent as (its routing key or endpoint).
    pub kind: JobKind,
    /// The body's `job_id`, when it could be read and is itself valid; `None` otherwise.
    pub job_id: Option<String>,
    /// Why, naming the field and the rule it breaks, not the value.
    pub reason: String,
}

/// Parses and validates a job of `kind`. A refusal names the field and the rule it breaks,
/// never the value (a value may be a secret).
///
/// ```
/// use wecom_archive::job::{parse, Job, JobKind};
///
/// let body = br#"{"corp": "acme", "seq": 100, "limit": 50}"#;
/// let Ok(Job::Chatdata(job)) = parse(JobKind::FetchChatdata, body) else { panic!() };
/// assert_eq!((job.seq, job.limit), (100, 50));
///
/// let refused = parse(JobKind::FetchChatdata, br#"{"corp": "acme", "limit": 5000}"#);
/// assert!(refused.unwrap_err().reason.contains("limit"));
/// ```
pub fn parse(kind: JobKind, body: &[u8]) -> Result<Job, InvalidJob> {
    let invalid = |job_id: Option<String>, reason: String| InvalidJob {
        kind,
        job_id,
        reason,
    };
    if body.len() > MAX_JOB_BYTES {
        return Err(invalid(
            None,
            format!(
                "the body is {} bytes, over the limit of {MAX_JOB_BYTES}",
                body.len()
            ),
        ));
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut value: Value = serde_json::from_slice(body).map_err(|err| {
        // serde_json's message names a line and column, never the text around it.
        invalid(None, format!("not JSON: {err}"))
    })?;
    integral_floats_to_integers(&mut value);
    // A field given as null is absent, as in the seed service's model (its clients send unset
    // fields as null); the schemas allow null for every optional field.
    if let Some(fields) = value.as_object_mut() {
        fields.retain(|_, field| !field.is_null());
    }
    let job_id = value
        .get("job_id")
        .and_then(Value::as_str)
        // Only an id the schema would accept: a refused one is not echoed back.
        .filter(|id| is_valid_job_id(id))
        .map(str::to_owned);
    let validator = match kind {
        JobKind::FetchChatdata => &*CHATDATA_SCHEMA,
        JobKind::FetchMedia => &*MEDIA_SCHEMA,
    };
    if let Err(error) = validator.validate(&value) {
        return Err(invalid(job_id, describe(&error)));
    }
    let typed = match kind {
        JobKind::FetchChatdata => serde_json::from_value(value).map(Job::Chatdata),
        JobKind::FetchMedia => serde_json::from_value(value).map(Job::Media),
    };
    typed.map_err(|err| invalid(job_id, format!("does not fit the job type: {err}")))
}

/// Every number with a zero fraction (`5e0`, `10.0`) made the integer it equals, as JSON Schema
/// reads it, so that serde reads it the same way.
fn integral_floats_to_integers(value: &mut Value) {
    match value {
        Value::Number(number) if number.is_f64() => {
            // 2^64: the first float past u64::MAX.
            const TWO_TO_64: f64 = 18_446_744_073_709_551_616.0;
            let float = number.as_f64().unwrap_or(f64::NAN);
            if float.fract() == 0.0 && (0.0..TWO_TO_64).contains(&float) {
                *value = Value::from(float as u64);
            } else if float.fract() == 0.0 && (i64::MIN as f64..0.0).contains(&float) {
                *value = Value::from(float as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// The schema rule a job breaks, in words that carry no value from the job.
fn describe(error: &jsonschema::ValidationError) -> String {
    let at = match error.instance_path().to_string() {
        path if path.is_empty() => "the job".to_owned(),
        path => format!("field {path}"),
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            format!("unknown field(s): {}", unexpected.join(", "))
        }
        ValidationErrorKind::Not { .. } => {
            "paswd and proxy_password are the same field: give one of them".to_owned()
        }
        ValidationErrorKind::Required { .. } | ValidationErrorKind::AnyOf { .. } => format!(
            "{at} must name either a corp alias (corp) or inline credentials (corpid and secret), and the fields its type requires ({})",
            error.kind().keyword()
        ),
        _ => format!("{at} breaks the schema rule \"{}\"", error.kind().keyword()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<Job, InvalidJob> {
        parse(JobKind::FetchChatdata, body.as_bytes())
    }

    #[test]
    fn the_seed_services_request_body_is_a_valid_job() {
        let body = r#"{"seq": 0, "corpid": "ww1", "secret": "s",
            "private_keys": [{"publickey_ver": 1, "private_key": "-----BEGIN RSA PRIVATE KEY-----"}],
            "proxy": "", "paswd": ""}"#;
        let Job::Chatdata(job) = chat(body).unwrap() else {
            panic!()
        };
        assert_eq!((job.seq, job.limit, job.max_pages), (0, 1000, 1));
        let media = body.replace("\"seq\": 0,", "\"seq\": 0, \"sdkfileid\": \"abc\",");
        assert!(matches!(
            parse(JobKind::FetchMedia, media.as_bytes()),
            Ok(Job::Media(_))
        ));
    }

    #[test]
    fn refusals_say_what_is_wrong_and_keep_the_job_id() {
        let err = chat(r#"{"job_id": "j1", "corp": "acme", "limit": 1001}"#).unwrap_err();
        assert_eq!(err.job_id.as_deref(), Some("j1"));
        assert!(err.reason.contains("/limit"), "{}", err.reason);
        let err = chat(r#"{"job_id": "j2", "corp": "acme", "limt": 5}"#).unwrap_err();
        assert!(
            err.reason.contains("unknown field(s): limt"),
            "{}",
            err.reason
        );
        let err = parse(JobKind::FetchMedia, br#"{"corp": "acme"}"#).unwrap_err();
        assert!(err.reason.contains("required"), "{}", err.reason);
        let err = chat("{\"job_id\": \"j3\", \"corp\": ").unwrap_err();
        assert!(err.reason.starts_with("not JSON"), "{}", err.reason);
        assert_eq!(err.job_id, None);
    }

    #[test]
    fn refusals_never_carry_the_values() {
        for body in [
            r#"{"corpid": "ww1", "secret": 12345678901234567890}"#,
            r#"{"corpid": "ww1", "secret": "hunter2-hunter2", "timeout": "hunter2-hunter2"}"#,
            r#"{"corpid": "ww1", "secret": "hunter2-hunter2", "private_keys": [{"publickey_ver": 1, "private_key": 7}]}"#,
        ] {
            let err = chat(body).unwrap_err().to_string();
            assert!(
                !err.contains("hunter2") && !err.contains("1234567890"),
                "{err}"
            );
        }
    }

    #[test]
    fn credentials_are_an_alias_or_inline_never_both_nor_neither() {
        assert!(chat(r#"{"corp": "acme"}"#).is_ok());
        assert!(chat(r#"{"corpid": "ww1", "secret": "s"}"#).is_ok());
        assert!(chat(r#"{}"#).is_err());
        assert!(chat(r#"{"corp": "acme", "corpid": "ww1", "secret": "s"}"#).is_err());
        assert!(chat(r#"{"corpid": "ww1"}"#).is_err());
    }

    /// The job schemas as an outside consumer compiles them.
    fn schema_accepts(kind: JobKind, body: &str) -> bool {
        let schema = match kind {
            JobKind::FetchChatdata => include_str!("../../schemas/fetch-chatdata.job.schema.json"),
            JobKind::FetchMedia => include_str!("../../schemas/fetch-media.job.schema.json"),
        };
        let schema: Value = serde_json::from_str(schema).unwrap();
        let body = body.strip_prefix('\u{feff}').unwrap_or(body);
        let value: Value = serde_json::from_str(body).unwrap();
        jsonschema::is_valid(&schema, &value)
    }

    #[test]
    fn the_schema_and_the_parser_accept_the_same_jobs() {
        let cases = [
            (
                r#"{"corp": "a", "limit": 5e0, "seq": 10.0, "max_pages": 2.0}"#,
                true,
            ),
            (
                r#"{"corp": "a", "timeout": 30.0, "seq": 18446744073709551615}"#,
                true,
            ),
            ("\u{feff}{\"corp\": \"a\"}", true),
            (r#"{"corp": "a", "limit": 5.5}"#, false),
            (r#"{"corp": "a", "seq": -1.0}"#, false),
            (
                r#"{"corpid": "w", "secret": "s", "paswd": "u:p", "proxy_password": "u:p"}"#,
                false,
            ),
            (
                r#"{"corpid": "w", "secret": "s", "paswd": null, "proxy": null}"#,
                true,
            ),
            (
                r#"{"corp": "a", "corpid": null, "secret": null, "private_keys": null}"#,
                true,
            ),
            (
                r#"{"corp": null, "corpid": "w", "secret": "s", "seq": null, "limit": null}"#,
                true,
            ),
            (r#"{"corpid": "w", "secret": null}"#, false),
            (r#"{"corp": null}"#, false),
            (
                r#"{"corpid": "w", "secret": "s", "paswd": null, "proxy_password": "p"}"#,
                true,
            ),
            (
                r#"{"corpid": "w", "secret": "s", "private_keys": [{"publickey_ver": 1, "private_key": null}]}"#,
                false,
            ),
            (
                r#"{"corpid": "w", "secret": "s", "private_keys": [{"publickey_ver": 1.0, "private_key": "k"}]}"#,
                true,
            ),
        ];
        for (body, valid) in cases {
            assert_eq!(
                schema_accepts(JobKind::FetchChatdata, body),
                valid,
                "schema: {body}"
            );
            assert_eq!(
                chat(body).is_ok(),
                valid,
                "parser: {body}: {:?}",
                chat(body).err()
            );
        }
        let both = chat(r#"{"corpid": "w", "secret": "s", "paswd": "a", "proxy_password": "a"}"#);
        assert!(both.unwrap_err().reason.contains("give one"));
        let nulls =
            r#"{"corp": "a", "sdkfileid": "x", "md5sum": null, "inline": null, "file_name": null}"#;
        assert!(schema_accepts(JobKind::FetchMedia, nulls));
        assert!(parse(JobKind::FetchMedia, nulls.as_bytes()).is_ok());
        let media = r#"{"corp": "a", "sdkfileid": "x", "filesize": 1e3, "paswd": "p", "proxy_password": "p"}"#;
        assert!(!schema_accepts(JobKind::FetchMedia, media));
        assert!(parse(JobKind::FetchMedia, media.as_bytes()).is_err());
    }

    #[test]
    fn job_ids_are_printable_ascii_of_at_most_200() {
        assert!(is_valid_job_id("order-42:x"));
        assert!(!is_valid_job_id(""));
        assert!(!is_valid_job_id("a\nb"));
        assert!(!is_valid_job_id("naïve"));
        assert!(!is_valid_job_id(&"x".repeat(201)));
    }

    #[test]
    fn bounds_and_types_are_enforced() {
        for bad in [
            r#"{"corp": "a", "limit": 0}"#,
            r#"{"corp": "a", "limit": -1}"#,
            r#"{"corp": "a", "seq": -1}"#,
            r#"{"corp": "a", "seq": 18446744073709551616}"#,
            r#"{"corp": "a", "seq": "5"}"#,
            r#"{"corp": "a", "type": "fetch-media"}"#,
            r#"[1, 2]"#,
        ] {
            assert!(chat(bad).is_err(), "{bad}");
        }
        assert!(chat(r#"{"corp": "a", "seq": 18446744073709551615}"#).is_ok());
        let huge = format!(
            r#"{{"corp": "a", "job_id": "{}"}}"#,
            "x".repeat(MAX_JOB_BYTES)
        );
        assert!(chat(&huge).unwrap_err().reason.contains("over the limit"));
    }
}
