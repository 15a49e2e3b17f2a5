//! `GET /api/v1/digest` and `GET /api/v1/activity`: a range of a project's history in one
//! call, with the project key; the work is [`crate::history`]'s.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, OpenApi, ResponseContent};

use super::AppState;
use super::api::{ApiTags, ProjectKey, in_scope, unauthorized};
use super::error::ErrorBody;
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
        /// Required: the range's start, a date (`2024-01-01`) or date-time.
        #[oai(validator(max_length = 64))]
        since: Query<Option<String>>,
        /// The range's end (exclusive); now when left out. At most 366 days after `since`.
        #[oai(validator(max_length = 64))]
        until: Query<Option<String>>,
        /// As in `listPushes`.
        #[oai(validator(max_length = 1100))]
        q: Query<Option<String>>,
        #[oai(validator(max_length = 1024))] branch: Query<Option<String>>,
        author: Query<Option<Vec<String>>>,
        repository: Query<Option<Vec<String>>>,
        #[oai(name = "refType")] ref_type: Query<Option<String>>,
    ) -> poem::Result<DigestResponse> {
        let raw = RawQuery {
            q: q.0,
            branch: branch.0,
            author: author.0.unwrap_or_default(),
            repository: repository.0.unwrap_or_default(),
            ref_type: ref_type.0,
            since: since.0,
            until: until.0,
            ..RawQuery::default()
        };
        let now = state.clock.now();
        let query = match PushQuery::parse_range(raw, now) {
            Ok(query) => query,
            Err(e) => return Ok(DigestResponse::BadRequest(error_body(&e))),
        };
        let markdown = wants_markdown(req);
        let summarizer = Arc::clone(&state.digest_summarizer);
        let digest = in_scope(&state, &key, move |store, scope| {
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
        /// Required: the range's start, a date (`2024-01-01`) or date-time.
        #[oai(validator(max_length = 64))]
        since: Query<Option<String>>,
        /// The range's end (exclusive); now when left out. At most 366 days after `since`.
        #[oai(validator(max_length = 64))]
        until: Query<Option<String>>,
        /// `day` (the default), `week` (keys are Mondays), `author`, `branch` or `repository`.
        #[oai(name = "groupBy")]
        group_by: Query<Option<String>>,
        /// As in `listPushes`.
        #[oai(validator(max_length = 1100))]
        q: Query<Option<String>>,
        #[oai(validator(max_length = 1024))] branch: Query<Option<String>>,
        author: Query<Option<Vec<String>>>,
        repository: Query<Option<Vec<String>>>,
        #[oai(name = "refType")] ref_type: Query<Option<String>>,
    ) -> poem::Result<ActivityResponse> {
        let by = match GroupBy::parse(group_by.0.as_deref()) {
            Ok(by) => by,
            Err(e) => return Ok(ActivityResponse::BadRequest(error_body(&e))),
        };
        let raw = RawQuery {
            q: q.0,
            branch: branch.0,
            author: author.0.unwrap_or_default(),
            repository: repository.0.unwrap_or_default(),
            ref_type: ref_type.0,
            since: since.0,
            until: until.0,
            ..RawQuery::default()
        };
        let query = match PushQuery::parse_range(raw, state.clock.now()) {
            Ok(query) => query,
            Err(e) => return Ok(ActivityResponse::BadRequest(error_body(&e))),
        };
        let activity = in_scope(&state, &key, move |store, scope| {
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
