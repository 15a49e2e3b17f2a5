//! The error catalog: every code an error answer can carry, one line each with its HTTP status
//! and default message (in the spirit of ntfy's `server/errors.go`).
//!
//! Contact points: the JSON error body (`http::error`), the OpenAPI document's list of codes
//! (`http::api_service`) and the `reason` label of the webhook rejection metric all read it,
//! so a code is written once, here.

macro_rules! catalog {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $status:literal, $message:literal;)*) => {
        /// A stable snake_case code that clients match on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status an answer with this code has.
            pub fn status(self) -> poem::http::StatusCode {
                let status = match self {
                    $(ErrorCode::$variant => $status,)*
                };
                poem::http::StatusCode::from_u16(status).expect("the catalog holds valid statuses")
            }

            /// The message when the situation adds nothing more specific.
            pub fn default_message(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $message,)*
                }
            }
        }
    };
}

catalog! {
    // Webhooks.
    UnknownWebhook = "unknown_webhook", 404,
        "no project has this webhook URL; copy it again from `git-push-tracker project list` or the dashboard";
    UnknownProvider = "unknown_provider", 400,
        "could not tell which git host sent this request";
    MissingSignature = "missing_signature", 401,
        "missing signature: set the webhook secret in your git host's webhook settings";
    InvalidSignature = "invalid_signature", 401,
        "signature does not match: check that the webhook secret in your git host matches this project's secret";
    StaleTimestamp = "stale_timestamp", 401,
        "the delivery's signed timestamp is more than 5 minutes from this server's clock";
    MalformedPayload = "malformed_payload", 400, "the payload could not be parsed";
    // Any request.
    PayloadTooLarge = "payload_too_large", 413, "request body is too large";
    UnreadableBody = "unreadable_body", 400, "the request body could not be read";
    BodyTimeout = "body_timeout", 408,
        "the request body did not arrive in time (--body-timeout / PUSH_TRACKER_BODY_TIMEOUT)";
    ServerBusy = "server_busy", 503,
        "the server is holding as many requests as it allows; retry after the Retry-After seconds";
    UnsupportedContentType = "unsupported_content_type", 415, "unsupported content type";
    BadRequest = "bad_request", 400, "the request is not valid";
    InvalidParameter = "invalid_parameter", 400, "a query parameter is not valid";
    RangeTooLong = "range_too_long", 400,
        "a range covers at most 366 days: narrow `since` and `until`";
    Unauthorized = "unauthorized", 401,
        "missing or invalid credentials: send `Authorization: Bearer <key>`";
    KeyInUrl = "key_in_url", 401,
        "a key in the URL is accepted on /api/v1/pushes/stream and /api/v1/pushes.atom only: send `Authorization: Bearer <key>` instead, and revoke a key that was sent in a URL";
    Forbidden = "forbidden", 403, "this request is not allowed";
    NotFound = "not_found", 404, "no such resource";
    MethodNotAllowed = "method_not_allowed", 405, "this method is not allowed here";
    TooManyAttempts = "too_many_attempts", 429,
        "too many failed logins from this address; wait and try again";
    UnknownHost = "unknown_host", 421,
        "this server does not answer to that host name; use the address in its --public-url";
    InternalError = "internal_error", 500,
        "something went wrong on the server; the log has the details";
    DatabaseUnavailable = "database_unavailable", 503, "the database cannot be read";
    // The owner's operations.
    InvalidName = "invalid_name", 400,
        "invalid project name: use 1 to 64 lowercase letters, digits, '-' or '_'";
    InvalidLabel = "invalid_label", 400, "invalid label";
    ProjectExists = "project_exists", 409, "a project with this name already exists";
    ProjectNotFound = "project_not_found", 404, "no such project";
    KeyNotFound = "key_not_found", 404, "this project has no such key";
    PushNotFound = "push_not_found", 404, "no push with this id";
    // Notifications.
    InvalidNotification = "invalid_notification", 400,
        "a notification field is not valid; the message names it";
    NotificationNotFound = "notification_not_found", 404, "this project has no such notification";
    ReceiverFailed = "receiver_failed", 502, "the receiver did not take the message";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_is_a_distinct_snake_case_word_with_an_error_status() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} is listed twice");
            assert!(
                text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{text} is not snake_case"
            );
            let status = code.status();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{text}: {status}"
            );
            assert!(!code.default_message().is_empty());
        }
    }
}
