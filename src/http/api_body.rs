//! Every `/api` body is read here, before any extractor sees it: at most
//! [`LOGIN_BODY_LIMIT`] for the login and [`API_BODY_LIMIT`] for the rest, counted as it
//! streams (chunked too), within the body deadline. poem-openapi's `Json` extractor would read
//! a body of any size, and poem's `SizeLimit` only checks Content-Length (and refuses a request
//! without one).

use std::sync::Arc;

use poem::web::Data;
use poem::{Body, Endpoint, FromRequest, IntoResponse, Request, Response};

use super::AppState;
use super::body::{BodyError, read_limited};
use crate::error_code::ErrorCode;
use crate::limits::{API_BODY_LIMIT, LOGIN_BODY_LIMIT};

pub async fn limit<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    if super::unread_body::has_body(&req) {
        let state = Data::<&Arc<AppState>>::from_request_without_body(&req).await?;
        let body_timeout = state.body_timeout;
        let limit = if req.uri().path() == "/api/admin/login" {
            LOGIN_BODY_LIMIT
        } else {
            API_BODY_LIMIT
        };
        let body = req.take_body();
        match read_limited(body, req.headers(), limit, body_timeout, None).await {
            Ok(bytes) => req.set_body(Body::from_bytes(bytes)),
            Err(BodyError::TooLarge { limit }) => {
                return Ok(ErrorCode::PayloadTooLarge
                    .response(format!("the body is over this route's {limit} byte limit")));
            }
            Err(e) => return Ok(e.response()),
        }
    }
    Ok(ep.call(req).await?.into_response())
}
