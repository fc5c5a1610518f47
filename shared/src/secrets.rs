//! Per-client secrets (SPEC.md §4.4): values encrypted at rest with
//! AES-256-GCM under `TESTFLINGER_SECRETS_KEY`, bound to their owner and path
//! so that a stored value cannot be moved to another path and still open.
//!
//! Plain values exist only in a `PUT` body and in the claim answer of a job
//! that names them; they never reach a log line (no `Debug` shows them).

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine;
use serde_json::{Map, Value};

use crate::validation::FieldErrors;
use crate::{Error, Result, Timestamp};

/// A secret lives a year unless its writer says otherwise (`expire_after`
/// in seconds, or `null` for no expiry).
pub const DEFAULT_SECRET_SECONDS: i64 = 365 * 86_400;

/// The longest `expire_after` (100 years); `null` means no expiry at all.
pub const MAX_SECRET_SECONDS: i64 = 100 * 365 * 86_400;

const NONCE_BYTES: usize = 12;

/// The key that seals every secret.
#[derive(Clone)]
pub struct SecretsKey(Key<Aes256Gcm>);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(hidden)")
    }
}

impl PartialEq for SecretsKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for SecretsKey {}

impl SecretsKey {
    /// From its configured form: base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> std::result::Result<Self, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "expected base64 (e.g. from `openssl rand -base64 32`)".to_owned())?;
        if bytes.len() != 32 {
            return Err(format!(
                "expected 32 bytes once decoded, not {}",
                bytes.len()
            ));
        }
        Ok(SecretsKey(*Key::<Aes256Gcm>::from_slice(&bytes)))
    }

    /// Seals a value for one client's path: a fresh nonce, then the
    /// ciphertext with its tag.
    pub fn seal(&self, client_id: &str, path: &str, value: &str) -> Vec<u8> {
        let cipher = Aes256Gcm::new(&self.0);
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(client_id, path);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a sealed value; `None` when it was sealed under another key or
    /// for another client or path, or was altered.
    pub fn open(&self, client_id: &str, path: &str, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        let aad = associated_data(client_id, path);
        let plain = Aes256Gcm::new(&self.0)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

fn associated_data(client_id: &str, path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(client_id.len() + path.len() + 1);
    aad.extend_from_slice(client_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(path.as_bytes());
    aad
}

/// A stored secret: sealed, never plain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub client_id: String,
    pub path: String,
    pub sealed: Vec<u8>,
    pub expires_at: Option<Timestamp>,
    /// Deleted once a claim has read it.
    pub ephemeral: bool,
    pub updated_at: Timestamp,
}

/// Secret paths: segments of letters, digits, `_` and `-`, joined by `/`.
pub fn is_secret_path(path: &str) -> bool {
    path.len() <= 512
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// A validated `PUT /v1/secrets/{client_id}/{path}` body.
pub struct SecretWrite {
    pub value: String,
    pub expires_at: Option<Timestamp>,
    pub ephemeral: bool,
}

impl std::fmt::Debug for SecretWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretWrite")
            .field("value", &"(hidden)")
            .field("expires_at", &self.expires_at)
            .field("ephemeral", &self.ephemeral)
            .finish()
    }
}

/// Validates a secret's body: `value` a non-empty string; `expire_after`
/// whole seconds ≥ 1 or `null` (no expiry); `ephemeral` a boolean.
pub fn validate_secret_write(body: &Map<String, Value>, now: Timestamp) -> Result<SecretWrite> {
    let mut errors = FieldErrors::new();
    let value = match body.get("value") {
        Some(Value::String(v)) if !v.is_empty() => v.clone(),
        Some(_) => {
            errors.add("value", "Must be a non-empty string.");
            String::new()
        }
        None => {
            errors.add("value", "Missing data for required field.");
            String::new()
        }
    };
    let expires_at = match body.get("expire_after") {
        None => Some(now.plus_seconds(DEFAULT_SECRET_SECONDS)),
        Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(seconds) if (1..=MAX_SECRET_SECONDS).contains(&seconds) => {
                Some(now.plus_seconds(seconds))
            }
            _ => {
                errors.add(
                    "expire_after",
                    "Must be a whole number of seconds from 1 to 100 years, or null for no expiry.",
                );
                None
            }
        },
    };
    let ephemeral = match body.get("ephemeral") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.add("ephemeral", "Not a valid boolean.");
            false
        }
    };
    for key in body.keys() {
        if !matches!(key.as_str(), "value" | "expire_after" | "ephemeral") {
            errors.add(key, "Unknown field.");
        }
    }
    errors.into_result()?;
    Ok(SecretWrite {
        value,
        expires_at,
        ephemeral,
    })
}

/// The secret paths a job names in `test_data.secrets` ({ENV: path}).
pub fn job_secret_paths(job_data: &Map<String, Value>) -> Vec<String> {
    let mut paths: Vec<String> = job_data
        .get("test_data")
        .and_then(|t| t.get("secrets"))
        .and_then(Value::as_object)
        .map(|secrets| {
            secrets
                .values()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// The paths, each once, in their first order.
pub fn distinct_paths(paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    for path in paths {
        if !out.contains(path) {
            out.push(path.clone());
        }
    }
    out
}

/// A refusal of a submission's secrets (422 naming each path).
pub fn inaccessible(paths: &[String]) -> Error {
    let mut errors = FieldErrors::new();
    errors.add(
        "test_data.secrets",
        format!("Inaccessible secret paths: {}", paths.join(", ")),
    );
    Error::Validation {
        location: crate::error::Location::Json,
        message: format!("Inaccessible secret paths: {}", paths.join(", ")),
        fields: errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> SecretsKey {
        SecretsKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap()
    }

    #[test]
    fn keys_are_32_bytes_of_base64_and_never_printed() {
        assert!(SecretsKey::from_base64("not base64!").is_err());
        assert!(SecretsKey::from_base64("c2hvcnQ=")
            .unwrap_err()
            .contains("32 bytes"));
        assert_eq!(format!("{:?}", key()), "SecretsKey(hidden)");
    }

    #[test]
    fn sealed_values_open_only_for_their_owner_and_path() {
        let sealed = key().seal("ci", "lab/wifi", "hunter2-password");
        assert!(!String::from_utf8_lossy(&sealed).contains("hunter2"));
        assert_eq!(
            key().open("ci", "lab/wifi", &sealed).as_deref(),
            Some("hunter2-password")
        );
        assert_eq!(key().open("other", "lab/wifi", &sealed), None);
        assert_eq!(key().open("ci", "lab/other", &sealed), None);
        let other_key =
            SecretsKey::from_base64("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=").unwrap();
        assert_eq!(other_key.open("ci", "lab/wifi", &sealed), None);
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(key().open("ci", "lab/wifi", &altered), None);
        assert_ne!(sealed, key().seal("ci", "lab/wifi", "hunter2-password"));
    }

    #[test]
    fn paths_are_slash_separated_safe_segments() {
        assert!(is_secret_path("a/b_c/D-9"));
        for bad in ["", "/a", "a/", "a//b", "a b", "a/../b", "a.b"] {
            assert!(!is_secret_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn writes_are_validated_and_expire_by_default_after_a_year() {
        let now = Timestamp::from_millis(1_000_000);
        let w = |body: Value| validate_secret_write(body.as_object().unwrap(), now);
        let plain = w(json!({"value": "v"})).unwrap();
        assert_eq!(
            plain.expires_at,
            Some(now.plus_seconds(DEFAULT_SECRET_SECONDS))
        );
        assert!(!plain.ephemeral);
        assert!(!format!("{plain:?}").contains("\"v\""));
        let forever = w(json!({"value": "v", "expire_after": null, "ephemeral": true})).unwrap();
        assert_eq!((forever.expires_at, forever.ephemeral), (None, true));
        assert_eq!(
            w(json!({"value": "v", "expire_after": 60}))
                .unwrap()
                .expires_at,
            Some(now.plus_seconds(60))
        );
        assert!(w(json!({"value": "v", "expire_after": i64::MAX})).is_err());
        let Err(Error::Validation { fields, .. }) =
            w(json!({"value": "", "expire_after": 0, "ephemeral": "yes", "x": 1}))
        else {
            panic!("expected a validation error");
        };
        assert_eq!(fields.fields().count(), 4);
    }

    #[test]
    fn a_job_names_its_secret_paths() {
        let job = json!({"test_data": {"secrets": {"A": "x/y", "B": "z", "C": "x/y"}}});
        assert_eq!(job_secret_paths(job.as_object().unwrap()), ["x/y", "z"]);
        assert!(job_secret_paths(&Map::new()).is_empty());
    }
}
