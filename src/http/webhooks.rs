//! `POST /webhooks/{hookId}`: verify a delivery with its project's secret and store its pushes.

use std::pin::pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use poem::http::header::CONTENT_LENGTH;
use poem::http::{HeaderMap, StatusCode};
use poem::web::{Data, Json, Path};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde::Serialize;

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
/// The most set aside for a body from its Content-Length before it arrives.
const BODY_RESERVE_LIMIT: usize = 256 * 1024;

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

    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = match read_body(body, declared, state.body_limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
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
        Err(BodyError::Unreadable) => {
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
        let verified = verify(headers, &body, &target, state.clock.now()).await?;
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
        .map(|push| push.dated(received_at))
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

/// The body of a committed delivery's answer.
#[derive(Serialize)]
struct Accepted<'a> {
    ok: bool,
    message: String,
    /// The stored pushes' ids, in the order of the delivery's ref changes.
    pushes: Vec<&'a str>,
    duplicates: usize,
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
    Json(Accepted {
        ok: true,
        message,
        pushes: inserted.iter().map(Inserted::public_id).collect(),
        duplicates,
    })
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

enum BodyError {
    TooLarge,
    Unreadable,
}

/// Reads a body of at most `limit` bytes. Unlike poem's `into_bytes_limit`, which copies
/// through a 4 KiB buffer into one that keeps growing, it keeps a body that arrives in one piece
/// as it is and sizes the buffer from Content-Length otherwise, and it refuses a body declared
/// too large before reading any of it.
async fn read_body(body: Body, declared: Option<usize>, limit: usize) -> Result<Bytes, BodyError> {
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut chunks = pin!(body.into_bytes_stream());
    let (mut first, mut joined, mut read) = (None::<Bytes>, BytesMut::new(), 0usize);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        read += chunk.len();
        if read > limit {
            return Err(BodyError::TooLarge);
        }
        if let Some(first) = first.take() {
            // Sized from Content-Length, within reason: a header alone must not make the
            // server set aside much memory.
            joined.reserve(declared.unwrap_or(0).min(BODY_RESERVE_LIMIT));
            joined.extend_from_slice(&first);
        }
        if joined.is_empty() {
            first = Some(chunk);
        } else {
            joined.extend_from_slice(&chunk);
        }
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}

/// Checks the signature and parses; large bodies off the async threads.
async fn verify(
    headers: &HeaderMap,
    body: &Bytes,
    target: &HookTarget,
    now: chrono::DateTime<chrono::Utc>,
) -> poem::Result<Result<Delivery, WebhookError>> {
    if body.len() <= INLINE_PARSE_LIMIT {
        return Ok(parse_delivery(headers, body, target.secret.expose(), now));
    }
    let (headers, body, secret) = (headers.clone(), body.clone(), target.secret.clone());
    Ok(
        tokio::task::spawn_blocking(move || parse_delivery(&headers, &body, secret.expose(), now))
            .await
            .map_err(InternalError::new)?,
    )
}
