//! Owner operations on projects, keys and pushes, shared by the CLI and the admin API.

use chrono::{DateTime, Utc};

use std::sync::Arc;

use crate::db::{
    CursorError, DbError, PageCursor, PageStart, ProjectScope, PushFilter, PushPage, Store,
};
use crate::domain::{ApiKeyInfo, InvalidProjectName, Project, ProjectName, PushCounts};
use crate::error_code::ErrorCode;
use crate::notify::send::{Attempted, Sender};
use crate::notify::{
    AuthorFilter, BranchFilter, DeliveryAttempt, InvalidField, Kind, NewNotification, Notification,
    ReceiverUrl,
};
use crate::secret::Secret;
use crate::tokens;

/// Why an owner operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    InvalidName(#[from] InvalidProjectName),
    #[error("project {0:?} already exists")]
    ProjectExists(String),
    #[error("no project named {0:?} (see `git-push-tracker project list`)")]
    NoSuchProject(String),
    #[error("project {project:?} has no key {key:?} (see `git-push-tracker key list {project}`)")]
    NoSuchKey { project: String, key: String },
    #[error("no push with id {0:?}")]
    NoSuchPush(String),
    #[error("invalid label: {0}")]
    InvalidLabel(&'static str),
    #[error(transparent)]
    InvalidCursor(#[from] CursorError),
    #[error(transparent)]
    InvalidNotification(#[from] InvalidField),
    #[error(
        "project {project:?} has no notification {id} (see `git-push-tracker notify list {project}`)"
    )]
    NoSuchNotification { project: String, id: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ManageError {
    /// The catalog entry this refusal is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ManageError::InvalidName(_) => ErrorCode::InvalidName,
            ManageError::InvalidLabel(_) => ErrorCode::InvalidLabel,
            ManageError::InvalidCursor(_) => ErrorCode::InvalidParameter,
            ManageError::ProjectExists(_) => ErrorCode::ProjectExists,
            ManageError::NoSuchProject(_) => ErrorCode::ProjectNotFound,
            ManageError::NoSuchKey { .. } => ErrorCode::KeyNotFound,
            ManageError::NoSuchPush(_) => ErrorCode::PushNotFound,
            ManageError::InvalidNotification(_) => ErrorCode::InvalidNotification,
            ManageError::NoSuchNotification { .. } => ErrorCode::NotificationNotFound,
            ManageError::Db(e) if e.is_busy() => ErrorCode::ServerBusy,
            ManageError::Db(_) => ErrorCode::InternalError,
        }
    }
}

/// The store's error as a refusal: a row that is not there becomes `missing()`.
fn or_missing(missing: impl FnOnce() -> ManageError) -> impl FnOnce(DbError) -> ManageError {
    move |e| match e {
        DbError::NotFound => missing(),
        e => e.into(),
    }
}

/// A new project with its webhook secret, shown this once.
#[derive(Debug)]
pub struct CreatedProject {
    pub name: ProjectName,
    pub webhook_url: String,
    pub webhook_secret: Secret,
}

/// A new API key, shown this once.
#[derive(Debug)]
pub struct IssuedKey {
    pub project: ProjectName,
    pub key: Secret,
    pub info: ApiKeyInfo,
}

/// A project with its webhook URL and counts, for listings.
#[derive(Debug, Clone)]
pub struct ProjectSummary {
    pub project: Project,
    pub webhook_url: String,
    pub counts: PushCounts,
}

/// Owner operations bound to the store and the public base URL webhook URLs are built on.
#[derive(Clone, Debug)]
pub struct Manager {
    store: Arc<dyn Store>,
    public_url: String,
    /// Sends `notify test` messages.
    sender: Sender,
}

/// A new notification as its creator sees it this once: the URL in full, and for a generic
/// webhook its signing secret.
#[derive(Debug)]
pub struct CreatedNotification {
    pub notification: Notification,
    pub url: ReceiverUrl,
    pub secret: Option<Secret>,
}

// What a new notification is asked to be, as given: the admin API's body as it is, since every
// field is parsed here, for the command line too. `Debug` shows neither the token nor the URL
// (a Slack or Discord URL is itself a secret).
/// A new notification.
#[derive(Default, Clone, poem_openapi::Object)]
#[oai(rename = "NewNotificationBody", rename_all = "camelCase")]
pub struct NotificationRequest {
    /// `slack`, `discord`, `teams`, `mattermost`, `ntfy` or `webhook`.
    pub kind: String,
    /// The receiver: an incoming webhook URL, a Teams Workflows URL, an ntfy topic URL
    /// (`https://ntfy.sh/mytopic`) or any http(s) endpoint for `webhook`.
    pub url: String,
    pub label: Option<String>,
    /// Glob patterns of branches and tags (`main`, `release/*`, `v*`); a leading `!` excludes,
    /// the last matching pattern decides. Absent: every branch and tag.
    pub branches: Option<Vec<String>>,
    /// User names whose pushes are left out (`dependabot[bot]`), case-insensitively: the
    /// pusher, or the authors of all of a push's commits.
    pub exclude_authors: Option<Vec<String>>,
    /// An access token sent as `Authorization: Bearer` (ntfy's `tk_...`; `webhook`).
    pub token: Option<String>,
}

impl std::fmt::Debug for NotificationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationRequest")
            .field("kind", &self.kind)
            .field("url", &"[redacted]")
            .field("label", &self.label)
            .field("branches", &self.branches)
            .field("exclude_authors", &self.exclude_authors)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl NotificationRequest {
    /// Parses every field, the first bad one refused with its name.
    pub fn parse(&self) -> Result<NewNotification, InvalidField> {
        let kind = Kind::parse(self.kind.trim()).ok_or_else(|| {
            InvalidField::new(
                "kind",
                "use slack, discord, teams, mattermost, ntfy or webhook",
            )
        })?;
        Ok(NewNotification {
            kind,
            url: ReceiverUrl::parse(&self.url, kind)?,
            label: crate::notify::parse_label(self.label.as_deref())?,
            branches: BranchFilter::parse(self.branches.as_deref().unwrap_or_default())?,
            exclude_authors: AuthorFilter::parse(
                self.exclude_authors.as_deref().unwrap_or_default(),
            )?,
            token: crate::notify::parse_token(self.token.as_deref(), kind)?,
            secret: (kind == Kind::Webhook).then(crate::notify::sign::generate_secret),
        })
    }
}

/// Labels are free text but short and printable.
const MAX_LABEL_LEN: usize = 100;

impl Manager {
    pub fn new(store: impl Into<Arc<dyn Store>>, public_url: impl Into<String>) -> Self {
        Manager {
            store: store.into(),
            public_url: public_url.into(),
            sender: Sender::default(),
        }
    }

    /// Test messages are sent as deliveries are: the same timeout and address policy.
    pub fn with_notify_sender(mut self, sender: Sender) -> Self {
        self.sender = sender;
        self
    }

    pub fn webhook_url(&self, hook_id: &str) -> String {
        format!("{}/webhooks/{hook_id}", self.public_url)
    }

    fn project(&self, name: &str) -> Result<Project, ManageError> {
        let name = ProjectName::parse(name)?;
        let missing = || ManageError::NoSuchProject(name.to_string());
        self.store.find_project(&name).map_err(or_missing(missing))
    }

    fn scope(&self, name: &str) -> Result<ProjectScope, ManageError> {
        let name = ProjectName::parse(name)?;
        let missing = || ManageError::NoSuchProject(name.to_string());
        self.store.owner_scope(&name).map_err(or_missing(missing))
    }

    /// The store behind these operations, for the admin credential's own calls.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub fn create_project(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<CreatedProject, ManageError> {
        let name = ProjectName::parse(name)?;
        let secret = tokens::generate_webhook_secret();
        let hook_id = tokens::generate_hook_id();
        let created = self.store.create_project(&name, &hook_id, &secret, now);
        match created {
            Ok(project) => Ok(CreatedProject {
                webhook_url: self.webhook_url(&project.hook_id),
                name: project.name,
                webhook_secret: secret,
            }),
            Err(DbError::Conflict) => Err(ManageError::ProjectExists(name.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    pub fn list_projects(&self) -> Result<Vec<ProjectSummary>, ManageError> {
        Ok(self
            .store
            .list_projects()?
            .into_iter()
            .map(|(project, counts)| ProjectSummary {
                webhook_url: self.webhook_url(&project.hook_id),
                counts,
                project,
            })
            .collect())
    }

    pub fn delete_project(&self, name: &str) -> Result<(), ManageError> {
        let project = self.project(name)?;
        self.store.delete_project(&project.name)?;
        Ok(())
    }

    pub fn rotate_secret(&self, name: &str) -> Result<CreatedProject, ManageError> {
        let project = self.project(name)?;
        let secret = tokens::generate_webhook_secret();
        let project = self.store.rotate_secret(&project.name, &secret)?;
        Ok(CreatedProject {
            webhook_url: self.webhook_url(&project.hook_id),
            name: project.name,
            webhook_secret: secret,
        })
    }

    pub fn create_key(
        &self,
        project: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedKey, ManageError> {
        let label = label.trim();
        if label.chars().count() > MAX_LABEL_LEN {
            return Err(ManageError::InvalidLabel("use at most 100 characters"));
        }
        if label.chars().any(char::is_control) {
            return Err(ManageError::InvalidLabel(
                "control characters are not allowed",
            ));
        }
        let project = self.project(project)?;
        let key = tokens::generate_api_key();
        let info = self
            .store
            .create_key(&project, &key.hash, &key.prefix, label, now)?;
        Ok(IssuedKey {
            project: project.name,
            key: key.key,
            info,
        })
    }

    pub fn list_keys(&self, project: &str) -> Result<Vec<ApiKeyInfo>, ManageError> {
        let project = self.project(project)?;
        Ok(self.store.list_keys(&project)?)
    }

    pub fn revoke_key(
        &self,
        project: &str,
        id_or_prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKeyInfo, ManageError> {
        let project = self.project(project)?;
        let missing = || ManageError::NoSuchKey {
            project: project.name.to_string(),
            key: id_or_prefix.chars().take(64).collect(),
        };
        let revoked = self.store.revoke_key(&project, id_or_prefix, now);
        revoked.map_err(or_missing(missing))
    }

    /// A page of a project's pushes, newest first, how many it has in all and where the next
    /// page starts: after `offset` pushes, or after the push `cursor` (a `nextCursor`) names.
    pub fn list_pushes(
        &self,
        project: &str,
        limit: u32,
        offset: u64,
        cursor: Option<&str>,
    ) -> Result<PushPage, ManageError> {
        let scope = self.scope(project)?;
        let filter = PushFilter::default();
        let start = match cursor {
            Some(raw) => PageStart::After(PageCursor::parse(raw, &scope, &filter)?),
            None => PageStart::Offset(offset),
        };
        Ok(self.store.list_pushes(&scope, &filter, limit, &start)?)
    }

    /// Queues a push for summarizing again; `project` scopes it for the admin API.
    pub fn resummarize(
        &self,
        push_id: &str,
        project: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), ManageError> {
        let scope = project.map(|p| self.scope(p)).transpose()?;
        let missing = || ManageError::NoSuchPush(push_id.chars().take(64).collect());
        let requeued = self.store.requeue(push_id, scope.as_ref(), now);
        requeued.map_err(or_missing(missing))
    }

    fn no_such_notification(project: &Project, id: i64) -> impl FnOnce(DbError) -> ManageError {
        let project = project.name.to_string();
        or_missing(move || ManageError::NoSuchNotification { project, id })
    }

    pub fn add_notification(
        &self,
        project: &str,
        request: &NotificationRequest,
        now: DateTime<Utc>,
    ) -> Result<CreatedNotification, ManageError> {
        let project = self.project(project)?;
        let new = request.parse()?;
        self.sender.check_receiver(&new.url)?;
        let notification = self.store.create_notification(&project, &new, now)?;
        Ok(CreatedNotification {
            notification,
            url: new.url,
            secret: new.secret,
        })
    }

    pub fn list_notifications(&self, project: &str) -> Result<Vec<Notification>, ManageError> {
        let project = self.project(project)?;
        Ok(self.store.list_notifications(&project)?)
    }

    pub fn remove_notification(&self, project: &str, id: i64) -> Result<(), ManageError> {
        let project = self.project(project)?;
        self.store
            .delete_notification(&project, id)
            .map_err(Self::no_such_notification(&project, id))
    }

    /// Pauses (`enabled` false) or resumes a notification.
    pub fn set_notification_enabled(
        &self,
        project: &str,
        id: i64,
        enabled: bool,
    ) -> Result<Notification, ManageError> {
        let project = self.project(project)?;
        let reason = (!enabled).then_some("paused by the owner");
        self.store
            .set_notification_enabled(&project, id, enabled, reason)
            .map_err(Self::no_such_notification(&project, id))
    }

    /// Sends a test message now; blocking for as long as the receiver takes (up to the timeout).
    pub fn test_notification(
        &self,
        project: &str,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Attempted, ManageError> {
        let project = self.project(project)?;
        let n = self
            .store
            .find_notification(&project, id)
            .map_err(Self::no_such_notification(&project, id))?;
        Ok(crate::notify::deliver::send_test(
            &*self.store,
            &self.sender,
            &n,
            now,
        )?)
    }

    /// The last attempts to reach a notification's receiver, newest first.
    pub fn notification_deliveries(
        &self,
        project: &str,
        id: i64,
    ) -> Result<Vec<DeliveryAttempt>, ManageError> {
        let project = self.project(project)?;
        self.store
            .notification_attempts(&project, id)
            .map_err(Self::no_such_notification(&project, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_request_debugs_without_its_url_or_token() {
        let request = NotificationRequest {
            kind: "ntfy".into(),
            url: "https://hooks.slack.com/services/T0/B0/SECRETPATH".into(),
            token: Some("tk_SECRETTOKEN".into()),
            ..NotificationRequest::default()
        };
        let shown = format!("{request:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("ntfy"), "{shown}");
    }
}
