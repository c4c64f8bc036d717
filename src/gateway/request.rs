//! A request body made the job its endpoint runs: one page of chat (each message with its
//! ciphertext, for the seed service's shape), or a media file into the store (never inline in
//! the result), validated as the worker validates jobs, refused with the parser's words.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde_json::Value;

use super::problem::Problem;
use super::runner::HttpJob;
use crate::job::parse::{is_valid_job_id, MAX_JOB_BYTES};
use crate::job::{parse, InvalidJob, Job, JobKind};

/// A request body as the endpoint's extractor got it: the bytes, or why they could not be
/// read (too large, cut off), which becomes a refusal.
pub type Body = Result<Bytes, BytesRejection>;

/// What an endpoint makes of a request body.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    /// One page, each message with its ciphertext.
    CompatChat,
    /// One page; `max_pages` may only say so.
    V1Chat,
    /// The file into the store, streamed from there.
    Media,
}

impl Endpoint {
    fn kind(self) -> JobKind {
        match self {
            Self::CompatChat | Self::V1Chat => JobKind::FetchChatdata,
            Self::Media => JobKind::FetchMedia,
        }
    }
}

/// The job a request body asks for; a refusal is logged (never the body).
pub fn prepare(endpoint: Endpoint, body: Body) -> Result<HttpJob, Problem> {
    let kind = endpoint.kind();
    let prepared = prepare_unlogged(endpoint, body);
    if let Err(problem) = &prepared {
        tracing::info!(
            kind = kind.name(),
            status = problem.status.as_u16(),
            "refused"
        );
    }
    prepared
}

fn prepare_unlogged(endpoint: Endpoint, body: Body) -> Result<HttpJob, Problem> {
    let kind = endpoint.kind();
    let invalid = |reason: String| InvalidJob {
        kind,
        job_id: None,
        reason,
    };
    let body = body.map_err(|rejection| {
        let invalid = invalid(format!(
            "the body cannot be read: {}",
            rejection.body_text()
        ));
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(invalid)
        } else {
            Problem::invalid(invalid)
        }
    })?;
    // The parser's own checks (size, JSON, schema) come first, in its words.
    let parsed = parse(kind, &body).map_err(|refused| {
        if body.len() > MAX_JOB_BYTES {
            Problem::too_large(refused)
        } else {
            Problem::invalid(refused)
        }
    })?;
    if let (Endpoint::V1Chat, Job::Chatdata(job)) = (endpoint, &parsed) {
        if job.max_pages != 1 {
            return Err(Problem::invalid(invalid(
                "over HTTP a request gets one page: max_pages must be 1 or absent \
                 (ask again from next_seq while has_more)"
                    .into(),
            )));
        }
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&body);
    let mut job: Value = serde_json::from_slice(body).expect("parsed above");
    let fields = job.as_object_mut().expect("a job is an object");
    match endpoint {
        Endpoint::CompatChat => {
            fields.insert("include_encrypted".into(), true.into());
            fields.insert("max_pages".into(), 1.into());
        }
        Endpoint::V1Chat => {}
        Endpoint::Media => {
            fields.insert("inline".into(), false.into());
        }
    }
    let job_id = fields
        .get("job_id")
        .and_then(Value::as_str)
        .filter(|id| is_valid_job_id(id))
        .map_or_else(|| format!("http-{}", uuid::Uuid::new_v4()), str::to_owned);
    let body = serde_json::to_vec(&job).expect("a job serializes");
    // The fields set above must not carry a body at the limit over it.
    if body.len() > MAX_JOB_BYTES {
        return Err(Problem::too_large(invalid(format!(
            "the body is too close to the limit of {MAX_JOB_BYTES} bytes for this endpoint"
        ))));
    }
    Ok(HttpJob {
        kind,
        body,
        job_id,
        correlation_id: uuid::Uuid::new_v4().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(job: Value) -> Body {
        Ok(Bytes::from(job.to_string()))
    }

    fn job(fields: Value) -> Value {
        let mut job = json!({"corpid": "ww1", "secret": "s"});
        job.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        job
    }

    #[test]
    fn each_endpoint_sets_what_it_needs() {
        let compat = prepare(Endpoint::CompatChat, body(job(json!({"seq": 3})))).unwrap();
        let sent: Value = serde_json::from_slice(&compat.body).unwrap();
        assert_eq!(
            (sent["include_encrypted"].clone(), sent["max_pages"].clone()),
            (json!(true), json!(1))
        );
        assert!(compat.job_id.starts_with("http-"));

        let media = prepare(
            Endpoint::Media,
            body(job(json!({"sdkfileid": "x", "inline": true}))),
        )
        .unwrap();
        let sent: Value = serde_json::from_slice(&media.body).unwrap();
        assert_eq!(sent["inline"], false);

        let named = prepare(
            Endpoint::V1Chat,
            body(job(json!({"job_id": "mine", "max_pages": 1.0}))),
        )
        .unwrap();
        assert_eq!(named.job_id, "mine");
    }

    #[test]
    fn more_than_one_page_and_a_body_pushed_over_the_limit_are_refused() {
        let many = prepare(Endpoint::V1Chat, body(job(json!({"max_pages": 2})))).unwrap_err();
        assert_eq!(many.status, StatusCode::BAD_REQUEST);
        // Just under the limit as sent (compact JSON), over it with the fields the endpoint
        // adds.
        let key = |version: u32, len: usize| json!({"publickey_ver": version, "private_key": "k".repeat(len)});
        let mut near =
            job(json!({"private_keys": (0..20).map(|v| key(v, 13_000)).collect::<Vec<_>>()}));
        let short = MAX_JOB_BYTES - 10 - near.to_string().len();
        near["private_keys"][19] = key(19, 13_000 + short);
        assert_eq!(near.to_string().len(), MAX_JOB_BYTES - 10);
        assert!(prepare(Endpoint::V1Chat, body(near.clone())).is_ok());
        let refused = prepare(Endpoint::CompatChat, body(near)).unwrap_err();
        assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
