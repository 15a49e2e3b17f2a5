//! A span around every request: method, route template, status and latency.
//!
//! The route is the template (`/webhooks/:hook_id`), never the path or the query, so a hook id,
//! a push id or a `token=` value cannot reach the log through it; no header is recorded.
//! Handlers' own events (a refused webhook, an internal error) carry the span's fields.

use std::time::Instant;

use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;
use tracing::field::Empty;

/// The middleware: `.around(trace::requests)`.
pub async fn requests<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = Empty,
        status = Empty,
        latency_ms = Empty,
    );
    let started = Instant::now();
    let response = next
        .call(req)
        .instrument(span.clone())
        .await
        .map(IntoResponse::into_response);
    let (status, route) = match &response {
        Ok(r) => (r.status(), r.data::<PathPattern>().map(|p| p.0.clone())),
        Err(e) => (e.status(), e.data::<PathPattern>().map(|p| p.0.clone())),
    };
    span.record("route", route.as_deref().unwrap_or("(no route)"));
    span.record("status", status.as_u16());
    span.record("latency_ms", started.elapsed().as_secs_f64() * 1000.0);
    tracing::debug!(parent: &span, "request finished");
    response
}
