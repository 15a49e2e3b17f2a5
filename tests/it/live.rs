//! Live answers over real HTTP: the push stream (Server-Sent Events) with its resume, filters and
//! scopes, the Atom feed read by Python's feedparser, ETags and 304s, and keys in URLs.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::app::{
    ADMIN_TOKEN, TestApp, TestProject, agent, find_header, github_payload, header_pairs, push_ids,
    reply,
};
use crate::support::cli;
use crate::support::fake_llm::{FakeLlm, Scripted};
use crate::support::server::Server;
use crate::support::tool;
use git_push_tracker::summarize::{GeminiConfig, GeminiSummarizer, Summarizer};
use serde_json::Value;

/// How long a test waits for an event that should come.
const WAIT: Duration = Duration::from_secs(10);

/// One frame of an event stream: an event, a `retry:` or a comment.
#[derive(Debug, Clone, Default)]
struct Frame {
    event: String,
    id: Option<String>,
    data: String,
    retry: Option<u64>,
    comment: bool,
}

impl Frame {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {:?}", self.data))
    }
}

/// An open stream read by a thread of its own, frame by frame; the connection closes when the
/// test drops it and the next frame arrives.
struct Stream {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    frames: mpsc::Receiver<Frame>,
}

impl Stream {
    fn open(url: &str, headers: &[(&str, &str)]) -> Stream {
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = http.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.call().expect("GET the stream");
        let status = response.status().as_u16();
        let headers = header_pairs(&response);
        let (tx, frames) = mpsc::channel();
        if status != 200 {
            let body = reply(response).body.to_string();
            return Stream {
                status,
                headers,
                body,
                frames,
            };
        }
        std::thread::spawn(move || {
            let reader = BufReader::new(response.into_body().into_reader());
            let (mut frame, mut started) = (Frame::default(), false);
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if line.is_empty() {
                    if started && tx.send(std::mem::take(&mut frame)).is_err() {
                        return;
                    }
                    started = false;
                    continue;
                }
                if line.starts_with(':') {
                    let comment = Frame {
                        comment: true,
                        ..Frame::default()
                    };
                    if tx.send(comment).is_err() {
                        return;
                    }
                    continue;
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()),
                    None => (line.clone(), String::new()),
                };
                match field.as_str() {
                    "event" => frame.event = value,
                    "id" => frame.id = Some(value),
                    "retry" => frame.retry = value.parse().ok(),
                    "data" => {
                        if !frame.data.is_empty() {
                            frame.data.push('\n');
                        }
                        frame.data.push_str(&value);
                    }
                    _ => {}
                }
                started = true;
            }
        });
        Stream {
            status,
            headers,
            body: String::new(),
            frames,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The next frame of any kind.
    fn frame(&self) -> Frame {
        self.frames
            .recv_timeout(WAIT)
            .expect("a frame within the deadline")
    }

    /// The next named event, past comments and `retry:`, within one deadline however many
    /// keep-alive comments come first.
    fn event(&self) -> Frame {
        let end = std::time::Instant::now() + WAIT;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            let frame = self
                .frames
                .recv_timeout(left)
                .expect("an event within the deadline");
            if !frame.event.is_empty() {
                return frame;
            }
        }
    }
}

fn stream_url(app: &TestApp, query: &str) -> String {
    format!("{}/api/v1/pushes/stream{query}", app.base_url)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// `project`'s push stream at `query` (such as `?branch=docs`, or empty), opened with its key.
fn subscribe(app: &TestApp, project: &TestProject, query: &str) -> Stream {
    let auth = bearer(&project.key);
    Stream::open(&stream_url(app, query), &[("Authorization", &auth)])
}

/// [`subscribe`], resuming after the event `last_event_id` (sent as `Last-Event-ID`).
fn resume(app: &TestApp, project: &TestProject, query: &str, last_event_id: &str) -> Stream {
    let auth = bearer(&project.key);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Last-Event-ID", last_event_id),
    ];
    Stream::open(&stream_url(app, query), &headers)
}

/// A fresh app with one project, `name`, whose stream is already open: where most stream
/// tests start.
fn watching(name: &str) -> (TestApp, TestProject, Stream) {
    let app = TestApp::spawn();
    let project = app.create_project(name);
    let stream = subscribe(&app, &project, "");
    (app, project, stream)
}

/// Sends a push to `branch` and returns its id.
fn push(app: &TestApp, project: &TestProject, branch: &str, message: &str) -> String {
    let delivery = format!("live-{}", git_push_tracker::tokens::generate_hook_id());
    let reply = app.github_push(
        project,
        &delivery,
        &github_payload(branch, &[message], 1_776_160_800),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["pushes"][0].as_str().unwrap().to_owned()
}

fn gemini_answer(text: &str) -> Scripted {
    Scripted::json(
        200,
        serde_json::json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}]})
            .to_string(),
    )
}

/// An app whose pushes are summarized by a fake Gemini, answering "* Summary N" for the Nth call.
fn app_with_model(fake: &FakeLlm) -> TestApp {
    let mut config = GeminiConfig::new(
        git_push_tracker::secret::Secret::new("AIzaLIVE-key"),
        "gemini-flash-latest",
    );
    config.base_url = fake.base_url();
    let summarizer: Arc<dyn Summarizer> = Arc::new(GeminiSummarizer::new(config));
    TestApp::spawn_with(move |c| c.summarizer = summarizer)
}

#[test]
fn the_stream_delivers_push_created_then_push_updated_when_the_model_summary_arrives_later() {
    let fake = FakeLlm::start(vec![
        gemini_answer("* Added the live stream").delayed(Duration::from_millis(300)),
    ]);
    let app = app_with_model(&fake);
    let project = app.create_project("live");
    let stream = subscribe(&app, &project, "");
    assert_eq!(stream.status, 200, "{}", stream.body);
    assert!(
        stream
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
    );
    assert_eq!(stream.header("x-accel-buffering"), Some("no"));
    let first = stream.frame();
    assert!(first.retry.is_some(), "retry: comes first: {first:?}");

    let id = push(&app, &project, "main", "feat: stream");
    let created = stream.event();
    assert_eq!(created.event, "push.created");
    assert_eq!(created.json()["id"], id);
    assert_eq!(created.json()["summaryStatus"], "pending");
    let updated = stream.event();
    assert_eq!(updated.event, "push.updated");
    assert_eq!(updated.json()["summaryStatus"], "summarized");
    assert_eq!(updated.json()["summary"], "- Added the live stream");
    assert!(
        updated.id > created.id
            || updated.id.as_ref().unwrap().len() == created.id.as_ref().unwrap().len()
    );
    assert_ne!(updated.id, created.id);

    // The data is the push exactly as the list shows it.
    let list = app.get("/api/v1/pushes", Some(&project.key));
    assert_eq!(list.body["pushes"][0], updated.json());
}

#[test]
fn a_client_that_reconnects_with_last_event_id_gets_exactly_the_changes_it_missed_in_order_then_live()
 {
    let (app, project, stream) = watching("resume");
    let first = push(&app, &project, "main", "feat: one");
    let seen = stream.event();
    assert_eq!(seen.json()["id"], first);
    let last_id = seen.id.clone().expect("events carry an id");
    drop(stream);

    let missed: Vec<String> = (0..5)
        .map(|i| push(&app, &project, "main", &format!("feat: missed {i}")))
        .collect();
    let resumed = resume(&app, &project, "", &last_id);
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    let replayed: Vec<String> = (0..missed.len())
        .map(|_| {
            let event = resumed.event();
            assert_eq!(event.event, "push.created");
            event.json()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(replayed, missed);

    // Then live, with nothing repeated: the next event is the next push.
    let after = push(&app, &project, "main", "feat: after");
    assert_eq!(resumed.event().json()["id"], after);

    // `?after=` is the same resume for clients that cannot set the header.
    let by_query = subscribe(&app, &project, &format!("?after={last_id}"));
    let mut expected = missed.clone();
    expected.push(after);
    for id in &expected {
        assert_eq!(by_query.event().json()["id"], *id);
    }
}

#[test]
fn a_resume_while_pushes_keep_arriving_has_no_gap_and_no_duplicate() {
    let (app, project, watcher) = watching("race");
    let first = push(&app, &project, "main", "feat: start");
    let start = watcher.event();
    assert_eq!(start.json()["id"], first);
    let cursor = start.id.unwrap();

    // Pushes arrive before, during and after the resume's replay.
    let sent = std::thread::scope(|s| {
        let pusher = s.spawn(|| {
            (0..30)
                .map(|i| push(&app, &project, "main", &format!("feat: race {i}")))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(5));
        let resumed = resume(&app, &project, "", &cursor);
        let sent = pusher.join().unwrap();
        (sent, resumed)
    });
    let (sent, resumed) = sent;
    let received: Vec<String> = (0..sent.len())
        .map(|_| resumed.event().json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(received, sent);
    let tail = push(&app, &project, "main", "feat: tail");
    assert_eq!(resumed.event().json()["id"], tail, "nothing came twice");
}

#[test]
fn filters_apply_and_a_key_of_another_project_sees_nothing_of_this_one() {
    let app = TestApp::spawn();
    let mine = app.create_project("mine");
    let theirs = app.create_project("theirs");
    let on_docs = subscribe(&app, &mine, "?branch=docs");
    let other = subscribe(&app, &theirs, "");

    push(&app, &mine, "main", "feat: not docs");
    let docs = push(&app, &mine, "docs", "docs: yes");
    let event = on_docs.event();
    assert_eq!(event.json()["id"], docs);
    assert_eq!(event.json()["branch"], "docs");

    let their_push = push(&app, &theirs, "main", "feat: theirs");
    assert_eq!(
        other.event().json()["id"],
        their_push,
        "the other project's stream saw none of this one's pushes before its own"
    );
}

#[test]
fn a_too_old_or_foreign_event_id_gets_stream_expired_then_the_current_state() {
    let (app, project, watcher) = watching("expired");
    let old = push(&app, &project, "main", "feat: old");
    let cursor = watcher.event().id.unwrap();
    let kept = push(&app, &project, "main", "feat: kept");
    let later = watcher.event().id.unwrap();
    drop(watcher);
    // The first push goes (as retention deletes it): a resume from before it missed a change.
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    conn.execute("DELETE FROM pushes WHERE public_id = ?1", [&old])
        .unwrap();

    let before_floor = "c1.AAAAAAAAAAA";
    let stream = resume(&app, &project, "", before_floor);
    let expired = stream.event();
    assert_eq!(expired.event, "stream.expired");
    assert!(expired.id.is_some());
    let current = stream.event();
    assert_eq!(current.event, "push.current");
    assert_eq!(current.json()["id"], kept);

    // A cursor after the deleted push is still good.
    let fine = resume(&app, &project, "", &cursor);
    let replayed = fine.event();
    assert_eq!(replayed.event, "push.created");
    assert_eq!(replayed.id.as_deref(), Some(later.as_str()));

    let bad = subscribe(&app, &project, "?after=nonsense");
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn a_quiet_stream_sends_a_keep_alive_comment_at_the_configured_interval() {
    let app = TestApp::spawn_with(|c| c.stream_keepalive = Duration::from_millis(100));
    let project = app.create_project("quiet");
    let stream = subscribe(&app, &project, "");
    let mut retries = 0;
    let comment = loop {
        let frame = stream.frame();
        if frame.retry.is_some() {
            retries += 1;
            continue;
        }
        break frame;
    };
    assert!(comment.comment, "{comment:?}");
    assert_eq!(retries, 1);
    // And again: `retry:` was sent once, the comments keep coming.
    assert!(stream.frame().comment);
}

#[test]
fn the_dashboards_owner_stream_takes_the_admin_credential_and_sees_every_project() {
    let app = TestApp::spawn();
    let a = app.create_project("alpha");
    let b = app.create_project("beta");
    let refused = Stream::open(&format!("{}/api/admin/stream", app.base_url), &[]);
    assert_eq!(refused.status, 401);
    let key_refused = Stream::open(
        &format!("{}/api/admin/stream", app.base_url),
        &[("Authorization", &bearer(&a.key))],
    );
    assert_eq!(key_refused.status, 401);
    let owner = Stream::open(
        &format!("{}/api/admin/stream", app.base_url),
        &[("Authorization", &bearer(ADMIN_TOKEN))],
    );
    assert_eq!(owner.status, 200, "{}", owner.body);
    let pa = push(&app, &a, "main", "feat: a");
    let pb = push(&app, &b, "main", "feat: b");
    let first = owner.event().json();
    assert_eq!(
        (first["project"].as_str(), first["push"]["id"].as_str()),
        (Some("alpha"), Some(pa.as_str()))
    );
    let second = owner.event().json();
    assert_eq!(
        (second["project"].as_str(), second["push"]["id"].as_str()),
        (Some("beta"), Some(pb.as_str()))
    );
}

#[test]
fn the_push_list_and_a_push_answer_304_to_their_etag_until_something_changes() {
    let app = TestApp::spawn();
    let project = app.create_project("etags");
    let id = push(&app, &project, "main", "feat: tagged");
    let get = |path: &str, tag: Option<&str>| {
        let mut request = app
            .agent
            .get(format!("{}{path}", app.base_url))
            .header("Authorization", bearer(&project.key));
        if let Some(tag) = tag {
            request = request.header("If-None-Match", tag);
        }
        reply(request.call().unwrap())
    };
    for path in ["/api/v1/pushes?limit=5", &format!("/api/v1/pushes/{id}")] {
        let full = get(path, None);
        assert_eq!(full.status, 200);
        let tag = full.header("etag").expect("an ETag").to_owned();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
        let again = get(path, Some(&tag));
        assert_eq!(again.status, 304, "{path}");
        assert_eq!(again.body, Value::String(String::new()), "no body");
        assert_eq!(again.header("etag"), Some(tag.as_str()));
        assert_eq!(get(path, Some("\"other\"")).status, 200);
    }
    let list_tag = get("/api/v1/pushes?limit=5", None)
        .header("etag")
        .unwrap()
        .to_owned();
    let push_tag = get(&format!("/api/v1/pushes/{id}"), None)
        .header("etag")
        .unwrap()
        .to_owned();
    // Other parameters are another answer.
    assert_eq!(get("/api/v1/pushes?limit=6", Some(&list_tag)).status, 200);

    // A new push changes the list, not the push; a re-summary changes both.
    let another = push(&app, &project, "main", "feat: another");
    assert_eq!(get("/api/v1/pushes?limit=5", Some(&list_tag)).status, 200);
    assert_eq!(
        get(&format!("/api/v1/pushes/{id}"), Some(&push_tag)).status,
        304
    );
    let requeue = app.post(
        &format!("{}/api/admin/pushes/{id}/resummarize", app.base_url),
        &[("Authorization", &bearer(ADMIN_TOKEN))],
        b"",
    );
    assert!(requeue.status < 300, "{}", requeue.body);
    app.wait_for("the push to change", WAIT, || {
        (get(&format!("/api/v1/pushes/{id}"), Some(&push_tag)).status == 200).then_some(())
    });
    // Deleting a push (retention) changes the list too, also one whose change is not the
    // project's newest (the re-summary of `id` came after it).
    let tag = get("/api/v1/pushes?limit=5", None)
        .header("etag")
        .unwrap()
        .to_owned();
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    conn.execute("DELETE FROM pushes WHERE public_id = ?1", [&another])
        .unwrap();
    assert_eq!(get("/api/v1/pushes?limit=5", Some(&tag)).status, 200);
}

/// feedparser's reading of a feed, as JSON: bozo (an error), version, ids, titles, updated.
fn feedparser(xml: &str) -> Option<Value> {
    let python = tool::require(
        "feed parses in feedparser",
        "python3",
        &["-c", "import feedparser; print(feedparser.__version__)"],
        "pip install feedparser, or .ci/python-deps.sh",
    )?;
    let _ = python;
    let script = r#"
import feedparser, json, sys
d = feedparser.parse(sys.stdin.buffer.read())
print(json.dumps({
    "bozo": bool(d.bozo), "error": str(d.get("bozo_exception", "")), "version": d.version,
    "id": d.feed.get("id"), "title": d.feed.get("title"), "updated": d.feed.get("updated"),
    "links": [(l.get("rel"), l.get("href")) for l in d.feed.get("links", [])],
    "entries": [{"id": e.get("id"), "title": e.get("title"), "updated": e.get("updated"),
                 "author": e.get("author"), "summary": e.get("summary")} for e in d.entries],
}))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), xml.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn the_atom_feed_parses_in_feedparser_keeps_entry_ids_across_a_re_summary_and_moves_updated() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let fake = FakeLlm::start_with(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        gemini_answer(&format!("* Summary <{n}> & more"))
    });
    let app = app_with_model(&fake);
    let project = app.create_project("feed");
    let id = push(&app, &project, "main", "feat: feed me");
    let feed_url = format!("{}/api/v1/pushes.atom?token={}", app.base_url, project.key);
    let fetch = |extra: &[(&str, &str)]| {
        let mut request = app.agent.get(&feed_url);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let mut response = request.call().unwrap();
        let status = response.status().as_u16();
        let header = |n: &str| {
            response
                .headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (ct, etag, modified) = (
            header("content-type"),
            header("etag"),
            header("last-modified"),
        );
        let body = response.body_mut().read_to_string().unwrap_or_default();
        (status, ct, etag, modified, body)
    };
    let summarized = |n: usize| {
        app.wait_for("the model summary", WAIT, || {
            let (_, _, _, _, body) = fetch(&[]);
            body.contains(&format!("Summary &lt;{n}&gt;"))
                .then_some(body)
        })
    };
    let first_xml = summarized(1);
    let (status, ct, etag, modified, _) = fetch(&[]);
    assert_eq!(status, 200);
    assert!(ct.unwrap().starts_with("application/atom+xml"));
    let (etag, modified) = (etag.expect("ETag"), modified.expect("Last-Modified"));

    // 304 on either validator, nothing changed.
    let (status, _, _, _, body) = fetch(&[("If-None-Match", &etag)]);
    assert_eq!((status, body.as_str()), (304, ""));
    let (status, _, _, _, _) = fetch(&[("If-Modified-Since", &modified)]);
    assert_eq!(status, 304);
    assert_eq!(fetch(&[("If-None-Match", "\"stale\"")]).0, 200);

    let Some(first) = feedparser(&first_xml) else {
        return;
    };
    assert_eq!(first["bozo"], false, "{}", first["error"]);
    assert_eq!(first["version"], "atom10");
    let entry = &first["entries"][0];
    assert_eq!(entry["id"], format!("urn:uuid:{id}"));
    assert_eq!(entry["title"], "main: Summary <1> & more");
    assert_eq!(entry["author"], "ada");
    let links = first["links"].as_array().unwrap();
    assert!(links.iter().any(|l| l[0] == "self"), "{links:?}");

    // A re-summary: same entry id, a new summary and a later `updated`, a new ETag.
    std::thread::sleep(Duration::from_millis(5)); // `updated` has millisecond precision
    let requeue = app.post(
        &format!("{}/api/admin/pushes/{id}/resummarize", app.base_url),
        &[("Authorization", &bearer(ADMIN_TOKEN))],
        b"",
    );
    assert!(requeue.status < 300, "{}", requeue.body);
    let second_xml = summarized(2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let second = feedparser(&second_xml).unwrap();
    assert_eq!(second["bozo"], false, "{}", second["error"]);
    let again = &second["entries"][0];
    assert_eq!(again["id"], entry["id"]);
    assert_eq!(again["title"], "main: Summary <2> & more");
    assert!(
        again["updated"].as_str() > entry["updated"].as_str(),
        "{again} vs {entry}"
    );
    assert_eq!(fetch(&[("If-None-Match", &etag)]).0, 200);
    assert_eq!(second["id"], first["id"], "the feed's id is stable");
}

#[test]
fn a_key_in_the_url_works_on_the_stream_and_the_feed_only_and_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("url.db"), dir.path().join("serve.log"));
    let server = Server::start(&db, &log, |command| {
        command
            .env("PUSH_TRACKER_LOG", "trace")
            .env("PUSH_TRACKER_SUMMARIZER", "builtin")
            .env("PUSH_TRACKER_ADMIN_TOKEN", ADMIN_TOKEN);
    });
    cli::run_json(&db, &["project", "create", "urlkeys", "--json"]);
    let key = cli::run_json(
        &db,
        &[
            "key",
            "create",
            "urlkeys",
            "--label",
            "feed-reader",
            "--json",
        ],
    )["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = agent();
    let get = |path: &str| reply(http.get(format!("{}{path}", server.base)).call().unwrap());

    let feed = get(&format!("/api/v1/pushes.atom?token={key}"));
    assert_eq!(feed.status, 200, "{}", feed.body);
    let stream = Stream::open(
        &format!("{}/api/v1/pushes/stream?token={key}", server.base),
        &[],
    );
    assert_eq!(stream.status, 200, "{}", stream.body);
    assert!(stream.frame().retry.is_some());
    drop(stream);
    // HTTP Basic with the key as the password, any user name.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("reader:{key}"));
    let by_basic = reply(
        http.get(format!("{}/api/v1/pushes.atom", server.base))
            .header("Authorization", format!("Basic {basic}"))
            .call()
            .unwrap(),
    );
    assert_eq!(by_basic.status, 200, "{}", by_basic.body);
    let wrong = get("/api/v1/pushes.atom?token=gpt_NotAKeyOfAnyProject0123456789abcdef");
    assert_eq!(wrong.status, 401);

    for path in [
        format!("/api/v1/pushes?token={key}"),
        format!("/api/v1/pushes/x?token={key}"),
        format!("/api/admin/projects?token={ADMIN_TOKEN}"),
        format!("/healthz?access_token={key}"),
    ] {
        let refused = get(&path);
        assert_eq!(refused.status, 401, "{path}: {}", refused.body);
        assert_eq!(refused.body["error"]["code"], "key_in_url", "{path}");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"),
            "{}",
            refused.body
        );
    }
    let metrics = reply(
        http.get(format!("{}/metrics", server.base))
            .header("Authorization", bearer(ADMIN_TOKEN))
            .call()
            .unwrap(),
    );
    assert_eq!(metrics.status, 200);
    assert!(!metrics.body.to_string().contains(&key));
    server.stop();
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.contains("request"), "the log has the requests");
    assert!(!written.contains(&key), "the key reached the log");
    assert!(
        !written.contains(&key["gpt_".len()..]),
        "part of the key reached the log"
    );
}

/// A push payload to `git_ref` (`refs/heads/x` or `refs/tags/x`) of `repository`, pushed by
/// `pusher` with one commit by `author`.
fn varied_payload(git_ref: &str, repository: &str, pusher: &str, author: &str) -> Vec<u8> {
    let mut payload: Value =
        serde_json::from_slice(&github_payload("main", &["feat: varied"], 1_776_160_800)).unwrap();
    payload["ref"] = git_ref.into();
    payload["repository"]["full_name"] = repository.into();
    payload["pusher"]["name"] = pusher.into();
    payload["sender"]["login"] = pusher.into();
    payload["commits"][0]["author"]["username"] = author.into();
    payload["commits"][0]["author"]["name"] = author.into();
    serde_json::to_vec(&payload).unwrap()
}

fn send(app: &TestApp, project: &TestProject, payload: &[u8]) -> String {
    let delivery = format!("live-{}", git_push_tracker::tokens::generate_hook_id());
    let reply = app.github_push(project, &delivery, payload);
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["pushes"][0].as_str().unwrap().to_owned()
}

/// The filters the filter tests try, each as a query string, every one matched by the last
/// push [`varied_pushes`] sends: a tag `docs` of acme/other pushed by grace with bob's commit.
const FILTERS: &[&str] = &[
    "branch=docs",
    "author=GRACE",
    "author=bob&author=nobody",
    "repository=acme/other",
    "refType=tag",
    "repository=acme/other&author=grace",
    "branch=docs&refType=tag&author=Bob&repository=acme/other&repository=acme/third",
];

/// Pushes that each filter of [`FILTERS`] splits differently; the last one matches them all.
fn varied_pushes(app: &TestApp, project: &TestProject) -> Vec<String> {
    [
        ("refs/heads/main", "acme/app", "ada", "ada"),
        ("refs/heads/docs", "acme/app", "ada", "Grace"),
        ("refs/heads/main", "acme/other", "bob", "ada"),
        ("refs/tags/v1.0", "acme/app", "ada", "ada"),
        ("refs/heads/docs", "acme/other", "grace", "carol"),
        ("refs/tags/docs", "acme/other", "grace", "bob"),
    ]
    .iter()
    .map(|(r, repo, pusher, author)| send(app, project, &varied_payload(r, repo, pusher, author)))
    .collect()
}

/// The ids the list shows under `filter`, oldest first (as a stream delivers them).
fn listed(app: &TestApp, project: &TestProject, filter: &str) -> Vec<String> {
    let list = app.get(
        &format!("/api/v1/pushes?limit=100&{filter}"),
        Some(&project.key),
    );
    assert_eq!(list.status, 200, "{filter}: {}", list.body);
    let mut ids = push_ids(&list.body);
    ids.reverse();
    ids
}

/// The `push.created` ids of a stream up to and including `last`.
fn created_until(stream: &Stream, last: &str) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let event = stream.event();
        if event.event != "push.created" {
            continue;
        }
        let id = event.json()["id"].as_str().unwrap().to_owned();
        ids.push(id.clone());
        if id == last {
            return ids;
        }
    }
}

#[test]
fn each_filter_on_the_stream_live_and_replayed_shows_exactly_what_the_list_shows() {
    let (app, project, unfiltered) = watching("filtered");
    push(&app, &project, "main", "feat: before the filters");
    let before = unfiltered.event().id.unwrap();
    let live: Vec<Stream> = FILTERS
        .iter()
        .map(|f| {
            let stream = subscribe(&app, &project, &format!("?{f}"));
            assert_eq!(stream.status, 200, "{f}: {}", stream.body);
            stream
        })
        .collect();
    let sent = varied_pushes(&app, &project);
    let last = sent.last().unwrap();
    let mut seen = std::collections::HashSet::new();
    for (filter, stream) in FILTERS.iter().zip(&live) {
        let expected = listed(&app, &project, filter);
        assert!(
            expected.len() < sent.len(),
            "{filter} filters something out"
        );
        assert_eq!(created_until(stream, last), expected, "live, {filter}");
        seen.insert(expected);
        let replayed = resume(&app, &project, &format!("?{filter}"), &before);
        assert_eq!(
            created_until(&replayed, last),
            listed(&app, &project, filter),
            "replayed, {filter}"
        );
    }
    assert!(seen.len() >= 5, "the filters split the pushes differently");
}

#[test]
fn a_bad_filter_is_the_lists_400_on_the_stream_and_the_feed() {
    let app = TestApp::spawn();
    let project = app.create_project("badfilter");
    let many = vec!["author=a"; 21].join("&");
    for query in ["refType=both", many.as_str()] {
        let list = app.get(&format!("/api/v1/pushes?{query}"), Some(&project.key));
        assert_eq!(list.status, 400, "{query}");
        for path in ["/api/v1/pushes/stream", "/api/v1/pushes.atom"] {
            let answer = app.get(&format!("{path}?{query}"), Some(&project.key));
            assert_eq!(answer.status, 400, "{path}?{query}");
            assert_eq!(answer.body["error"], list.body["error"], "{path}?{query}");
        }
    }
}

/// A feed's entry ids (push ids, newest first), title and self link.
fn feed_entries(xml: &str) -> (Vec<String>, String, String) {
    let between = |text: &str, open: &str, close: &str| -> String {
        let start = text
            .find(open)
            .unwrap_or_else(|| panic!("{open} in {text}"))
            + open.len();
        text[start..][..text[start..].find(close).unwrap()].to_owned()
    };
    let mut parts = xml.split("<entry>");
    let head = parts.next().unwrap();
    let ids = parts
        .map(|e| between(e, "<id>urn:uuid:", "</id>"))
        .collect();
    let title = between(head, "<title type=\"text\">", "</title>");
    let self_link = between(
        head,
        "<link rel=\"self\" type=\"application/atom+xml\" href=\"",
        "\"",
    );
    (ids, title, self_link)
}

fn get_feed(app: &TestApp, project: &TestProject, query: &str) -> String {
    let answer = app.get(&format!("/api/v1/pushes.atom{query}"), Some(&project.key));
    assert_eq!(answer.status, 200, "{query}: {}", answer.body);
    answer.body.as_str().unwrap().to_owned()
}

#[test]
fn each_filter_on_the_feed_shows_what_the_list_shows_and_its_head_names_the_filters() {
    let app = TestApp::spawn();
    let project = app.create_project("feedfilters");
    varied_pushes(&app, &project);
    let (all, plain_title, plain_self) = feed_entries(&get_feed(&app, &project, ""));
    assert_eq!(all.len(), 6);
    assert_eq!(plain_title, "feedfilters: pushes");
    assert_eq!(plain_self, format!("{}/api/v1/pushes.atom", app.base_url));
    let mut ids = std::collections::HashSet::new();
    for filter in FILTERS {
        let xml = get_feed(&app, &project, &format!("?{filter}"));
        let (entries, title, self_link) = feed_entries(&xml);
        let mut expected = listed(&app, &project, filter);
        expected.reverse();
        assert_eq!(entries, expected, "{filter}");
        assert_ne!(title, plain_title, "{filter}");
        assert!(self_link.contains('?'), "{filter}: {self_link}");
        // The self link is the same feed: following it gives the same entries.
        let relative = self_link
            .strip_prefix(&app.base_url)
            .unwrap()
            .replace("&amp;", "&");
        let again = app.get(&relative, Some(&project.key));
        assert_eq!(
            feed_entries(again.body.as_str().unwrap()).0,
            expected,
            "{self_link}"
        );
        let feed_id = xml
            .split("<id>")
            .nth(1)
            .unwrap()
            .split("</id>")
            .next()
            .unwrap()
            .to_owned();
        assert!(ids.insert(feed_id), "{filter}: a feed id of its own");
    }
    let (_, title, _) = feed_entries(&get_feed(
        &app,
        &project,
        "?branch=docs&author=grace&repository=acme/other&refType=tag",
    ));
    assert_eq!(
        title,
        "feedfilters: pushes to docs by grace in acme/other (tags only)"
    );
    // Another filter is another ETag: a 304 never answers for a different feed.
    let plain = app.get("/api/v1/pushes.atom", Some(&project.key));
    let tag = plain.header("etag").unwrap().to_owned();
    let filtered = app
        .agent
        .get(format!("{}/api/v1/pushes.atom?refType=tag", app.base_url))
        .header("Authorization", bearer(&project.key))
        .header("If-None-Match", &tag)
        .call()
        .unwrap();
    assert_eq!(filtered.status().as_u16(), 200);
}

/// A stream subscriber on a socket with a tiny receive buffer that reads nothing until told to.
struct Stalled {
    socket: std::net::TcpStream,
}

impl Stalled {
    fn open(app: &TestApp, key: &str, last_event_id: &str) -> Stalled {
        let addr: std::net::SocketAddr =
            app.base_url.trim_start_matches("http://").parse().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let socket = rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            socket.connect(addr).await.unwrap().into_std().unwrap()
        });
        socket.set_nonblocking(false).unwrap();
        let request = format!(
            "GET /api/v1/pushes/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nLast-Event-ID: {last_event_id}\r\n\r\n"
        );
        std::io::Write::write_all(&mut &socket, request.as_bytes()).unwrap();
        Stalled { socket }
    }

    /// Reads everything the server sent until it closed the connection, and returns the ids
    /// (`id:`, the change cursor, and the push's id) of the complete `push.created` events.
    fn drain(self) -> Vec<(String, String)> {
        self.socket.set_read_timeout(Some(WAIT)).unwrap();
        let (mut bytes, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
        let end = std::time::Instant::now() + WAIT * 3;
        loop {
            let n = std::io::Read::read(&mut &self.socket, &mut buf)
                .expect("the server closed the connection of the subscriber that stopped reading");
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
            assert!(
                std::time::Instant::now() < end,
                "the server kept the connection of the subscriber that stopped reading open"
            );
        }
        let start = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        // The body is chunked, and an event may span chunks: join the whole chunks that came.
        let (mut body, mut unchunked) = (&bytes[start..], Vec::new());
        while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
            let Ok(size) = usize::from_str_radix(&String::from_utf8_lossy(&body[..end]), 16) else {
                break;
            };
            let rest = &body[end + 2..];
            if size == 0 || rest.len() < size + 2 {
                break; // the end, or cut off mid-chunk: the rest never arrived
            }
            unchunked.extend_from_slice(&rest[..size]);
            body = &rest[size + 2..];
        }
        let unchunked = String::from_utf8_lossy(&unchunked);
        unchunked
            .split("\n\n")
            .filter(|frame| frame.contains("event: push.created"))
            .filter_map(|frame| {
                let id = frame.lines().find_map(|l| l.strip_prefix("id: "))?;
                let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
                let push: Value = serde_json::from_str(data).ok()?;
                Some((id.to_owned(), push["id"].as_str()?.to_owned()))
            })
            .collect()
    }
}

#[test]
fn a_subscriber_that_stops_reading_is_dropped_without_slowing_another_and_resumes_with_what_it_missed()
 {
    // A history far larger than the kernel's socket buffers and the server's own, replayed at
    // once to a subscriber that reads nothing: its writes stall at once.
    let seeded = 3_000;
    let first = TestApp::spawn();
    let project = first.create_project("slow");
    let branch = format!("feature/{}", "x".repeat(900));
    let subjects: Vec<String> = (0..8)
        .map(|i| format!("feat: change {i} {}", "y".repeat(150)))
        .collect();
    let subjects: Vec<&str> = subjects.iter().map(String::as_str).collect();
    send(
        &first,
        &project,
        &github_payload(&branch, &subjects, 1_776_160_800),
    );
    let first_base = first.base_url.clone();
    let dir = first.stop_keeping_files();
    let db_path = dir.path().join("test.db");
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO pushes (public_id, project_id, provider, delivery_id, repository, git_ref,
            ref_type, branch, before_sha, after_sha, created, deleted, forced, pusher,
            commit_count, commits_truncated, compare_url, pushed_at, received_at, summary,
            summary_status, summary_source, summarized_at)
         SELECT printf('00000000-0000-4000-8000-%012d', i), project_id, provider, NULL,
            repository, git_ref, ref_type, branch, before_sha, printf('%040d', i), created,
            deleted, forced, pusher, commit_count, commits_truncated, compare_url,
            pushed_at + i, received_at + i, summary, summary_status, summary_source,
            summarized_at
         FROM pushes, n",
        [seeded as i64],
    )
    .unwrap();
    drop(conn);

    let idle = Duration::from_millis(700);
    let app = TestApp::spawn_on(&db_path, |c| {
        c.limits.idle_timeout = idle;
        c.stream_keepalive = Duration::from_millis(150);
    });
    let project = TestProject {
        webhook_url: project.webhook_url.replace(&first_base, &app.base_url),
        ..project
    };
    let everything = "c1.AAAAAAAAAAA";
    let stalled = Stalled::open(&app, &project.key, everything);
    let fast = subscribe(&app, &project, "");
    assert_eq!(fast.status, 200);
    // Live pushes go on for a few idle timeouts; the other subscriber gets each one before the
    // next is sent.
    let started = std::time::Instant::now();
    let mut live = Vec::new();
    while started.elapsed() < idle * 4 {
        let id = send(
            &app,
            &project,
            &github_payload("main", &["feat: live"], 1_776_160_800),
        );
        let event = fast.event();
        assert_eq!(event.json()["id"], id);
        live.push(id);
    }
    let received = stalled.drain();
    // Everything, in order, as a subscriber that reads gets it.
    let all: Vec<String> = {
        let reader = resume(&app, &project, "", everything);
        created_until(&reader, live.last().unwrap())
    };
    assert_eq!(all.len(), seeded + 1 + live.len());
    assert!(!received.is_empty(), "it got events before it stalled");
    assert!(
        received.len() < seeded,
        "it was dropped while it read nothing ({} events), not served on when it read again",
        received.len()
    );
    let got: Vec<String> = received.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(got, all[..received.len()], "in order, from the first");

    let (last_id, _) = received.last().unwrap();
    let resumed = resume(&app, &project, "", last_id);
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(
        created_until(&resumed, live.last().unwrap()),
        all[received.len()..],
        "exactly what it missed"
    );
    let next = send(
        &app,
        &project,
        &github_payload("main", &["feat: after"], 1_776_160_800),
    );
    assert_eq!(
        resumed.event().json()["id"],
        next,
        "then live, nothing twice"
    );
}

#[test]
fn the_stream_and_the_feed_answer_401_with_a_basic_challenge_so_a_feed_reader_asks_for_the_key() {
    let app = TestApp::spawn();
    let project = app.create_project("challenge");
    use base64::Engine;
    let wrong_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode("reader:gpt_NotAKeyOfAnyProject0123456789abcdef")
    );
    for path in ["/api/v1/pushes.atom", "/api/v1/pushes/stream"] {
        for auth in [
            None,
            Some(wrong_basic.as_str()),
            Some("Bearer gpt_NotAKeyOfAnyProject0123456789abcdef"),
        ] {
            let mut request = app.agent.get(format!("{}{path}", app.base_url));
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            let answer = reply(request.call().unwrap());
            assert_eq!(answer.status, 401, "{path} {auth:?}");
            assert_eq!(
                answer.body["error"]["code"], "unauthorized",
                "{path} {auth:?}"
            );
            let challenge = answer
                .header("www-authenticate")
                .unwrap_or_else(|| panic!("{path} {auth:?}"));
            assert!(
                challenge.starts_with(r#"Basic realm="git-push-tracker""#),
                "{challenge}"
            );
            assert!(challenge.contains("Bearer"), "{challenge}");
        }
    }
    // The answer with the key the reader then sends: the feed.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("reader:{}", project.key));
    let feed = reply(
        app.agent
            .get(format!("{}/api/v1/pushes.atom", app.base_url))
            .header("Authorization", format!("Basic {basic}"))
            .call()
            .unwrap(),
    );
    assert_eq!(feed.status, 200);
    // Other routes do not invite a password dialog.
    let list = app.get("/api/v1/pushes", None);
    assert_eq!(list.status, 401);
    assert!(
        list.header("www-authenticate")
            .is_none_or(|c| !c.contains("Basic"))
    );
    // The OpenAPI document declares the header on both routes' 401.
    let doc = app.get("/openapi.json", None);
    for (path, name) in [
        ("/api/v1/pushes.atom", "pushesFeed"),
        ("/api/v1/pushes/stream", "streamPushes"),
    ] {
        let op = &doc.body["paths"][path]["get"];
        assert_eq!(op["operationId"], name);
        assert!(
            op["responses"]["401"]["headers"]
                .as_object()
                .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("WWW-Authenticate"))),
            "{path}: {}",
            op["responses"]["401"]
        );
    }
}

/// Validates `xml` against RFC 4287's RELAX NG schema with jing; None when jing is missing
/// (outside CI), else its verdict and messages.
fn jing(xml: &str) -> Option<(bool, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/atom");
    let schema = format!("{dir}/atom.rnc");
    tool::require(
        "the feed validates against the RFC 4287 schema",
        "jing",
        &["-c", &schema, &format!("{dir}/minimal.xml")],
        "apt-get install jing, or .ci/apt-install.sh jing jing",
    )?;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), xml).unwrap();
    let out = std::process::Command::new("jing")
        .args(["-c", &schema])
        .arg(file.path())
        .output()
        .unwrap();
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

#[test]
fn the_feed_with_filters_a_deleted_branch_a_tag_and_hostile_text_is_valid_rfc_4287() {
    let app = TestApp::spawn();
    let project = app.create_project("valid");
    push(&app, &project, "main", "feat: an ordinary push");
    // Hostile text: markup, entities, a CDATA end, controls XML cannot carry, bidi overrides.
    let hostile = "fix: <script>alert('x')</script> & \"q\" ]]> \u{1}\u{1b}[31m \u{202e}evil\u{202c} \u{1F600}";
    let mut payload: Value =
        serde_json::from_slice(&github_payload("main", &[hostile], 1_776_160_800)).unwrap();
    payload["pusher"]["name"] = "<b>mallory</b> & co".into();
    payload["commits"][0]["author"]["username"] = "<b>mallory</b> & co".into();
    payload["ref"] = "refs/heads/a<b>&\"c".into();
    send(&app, &project, &serde_json::to_vec(&payload).unwrap());
    send(
        &app,
        &project,
        &varied_payload("refs/tags/v2.0", "acme/app", "ada", "ada"),
    );
    let mut deleted: Value =
        serde_json::from_slice(&github_payload("gone", &[], 1_776_160_800)).unwrap();
    deleted["deleted"] = true.into();
    deleted["after"] = "0000000000000000000000000000000000000000".into();
    deleted["compare"] = Value::Null;
    send(&app, &project, &serde_json::to_vec(&deleted).unwrap());

    let mut checked = 0;
    for query in [
        "",
        "?refType=tag",
        "?branch=gone",
        "?author=%3Cb%3Emallory%3C%2Fb%3E%20%26%20co&limit=2",
        "?repository=acme/app&refType=branch",
    ] {
        let xml = get_feed(&app, &project, query);
        let entries = xml.matches("<entry>").count();
        assert!(entries > 0, "{query}: {xml}");
        assert_eq!(
            xml.matches("<author>").count(),
            entries,
            "an author on every entry"
        );
        let Some((valid, messages)) = jing(&xml) else {
            return;
        };
        assert!(valid, "{query}: {messages}\n{xml}");
        checked += 1;
    }
    assert_eq!(checked, 5);
    let all = get_feed(&app, &project, "");
    assert!(all.contains("&lt;script&gt;"), "markup is escaped text");
    assert!(
        !all.contains('\u{1}'),
        "no control character XML cannot carry"
    );

    // The validator does catch a broken feed: without its `updated`, or with an entry's id twice.
    let (head, rest) = all.split_once("<updated>").unwrap();
    let (_, after) = rest.split_once("</updated>").unwrap();
    let (valid, _) = jing(&format!("{head}{after}")).unwrap();
    assert!(!valid, "a feed without updated is refused");
    let twice = all.replacen("</id>", "</id><id>urn:uuid:again</id>", 2);
    assert!(!jing(&twice).unwrap().0, "an entry with two ids is refused");
}
