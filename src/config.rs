//! Validation of settings that come from flags and the environment: the public URL (read by
//! `cli` and `app`, shown by the admin API and used for its same-origin check).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use url::Url;

/// A setting that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--public-url {0:?} must start with http:// or https:// and have no query or fragment (for example https://push.example.com)"
    )]
    PublicUrl(String),
    #[error(
        "PUSH_TRACKER_ADMIN_TOKEN is {0} characters long; it must have at least {MIN_ADMIN_TOKEN_CHARS}, because anyone who can reach the server may guess it (generate one with `openssl rand -hex 24`, or unset it to have one generated)"
    )]
    AdminTokenTooShort(usize),
}

/// The shortest admin token `serve` accepts from PUSH_TRACKER_ADMIN_TOKEN. Generated tokens are
/// far longer; this keeps a hand-picked one out of reach of guessing at the login limit.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The admin token configured in the environment: None when unset or blank, refused when
/// shorter than [`MIN_ADMIN_TOKEN_CHARS`].
pub fn admin_token(raw: Option<String>) -> Result<Option<crate::secret::Secret>, ConfigError> {
    let Some(token) = raw.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let chars = token.chars().count();
    if chars < MIN_ADMIN_TOKEN_CHARS {
        return Err(ConfigError::AdminTokenTooShort(chars));
    }
    Ok(Some(crate::secret::Secret::new(token)))
}

/// The base URL webhook URLs and docs show, parsed once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(Url);

impl PublicUrl {
    /// The given URL, or one derived from the listen address when none is given.
    pub fn resolve(given: Option<&str>, listen: SocketAddr) -> Result<PublicUrl, ConfigError> {
        match given.map(str::trim).filter(|s| !s.is_empty()) {
            Some(raw) => raw.parse(),
            None => Ok(PublicUrl::of_listener(listen)),
        }
    }

    /// `http://{listen}`, the default when no public URL is given.
    pub fn of_listener(listen: SocketAddr) -> PublicUrl {
        // A socket address always makes a valid authority.
        PublicUrl(Url::parse(&format!("http://{listen}")).expect("an http URL of a socket address"))
    }

    /// The URL without its trailing slash, ready for `{base}/webhooks/...`.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// The host name (an IPv6 address in brackets), for the `Host` check.
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }
}

impl FromStr for PublicUrl {
    type Err = ConfigError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        let invalid = || ConfigError::PublicUrl(raw.chars().take(200).collect());
        // The URL parser would quietly drop tabs and newlines and escape spaces; a value with
        // any of them is a typo, not an address.
        if raw.contains(char::is_whitespace) {
            return Err(invalid());
        }
        let url = Url::parse(raw).map_err(|_| invalid())?;
        let usable = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some_and(|h| !h.is_empty())
            && url.query().is_none()
            && url.fragment().is_none();
        if usable {
            Ok(PublicUrl(url))
        } else {
            Err(invalid())
        }
    }
}

/// For the places that keep the base as text (the manager's webhook URLs, the admin API).
impl From<PublicUrl> for String {
    fn from(url: PublicUrl) -> String {
        url.as_str().to_owned()
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(given: Option<&str>) -> Result<String, ConfigError> {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        PublicUrl::resolve(given, listen).map(|u| u.to_string())
    }

    #[test]
    fn public_url_defaults_to_the_listen_address_and_drops_trailing_slashes() {
        assert_eq!(resolve(None).unwrap(), "http://127.0.0.1:8080");
        assert_eq!(
            resolve(Some("https://push.example.com/tracker/")).unwrap(),
            "https://push.example.com/tracker"
        );
        assert_eq!(
            resolve(Some("https://push.example.com")).unwrap(),
            "https://push.example.com"
        );
    }

    #[test]
    fn a_public_url_without_an_http_scheme_or_with_a_query_is_refused() {
        for bad in [
            "push.example.com",
            "ftp://push.example.com",
            "https://",
            "https://x?y=1",
            "https://x/#top",
            "https://push example.com",
        ] {
            let err = resolve(Some(bad)).unwrap_err().to_string();
            assert!(err.starts_with("--public-url"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_non_ascii_host_is_refused_and_its_punycode_form_accepted() {
        // Cargo.toml pins url's IDNA back end to the stub without Unicode tables.
        assert!(resolve(Some("https://bücher.example")).is_err());
        assert_eq!(
            resolve(Some("https://xn--bcher-kva.example")).unwrap(),
            "https://xn--bcher-kva.example"
        );
    }

    #[test]
    fn the_origin_of_a_public_url_drops_its_path() {
        let origin = |s: &str| s.parse::<PublicUrl>().unwrap().origin();
        assert_eq!(
            origin("https://push.example.com/base"),
            "https://push.example.com"
        );
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn an_admin_token_shorter_than_32_characters_is_refused_and_a_blank_one_is_unset() {
        assert!(admin_token(None).unwrap().is_none());
        assert!(admin_token(Some("  ".into())).unwrap().is_none());
        let short = admin_token(Some("a".repeat(31))).unwrap_err();
        assert!(short.to_string().contains("31 characters long"), "{short}");
        assert!(admin_token(Some("a".repeat(32))).unwrap().is_some());
    }
}
