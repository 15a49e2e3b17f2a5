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
//! Each tool is one [`ToolKind`]: its arguments (input schema from their type), its structured
//! result (output schema from the same poem-openapi type the REST API serves, so both say the
//! same thing) and a short text rendering for clients that show text only.

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
use super::api::{PushDetail, PushItem, PushPage, time_param};
use crate::db::{DbError, PageCursor, PageStart, ProjectScope, PushFilter};
use crate::error_code::ErrorCode;
use crate::tokens::hash_key;

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

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
    GetPush,
}

impl ToolKind {
    const ALL: &[ToolKind] = &[ToolKind::ListPushes, ToolKind::GetPush];

    fn name(self) -> &'static str {
        match self {
            ToolKind::ListPushes => "list_pushes",
            ToolKind::GetPush => "get_push",
        }
    }

    fn from_name(name: &str) -> Option<ToolKind> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    fn definition(self) -> Tool {
        let (title, description, input, output) = match self {
            ToolKind::ListPushes => (
                "List pushes",
                "List this project's pushes, newest first, each with its short bullet summary. \
                 Filter by `branch` and by time (`since` inclusive, `until` exclusive: a date \
                 such as 2024-01-01 or an ISO 8601 date-time, UTC unless it has an offset). For \
                 the next page pass `pagination.nextCursor` as `cursor` with the same filters. \
                 Use get_push for a push's commits.",
                schema_for_type::<ListPushesArgs>(),
                output_schema::<PushPage>(),
            ),
            ToolKind::GetPush => (
                "Get a push",
                "One push of this project by its `id` (from list_pushes), with its commits \
                 (sha, message, author, changed files) and compare link.",
                schema_for_type::<GetPushArgs>(),
                output_schema::<PushDetail>(),
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

/// `list_pushes`: the list's filters, named as `GET /api/v1/pushes` names them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListPushesArgs {
    /// Page size: default 20, at most 100.
    #[schemars(range(min = 0, max = 100))]
    limit: Option<u32>,
    /// Only pushes to this branch or tag (exact name, such as `main`).
    #[schemars(length(max = 1024))]
    branch: Option<String>,
    /// Only pushes at or after this date (`2024-01-01`, midnight UTC) or ISO 8601 date-time.
    since: Option<String>,
    /// Only pushes before this date or date-time (exclusive).
    until: Option<String>,
    /// `pagination.nextCursor` of the previous page, with the same filters.
    cursor: Option<String>,
}

/// `get_push`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetPushArgs {
    /// The push's id, as list_pushes gives it.
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
                 summaries of each. list_pushes pages through them newest first by branch and \
                 date; get_push gives one push with its commits.",
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
                Ok(args) => self.list_pushes(scope, args).await,
                Err(message) => Ok(Err(message)),
            },
            ToolKind::GetPush => match arguments::<GetPushArgs>(kind, args) {
                Ok(args) => self.get_push(scope, args).await,
                Err(message) => Ok(Err(message)),
            },
        }
    }

    /// Runs blocking storage work off the async threads.
    async fn with_store<T, F>(&self, work: F) -> Result<T, RunError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn crate::db::Store) -> Result<T, DbError> + Send + 'static,
    {
        let store = Arc::clone(&self.state.store);
        Ok(tokio::task::spawn_blocking(move || work(&*store)).await??)
    }

    async fn list_pushes(
        &self,
        scope: ProjectScope,
        args: ListPushesArgs,
    ) -> Result<ToolOutcome, RunError> {
        let limit = args.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        let (since, until) = match (
            time_param("since", args.since.as_deref()),
            time_param("until", args.until.as_deref()),
        ) {
            (Ok(since), Ok(until)) => (since, until),
            (Err(message), _) | (_, Err(message)) => return Ok(Err(message)),
        };
        let filter = PushFilter {
            branch: args.branch,
            since,
            until,
            ..PushFilter::default()
        };
        let cursor = args.cursor;
        let page = self
            .with_store(move |store| {
                let start = match cursor.as_deref() {
                    None => PageStart::Offset(0),
                    Some(raw) => match PageCursor::parse(raw, &scope, &filter) {
                        Ok(cursor) => PageStart::After(cursor),
                        Err(e) => {
                            return Ok(Err(format!(
                                "{e}: pass `cursor` exactly as the last page's \
                                 `pagination.nextCursor`, with the same filters, or leave it out \
                                 for the first page"
                            )));
                        }
                    },
                };
                let page = store.list_pushes(&scope, &filter, limit, &start)?;
                Ok(Ok(PushPage {
                    pushes: page.pushes.into_iter().map(PushItem::from).collect(),
                    project: scope.project().to_string(),
                    pagination: super::api::Pagination {
                        limit,
                        offset: page.offset,
                        total: page.total,
                        next_cursor: page.next.map(|c| c.encode()),
                    },
                }))
            })
            .await?;
        Ok(page.map(|page| {
            let text = render_page(&page);
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
                "this project has no push with id `{id}`: take an `id` from list_pushes"
            )),
        })
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

/// OpenAPI 3.0 schema to JSON Schema 2020-12: `nullable` becomes a `null` type, and component
/// references point into `$defs`.
fn to_json_schema(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(def) = target.strip_prefix("#/components/schemas/")
            {
                *target = format!("#/$defs/{def}");
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

/// A page as text: one line per push, its summary bullets under it.
fn render_page(page: &PushPage) -> String {
    let mut text = format!(
        "{} of {} pushes in project {} (newest first).\n",
        page.pushes.len(),
        page.pagination.total,
        page.project
    );
    for push in &page.pushes {
        text.push('\n');
        text.push_str(&render_item(push));
    }
    if let Some(cursor) = &page.pagination.next_cursor {
        text.push_str(&format!(
            "\nMore pushes: call list_pushes again with cursor \"{cursor}\" and the same filters.\n"
        ));
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_schemas_are_json_schema_without_openapi_keywords() {
        for kind in ToolKind::ALL {
            let schema = Value::Object((*kind.definition().output_schema.unwrap()).clone());
            let text = schema.to_string();
            assert!(!text.contains("nullable"), "{text}");
            assert!(!text.contains("#/components/"), "{text}");
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
    fn every_tool_name_is_found_by_its_name() {
        for kind in ToolKind::ALL {
            assert_eq!(ToolKind::from_name(kind.name()), Some(*kind));
        }
        assert_eq!(ToolKind::from_name("drop_tables"), None);
    }
}
