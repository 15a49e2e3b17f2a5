//! The live routes: the push stream (Server-Sent Events) and the Atom feed of a project, the
//! owner's stream for the dashboard, and the rule that a key in a URL is accepted on the first
//! two only.
//!
//! A stream replays the change log after its cursor (`Last-Event-ID` or `?after=`) from the
//! database, then follows the [`ChangeHub`](crate::stream::ChangeHub)'s broadcast: it subscribes
//! before it reads, and skips broadcast changes at or below the last one it sent, so nothing
//! falls between the two and nothing comes twice.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::StreamExt;
use poem::web::Data;
use poem::web::sse::{Event, SSE};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::auth::{ApiKey, Basic};
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};
use tokio::sync::broadcast::error::RecvError;

use super::admin::AdminAuth;
use super::api::{ApiTags, ProjectKey, PushItem, in_scope, unauthorized};
use super::error::ErrorBody;
use super::pattern::{Matching, RefType};
use super::{AppState, atom, etag};
use crate::db::{Change, ChangeCursor, ChangeKind, PageStart, ProjectScope, Store};
use crate::domain::{Push, RefKind};
use crate::error_code::ErrorCode;
use crate::history::QueryError;
use crate::stream::{Broadcast, ChangeFilter, Subscription};

/// The reconnection delay a stream asks of its client, once, at its start.
const RETRY_MS: u64 = 3_000;
/// Changes replayed from the database per read.
const REPLAY_BATCH: u32 = 200;
/// Pushes sent as the current state after a `stream.expired` event.
const CURRENT_STATE: u32 = 20;
const FEED_DEFAULT_LIMIT: i64 = 50;
const FEED_MAX_LIMIT: i64 = 100;

/// The two routes that take a key in the URL.
pub const STREAM_PATH: &str = "/api/v1/pushes/stream";
pub const FEED_PATH: &str = "/api/v1/pushes.atom";

/// A project key in the query string, `?token=gpt_...`, for clients that cannot send headers
/// (a browser's `EventSource`, feed readers). Accepted on the stream and the feed only.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "token", key_in = "query")]
pub struct QueryKey(ApiKey);

/// A project key as the password of HTTP Basic authentication (any user name), for feed
/// readers. Accepted on the stream and the feed only.
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
pub struct BasicKey(Basic);

/// A project key in the header, the query string or Basic authentication.
#[derive(SecurityScheme)]
pub enum UrlKey {
    Bearer(ProjectKey),
    Query(QueryKey),
    Basic(BasicKey),
}

impl UrlKey {
    fn token(&self) -> &str {
        match self {
            UrlKey::Bearer(key) => &key.0.token,
            UrlKey::Query(key) => &key.0.key,
            UrlKey::Basic(key) => &key.0.password,
        }
    }
}

/// Events as `text/event-stream`, documented as an array of their `data`: the project's
/// stream and the owner's differ only in what an event carries.
pub struct Events<T>(SSE, PhantomData<fn() -> T>);

impl<T> Events<T> {
    fn new(sse: SSE) -> Self {
        Events(sse, PhantomData)
    }
}

impl<T: Type> Payload for Events<T> {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            items: Some(Box::new(T::schema_ref())),
            ..MetaSchema::new_with_format("array", "event-stream")
        }))
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T> IntoResponse for Events<T> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

/// A change as the owner's stream shows it.
#[derive(Debug, Object)]
pub struct OwnerChange {
    /// The project of the push.
    pub project: String,
    pub push: PushItem,
}

/// An Atom 1.0 document.
pub struct AtomXml(String);

impl Payload for AtomXml {
    const CONTENT_TYPE: &'static str = "application/atom+xml; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }
}

impl IntoResponse for AtomXml {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

#[derive(ApiResponse)]
pub enum StreamResponse {
    /// Events `push.created` (a push was stored) and `push.updated` (its summary or status
    /// changed), `data` the push as `GET /api/v1/pushes` lists it and `id` an opaque change
    /// cursor; `stream.expired` when the cursor is older than what is still stored, followed
    /// by the newest pushes as `push.current`. `retry:` once, a comment every 15 seconds.
    #[oai(status = 200)]
    Ok(Events<PushItem>),
    /// `Last-Event-ID`, `after` or a filter is not valid.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The key is missing, unknown or revoked. `WWW-Authenticate` offers Basic (the key as the
    /// password), so a feed reader or browser asks for it, and Bearer.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
}

#[derive(ApiResponse)]
pub enum OwnerStreamResponse {
    /// Every project's `push.created` and `push.updated` events, as on the project stream,
    /// with the project's name beside the push.
    #[oai(status = 200)]
    Ok(Events<OwnerChange>),
    /// `Last-Event-ID` or `after` is not valid.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No admin token or session was presented, or it is not valid.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum FeedResponse {
    /// The feed, newest first.
    #[oai(status = 200)]
    Ok(
        AtomXml,
        #[oai(header = "ETag")] String,
        #[oai(header = "Last-Modified")] String,
    ),
    /// The feed has not changed since the `If-None-Match` or `If-Modified-Since` given.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] String),
    /// A query parameter is invalid; the message names it.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The key is missing, unknown or revoked. `WWW-Authenticate` offers Basic (the key as the
    /// password), so a feed reader or browser asks for it, and Bearer.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
}

/// The challenge of a 401 on the stream and the feed: Basic first, the one a feed reader or a
/// browser answers by asking for a user name and password (the key).
pub const CHALLENGE: &str = r#"Basic realm="git-push-tracker", Bearer realm="git-push-tracker""#;

fn invalid(e: QueryError) -> Json<ErrorBody> {
    Json(ErrorBody::new(ErrorCode::InvalidParameter, e.to_string()))
}

fn bad_cursor() -> Json<ErrorBody> {
    Json(ErrorBody::new(
        ErrorCode::InvalidParameter,
        "`Last-Event-ID` (or `after`) is not an event id this server sent: pass the `id` of the last event as it is, or leave it out to start from now",
    ))
}

/// The cursor a reconnecting client resumes from: the header the browser sends, else `after`.
/// Outer None: none given; inner None: not one of ours.
fn resume_point(header: Option<&str>, query: Option<&str>) -> Option<Option<ChangeCursor>> {
    header
        .filter(|h| !h.trim().is_empty())
        .or(query)
        .map(ChangeCursor::parse)
}

pub struct LiveApi;

#[OpenApi(tag = "ApiTags::Pushes")]
impl LiveApi {
    /// Follow a project's pushes as they arrive and are summarized (Server-Sent Events).
    ///
    /// Resume with `Last-Event-ID` (browsers send it on their own) or `after`: every change
    /// after it is replayed from the database, then the stream goes on live. Besides the
    /// header, the key may come as `?token=gpt_...` or as the password of HTTP Basic
    /// authentication, for `EventSource`, which cannot send headers. A client that reads too
    /// slowly is disconnected and resumes where it left off.
    #[oai(
        path = "/api/v1/pushes/stream",
        method = "get",
        operation_id = "streamPushes"
    )]
    // poem-openapi declares each query parameter as an argument of its handler.
    #[allow(clippy::too_many_arguments)]
    async fn stream(
        &self,
        state: Data<&Arc<AppState>>,
        key: UrlKey,
        /// Only pushes to this branch or tag.
        #[oai(validator(max_length = 1024))]
        branch: Query<Option<String>>,
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
        /// Resume after this event id, as `Last-Event-ID` does (the header wins).
        #[oai(validator(max_length = 64))]
        after: Query<Option<String>>,
        /// The id of the last event received, which a browser sends when it reconnects.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
    ) -> poem::Result<StreamResponse> {
        let resume = match resume_point(last_event_id.0.as_deref(), after.0.as_deref()) {
            Some(None) => return Ok(StreamResponse::BadRequest(bad_cursor())),
            Some(Some(cursor)) => Some(cursor),
            None => None,
        };
        let filter = match ChangeFilter::parse(
            branch.0,
            author.0.unwrap_or_default(),
            repository.0.unwrap_or_default(),
            ref_type.0.map(Matching::into_inner),
        ) {
            Ok(filter) => filter,
            Err(e) => return Ok(StreamResponse::BadRequest(invalid(e))),
        };
        let Some(scope) = in_scope(&state, key.token(), |_, scope| Ok(scope)).await? else {
            return Ok(StreamResponse::Unauthorized(
                unauthorized(),
                CHALLENGE.to_owned(),
            ));
        };
        let feed = Feed::open(&state, Some(scope), filter, resume).await?;
        Ok(StreamResponse::Ok(Events::new(feed.into_sse(&state))))
    }

    /// Follow every project's pushes (the dashboard's live updates), as Server-Sent Events.
    #[oai(
        path = "/api/admin/stream",
        method = "get",
        operation_id = "adminStream"
    )]
    async fn owner_stream(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: AdminAuth,
        /// Resume after this event id, as `Last-Event-ID` does (the header wins).
        #[oai(validator(max_length = 64))]
        after: Query<Option<String>>,
        /// The id of the last event received, which a browser sends when it reconnects.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
    ) -> poem::Result<OwnerStreamResponse> {
        let resume = match resume_point(last_event_id.0.as_deref(), after.0.as_deref()) {
            Some(None) => return Ok(OwnerStreamResponse::BadRequest(bad_cursor())),
            Some(Some(cursor)) => Some(cursor),
            None => None,
        };
        let feed = Feed::open(&state, None, ChangeFilter::default(), resume).await?;
        Ok(OwnerStreamResponse::Ok(Events::new(feed.into_sse(&state))))
    }

    /// A project's pushes as an Atom 1.0 feed, newest first.
    ///
    /// For feed readers: besides the header, the key may come as `?token=gpt_...` or as the
    /// password of HTTP Basic authentication (any user name); create a key for the reader
    /// alone so it can be revoked alone. Answers `304 Not Modified` to `If-None-Match` with the
    /// current `ETag`, or to an `If-Modified-Since` at or after `Last-Modified`.
    #[oai(
        path = "/api/v1/pushes.atom",
        method = "get",
        operation_id = "pushesFeed"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn feed(
        &self,
        state: Data<&Arc<AppState>>,
        key: UrlKey,
        /// Entries: default 50, values over 100 are clamped to 100.
        #[oai(validator(minimum(value = "0")))]
        limit: Query<Option<i64>>,
        /// Only pushes to this branch or tag.
        #[oai(validator(max_length = 1024))]
        branch: Query<Option<String>>,
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
        /// An `ETag` of an earlier answer.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// The `Last-Modified` of an earlier answer.
        #[oai(name = "If-Modified-Since")]
        if_modified_since: Header<Option<String>>,
    ) -> poem::Result<FeedResponse> {
        let asked_limit = limit.0;
        let limit = asked_limit
            .unwrap_or(FEED_DEFAULT_LIMIT)
            .min(FEED_MAX_LIMIT) as u32;
        let filter = match ChangeFilter::parse(
            branch.0,
            author.0.unwrap_or_default(),
            repository.0.unwrap_or_default(),
            ref_type.0.map(Matching::into_inner),
        ) {
            Ok(filter) => filter,
            Err(e) => return Ok(FeedResponse::BadRequest(invalid(e))),
        };
        let public_url = state.public_url.trim_end_matches('/').to_owned();
        let answer = in_scope(&state, key.token(), move |store, scope| {
            let mut keyed = vec!["atom".to_owned(), limit.to_string(), public_url.clone()];
            keyed.extend(filter.key_parts());
            // The head repeats the filters and `limit` as asked, so they key the tag as given.
            keyed.push(format!("{filter:?} {asked_limit:?}"));
            let keyed: Vec<&str> = keyed.iter().map(String::as_str).collect();
            let tag = etag::of_page(&store.project_version(&scope)?, &scope, &keyed);
            if etag::none_match(if_none_match.0.as_deref(), &tag) {
                return Ok(FeedResponse::NotModified(tag));
            }
            let page =
                store.list_pushes(&scope, &filter.page_filter(), limit, &PageStart::Offset(0))?;
            let modified = atom::updated(&page.pushes);
            // RFC 9110: a recipient ignores If-Modified-Since when If-None-Match is present.
            if if_none_match.0.is_none()
                && !page.pushes.is_empty()
                && etag::not_modified_since(if_modified_since.0.as_deref(), modified)
            {
                return Ok(FeedResponse::NotModified(tag));
            }
            Ok(FeedResponse::Ok(
                AtomXml(feed_document(
                    &public_url,
                    &scope,
                    &filter,
                    asked_limit,
                    &page.pushes,
                )),
                tag,
                etag::http_date(modified),
            ))
        })
        .await?;
        Ok(answer
            .unwrap_or_else(|| FeedResponse::Unauthorized(unauthorized(), CHALLENGE.to_owned())))
    }
}

/// The feed's head reflects its filters: the title says them, the self link repeats them (in a
/// fixed order, without any credential), and the id is one per project and filters.
fn feed_document(
    public_url: &str,
    scope: &ProjectScope,
    filter: &ChangeFilter,
    limit: Option<i64>,
    pushes: &[Push],
) -> String {
    let project = scope.project().as_str();
    let mut title = format!("{project}: pushes");
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(branch) = &filter.branch {
        title.push_str(&format!(" to {branch}"));
        query.append_pair("branch", branch);
    }
    if !filter.authors.is_empty() {
        title.push_str(&format!(" by {}", filter.authors.join(" or ")));
        for author in &filter.authors {
            query.append_pair("author", author);
        }
    }
    if !filter.repositories.is_empty() {
        title.push_str(&format!(" in {}", filter.repositories.join(" or ")));
        for repository in &filter.repositories {
            query.append_pair("repository", repository);
        }
    }
    if let Some(kind) = filter.ref_kind {
        title.push_str(match kind {
            RefKind::Branch => " (branches only)",
            RefKind::Tag => " (tags only)",
        });
        query.append_pair("refType", kind.as_str());
    }
    if let Some(limit) = limit {
        query.append_pair("limit", &limit.to_string());
    }
    let query = query.finish();
    let self_url = if query.is_empty() {
        format!("{public_url}{FEED_PATH}")
    } else {
        format!("{public_url}{FEED_PATH}?{query}")
    };
    let mut parts = vec![public_url.to_owned(), project.to_owned()];
    parts.extend(filter.key_parts());
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let id = atom::feed_id(&parts);
    let head = atom::FeedHead {
        id: &id,
        title: &title,
        self_url: &self_url,
        alternate_url: &format!("{public_url}/"),
    };
    atom::render(&head, pushes)
}

/// One stream's state between two events.
struct Feed {
    store: Arc<dyn Store>,
    subscription: Subscription,
    /// None for the owner's stream, which sees every project.
    scope: Option<ProjectScope>,
    filter: ChangeFilter,
    /// The last change sent or passed over; the broadcast's older ones are skipped.
    last: ChangeCursor,
    /// Still reading the database after `last`.
    replaying: bool,
    ready: VecDeque<Event>,
}

impl Feed {
    /// Subscribes, then finds where the stream starts.
    async fn open(
        state: &AppState,
        scope: Option<ProjectScope>,
        filter: ChangeFilter,
        resume: Option<ChangeCursor>,
    ) -> poem::Result<Feed> {
        let subscription = state.hub.subscribe();
        let (scope_for_read, filter_for_read) = (scope.clone(), filter.clone());
        let (start, expired) = state
            .with_store(move |store| {
                let latest = store.latest_change()?;
                let Some(after) = resume else {
                    return Ok((latest, None));
                };
                let floor = match &scope_for_read {
                    Some(scope) => store.change_floor(scope)?,
                    None => ChangeCursor::default(),
                };
                if after >= floor && after <= latest {
                    return Ok((after, None));
                }
                // Too old (or not of this database): say so, then the current state.
                let current = match &scope_for_read {
                    Some(scope) => {
                        store
                            .list_pushes(
                                scope,
                                &filter_for_read.page_filter(),
                                CURRENT_STATE,
                                &PageStart::Offset(0),
                            )?
                            .pushes
                    }
                    None => Vec::new(),
                };
                Ok((latest, Some(current)))
            })
            .await?;
        let mut ready = VecDeque::new();
        ready.push_back(Event::retry(RETRY_MS));
        let replaying = match expired {
            None => resume.is_some(),
            Some(current) => {
                ready.push_back(
                    Event::message(
                        serde_json::json!({
                            "message": "the event id is older than the changes still stored (or not from this server): what follows is the current state, then live changes"
                        })
                        .to_string(),
                    )
                    .event_type("stream.expired")
                    .id(start.encode()),
                );
                for push in current.into_iter().rev() {
                    ready.push_back(
                        Event::message(PushItem::from(push).to_json_string())
                            .event_type("push.current"),
                    );
                }
                false
            }
        };
        Ok(Feed {
            store: Arc::clone(&state.store),
            subscription,
            scope,
            filter,
            last: start,
            replaying,
            ready,
        })
    }

    fn into_sse(self, state: &AppState) -> SSE {
        let events = futures_util::stream::unfold(self, Feed::next).boxed();
        SSE::new(events).keep_alive(state.stream_keepalive)
    }

    async fn next(mut self) -> Option<(Event, Feed)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some((event, self));
            }
            if self.replaying {
                let (store, scope, after) =
                    (Arc::clone(&self.store), self.scope.clone(), self.last);
                let read = tokio::task::spawn_blocking(move || {
                    store.changes_after(after, scope.as_ref(), REPLAY_BATCH)
                })
                .await;
                let batch = match read {
                    Ok(Ok(batch)) => batch,
                    Ok(Err(e)) => {
                        tracing::error!(error = %crate::error_chain(&e), "could not replay the change log");
                        return None;
                    }
                    Err(_) => return None,
                };
                self.replaying = batch.len() == REPLAY_BATCH as usize;
                for change in batch {
                    self.last = change.seq;
                    if self.filter.matches(&change) {
                        let broadcast = Broadcast::new(change);
                        let event = self.event(&broadcast);
                        self.ready.push_back(event);
                    }
                }
                continue;
            }
            let received = tokio::select! {
                received = self.subscription.changes.recv() => received,
                _ = self.subscription.stopping.changed() => return None,
            };
            match received {
                Ok(broadcast) => {
                    let change = &broadcast.change;
                    if change.seq <= self.last
                        || self.scope.as_ref().is_some_and(|s| !change.in_scope(s))
                    {
                        continue;
                    }
                    self.last = change.seq;
                    if self.filter.matches(change) {
                        let event = self.event(&broadcast);
                        return Some((event, self));
                    }
                }
                // It resumes from the database with its last event id.
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "a live stream fell behind and was disconnected");
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn event(&self, broadcast: &Broadcast) -> Event {
        let change = &broadcast.change;
        let data = match self.scope {
            Some(_) => broadcast.item_json(|c| PushItem::from(c.push.clone()).to_json_string()),
            None => broadcast.owner_json(owner_json),
        };
        let kind = match change.kind {
            ChangeKind::Created => "push.created",
            ChangeKind::Updated => "push.updated",
        };
        Event::message(data)
            .event_type(kind)
            .id(change.seq.encode())
    }
}

fn owner_json(change: &Change) -> String {
    OwnerChange {
        project: change.push.project.clone(),
        push: PushItem::from(change.push.clone()),
    }
    .to_json_string()
}

/// Query parameter names that carry a credential, refused outside the stream and the feed.
const KEY_PARAMETERS: &[&str] = &["token", "access_token", "api_key", "apikey", "key"];

/// Middleware: a key in the query string is refused with 401 on every route but the stream and
/// the feed, before anything reads it, so it is never checked, counted or recorded elsewhere.
/// On those two, every 401 carries [`CHALLENGE`], also the one poem answers itself when no
/// credential came at all (before the handler runs).
pub async fn refuse_keys_in_urls<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let path = req.uri().path();
    let takes_url_keys = path == STREAM_PATH || path == FEED_PATH;
    if !takes_url_keys && has_key_in_query(req.uri().query()) {
        return Ok(ErrorCode::KeyInUrl.response(ErrorCode::KeyInUrl.default_message()));
    }
    let mut response = ep.call(req).await?.into_response();
    if takes_url_keys && response.status() == poem::http::StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            poem::http::header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static(CHALLENGE),
        );
    }
    Ok(response)
}

fn has_key_in_query(query: Option<&str>) -> bool {
    let Some(query) = query else {
        return false;
    };
    url::form_urlencoded::parse(query.as_bytes()).any(|(name, value)| {
        KEY_PARAMETERS.iter().any(|k| name.eq_ignore_ascii_case(k))
            || value.starts_with("gpt_")
            || value.starts_with("gpa_")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_the_query_is_found_by_its_name_or_its_prefix() {
        assert!(has_key_in_query(Some("token=x")));
        assert!(has_key_in_query(Some("limit=1&Access_Token=y")));
        assert!(has_key_in_query(Some("q=gpt_abc")));
        assert!(has_key_in_query(Some("q=gpa_abc")));
        assert!(!has_key_in_query(Some("branch=main&limit=5")));
        assert!(!has_key_in_query(None));
    }

    #[test]
    fn the_header_wins_over_after_and_a_foreign_id_is_refused() {
        let c = ChangeCursor::default().encode();
        assert_eq!(
            resume_point(Some(&c), Some("junk")),
            Some(ChangeCursor::parse(&c))
        );
        assert_eq!(resume_point(None, Some("junk")), Some(None));
        assert_eq!(resume_point(None, None), None);
    }
}
