//! `GET /metrics`: the Prometheus scrape endpoint, and who may read it.

use std::sync::Arc;

use poem::web::Data;
use poem::{IntoResponse, Request, Response, handler};

use super::AppState;
use crate::error_code::ErrorCode;

/// The one place that decides who may scrape: anyone with `--metrics-public`, otherwise only a
/// request carrying the admin token as a bearer token (the same check as the admin API).
pub async fn authorized(state: &AppState, req: &Request) -> poem::Result<bool> {
    if state.metrics_public {
        return Ok(true);
    }
    // The scheme is case-insensitive, as on the admin API (RFC 9110).
    let presented = super::admin::bearer_token(req).map(str::to_owned);
    match presented {
        Some(token) => {
            state
                .with_store(move |store| crate::auth::is_admin_token(store, &token))
                .await
        }
        None => Ok(false),
    }
}

#[handler]
pub async fn metrics(req: &Request, Data(state): Data<&Arc<AppState>>) -> poem::Result<Response> {
    if !authorized(state, req).await? {
        return Ok(ErrorCode::Unauthorized.response(
            "send `Authorization: Bearer <admin token>` (see `git-push-tracker admin reset-token`), or start the server with --metrics-public",
        ));
    }
    let db_stats = state.with_store(|store| store.stats()).await?;
    Ok(state
        .metrics
        .render(&db_stats)
        .with_content_type(crate::metrics::CONTENT_TYPE)
        .into_response())
}
