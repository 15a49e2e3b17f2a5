//! What each git host sends with a signed delivery: which headers name the event, the delivery id
//! and the signature (or token), and how the signature is made. Tests that forge or drop a
//! signature on purpose use the header names from here too.
#![allow(dead_code)]

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A git host, as it signs its webhook deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
    Bitbucket,
}

impl Provider {
    /// The header that names the event (`push`, `Push Hook`, `repo:push`, ...).
    pub fn event_header(self) -> &'static str {
        match self {
            Provider::GitHub => "X-GitHub-Event",
            Provider::GitLab => "X-Gitlab-Event",
            Provider::Gitea => "X-Gitea-Event",
            Provider::Forgejo => "X-Forgejo-Event",
            Provider::Bitbucket => "X-Event-Key",
        }
    }

    /// The header that carries the delivery id, the same on a redelivery.
    pub fn delivery_header(self) -> &'static str {
        match self {
            Provider::GitHub => "X-GitHub-Delivery",
            Provider::GitLab => "X-Gitlab-Event-UUID",
            Provider::Gitea => "X-Gitea-Delivery",
            Provider::Forgejo => "X-Forgejo-Delivery",
            Provider::Bitbucket => "X-Request-UUID",
        }
    }

    /// The header that carries the signature; GitLab's holds the secret itself.
    pub fn signature_header(self) -> &'static str {
        match self {
            Provider::GitHub => "X-Hub-Signature-256",
            Provider::GitLab => "X-Gitlab-Token",
            Provider::Gitea => "X-Gitea-Signature",
            Provider::Forgejo => "X-Forgejo-Signature",
            Provider::Bitbucket => "X-Hub-Signature",
        }
    }

    /// The value of [`Provider::signature_header`] for `body` signed with `secret`.
    pub fn signature(self, secret: &str, body: &[u8]) -> String {
        match self {
            Provider::GitHub | Provider::Bitbucket => github_signature(secret, body),
            Provider::GitLab => secret.to_owned(),
            Provider::Gitea | Provider::Forgejo => hmac_hex(secret, body),
        }
    }
}

/// The headers `provider` sends with a delivery of `event` (`push` for GitHub, Gitea and Forgejo,
/// `Push Hook` for GitLab, `repo:push` for Bitbucket) signed with `secret`: the JSON content
/// type, the event, the delivery id and the signature.
pub fn signed_headers(
    provider: Provider,
    secret: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "application/json".into()),
        (provider.event_header().into(), event.into()),
        (provider.delivery_header().into(), delivery.into()),
        (
            provider.signature_header().into(),
            provider.signature(secret, body),
        ),
    ]
}

/// HMAC-SHA256 of `body` with `secret`, in lowercase hex: Gitea's and Forgejo's signature.
pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `sha256=` and [`hmac_hex`]: GitHub's and Bitbucket's signature.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(secret, body))
}
