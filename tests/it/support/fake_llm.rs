//! A scripted HTTP/1.1 server standing in for Gemini or an OpenAI-compatible API: it answers from a
//! queue (or, once the queue is empty, from a responder function) and records every request, so
//! tests see exactly what the summarizer sent.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Held back this long before answering, to provoke client timeouts.
    pub delay: Option<Duration>,
}

impl Scripted {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Scripted {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
            delay: None,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as on the request line.
    pub target: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

/// Decides the answer to a request once the scripted queue is empty.
pub type Responder = Arc<dyn Fn(&Recorded) -> Scripted + Send + Sync>;

/// The running fake; dropping it stops the accept loop.
pub struct FakeLlm {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    queue: Arc<Mutex<VecDeque<Scripted>>>,
    stop: Arc<AtomicBool>,
}

impl FakeLlm {
    /// Starts on `127.0.0.1:0` with answers served in order; once they run out it answers 500.
    pub fn start(script: Vec<Scripted>) -> Self {
        Self::launch(
            script,
            Arc::new(|_: &Recorded| {
                Scripted::json(500, r#"{"error":"fake LLM: no scripted response left"}"#)
            }),
        )
    }

    /// Starts on `127.0.0.1:0` answering every request with `responder` (called from one thread
    /// per connection, so it may run concurrently), after any answers added with `enqueue`.
    pub fn start_with(responder: impl Fn(&Recorded) -> Scripted + Send + Sync + 'static) -> Self {
        Self::launch(Vec::new(), Arc::new(responder))
    }

    fn launch(script: Vec<Scripted>, responder: Responder) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake LLM");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let queue = Arc::new(Mutex::new(VecDeque::from(script)));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (requests, queue, stop) = (requests.clone(), queue.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (requests, queue, responder) =
                        (requests.clone(), queue.clone(), responder.clone());
                    // One thread per connection so a delayed answer never holds up the next request.
                    thread::spawn(move || serve(stream, &requests, &queue, &*responder));
                }
            });
        }
        FakeLlm {
            addr,
            requests,
            queue,
            stop,
        }
    }

    /// Adds an answer after those already queued.
    pub fn enqueue(&self, answer: Scripted) {
        self.queue.lock().unwrap().push_back(answer);
    }

    /// `http://127.0.0.1:port`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The only request received; panics if there was not exactly one.
    pub fn single_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected one request, got {requests:?}");
        requests.into_iter().next().unwrap()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    stream: TcpStream,
    requests: &Mutex<Vec<Recorded>>,
    queue: &Mutex<VecDeque<Scripted>>,
    responder: &(dyn Fn(&Recorded) -> Scripted + Send + Sync),
) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let queued = queue.lock().unwrap().pop_front();
    let answer = queued.unwrap_or_else(|| responder(&request));
    requests.lock().unwrap().push(request);
    if let Some(delay) = answer.delay {
        thread::sleep(delay);
    }
    let mut out = format!("HTTP/1.1 {} Fake\r\n", answer.status);
    for (name, value) in &answer.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        answer.body.len(),
        answer.body
    ));
    let mut stream = stream;
    // The client may have timed out and gone; that is the point of some scripts.
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}

fn read_request(stream: &TcpStream) -> Option<Recorded> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
