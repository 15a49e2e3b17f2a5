//! The webhook pipeline without HTTP: find the hook's project (cache first), verify and parse the
//! delivery, decide each push's first summary, and commit the pushes through the ingest writer.
//!
//! Contact points: `http::webhooks` reads the body and hands it to [`Ingest::receive`], then maps
//! the [`Outcome`] or [`Refused`] to an answer; [`crate::webhook`] verifies and parses;
//! [`crate::db`] holds the hook targets ([`Store::find_hook`]) and commits ([`IngestWriter`]);
//! pushes left pending are the summary worker's ([`crate::worker`]).

mod hook_cache;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use poem::http::HeaderMap;
use serde::Serialize;

use crate::clock::Clock;
use crate::db::writer::IngestWriter;
use crate::db::{DbError, HookTarget, Inserted, PreparedPush, Store};
use crate::domain::{NewPush, ProjectName, Provider, SummaryStatus};
use crate::error_code::ErrorCode;
use crate::summarize::{SummaryInput, builtin_summary};
use crate::webhook::{Delivery, WebhookError, parse_delivery};
use hook_cache::HookCache;

/// Bodies larger than this are parsed off the async threads.
const INLINE_PARSE_LIMIT: usize = 256 * 1024;

/// What an accepted delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The host's ping or test delivery: the webhook is set up.
    Pong {
        provider: Provider,
        project: ProjectName,
    },
    /// A verified event other than a push.
    Ignored { provider: Provider, event: String },
    /// The delivery's pushes are committed (new ones, or redeliveries of stored ones).
    Stored {
        provider: Provider,
        pushes: Vec<Inserted>,
    },
}

impl Outcome {
    pub fn provider(&self) -> Provider {
        match self {
            Outcome::Pong { provider, .. }
            | Outcome::Ignored { provider, .. }
            | Outcome::Stored { provider, .. } => *provider,
        }
    }

    /// What the sender is told.
    pub fn message(&self) -> String {
        match self {
            Outcome::Pong { provider, project } => {
                format!("pong: {provider} webhook for project {project} is set up")
            }
            Outcome::Ignored { provider, event } => {
                format!("{provider} event {event:?} ignored: only push events are tracked")
            }
            Outcome::Stored { pushes, .. } => match (self.new_pushes(), pushes.len()) {
                (0, 0) => "the delivery held no ref changes".to_owned(),
                (0, _) => "already received: this delivery was stored before".to_owned(),
                (1, _) => "stored 1 push".to_owned(),
                (n, _) => format!("stored {n} pushes"),
            },
        }
    }

    /// What the sender is told, as the body of the answer.
    pub fn receipt(&self) -> Receipt<'_> {
        let stored = match self {
            Outcome::Stored { pushes, .. } => Some(pushes.as_slice()),
            _ => None,
        };
        Receipt {
            ok: true,
            message: self.message(),
            pushes: stored.map(|p| p.iter().map(Inserted::public_id).collect()),
            duplicates: stored.map(|p| p.len() - self.new_pushes()),
        }
    }

    /// How many pushes were stored for the first time (0 for a redelivery).
    pub fn new_pushes(&self) -> usize {
        match self {
            Outcome::Stored { pushes, .. } => pushes
                .iter()
                .filter(|i| matches!(i, Inserted::New(_)))
                .count(),
            _ => 0,
        }
    }
}

/// `{"ok": true, "message"}`, and for stored pushes their ids and how many were repeats.
#[derive(Debug, Serialize)]
pub struct Receipt<'a> {
    ok: bool,
    message: String,
    /// The stored pushes' ids, in the order of the delivery's ref changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pushes: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicates: Option<usize>,
}

/// Why a delivery was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No project has this hook id (any more).
    #[error("{}", ErrorCode::UnknownWebhook.default_message())]
    UnknownHook,
    /// The project's secret or the payload refused it.
    #[error(transparent)]
    Webhook(WebhookError),
    /// The body could not be read whole (too large, or the connection failed).
    #[error("{message}")]
    Body { code: ErrorCode, message: String },
    /// Something unexpected; the cause is for the log, never for the sender.
    #[error("the delivery could not be stored")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Refused {
    pub fn code(&self) -> ErrorCode {
        match self {
            Refused::UnknownHook => ErrorCode::UnknownWebhook,
            Refused::Webhook(e) => e.code(),
            Refused::Body { code, .. } => *code,
            Refused::Failed(_) => ErrorCode::InternalError,
        }
    }

    fn failed(e: impl std::error::Error + Send + Sync + 'static) -> Refused {
        Refused::Failed(Box::new(e))
    }
}

/// The pipeline, shared by every webhook request.
pub struct Ingest {
    store: Arc<dyn Store>,
    writer: IngestWriter,
    hooks: HookCache,
    clock: Arc<dyn Clock>,
    /// Pushes get their final summary as they are stored (the builtin summarizer is the one
    /// configured), instead of waiting in the queue for a model.
    summarize_at_ingest: bool,
}

impl Ingest {
    pub fn new(
        store: Arc<dyn Store>,
        writer: IngestWriter,
        clock: Arc<dyn Clock>,
        summarize_at_ingest: bool,
    ) -> Ingest {
        Ingest {
            store,
            writer,
            hooks: HookCache::default(),
            clock,
            summarize_at_ingest,
        }
    }

    /// Verifies, parses and stores one delivery for `hook_id`. The body is awaited only once
    /// the hook is known, so a delivery to an unknown hook is refused before it is read.
    ///
    /// A cached target may be out of date: another process can rotate the secret or delete the
    /// project. A stored push is safe (the writer checks the secret inside the commit); any
    /// other answer reached with a cached target is given once more with the target read again.
    pub async fn receive<E: Into<Refused>>(
        &self,
        hook_id: &str,
        headers: &HeaderMap,
        body: impl Future<Output = Result<Bytes, E>>,
    ) -> Result<Outcome, Refused> {
        // Hook ids are 32 alphanumerics; anything else cannot match, so skip the lookup.
        if hook_id.len() > 64 || !hook_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Refused::UnknownHook);
        }
        let cached = self.hooks.get(hook_id);
        let target = match &cached {
            Some(target) => target.clone(),
            None => self.lookup(hook_id).await?,
        };
        let body = body.await.map_err(Into::into)?;
        let tried = self.deliver(&target, headers, &body).await;
        if cached.is_none() || !tried.may_be_stale {
            return tried.result;
        }
        self.hooks.forget(hook_id);
        let target = self.lookup(hook_id).await?;
        self.deliver(&target, headers, &body).await.result
    }

    async fn deliver(&self, target: &HookTarget, headers: &HeaderMap, body: &Bytes) -> Tried {
        // Most deliveries end up at the writer: announcing this one lets a batch wait for it.
        let announced = self.writer.incoming();
        let delivery = match verify(headers, body, target, self.clock.now()).await {
            Ok(Ok(delivery)) => delivery,
            Ok(Err(refusal)) => {
                let may_be_stale = refusal.code().status() == 401;
                tracing::info!(project = %target.project, code = %refusal.code(), "webhook refused");
                return Tried::new(Err(Refused::Webhook(refusal)), may_be_stale);
            }
            Err(failed) => return Tried::new(Err(failed), false),
        };
        let (provider, pushes) = match delivery {
            Delivery::Ping { provider } => {
                let project = target.project.clone();
                return Tried::new(Ok(Outcome::Pong { provider, project }), true);
            }
            Delivery::Ignored { provider, event } => {
                let event = event.chars().take(64).collect();
                return Tried::new(Ok(Outcome::Ignored { provider, event }), true);
            }
            Delivery::Pushes { provider, pushes } => (provider, pushes),
        };
        let prepared = prepare(pushes, self.clock.now(), self.summarize_at_ingest);
        let written = self
            .writer
            .write(
                announced,
                target.project_id,
                target.secret.clone(),
                prepared,
            )
            .await;
        match written {
            Ok(pushes) => {
                let ids: Vec<&str> = pushes.iter().map(Inserted::public_id).collect();
                tracing::info!(project = %target.project, %provider, pushes = ?ids, "webhook accepted");
                Tried::new(Ok(Outcome::Stored { provider, pushes }), false)
            }
            // The project was deleted or its secret rotated since the target was read.
            Err(DbError::NotFound | DbError::StaleSecret) => {
                Tried::new(Err(Refused::UnknownHook), true)
            }
            Err(e) => Tried::new(Err(Refused::failed(e)), false),
        }
    }

    /// The project behind a hook id, straight from the store; cached for the next delivery.
    async fn lookup(&self, hook_id: &str) -> Result<HookTarget, Refused> {
        let (store, id) = (Arc::clone(&self.store), hook_id.to_owned());
        let found = tokio::task::spawn_blocking(move || store.find_hook(&id))
            .await
            .map_err(Refused::failed)?;
        match found {
            Ok(target) => {
                self.hooks.insert(hook_id, target.clone());
                Ok(target)
            }
            Err(DbError::NotFound) => Err(Refused::UnknownHook),
            Err(e) => Err(Refused::failed(e)),
        }
    }
}

/// One try at a delivery, and whether a cached target could have made it turn out this way.
struct Tried {
    result: Result<Outcome, Refused>,
    may_be_stale: bool,
}

impl Tried {
    fn new(result: Result<Outcome, Refused>, may_be_stale: bool) -> Tried {
        Tried {
            result,
            may_be_stale,
        }
    }
}

/// Checks the signature and parses; large bodies off the async threads.
async fn verify(
    headers: &HeaderMap,
    body: &Bytes,
    target: &HookTarget,
    now: DateTime<Utc>,
) -> Result<Result<Delivery, WebhookError>, Refused> {
    if body.len() <= INLINE_PARSE_LIMIT {
        return Ok(parse_delivery(headers, body, target.secret.expose(), now));
    }
    let (headers, body, secret) = (headers.clone(), body.clone(), target.secret.clone());
    tokio::task::spawn_blocking(move || parse_delivery(&headers, &body, secret.expose(), now))
        .await
        .map_err(Refused::failed)
}

/// Decides each push's id, first summary and status before it goes to the writer.
fn prepare(
    pushes: Vec<NewPush>,
    received_at: DateTime<Utc>,
    summarize_at_ingest: bool,
) -> Vec<PreparedPush> {
    pushes
        .into_iter()
        .map(|push| push.dated(received_at))
        .map(|push| {
            let input = SummaryInput::from_new(&push);
            // Deletions and pushes without commits need no model, nor does the builtin one.
            let status = if summarize_at_ingest || !input.needs_model() {
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

#[cfg(test)]
mod tests;
