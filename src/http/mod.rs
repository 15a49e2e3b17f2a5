//! The route table (webhooks, the public and admin API, docs, health, metrics), the middleware
//! around it (error bodies, `Allow`, unread bodies, request spans, security headers), and the
//! state handlers share.

pub mod admin;
pub mod api;
pub mod api_body;
pub mod assets;
pub mod atom;
pub mod body;
pub mod contract;
pub mod error;
pub mod etag;
pub mod history;
pub mod host;
pub mod live;
pub mod mcp;
pub mod notifications;
pub mod pattern;
pub mod scrape;
pub mod trace;
pub mod unread_body;
pub mod webhooks;

use std::sync::Arc;

use poem::middleware::{CookieJarManager, SetHeader};
use poem::web::Json;
use poem::{Endpoint, EndpointExt, IntoResponse, Route, get, post};
use poem_openapi::OpenApiService;

use crate::clock::Clock;
use crate::db::{DbError, Store};
use crate::error_code::ErrorCode;
use crate::ingest::Ingest;
use crate::manage::Manager;
use error::InternalError;

/// What request handlers share.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The webhook pipeline.
    pub ingest: Ingest,
    pub clock: Arc<dyn Clock>,
    pub manager: Manager,
    pub public_url: String,
    /// `scheme://host[:port]` of the public URL: the `Origin` the dashboard's writes carry.
    pub public_origin: String,
    /// `builtin` or the configured model's name, as the dashboard shows it.
    pub summarizer: String,
    /// What writes a digest's summary (the worker's summarizer; builtin digests when offline).
    pub digest_summarizer: Arc<dyn crate::summarize::Summarizer>,
    pub body_limit: usize,
    /// Time to read a whole request body.
    pub body_timeout: std::time::Duration,
    /// Webhook body bytes held at once, over all clients and per client.
    pub webhook_budget: Arc<body::WebhookBudget>,
    /// Wakes the summary worker (None when the caller runs the worker's steps itself).
    pub worker: Option<crate::worker::Nudger>,
    /// Wakes the notification delivery threads.
    pub deliveries: Option<crate::notify::deliver::DeliveryNudger>,
    /// Failed admin logins and wrong admin bearer tokens per client, to slow down guessing.
    pub login_limiter: crate::auth::LoginLimiter,
    /// Whose `X-Forwarded-For` names the client, for the login limiter.
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `/metrics` answers without the admin token.
    pub metrics_public: bool,
    /// Which `Host` names are answered (DNS rebinding).
    pub host_policy: Arc<host::HostPolicy>,
    /// The change log's fan-out to live streams.
    pub hub: Arc<crate::stream::ChangeHub>,
    /// How often a live stream sends a comment so proxies keep it open.
    pub stream_keepalive: std::time::Duration,
}

impl AppState {
    /// The client a request comes from, seen through the trusted proxies: whom the login
    /// limit and the webhook budget count against.
    pub fn client(&self, req: &poem::Request) -> std::net::IpAddr {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| {
                a.ip()
            });
        let forwarded_for = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        self.trusted_proxies.client(peer, forwarded_for)
    }

    /// Runs blocking storage work off the async threads; a storage failure is an opaque 500.
    pub async fn with_store<T, F>(&self, work: F) -> poem::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, DbError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        let result = tokio::task::spawn_blocking(move || work(&*store))
            .await
            .map_err(InternalError::new)?;
        Ok(result?)
    }
}

pub const SERVICE_TITLE: &str = "Git Push Tracker";

/// The OpenAPI service; `git-push-tracker openapi` prints the same document `serve` serves.
pub fn api_service() -> OpenApiService<impl poem_openapi::OpenApi, ()> {
    OpenApiService::new(
        (
            api::PublicApi,
            history::HistoryApi,
            live::LiveApi,
            admin::AdminApi,
            history::OwnerHistoryApi,
            notifications::NotificationsApi,
        ),
        SERVICE_TITLE,
        env!("CARGO_PKG_VERSION"),
    )
    .description(api_description())
    .license(poem_openapi::LicenseObject::new("MIT"))
}

/// The OpenAPI document `/openapi.json` serves and `git-push-tracker openapi` prints: the
/// service's, completed by [`contract`].
pub fn openapi_document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| contract::complete(&api_service().spec()))
}

#[poem::handler]
fn openapi_json() -> poem::Response {
    poem::Response::builder()
        .content_type("application/json; charset=utf-8")
        .body(openapi_document())
}

/// The document's description, ending with the error catalog: every code an error body can
/// carry, with its usual status.
fn api_description() -> String {
    let mut text = String::from(
        "Push summaries from your git hosts, one project per API key. \
         Send `Authorization: Bearer gpt_...` with a key of the project you want to read. \
         The admin API under `/api/admin` takes the owner's admin token or a dashboard session.\n\n\
         Every error is answered with `{\"error\": {\"code\", \"message\"}}`. The codes:\n",
    );
    for code in ErrorCode::ALL {
        text.push_str(&format!(
            "\n- `{}` ({}): {}",
            code.as_str(),
            code.status().as_u16(),
            code.default_message()
        ));
    }
    text
}

/// Admin answers carry webhook secrets, API keys and session cookies: no browser or proxy
/// cache may keep them.
async fn no_store_for_admin<E: Endpoint>(
    ep: Arc<E>,
    req: poem::Request,
) -> poem::Result<poem::Response> {
    let admin = req.uri().path().starts_with("/api/admin/");
    let mut response = ep.call(req).await?.into_response();
    if admin {
        response.headers_mut().insert(
            "cache-control",
            poem::http::HeaderValue::from_static("no-store"),
        );
    }
    Ok(response)
}

/// The whole route table.
pub fn routes(state: Arc<AppState>) -> impl Endpoint {
    let api = api_service();
    let allow = Arc::new(error::AllowTable::new(
        openapi_document(),
        &[
            ("/webhooks/{hook}", "POST"),
            ("/healthz", "GET, HEAD"),
            ("/metrics", "GET, HEAD"),
            ("/openapi.json", "GET, HEAD"),
            ("/", "GET, HEAD"),
            ("/mcp", "POST"),
        ],
    ));
    let host_policy = Arc::clone(&state.host_policy);
    // Swagger UI shows the completed document: poem-openapi's page, with its own spec swapped.
    let docs_html = api
        .swagger_ui_html()
        .replace(&api.spec(), openapi_document());
    let docs = Route::new().at(
        "/",
        get(poem::endpoint::make_sync(move |_| {
            poem::web::Html(docs_html.clone())
        })),
    );
    Route::new()
        .at("/webhooks/:hook_id", post(webhooks::receive))
        .at("/healthz", get(healthz))
        .at("/metrics", get(scrape::metrics))
        .at("/openapi.json", get(openapi_json))
        // Swagger UI inlines its scripts, so it gets only the framing rule of the strict CSP.
        .nest(
            "/docs",
            docs.with(
                SetHeader::new().overriding("Content-Security-Policy", "frame-ancestors 'none'"),
            ),
        )
        .at("/mcp", mcp::endpoint(Arc::clone(&state)))
        .at("/", get(assets::index))
        .at("/assets/*path", get(assets::asset))
        .nest_no_strip(
            "/api",
            api.with(CookieJarManager::new())
                .around(api_body::limit)
                .around(no_store_for_admin),
        )
        .catch_all_error(error::to_json)
        .around(live::refuse_keys_in_urls)
        .around(admin::count_bearer_attempts)
        .around(move |ep, req| {
            let allow = Arc::clone(&allow);
            async move {
                let path = req.uri().path().to_owned();
                let response = ep.call(req).await?.into_response();
                Ok(allow.complete(&path, response))
            }
        })
        .around(unread_body::close_if_unread)
        .around(trace::requests)
        .around(move |ep, req| host::check(ep, Arc::clone(&host_policy), req))
        .with(
            SetHeader::new()
                .overriding("X-Content-Type-Options", "nosniff")
                .overriding("Referrer-Policy", "no-referrer"),
        )
        .data(state)
}

#[poem::handler]
async fn healthz(poem::web::Data(state): poem::web::Data<&Arc<AppState>>) -> poem::Response {
    let store = Arc::clone(&state.store);
    let ok = tokio::task::spawn_blocking(move || store.check()).await;
    match ok {
        Ok(Ok(())) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %crate::error_chain(&e), "health check failed");
            let code = ErrorCode::DatabaseUnavailable;
            code.response(code.default_message())
        }
        Err(_) => ErrorCode::DatabaseUnavailable.response("the database check did not finish"),
    }
}
