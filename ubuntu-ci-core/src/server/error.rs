//! How the server answers errors: JSON `{"error": …, "kind": …}` with the status of the kind.
//!
//! [`status_of`] is the one table from [`ErrorKind`] to HTTP status. [`JsonBody`] replaces
//! axum's `Json` extractor so that malformed bodies, wrong types and unknown fields are 400s
//! (and oversized bodies 413s) in the same JSON shape as every other error.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};

/// The body of every error response.
pub use crate::wire::WireError as ErrorBody;

/// The HTTP status of an error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// At most this many error lines a window; the rest are counted and said once.
const ERROR_LOG_BURST: u32 = 20;
/// The window of [`ERROR_LOG_BURST`], in seconds.
const ERROR_LOG_WINDOW_SECS: u64 = 10;

/// A bound on the server's error log lines: clients can cause 5xx answers at will, and a
/// log is no place for a flood.
struct LogLimit {
    state: std::sync::Mutex<(u64, u32, u64)>,
}

static ERROR_LOG: LogLimit = LogLimit {
    state: std::sync::Mutex::new((0, 0, 0)),
};

impl LogLimit {
    /// Whether one more line may be written now; says how many were left out when a new
    /// window opens.
    fn admit(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            / ERROR_LOG_WINDOW_SECS;
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let (window, _, dropped) = *state;
        if window != now {
            if dropped > 0 {
                tracing::warn!(
                    "{dropped} more request errors in {ERROR_LOG_WINDOW_SECS} s were not logged"
                );
            }
            *state = (now, 0, 0);
        }
        let (_, written, dropped) = &mut *state;
        if *written < ERROR_LOG_BURST {
            *written += 1;
            true
        } else {
            *dropped += 1;
            false
        }
    }
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        ApiError(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.0.kind());
        if status.is_server_error() && ERROR_LOG.admit() {
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = ?self.0, "request failed");
            } else {
                // 501 and 503 are answers anyone can ask for (an unimplemented backend,
                // a full event-stream pool): worth a warning, not an alarm.
                tracing::warn!(error = %self.0, status = status.as_u16(), "request refused");
            }
        }
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.0.to_string(),
                kind: self.0.kind(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"ubuntu-ci\""),
            );
        }
        response
    }
}

/// The answer to a method a route does not take: 405 with the JSON error body (axum adds
/// the `Allow` header naming the methods it takes).
pub fn method_not_allowed(method: &axum::http::Method) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody {
            error: format!("{method} is not allowed here; the Allow header names what is"),
            kind: ErrorKind::InvalidInput,
        }),
    )
        .into_response()
}

/// A JSON request body whose rejections are [`ApiError`]s.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(ApiError(rejection_error(rejection))),
        }
    }
}

fn rejection_error(rejection: JsonRejection) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::too_large("request body too large");
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Error::invalid("expected a JSON body with Content-Type: application/json")
        }
        other => Error::invalid(other.body_text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_bounded_per_window() {
        let limit = LogLimit {
            state: std::sync::Mutex::new((0, 0, 0)),
        };
        let admitted = (0..1000).filter(|_| limit.admit()).count();
        // One window, or two when the test straddles a window's end.
        assert!(
            (ERROR_LOG_BURST as usize..=2 * ERROR_LOG_BURST as usize).contains(&admitted),
            "{admitted}"
        );
        let (_, _, dropped) = *limit.state.lock().unwrap();
        assert!(dropped > 0);
    }
}
