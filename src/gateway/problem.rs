//! Failures as HTTP answers: a status that fits the error, and a JSON body with the same
//! `error` object (`code`, `name`, `class`, `retryable`, `message`) as the broker's failure
//! results. A job's failure is answered with its failure result itself, as the worker publishes
//! it; the gateway's own refusals (an unreadable body, a missing token) with `{"status":
//! "failed", "error": {...}}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error_code::{ErrorInfo, ProjectCode};
use crate::job::error::JobError;
use crate::job::InvalidJob;
use crate::sdk::ErrorClass;

/// A failure, ready to answer.
#[derive(Debug)]
pub struct Problem {
    /// The HTTP status to answer with (see [`status_for`]).
    pub status: StatusCode,
    body: Vec<u8>,
}

/// What the status is chosen by, read from a failure result.
#[derive(Deserialize)]
struct FailureView {
    error: ErrorView,
}

#[derive(Deserialize)]
struct ErrorView {
    code: i64,
    class: String,
}

impl Problem {
    /// A job's failure `result` (a failure message as the worker publishes it).
    pub fn from_failure(result: Vec<u8>) -> Self {
        let status = match serde_json::from_slice::<FailureView>(&result) {
            Ok(view) => status_for(view.error.code, view.error.class == "transient"),
            Err(_) => StatusCode::BAD_GATEWAY,
        };
        Self {
            status,
            body: result,
        }
    }

    /// The gateway's own refusal.
    pub fn new(code: ProjectCode, class: ErrorClass, message: impl Into<String>) -> Self {
        Self::from_info(ErrorInfo::project(code, class, message))
    }

    fn from_info(error: ErrorInfo) -> Self {
        let status = status_for(error.code, error.retryable);
        let body = serde_json::json!({"status": "failed", "error": error});
        Self {
            status,
            body: serde_json::to_vec(&body).expect("an error serializes"),
        }
    }

    /// A body that is not a valid job.
    pub fn invalid(invalid: InvalidJob) -> Self {
        Self::from_info(JobError::Invalid(invalid).info())
    }

    /// A body over the size limit: 20301, with 413.
    pub fn too_large(invalid: InvalidJob) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..Self::invalid(invalid)
        }
    }

    /// The request waited `seconds` without a result: 20401, with 504; the job may still
    /// finish.
    pub fn timed_out(seconds: u64) -> Self {
        Self::new(
            ProjectCode::JobTimedOut,
            ErrorClass::Transient,
            format!("no result within {seconds} s; ask again later"),
        )
    }

    /// The gateway cannot run the job now (stopping, no broker): 20404, with 503.
    pub fn unavailable(why: impl Into<String>) -> Self {
        Self::new(ProjectCode::GatewayUnavailable, ErrorClass::Transient, why)
    }

    /// A result the gateway cannot read: a bug, or a broker queue written by something else.
    pub fn unreadable_result(why: impl std::fmt::Display) -> Self {
        Self::new(
            ProjectCode::MalformedSdkResponse,
            ErrorClass::Permanent,
            format!("the job's result cannot be read: {why}"),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body,
        )
            .into_response()
    }
}

/// The status of an error `code`: the caller's fault is a 4xx, trouble with the SDK, Tencent's
/// servers or the worker a 5xx (503 when trying again can help).
pub fn status_for(code: i64, retryable: bool) -> StatusCode {
    let project = |code: ProjectCode| code.code();
    match code {
        // The SDK's "invalid parameter" and "wrong sdkfileid" are the request's.
        10000 | 10005 => StatusCode::BAD_REQUEST,
        c if c == project(ProjectCode::InvalidJob)
            || c == project(ProjectCode::InvalidPrivateKey)
            || c == project(ProjectCode::InputRefused) =>
        {
            StatusCode::BAD_REQUEST
        }
        c if c == project(ProjectCode::UnknownCorp) => StatusCode::NOT_FOUND,
        c if c == project(ProjectCode::InlineCredentialsRefused) => StatusCode::FORBIDDEN,
        c if c == project(ProjectCode::Unauthorized) => StatusCode::UNAUTHORIZED,
        c if c == project(ProjectCode::MediaTooLarge) => StatusCode::UNPROCESSABLE_ENTITY,
        c if c == project(ProjectCode::JobTimedOut) => StatusCode::GATEWAY_TIMEOUT,
        _ if retryable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_errors_are_4xx_and_the_rest_5xx() {
        let cases = [
            (20301, false, 400),
            (20304, false, 400),
            (20001, false, 400),
            (10000, false, 400),
            (20302, false, 404),
            (20303, false, 403),
            (20403, false, 401),
            (20402, false, 422),
            (20401, true, 504),
            (10001, true, 503),
            (20003, true, 503),
            (20404, true, 503),
            (10009, false, 502),
            (301052, false, 502),
        ];
        for (code, retryable, status) in cases {
            assert_eq!(status_for(code, retryable).as_u16(), status, "{code}");
        }
    }

    #[test]
    fn a_failure_result_keeps_its_bytes_and_gets_its_status() {
        let result = br#"{"status":"failed","error":{"code":10001,"name":"sdk_network_error","message":"m","class":"transient","retryable":true}}"#;
        let problem = Problem::from_failure(result.to_vec());
        assert_eq!(problem.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem.body, result);
    }
}
