//! Authentication's building blocks (SPEC.md §3): roles, modes, client
//! secrets stored as slow salted hashes, HS256 access tokens and opaque
//! refresh tokens.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clients::Client;
use crate::role::Role;
use crate::Timestamp;

/// Stores a client secret as an Argon2id hash with a random salt (PHC string).
pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .unwrap_or_default()
}

/// Whether `secret` matches a stored hash; a malformed hash never matches.
/// bcrypt hashes (`$2a$`/`$2b$`/`$2y$`, as upstream stores them) are
/// accepted too, so clients carried over from an upstream database keep
/// working; new and changed secrets are always stored as Argon2id.
pub fn verify_secret(secret: &str, stored: &str) -> bool {
    if stored.starts_with("$2") {
        return bcrypt::verify(secret, stored).unwrap_or(false);
    }
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Life of an access token, in seconds (the clients expect 600).
pub const ACCESS_TOKEN_SECONDS: i64 = 600;
/// Life of a refresh token, in seconds (6 days).
pub const REFRESH_TOKEN_SECONDS: i64 = 6 * 86_400;

/// What an access token says. The server never trusts the permissions in
/// it: they are read from the store at each request, so grants and
/// revocations take effect at once. They are there, in upstream's
/// `permissions` claim, because the real CLI decodes its token to find its
/// role and client id before it sends an admin command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub client_id: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    #[serde(default)]
    pub permissions: serde_json::Value,
}

/// Why a token was refused: the clients refresh and replay on 401 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Expired or not yet valid: 401.
    Expired,
    /// Bad signature, wrong algorithm, missing claims or garbage: 403.
    Invalid,
    /// Issued further in the future than the leeway allows: a token from a
    /// skewed clock (or minted to outlive its stated life). 401, so a real
    /// client refreshes and gets one issued by this server's clock.
    IssuedAhead,
}

/// Signs and checks access tokens with one HS256 key.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    leeway_seconds: u64,
}

impl TokenKeys {
    pub fn new(signing_key: &[u8], leeway_seconds: u64) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(signing_key),
            decoding: DecodingKey::from_secret(signing_key),
            leeway_seconds,
        }
    }

    pub fn issue(&self, client_id: &str, role: Role, now: Timestamp) -> String {
        let permissions = serde_json::json!({"client_id": client_id, "role": role.as_str()});
        self.sign(client_id, role, permissions, now)
    }

    /// A token for a client, its permissions as they stand now included
    /// for the clients' own display and checks.
    pub fn issue_for(&self, client: &Client, now: Timestamp) -> String {
        let permissions = serde_json::json!({
            "client_id": client.client_id,
            "role": client.role.as_str(),
            "max_priority": client.max_priority,
            "allowed_queues": client.allowed_queues,
            "max_reservation_time": client.max_reservation_time,
        });
        self.sign(&client.client_id, client.role, permissions, now)
    }

    fn leeway(&self) -> i64 {
        i64::try_from(self.leeway_seconds).unwrap_or(i64::MAX)
    }

    fn sign(
        &self,
        client_id: &str,
        role: Role,
        permissions: serde_json::Value,
        now: Timestamp,
    ) -> String {
        let iat = now.millis() / 1000;
        let claims = AccessClaims {
            sub: "access_token".into(),
            client_id: client_id.to_owned(),
            role,
            iat,
            exp: iat + ACCESS_TOKEN_SECONDS,
            permissions,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Checks a token's signature, subject and life as of `now`: one issued
    /// more than the leeway ahead of `now` is refused too.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = self.leeway_seconds;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        match jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation) {
            Ok(data) if data.claims.sub != "access_token" => Err(TokenError::Invalid),
            Ok(data) if data.claims.iat > now.millis() / 1000 + self.leeway() => {
                Err(TokenError::IssuedAhead)
            }
            Ok(data) => Ok(data.claims),
            Err(e) => match e.kind() {
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => {
                    Err(TokenError::Expired)
                }
                _ => Err(TokenError::Invalid),
            },
        }
    }
}

/// What the store keeps of a refresh token: its SHA-256, hex. The token is
/// 64 random characters, so a fast hash is enough and lookups stay exact.
pub fn refresh_token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new opaque refresh token: 64 characters from 48 random bytes.
pub fn new_refresh_token() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 64];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b & 63)] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::AuthMode;

    #[test]
    fn roles_are_ordered_for_management() {
        assert!(Role::Admin.may_manage(Role::Manager));
        assert!(Role::Manager.may_manage(Role::Manager));
        assert!(!Role::Manager.may_manage(Role::Admin));
        assert!(!Role::Agent.may_manage(Role::Contributor));
        assert_eq!(Role::parse("manager"), Some(Role::Manager));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn modes_decide_what_anonymous_callers_may_do() {
        assert_eq!(
            AuthMode::Open.anonymous_roles(),
            [Role::Contributor, Role::Agent]
        );
        assert_eq!(AuthMode::Standard.anonymous_roles(), [Role::Contributor]);
        assert!(AuthMode::Strict.anonymous_roles().is_empty());
        assert_eq!(AuthMode::parse("lax"), None);
    }

    #[test]
    fn secrets_are_salted_hashes() {
        let hash = hash_secret("correct horse battery");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert_ne!(
            hash,
            hash_secret("correct horse battery"),
            "a fresh salt each time"
        );
        assert!(verify_secret("correct horse battery", &hash));
        assert!(!verify_secret("wrong horse battery", &hash));
        assert!(!verify_secret("anything", "not a hash"));
        // Upstream's bcrypt hashes still verify.
        let upstream = bcrypt::hash("an upstream secret", 4).unwrap();
        assert!(verify_secret("an upstream secret", &upstream));
        assert!(!verify_secret("another secret", &upstream));
    }

    #[test]
    fn access_tokens_expire_with_401_and_forgeries_get_403() {
        let keys = TokenKeys::new(b"a signing key of some length", 0);
        let now = Timestamp::now();
        let token = keys.issue("ci-bot", Role::Agent, now);
        let claims = keys.verify(&token, now).unwrap();
        assert_eq!(
            (claims.client_id.as_str(), claims.role),
            ("ci-bot", Role::Agent)
        );
        assert_eq!(claims.exp - claims.iat, ACCESS_TOKEN_SECONDS);
        assert_eq!(claims.permissions["role"], "agent");

        // The CLI reads its role and client id from `permissions`.
        let mut client = Client::new("lab-admin", "hash", Role::Admin);
        client.max_priority.insert("*".into(), 7);
        let claims = keys.verify(&keys.issue_for(&client, now), now).unwrap();
        assert_eq!(claims.permissions["role"], "admin");
        assert_eq!(claims.permissions["client_id"], "lab-admin");
        assert_eq!(claims.permissions["max_priority"]["*"], 7);
        assert!(!claims.permissions.to_string().contains("hash"));

        let old = Timestamp::from_millis(now.millis() - 3_600_000);
        assert_eq!(
            keys.verify(&keys.issue("ci-bot", Role::Agent, old), now),
            Err(TokenError::Expired)
        );
        let other = TokenKeys::new(b"another key entirely", 0);
        assert_eq!(other.verify(&token, now), Err(TokenError::Invalid));
        assert_eq!(keys.verify("garbage", now), Err(TokenError::Invalid));
        let mut tampered = token.clone();
        tampered.pop();
        assert_eq!(keys.verify(&tampered, now), Err(TokenError::Invalid));
    }

    #[test]
    fn tokens_issued_ahead_of_the_clock_by_more_than_the_leeway_are_refused() {
        let keys = TokenKeys::new(b"a signing key of some length", 30);
        let now = Timestamp::now();
        let ahead = |seconds| {
            keys.verify(
                &keys.issue("ci-bot", Role::Agent, now.plus_seconds(seconds)),
                now,
            )
        };
        assert!(ahead(30).is_ok(), "within the leeway");
        assert_eq!(ahead(31).map(|_| ()), Err(TokenError::IssuedAhead));
        assert_eq!(ahead(3_600).map(|_| ()), Err(TokenError::IssuedAhead));
    }

    #[test]
    fn refresh_tokens_are_long_and_random() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(refresh_token_hash(&a).len(), 64);
        assert_eq!(refresh_token_hash(&a), refresh_token_hash(&a));
        assert_ne!(refresh_token_hash(&a), refresh_token_hash(&b));
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
