//! The endpoints. A job request's body is read (at most the job size limit), made the job the
//! endpoint runs (`prepare`: one page of chat; media into the store, not inline), validated as
//! the worker validates jobs, run by the [`Runner`], and its result answered in the endpoint's
//! shape: the seed service's ([`compat`]) or the worker's (`/v1`).

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::compat;
use super::media_body;
use super::openapi;
use super::problem::Problem;
use super::runner::{HttpJob, Runner};
use crate::error_code::ProjectCode;
use crate::job::parse::{is_valid_job_id, MAX_JOB_BYTES};
use crate::job::{parse, InvalidJob, JobKind};
use crate::sdk::ErrorClass;

/// What the endpoints share.
pub struct Gateway {
    pub runner: Runner,
    /// The media store the results' files are read from.
    pub media_root: PathBuf,
    pub compat_media_max_bytes: u64,
    /// The bearer token job requests must carry, if any.
    pub token: Option<SecretString>,
    /// Fires when the gateway stops: running jobs are given up (503).
    pub shutdown: CancellationToken,
}

type Body = Result<Bytes, BytesRejection>;

pub fn router(gateway: Arc<Gateway>) -> Router {
    let [compat_chat_path, compat_media_path, v1_chat_path, v1_media_path] = openapi::JOB_PATHS;
    let jobs = Router::new()
        .route(compat_chat_path, get(compat_chat).post(compat_chat))
        .route(compat_media_path, get(compat_media).post(compat_media))
        .route(v1_chat_path, get(v1_chat).post(v1_chat))
        .route(v1_media_path, get(v1_media).post(v1_media))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&gateway),
            require_token,
        ))
        // One byte over the limit is read, so that the job parser names the limit.
        .layer(DefaultBodyLimit::max(MAX_JOB_BYTES + 1));
    Router::new()
        .route(
            "/",
            get(|| async { Json(serde_json::json!({"Hello": "World"})) }),
        )
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/docs", get(|| async { Html(openapi::DOCS_PAGE) }))
        .merge(jobs)
        .with_state(gateway)
}

async fn require_token(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &gateway.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let matches = given.is_some_and(|given| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                given.as_bytes(),
                token.expose_secret().as_bytes(),
            )
            .is_ok()
        });
        if !matches {
            return Problem::new(
                ProjectCode::Unauthorized,
                ErrorClass::Permanent,
                "this gateway needs its bearer token (Authorization: Bearer ...)",
            )
            .into_response();
        }
    }
    next.run(request).await
}

async fn compat_chat(State(gateway): State<Arc<Gateway>>, body: Body) -> Result<Response, Problem> {
    let job = prepare(JobKind::FetchChatdata, body, Endpoint::CompatChat)?;
    let page = gateway.outcome(&job).await?;
    let list = compat::chat_list(&page).map_err(Problem::unreadable_result)?;
    Ok(json(list))
}

async fn v1_chat(State(gateway): State<Arc<Gateway>>, body: Body) -> Result<Response, Problem> {
    let job = prepare(JobKind::FetchChatdata, body, Endpoint::V1Chat)?;
    Ok(json(gateway.outcome(&job).await?))
}

async fn compat_media(
    State(gateway): State<Arc<Gateway>>,
    body: Body,
) -> Result<Response, Problem> {
    let job = prepare(JobKind::FetchMedia, body, Endpoint::Media)?;
    let (file, stored) = gateway.media(&job).await?;
    if stored.size > gateway.compat_media_max_bytes {
        return Err(Problem::new(
            ProjectCode::MediaTooLarge,
            ErrorClass::Permanent,
            format!(
                "the file is {} bytes, over the {} this endpoint answers in one JSON string; \
                 /v1/media streams it",
                stored.size, gateway.compat_media_max_bytes
            ),
        ));
    }
    let (body, length) = media_body::base64_json_string(file, stored.size);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response())
}

async fn v1_media(State(gateway): State<Arc<Gateway>>, body: Body) -> Result<Response, Problem> {
    let job = prepare(JobKind::FetchMedia, body, Endpoint::Media)?;
    let (file, stored) = gateway.media(&job).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, stored.size.to_string()),
            (HeaderName::from_static("x-wecom-md5"), stored.md5),
            (HeaderName::from_static("x-wecom-sha256"), stored.sha256),
        ],
        media_body::raw(file),
    )
        .into_response())
}

/// The part of a media result the answer needs.
#[derive(Deserialize)]
struct StoredFile {
    location: String,
    size: u64,
    md5: String,
    sha256: String,
}

/// Just the status of a result.
#[derive(Deserialize)]
struct Status<'a> {
    status: &'a str,
}

impl Gateway {
    /// The job's result when it succeeded; its failure (or the gateway's) as an answer.
    async fn outcome(&self, job: &HttpJob) -> Result<Vec<u8>, Problem> {
        let result = self.runner.run(job, &self.shutdown).await;
        let result =
            result.and_then(
                |result| match serde_json::from_slice::<Status<'_>>(&result) {
                    Ok(Status { status: "ok" }) => Ok(result),
                    Ok(_) => Err(Problem::from_failure(result)),
                    Err(err) => Err(Problem::unreadable_result(err)),
                },
            );
        let status = result
            .as_ref()
            .map_or_else(|p| p.status, |_| StatusCode::OK);
        tracing::info!(job_id = %job.job_id, kind = job.kind.name(), status = status.as_u16(), "answered");
        result
    }

    /// The job's file, open, and what the result says of it.
    async fn media(&self, job: &HttpJob) -> Result<(tokio::fs::File, StoredFile), Problem> {
        let result = self.outcome(job).await?;
        let stored: StoredFile =
            serde_json::from_slice(&result).map_err(Problem::unreadable_result)?;
        let file = media_body::open(&self.media_root, &stored.location)
            .await
            .map_err(|err| {
                Problem::new(
                    ProjectCode::MediaStoreIo,
                    ErrorClass::Transient,
                    format!("the stored file cannot be read: {err}"),
                )
            })?;
        Ok((file, stored))
    }
}

/// What an endpoint makes of a request body.
#[derive(Clone, Copy)]
enum Endpoint {
    /// One page, each message with its ciphertext.
    CompatChat,
    /// One page; `max_pages` may only say so.
    V1Chat,
    /// The file into the store, streamed from there (never inline in the result).
    Media,
}

/// The job a request body asks for, validated as the worker validates jobs.
fn prepare(kind: JobKind, body: Body, endpoint: Endpoint) -> Result<HttpJob, Problem> {
    let prepared = prepare_unlogged(kind, body, endpoint);
    if let Err(problem) = &prepared {
        // The reason is in the answer; the log says that it happened (never the body).
        tracing::info!(
            kind = kind.name(),
            status = problem.status.as_u16(),
            "refused"
        );
    }
    prepared
}

fn prepare_unlogged(kind: JobKind, body: Body, endpoint: Endpoint) -> Result<HttpJob, Problem> {
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
    let parsed = parse(kind, &body);
    if let Err(refused) = parsed {
        return Err(if body.len() > MAX_JOB_BYTES {
            Problem::too_large(refused)
        } else {
            Problem::invalid(refused)
        });
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&body);
    let mut job: Value = serde_json::from_slice(body).expect("parsed above");
    let fields = job.as_object_mut().expect("a job is an object");
    match endpoint {
        Endpoint::CompatChat => {
            fields.insert("include_encrypted".into(), true.into());
            fields.insert("max_pages".into(), 1.into());
        }
        Endpoint::V1Chat => {
            if fields
                .get("max_pages")
                .is_some_and(|n| !n.is_null() && n != 1)
            {
                return Err(Problem::invalid(invalid(
                    "over HTTP a request gets one page: max_pages must be 1 or absent \
                     (ask again from next_seq while has_more)"
                        .into(),
                )));
            }
            fields.insert("max_pages".into(), 1.into());
        }
        Endpoint::Media => {
            fields.insert("inline".into(), false.into());
        }
    }
    let job_id = fields
        .get("job_id")
        .and_then(Value::as_str)
        .filter(|id| is_valid_job_id(id))
        .map_or_else(|| format!("http-{}", uuid::Uuid::new_v4()), str::to_owned);
    Ok(HttpJob {
        kind,
        body: serde_json::to_vec(&job).expect("a job serializes"),
        job_id,
    })
}

fn json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
