//! Standard Webhooks signing: `whsec_` secrets and the `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,...` headers (HMAC-SHA256 over `id.timestamp.body`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::secret::Secret;

pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and the base64 of 32 random bytes.
pub fn generate_secret() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The `webhook-signature` value for one message.
pub fn signature(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let raw = secret.expose();
    let key = STANDARD
        .decode(raw.strip_prefix(SECRET_PREFIX).unwrap_or(raw))
        .unwrap_or_else(|_| raw.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The stable `webhook-id` of one push's delivery to one notification.
pub fn message_id(outbox_id: i64) -> String {
    format!("msg_{outbox_id:020}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_test_vector() {
        let secret = Secret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let sig = signature(
            &secret,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn generated_secrets_are_whsec_and_32_bytes() {
        let s = generate_secret();
        let raw = s.expose().strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(STANDARD.decode(raw).unwrap().len(), 32);
    }
}
