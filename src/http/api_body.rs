//! Every `/api` body is capped: at most [`LOGIN_BODY_LIMIT`] for the login and
//! [`API_BODY_LIMIT`] for the rest, counted as it streams (chunked too), and it must arrive
//! within the body deadline. poem-openapi's `Json` extractor would read a body of any size, and
//! poem's `SizeLimit` only checks Content-Length (and refuses a request without one).
//!
//! The body is not read here: it is handed on behind a counting stream, so a request refused
//! for its credentials is still answered before its body is read. When the stream stops a body
//! (over the cap, or too slow), the answer is the 413 or 408 whatever the extractor made of it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use poem::http::header::CONTENT_LENGTH;
use poem::web::Data;
use poem::{Body, Endpoint, FromRequest, IntoResponse, Request, Response};
use tokio::time::Sleep;

use super::AppState;
use super::body::BodyError;
use crate::error_code::ErrorCode;
use crate::limits::{API_BODY_LIMIT, LOGIN_BODY_LIMIT};

/// Why the stream stopped a body, if it did.
const FLOWING: u8 = 0;
const TOO_LARGE: u8 = 1;
const TOO_SLOW: u8 = 2;

pub async fn limit<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    if !super::unread_body::has_body(&req) {
        return Ok(ep.call(req).await?.into_response());
    }
    let limit = if req.uri().path() == "/api/admin/login" {
        LOGIN_BODY_LIMIT
    } else {
        API_BODY_LIMIT
    };
    let too_large = || {
        ErrorCode::PayloadTooLarge
            .response(format!("the body is over this route's {limit} byte limit"))
    };
    let declared: Option<u64> = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(too_large());
    }
    let body_timeout = Data::<&Arc<AppState>>::from_request_without_body(&req)
        .await?
        .body_timeout;
    let stopped = Arc::new(AtomicU8::new(FLOWING));
    let body = Counted {
        inner: Box::pin(req.take_body().into_bytes_stream()),
        read: 0,
        limit,
        deadline: Box::pin(tokio::time::sleep(body_timeout)),
        stopped: Arc::clone(&stopped),
    };
    req.set_body(Body::from_bytes_stream(body));
    // The extractor's error (or answer) is replaced when the stream stopped the body.
    let answer = ep.call(req).await;
    match stopped.load(Ordering::Relaxed) {
        TOO_LARGE => Ok(too_large()),
        TOO_SLOW => Ok(BodyError::TimedOut.response()),
        _ => Ok(answer?.into_response()),
    }
}

/// The body's bytes, ended with an error once more than `limit` arrived or the deadline passed.
struct Counted {
    inner: BoxStream<'static, std::io::Result<Bytes>>,
    read: usize,
    limit: usize,
    deadline: Pin<Box<Sleep>>,
    stopped: Arc<AtomicU8>,
}

impl Counted {
    fn stop(&self, why: u8, message: &str) -> Poll<Option<std::io::Result<Bytes>>> {
        self.stopped.store(why, Ordering::Relaxed);
        Poll::Ready(Some(Err(std::io::Error::other(message.to_owned()))))
    }
}

impl Stream for Counted {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.stopped.load(Ordering::Relaxed) != FLOWING {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.read += chunk.len();
                if this.read > this.limit {
                    return this.stop(TOO_LARGE, "the body is over the limit");
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => {
                this.stop(TOO_SLOW, "the body did not arrive in time")
            }
            other => other,
        }
    }
}
