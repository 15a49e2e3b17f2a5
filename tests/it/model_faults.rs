//! Model faults under load: an OpenAI-compatible fake fails at random (500, 503, 429, timeouts,
//! malformed answers, refusals) while pushes stream in; every push still ends up summarized, or
//! failed with a reason, and none is left pending.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::app::{TestApp, github_payload};
use crate::support::fake_llm::{FakeLlm, Scripted};
use git_push_tracker::summarize::{self, SummarizerKind, SummarizerSettings};
use git_push_tracker::worker::WorkerSettings;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MODEL: &str = "fake-model";
const CLIENTS: usize = 3;
const PUSHES_PER_CLIENT: usize = 12;
/// The summarizer's request timeout; the fake's slow answers take longer than this.
const MODEL_TIMEOUT: Duration = Duration::from_millis(300);

fn ok_answer() -> Scripted {
    Scripted::json(
        200,
        serde_json::json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "- Changed things\n- Fixed others"},
                "finish_reason": "stop"
            }]
        })
        .to_string(),
    )
}

/// A random answer, and the name of the fault it plays (for the tally).
fn random_answer(rng: &mut StdRng) -> (&'static str, Scripted) {
    match rng.random_range(0..100) {
        0..35 => ("ok", ok_answer()),
        35..50 => (
            "500",
            Scripted::json(
                500,
                r#"{"error":{"message":"internal","type":"server_error"}}"#,
            ),
        ),
        50..58 => ("503", Scripted::json(503, "upstream overloaded")),
        58..70 => (
            "429",
            Scripted::json(
                429,
                r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#,
            ),
        ),
        70..80 => (
            "timeout",
            ok_answer().delayed(MODEL_TIMEOUT + Duration::from_millis(500)),
        ),
        80..85 => ("not json", Scripted::json(200, "<html>gateway</html>")),
        85..90 => (
            "truncated json",
            Scripted::json(200, r#"{"choices":[{"mess"#),
        ),
        90..95 => ("no choices", Scripted::json(200, r#"{"choices":[]}"#)),
        _ => (
            "400",
            Scripted::json(400, r#"{"error":{"message":"context length exceeded"}}"#),
        ),
    }
}

#[test]
fn under_random_model_faults_every_push_ends_summarized_or_failed_with_a_reason() {
    let rng = Mutex::new(StdRng::seed_from_u64(0x5eed));
    let tally: Arc<Mutex<HashMap<&'static str, usize>>> = Arc::default();
    let fake = {
        let tally = tally.clone();
        FakeLlm::start_with(move |_| {
            let (kind, answer) = random_answer(&mut rng.lock().unwrap());
            *tally.lock().unwrap().entry(kind).or_default() += 1;
            answer
        })
    };
    let summarizer = summarize::build(&SummarizerSettings {
        kind: SummarizerKind::OpenAi,
        openai_base_url: Some(format!("{}/v1", fake.base_url())),
        openai_model: Some(MODEL.to_owned()),
        timeout: MODEL_TIMEOUT,
        connect_timeout: MODEL_TIMEOUT,
        ..SummarizerSettings::default()
    })
    .expect("build the OpenAI summarizer");
    let app = TestApp::spawn_with(move |config| {
        config.summarizer = summarizer;
        config.worker = WorkerSettings {
            interval: Duration::from_millis(100),
            max_attempts: 4,
            retry_base: Duration::from_millis(20),
            max_retry_delay: Duration::from_millis(200),
        };
    });
    let project = Arc::new(app.create_project("faults"));
    let app = Arc::new(app);

    // Pushes stream in from several clients while the worker is already meeting faults.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (app, project) = (app.clone(), project.clone());
            std::thread::spawn(move || {
                for n in 0..PUSHES_PER_CLIENT {
                    let messages: Vec<String> = (0..1 + n % 3)
                        .map(|m| format!("change {m} from client {c} push {n}"))
                        .collect();
                    let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
                    let body = github_payload("main", &messages, 1_760_000_000 + n as i64);
                    let reply = app.github_push(&project, &format!("c{c}-n{n}"), &body);
                    assert_eq!(reply.status, 201, "{}", reply.body);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread panicked");
    }
    let total = CLIENTS * PUSHES_PER_CLIENT;

    let ids: Vec<String> = app.wait_for(
        "every push to leave pending",
        Duration::from_secs(90),
        || {
            let page = app.get("/api/v1/pushes?limit=100", Some(&project.key));
            assert_eq!(page.status, 200, "{}", page.body);
            let pushes = page.body["pushes"].as_array().unwrap();
            assert_eq!(pushes.len(), total);
            let done = pushes.iter().all(|p| p["summaryStatus"] != "pending");
            done.then(|| {
                pushes
                    .iter()
                    .map(|p| p["id"].as_str().unwrap().to_owned())
                    .collect()
            })
        },
    );

    let (mut summarized, mut failed) = (0, 0);
    for id in &ids {
        let detail = app.get(&format!("/api/v1/pushes/{id}"), Some(&project.key));
        assert_eq!(detail.status, 200, "{}", detail.body);
        let d = &detail.body;
        let summary = d["summary"].as_str().unwrap_or_default();
        assert!(
            !summary.trim().is_empty(),
            "push {id} has an empty summary: {d}"
        );
        match d["summaryStatus"].as_str() {
            Some("summarized") => {
                summarized += 1;
                assert_eq!(d["summarySource"], MODEL, "{d}");
            }
            Some("failed") => {
                failed += 1;
                assert!(d.get("lastError").is_none(), "owner-only: {d}");
                let owner = app.owner_push(&project.name, id);
                let reason = owner["lastError"].as_str().unwrap_or_default();
                assert!(
                    !reason.trim().is_empty(),
                    "push {id} failed without a reason: {d}"
                );
                assert!(d["attempts"].as_u64().unwrap() >= 1, "{d}");
            }
            other => panic!("push {id} ended as {other:?}: {d}"),
        }
    }
    assert_eq!(summarized + failed, total);
    let requests = fake.requests().len();
    assert!(
        requests > total,
        "faults should have caused retries: {requests} model requests for {total} pushes"
    );
    eprintln!(
        "model faults: {total} pushes, {summarized} summarized, {failed} failed, {requests} model requests, answers {:?}",
        tally.lock().unwrap()
    );
}
