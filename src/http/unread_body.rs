//! Answers that leave the request body unread say `Connection: close`, because they do close it.
//!
//! hyper closes a connection whose request body was not read to its end by the time the answer
//! is written, unless the rest happens to be in its buffer already. The answer itself looks like
//! any other, so a client that keeps connections open would send its next request down a closed
//! one and fail. That happens to bodies refused before they are read (missing credentials, an
//! unknown route, a wrong method) and to empty chunked bodies sent to routes that take none.
//! Saying so in the answer lets every client open a new connection instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use bytes::Bytes;
use futures_util::StreamExt;
use poem::http::HeaderValue;
use poem::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use poem::{Body, Endpoint, IntoResponse, Request, Response};

/// Calls `ep` with the request's body watched, and marks the answer `Connection: close` when
/// the body was not read to its end.
pub async fn close_if_unread<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    if !has_body(&req) {
        return Ok(ep.call(req).await?.into_response());
    }
    let read_to_end = Arc::new(AtomicBool::new(false));
    let marker = Arc::clone(&read_to_end);
    // Polled only once the body's own stream has ended.
    let end = futures_util::stream::poll_fn(move |_| -> Poll<Option<std::io::Result<Bytes>>> {
        marker.store(true, Ordering::Relaxed);
        Poll::Ready(None)
    });
    let body = req.take_body().into_bytes_stream().chain(end);
    req.set_body(Body::from_bytes_stream(body));
    let mut response = ep.call(req).await?.into_response();
    if !read_to_end.load(Ordering::Relaxed) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// True when the request is framed with a body: chunked, or a Content-Length above zero.
pub fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}
