//! The endpoints: a job request's body is made a job ([`prepare`]), run by the
//! [`Runner`], and its result answered in the endpoint's shape: the seed service's
//! ([`compat`]) or the worker's (`/v1`). Beside them: `/`, the API description, and the
//! telemetry routes (`/metrics`, `/healthz`, `/readyz`).

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use secrecy::SecretString;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::auth::require_token;
use super::compat;
use super::media_body;
use super::openapi;
use super::problem::Problem;
use super::request::{prepare, Body, Endpoint};
use super::runner::{HttpJob, Runner};
use crate::error_code::ProjectCode;
use crate::job::parse::MAX_JOB_BYTES;
use crate::sdk::ErrorClass;
use crate::telemetry::endpoints::{self, Telemetry};

/// What the endpoints share.
pub struct Gateway {
    /// Where the jobs run: in this process or on the workers.
    pub runner: Runner,
    /// The media store the results' files are read from.
    pub media_root: PathBuf,
    /// The largest file the seed service's media endpoint answers, in bytes; larger ones get
    /// 20402 (`/v1/media` streams any size).
    pub compat_media_max_bytes: u64,
    /// The bearer token job requests must carry, if any.
    pub token: Option<SecretString>,
    /// Fires when the gateway stops: running jobs are given up (503).
    pub shutdown: CancellationToken,
    /// Served beside the endpoints: `/metrics`, `/healthz`, `/readyz`.
    pub telemetry: Telemetry,
}

/// Every route: the job endpoints (behind the token, if any, and the body size limit), `/`,
/// `/openapi.json`, `/docs`, and the telemetry routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let [compat_chat_path, compat_media_path, v1_chat_path, v1_media_path] = openapi::JOB_PATHS;
    let jobs = Router::new()
        .route(compat_chat_path, job_route(compat_chat))
        .route(compat_media_path, job_route(compat_media))
        .route(v1_chat_path, job_route(v1_chat))
        .route(v1_media_path, job_route(v1_media))
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
        .with_state(Arc::clone(&gateway))
        .merge(endpoints::routes(gateway.telemetry.clone()))
}

/// A job endpoint: GET (as the seed service's clients send it) and POST run the job; HEAD,
/// which would run it too, is refused.
fn job_route<H, T>(handler: H) -> MethodRouter<Arc<Gateway>>
where
    H: axum::handler::Handler<T, Arc<Gateway>> + Clone,
    T: 'static,
{
    get(handler.clone())
        .post(handler)
        .head(|| async { StatusCode::METHOD_NOT_ALLOWED })
}

async fn compat_chat(State(gateway): State<Arc<Gateway>>, body: Body) -> Result<Response, Problem> {
    let job = prepare(Endpoint::CompatChat, body)?;
    let page = gateway.outcome(&job).await?;
    let list = compat::chat_list(&page).map_err(Problem::unreadable_result)?;
    Ok(json(list))
}

async fn v1_chat(State(gateway): State<Arc<Gateway>>, body: Body) -> Result<Response, Problem> {
    let job = prepare(Endpoint::V1Chat, body)?;
    Ok(json(gateway.outcome(&job).await?))
}

async fn compat_media(
    State(gateway): State<Arc<Gateway>>,
    body: Body,
) -> Result<Response, Problem> {
    let job = prepare(Endpoint::Media, body)?;
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
    let job = prepare(Endpoint::Media, body)?;
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
        tracing::info!(job_id = %job.job_id, kind = job.kind.name(), status = status.as_u16(), "job ended");
        result
    }

    /// The job's file, open, and what the result says of it (its size checked on disk, so that
    /// the answer's `Content-Length` is the file's).
    async fn media(&self, job: &HttpJob) -> Result<(tokio::fs::File, StoredFile), Problem> {
        let result = self.outcome(job).await?;
        let stored: StoredFile =
            serde_json::from_slice(&result).map_err(Problem::unreadable_result)?;
        let unreadable = |why: String| {
            Problem::new(
                ProjectCode::MediaStoreIo,
                ErrorClass::Transient,
                format!("the stored file cannot be read: {why}"),
            )
        };
        let file = media_body::open(&self.media_root, &stored.location)
            .await
            .map_err(|err| unreadable(err.to_string()))?;
        let on_disk = file
            .metadata()
            .await
            .map_err(|err| unreadable(err.to_string()))?
            .len();
        if on_disk != stored.size {
            return Err(unreadable(format!(
                "it holds {on_disk} bytes where the result says {}",
                stored.size
            )));
        }
        Ok((file, stored))
    }
}

fn json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
