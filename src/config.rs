//! Validation of settings that come from flags and the environment.

use std::net::SocketAddr;

/// A setting that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--public-url {0:?} must start with http:// or https:// and have no query or fragment (for example https://push.example.com)"
    )]
    PublicUrl(String),
}

/// The base URL webhook URLs and docs show: the given one without a trailing slash, or one
/// derived from the listen address.
pub fn public_url(given: Option<&str>, listen: SocketAddr) -> Result<String, ConfigError> {
    let Some(raw) = given.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(format!("http://{listen}"));
    };
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !raw.contains(['?', '#', ' ']) => {
            Ok(raw.trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError::PublicUrl(raw.chars().take(200).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_defaults_to_the_listen_address_and_drops_trailing_slashes() {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(public_url(None, listen).unwrap(), "http://127.0.0.1:8080");
        assert_eq!(
            public_url(Some("https://push.example.com/tracker/"), listen).unwrap(),
            "https://push.example.com/tracker"
        );
        assert!(public_url(Some("push.example.com"), listen).is_err());
        assert!(public_url(Some("https://x?y=1"), listen).is_err());
    }
}
