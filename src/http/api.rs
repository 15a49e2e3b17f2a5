//! The public API under `/api/v1`: a project's pushes, read with that project's Bearer key.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use poem::web::Data;
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, ResponseContent, SecurityScheme, Tags};

use super::error::ErrorBody;
use super::history::wants_markdown;
use super::pattern::{CalendarTime, CursorText, Matching, PushId, RefType, SortOrder};
use super::{AppState, etag};
use crate::db::{DbError, ProjectScope, Store};
use crate::domain::{NewCommit, Push};
use crate::error_code::ErrorCode;
use crate::history::{self, HistoryError, PushQuery, RawQuery};
use crate::tokens::hash_key;

#[derive(Tags)]
pub enum ApiTags {
    /// Read a project's pushes and their summaries with a project API key.
    Pushes,
}

/// A project API key (`gpt_...`), created on the dashboard or with `git-push-tracker key create`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "gpt_...")]
pub struct ProjectKey(pub Bearer);

/// A push as listed.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PushItem {
    /// The push's id (a UUID).
    pub id: String,
    /// The branch or tag name (see `refType`).
    pub branch: String,
    /// Who pushed.
    pub author: String,
    /// How many commits the push holds, even when the host listed fewer.
    pub commit_count: u32,
    /// `- ` bullets, one per line; never empty.
    pub summary: String,
    /// When the push happened (ISO 8601, UTC, milliseconds).
    pub pushed_at: String,
    /// `branch` or `tag`.
    pub ref_type: String,
    /// The full git ref, such as `refs/heads/main`.
    #[oai(rename = "ref")]
    pub git_ref: String,
    pub repository: String,
    /// `github`, `gitlab`, `gitea`, `forgejo` or `bitbucket`.
    pub provider: String,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
    /// True when the host listed fewer commits than `commitCount`.
    pub commits_truncated: bool,
    #[oai(nullable)]
    pub compare_url: Option<String>,
    /// `pending`, `summarized` or `failed`.
    pub summary_status: String,
    /// `builtin` or the name of the model that wrote the summary.
    pub summary_source: String,
    /// When the webhook arrived.
    pub received_at: String,
}

/// A push with its commits.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PushDetail {
    #[oai(flatten)]
    pub push: PushItem,
    #[oai(nullable)]
    pub before: Option<String>,
    #[oai(nullable)]
    pub after: Option<String>,
    /// Summary attempts made so far. Why an attempt failed is the owner's to read (the admin
    /// API's `lastError`): it names the model server.
    pub attempts: u32,
    /// The commits as the host listed them.
    pub commits: Vec<CommitItem>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CommitItem {
    pub sha: String,
    pub message: String,
    pub author: String,
    #[oai(nullable)]
    pub timestamp: Option<String>,
    #[oai(nullable)]
    pub url: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Pagination {
    /// The page size used (after clamping to 100).
    pub limit: u32,
    /// How many matching pushes come before this page (with `cursor`: at the time of this
    /// request).
    pub offset: u64,
    /// How many pushes match the filters in all.
    pub total: u64,
    /// Pass it as `cursor` (with the same filters) for the next page; `null` on the last page
    /// and when `limit` is 0. Opaque: its form may change between releases.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
pub struct PushPage {
    /// The project the key belongs to.
    pub project: String,
    /// Newest first.
    pub pushes: Vec<PushItem>,
    pub pagination: Pagination,
}

/// A page as JSON, or as Markdown for `Accept: text/markdown`.
#[derive(ResponseContent)]
pub enum PageBody {
    Json(Json<PushPage>),
    #[oai(content_type = "text/markdown; charset=utf-8")]
    Markdown(PlainText<String>),
}

#[derive(ApiResponse)]
pub enum ListPushesResponse {
    /// A page of the project's pushes: JSON, or the same page as Markdown for
    /// `Accept: text/markdown`; with a strong `ETag` that changes whenever the page would.
    #[oai(status = 200)]
    Ok(PageBody, #[oai(header = "ETag")] String),
    /// `If-None-Match` named the page's current `ETag`: nothing changed, no body.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] String),
    /// A query parameter is invalid; the message names it.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The key is missing, unknown or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum GetPushResponse {
    /// The push with its commits, with a strong `ETag` that changes whenever the answer would.
    #[oai(status = 200)]
    Ok(Json<Box<PushDetail>>, #[oai(header = "ETag")] String),
    /// `If-None-Match` named the push's current `ETag`: nothing changed, no body.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] String),
    /// The key is missing, unknown or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// This project has no push with that id.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

/// The public API; handlers reach the shared state through `Data`, so the spec can be
/// printed without a database.
pub struct PublicApi;

pub(crate) fn unauthorized() -> Json<ErrorBody> {
    Json(ErrorBody::new(
        ErrorCode::Unauthorized,
        "unknown or revoked API key: send `Authorization: Bearer gpt_...` with a key of this project",
    ))
}

fn bad_request(message: impl Into<String>) -> ListPushesResponse {
    ListPushesResponse::BadRequest(Json(ErrorBody::new(ErrorCode::InvalidParameter, message)))
}

pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Accepts a date (`2024-01-01`, midnight UTC) or a date-time (`2024-01-01T10:00`, with optional
/// seconds, fraction and `Z` or `+HH:MM` offset; UTC when it has none; `T`, `t` or a space
/// between): exactly the forms the `since` and `until` pattern of the document admits.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim_matches(' ');
    let date = NaiveDate::parse_from_str(raw.get(..10)?, "%Y-%m-%d").ok()?;
    let rest = &raw[10..];
    if rest.is_empty() {
        return date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (time, offset_secs) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else if rest.len() > 6 && matches!(rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
        let (time, offset) = rest.split_at(rest.len() - 6);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let hours: i32 = offset.get(1..3)?.parse().ok()?;
        let minutes: i32 = offset.get(4..6)?.parse().ok()?;
        (
            offset.get(3..4).filter(|c| *c == ":").map(|_| time)?,
            sign * (hours * 3600 + minutes * 60),
        )
    } else {
        (rest, 0)
    };
    let time = ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveTime::parse_from_str(time, f).ok())?;
    let local = date.and_time(time);
    let offset = chrono::FixedOffset::east_opt(offset_secs)?;
    local
        .and_local_timezone(offset)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// A `since` or `until` parameter, or the 400 message naming it.
pub fn time_param(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    // An empty `since=` (as a form sends it) means no bound, as the document's pattern says.
    match raw
        .map(|raw| raw.trim_matches(' '))
        .filter(|raw| !raw.is_empty())
    {
        None => Ok(None),
        Some(raw) => parse_time(raw).map(Some).ok_or_else(|| {
            format!(
                "`{name}` must be an ISO 8601 date (2024-01-01) or date-time (2024-01-01T10:00:00Z)"
            )
        }),
    }
}

impl From<Push> for PushItem {
    fn from(p: Push) -> Self {
        PushItem {
            id: p.id,
            branch: p.ref_name,
            author: p.pusher,
            commit_count: p.commit_count,
            summary: p.summary,
            pushed_at: iso(p.pushed_at),
            ref_type: p.ref_kind.as_str().to_owned(),
            git_ref: p.git_ref,
            repository: p.repository,
            provider: p.provider.as_str().to_owned(),
            created: p.created,
            deleted: p.deleted,
            forced: p.forced,
            commits_truncated: p.commits_truncated,
            compare_url: p.compare_url,
            summary_status: p.summary_status.public().as_str().to_owned(),
            summary_source: p.summary_source,
            received_at: iso(p.received_at),
        }
    }
}

impl From<NewCommit> for CommitItem {
    fn from(c: NewCommit) -> Self {
        CommitItem {
            sha: c.sha,
            message: c.message,
            author: c.author,
            timestamp: c.timestamp.map(iso),
            url: c.url,
            added: c.added,
            removed: c.removed,
            modified: c.modified,
        }
    }
}

impl PushDetail {
    pub fn new(push: Push, commits: Vec<NewCommit>) -> Self {
        PushDetail {
            before: push.before.clone(),
            after: push.after.clone(),
            attempts: push.attempts,
            commits: commits.into_iter().map(CommitItem::from).collect(),
            push: push.into(),
        }
    }
}

/// Runs `work` within the project of a presented key, or answers None for an unknown or revoked
/// key. The key check and the work share one blocking hop: a second hop cost about as much as
/// the page query itself.
pub(crate) async fn in_scope<T, F>(state: &AppState, key: &str, work: F) -> poem::Result<Option<T>>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store, ProjectScope) -> Result<T, DbError> + Send + 'static,
{
    let hash = hash_key(key);
    let now = state.clock.now();
    state
        .with_store(move |store| match store.authenticate_key(&hash, now)? {
            Some(scope) => work(store, scope).map(Some),
            None => Ok(None),
        })
        .await
}

#[OpenApi(tag = "ApiTags::Pushes")]
impl PublicApi {
    /// List a project's pushes, newest first.
    ///
    /// The key decides the project: a key never sees another project's pushes.
    #[oai(path = "/api/v1/pushes", method = "get", operation_id = "listPushes")]
    // poem-openapi declares each query parameter as an argument of its handler.
    #[allow(clippy::too_many_arguments)]
    async fn list_pushes(
        &self,
        state: Data<&Arc<AppState>>,
        req: &poem::Request,
        key: ProjectKey,
        /// Page size: default 20, values over 100 are clamped to 100.
        #[oai(validator(minimum(value = "0")))]
        limit: Query<Option<i64>>,
        /// How many pushes to skip.
        #[oai(validator(minimum(value = "0")))]
        offset: Query<Option<i64>>,
        /// Only pushes to this branch or tag. Stored refs are capped at 1024 bytes, so a longer
        /// filter could never match and is refused.
        #[oai(validator(max_length = 1024))]
        branch: Query<Option<String>>,
        /// Only pushes at or after this date (`2024-01-01`, midnight UTC) or date-time
        /// (`2024-01-01T10:00:00Z`; UTC when it has no offset).
        #[oai(validator(max_length = 64))]
        since: Query<Option<Matching<CalendarTime>>>,
        /// Only pushes before this date or date-time (exclusive), in the same forms as `since`:
        /// `since=2024-01-01&until=2024-02-01` is January.
        #[oai(validator(max_length = 64))]
        until: Query<Option<Matching<CalendarTime>>>,
        /// Continue after the previous page: its `pagination.nextCursor`, with the same filters.
        /// Stable while new pushes arrive (none is skipped or repeated), and as fast at the
        /// millionth push as at the first: the way to walk a history.
        cursor: Query<Option<Matching<CursorText>>>,
        /// Full-text search over summaries, commit messages, branch names and authors: every
        /// word must match, with stemming (`authenticate` finds "authentication"); a trailing
        /// `*` matches a prefix (`auth*`). Searched as text: no operators. Blank is no search.
        #[oai(validator(max_length = 1100))]
        q: Query<Option<String>>,
        /// Only pushes by this pusher or holding a commit by this author (username or name,
        /// case-insensitive). Repeat it for any of several.
        #[oai(validator(max_items = 20))]
        author: Query<Option<Vec<String>>>,
        /// Only pushes to this repository (`owner/name`). Repeat it for any of several.
        #[oai(validator(max_items = 20))]
        repository: Query<Option<Vec<String>>>,
        /// Only pushes to branches (`branch`) or to tags (`tag`).
        #[oai(name = "refType")]
        ref_type: Query<Option<Matching<RefType>>>,
        /// `newest` (the default) or, with `q`, `relevance` (best match first; pages by
        /// `offset`, not `cursor`).
        sort: Query<Option<Matching<SortOrder>>>,
        /// An `ETag` of an earlier answer: a 304 without a body when the page is unchanged.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> poem::Result<ListPushesResponse> {
        let raw = RawQuery {
            q: q.0,
            branch: branch.0,
            author: author.0.unwrap_or_default(),
            repository: repository.0.unwrap_or_default(),
            ref_type: ref_type.0.map(Matching::into_inner),
            since: since.0.map(Matching::into_inner),
            until: until.0.map(Matching::into_inner),
            limit: limit.0,
            offset: offset.0,
            cursor: cursor.0.map(Matching::into_inner),
            sort: sort.0.map(Matching::into_inner),
        };
        let query = match PushQuery::parse(raw) {
            Ok(query) => query,
            Err(e) => return Ok(bad_request(e.to_string())),
        };
        let markdown = wants_markdown(req);
        let page = in_scope(&state, &key.0.token, move |store, scope| {
            // The validated query names the page exactly, so it keys the tag with the format.
            let asked = format!("{query:?}");
            let format = if markdown { "markdown" } else { "json" };
            let tag = etag::of_page(
                &store.project_version(&scope)?,
                &scope,
                &["list", format, &asked],
            );
            if etag::none_match(if_none_match.0.as_deref(), &tag) {
                return Ok(Err(tag));
            }
            Ok(Ok((
                tag,
                HistoryError::split(history::list(store, &scope, &query))?,
            )))
        })
        .await?;
        Ok(match page {
            Some(Ok((tag, Ok(page)))) if markdown => ListPushesResponse::Ok(
                PageBody::Markdown(PlainText(history::markdown::page(&page))),
                tag,
            ),
            Some(Ok((tag, Ok(page)))) => ListPushesResponse::Ok(PageBody::Json(Json(page)), tag),
            Some(Ok((_, Err(e)))) => bad_request(e.to_string()),
            Some(Err(tag)) => ListPushesResponse::NotModified(tag),
            None => ListPushesResponse::Unauthorized(unauthorized()),
        })
    }

    /// One push of the key's project, with its commits and the last summary error.
    #[oai(path = "/api/v1/pushes/:id", method = "get", operation_id = "getPush")]
    async fn get_push(
        &self,
        state: Data<&Arc<AppState>>,
        key: ProjectKey,
        /// The push's id.
        id: Path<Matching<PushId>>,
        /// An `ETag` of an earlier answer: a 304 without a body when the push is unchanged.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> poem::Result<GetPushResponse> {
        let found = in_scope(&state, &key.0.token, move |store, scope| {
            // One row by its unique id, without the commits: the check costs less than the answer.
            let Some(version) = store.push_version(&scope, id.0.as_ref())? else {
                return Ok(None);
            };
            let tag = etag::of_page(&(0, 0), &scope, &["push", id.0.as_ref(), &version]);
            if etag::none_match(if_none_match.0.as_deref(), &tag) {
                return Ok(Some(Err(tag)));
            }
            match store.get_push(&scope, id.0.as_ref()) {
                Err(DbError::NotFound) => Ok(None),
                other => other.map(|found| Some(Ok((tag, found)))),
            }
        })
        .await?;
        Ok(match found {
            None => GetPushResponse::Unauthorized(unauthorized()),
            Some(Some(Ok((tag, (push, commits))))) => {
                GetPushResponse::Ok(Json(Box::new(PushDetail::new(push, commits))), tag)
            }
            Some(Some(Err(tag))) => GetPushResponse::NotModified(tag),
            Some(None) => GetPushResponse::NotFound(Json(ErrorBody::new(
                ErrorCode::NotFound,
                "this project has no push with that id",
            ))),
        })
    }
}
