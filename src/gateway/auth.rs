//! The optional bearer token of the job endpoints (`WECOM_HTTP_TOKEN_FILE`), compared in
//! constant time; `/`, the docs, metrics and health need none.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::problem::Problem;
use super::routes::Gateway;
use crate::error_code::ProjectCode;
use crate::sdk::ErrorClass;

/// Middleware of the job endpoints: passes a request on when no token is set or it carries
/// `Authorization: Bearer <token>`, else answers 401 (20403).
pub async fn require_token(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &gateway.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer);
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

/// The credentials of a `Bearer` authorization (the scheme's name is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }
}
