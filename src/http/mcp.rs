//! The MCP server at `/mcp`: a project's pushes as tools for AI agents, read with that project's
//! Bearer key, over rmcp's Streamable HTTP transport.
//!
//! One endpoint serves both generations of clients: the `initialize` handshake (2025-03-26 to
//! 2025-11-25) and the stateless 2026-07-28 protocol (`server/discover`, `Mcp-Method`). rmcp runs
//! statelessly with JSON answers: no session to keep, so any replica can answer any request.
//!
//! The key is checked here, before rmcp sees the request (401 JSON without it), and the
//! [`ProjectScope`] it opens travels in the request's extensions to the tools: a tool can read
//! only what that scope gives it. No OAuth discovery is advertised, because clients that find it
//! drop the `Authorization` header they were configured with.
//!
//! Each tool is one [`ToolKind`]: its arguments (input schema from their type, named as the REST
//! API's query parameters), its structured result (output schema from the same poem-openapi type
//! the REST API serves, so both say the same thing) and a text rendering for clients that show
//! text only (the `Accept: text/markdown` Markdown where the API has one). The arguments become a
//! [`RawQuery`] that [`PushQuery`] validates exactly as for the REST handlers, and the answers
//! are [`crate::history`]'s, so a tool and its route cannot drift apart, errors included.

use std::sync::{Arc, LazyLock};

use poem::endpoint::TowerCompatExt;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::registry::Registry;
use poem_openapi::types::{ToJSON, Type};
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use super::api::{PushDetail, PushItem, PushPage};
use crate::db::{DbError, ProjectScope};
use crate::error_code::ErrorCode;
use crate::history::{self, Activity, Digest, GroupBy, HistoryError, PushQuery, RawQuery};
use crate::tokens::hash_key;

/// `/mcp`, behind the project-key check.
pub fn endpoint(state: Arc<AppState>) -> impl Endpoint {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None);
    // The route table's own Host check has already run; rmcp's repeats it with the same names.
    let config = match state.host_policy.names() {
        Some(names) => config.with_allowed_hosts(
            ["localhost", "127.0.0.1", "::1"]
                .into_iter()
                .map(str::to_owned)
                .chain(names.iter().cloned()),
        ),
        None => config.disable_allowed_hosts(),
    };
    let tools_state = Arc::clone(&state);
    let service = StreamableHttpService::new(
        move || {
            Ok(PushTools {
                state: Arc::clone(&tools_state),
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    );
    service
        .compat()
        .around(move |ep, req| require_key(ep, Arc::clone(&state), req))
}

/// Answers 401 unless the request carries a live key, and hands its scope to the tools.
async fn require_key<E: Endpoint>(
    ep: Arc<E>,
    state: Arc<AppState>,
    mut req: Request,
) -> poem::Result<Response> {
    let Some(token) = super::admin::bearer_token(&req) else {
        return Ok(unauthorized());
    };
    let hash = hash_key(token);
    let now = state.clock.now();
    let scope = state
        .with_store(move |store| store.authenticate_key(&hash, now))
        .await?;
    let Some(scope) = scope else {
        return Ok(unauthorized());
    };
    req.extensions_mut().insert(scope);
    // The scope is all the tools need; rmcp keeps the request's headers in what it hands
    // around (and may log at debug level), so the key goes no further than this check.
    req.headers_mut().remove(poem::http::header::AUTHORIZATION);
    Ok(ep.call(req).await?.into_response())
}

/// The API's 401, with a bare `Bearer` challenge: no `resource_metadata`, so no client goes
/// looking for an OAuth server.
fn unauthorized() -> Response {
    let mut response = ErrorCode::Unauthorized.response(
        "unknown, revoked or missing API key: send `Authorization: Bearer gpt_...` with a key of \
         the project to read",
    );
    response.headers_mut().insert(
        "www-authenticate",
        poem::http::HeaderValue::from_static("Bearer"),
    );
    response
}

/// The tools, one value per request (rmcp's stateless mode builds a handler each time).
#[derive(Clone)]
struct PushTools {
    state: Arc<AppState>,
}

/// Every tool this server has. To add one: a variant, its entry in [`ToolKind::ALL`], its
/// [`ToolKind::definition`] and its arm in [`PushTools::run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolKind {
    ListPushes,
    SearchPushes,
    GetPush,
    Digest,
    Activity,
}

/// How the time filters read, for the tools' descriptions.
const TIME_FORMS: &str = "`since` inclusive, `until` exclusive: a date such as 2024-01-01 \
                          (midnight UTC) or an ISO 8601 date-time, UTC unless it has an offset";

impl ToolKind {
    const ALL: &[ToolKind] = &[
        ToolKind::ListPushes,
        ToolKind::SearchPushes,
        ToolKind::GetPush,
        ToolKind::Digest,
        ToolKind::Activity,
    ];

    fn name(self) -> &'static str {
        match self {
            ToolKind::ListPushes => "list_pushes",
            ToolKind::SearchPushes => "search_pushes",
            ToolKind::GetPush => "get_push",
            ToolKind::Digest => "digest",
            ToolKind::Activity => "activity",
        }
    }

    fn from_name(name: &str) -> Option<ToolKind> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    fn definition(self) -> Tool {
        let (title, description, input, output) = match self {
            ToolKind::ListPushes => (
                "List pushes",
                format!(
                    "List this project's pushes, newest first, each with its short bullet \
                     summary: the parameters and answer of GET /api/v1/pushes. Filter by `q` \
                     (full-text), `branch`, `author`, `repository`, `refType` and time \
                     ({TIME_FORMS}). For the next page pass `pagination.nextCursor` as `cursor` \
                     with the same filters. Use get_push for a push's commits."
                ),
                schema_for_type::<ListPushesArgs>(),
                output_schema::<PushPage>(),
            ),
            ToolKind::SearchPushes => (
                "Search pushes",
                format!(
                    "Full-text search over this project's push summaries, commit messages, \
                     branch names and authors (\"who worked on auth?\"): every word of `q` must \
                     match, with stemming (`authenticate` finds \"authentication\"); a trailing \
                     `*` matches a prefix (`auth*`). Newest first, or best match first with \
                     `sort: \"relevance\"` (then page with `offset`). Takes every filter of \
                     list_pushes ({TIME_FORMS}) and answers in its shape."
                ),
                schema_for_type::<SearchPushesArgs>(),
                output_schema::<PushPage>(),
            ),
            ToolKind::GetPush => (
                "Get a push",
                "One push of this project by its `id` (from list_pushes or search_pushes), with \
                 its commits (sha, message, author, changed files) and compare link."
                    .to_owned(),
                schema_for_type::<GetPushArgs>(),
                output_schema::<PushDetail>(),
            ),
            ToolKind::Digest => (
                "Digest of a range",
                format!(
                    "One summary of a whole range of this project's pushes (\"summarize this \
                     sprint\", \"what was deployed today?\"): push and commit counts per author, \
                     branch and repository (counted by the database, exact), a bullet summary \
                     and the push ids. `since` is required; the range is at most 366 days \
                     ({TIME_FORMS}; `until` is now when left out). Takes the filters of \
                     list_pushes. The answer of GET /api/v1/digest."
                ),
                schema_for_type::<DigestArgs>(),
                output_schema::<Digest>(),
            ),
            ToolKind::Activity => (
                "Activity over a range",
                format!(
                    "Pushes and commits per `groupBy` (`day`, the default; `week`, keyed by \
                     Monday; `author`; `branch`; `repository`) over a range of at most 366 days \
                     ({TIME_FORMS}; `since` is required, `until` is now when left out). Takes \
                     the filters of list_pushes. The answer of GET /api/v1/activity."
                ),
                schema_for_type::<ActivityArgs>(),
                output_schema::<Activity>(),
            ),
        };
        Tool::new(self.name(), description, input)
            .with_title(title)
            .with_raw_output_schema(output)
            .with_annotations(
                ToolAnnotations::with_title(title)
                    .read_only(true)
                    .destructive(false)
                    .idempotent(true)
                    .open_world(false),
            )
    }
}

static TOOLS: LazyLock<Vec<Tool>> =
    LazyLock::new(|| ToolKind::ALL.iter().map(|t| t.definition()).collect());

/// A tool's arguments: its own fields, then the filters every history tool takes, named and
/// documented as `GET /api/v1/pushes` names them. Unknown names are refused (a misspelt filter
/// silently ignored would answer a different question).
macro_rules! with_filters {
    ($(#[$meta:meta])* struct $name:ident { $($own:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($own)*
            /// Only pushes to this branch or tag (exact name, such as `main`).
            #[schemars(length(max = 1024))]
            branch: Option<String>,
            /// Only pushes by these pushers or holding a commit by them (username or name,
            /// case-insensitive): any of them.
            #[serde(default, deserialize_with = "one_or_many")]
            #[schemars(with = "Vec<String>", length(max = 20))]
            author: Vec<String>,
            /// Only pushes to these repositories (`owner/name`): any of them.
            #[serde(default, deserialize_with = "one_or_many")]
            #[schemars(with = "Vec<String>", length(max = 20))]
            repository: Vec<String>,
            /// Only pushes to branches (`branch`) or to tags (`tag`).
            #[serde(rename = "refType")]
            #[schemars(extend("enum" = ["branch", "tag", null]))]
            ref_type: Option<String>,
        }
    };
}

with_filters! {
    /// `list_pushes`.
    struct ListPushesArgs {
        /// Full-text search, as in search_pushes; blank is no search.
        #[schemars(length(max = 1100))]
        q: Option<String>,
        /// Only pushes at or after this date (`2024-01-01`, midnight UTC) or ISO 8601 date-time.
        since: Option<String>,
        /// Only pushes before this date or date-time (exclusive).
        until: Option<String>,
        /// `newest` (the default) or, with `q`, `relevance` (pages by `offset`).
        #[schemars(extend("enum" = ["newest", "relevance", null]))]
        sort: Option<String>,
        /// Page size: default 20, values over 100 are 100.
        #[schemars(range(min = 0))]
        limit: Option<i64>,
        /// How many pushes to skip (for `sort: "relevance"`; otherwise prefer `cursor`).
        #[schemars(range(min = 0))]
        offset: Option<i64>,
        /// `pagination.nextCursor` of the previous page, with the same filters.
        cursor: Option<String>,
    }
}

with_filters! {
    /// `search_pushes`.
    struct SearchPushesArgs {
        /// The words to find: all must match, stemmed; `auth*` is a prefix. Searched as text,
        /// without operators.
        #[schemars(length(min = 1, max = 1100))]
        q: String,
        /// Only pushes at or after this date (`2024-01-01`, midnight UTC) or ISO 8601 date-time.
        since: Option<String>,
        /// Only pushes before this date or date-time (exclusive).
        until: Option<String>,
        /// `newest` (the default) or `relevance` (best match first; pages by `offset`).
        #[schemars(extend("enum" = ["newest", "relevance", null]))]
        sort: Option<String>,
        /// Page size: default 20, values over 100 are 100.
        #[schemars(range(min = 0))]
        limit: Option<i64>,
        /// How many results to skip (for `sort: "relevance"`; otherwise prefer `cursor`).
        #[schemars(range(min = 0))]
        offset: Option<i64>,
        /// `pagination.nextCursor` of the previous page, with the same filters.
        cursor: Option<String>,
    }
}

with_filters! {
    /// `digest`.
    struct DigestArgs {
        /// The range's start (inclusive): a date (`2024-01-01`, midnight UTC) or date-time.
        since: String,
        /// The range's end (exclusive), in the same forms; now when left out. At most 366 days
        /// after `since`.
        until: Option<String>,
        /// Only pushes matching this full-text search.
        #[schemars(length(max = 1100))]
        q: Option<String>,
    }
}

with_filters! {
    /// `activity`.
    struct ActivityArgs {
        /// The range's start (inclusive): a date (`2024-01-01`, midnight UTC) or date-time.
        since: String,
        /// The range's end (exclusive), in the same forms; now when left out. At most 366 days
        /// after `since`.
        until: Option<String>,
        /// `day` (the default), `week` (keys are Mondays), `author`, `branch` or `repository`.
        #[serde(rename = "groupBy")]
        #[schemars(extend("enum" = ["day", "week", "author", "branch", "repository", null]))]
        group_by: Option<String>,
        /// Only pushes matching this full-text search.
        #[schemars(length(max = 1100))]
        q: Option<String>,
    }
}

/// A repeatable filter: an array, or one value alone (as a model often writes it).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(value)) => vec![value],
        Some(OneOrMany::Many(values)) => values,
    })
}

impl ListPushesArgs {
    fn into_raw(self) -> RawQuery {
        RawQuery {
            q: self.q,
            branch: self.branch,
            author: self.author,
            repository: self.repository,
            ref_type: self.ref_type,
            since: self.since,
            until: self.until,
            limit: self.limit,
            offset: self.offset,
            cursor: self.cursor,
            sort: self.sort,
        }
    }
}

impl SearchPushesArgs {
    fn into_raw(self) -> RawQuery {
        RawQuery {
            q: Some(self.q),
            branch: self.branch,
            author: self.author,
            repository: self.repository,
            ref_type: self.ref_type,
            since: self.since,
            until: self.until,
            limit: self.limit,
            offset: self.offset,
            cursor: self.cursor,
            sort: self.sort,
        }
    }
}

impl DigestArgs {
    fn into_raw(self) -> RawQuery {
        RawQuery {
            q: self.q,
            branch: self.branch,
            author: self.author,
            repository: self.repository,
            ref_type: self.ref_type,
            since: Some(self.since),
            until: self.until,
            ..RawQuery::default()
        }
    }
}

impl ActivityArgs {
    /// The range's query and the grouping.
    fn into_raw(self) -> (RawQuery, Option<String>) {
        let raw = RawQuery {
            q: self.q,
            branch: self.branch,
            author: self.author,
            repository: self.repository,
            ref_type: self.ref_type,
            since: Some(self.since),
            until: self.until,
            ..RawQuery::default()
        };
        (raw, self.group_by)
    }
}

/// `get_push`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetPushArgs {
    /// The push's id, as list_pushes and search_pushes give it.
    id: String,
}

/// What a tool answers: its structured result and its text rendering, or a message the model
/// can act on.
type ToolOutcome = Result<(Value, String), String>;

impl ServerHandler for PushTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("git-push-tracker", env!("CARGO_PKG_VERSION"))
                    .with_title(super::SERVICE_TITLE),
            )
            .with_instructions(
                "The git pushes of one project (the project of the API key) with short bullet \
                 summaries of each. list_pushes pages through them newest first with filters \
                 (branch, author, repository, dates); search_pushes finds pushes by words; \
                 get_push gives one push with its commits; digest summarizes a date range with \
                 exact counts; activity counts pushes per day, week, author, branch or \
                 repository.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(TOOLS.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        TOOLS.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(kind) = ToolKind::from_name(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool named `{}`", request.name),
                None,
            ));
        };
        // Set by `require_key`: a request without it never reaches rmcp.
        let scope = context
            .extensions
            .get::<poem::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ProjectScope>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("no project scope", None))?;
        let args = Value::Object(request.arguments.unwrap_or_default());
        let outcome = self.run(kind, scope, args).await.map_err(|e| {
            tracing::error!(error = %crate::error_chain(&*e), tool = kind.name(), "MCP tool failed");
            ErrorData::internal_error("internal error", None)
        })?;
        let result = match outcome {
            Ok((structured, text)) => {
                let mut result = CallToolResult::structured(structured);
                result.content = vec![ContentBlock::text(text)];
                result
            }
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        };
        Ok(result.into())
    }
}

type RunError = Box<dyn std::error::Error + Send + Sync>;

impl PushTools {
    async fn run(
        &self,
        kind: ToolKind,
        scope: ProjectScope,
        args: Value,
    ) -> Result<ToolOutcome, RunError> {
        match kind {
            ToolKind::ListPushes => match arguments::<ListPushesArgs>(kind, args) {
                Ok(args) => self.list(kind, scope, args.into_raw()).await,
                Err(message) => Ok(Err(message)),
            },
            ToolKind::SearchPushes => match arguments::<SearchPushesArgs>(kind, args) {
                // The list reads a blank `q` as no search: here that would answer every push.
                Ok(args) if args.q.trim().is_empty() => Ok(Err(
                    "`q` must name the words to search for; list_pushes pages through every push"
                        .to_owned(),
                )),
                Ok(args) => self.list(kind, scope, args.into_raw()).await,
                Err(message) => Ok(Err(message)),
            },
            ToolKind::GetPush => match arguments::<GetPushArgs>(kind, args) {
                Ok(args) => self.get_push(scope, args).await,
                Err(message) => Ok(Err(message)),
            },
            ToolKind::Digest => match arguments::<DigestArgs>(kind, args) {
                Ok(args) => self.digest(scope, args.into_raw()).await,
                Err(message) => Ok(Err(message)),
            },
            ToolKind::Activity => match arguments::<ActivityArgs>(kind, args) {
                Ok(args) => {
                    let (raw, by) = args.into_raw();
                    self.activity(scope, raw, by).await
                }
                Err(message) => Ok(Err(message)),
            },
        }
    }

    /// Runs blocking storage work (and a digest's model call) off the async threads.
    async fn with_store<T, F>(&self, work: F) -> Result<T, RunError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn crate::db::Store) -> Result<T, DbError> + Send + 'static,
    {
        let store = Arc::clone(&self.state.store);
        Ok(tokio::task::spawn_blocking(move || work(&*store)).await??)
    }

    /// Asks the history: the caller's mistake, or a database too busy for one more search, is
    /// the tool's error message (the agent may retry); any other storage error a failure.
    async fn ask<T, F>(&self, work: F) -> Result<Result<T, String>, RunError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn crate::db::Store) -> Result<T, HistoryError> + Send + 'static,
    {
        self.with_store(move |store| match work(store) {
            Err(HistoryError::Db(busy)) if busy.is_busy() => Ok(Err(busy.to_string())),
            answer => HistoryError::split(answer).map(|a| a.map_err(|e| e.to_string())),
        })
        .await
    }

    /// `list_pushes` and `search_pushes`: `GET /api/v1/pushes`'s parsing, page and Markdown.
    async fn list(
        &self,
        kind: ToolKind,
        scope: ProjectScope,
        raw: RawQuery,
    ) -> Result<ToolOutcome, RunError> {
        let query = match PushQuery::parse(raw) {
            Ok(query) => query,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let page = self
            .ask(move |store| history::list(store, &scope, &query))
            .await?;
        Ok(page.map(|page| {
            let mut text = history::markdown::page(&page);
            if let Some(cursor) = &page.pagination.next_cursor {
                text.push_str(&format!(
                    "\nMore pushes: call {} again with \"cursor\": \"{cursor}\" and the same \
                     filters.\n",
                    kind.name()
                ));
            }
            (page.to_json().unwrap_or(Value::Null), text)
        }))
    }

    async fn get_push(
        &self,
        scope: ProjectScope,
        args: GetPushArgs,
    ) -> Result<ToolOutcome, RunError> {
        let id = args.id;
        let lookup = id.clone();
        let found = self
            .with_store(move |store| match store.get_push(&scope, &lookup) {
                Err(DbError::NotFound) => Ok(None),
                other => other.map(Some),
            })
            .await?;
        Ok(match found {
            Some((push, commits)) => {
                let detail = PushDetail::new(push, commits);
                let text = render_detail(&detail);
                Ok((detail.to_json().unwrap_or(Value::Null), text))
            }
            None => Err(format!(
                "this project has no push with id `{id}`: take an `id` from list_pushes or \
                 search_pushes"
            )),
        })
    }

    /// `GET /api/v1/digest`'s parsing and answer. With a model the digest waits on it, so
    /// it runs on the blocking pool with the storage work, as the REST handler does.
    async fn digest(&self, scope: ProjectScope, raw: RawQuery) -> Result<ToolOutcome, RunError> {
        let now = self.state.clock.now();
        let query = match PushQuery::parse_range(raw, now) {
            Ok(query) => query,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let summarizer = Arc::clone(&self.state.digest_summarizer);
        let digest = self
            .ask(move |store| history::digest(store, &scope, &query, &*summarizer, now))
            .await?;
        Ok(digest.map(|d| {
            (
                d.to_json().unwrap_or(Value::Null),
                history::markdown::digest(&d),
            )
        }))
    }

    /// `GET /api/v1/activity`'s parsing and answer.
    async fn activity(
        &self,
        scope: ProjectScope,
        raw: RawQuery,
        by: Option<String>,
    ) -> Result<ToolOutcome, RunError> {
        let by = match GroupBy::parse(by.as_deref()) {
            Ok(by) => by,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let query = match PushQuery::parse_range(raw, self.state.clock.now()) {
            Ok(query) => query,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let activity = self
            .ask(move |store| history::activity(store, &scope, &query, by))
            .await?;
        Ok(activity.map(|a| (a.to_json().unwrap_or(Value::Null), render_activity(&a))))
    }
}

/// Parses a tool's arguments, or says what is wrong with them in words a model can act on.
fn arguments<T: DeserializeOwned>(kind: ToolKind, args: Value) -> Result<T, String> {
    serde_json::from_value(args).map_err(|e| format!("invalid arguments for {}: {e}", kind.name()))
}

/// The JSON Schema of a poem-openapi type, with the definitions it refers to, so a tool's
/// structured result is declared exactly as the REST API declares it.
fn output_schema<T: Type>() -> Arc<JsonObject> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let name = T::name();
    let mut defs = serde_json::Map::new();
    let mut root = Value::Null;
    for (def_name, schema) in &registry.schemas {
        let mut schema = serde_json::to_value(schema).unwrap_or(Value::Null);
        to_json_schema(&mut schema);
        if *def_name == name {
            root = schema;
        } else {
            defs.insert(def_name.clone(), schema);
        }
    }
    let Value::Object(mut root) = root else {
        return Arc::new(
            json!({"type": "object"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    };
    if !defs.is_empty() {
        root.insert("$defs".to_owned(), Value::Object(defs));
    }
    Arc::new(root)
}

/// OpenAPI 3.0 schema to JSON Schema 2020-12: `nullable` becomes a `null` type, unsigned
/// formats a minimum, and component references point into `$defs`.
fn to_json_schema(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(def) = target.strip_prefix("#/components/schemas/")
            {
                *target = format!("#/$defs/{def}");
            }
            // `uint32`/`uint64` are poem-openapi's names, unknown to JSON Schema validators
            // (which warn about each): what they say is a lower bound.
            if let Some(Value::String(format)) = map.get("format")
                && format.starts_with("uint")
            {
                map.remove("format");
                map.entry("minimum").or_insert(json!(0));
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                match map.get("type").cloned() {
                    Some(Value::String(ty)) => {
                        map.insert("type".to_owned(), json!([ty, "null"]));
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(map));
                        map.insert("anyOf".to_owned(), json!([inner, {"type": "null"}]));
                    }
                }
            }
            map.values_mut().for_each(to_json_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(to_json_schema),
        _ => {}
    }
}

fn render_item(push: &PushItem) -> String {
    let mut text = format!(
        "## {} {} to {} by {} ({} commit{}) id {}\n",
        push.pushed_at,
        push.repository,
        push.branch,
        push.author,
        push.commit_count,
        if push.commit_count == 1 { "" } else { "s" },
        push.id
    );
    for line in push.summary.lines() {
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn render_detail(detail: &PushDetail) -> String {
    let mut text = render_item(&detail.push);
    if let Some(url) = &detail.push.compare_url {
        text.push_str(&format!("Compare: {url}\n"));
    }
    text.push_str("\nCommits:\n");
    for commit in &detail.commits {
        let short = commit.sha.get(..7).unwrap_or(&commit.sha);
        let first_line = commit.message.lines().next().unwrap_or("");
        text.push_str(&format!("- {short} {first_line} ({})\n", commit.author));
    }
    text
}

/// Activity as text: one line per bucket.
fn render_activity(activity: &Activity) -> String {
    let mut text = format!(
        "Activity of project {} by {}, {} to {} (pushes, commits):\n",
        activity.project, activity.group_by, activity.since, activity.until
    );
    for bucket in &activity.buckets {
        text.push_str(&format!(
            "- {}: {} push{}, {} commit{}\n",
            bucket.key,
            bucket.pushes,
            if bucket.pushes == 1 { "" } else { "es" },
            bucket.commits,
            if bucket.commits == 1 { "" } else { "s" }
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn output_schemas_are_json_schema_without_openapi_keywords() {
        for kind in ToolKind::ALL {
            let schema = Value::Object((*kind.definition().output_schema.unwrap()).clone());
            let text = schema.to_string();
            assert!(!text.contains("nullable"), "{text}");
            assert!(!text.contains("#/components/"), "{text}");
            assert!(!text.contains("uint"), "{text}");
            assert_eq!(schema["type"], "object");
        }
    }

    #[test]
    fn a_nullable_field_admits_null() {
        let schema = output_schema::<PushPage>();
        let next = &schema["$defs"]["Pagination"]["properties"]["nextCursor"]["type"];
        assert_eq!(next, &json!(["string", "null"]));
    }

    #[test]
    fn the_history_tools_take_the_apis_parameter_names_and_repeatable_filters_as_arrays() {
        for kind in [ToolKind::ListPushes, ToolKind::SearchPushes] {
            let schema = kind.definition().input_schema;
            let props = schema["properties"].as_object().unwrap();
            let names: BTreeSet<&str> = props.keys().map(String::as_str).collect();
            assert_eq!(
                names,
                BTreeSet::from([
                    "author",
                    "branch",
                    "cursor",
                    "limit",
                    "offset",
                    "q",
                    "refType",
                    "repository",
                    "since",
                    "sort",
                    "until"
                ])
            );
            assert_eq!(props["author"]["type"], "array");
            assert_eq!(props["refType"]["enum"], json!(["branch", "tag", null]));
        }
        let activity = ToolKind::Activity.definition().input_schema;
        assert_eq!(activity["required"], json!(["since"]));
        assert!(activity["properties"]["groupBy"]["enum"].is_array());
    }

    #[test]
    fn a_repeatable_filter_takes_one_value_or_many() {
        let one: ListPushesArgs = serde_json::from_value(json!({"author": "ada"})).unwrap();
        assert_eq!(one.author, ["ada"]);
        let many: ListPushesArgs =
            serde_json::from_value(json!({"repository": ["a/b", "c/d"]})).unwrap();
        assert_eq!(many.repository, ["a/b", "c/d"]);
        let none: ListPushesArgs = serde_json::from_value(json!({"author": null})).unwrap();
        assert!(none.author.is_empty());
    }

    #[test]
    fn every_tool_name_is_found_by_its_name() {
        for kind in ToolKind::ALL {
            assert_eq!(ToolKind::from_name(kind.name()), Some(*kind));
        }
        assert_eq!(ToolKind::from_name("drop_tables"), None);
    }
}
