//! `POST /webhooks/{hookId}`: read the body, hand it to the ingest pipeline, count and answer.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Json, Path};
use poem::{Body, IntoResponse, Request, Response, handler};

use super::AppState;
use super::body::read_limited;
use super::error::InternalError;
use crate::ingest::{Outcome, Refused};
use crate::metrics::WebhookOutcome;

#[handler]
pub async fn receive(
    Path(hook_id): Path<String>,
    req: &Request,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Response> {
    let claimed_provider = crate::webhook::provider_of(req.headers());
    // The bytes stay reserved until the delivery is answered: they are held until then.
    let mut held = state.webhook_budget.reservation(state.client(req));
    let body = read_limited(
        body,
        req.headers(),
        state.body_limit,
        state.body_timeout,
        Some(&mut held),
    );
    let outcome = match state.ingest.receive(&hook_id, req.headers(), body).await {
        Ok(outcome) => outcome,
        Err(Refused::Failed(cause)) => return Err(InternalError(cause).into()),
        Err(refused) => {
            let code = refused.code();
            state.metrics.rejection(claimed_provider, code.as_str());
            return Ok(code.response(refused.to_string()));
        }
    };
    let (counted, status) = match (&outcome, outcome.new_pushes()) {
        (Outcome::Pong { .. }, _) => (WebhookOutcome::Ping, StatusCode::OK),
        (Outcome::Ignored { .. }, _) => (WebhookOutcome::Ignored, StatusCode::ACCEPTED),
        (Outcome::Stored { pushes, .. }, 0) if pushes.is_empty() => {
            (WebhookOutcome::Ignored, StatusCode::OK)
        }
        (Outcome::Stored { .. }, 0) => (WebhookOutcome::Duplicate, StatusCode::OK),
        (Outcome::Stored { .. }, _) => (WebhookOutcome::Stored, StatusCode::CREATED),
    };
    state.metrics.webhook(Some(outcome.provider()), counted);
    Ok(Json(outcome.receipt()).with_status(status).into_response())
}
