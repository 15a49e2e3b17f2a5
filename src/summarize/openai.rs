//! The OpenAI-compatible summarizer (OpenAI, Ollama, llama.cpp, vLLM, Gemini's compat endpoint): one chat completion per push.

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use super::http::{self, ChatBackend, Endpoint, ModelClient, RawResponse, permanent, transient};
use super::{SummarizeError, SummaryInput, build_prompt, normalize_reply};
use crate::secret::Secret;

/// How to reach an OpenAI-compatible server; `Debug` shows no key.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The API root, usually ending in `/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    /// Local servers usually need none; when set it goes out as `Authorization: Bearer`.
    pub api_key: Option<Secret>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Characters of push data per request.
    pub input_budget: usize,
    pub max_tokens: u32,
}

impl OpenAiConfig {
    pub const DEFAULT_MAX_TOKENS: u32 = 1024;

    /// Defaults for everything but the server and the model.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            input_budget: super::DEFAULT_INPUT_BUDGET,
            max_tokens: Self::DEFAULT_MAX_TOKENS,
        }
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &http::display_url(&self.base_url))
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("input_budget", &self.input_budget)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

/// Summarizes through `POST {base_url}/chat/completions`.
pub type OpenAiSummarizer = ModelClient<OpenAiApi>;

/// The OpenAI chat completion request, answer and error shapes, as the compatible servers vary them.
pub struct OpenAiApi {
    config: OpenAiConfig,
    /// `{base_url}/chat/completions` as logs may show it.
    endpoint: String,
    authorization: Option<Secret>,
}

impl OpenAiSummarizer {
    pub fn new(config: OpenAiConfig) -> Self {
        let url = format!(
            "{}/chat/completions",
            config.base_url.trim().trim_end_matches('/')
        );
        let authorization = config
            .api_key
            .as_ref()
            .map(|k| Secret::new(format!("Bearer {}", k.expose())));
        let endpoint = http::display_url(&url);
        let reached = Endpoint {
            model: config.model.clone(),
            url,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            secret: config.api_key.clone(),
        };
        ModelClient::with_backend(
            reached,
            OpenAiApi {
                config,
                endpoint,
                authorization,
            },
        )
    }
}

impl OpenAiApi {
    fn scrub(&self, message: &str) -> String {
        http::scrub(message, self.config.api_key.as_ref())
    }
}

impl ChatBackend for OpenAiApi {
    const NAME: &'static str = "OpenAI-compatible server";
    type Config = OpenAiConfig;

    fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    fn headers(&self) -> Vec<(&'static str, &str)> {
        self.authorization
            .iter()
            .map(|auth| ("authorization", auth.expose()))
            .collect()
    }

    fn body(&self, input: &SummaryInput<'_>) -> Value {
        let prompt = build_prompt(input, self.config.input_budget);
        json!({
            "model": self.config.model,
            "messages": [
                { "role": "system", "content": prompt.system },
                { "role": "user", "content": prompt.user }
            ],
            "max_tokens": self.config.max_tokens,
            "temperature": 0.2
        })
    }

    fn read_answer(&self, body: &str) -> Result<String, SummarizeError> {
        let value: Value = serde_json::from_str(body).map_err(|e| {
            transient(format!(
                "malformed response from {}: {}",
                self.endpoint,
                self.scrub(&e.to_string())
            ))
        })?;
        let Some(choice) = value
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Err(transient(format!("{} returned no choices", self.endpoint)));
        };
        let content = choice.pointer("/message/content");
        // Some servers send content as a list of typed parts instead of one string.
        let text: String = match content {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
            _ => String::new(),
        };
        if let Some(summary) = normalize_reply(&text) {
            return Ok(summary);
        }
        let finish = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .unwrap_or("stop");
        Err(transient(if finish == "length" {
            "the model's answer was cut off before any text (finish_reason length)".to_owned()
        } else {
            format!("{} returned an empty answer", self.endpoint)
        }))
    }

    fn classify_error(&self, response: &RawResponse) -> SummarizeError {
        let parsed: Option<Value> = serde_json::from_str(&response.body).ok();
        // OpenAI sends {"error":{...}}, Ollama {"error":"..."}, Gemini's compat endpoint [{"error":{...}}].
        let error = parsed.as_ref().and_then(|v| match v {
            Value::Array(items) => items.first().and_then(|i| i.get("error")),
            other => other.get("error"),
        });
        let raw_message = match error {
            Some(Value::String(s)) => s.clone(),
            Some(e) => e
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string()),
            None => response.body.trim().to_owned(),
        };
        let error_code = error
            .and_then(|e| e.get("code").or_else(|| e.get("type")))
            .and_then(Value::as_str)
            .unwrap_or("");
        let message = self.scrub(&raw_message);
        let code = response.status;
        let model = &self.config.model;
        let endpoint = &self.endpoint;

        match code {
            429 if error_code == "insufficient_quota" => SummarizeError::Postpone {
                reason: format!("{endpoint} says the quota is used up (429): {message}"),
                retry_after: response.retry_after.unwrap_or(Duration::from_secs(3600)),
            },
            429 => SummarizeError::Transient {
                reason: format!("{endpoint} rate limit (429): {message}"),
                retry_after: response.retry_after,
            },
            408 | 500..=599 => SummarizeError::Transient {
                reason: format!("{endpoint} is unavailable ({code}): {message}"),
                retry_after: response.retry_after,
            },
            401 => permanent(format!(
                "{endpoint} rejected the API key (401): {message}; check OPENAI_API_KEY \
                 (or PUSH_TRACKER_OPENAI_API_KEY)"
            )),
            403 => permanent(format!(
                "{endpoint} denied access (403): {message}; check that OPENAI_API_KEY may use model `{model}`"
            )),
            404 => permanent(format!(
                "model `{model}` or the endpoint was not found at {endpoint} (404): {message}; \
                 check PUSH_TRACKER_OPENAI_MODEL and PUSH_TRACKER_OPENAI_BASE_URL (it usually ends in /v1)"
            )),
            400 => permanent(format!(
                "{endpoint} rejected the request (400): {message}; check PUSH_TRACKER_OPENAI_MODEL \
                 and the server's context limit"
            )),
            _ => permanent(format!(
                "{endpoint} refused the request ({code}): {message}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_appends_chat_completions_to_the_base() {
        let s = OpenAiSummarizer::new(OpenAiConfig::new("http://localhost:11434/v1/", "llama3.2"));
        assert_eq!(s.url(), "http://localhost:11434/v1/chat/completions");
    }

    #[test]
    fn content_given_as_parts_is_joined() {
        let s = OpenAiSummarizer::new(OpenAiConfig::new("http://x/v1", "m"));
        let body = r#"{"choices":[{"message":{"content":[{"type":"text","text":"- One\n"},{"type":"text","text":"- Two"}]}}]}"#;
        assert_eq!(s.backend().read_answer(body).unwrap(), "- One\n- Two");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let mut c = OpenAiConfig::new("http://x/v1", "m");
        c.api_key = Some(Secret::new("sk-very-secret"));
        let s = OpenAiSummarizer::new(c);
        assert!(!format!("{s:?}").contains("very-secret"));
    }
}
