//! Random credentials: API keys, webhook hook ids and secrets, and the hashes stored for keys.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Every project API key starts with this, so a leaked key is recognizable in a scan.
pub const API_KEY_PREFIX: &str = "gpt_";
/// Random characters after the prefix: 40 alphanumerics are about 238 bits.
const API_KEY_RANDOM_LEN: usize = 40;
/// How much of a key is kept in clear to tell keys apart in lists.
const DISPLAY_PREFIX_LEN: usize = API_KEY_PREFIX.len() + 8;

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A freshly generated API key: the key is shown once, only the hash is stored.
#[derive(Debug)]
pub struct NewApiKey {
    pub key: Secret,
    pub hash: [u8; 32],
    pub prefix: String,
}

pub fn generate_api_key() -> NewApiKey {
    let key = format!(
        "{API_KEY_PREFIX}{}",
        random_alphanumeric(API_KEY_RANDOM_LEN)
    );
    NewApiKey {
        hash: hash_key(&key),
        prefix: key[..DISPLAY_PREFIX_LEN].to_owned(),
        key: Secret::new(key),
    }
}

/// The SHA-256 of a presented key. Keys are long and random, so a plain hash is enough: no
/// salt or slow hash is needed to resist guessing, and lookups stay one indexed read.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The unguessable path segment of a project's webhook URL.
pub fn generate_hook_id() -> String {
    random_alphanumeric(32)
}

/// A webhook secret, used as the HMAC key (GitHub, Gitea, Bitbucket) or the token (GitLab).
pub fn generate_webhook_secret() -> Secret {
    Secret::new(random_alphanumeric(40))
}

/// The owner's admin token starts with this, so it is never mistaken for a project key.
pub const ADMIN_TOKEN_PREFIX: &str = "gpa_";

/// A new admin token: printed once, only its hash is stored.
pub fn generate_admin_token() -> Secret {
    Secret::new(format!(
        "{ADMIN_TOKEN_PREFIX}{}",
        random_alphanumeric(API_KEY_RANDOM_LEN)
    ))
}

/// A dashboard session id, the value of the session cookie; stored hashed like keys.
pub fn generate_session_id() -> Secret {
    Secret::new(random_alphanumeric(43))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_have_the_prefix_and_enough_randomness() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert!(a.key.expose().starts_with("gpt_"));
        assert_eq!(a.key.expose().len(), 44);
        assert_ne!(a.key.expose(), b.key.expose());
        assert_eq!(a.hash, hash_key(a.key.expose()));
        assert!(a.key.expose().starts_with(&a.prefix));
        assert!(!format!("{a:?}").contains(a.key.expose()));
    }

    #[test]
    fn admin_tokens_have_their_own_prefix_and_are_never_project_keys() {
        let t = generate_admin_token();
        assert!(t.expose().starts_with("gpa_"));
        assert!(!t.expose().starts_with(API_KEY_PREFIX));
        assert_eq!(t.expose().len(), 44);
        assert_ne!(t, generate_admin_token());
    }
}
