//! The admin API under `/api/admin`: the owner's projects, keys and pushes, behind the admin
//! token or a dashboard session, with login, logout and the cross-site request checks.

use std::sync::Arc;
use std::time::Instant;

use poem::Request;
use poem::http::{Method, StatusCode};
use poem::web::Data;
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem_openapi::auth::{ApiKey, Bearer};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseError, ParseFromJSON, ToJSON};
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags};

use super::AppState;
use super::api::{Pagination, PushItem, iso};
use super::error::{ErrorBody, InternalError};
use super::pattern::{CursorText, KeyRef, Matching, ProjectNameText, PushId};
use crate::auth;
use crate::domain::{ApiKeyInfo, Push};
use crate::error_code::ErrorCode;
use crate::manage::{CreatedProject, IssuedKey, ManageError, Manager, ProjectSummary};

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "gpt_session";
/// The header the dashboard sends with every state-changing call; a cross-site page cannot
/// set it without a CORS preflight, which this server never grants.
pub const CSRF_HEADER: &str = "x-requested-with";
pub const CSRF_HEADER_VALUE: &str = "git-push-tracker";

#[derive(Tags)]
pub enum AdminTags {
    /// The owner's operations: projects, webhook secrets, API keys and pushes.
    Admin,
}

/// The admin token (`gpa_...`) printed at the first start, set with PUSH_TRACKER_ADMIN_TOKEN,
/// or replaced with `git-push-tracker admin reset-token`. Project keys are refused.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "gpa_...", checker = "check_token")]
pub struct AdminToken(());

/// The dashboard session cookie set by `POST /api/admin/login`. State-changing requests made
/// with it must send `X-Requested-With: git-push-tracker` and, if they send `Origin`, this
/// server's own.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "gpt_session",
    key_in = "cookie",
    checker = "check_session"
)]
pub struct AdminSession(());

/// Either admin credential.
#[derive(SecurityScheme)]
pub enum AdminAuth {
    Token(AdminToken),
    Session(AdminSession),
}

fn state(req: &Request) -> poem::Result<&Arc<AppState>> {
    req.data::<Arc<AppState>>()
        .ok_or_else(|| InternalError::new(std::io::Error::other("app state missing")).into())
}

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<()> {
    let state = state(req)?;
    let ok = state
        .with_store(move |store| auth::is_admin_token(store, &bearer.token))
        .await?;
    ok.then_some(())
        .ok_or_else(|| poem_openapi::error::AuthorizationError.into())
}

async fn check_session(req: &Request, cookie: ApiKey) -> poem::Result<()> {
    let state = state(req)?;
    let now = state.clock.now();
    let live = state
        .with_store(move |store| auth::session_is_live(store, &cookie.key, now))
        .await?;
    if !live {
        return Err(poem_openapi::error::AuthorizationError.into());
    }
    if !same_site_write(req, &state.public_origin) {
        return Err(poem::Error::from_string(
            "cross-site request refused: send `X-Requested-With: git-push-tracker` from this \
             server's own pages, or use `Authorization: Bearer <admin token>`",
            StatusCode::FORBIDDEN,
        ));
    }
    Ok(())
}

/// Cookie-authenticated writes must come from this server's own page: the custom header
/// forces a preflight on any cross-site attempt, and a sent `Origin` must be ours.
fn same_site_write(req: &Request, public_origin: &str) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if header(CSRF_HEADER) != Some(CSRF_HEADER_VALUE) {
        return false;
    }
    if header("sec-fetch-site").is_some_and(|site| site != "same-origin") {
        return false;
    }
    let Some(origin) = header("origin") else {
        return true;
    };
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    origin == public_origin || (origin_host.is_some() && origin_host == header("host"))
}

/// The token of the request's (first) `Authorization: Bearer` header; the scheme is
/// case-insensitive (RFC 9110).
pub fn bearer_token(req: &Request) -> Option<&str> {
    let value = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Middleware for the admin API and `/metrics`: an `Authorization: Bearer` token is an attempt
/// at the admin token, counted in the login limiter like a dashboard login. A client that used
/// up its attempts is answered 429 with `Retry-After` before its token is looked at; a wrong
/// token counts, the right one does not. The route's own check then answers as before.
pub async fn count_bearer_attempts<E: poem::Endpoint>(
    ep: Arc<E>,
    req: Request,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse;
    let path = req.uri().path();
    let guarded = path.starts_with("/api/admin/") || path == "/metrics";
    let (Some(state), Some(token), true) = (
        req.data::<Arc<AppState>>().cloned(),
        bearer_token(&req).map(str::to_owned),
        guarded,
    ) else {
        return Ok(ep.call(req).await?.into_response());
    };
    if path == "/metrics" && state.metrics_public {
        return Ok(ep.call(req).await?.into_response());
    }
    let client = state.client(&req);
    let attempt = match state.login_limiter.reserve(client, Instant::now()) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let mut response = ErrorCode::TooManyAttempts.response(
                "too many wrong admin tokens or logins from this address; wait and try again",
            );
            if let Ok(value) = wait.as_secs().max(1).to_string().parse() {
                response.headers_mut().insert("retry-after", value);
            }
            return Ok(response);
        }
    };
    let right = state
        .with_store(move |store| auth::is_admin_token(store, &token))
        .await?;
    if right {
        attempt.succeeded();
    }
    Ok(ep.call(req).await?.into_response())
}

/// Owner operations are blocking: they run off the async threads. Unexpected failures become
/// an opaque 500; refusals come back for a typed answer.
pub(super) async fn manage<T, F>(state: &AppState, work: F) -> poem::Result<Result<T, Refusal>>
where
    T: Send + 'static,
    F: FnOnce(&Manager) -> Result<T, ManageError> + Send + 'static,
{
    let manager = state.manager.clone();
    let result = tokio::task::spawn_blocking(move || work(&manager))
        .await
        .map_err(InternalError::new)?;
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(ManageError::Db(e)) => Err(e.into()),
        Err(e) => Ok(Err(Refusal::from(e))),
    }
}

/// An expected refusal of an owner operation.
pub enum Refusal {
    BadRequest(ErrorBody),
    NotFound(ErrorBody),
    Conflict(ErrorBody),
}

impl Refusal {
    /// The 404 body of a route whose names all come from its path: a name that cannot exist
    /// is simply not found.
    pub fn not_found(self) -> Json<ErrorBody> {
        match self {
            Refusal::BadRequest(b) | Refusal::NotFound(b) | Refusal::Conflict(b) => Json(b),
        }
    }
}

impl From<ManageError> for Refusal {
    fn from(e: ManageError) -> Self {
        let code = e.code();
        let body = ErrorBody::new(code, e.to_string());
        match code.status() {
            StatusCode::CONFLICT => Refusal::Conflict(body),
            StatusCode::NOT_FOUND => Refusal::NotFound(body),
            _ => Refusal::BadRequest(body),
        }
    }
}

/// A read or an action on something that exists.
#[derive(ApiResponse)]
pub enum Found<T: ToJSON + ParseFromJSON> {
    #[oai(status = 200)]
    Ok(Json<T>),
    /// No admin token or session was presented, or it is not valid.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// A cross-site request with the session cookie was refused.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such project, key or push.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Too many wrong admin tokens or logins from this address; retry after the given seconds.
    #[oai(status = 429)]
    TooManyAttempts(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl<T: ToJSON + ParseFromJSON> From<Refusal> for Found<T> {
    fn from(r: Refusal) -> Self {
        Found::NotFound(r.not_found())
    }
}

/// A page of a project's pushes.
#[derive(ApiResponse)]
pub enum PushList {
    #[oai(status = 200)]
    Ok(Json<AdminPushPage>),
    /// `cursor` is malformed, was made for another project, or comes with an `offset`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No admin token or session was presented, or it is not valid.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// A cross-site request with the session cookie was refused.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such project.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Too many wrong admin tokens or logins from this address; retry after the given seconds.
    #[oai(status = 429)]
    TooManyAttempts(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

/// Something created, shown this once.
#[derive(ApiResponse)]
pub enum Created<T: ToJSON + ParseFromJSON> {
    #[oai(status = 201)]
    Created(Json<T>),
    /// The name or label is invalid; the message says why.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The project does not exist.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// A project with this name already exists.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many wrong admin tokens or logins from this address; retry after the given seconds.
    #[oai(status = 429)]
    TooManyAttempts(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl<T: ToJSON + ParseFromJSON> From<Refusal> for Created<T> {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::BadRequest(b) => Created::BadRequest(Json(b)),
            Refusal::NotFound(b) => Created::NotFound(Json(b)),
            Refusal::Conflict(b) => Created::Conflict(Json(b)),
        }
    }
}

pub(super) fn answer<T, R: From<Refusal>>(
    result: Result<T, Refusal>,
    ok: impl FnOnce(T) -> R,
) -> R {
    match result {
        Ok(v) => ok(v),
        Err(refusal) => refusal.into(),
    }
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Done.
    #[oai(status = 204)]
    NoContent,
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Too many wrong admin tokens or logins from this address; retry after the given seconds.
    #[oai(status = 429)]
    TooManyAttempts(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl From<Refusal> for Deleted {
    fn from(r: Refusal) -> Self {
        Deleted::NotFound(r.not_found())
    }
}

#[derive(ApiResponse)]
pub enum LoginResponse {
    /// Logged in: the session cookie is set (HttpOnly, SameSite=Strict, for 7 days).
    #[oai(status = 204)]
    LoggedIn,
    /// The body is not `{"token": "..."}` JSON.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Not the admin token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The body is not sent as `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Too many failed logins from this address; retry after the given seconds.
    #[oai(status = 429)]
    TooManyAttempts(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct LoginRequest {
    /// The admin token.
    #[oai(deserialize_with = "string_only")]
    pub token: String,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ServerInfo {
    /// The base URL webhook URLs and the docs are built on.
    pub public_url: String,
    pub version: String,
    /// What writes the summaries: `builtin` or the configured model's name.
    pub summarizer: String,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AdminProject {
    pub name: String,
    /// Where the git host delivers pushes.
    pub webhook_url: String,
    pub pushes: u64,
    /// Pushes waiting for a summary.
    pub pending: u64,
    /// Pushes whose summary failed after every attempt.
    pub failed: u64,
    pub created_at: String,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewProject {
    /// 1 to 64 lowercase letters, digits, '-' or '_' (the document's pattern is written by
    /// `http::contract`, so that a name outside it gets the manager's `invalid_name` answer).
    #[oai(deserialize_with = "string_only")]
    pub name: String,
}

/// A project's webhook secret, shown this once.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ProjectSecret {
    pub name: String,
    pub webhook_url: String,
    pub webhook_secret: String,
}

impl From<CreatedProject> for ProjectSecret {
    fn from(p: CreatedProject) -> Self {
        ProjectSecret {
            name: p.name.to_string(),
            webhook_url: p.webhook_url,
            webhook_secret: p.webhook_secret.expose().to_owned(),
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AdminKey {
    /// Revoke by this id or by the prefix.
    pub id: i64,
    pub label: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    pub created_at: String,
    /// `null` until the key is first used.
    #[oai(nullable)]
    pub last_used_at: Option<String>,
    /// `null` while the key is live.
    #[oai(nullable)]
    pub revoked_at: Option<String>,
    pub revoked: bool,
}

impl From<ApiKeyInfo> for AdminKey {
    fn from(k: ApiKeyInfo) -> Self {
        AdminKey {
            id: k.id,
            label: k.label,
            prefix: k.prefix,
            created_at: iso(k.created_at),
            last_used_at: k.last_used_at.map(iso),
            revoked: k.revoked_at.is_some(),
            revoked_at: k.revoked_at.map(iso),
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for, such as "dashboard" or "slack-bot": up to 100 characters, no
    /// control characters; surrounding spaces are trimmed. Leave it out for no label (`null`
    /// is refused).
    #[oai(
        deserialize_with = "label_not_null",
        validator(pattern = r"^[^\x00-\x1f\x7f-\x9f]{0,100}$")
    )]
    pub label: Option<String>,
}

/// A missing `label` is no label, but `null` is refused: the document declares a string, and
/// poem-openapi alone would read `null` as missing.
fn label_not_null(
    value: Option<serde_json::Value>,
) -> poem_openapi::types::ParseResult<Option<String>> {
    match value {
        Some(serde_json::Value::Null) => Err(ParseError::custom(
            "`label` cannot be null: send a string, or leave it out for no label",
        )),
        None => Ok(None),
        Some(value) => string_only(Some(value))
            .map(Some)
            .map_err(ParseError::propagate),
    }
}

/// A JSON string and nothing else: poem-openapi alone would read `false` or `1` as text.
fn string_only(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<String> {
    match value {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(other) => Err(ParseError::custom(format!(
            "expected a string, found {}",
            match other {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Array(_) => "an array",
                _ => "an object",
            }
        ))),
        None => Err(ParseError::expected_input()),
    }
}

/// A new API key, shown this once.
#[derive(Object)]
pub struct CreatedKey {
    pub key: String,
    pub label: String,
    pub prefix: String,
    pub id: i64,
    /// The project the key reads.
    pub project: String,
}

impl From<IssuedKey> for CreatedKey {
    fn from(k: IssuedKey) -> Self {
        CreatedKey {
            key: k.key.expose().to_owned(),
            label: k.info.label,
            prefix: k.info.prefix,
            id: k.info.id,
            project: k.project.to_string(),
        }
    }
}

impl From<ProjectSummary> for AdminProject {
    fn from(p: ProjectSummary) -> Self {
        AdminProject {
            name: p.project.name.to_string(),
            webhook_url: p.webhook_url,
            pushes: p.counts.total,
            pending: p.counts.pending,
            failed: p.counts.failed,
            created_at: iso(p.project.created_at),
        }
    }
}

/// A push as its owner sees it: the public fields plus the summary's attempts and last error.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AdminPush {
    #[oai(flatten)]
    pub push: PushItem,
    pub attempts: u32,
    /// Why the last summary attempt failed; `null` when none did.
    #[oai(nullable)]
    pub last_error: Option<String>,
}

impl From<Push> for AdminPush {
    fn from(p: Push) -> Self {
        AdminPush {
            attempts: p.attempts,
            last_error: p.last_error.clone(),
            push: p.into(),
        }
    }
}

#[derive(Debug, Object)]
pub struct AdminPushPage {
    pub project: String,
    /// Newest first.
    pub pushes: Vec<AdminPush>,
    pub pagination: Pagination,
}

#[derive(Debug, Object)]
pub struct Queued {
    /// The push's id.
    pub id: String,
    /// Always `pending`: the worker picks it up within its interval.
    pub status: String,
}

/// The admin API; stateless like the public one, so the spec prints without a database.
pub struct AdminApi;

#[OpenApi(prefix_path = "/api/admin", tag = "AdminTags::Admin")]
impl AdminApi {
    /// Log in with the admin token; sets the dashboard's session cookie.
    ///
    /// Five failed attempts per minute from one address are allowed; then 429.
    #[oai(path = "/login", method = "post", operation_id = "adminLogin")]
    async fn login(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        cookies: &CookieJar,
        body: Json<LoginRequest>,
    ) -> poem::Result<LoginResponse> {
        let client = state.client(req);
        let attempt = match state.login_limiter.reserve(client, Instant::now()) {
            Ok(attempt) => attempt,
            Err(wait) => {
                return Ok(LoginResponse::TooManyAttempts(
                    Json(ErrorBody::of(ErrorCode::TooManyAttempts)),
                    wait.as_secs().max(1),
                ));
            }
        };
        let now = state.clock.now();
        let token = body.0.token;
        let session = state
            .with_store(move |store| {
                if auth::is_admin_token(store, &token)? {
                    auth::start_session(store, now).map(Some)
                } else {
                    Ok(None)
                }
            })
            .await?;
        let Some(session) = session else {
            // The reserved attempt stays counted.
            drop(attempt);
            return Ok(LoginResponse::Unauthorized(Json(ErrorBody::new(
                ErrorCode::Unauthorized,
                "that is not the admin token; it was printed at the first start, or run \
                 `git-push-tracker admin reset-token`",
            ))));
        };
        attempt.succeeded();
        cookies.add(session_cookie(&state, session.expose(), false));
        Ok(LoginResponse::LoggedIn)
    }

    /// End the dashboard session and clear its cookie.
    ///
    /// Without a session cookie there is nothing to end: 204 all the same.
    #[oai(path = "/logout", method = "post", operation_id = "adminLogout")]
    async fn logout(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        cookies: &CookieJar,
    ) -> poem::Result<Deleted> {
        // A write with the cookie like any other: a sibling site must not log the owner out.
        // Without the cookie there is no session to end, so nothing to protect.
        if cookies.get(SESSION_COOKIE).is_some() && !same_site_write(req, &state.public_origin) {
            return Ok(Deleted::Forbidden(Json(ErrorBody::new(
                ErrorCode::Forbidden,
                "cross-site request refused: send `X-Requested-With: git-push-tracker` from \
                 this server's own pages",
            ))));
        }
        if let Some(cookie) = cookies.get(SESSION_COOKIE) {
            let id = cookie.value_str().to_owned();
            state
                .with_store(move |store| auth::end_session(store, &id))
                .await?;
        }
        cookies.add(session_cookie(&state, "", true));
        Ok(Deleted::NoContent)
    }

    /// The server's public URL and version, for the dashboard's docs.
    #[oai(path = "/info", method = "get", operation_id = "adminInfo")]
    async fn info(&self, state: Data<&Arc<AppState>>, _auth: AdminAuth) -> Found<ServerInfo> {
        Found::Ok(Json(ServerInfo {
            public_url: state.public_url.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summarizer: state.summarizer.clone(),
        }))
    }

    /// Every project with its webhook URL and push counts.
    #[oai(path = "/projects", method = "get", operation_id = "adminListProjects")]
    async fn list_projects(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
    ) -> poem::Result<Found<Vec<AdminProject>>> {
        let listed = manage(&state, |m| m.list_projects()).await?;
        Ok(answer(listed, |projects| {
            Found::Ok(Json(projects.into_iter().map(AdminProject::from).collect()))
        }))
    }

    /// Create a project; answers its webhook URL and secret, shown this once.
    #[oai(
        path = "/projects",
        method = "post",
        operation_id = "adminCreateProject"
    )]
    async fn create_project(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        body: Json<NewProject>,
    ) -> poem::Result<Created<ProjectSecret>> {
        let now = state.clock.now();
        let created = manage(&state, move |m| m.create_project(&body.0.name, now)).await?;
        Ok(answer(created, |p| Created::Created(Json(p.into()))))
    }

    /// Delete a project with its keys, pushes and commits.
    #[oai(
        path = "/projects/:name",
        method = "delete",
        operation_id = "adminDeleteProject"
    )]
    async fn delete_project(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
    ) -> poem::Result<Deleted> {
        let deleted = manage(&state, move |m| m.delete_project(name.0.as_ref())).await?;
        Ok(answer(deleted, |()| Deleted::NoContent))
    }

    /// Replace a project's webhook secret; the new one is shown this once.
    #[oai(
        path = "/projects/:name/rotate-secret",
        method = "post",
        operation_id = "adminRotateSecret"
    )]
    async fn rotate_secret(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
    ) -> poem::Result<Found<ProjectSecret>> {
        let rotated = manage(&state, move |m| m.rotate_secret(name.0.as_ref())).await?;
        Ok(answer(rotated, |p| Found::Ok(Json(p.into()))))
    }

    /// A project's API keys (never the keys themselves).
    #[oai(
        path = "/projects/:name/keys",
        method = "get",
        operation_id = "adminListKeys"
    )]
    async fn list_keys(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
    ) -> poem::Result<Found<Vec<AdminKey>>> {
        let keys = manage(&state, move |m| m.list_keys(name.0.as_ref())).await?;
        Ok(answer(keys, |keys| {
            Found::Ok(Json(keys.into_iter().map(AdminKey::from).collect()))
        }))
    }

    /// Create an API key for a project; the key is shown this once.
    #[oai(
        path = "/projects/:name/keys",
        method = "post",
        operation_id = "adminCreateKey"
    )]
    async fn create_key(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        body: Json<NewKey>,
    ) -> poem::Result<Created<CreatedKey>> {
        let now = state.clock.now();
        let created = manage(&state, move |m| {
            m.create_key(name.0.as_ref(), body.0.label.as_deref().unwrap_or(""), now)
        })
        .await?;
        Ok(answer(created, |k| Created::Created(Json(k.into()))))
    }

    /// Revoke a key, named by its id or its prefix.
    #[oai(
        path = "/projects/:name/keys/:key",
        method = "delete",
        operation_id = "adminRevokeKey"
    )]
    async fn revoke_key(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        /// The key's `id` or its `prefix`.
        key: Path<Matching<KeyRef>>,
    ) -> poem::Result<Found<AdminKey>> {
        let now = state.clock.now();
        let revoked = manage(&state, move |m| m.revoke_key(&name.0, &key.0, now)).await?;
        Ok(answer(revoked, |k| Found::Ok(Json(k.into()))))
    }

    /// A project's pushes with their summary status and last error, newest first.
    #[oai(
        path = "/projects/:name/pushes",
        method = "get",
        operation_id = "adminListPushes"
    )]
    async fn list_pushes(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The project's name.
        name: Path<Matching<ProjectNameText>>,
        /// Page size: default 20, values over 100 are clamped to 100.
        #[oai(validator(minimum(value = "0")))]
        limit: Query<Option<i64>>,
        /// How many pushes to skip.
        #[oai(validator(minimum(value = "0")))]
        offset: Query<Option<i64>>,
        /// Continue after the previous page: its `pagination.nextCursor`. Stable while new
        /// pushes arrive, and as fast deep in the history as on page one.
        cursor: Query<Option<Matching<CursorText>>>,
    ) -> poem::Result<PushList> {
        // The validators keep both at 0 or more.
        let limit = limit.0.unwrap_or(20).clamp(0, 100) as u32;
        let offset = offset.0.unwrap_or(0).max(0) as u64;
        if cursor.0.is_some() && offset > 0 {
            return Ok(PushList::BadRequest(Json(ErrorBody::new(
                ErrorCode::InvalidParameter,
                "`cursor` and `offset` cannot be used together: a cursor already says where the page starts",
            ))));
        }
        let project = name.0.to_string();
        let listed = manage(&state, move |m| {
            m.list_pushes(name.0.as_ref(), limit, offset, cursor.0.as_deref())
        })
        .await?;
        Ok(match listed {
            Ok(page) => PushList::Ok(Json(AdminPushPage {
                project,
                pushes: page.pushes.into_iter().map(AdminPush::from).collect(),
                pagination: Pagination {
                    limit,
                    offset: page.offset,
                    total: page.total,
                    next_cursor: page.next.map(|c| c.encode()),
                },
            })),
            Err(Refusal::BadRequest(b)) if b.error.code == ErrorCode::InvalidParameter.as_str() => {
                PushList::BadRequest(Json(b))
            }
            Err(refusal) => PushList::NotFound(refusal.not_found()),
        })
    }

    /// Queue a push for a new summary (resets its attempts).
    #[oai(
        path = "/pushes/:id/resummarize",
        method = "post",
        operation_id = "adminResummarize"
    )]
    async fn resummarize(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// The push's id.
        id: Path<Matching<PushId>>,
    ) -> poem::Result<Found<Queued>> {
        let now = state.clock.now();
        let push = id.0.to_string();
        let queued = manage(&state, move |m| m.resummarize(id.0.as_ref(), None, now)).await?;
        if let (Ok(()), Some(worker)) = (&queued, &state.worker) {
            worker.nudge();
        }
        Ok(answer(queued, |()| {
            Found::Ok(Json(Queued {
                id: push,
                status: "pending".to_owned(),
            }))
        }))
    }
}

/// The session cookie, or its expired twin that clears it.
fn session_cookie(state: &AppState, value: &str, expired: bool) -> Cookie {
    let mut cookie = Cookie::new_with_str(SESSION_COOKIE, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/");
    cookie.set_secure(state.public_url.starts_with("https://"));
    let max_age = if expired {
        std::time::Duration::ZERO
    } else {
        auth::SESSION_TTL.to_std().unwrap_or_default()
    };
    cookie.set_max_age(max_age);
    cookie
}
