//! `GET /api/v1/digest` and `GET /api/v1/activity`: a range of a project's history in one
//! call, with the project key; and the same history for the owner's dashboard under
//! `/api/admin/projects/{name}/` (search, one push, digest, activity). The work is
//! [`crate::history`]'s.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, OpenApi, ResponseContent};

use super::AppState;
use super::admin::{AdminAuth, AdminTags};
use super::api::{ApiTags, ProjectKey, PushDetail, PushPage, in_scope, unauthorized};
use super::error::ErrorBody;
use super::pattern::{CursorText, Matching, ProjectNameText, RangeTime, RefType, SortOrder};
use crate::db::DbError;
use crate::error_code::ErrorCode;
use crate::history::{
    self, Activity, Digest, GroupBy, HistoryError, PushQuery, QueryError, RawQuery,
};

/// True when the client asked for Markdown (`Accept: text/markdown`) rather than JSON.
pub fn wants_markdown(req: &poem::Request) -> bool {
    req.headers()
        .get_all(poem::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/markdown"))
        })
}

fn error_body(e: &QueryError) -> Json<ErrorBody> {
    let code = match e {
        QueryError::RangeTooLong => ErrorCode::RangeTooLong,
        QueryError::Invalid(_) => ErrorCode::InvalidParameter,
    };
    Json(ErrorBody::new(code, e.to_string()))
}

/// A range route's query (`since`, `until` and the list's filters) as the list parses it.
fn range(
    since: Matching<RangeTime>,
    until: Option<Matching<RangeTime>>,
    q: Option<String>,
    branch: Option<String>,
    author: Option<Vec<String>>,
    repository: Option<Vec<String>>,
    ref_type: Option<Matching<RefType>>,
) -> RawQuery {
    let (since, until) = (since.into_inner(), until.map(Matching::into_inner));
    let ref_type = ref_type.map(Matching::into_inner);
    RawQuery {
        q,
        branch,
        author: author.unwrap_or_default(),
        repository: repository.unwrap_or_default(),
        ref_type,
        since: Some(since),
        until,
        ..RawQuery::default()
    }
}

/// A digest as JSON, or as Markdown for `Accept: text/markdown`.
#[derive(ResponseContent)]
pub enum DigestBody {
    Json(Json<Box<Digest>>),
    #[oai(content_type = "text/markdown; charset=utf-8")]
    Markdown(PlainText<String>),
}

#[derive(ApiResponse)]
pub enum DigestResponse {
    /// The range's digest: JSON, or the same digest as Markdown for `Accept: text/markdown`.
    #[oai(status = 200)]
    Ok(DigestBody),
    /// A parameter is invalid (`invalid_parameter`), or the range is over 366 days
    /// (`range_too_long`).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The key is missing, unknown or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum ActivityResponse {
    /// Pushes and commits per group.
    #[oai(status = 200)]
    Ok(Json<Activity>),
    /// A parameter is invalid (`invalid_parameter`), or the range is over 366 days
    /// (`range_too_long`).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The key is missing, unknown or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
}

pub struct HistoryApi;

#[OpenApi(tag = "ApiTags::Pushes")]
impl HistoryApi {
    /// One summary of a range of a project's pushes.
    ///
    /// Counts (pushes, commits, per author, branch and repository) are the database's. With a
    /// model configured the summary is the model's, written from the range's push summaries
    /// and cached until a push of the range changes; otherwise a builtin digest (themes from
    /// conventional-commit types and recurring words, per author). Takes every filter of
    /// `listPushes`.
    #[oai(path = "/api/v1/digest", method = "get", operation_id = "digest")]
    #[allow(clippy::too_many_arguments)]
    async fn digest(
        &self,
        state: Data<&Arc<AppState>>,
        req: &poem::Request,
        key: ProjectKey,
        /// The range's start: a date (`2024-01-01`, midnight UTC) or date-time.
        #[oai(validator(max_length = 64))]
        since: Query<Matching<RangeTime>>,
        /// The range's end (exclusive), in the same forms; now when left out. At most 366 days
        /// after `since`.
        #[oai(validator(max_length = 64))]
        until: Query<Option<Matching<RangeTime>>>,
        /// As in `listPushes`.
        #[oai(validator(max_length = 1100))]
        q: Query<Option<String>>,
        #[oai(validator(max_length = 1024))] branch: Query<Option<String>>,
        #[oai(validator(max_items = 20))] author: Query<Option<Vec<String>>>,
        #[oai(validator(max_items = 20))] repository: Query<Option<Vec<String>>>,
        #[oai(name = "refType")] ref_type: Query<Option<Matching<RefType>>>,
    ) -> poem::Result<DigestResponse> {
        let raw = range(
            since.0,
            until.0,
            q.0,
            branch.0,
            author.0,
            repository.0,
            ref_type.0,
        );
        let now = state.clock.now();
        let query = match PushQuery::parse_range(raw, now) {
            Ok(query) => query,
            Err(e) => return Ok(DigestResponse::BadRequest(error_body(&e))),
        };
        let markdown = wants_markdown(req);
        let summarizer = Arc::clone(&state.digest_summarizer);
        let digest = in_scope(&state, &key.0.token, move |store, scope| {
            HistoryError::split(history::digest(store, &scope, &query, &*summarizer, now))
        })
        .await?;
        Ok(match digest {
            Some(Ok(d)) if markdown => DigestResponse::Ok(DigestBody::Markdown(PlainText(
                history::markdown::digest(&d),
            ))),
            Some(Ok(d)) => DigestResponse::Ok(DigestBody::Json(Json(Box::new(d)))),
            Some(Err(e)) => DigestResponse::BadRequest(error_body(&e)),
            None => DigestResponse::Unauthorized(unauthorized()),
        })
    }

    /// Pushes and commits per day, week, author, branch or repository over a range.
    ///
    /// Takes every filter of `listPushes`; `since` is required and the range is at most 366
    /// days.
    #[oai(path = "/api/v1/activity", method = "get", operation_id = "activity")]
    #[allow(clippy::too_many_arguments)]
    async fn activity(
        &self,
        state: Data<&Arc<AppState>>,
        key: ProjectKey,
        /// The range's start: a date (`2024-01-01`, midnight UTC) or date-time.
        #[oai(validator(max_length = 64))]
        since: Query<Matching<RangeTime>>,
        /// The range's end (exclusive), in the same forms; now when left out. At most 366 days
        /// after `since`.
        #[oai(validator(max_length = 64))]
        until: Query<Option<Matching<RangeTime>>>,
        /// `day` (the default), `week` (keys are Mondays), `author`, `branch` or `repository`.
        #[oai(name = "groupBy")]
        group_by: Query<Option<GroupBy>>,
        /// As in `listPushes`.
        #[oai(validator(max_length = 1100))]
        q: Query<Option<String>>,
        #[oai(validator(max_length = 1024))] branch: Query<Option<String>>,
        #[oai(validator(max_items = 20))] author: Query<Option<Vec<String>>>,
        #[oai(validator(max_items = 20))] repository: Query<Option<Vec<String>>>,
        #[oai(name = "refType")] ref_type: Query<Option<Matching<RefType>>>,
    ) -> poem::Result<ActivityResponse> {
        let by = group_by.0.unwrap_or(GroupBy::Day);
        let raw = range(
            since.0,
            until.0,
            q.0,
            branch.0,
            author.0,
            repository.0,
            ref_type.0,
        );
        let query = match PushQuery::parse_range(raw, state.clock.now()) {
            Ok(query) => query,
            Err(e) => return Ok(ActivityResponse::BadRequest(error_body(&e))),
        };
        let activity = in_scope(&state, &key.0.token, move |store, scope| {
            HistoryError::split(history::activity(store, &scope, &query, by))
        })
        .await?;
        Ok(match activity {
            Some(Ok(a)) => ActivityResponse::Ok(Json(a)),
            Some(Err(e)) => ActivityResponse::BadRequest(error_body(&e)),
            None => ActivityResponse::Unauthorized(unauthorized()),
        })
    }
}

/// What an owner's history route answers: `T`, or why not.
#[derive(ApiResponse)]
pub enum OwnerAnswer<T: ToJSON> {
    /// The answer, in the shape of the project-key route of the same name.
    #[oai(status = 200)]
    Ok(Json<T>),
    /// A parameter is invalid (`invalid_parameter`), or a range is over 366 days
    /// (`range_too_long`).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No project has that name, or it has no push with that id.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// No admin token or session was presented, or it is not valid.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// A cross-site request with the session cookie was refused.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// Too many wrong admin tokens or logins from this address; retry after the given seconds.
    #[oai(status = 429)]
    TooManyAttempts(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

/// What the owner's history routes answer before their own outcome.
enum Owner<T> {
    Found(T),
    Bad(QueryError),
    NoProject,
}

/// Runs `work` in the owner's scope over the named project.
async fn as_owner<T, F>(state: &AppState, name: String, work: F) -> poem::Result<Owner<T>>
where
    T: Send + 'static,
    F: FnOnce(&dyn crate::db::Store, crate::db::ProjectScope) -> Result<T, HistoryError>
        + Send
        + 'static,
{
    state
        .with_store(move |store| {
            let Ok(name) = crate::domain::ProjectName::parse(&name) else {
                return Ok(Owner::NoProject);
            };
            let scope = match store.owner_scope(&name) {
                Ok(scope) => scope,
                Err(DbError::NotFound) => return Ok(Owner::NoProject),
                Err(e) => return Err(e),
            };
            Ok(match HistoryError::split(work(store, scope))? {
                Ok(value) => Owner::Found(value),
                Err(e) => Owner::Bad(e),
            })
        })
        .await
}

impl<T> Owner<T> {
    fn answer<U: ToJSON>(self, ok: impl FnOnce(T) -> U) -> OwnerAnswer<U> {
        match self {
            Owner::Found(value) => OwnerAnswer::Ok(Json(ok(value))),
            Owner::Bad(e) => OwnerAnswer::BadRequest(error_body(&e)),
            Owner::NoProject => {
                OwnerAnswer::NotFound(Json(ErrorBody::of(ErrorCode::ProjectNotFound)))
            }
        }
    }
}

/// The same history for the project's owner (the dashboard), by project name.
pub struct OwnerHistoryApi;

#[OpenApi(prefix_path = "/api/admin", tag = "AdminTags::Admin")]
impl OwnerHistoryApi {
    /// Search and filter a project's pushes: the parameters and answer of `listPushes`.
    #[oai(
        path = "/projects/:name/history",
        method = "get",
        operation_id = "adminSearchPushes"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        limit: Query<Option<i64>>,
        offset: Query<Option<i64>>,
        #[oai(validator(max_length = 1024))] branch: Query<Option<String>>,
        #[oai(validator(max_length = 64))] since: Query<Option<String>>,
        #[oai(validator(max_length = 64))] until: Query<Option<String>>,
        cursor: Query<Option<Matching<CursorText>>>,
        #[oai(validator(max_length = 1100))] q: Query<Option<String>>,
        #[oai(validator(max_items = 20))] author: Query<Option<Vec<String>>>,
        #[oai(validator(max_items = 20))] repository: Query<Option<Vec<String>>>,
        #[oai(name = "refType")] ref_type: Query<Option<Matching<RefType>>>,
        sort: Query<Option<Matching<SortOrder>>>,
    ) -> poem::Result<OwnerAnswer<PushPage>> {
        let raw = RawQuery {
            q: q.0,
            branch: branch.0,
            author: author.0.unwrap_or_default(),
            repository: repository.0.unwrap_or_default(),
            ref_type: ref_type.0.map(Matching::into_inner),
            since: since.0,
            until: until.0,
            limit: limit.0,
            offset: offset.0,
            cursor: cursor.0.map(Matching::into_inner),
            sort: sort.0.map(Matching::into_inner),
        };
        let query = match PushQuery::parse(raw) {
            Ok(query) => query,
            Err(e) => return Ok(OwnerAnswer::BadRequest(error_body(&e))),
        };
        let page = as_owner(&state, name.0.into_inner(), move |store, scope| {
            history::list(store, &scope, &query)
        })
        .await?;
        Ok(page.answer(|page| page))
    }

    /// One push of a project with its commits and compare link.
    #[oai(
        path = "/projects/:name/pushes/:id",
        method = "get",
        operation_id = "adminGetPush"
    )]
    async fn get_push(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        id: Path<String>,
    ) -> poem::Result<OwnerAnswer<Box<PushDetail>>> {
        let found = as_owner(&state, name.0.into_inner(), move |store, scope| match store
            .get_push(&scope, &id.0)
        {
            Ok(found) => Ok(Some(found)),
            Err(DbError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        })
        .await?;
        Ok(match found {
            Owner::Found(None) => {
                OwnerAnswer::NotFound(Json(ErrorBody::of(ErrorCode::PushNotFound)))
            }
            found => found.answer(|push| {
                let (push, commits) = push.expect("a missing push is answered above");
                Box::new(PushDetail::new(push, commits))
            }),
        })
    }

    /// A digest of a range of a project's pushes: the parameters and answer of `digest`.
    #[oai(
        path = "/projects/:name/digest",
        method = "get",
        operation_id = "adminDigest"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn digest(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        #[oai(validator(max_length = 64))] since: Query<Matching<RangeTime>>,
        #[oai(validator(max_length = 64))] until: Query<Option<Matching<RangeTime>>>,
        #[oai(validator(max_length = 1100))] q: Query<Option<String>>,
        #[oai(validator(max_length = 1024))] branch: Query<Option<String>>,
        #[oai(validator(max_items = 20))] author: Query<Option<Vec<String>>>,
        #[oai(validator(max_items = 20))] repository: Query<Option<Vec<String>>>,
        #[oai(name = "refType")] ref_type: Query<Option<Matching<RefType>>>,
    ) -> poem::Result<OwnerAnswer<Box<Digest>>> {
        let raw = range(
            since.0,
            until.0,
            q.0,
            branch.0,
            author.0,
            repository.0,
            ref_type.0,
        );
        let now = state.clock.now();
        let query = match PushQuery::parse_range(raw, now) {
            Ok(query) => query,
            Err(e) => return Ok(OwnerAnswer::BadRequest(error_body(&e))),
        };
        let summarizer = Arc::clone(&state.digest_summarizer);
        let digest = as_owner(&state, name.0.into_inner(), move |store, scope| {
            history::digest(store, &scope, &query, &*summarizer, now)
        })
        .await?;
        Ok(digest.answer(Box::new))
    }

    /// Activity over a range of a project's pushes: the parameters and answer of `activity`.
    #[oai(
        path = "/projects/:name/activity",
        method = "get",
        operation_id = "adminActivity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn activity(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        #[oai(validator(max_length = 64))] since: Query<Matching<RangeTime>>,
        #[oai(validator(max_length = 64))] until: Query<Option<Matching<RangeTime>>>,
        #[oai(name = "groupBy")] group_by: Query<Option<GroupBy>>,
        #[oai(validator(max_length = 1100))] q: Query<Option<String>>,
        #[oai(validator(max_length = 1024))] branch: Query<Option<String>>,
        #[oai(validator(max_items = 20))] author: Query<Option<Vec<String>>>,
        #[oai(validator(max_items = 20))] repository: Query<Option<Vec<String>>>,
        #[oai(name = "refType")] ref_type: Query<Option<Matching<RefType>>>,
    ) -> poem::Result<OwnerAnswer<Activity>> {
        let by = group_by.0.unwrap_or(GroupBy::Day);
        let raw = range(
            since.0,
            until.0,
            q.0,
            branch.0,
            author.0,
            repository.0,
            ref_type.0,
        );
        let query = match PushQuery::parse_range(raw, state.clock.now()) {
            Ok(query) => query,
            Err(e) => return Ok(OwnerAnswer::BadRequest(error_body(&e))),
        };
        let activity = as_owner(&state, name.0.into_inner(), move |store, scope| {
            history::activity(store, &scope, &query, by)
        })
        .await?;
        Ok(activity.answer(|activity| activity))
    }
}
