//! The Gemini summarizer: one `generateContent` call per push, with Gemini's errors sorted into retry, postpone or fail.

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use super::http::{self, ChatBackend, Endpoint, ModelClient, RawResponse, permanent, transient};
use super::{SummarizeError, SummaryInput, build_prompt, normalize_reply};
use crate::secret::Secret;

/// How to reach Gemini; `Debug` shows no key.
#[derive(Clone)]
pub struct GeminiConfig {
    pub api_key: Secret,
    pub model: String,
    pub base_url: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Characters of push data per request.
    pub input_budget: usize,
    pub max_output_tokens: u32,
}

impl GeminiConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://generativelanguage.googleapis.com";
    pub const DEFAULT_MODEL: &'static str = "gemini-flash-latest";
    pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 1024;

    /// Defaults for everything but the key and the model.
    pub fn new(api_key: Secret, model: impl Into<String>) -> Self {
        GeminiConfig {
            api_key,
            model: model.into(),
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            input_budget: super::DEFAULT_INPUT_BUDGET,
            max_output_tokens: Self::DEFAULT_MAX_OUTPUT_TOKENS,
        }
    }
}

impl fmt::Debug for GeminiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiConfig")
            .field("api_key", &self.api_key)
            .field("model", &self.model)
            .field("base_url", &http::display_url(&self.base_url))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("input_budget", &self.input_budget)
            .field("max_output_tokens", &self.max_output_tokens)
            .finish()
    }
}

/// Summarizes through Gemini's `generateContent`.
pub type GeminiSummarizer = ModelClient<GeminiApi>;

/// Gemini's request, answer and error shapes.
pub struct GeminiApi {
    config: GeminiConfig,
}

/// `models/gemini-x` and `gemini-x` name the same model.
pub(crate) fn model_name(model: &str) -> &str {
    let model = model.trim();
    model.strip_prefix("models/").unwrap_or(model)
}

impl GeminiSummarizer {
    pub fn new(mut config: GeminiConfig) -> Self {
        config.model = model_name(&config.model).to_owned();
        let url = format!(
            "{}/v1beta/models/{}:generateContent",
            config.base_url.trim_end_matches('/'),
            config.model
        );
        let endpoint = Endpoint {
            model: config.model.clone(),
            url,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            secret: Some(config.api_key.clone()),
        };
        ModelClient::with_backend(endpoint, GeminiApi { config })
    }
}

impl GeminiApi {
    fn scrub(&self, message: &str) -> String {
        http::scrub(message, Some(&self.config.api_key))
    }
}

impl ChatBackend for GeminiApi {
    const NAME: &'static str = "Gemini";
    type Config = GeminiConfig;

    fn config(&self) -> &GeminiConfig {
        &self.config
    }

    fn headers(&self) -> Vec<(&'static str, &str)> {
        vec![("x-goog-api-key", self.config.api_key.expose())]
    }

    fn body(&self, input: &SummaryInput<'_>) -> Value {
        let prompt = build_prompt(input, self.config.input_budget);
        json!({
            "systemInstruction": { "parts": [{ "text": prompt.system }] },
            "contents": [{ "role": "user", "parts": [{ "text": prompt.user }] }],
            "generationConfig": {
                "maxOutputTokens": self.config.max_output_tokens,
                "temperature": 0.2,
                // Thinking tokens count against maxOutputTokens; with thinking on, a short budget
                // can be spent entirely on thoughts and leave no summary at all.
                "thinkingConfig": { "thinkingBudget": 0 }
            }
        })
    }

    fn read_answer(&self, body: &str) -> Result<String, SummarizeError> {
        let value: Value = serde_json::from_str(body).map_err(|e| {
            transient(format!(
                "malformed response from Gemini: {}",
                self.scrub(&e.to_string())
            ))
        })?;
        let candidate = value
            .get("candidates")
            .and_then(Value::as_array)
            .and_then(|c| c.first());
        let Some(candidate) = candidate else {
            if let Some(reason) = value
                .pointer("/promptFeedback/blockReason")
                .and_then(Value::as_str)
            {
                return Err(transient(format!(
                    "Gemini blocked the prompt ({})",
                    self.scrub(reason)
                )));
            }
            return Err(transient("Gemini returned an empty answer (no candidates)"));
        };
        let text: String = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            // Thought summaries are the model's scratch work, not the answer.
            .filter(|p| !p.get("thought").and_then(Value::as_bool).unwrap_or(false))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        // A finish reason other than STOP with usable text is still a usable summary.
        if let Some(summary) = normalize_reply(&text) {
            return Ok(summary);
        }
        let finish = candidate
            .get("finishReason")
            .and_then(Value::as_str)
            .unwrap_or("STOP");
        Err(transient(match finish {
            "MAX_TOKENS" => "Gemini's answer was cut off before any text (MAX_TOKENS)".to_owned(),
            "STOP" => "Gemini returned an empty answer".to_owned(),
            other => format!(
                "Gemini returned an empty answer (finish reason {})",
                self.scrub(other)
            ),
        }))
    }

    fn classify_error(&self, response: &RawResponse) -> SummarizeError {
        let parsed: Option<Value> = serde_json::from_str(&response.body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let status_name = error
            .and_then(|e| e.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let raw_message = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| response.body.trim().to_owned());
        let message = self.scrub(&raw_message);
        let details: &[Value] = error
            .and_then(|e| e.get("details"))
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let code = response.status;
        let label = if status_name.is_empty() {
            code.to_string()
        } else {
            format!("{code} {}", self.scrub(status_name))
        };

        match code {
            429 => {
                let retry_after = retry_delay(details).or(response.retry_after);
                if is_daily_quota(details, &raw_message) {
                    SummarizeError::Postpone {
                        reason: format!("Gemini daily quota exhausted ({label}): {message}"),
                        retry_after: retry_after.unwrap_or(Duration::from_secs(3600)),
                    }
                } else {
                    SummarizeError::Transient {
                        reason: format!("Gemini rate limit ({label}): {message}"),
                        retry_after,
                    }
                }
            }
            408 | 500..=599 => SummarizeError::Transient {
                reason: format!("Gemini is unavailable ({label}): {message}"),
                retry_after: response.retry_after,
            },
            400 | 401 => permanent(format!(
                "Gemini rejected the API key or request ({label}): {message}; check GEMINI_API_KEY"
            )),
            403 => permanent(format!(
                "Gemini permission denied ({label}): {message}; check the key's access to the Generative Language API"
            )),
            404 => permanent(format!(
                "Gemini model `{}` not found (it may have been retired) ({label}): {message}; \
                 set --gemini-model / PUSH_TRACKER_GEMINI_MODEL, e.g. gemini-flash-latest",
                self.config.model
            )),
            _ => permanent(format!("Gemini refused the request ({label}): {message}")),
        }
    }
}

fn type_is(detail: &Value, suffix: &str) -> bool {
    detail
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with(suffix))
}

fn retry_delay(details: &[Value]) -> Option<Duration> {
    details
        .iter()
        .filter(|d| type_is(d, "google.rpc.RetryInfo"))
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(http::parse_delay)
}

fn is_daily_quota(details: &[Value], message: &str) -> bool {
    let in_details = details
        .iter()
        .filter(|d| type_is(d, "google.rpc.QuotaFailure"))
        .filter_map(|d| d.get("violations").and_then(Value::as_array))
        .flatten()
        .filter_map(|v| v.get("quotaId").and_then(Value::as_str))
        .any(|id| id.contains("PerDay"));
    let lower = message.to_lowercase();
    in_details || lower.contains("per day") || lower.contains("perday")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summarizer() -> GeminiSummarizer {
        GeminiSummarizer::new(GeminiConfig::new(
            Secret::new("AIzaSECRETKEY123456"),
            "models/gemini-x",
        ))
    }

    #[test]
    fn the_url_names_the_model_and_never_the_key() {
        let s = summarizer();
        assert_eq!(
            s.url(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-x:generateContent"
        );
        assert!(!format!("{s:?}").contains("SECRETKEY"));
    }

    #[test]
    fn thought_parts_are_skipped() {
        let body = r#"{"candidates":[{"content":{"parts":[{"text":"planning","thought":true},{"text":"- Added login"}]},"finishReason":"STOP"}]}"#;
        assert_eq!(
            summarizer().backend().read_answer(body).unwrap(),
            "- Added login"
        );
    }

    #[test]
    fn text_with_an_odd_finish_reason_is_accepted() {
        let body = r#"{"candidates":[{"content":{"parts":[{"text":"- Added"}]},"finishReason":"MAX_TOKENS"}]}"#;
        assert_eq!(summarizer().backend().read_answer(body).unwrap(), "- Added");
    }
}
