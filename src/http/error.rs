//! The JSON error body every failure is answered with, and the catch-all that enforces it.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::Object;

use crate::error_code::ErrorCode;

/// `{"error":{"code","message"}}`
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    /// A stable snake_case code to match on (listed in the API description).
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.as_str().to_owned(),
                message: message.into(),
            },
        }
    }

    /// The body with the catalog's default message.
    pub fn of(code: ErrorCode) -> Self {
        ErrorBody::new(code, code.default_message())
    }
}

impl ErrorCode {
    /// The JSON error answer with this code's status, outside poem-openapi handlers.
    /// A `server_busy` answer also says when to retry, as git hosts expect of a 503.
    pub fn response(self, message: impl Into<String>) -> Response {
        let mut response = poem::web::Json(serde_json::json!({
            "error": {"code": self.as_str(), "message": message.into()}
        }))
        .with_status(self.status())
        .into_response();
        if self == ErrorCode::ServerBusy {
            response.headers_mut().insert(
                poem::http::header::RETRY_AFTER,
                crate::limits::RETRY_AFTER_SECS.into(),
            );
        }
        response
    }
}

/// Something unexpected: the cause goes to the log, the client gets an opaque 500.
#[derive(Debug, thiserror::Error)]
#[error("internal error")]
pub struct InternalError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl InternalError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        InternalError(Box::new(e))
    }
}

impl poem::error::ResponseError for InternalError {
    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn as_response(&self) -> Response {
        tracing::error!(error = %crate::error_chain(self), "request failed");
        ErrorCode::InternalError.response(ErrorCode::InternalError.default_message())
    }
}

/// Turns every error that reached the top (parse failures, missing auth, unknown routes,
/// internal errors) into the JSON error body with the same status.
pub async fn to_json(err: poem::Error) -> Response {
    if err.is::<InternalError>() || err.is::<Busy>() {
        return err.into_response();
    }
    let status = err.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, None),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, None),
        StatusCode::UNAUTHORIZED => (ErrorCode::Unauthorized, None),
        StatusCode::FORBIDDEN => (ErrorCode::Forbidden, Some(err.to_string())),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, None),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (ErrorCode::UnsupportedContentType, Some(err.to_string()))
        }
        s if s.is_server_error() => {
            tracing::error!(error = %err, "request failed");
            (ErrorCode::InternalError, None)
        }
        _ => (ErrorCode::BadRequest, Some(err.to_string())),
    };
    let message = message.unwrap_or_else(|| code.default_message().to_owned());
    let mut response = code.response(message);
    // The catalog's status for these codes matches, except where poem chose another 4xx or 5xx.
    response.set_status(status);
    response
}

/// Which methods each route takes, for the `Allow` header RFC 9110 requires on a 405 (poem's
/// router leaves it out). Built from the OpenAPI document, so it cannot drift from the API.
pub struct AllowTable(Vec<(Vec<Option<String>>, String)>);

impl AllowTable {
    /// `spec` is the served OpenAPI document; `extra` lists routes outside it, as
    /// `(path template, methods)` with `{name}` segments matching anything.
    pub fn new(spec: &str, extra: &[(&str, &str)]) -> Self {
        let mut routes: Vec<(String, Vec<String>)> = Vec::new();
        if let Ok(doc) = serde_json::from_str::<serde_json::Value>(spec) {
            for (path, item) in doc["paths"].as_object().into_iter().flatten() {
                let mut methods: Vec<String> = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(m, _)| m.to_ascii_uppercase())
                    .collect();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                routes.push((path.clone(), methods));
            }
        }
        for (path, methods) in extra {
            routes.push((
                path.to_string(),
                methods.split(", ").map(str::to_owned).collect(),
            ));
        }
        AllowTable(
            routes
                .into_iter()
                .map(|(path, methods)| {
                    let segments = path
                        .split('/')
                        .map(|seg| (!seg.starts_with('{')).then(|| seg.to_owned()))
                        .collect();
                    (segments, methods.join(", "))
                })
                .collect(),
        )
    }

    fn methods_for(&self, path: &str) -> Option<&str> {
        let parts: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(segments, _)| {
                segments.len() == parts.len()
                    && segments
                        .iter()
                        .zip(&parts)
                        .all(|(seg, part)| seg.as_deref().is_none_or(|s| s == *part))
            })
            .map(|(_, methods)| methods.as_str())
    }

    /// Adds `Allow` to a 405 answer for `path`.
    pub fn complete(&self, path: &str, mut response: Response) -> Response {
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && !response.headers().contains_key(poem::http::header::ALLOW)
            && let Some(allow) = self
                .methods_for(path)
                .and_then(|m| poem::http::HeaderValue::from_str(m).ok())
        {
            response
                .headers_mut()
                .insert(poem::http::header::ALLOW, allow);
        }
        response
    }
}

impl From<crate::db::DbError> for poem::Error {
    fn from(e: crate::db::DbError) -> Self {
        if e.is_busy() {
            poem::Error::from(Busy(e))
        } else {
            poem::Error::from(InternalError::new(e))
        }
    }
}

/// The database had no room for the request in time (every search turn, or every pooled
/// connection, stayed taken): a 503 `server_busy` with `Retry-After`, as for a full server.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Busy(crate::db::DbError);

impl poem::error::ResponseError for Busy {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    fn as_response(&self) -> Response {
        tracing::warn!(error = %crate::error_chain(&self.0), "request refused: the database is busy");
        ErrorCode::ServerBusy.response(self.0.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_is_a_503_server_busy_with_retry_after_not_a_500() {
        let response = poem::Error::from(crate::db::DbError::Busy).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[poem::http::header::RETRY_AFTER],
            crate::limits::RETRY_AFTER_SECS.to_string()
        );
        let other = poem::Error::from(crate::db::DbError::WriterGone).into_response();
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn the_allow_table_lists_each_routes_methods_from_the_spec_and_extras() {
        let spec = r#"{"paths":{"/api/x/{id}":{"get":{},"delete":{}},"/api/y":{"post":{}}}}"#;
        let table = AllowTable::new(spec, &[("/webhooks/{hook}", "POST")]);
        assert_eq!(table.methods_for("/api/x/42"), Some("DELETE, GET, HEAD"));
        assert_eq!(table.methods_for("/api/y"), Some("POST"));
        assert_eq!(table.methods_for("/webhooks/abc"), Some("POST"));
        assert_eq!(table.methods_for("/nope"), None);
    }
}
