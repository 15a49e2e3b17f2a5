//! The admin API's notification routes under `/api/admin/projects/{name}/notifications`: add,
//! list, remove, pause, resume, send a test and read the deliveries log.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::AppState;
use super::admin::{AdminAuth, AdminTags, Created, Deleted, Found, answer, manage};
use super::api::iso;
use super::error::ErrorBody;
use super::pattern::{Matching, ProjectNameText};
use crate::error_code::ErrorCode;
use crate::manage::{CreatedNotification, NotificationRequest};
use crate::notify::send::Verdict;
use crate::notify::{DeliveryAttempt, Notification};

/// A notification as listed; its URL masked (scheme, host and first path segment).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct NotificationItem {
    pub id: i64,
    pub kind: String,
    pub label: String,
    pub url: String,
    pub branches: Vec<String>,
    pub exclude_authors: Vec<String>,
    pub enabled: bool,
    /// Why it is paused: by the owner, or the receiver answered 404, 410, 401 or 403.
    #[oai(nullable)]
    pub disabled_reason: Option<String>,
    #[oai(nullable)]
    pub last_delivery_at: Option<String>,
    pub failures_in_a_row: u32,
    pub created_at: String,
}

impl From<Notification> for NotificationItem {
    fn from(n: Notification) -> Self {
        let settings = n.settings;
        NotificationItem {
            id: n.id,
            kind: settings.kind.to_string(),
            label: settings.label,
            url: settings.url.masked(),
            branches: settings.branches.patterns(),
            exclude_authors: settings.exclude_authors.names().to_vec(),
            enabled: n.enabled,
            disabled_reason: n.disabled_reason,
            last_delivery_at: n.last_delivery_at.map(iso),
            failures_in_a_row: n.failures_in_a_row,
            created_at: iso(n.created_at),
        }
    }
}

/// A new notification, shown this once with its URL in full and, for `webhook`, the
/// Standard Webhooks signing secret (`whsec_...`).
#[derive(Debug, Object)]
pub struct NotificationCreated {
    #[oai(flatten)]
    pub notification: NotificationItem,
    #[oai(skip_serializing_if_is_none)]
    pub secret: Option<String>,
}

impl From<CreatedNotification> for NotificationCreated {
    fn from(c: CreatedNotification) -> Self {
        let mut notification = NotificationItem::from(c.notification);
        notification.url = c.url.expose().to_string();
        NotificationCreated {
            notification,
            secret: c.secret.map(|s| s.expose().to_owned()),
        }
    }
}

/// One attempt to reach the receiver.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeliveryItem {
    /// The push sent; null for a test message.
    #[oai(nullable)]
    pub push_id: Option<String>,
    pub attempt: u32,
    /// The receiver's HTTP status; null when it could not be reached.
    #[oai(nullable)]
    pub status: Option<u16>,
    #[oai(nullable)]
    pub error: Option<String>,
    /// How long the attempt took.
    pub ms: u64,
    pub at: String,
}

impl From<DeliveryAttempt> for DeliveryItem {
    fn from(a: DeliveryAttempt) -> Self {
        DeliveryItem {
            push_id: a.push_id,
            attempt: a.attempt,
            status: a.status,
            error: a.error,
            ms: a.ms,
            at: iso(a.at),
        }
    }
}

/// The receiver took the test message.
#[derive(Debug, Object)]
pub struct TestResult {
    /// The receiver's HTTP status.
    pub status: u16,
    pub ms: u64,
}

#[derive(ApiResponse)]
pub enum TestAnswer {
    #[oai(status = 200)]
    Ok(Json<TestResult>),
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such project or notification.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Too many wrong admin tokens or logins from this address; retry after the given seconds.
    #[oai(status = 429)]
    TooManyAttempts(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// The receiver did not take it; the message says what it answered (`receiver_failed`).
    #[oai(status = 502)]
    ReceiverFailed(Json<ErrorBody>),
}

pub struct NotificationsApi;

#[OpenApi(prefix_path = "/api/admin", tag = "AdminTags::Admin")]
impl NotificationsApi {
    /// Add a notification: every final summary of a matching push is sent there.
    #[oai(
        path = "/projects/:name/notifications",
        method = "post",
        operation_id = "adminCreateNotification"
    )]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        body: Json<NotificationRequest>,
    ) -> poem::Result<Created<NotificationCreated>> {
        let now = state.clock.now();
        let created = manage(&state, move |m| {
            m.add_notification(name.0.as_ref(), &body.0, now)
        })
        .await?;
        Ok(answer(created, |c| Created::Created(Json(c.into()))))
    }

    /// A project's notifications.
    #[oai(
        path = "/projects/:name/notifications",
        method = "get",
        operation_id = "adminListNotifications"
    )]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
    ) -> poem::Result<Found<Vec<NotificationItem>>> {
        let listed = manage(&state, move |m| m.list_notifications(name.0.as_ref())).await?;
        Ok(answer(listed, |l| {
            Found::Ok(Json(l.into_iter().map(Into::into).collect()))
        }))
    }

    /// Remove a notification with its pending deliveries and log.
    #[oai(
        path = "/projects/:name/notifications/:id",
        method = "delete",
        operation_id = "adminDeleteNotification"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        id: Path<i64>,
    ) -> poem::Result<Deleted> {
        let removed = manage(&state, move |m| {
            m.remove_notification(name.0.as_ref(), id.0)
        })
        .await?;
        Ok(answer(removed, |()| Deleted::NoContent))
    }

    /// Send a test message now: 200 with the receiver's status, or 502 with its error.
    #[oai(
        path = "/projects/:name/notifications/:id/test",
        method = "post",
        operation_id = "adminTestNotification"
    )]
    async fn test(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        id: Path<i64>,
    ) -> poem::Result<TestAnswer> {
        let now = state.clock.now();
        let sent = manage(&state, move |m| {
            m.test_notification(name.0.as_ref(), id.0, now)
        })
        .await?;
        Ok(match sent {
            Ok(sent) => {
                let ms = u64::try_from(sent.elapsed.as_millis()).unwrap_or(u64::MAX);
                match (sent.verdict, sent.status) {
                    (Verdict::Delivered, Some(status)) => {
                        TestAnswer::Ok(Json(TestResult { status, ms }))
                    }
                    _ => TestAnswer::ReceiverFailed(Json(ErrorBody::new(
                        ErrorCode::ReceiverFailed,
                        sent.error
                            .unwrap_or_else(|| ErrorCode::ReceiverFailed.default_message().into()),
                    ))),
                }
            }
            Err(refusal) => TestAnswer::NotFound(refusal.not_found()),
        })
    }

    /// Pause a notification: nothing is sent until it is resumed.
    #[oai(
        path = "/projects/:name/notifications/:id/pause",
        method = "post",
        operation_id = "adminPauseNotification"
    )]
    async fn pause(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        id: Path<i64>,
    ) -> poem::Result<Found<NotificationItem>> {
        let done = manage(&state, move |m| {
            m.set_notification_enabled(name.0.as_ref(), id.0, false)
        })
        .await?;
        Ok(answer(done, |n| Found::Ok(Json(n.into()))))
    }

    /// Resume a notification: deliveries still due are sent, and it counts failures afresh.
    #[oai(
        path = "/projects/:name/notifications/:id/resume",
        method = "post",
        operation_id = "adminResumeNotification"
    )]
    async fn resume(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        id: Path<i64>,
    ) -> poem::Result<Found<NotificationItem>> {
        let done = manage(&state, move |m| {
            m.set_notification_enabled(name.0.as_ref(), id.0, true)
        })
        .await?;
        if let Some(nudger) = &state.deliveries {
            nudger.nudge();
        }
        Ok(answer(done, |n| Found::Ok(Json(n.into()))))
    }

    /// The last 100 attempts to reach the receiver, newest first.
    #[oai(
        path = "/projects/:name/notifications/:id/deliveries",
        method = "get",
        operation_id = "adminNotificationDeliveries"
    )]
    async fn deliveries(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        id: Path<i64>,
    ) -> poem::Result<Found<Vec<DeliveryItem>>> {
        let log = manage(&state, move |m| {
            m.notification_deliveries(name.0.as_ref(), id.0)
        })
        .await?;
        Ok(answer(log, |l| {
            Found::Ok(Json(l.into_iter().map(Into::into).collect()))
        }))
    }
}
