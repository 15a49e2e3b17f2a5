//! `POST /webhooks/{hookId}`: verify a delivery with its project's secret and store its pushes.

use std::sync::Arc;

use bytes::Bytes;
use poem::http::{HeaderMap, StatusCode};
use poem::web::{Data, Json, Path};
use poem::{Body, IntoResponse, Request, Response, handler};

use super::AppState;
use super::error::{InternalError, json_error};
use crate::db::projects::HookTarget;
use crate::db::pushes::{Inserted, PreparedPush};
use crate::db::{DbError, projects};
use crate::domain::{NewPush, Provider, SummaryStatus};
use crate::metrics::{Metrics, WebhookOutcome};
use crate::summarize::{SummaryInput, builtin_summary};
use crate::webhook::{Delivery, WebhookError, parse_delivery};

/// Bodies larger than this are parsed off the async threads.
const INLINE_PARSE_LIMIT: usize = 256 * 1024;

fn unknown_hook() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "unknown_webhook",
        "no project has this webhook URL; copy it again from `git-push-tracker project list` or the dashboard",
    )
}

#[handler]
pub async fn receive(
    Path(hook_id): Path<String>,
    req: &Request,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Response> {
    let metrics = &state.metrics;
    let claimed_provider = crate::webhook::provider_of(req.headers());
    let refuse = |code: &str| metrics.rejection(claimed_provider, code);
    // Hook ids are 32 alphanumerics; anything else cannot match, so skip the lookup.
    if hook_id.len() > 64 || !hook_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        refuse("unknown_webhook");
        return Ok(unknown_hook());
    }
    let (mut target, mut fresh) = match state.hooks.get(&hook_id) {
        Some(target) => (target, false),
        None => match lookup(state, &hook_id).await? {
            Some(target) => (target, true),
            None => {
                refuse("unknown_webhook");
                return Ok(unknown_hook());
            }
        },
    };

    let body = match body.into_bytes_limit(state.body_limit).await {
        Ok(bytes) => bytes,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            refuse("payload_too_large");
            return Ok(json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the body is over the {} byte limit (--body-limit / PUSH_TRACKER_BODY_LIMIT)",
                    state.body_limit
                ),
            ));
        }
        Err(_) => {
            refuse("unreadable_body");
            return Ok(json_error(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "the request body could not be read",
            ));
        }
    };

    let headers = req.headers();
    // At most two tries: a second one, with the target read again, when a cached one may be
    // out of date (the re-read one is fresh, so it is never retried).
    let mut retry = false;
    loop {
        if retry {
            let Some(latest) = refresh(state, &hook_id).await? else {
                refuse("unknown_webhook");
                return Ok(unknown_hook());
            };
            (target, fresh) = (latest, true);
        }
        // Most deliveries end up at the writer: announcing this one lets a batch wait for it.
        let announced = state.writer.incoming();
        let verified = verify(headers, &body, &target).await?;
        // A cached secret may have been rotated by another process. Pushes are re-checked by
        // the writer inside the commit; a refusal or a non-push answer is re-checked here.
        let recheck = match &verified {
            Ok(Delivery::Pushes { .. }) => false,
            Ok(_) => true,
            Err(e) => e.status() == 401,
        };
        if recheck && !fresh {
            retry = true;
            continue;
        }
        let delivery = match verified {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::info!(project = %target.project, code = e.code(), "webhook refused");
                refuse(e.code());
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                return Ok(json_error(status, e.code(), e.to_string()));
            }
        };
        return match delivery {
            Delivery::Ping { provider } => {
                metrics.webhook(Some(provider), WebhookOutcome::Ping);
                Ok(Json(serde_json::json!({
                    "ok": true,
                    "message": format!("pong: {provider} webhook for project {} is set up", target.project),
                }))
                .into_response())
            }
            Delivery::Ignored { provider, event } => {
                metrics.webhook(Some(provider), WebhookOutcome::Ignored);
                let event: String = event.chars().take(64).collect();
                Ok(Json(serde_json::json!({
                    "ok": true,
                    "message": format!("{provider} event {event:?} ignored: only push events are tracked"),
                }))
                .with_status(StatusCode::ACCEPTED)
                .into_response())
            }
            Delivery::Pushes { provider, pushes } => {
                let prepared = prepare(state, pushes);
                let written = state
                    .writer
                    .write(
                        announced,
                        target.project_id,
                        target.secret.clone(),
                        prepared,
                    )
                    .await;
                let inserted = match written {
                    Ok(inserted) => inserted,
                    // The project was deleted or its secret rotated since it was cached.
                    Err(DbError::NotFound | DbError::StaleSecret) if !fresh => {
                        retry = true;
                        continue;
                    }
                    Err(DbError::NotFound | DbError::StaleSecret) => {
                        refuse("unknown_webhook");
                        return Ok(unknown_hook());
                    }
                    Err(e) => return Err(InternalError::new(e).into()),
                };
                tracing::info!(project = %target.project, %provider, pushes = inserted.len(), "webhook accepted");
                Ok(accepted(metrics, provider, &inserted))
            }
        };
    }
}

/// Decides each push's id, first summary and status before it goes to the writer.
fn prepare(state: &AppState, pushes: Vec<NewPush>) -> Vec<PreparedPush> {
    let received_at = state.clock.now();
    pushes
        .into_iter()
        .map(|push| {
            let input = SummaryInput::from_new(&push);
            // Deletions and pushes without commits need no model, nor does the builtin one.
            let done = state.summarize_at_ingest || !input.needs_model();
            let status = if done {
                SummaryStatus::Summarized
            } else {
                SummaryStatus::Pending
            };
            // Time-ordered ids append to the id index instead of landing on random pages of
            // it, which keeps inserts cheap at millions of pushes.
            let public_id = uuid::Uuid::now_v7().to_string();
            let summary = builtin_summary(&input);
            PreparedPush::new(public_id, push, summary, status, received_at)
        })
        .collect()
}

/// The answer to a committed delivery: 201 when something new was stored, 200 for a repeat.
fn accepted(metrics: &Metrics, provider: Provider, inserted: &[Inserted]) -> Response {
    let stored = inserted
        .iter()
        .filter(|i| matches!(i, Inserted::New(_)))
        .count();
    let duplicates = inserted.len() - stored;
    let (outcome, message) = match (stored, duplicates) {
        (0, 0) => (
            WebhookOutcome::Ignored,
            "the delivery held no ref changes".to_owned(),
        ),
        (0, _) => (
            WebhookOutcome::Duplicate,
            "already received: this delivery was stored before".to_owned(),
        ),
        (n, _) => (
            WebhookOutcome::Stored,
            format!("stored {n} push{}", if n == 1 { "" } else { "es" }),
        ),
    };
    metrics.webhook(Some(provider), outcome);
    Json(serde_json::json!({
        "ok": true,
        "message": message,
        "pushes": inserted.iter().map(Inserted::public_id).collect::<Vec<_>>(),
        "duplicates": duplicates,
    }))
    .with_status(if stored > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
    .into_response()
}

/// The project behind a hook id, straight from the database; cached for the next delivery.
async fn lookup(state: &AppState, hook_id: &str) -> poem::Result<Option<HookTarget>> {
    let id = hook_id.to_owned();
    let found = state
        .blocking(move |conn| match projects::find_by_hook_id(conn, &id) {
            Err(DbError::NotFound) => Ok(None),
            other => other.map(Some),
        })
        .await?;
    if let Some(target) = &found {
        state.hooks.insert(hook_id, target.clone());
    }
    Ok(found)
}

/// Drops the cached target and reads it again.
async fn refresh(state: &AppState, hook_id: &str) -> poem::Result<Option<HookTarget>> {
    state.hooks.forget(hook_id);
    lookup(state, hook_id).await
}

/// Checks the signature and parses; large bodies off the async threads.
async fn verify(
    headers: &HeaderMap,
    body: &Bytes,
    target: &HookTarget,
) -> poem::Result<Result<Delivery, WebhookError>> {
    if body.len() <= INLINE_PARSE_LIMIT {
        return Ok(parse_delivery(headers, body, target.secret.expose()));
    }
    let (headers, body, secret) = (headers.clone(), body.clone(), target.secret.clone());
    Ok(
        tokio::task::spawn_blocking(move || parse_delivery(&headers, &body, secret.expose()))
            .await
            .map_err(InternalError::new)?,
    )
}
