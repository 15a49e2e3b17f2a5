//! Summarizers: turn a push and its commits into short `- ` bullets (builtin, Gemini, OpenAI-compatible).

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{NewCommit, NewPush, Push, RefKind};
use crate::secret::Secret;

mod builtin;
mod gemini;
mod http;
mod openai;
mod prompt;

pub use builtin::BuiltinSummarizer;
pub use gemini::{GeminiConfig, GeminiSummarizer};
pub use openai::{OpenAiConfig, OpenAiSummarizer};
pub use prompt::{DEFAULT_INPUT_BUDGET, Prompt, SYSTEM_INSTRUCTION, build_prompt, normalize_reply};

/// No summary, builtin or model-made, has more bullets than this.
pub const MAX_BULLETS: usize = 8;

/// The parts of a push a summarizer looks at, borrowed from a new or a stored push.
#[derive(Debug, Clone, Copy)]
pub struct SummaryInput<'a> {
    pub repository: &'a str,
    pub ref_kind: RefKind,
    pub ref_name: &'a str,
    pub pusher: &'a str,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
    /// The true commit count, which may exceed `commits.len()`.
    pub commit_count: u32,
    pub commits: &'a [NewCommit],
}

impl<'a> SummaryInput<'a> {
    pub fn from_new(push: &'a NewPush) -> Self {
        SummaryInput {
            repository: &push.repository,
            ref_kind: push.ref_kind,
            ref_name: &push.ref_name,
            pusher: &push.pusher,
            created: push.created,
            deleted: push.deleted,
            forced: push.forced,
            commit_count: push.commit_count,
            commits: &push.commits,
        }
    }

    pub fn from_stored(push: &'a Push, commits: &'a [NewCommit]) -> Self {
        SummaryInput {
            repository: &push.repository,
            ref_kind: push.ref_kind,
            ref_name: &push.ref_name,
            pusher: &push.pusher,
            created: push.created,
            deleted: push.deleted,
            forced: push.forced,
            commit_count: push.commit_count,
            commits,
        }
    }

    /// Deletions and pushes without listed commits get the builtin one-liner, never a model call.
    pub fn needs_model(&self) -> bool {
        !self.deleted && !self.commits.is_empty()
    }
}

/// A push of `commits` by ada to the main branch of acme/app, where the summarizers' tests
/// start.
#[cfg(test)]
pub(crate) fn test_input(commits: &[NewCommit]) -> SummaryInput<'_> {
    SummaryInput {
        repository: "acme/app",
        ref_kind: RefKind::Branch,
        ref_name: "main",
        pusher: "ada",
        created: false,
        deleted: false,
        forced: false,
        commit_count: commits.len() as u32,
        commits,
    }
}

/// Why a summarizer gave no summary this time, and what the worker should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummarizeError {
    /// Worth another attempt (429, 500, 503, 504, timeouts, blocked or empty answers, bad JSON).
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (bad key, forbidden, unknown model): fail the push now.
    #[error("{reason}")]
    Permanent { reason: String },
    /// A daily quota ran out: try again later without spending an attempt.
    #[error("{reason}")]
    Postpone {
        reason: String,
        retry_after: Duration,
    },
}

/// Turns a push into a summary. Implementations block (the worker runs on its own thread).
pub trait Summarizer: Send + Sync {
    /// What the API shows as `summarySource`: `builtin` or the model's name.
    fn source(&self) -> &str;

    /// True when summaries are made here, without a model: pushes are then summarized as they
    /// are stored, and never queued for the worker.
    fn is_offline(&self) -> bool {
        false
    }

    /// A summary of `- ` bullets, one per line.
    fn summarize(&self, input: &SummaryInput<'_>) -> Result<String, SummarizeError>;
}

/// The offline summary shown from the moment a push is stored.
pub fn builtin_summary(input: &SummaryInput<'_>) -> String {
    BuiltinSummarizer::summary(input)
}

/// Which summarizer the worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SummarizerKind {
    /// Gemini when a Gemini key is set, else an OpenAI-compatible server when its URL is set,
    /// else builtin.
    #[default]
    Auto,
    Gemini,
    #[value(name = "openai")]
    OpenAi,
    Builtin,
}

/// Everything needed to build a summarizer; `Debug` never shows a key.
#[derive(Debug, Clone)]
pub struct SummarizerSettings {
    pub kind: SummarizerKind,
    pub gemini_api_key: Option<Secret>,
    pub gemini_model: String,
    pub gemini_base_url: String,
    pub openai_base_url: Option<String>,
    pub openai_model: Option<String>,
    pub openai_api_key: Option<Secret>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Characters of push data sent to a model per request.
    pub input_budget: usize,
}

impl Default for SummarizerSettings {
    fn default() -> Self {
        SummarizerSettings {
            kind: SummarizerKind::Auto,
            gemini_api_key: None,
            gemini_model: GeminiConfig::DEFAULT_MODEL.to_owned(),
            gemini_base_url: GeminiConfig::DEFAULT_BASE_URL.to_owned(),
            openai_base_url: None,
            openai_model: None,
            openai_api_key: None,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            input_budget: DEFAULT_INPUT_BUDGET,
        }
    }
}

/// Why the configured summarizer cannot be built; each message says which setting to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummarizerConfigError {
    #[error(
        "the Gemini summarizer needs an API key: set GEMINI_API_KEY (or PUSH_TRACKER_GEMINI_API_KEY)"
    )]
    MissingGeminiKey,
    #[error(
        "the OpenAI-compatible summarizer needs a server URL: set PUSH_TRACKER_OPENAI_BASE_URL \
         (for example http://127.0.0.1:11434/v1 for Ollama)"
    )]
    MissingOpenAiBaseUrl,
    #[error(
        "the OpenAI-compatible summarizer needs a model name: set PUSH_TRACKER_OPENAI_MODEL \
         (for example llama3.2)"
    )]
    MissingOpenAiModel,
    #[error("invalid {setting} {value:?}: use an http:// or https:// URL")]
    InvalidBaseUrl {
        setting: &'static str,
        value: String,
    },
    #[error(
        "invalid Gemini model {0:?}: use a model name such as gemini-flash-latest \
         (set --gemini-model / PUSH_TRACKER_GEMINI_MODEL)"
    )]
    InvalidGeminiModel(String),
    #[error("the summarizer input budget must be at least 1000 characters, got {0}")]
    InputBudgetTooSmall(usize),
}

impl SummarizerSettings {
    /// The kind `auto` resolves to with these settings.
    pub fn resolved_kind(&self) -> SummarizerKind {
        match self.kind {
            SummarizerKind::Auto if self.gemini_api_key.is_some() => SummarizerKind::Gemini,
            SummarizerKind::Auto if self.openai_base_url.is_some() => SummarizerKind::OpenAi,
            SummarizerKind::Auto => SummarizerKind::Builtin,
            explicit => explicit,
        }
    }

    /// One line for the startup log, such as
    /// `gemini (model gemini-flash-latest at https://generativelanguage.googleapis.com)`; no secrets.
    pub fn describe(&self) -> String {
        match self.resolved_kind() {
            SummarizerKind::Gemini => format!(
                "gemini (model {} at {})",
                gemini::model_name(&self.gemini_model),
                http::display_url(&self.gemini_base_url)
            ),
            SummarizerKind::OpenAi => format!(
                "openai-compatible (model {} at {}{})",
                self.openai_model.as_deref().unwrap_or("<unset>"),
                self.openai_base_url
                    .as_deref()
                    .map_or_else(|| "<unset>".to_owned(), http::display_url),
                if self.openai_api_key.is_some() {
                    ", with API key"
                } else {
                    ""
                }
            ),
            SummarizerKind::Builtin | SummarizerKind::Auto => {
                "builtin (offline, from commit subjects)".to_owned()
            }
        }
    }
}

/// Builds the summarizer the settings ask for.
pub fn build(settings: &SummarizerSettings) -> Result<Arc<dyn Summarizer>, SummarizerConfigError> {
    if settings.input_budget < 1_000 {
        return Err(SummarizerConfigError::InputBudgetTooSmall(
            settings.input_budget,
        ));
    }
    match settings.resolved_kind() {
        SummarizerKind::Gemini => {
            let api_key = settings
                .gemini_api_key
                .clone()
                .filter(|k| !k.expose().trim().is_empty())
                .ok_or(SummarizerConfigError::MissingGeminiKey)?;
            check_url("Gemini base URL", &settings.gemini_base_url)?;
            let model = gemini::model_name(&settings.gemini_model);
            if model.is_empty()
                || !model
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            {
                return Err(SummarizerConfigError::InvalidGeminiModel(
                    settings.gemini_model.chars().take(80).collect(),
                ));
            }
            Ok(Arc::new(GeminiSummarizer::new(GeminiConfig {
                api_key,
                model: model.to_owned(),
                base_url: settings.gemini_base_url.clone(),
                timeout: settings.timeout,
                connect_timeout: settings.connect_timeout,
                input_budget: settings.input_budget,
                max_output_tokens: GeminiConfig::DEFAULT_MAX_OUTPUT_TOKENS,
            })))
        }
        SummarizerKind::OpenAi => {
            let base_url = settings
                .openai_base_url
                .clone()
                .filter(|u| !u.trim().is_empty())
                .ok_or(SummarizerConfigError::MissingOpenAiBaseUrl)?;
            check_url("PUSH_TRACKER_OPENAI_BASE_URL", &base_url)?;
            let model = settings
                .openai_model
                .clone()
                .filter(|m| !m.trim().is_empty())
                .ok_or(SummarizerConfigError::MissingOpenAiModel)?;
            Ok(Arc::new(OpenAiSummarizer::new(OpenAiConfig {
                base_url,
                model,
                api_key: settings
                    .openai_api_key
                    .clone()
                    .filter(|k| !k.expose().trim().is_empty()),
                timeout: settings.timeout,
                connect_timeout: settings.connect_timeout,
                input_budget: settings.input_budget,
                max_tokens: OpenAiConfig::DEFAULT_MAX_TOKENS,
            })))
        }
        SummarizerKind::Builtin | SummarizerKind::Auto => Ok(Arc::new(BuiltinSummarizer)),
    }
}

fn check_url(setting: &'static str, url: &str) -> Result<(), SummarizerConfigError> {
    if http::is_http_url(url) {
        Ok(())
    } else {
        Err(SummarizerConfigError::InvalidBaseUrl {
            setting,
            value: http::display_url(url).chars().take(120).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SummarizerSettings {
        SummarizerSettings::default()
    }

    #[test]
    fn auto_picks_gemini_then_openai_then_builtin() {
        let mut s = settings();
        assert_eq!(build(&s).unwrap().source(), "builtin");
        s.openai_base_url = Some("http://127.0.0.1:11434/v1".into());
        s.openai_model = Some("llama3.2".into());
        assert_eq!(build(&s).unwrap().source(), "llama3.2");
        s.gemini_api_key = Some(Secret::new("k"));
        assert_eq!(build(&s).unwrap().source(), "gemini-flash-latest");
    }

    #[test]
    fn explicit_gemini_without_a_key_names_the_variable() {
        let mut s = settings();
        s.kind = SummarizerKind::Gemini;
        let err = build(&s).err().unwrap();
        assert!(err.to_string().contains("GEMINI_API_KEY"), "{err}");
    }

    #[test]
    fn explicit_openai_without_url_or_model_names_the_variables() {
        let mut s = settings();
        s.kind = SummarizerKind::OpenAi;
        let err = build(&s).err().unwrap();
        assert!(
            err.to_string().contains("PUSH_TRACKER_OPENAI_BASE_URL"),
            "{err}"
        );
        s.openai_base_url = Some("http://localhost:8080/v1".into());
        let err = build(&s).err().unwrap();
        assert!(
            err.to_string().contains("PUSH_TRACKER_OPENAI_MODEL"),
            "{err}"
        );
    }

    #[test]
    fn a_model_name_that_would_break_the_url_is_refused() {
        let mut s = settings();
        s.gemini_api_key = Some(Secret::new("k"));
        s.gemini_model = "gemini/../x?y".into();
        assert!(matches!(
            build(&s),
            Err(SummarizerConfigError::InvalidGeminiModel(_))
        ));
        s.gemini_model = "models/gemini-2.5-flash".into();
        assert_eq!(build(&s).unwrap().source(), "gemini-2.5-flash");
    }

    #[test]
    fn describe_and_debug_never_show_keys() {
        let mut s = settings();
        s.gemini_api_key = Some(Secret::new("gemini-secret-value"));
        s.openai_api_key = Some(Secret::new("openai-secret-value"));
        s.openai_base_url = Some("https://user:pw@llm.example.com/v1?token=abc".into());
        assert_eq!(
            s.describe(),
            "gemini (model gemini-flash-latest at https://generativelanguage.googleapis.com)"
        );
        s.kind = SummarizerKind::OpenAi;
        s.openai_model = Some("gpt-4o-mini".into());
        let line = s.describe();
        assert_eq!(
            line,
            "openai-compatible (model gpt-4o-mini at https://llm.example.com/v1, with API key)"
        );
        let debug = format!("{s:?}");
        assert!(!debug.contains("secret-value"), "{debug}");
    }

    #[test]
    fn kinds_parse_from_the_command_line_names() {
        use clap::ValueEnum;
        for (name, kind) in [
            ("auto", SummarizerKind::Auto),
            ("gemini", SummarizerKind::Gemini),
            ("openai", SummarizerKind::OpenAi),
            ("builtin", SummarizerKind::Builtin),
        ] {
            assert_eq!(SummarizerKind::from_str(name, false).unwrap(), kind);
        }
    }

    #[test]
    fn builtin_summary_delegates_to_the_builtin_summarizer() {
        let input = SummaryInput {
            repository: "acme/app",
            ref_kind: RefKind::Tag,
            ref_name: "v1",
            pusher: "ada",
            created: true,
            deleted: false,
            forced: false,
            commit_count: 0,
            commits: &[],
        };
        assert_eq!(builtin_summary(&input), "- Created tag v1");
        assert_eq!(
            BuiltinSummarizer.summarize(&input).unwrap(),
            "- Created tag v1"
        );
    }
}
