//! Signature checks for every provider, always over the raw body and always in constant time.
//!
//! Each project has a secret, so an unsigned delivery is refused rather than accepted on trust.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use poem::http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::WebhookError;
use crate::domain::Provider;

type HmacSha256 = Hmac<Sha256>;

/// Checks the delivery's signature with the rules of `provider`.
pub(super) fn signature(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    match provider {
        Provider::GitHub => prefixed_hex(headers, "X-Hub-Signature-256", body, secret),
        Provider::Bitbucket => prefixed_hex(headers, "X-Hub-Signature", body, secret),
        Provider::GitLab => gitlab(headers, body, secret, now),
        Provider::Gitea => gitea(headers, body, secret, "X-Gitea-Signature"),
        Provider::Forgejo => gitea(headers, body, secret, "X-Forgejo-Signature"),
    }
}

/// A signature header's raw value, trimmed; an empty header counts as absent because Gitea sends
/// one when the webhook has no secret.
fn signature_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get(name)
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|v| !v.is_empty())
}

/// `sha256=<hex>` over the body, as GitHub and Bitbucket send it.
fn prefixed_hex(
    headers: &HeaderMap,
    name: &'static str,
    body: &[u8],
    secret: &str,
) -> Result<(), WebhookError> {
    let value = signature_header(headers, name).ok_or(WebhookError::MissingSignature(name))?;
    if hex_matches(strip_sha256_prefix(value), body, secret) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// Returns the hex part of `sha256=<hex>`, or an empty slice (which never matches) otherwise.
fn strip_sha256_prefix(value: &[u8]) -> &[u8] {
    const PREFIX: &[u8] = b"sha256=";
    match value.get(..PREFIX.len()) {
        Some(p) if p.eq_ignore_ascii_case(PREFIX) => &value[PREFIX.len()..],
        _ => &[],
    }
}

/// Gitea and Forgejo sign with bare hex in their own header; newer versions also send GitHub's
/// `X-Hub-Signature-256`. Any valid one passes.
fn gitea(
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    own_header: &'static str,
) -> Result<(), WebhookError> {
    // Forgejo still sends Gitea's header as well; either spelling is accepted for both.
    let bare = ["X-Forgejo-Signature", "X-Gitea-Signature"]
        .into_iter()
        .filter_map(|name| signature_header(headers, name));
    let github_style = signature_header(headers, "X-Hub-Signature-256").map(strip_sha256_prefix);
    let mut present = false;
    for hex_sig in bare.chain(github_style) {
        present = true;
        if hex_matches(hex_sig, body, secret) {
            return Ok(());
        }
    }
    if present {
        Err(WebhookError::BadSignature)
    } else {
        Err(WebhookError::MissingSignature(own_header))
    }
}

/// GitLab sends either its secret token verbatim (`X-Gitlab-Token`) or, since GitLab 19, a
/// Standard Webhooks signature. Either one valid passes; a present but wrong one refuses.
fn gitlab(
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let token = signature_header(headers, "X-Gitlab-Token");
    let signed = signature_header(headers, "webhook-signature");
    if token.is_none() && signed.is_none() {
        return Err(WebhookError::MissingSignature("X-Gitlab-Token"));
    }
    let token_ok =
        token.is_some_and(|t| !secret.is_empty() && bool::from(t.ct_eq(secret.as_bytes())));
    if token_ok {
        return Ok(());
    }
    match signed {
        Some(signatures) => standard_webhooks(headers, signatures, body, secret, now),
        None => Err(WebhookError::BadSignature),
    }
}

/// How far a Standard Webhooks timestamp may be from now, either way: the spec's reference
/// libraries allow five minutes, enough for clock skew and retries in flight, while a captured
/// delivery stops working soon after it was sent.
const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// Standard Webhooks: `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>`, possibly several
/// space-separated entries while a key is being rotated, and a `webhook-timestamp` (Unix
/// seconds) within [`TIMESTAMP_TOLERANCE_SECS`] of `now`.
///
/// The timestamp is checked first, as the reference libraries do: a stale delivery costs no
/// HMAC and is told apart from a forged one, so a real sender with a wrong clock learns why.
fn standard_webhooks(
    headers: &HeaderMap,
    signatures: &[u8],
    body: &[u8],
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let (Some(id), Some(timestamp)) = (
        signature_header(headers, "webhook-id"),
        signature_header(headers, "webhook-timestamp"),
    ) else {
        return Err(WebhookError::BadSignature);
    };
    let seconds: i64 = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(WebhookError::BadSignature)?;
    if now.timestamp().abs_diff(seconds) > TIMESTAMP_TOLERANCE_SECS.unsigned_abs() {
        return Err(WebhookError::StaleTimestamp);
    }
    if standard_webhooks_matches(id, timestamp, signatures, body, secret) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

fn standard_webhooks_matches(
    id: &[u8],
    timestamp: &[u8],
    signatures: &[u8],
    body: &[u8],
    secret: &str,
) -> bool {
    let key = standard_webhooks_key(secret);
    signatures
        .split(|b| *b == b' ')
        .filter_map(|entry| entry.strip_prefix(b"v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .any(|sig| {
            let Some(mut mac) = new_mac(&key) else {
                return false;
            };
            for part in [id, b".", timestamp, b".", body] {
                mac.update(part);
            }
            mac.verify_slice(&sig).is_ok()
        })
}

/// Standard Webhooks secrets look like `whsec_<base64 key>`; anything else is used as raw bytes.
/// An undecodable `whsec_` secret also falls back to raw bytes: it can then only match a sender
/// configured with that same string, which is what its owner would expect.
fn standard_webhooks_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| BASE64.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn hex_matches(hex_sig: &[u8], body: &[u8], secret: &str) -> bool {
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Some(mut mac) = new_mac(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// An HMAC keyed with `key`; `None` for an empty key, because a project without a secret must
/// never accept a signature anyone could compute.
fn new_mac(key: &[u8]) -> Option<HmacSha256> {
    if key.is_empty() {
        return None;
    }
    HmacSha256::new_from_slice(key).ok()
}

#[cfg(test)]
mod tests {
    use super::WebhookError::{BadSignature, MissingSignature, StaleTimestamp};
    use super::*;
    // Standard Webhooks timestamps in these tests are near the shared fixed "now".
    use crate::webhook::tests::{fixture, header_map, now};

    /// Reads a `Name: value` per line sidecar as the source stated it.
    fn headers_file(path: &str) -> HeaderMap {
        let text = String::from_utf8(fixture(path)).expect("utf-8 headers file");
        let pairs: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim(), v.trim()))
            .collect();
        header_map(&pairs)
    }

    /// The signature check of a delivery received at the shared fixed "now".
    fn verify(
        provider: Provider,
        h: &HeaderMap,
        body: &[u8],
        secret: &str,
    ) -> Result<(), WebhookError> {
        signature(provider, h, body, secret, now())
    }

    /// go-scm's signed GitHub push with the headers it was recorded with (secret `topsecret`).
    fn go_scm_push() -> (Vec<u8>, HeaderMap) {
        (
            fixture("github/push.go-scm-push.json"),
            headers_file("github/push.go-scm-push.headers.txt"),
        )
    }

    fn sign_hex(secret: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn github_docs_test_vector_verifies() {
        #[derive(serde::Deserialize)]
        struct Vector {
            secret: String,
            payload: String,
            #[serde(rename = "X-Hub-Signature-256")]
            header: String,
        }
        let v: Vector =
            serde_json::from_slice(&fixture("github/signature-test-vector.json")).expect("vector");
        let h = header_map(&[("X-Hub-Signature-256", &v.header)]);
        assert_eq!(
            verify(Provider::GitHub, &h, v.payload.as_bytes(), &v.secret),
            Ok(())
        );
    }

    #[test]
    fn go_scm_signed_push_verifies_with_its_recorded_headers() {
        let (body, h) = go_scm_push();
        assert_eq!(verify(Provider::GitHub, &h, &body, "topsecret"), Ok(()));
    }

    #[test]
    fn a_wrong_secret_is_a_bad_signature() {
        let (body, h) = go_scm_push();
        assert_eq!(
            verify(Provider::GitHub, &h, &body, "not-the-secret"),
            Err(BadSignature)
        );
    }

    #[test]
    fn a_tampered_body_is_a_bad_signature() {
        let (mut body, h) = go_scm_push();
        body.push(b' ');
        assert_eq!(
            verify(Provider::GitHub, &h, &body, "topsecret"),
            Err(BadSignature)
        );
    }

    #[test]
    fn a_missing_github_signature_is_reported_by_header_name() {
        assert_eq!(
            verify(
                Provider::GitHub,
                &header_map(&[("X-GitHub-Event", "push")]),
                b"{}",
                "s"
            ),
            Err(MissingSignature("X-Hub-Signature-256"))
        );
    }

    #[test]
    fn undecodable_or_unprefixed_signatures_are_bad_not_missing() {
        let sig = sign_hex("s", b"{}");
        for value in ["sha256=zz", "sha1=abcd", sig.as_str(), "sha256="] {
            let h = header_map(&[("X-Hub-Signature-256", value)]);
            assert_eq!(
                verify(Provider::GitHub, &h, b"{}", "s"),
                Err(BadSignature),
                "{value}"
            );
        }
    }

    #[test]
    fn an_empty_secret_never_verifies() {
        let sig = format!("sha256={}", sign_hex("x", b"{}"));
        let h = header_map(&[("X-Hub-Signature-256", &sig)]);
        assert_eq!(verify(Provider::GitHub, &h, b"{}", ""), Err(BadSignature));
        let h = header_map(&[("X-Gitlab-Token", "")]);
        assert_eq!(
            verify(Provider::GitLab, &h, b"{}", ""),
            Err(MissingSignature("X-Gitlab-Token"))
        );
    }

    #[test]
    fn an_empty_gitea_signature_header_counts_as_unsigned() {
        let h = header_map(&[("X-Gitea-Signature", ""), ("X-Hub-Signature-256", "")]);
        assert_eq!(
            verify(Provider::Gitea, &h, b"{}", "s"),
            Err(MissingSignature("X-Gitea-Signature"))
        );
        assert_eq!(
            verify(Provider::Forgejo, &header_map(&[]), b"{}", "s"),
            Err(MissingSignature("X-Forgejo-Signature"))
        );
    }

    #[test]
    fn gitea_accepts_bare_hex_or_the_github_style_header() {
        let body = fixture("gitea/push.gitea-docs.json");
        let sig = sign_hex("s3cret", &body);
        for h in [
            header_map(&[("X-Gitea-Signature", &sig)]),
            header_map(&[("X-Forgejo-Signature", &sig)]),
            header_map(&[
                ("X-Gitea-Signature", ""),
                ("X-Hub-Signature-256", &format!("sha256={sig}")),
            ]),
        ] {
            let provider = if h.contains_key("X-Forgejo-Signature") {
                Provider::Forgejo
            } else {
                Provider::Gitea
            };
            assert_eq!(verify(provider, &h, &body, "s3cret"), Ok(()));
        }
        let h = header_map(&[("X-Gitea-Signature", &sig)]);
        assert_eq!(
            verify(Provider::Gitea, &h, &body, "other"),
            Err(BadSignature)
        );
    }

    #[test]
    fn gitlab_token_is_compared_with_the_secret() {
        let body = fixture("gitlab/push.go-scm-branch_delete.json");
        let h = headers_file("gitlab/push.go-scm-branch_delete.headers.txt");
        assert_eq!(verify(Provider::GitLab, &h, &body, "topsecret"), Ok(()));
        assert_eq!(
            verify(Provider::GitLab, &h, &body, "topsecret2"),
            Err(BadSignature)
        );
        assert_eq!(
            verify(Provider::GitLab, &header_map(&[]), &body, "topsecret"),
            Err(MissingSignature("X-Gitlab-Token"))
        );
    }

    fn standard_webhooks_signature(key: &[u8], id: &str, ts: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(key).expect("key");
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn gitlab_standard_webhooks_signature_verifies_with_a_whsec_key() {
        let body = fixture("gitlab/push.gitlab-docs.json");
        let key = b"a signing key of thirty-two byte";
        let secret = format!("whsec_{}", BASE64.encode(key));
        let sig = standard_webhooks_signature(key, "msg_1", "1700000000", &body);
        // A rotated-out key's signature first: any entry may match.
        let rotated = format!("v1,{} {sig}", BASE64.encode([0u8; 32]));
        let h = header_map(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1700000000"),
            ("webhook-signature", &rotated),
        ]);
        assert_eq!(verify(Provider::GitLab, &h, &body, &secret), Ok(()));

        let h = header_map(&[
            ("webhook-id", "msg_2"),
            ("webhook-timestamp", "1700000000"),
            ("webhook-signature", &sig),
        ]);
        assert_eq!(
            verify(Provider::GitLab, &h, &body, &secret),
            Err(BadSignature)
        );
    }

    #[test]
    fn gitlab_standard_webhooks_uses_a_plain_secret_as_raw_key_bytes() {
        let body = b"{}";
        let sig = standard_webhooks_signature(b"plain-secret", "id", "1700000000", body);
        let h = header_map(&[
            ("webhook-id", "id"),
            ("webhook-timestamp", "1700000000"),
            ("webhook-signature", &sig),
        ]);
        assert_eq!(verify(Provider::GitLab, &h, body, "plain-secret"), Ok(()));
        let no_timestamp = header_map(&[("webhook-id", "id"), ("webhook-signature", &sig)]);
        assert_eq!(
            verify(Provider::GitLab, &no_timestamp, body, "plain-secret"),
            Err(BadSignature)
        );
    }

    #[test]
    fn a_standard_webhooks_timestamp_more_than_five_minutes_away_is_refused_as_stale() {
        let body = b"{}";
        let signed_at = |ts: i64| {
            let ts = ts.to_string();
            let sig = standard_webhooks_signature(b"plain-secret", "msg_1", &ts, body);
            header_map(&[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &sig),
            ])
        };
        let now_secs = now().timestamp();
        for within in [now_secs - 300, now_secs, now_secs + 300] {
            assert_eq!(
                verify(Provider::GitLab, &signed_at(within), body, "plain-secret"),
                Ok(()),
                "{within}"
            );
        }
        // An hour old, from 2001, from 5138, one second past either edge, and absurd values.
        for stale in [
            now_secs - 3_600,
            978_307_200,
            99_999_999_999,
            now_secs - 301,
            now_secs + 301,
            i64::MIN,
            i64::MAX,
        ] {
            let refused = verify(Provider::GitLab, &signed_at(stale), body, "plain-secret");
            assert_eq!(refused, Err(StaleTimestamp), "{stale}");
            let err = refused.unwrap_err();
            assert_eq!(err.code(), crate::error_code::ErrorCode::StaleTimestamp);
        }
        // A timestamp that is not a number is a bad signature, as the spec's libraries say.
        let mut h = signed_at(now_secs);
        h.insert("webhook-timestamp", "soon".parse().unwrap());
        assert_eq!(
            verify(Provider::GitLab, &h, body, "plain-secret"),
            Err(BadSignature)
        );
    }

    #[test]
    fn the_gitlab_token_alone_needs_no_timestamp() {
        let h = header_map(&[("X-Gitlab-Token", "s")]);
        assert_eq!(verify(Provider::GitLab, &h, b"{}", "s"), Ok(()));
    }

    #[test]
    fn bitbucket_sha256_signature_verifies() {
        let body = fixture("bitbucket/repo-push.woodpecker-HookPush.json");
        let sig = format!("sha256={}", sign_hex("bb-secret", &body));
        let h = header_map(&[("X-Hub-Signature", &sig)]);
        assert_eq!(verify(Provider::Bitbucket, &h, &body, "bb-secret"), Ok(()));
        assert_eq!(
            verify(Provider::Bitbucket, &header_map(&[]), &body, "bb-secret"),
            Err(MissingSignature("X-Hub-Signature"))
        );
    }
}
