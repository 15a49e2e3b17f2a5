//! The dashboard in real headless Chromium through chromedriver: log in, create a project and a
//! key, add a Slack notification and send it a test, receive a signed push, show hostile
//! commit text as text, and ask the history (search, push detail, activity chart, digest).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::app::{ADMIN_TOKEN, TestApp, TestProject, github_payload};
use crate::support::child::KillOnDrop;
use crate::support::fake_llm::{FakeLlm, Scripted};
use crate::support::tool;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const XSS: &str = "<img src=x onerror=alert(1)>";
const DEADLINE: Duration = Duration::from_secs(20);

/// chromedriver as a child process, killed when the test ends however it ends.
struct Driver {
    _child: KillOnDrop,
    url: String,
    _profile: tempfile::TempDir,
}

/// Whether Chromium and chromedriver are both there; see [`tool::require`] for when they are not.
fn browser_available() -> bool {
    let install = "apt-get install chromium chromium-driver; .ci/run installs them";
    [CHROMIUM, CHROMEDRIVER]
        .iter()
        .all(|program| tool::require("browser test", program, &["--version"], install).is_some())
}

fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver {
        _child: KillOnDrop(child),
        url,
        _profile: tempfile::tempdir().unwrap(),
    };
    let agent = crate::support::app::agent();
    crate::support::app::wait_for("chromedriver to listen", DEADLINE, &mut || {
        let ok = agent
            .get(format!("{}/status", driver.url))
            .call()
            .is_ok_and(|r| r.status() == 200);
        ok.then_some(())
    });
    driver
}

async fn connect(driver: &Driver) -> Client {
    let profile = driver._profile.path().display().to_string();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,2400",
                format!("--user-data-dir={profile}"),
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Polls the page until `check` gives a value; no fixed sleeps.
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn visible_text(client: &Client, css: &str) -> Option<String> {
    let el = client.find(Locator::Css(css)).await.ok()?;
    if !el.is_displayed().await.ok()? {
        return None;
    }
    let text = el.text().await.ok()?;
    (!text.is_empty()).then_some(text)
}

/// The text `css` shows now; it must be there already.
async fn shown_text(client: &Client, css: &str) -> String {
    visible_text(client, css)
        .await
        .unwrap_or_else(|| panic!("no text shown at {css}"))
}

/// Waits for `what`, some text to show at `css`; answers it.
async fn wait_text(client: &Client, what: &str, css: &str) -> String {
    poll(what, || visible_text(client, css)).await
}

/// Asserts that no commit text turned into an element of the page.
async fn assert_no_injected_image(client: &Client) {
    let injected = client
        .find_all(Locator::Css("#projects img"))
        .await
        .unwrap();
    assert!(injected.is_empty(), "webhook text became an element");
}

/// The element `css` selects, once there is one.
async fn element(client: &Client, css: &str) -> Element {
    client
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

async fn click(client: &Client, css: &str) {
    element(client, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn type_into(client: &Client, css: &str, text: &str) {
    element(client, css)
        .await
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

/// Reads the one-time value from the open reveal dialog and closes it.
async fn read_reveal(client: &Client) -> String {
    let value = wait_text(client, "the reveal dialog", "#reveal-value").await;
    let warning = shown_text(client, "#reveal .warning").await;
    assert_eq!(
        warning,
        "Click to select, then copy. This won't be shown again."
    );
    click(client, "#reveal-close").await;
    poll("the dialog to close", || async {
        let open = client
            .find(Locator::Css("#reveal"))
            .await
            .ok()?
            .attr("open")
            .await
            .ok()?;
        open.is_none().then_some(())
    })
    .await;
    value
}

#[test]
fn the_owner_creates_a_project_and_a_key_and_watches_pushes_arrive_rendered_as_text() {
    if !browser_available() {
        return;
    }
    let app = Arc::new(TestApp::spawn());
    let driver = start_driver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = connect(&driver).await;
        // A failed assertion must still end the browser session, or Chromium outlives the test.
        let outcome = tokio::spawn(drive(client.clone(), Arc::clone(&app))).await;
        let _ = client.close().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    });
}

async fn drive(client: Client, app: Arc<TestApp>) {
    let client = &client;
    client.goto(&format!("{}/", app.base_url)).await.unwrap();
    type_into(client, "#login-token", ADMIN_TOKEN).await;
    click(client, "#login-submit").await;
    poll("the dashboard after login", || {
        visible_text(client, "#new-project-submit")
    })
    .await;
    // The docs show this server's URL, not a placeholder.
    let docs = shown_text(client, "#docs").await;
    assert!(!docs.contains("DOMAIN_PLACEHOLDER"));
    assert!(docs.contains(&format!("{}/api/v1/pushes", app.base_url)));
    // The MCP setup snippets name this server's real /mcp URL.
    for snippet in [
        "#mcp-claude-code",
        "#mcp-cursor",
        "#mcp-vscode",
        "#mcp-claude-desktop",
    ] {
        let text = shown_text(client, snippet).await;
        assert!(
            text.contains(&format!("{}/mcp", app.base_url)),
            "{snippet}: {text}"
        );
    }
    let empty = wait_text(client, "the empty state", "#projects-status").await;
    assert!(empty.contains("No projects yet"), "{empty}");

    type_into(client, "#new-project-name", "browser-app").await;
    click(client, "#new-project-submit").await;
    let secret = read_reveal(client).await;
    assert_eq!(secret.len(), 40, "the webhook secret");

    let card = r#"article[data-project="browser-app"]"#;
    let url_css = format!("{card} .webhook-url");
    let webhook_url = wait_text(client, "the project card", &url_css).await;
    click(client, &format!("{card} .add-key")).await;
    type_into(client, &format!("{card} .key-label"), "browser").await;
    click(client, &format!("{card} .create-key")).await;
    let key = read_reveal(client).await;
    assert!(key.starts_with("gpt_"), "the API key");
    poll("the key in the list", || async {
        let text = visible_text(client, &format!("{card} .key-list")).await?;
        text.contains("browser").then_some(())
    })
    .await;

    // A Slack notification to a fake receiver: added on the card, sent a test, its log shown.
    let slack = FakeLlm::start_with(|_| Scripted::json(200, "ok"));
    click(client, &format!("{card} .notify-new")).await;
    let slack_url = format!("{}/services/T1/B1/BROWSERSECRET", slack.base_url());
    type_into(client, &format!("{card} .notify-url"), &slack_url).await;
    type_into(
        client,
        &format!("{card} .notify-branches"),
        "main, release/*",
    )
    .await;
    click(client, &format!("{card} .notify-add")).await;
    let listed = poll("the notification in the list", || async {
        let text = visible_text(client, &format!("{card} .notification-list")).await?;
        text.contains("slack").then_some(text)
    })
    .await;
    assert!(
        listed.contains("/services/***"),
        "the URL is masked: {listed}"
    );
    assert!(!listed.contains("BROWSERSECRET"), "{listed}");
    assert!(listed.contains("main, release/*"), "{listed}");
    click(client, &format!("{card} .notify-test")).await;
    let message_css = format!("{card} .notify-message");
    let said = wait_text(client, "the test's answer", &message_css).await;
    assert!(said.contains("answered 200"), "{said}");
    let log = poll("the delivery in the log", || async {
        let text = visible_text(client, &format!("{card} .delivery-list")).await?;
        text.contains("HTTP 200").then_some(text)
    })
    .await;
    assert!(log.contains("test"), "{log}");
    // The notification's line is reloaded after the test: its last delivery is no longer never.
    let meta = poll("the last delivery after the test", || async {
        let text = visible_text(client, &format!("{card} .notification .meta")).await?;
        (!text.contains("last delivery never")).then_some(text)
    })
    .await;
    assert!(meta.contains("last delivery"), "{meta}");
    let sent = slack.requests();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].json()["text"]
            .as_str()
            .unwrap()
            .contains("Test message")
    );

    let project = TestProject {
        name: "browser-app".into(),
        webhook_url,
        secret,
        key,
    };
    let body = github_payload("main", &["Add the login page"], 1_700_000_000);
    assert_eq!(app.github_push(&project, "b-1", &body).status, 201);
    let hostile = github_payload("feature/xss", &[XSS], 1_700_000_100);
    assert_eq!(app.github_push(&project, "b-2", &hostile).status, 201);
    let api = app.get("/api/v1/pushes", Some(&project.key));
    assert_eq!(api.body["pagination"]["total"], 2, "{}", api.body);

    // No click: an open dashboard picks up new pushes by itself, from its event stream.
    let feed = poll("both pushes in the feed", || async {
        let items = client
            .find_all(Locator::Css(&format!("{card} .push")))
            .await
            .ok()?;
        if items.len() < 2 {
            return None;
        }
        visible_text(client, &format!("{card} .push-list")).await
    })
    .await;
    // They came over the owner's event stream: the dashboard does not poll.
    let live = client
        .execute(
            "return [window.gptLive.connected(), window.gptLive.events()];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(live[0], true, "the dashboard's stream is open");
    assert!(
        live[1].as_u64().unwrap() >= 2,
        "the pushes arrived as events: {live}"
    );
    assert!(feed.contains("Add the login page"), "{feed}");
    assert!(feed.contains("main"), "{feed}");
    assert!(feed.contains("summarized"), "{feed}");
    assert!(
        feed.contains(XSS),
        "the hostile message shows as text: {feed}"
    );

    assert_no_injected_image(client).await;
    assert!(
        client.get_alert_text().await.is_err(),
        "a script from webhook text ran"
    );

    let key_form = client
        .find(Locator::Css(&format!("{card} .key-form")))
        .await
        .unwrap();
    assert!(
        !key_form.is_displayed().await.unwrap(),
        "the key form closes"
    );

    history(client, card).await;

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = client.screenshot().await.unwrap();
    std::fs::write(dir.join("dashboard.png"), shot).unwrap();

    // On a phone-sized screen nothing forces sideways scrolling of the page.
    client.set_window_size(390, 844).await.unwrap();
    let overflow = poll("the narrow layout", || async {
        let widths = client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .ok()?;
        let scroll = widths[0].as_u64()?;
        let inner = widths[1].as_u64()?;
        (inner <= 500).then_some(scroll.saturating_sub(inner))
    })
    .await;
    assert_eq!(overflow, 0, "the page is wider than a phone screen");
    let shot = client.screenshot().await.unwrap();
    std::fs::write(dir.join("dashboard-phone.png"), shot).unwrap();

    // A live update while the owner is typing a key label leaves the label alone.
    click(client, &format!("{card} .add-key")).await;
    type_into(client, &format!("{card} .key-label"), "half-typed").await;
    let third = github_payload("main", &["Fix the logout redirect"], 1_700_000_200);
    assert_eq!(app.github_push(&project, "b-3", &third).status, 201);
    poll("the third push and its count", || async {
        let counts = visible_text(client, &format!("{card} .counts")).await?;
        let feed = visible_text(client, &format!("{card} .push-list")).await?;
        (counts.contains("3 pushes") && feed.contains("Fix the logout redirect")).then_some(())
    })
    .await;
    let label = client
        .find(Locator::Css(&format!("{card} .key-label")))
        .await
        .unwrap();
    assert_eq!(
        label.prop("value").await.unwrap().as_deref(),
        Some("half-typed")
    );
    assert!(
        label.is_displayed().await.unwrap(),
        "the key form stays open"
    );
}

/// Sets a form field's value as a date picker would (typing into one depends on the locale).
async fn set_value(client: &Client, css: &str, value: &str) {
    client
        .execute(
            "document.querySelector(arguments[0]).value = arguments[1];",
            vec![json!(css), json!(value)],
        )
        .await
        .unwrap_or_else(|e| panic!("set {css}: {e}"));
}

/// Clicks the history section's `button` of `(button, answer)` in the project `card` and waits
/// for `what`, the text that shows at `answer`; answers it.
async fn ask_history(
    client: &Client,
    card: &str,
    (button, answer): (&str, &str),
    what: &str,
) -> String {
    click(client, &format!("{card} {button}")).await;
    wait_text(client, what, &format!("{card} {answer}")).await
}

/// The project's history section: the activity chart, a search, a push's detail, a digest.
async fn history(client: &Client, card: &str) {
    click(client, &format!("{card} details.history > summary")).await;
    let bars = poll("the activity chart", || async {
        let bars = client
            .find_all(Locator::Css(&format!("{card} svg.activity-chart rect.bar")))
            .await
            .ok()?;
        (!bars.is_empty()).then_some(bars.len())
    })
    .await;
    assert_eq!(bars, 90, "one bar per day of the last 90 days");

    type_into(client, &format!("{card} .history-q"), "login").await;
    let search = (".history-search", ".history-total");
    let total = ask_history(client, card, search, "the search results").await;
    assert_eq!(total, "1 push matches");
    let results = shown_text(client, &format!("{card} .history-results")).await;
    assert!(results.contains("Add the login page"), "{results}");
    assert!(!results.contains(XSS), "{results}");

    click(client, &format!("{card} .detail-button")).await;
    let detail = poll("the push detail", || async {
        let text = visible_text(client, &format!("{card} .push-detail")).await?;
        text.contains("Add the login page").then_some(text)
    })
    .await;
    assert!(detail.contains("acme/app"), "{detail}");
    let compare = element(client, &format!("{card} .push-detail a.compare")).await;
    let href = compare.attr("href").await.unwrap().unwrap();
    assert!(
        href.starts_with("https://github.com/acme/app/compare/"),
        "{href}"
    );

    set_value(client, &format!("{card} .history-q"), "").await;
    set_value(client, &format!("{card} input[name=since]"), "2023-11-01").await;
    set_value(client, &format!("{card} input[name=until]"), "2023-12-01").await;
    let digest = (".history-digest", ".digest-counts");
    let counts = ask_history(client, card, digest, "the digest").await;
    assert_eq!(counts, "2 pushes, 2 commits (builtin)");
    let summary = shown_text(client, &format!("{card} .digest-summary")).await;
    assert!(
        summary.starts_with("- 2 pushes with 2 commits"),
        "{summary}"
    );
    assert_no_injected_image(client).await;
}
