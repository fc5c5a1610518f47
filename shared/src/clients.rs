//! Clients and what they may do (SPEC.md §3, §4.4): the stored client with
//! its role and permissions, refresh tokens, restricted queues, and the
//! submission-time checks.
//!
//! Permissions are read from the store on every request, never frozen into
//! an access token: a grant or a revocation takes effect at once.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::job::NewJob;
use crate::role::Role;
use crate::validation::FieldErrors;
use crate::{Error, Result, Timestamp};

/// The queue key that stands for every queue in the permission maps.
pub const ANY_QUEUE: &str = "*";

/// Reservations up to this long need no token (SPEC.md §3): 6 hours.
pub const FREE_RESERVATION_SECONDS: i64 = 6 * 3600;

/// Shortest client secret the API accepts.
pub const MIN_SECRET_CHARS: usize = 15;

/// A client that can authenticate with `client_id:client_secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    /// The secret's salted slow hash (PHC string); never the secret.
    pub secret_hash: String,
    pub role: Role,
    /// Highest `job_priority` per queue (`"*"`: any queue).
    pub max_priority: BTreeMap<String, i64>,
    /// Restricted queues this client may submit to (`"*"`: all of them).
    pub allowed_queues: Vec<String>,
    /// Longest reservation in seconds per queue (`"*"`: any queue).
    pub max_reservation_time: BTreeMap<String, i64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("role", &self.role)
            .field("max_priority", &self.max_priority)
            .field("allowed_queues", &self.allowed_queues)
            .field("max_reservation_time", &self.max_reservation_time)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Whether this client may change `target` (whose role is
    /// `target_role`): an admin may change anyone; anyone else other clients
    /// of its own role or below (as upstream: "not above its own"). What a
    /// client may change of itself is decided by the caller.
    pub fn may_change(&self, target_id: &str, target_role: Role) -> bool {
        self.role == Role::Admin
            || (target_id != self.client_id && target_role.rank() <= self.role.rank())
    }

    /// The highest `job_priority` this client may use on `queue`.
    pub fn priority_limit(&self, queue: &str) -> Option<i64> {
        Client::limit(&self.max_priority, queue)
    }

    /// The longest reservation (seconds) this client may ask for on `queue`.
    pub fn reservation_limit(&self, queue: &str) -> Option<i64> {
        Client::limit(&self.max_reservation_time, queue)
    }

    pub fn new(client_id: impl Into<String>, secret_hash: impl Into<String>, role: Role) -> Self {
        Client {
            client_id: client_id.into(),
            secret_hash: secret_hash.into(),
            role,
            max_priority: BTreeMap::new(),
            allowed_queues: Vec::new(),
            max_reservation_time: BTreeMap::new(),
        }
    }

    /// The higher of the queue's own limit and the `"*"` limit.
    fn limit(map: &BTreeMap<String, i64>, queue: &str) -> Option<i64> {
        [map.get(queue), map.get(ANY_QUEUE)]
            .into_iter()
            .flatten()
            .copied()
            .max()
    }

    pub fn may_use_queue(&self, queue: &str) -> bool {
        self.allowed_queues
            .iter()
            .any(|q| q == queue || q == ANY_QUEUE)
    }
}

/// An issued refresh token. Only a hash of the token is stored, so a copy of
/// the database does not hand out working tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub token_hash: String,
    pub client_id: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked: bool,
}

/// A restricted queue and the clients that own it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictedQueue {
    pub queue: String,
    pub owners: Vec<String>,
}

/// What removing an owner from a restricted queue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerRemoval {
    /// The queue is not restricted.
    NotRestricted,
    /// The client is not one of its owners.
    NotOwner,
    /// Removed; `restriction_ended` when it was the last owner.
    Removed { restriction_ended: bool },
}

/// Checks a submission against the caller's permissions (SPEC.md §3):
/// priority above 0, a restricted queue, and a reservation over 6 hours
/// each need a client whose permissions allow them. Anonymous: 401;
/// not allowed: 403.
pub fn check_submission(
    job: &NewJob,
    client: Option<&Client>,
    restriction: Option<&RestrictedQueue>,
) -> Result<()> {
    let queue = job.job_queue.as_str();
    let needs_token = |what: &str| {
        Error::Unauthorized(format!(
            "{what} needs an authenticated client; log in with a client id and secret."
        ))
    };
    if job.job_priority > 0 {
        let client = client.ok_or_else(|| needs_token("A job_priority above 0"))?;
        let allowed = Client::limit(&client.max_priority, queue).unwrap_or(0);
        if job.job_priority > allowed {
            return Err(Error::Forbidden(format!(
                "Client '{}' may submit to queue '{queue}' with a job_priority of at most {allowed}, not {}.",
                client.client_id, job.job_priority
            )));
        }
    }
    if restriction.is_some() {
        let client =
            client.ok_or_else(|| needs_token(&format!("Queue '{queue}' is restricted: it")))?;
        if !client.may_use_queue(queue) {
            return Err(Error::Forbidden(format!(
                "Queue '{queue}' is restricted and client '{}' is not allowed to use it.",
                client.client_id
            )));
        }
    }
    if let Some(timeout) = reservation_seconds(&job.job_data) {
        if timeout > FREE_RESERVATION_SECONDS {
            let client = client.ok_or_else(|| needs_token("A reservation longer than 6 hours"))?;
            let allowed = Client::limit(&client.max_reservation_time, queue)
                .unwrap_or(0)
                .max(FREE_RESERVATION_SECONDS);
            if timeout > allowed {
                return Err(Error::Forbidden(format!(
                    "Client '{}' may reserve on queue '{queue}' for at most {allowed} seconds, not {timeout}.",
                    client.client_id
                )));
            }
        }
    }
    Ok(())
}

/// The reservation a job asks for, in seconds (validation has normalised it).
fn reservation_seconds(job_data: &Map<String, Value>) -> Option<i64> {
    let reserve = job_data.get("reserve_data")?.as_object()?;
    Some(
        reserve
            .get("timeout")
            .and_then(Value::as_i64)
            .unwrap_or(crate::job::DEFAULT_RESERVATION_SECONDS),
    )
}

/// A validated `PUT /v1/client-permissions/{id}` body: each field is
/// optional and replaces the stored one when given.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientUpdate {
    pub client_secret: Option<String>,
    pub role: Option<Role>,
    pub max_priority: Option<BTreeMap<String, i64>>,
    pub allowed_queues: Option<Vec<String>>,
    pub max_reservation_time: Option<BTreeMap<String, i64>>,
}

impl std::fmt::Debug for ClientUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientUpdate")
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "(hidden)"),
            )
            .field("role", &self.role)
            .field("max_priority", &self.max_priority)
            .field("allowed_queues", &self.allowed_queues)
            .field("max_reservation_time", &self.max_reservation_time)
            .finish()
    }
}

impl ClientUpdate {
    /// Whether it changes nothing but the secret.
    pub fn only_secret(&self) -> bool {
        self.role.is_none()
            && self.max_priority.is_none()
            && self.allowed_queues.is_none()
            && self.max_reservation_time.is_none()
    }
}

/// Client ids: 1 to 128 printable characters without whitespace, `/`, `$`
/// or `:` (HTTP Basic splits at the first `:`).
pub fn is_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '$' | ':'))
}

/// Validates a client-permissions body, listing every bad field at once.
/// Unknown fields are refused: a typo in a permission must not be ignored.
pub fn validate_client_update(body: &Map<String, Value>) -> Result<ClientUpdate> {
    let mut errors = FieldErrors::new();
    let mut update = ClientUpdate::default();
    for (key, value) in body {
        match key.as_str() {
            "client_secret" => match value.as_str() {
                Some(s) if s.chars().count() >= MIN_SECRET_CHARS => {
                    update.client_secret = Some(s.to_owned())
                }
                _ => errors.add(
                    key,
                    format!("Must be a string of at least {MIN_SECRET_CHARS} characters."),
                ),
            },
            "role" => match value.as_str().and_then(Role::parse) {
                Some(role) => update.role = Some(role),
                None => errors.add(key, "Must be one of: admin, manager, contributor, agent."),
            },
            // The CLI's flags send `max_reservation`, and both maps as JSON
            // text as typed on its command line.
            "max_priority" | "max_reservation_time" | "max_reservation" => {
                match queue_limits(value) {
                    Some(map) if key == "max_priority" => update.max_priority = Some(map),
                    Some(map) => update.max_reservation_time = Some(map),
                    None => errors.add(
                        key,
                        "Must be an object of queue name (or \"*\"): integer of 0 or more.",
                    ),
                }
            }
            "allowed_queues" => match value.as_array() {
                Some(items)
                    if items
                        .iter()
                        .all(|q| q.as_str().is_some_and(|q| !q.is_empty())) =>
                {
                    let mut queues: Vec<String> = Vec::new();
                    for q in items.iter().filter_map(Value::as_str) {
                        if !queues.iter().any(|have| have == q) {
                            queues.push(q.to_owned());
                        }
                    }
                    update.allowed_queues = Some(queues);
                }
                _ => errors.add(key, "Must be a list of non-empty queue names."),
            },
            // Read-only fields a client may send back from a GET.
            "client_id" => {}
            _ => errors.add(key, "Unknown field."),
        }
    }
    errors.into_result()?;
    Ok(update)
}

fn queue_limits(value: &Value) -> Option<BTreeMap<String, i64>> {
    if let Value::String(text) = value {
        let parsed: Value = serde_json::from_str(text).ok()?;
        return parsed.is_object().then(|| queue_limits(&parsed)).flatten();
    }
    value
        .as_object()?
        .iter()
        .map(|(queue, limit)| match limit.as_i64() {
            Some(n) if n >= 0 && !queue.is_empty() => Some((queue.clone(), n)),
            _ => None,
        })
        .collect()
}

impl ClientUpdate {
    /// Applies the update to an existing client, or makes a new one (which
    /// needs a secret). `hash` turns a secret into its stored hash.
    pub fn apply(
        self,
        client_id: &str,
        existing: Option<Client>,
        hash: impl FnOnce(&str) -> String,
    ) -> Result<Client> {
        let mut client = match (existing, self.client_secret.as_deref()) {
            (Some(mut client), secret) => {
                if let Some(secret) = secret {
                    client.secret_hash = hash(secret);
                }
                client
            }
            (None, Some(secret)) => Client::new(client_id, hash(secret), Role::Contributor),
            (None, None) => {
                return Err(Error::BadRequest(format!(
                    "Client '{client_id}' does not exist yet: give a client_secret to create it."
                )))
            }
        };
        if let Some(role) = self.role {
            client.role = role;
        }
        if let Some(map) = self.max_priority {
            client.max_priority = map;
        }
        if let Some(queues) = self.allowed_queues {
            client.allowed_queues = queues;
        }
        if let Some(map) = self.max_reservation_time {
            client.max_reservation_time = map;
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::validate_submission;
    use serde_json::json;

    fn job(body: Value) -> NewJob {
        validate_submission(body, Timestamp::from_millis(0)).unwrap()
    }

    fn client() -> Client {
        let mut c = Client::new("ci", "hash", Role::Contributor);
        c.max_priority.insert("rpi".into(), 10);
        c.max_priority.insert(ANY_QUEUE.into(), 2);
        c.max_reservation_time.insert("rpi".into(), 36_000);
        c.allowed_queues.push("secure".into());
        c
    }

    fn status(r: Result<()>) -> u16 {
        match r {
            Ok(()) => 200,
            Err(Error::Unauthorized(_)) => 401,
            Err(Error::Forbidden(_)) => 403,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn priority_needs_a_client_and_stays_within_its_limit() {
        let c = client();
        let p = |queue: &str, p: i64| job(json!({"job_queue": queue, "job_priority": p}));
        assert_eq!(status(check_submission(&p("rpi", 0), None, None)), 200);
        assert_eq!(status(check_submission(&p("rpi", 1), None, None)), 401);
        assert_eq!(status(check_submission(&p("rpi", 10), Some(&c), None)), 200);
        assert_eq!(status(check_submission(&p("rpi", 11), Some(&c), None)), 403);
        // Other queues fall back to "*".
        assert_eq!(status(check_submission(&p("x86", 2), Some(&c), None)), 200);
        assert_eq!(status(check_submission(&p("x86", 3), Some(&c), None)), 403);
        let plain = Client::new("p", "h", Role::Contributor);
        assert_eq!(
            status(check_submission(&p("x86", 1), Some(&plain), None)),
            403
        );
    }

    #[test]
    fn restricted_queues_need_an_allowed_client() {
        let c = client();
        let restriction = |q: &str| RestrictedQueue {
            queue: q.into(),
            owners: vec!["someone".into()],
        };
        let secure = job(json!({"job_queue": "secure"}));
        let other = job(json!({"job_queue": "other"}));
        assert_eq!(status(check_submission(&secure, None, None)), 200);
        let r = restriction("secure");
        assert_eq!(status(check_submission(&secure, None, Some(&r))), 401);
        assert_eq!(status(check_submission(&secure, Some(&c), Some(&r))), 200);
        let r = restriction("other");
        assert_eq!(status(check_submission(&other, Some(&c), Some(&r))), 403);
        let mut star = Client::new("s", "h", Role::Contributor);
        star.allowed_queues.push(ANY_QUEUE.into());
        assert_eq!(status(check_submission(&other, Some(&star), Some(&r))), 200);
    }

    #[test]
    fn long_reservations_need_a_client_with_a_longer_limit() {
        let c = client();
        let r = |queue: &str, timeout: Value| {
            job(json!({"job_queue": queue, "reserve_data": {"timeout": timeout}}))
        };
        assert_eq!(
            status(check_submission(&r("rpi", json!("6h")), None, None)),
            200
        );
        assert_eq!(
            status(check_submission(&r("rpi", json!(21_601)), None, None)),
            401
        );
        assert_eq!(
            status(check_submission(&r("rpi", json!("10h")), Some(&c), None)),
            200
        );
        assert_eq!(
            status(check_submission(&r("rpi", json!("11h")), Some(&c), None)),
            403
        );
        assert_eq!(
            status(check_submission(&r("x86", json!("7h")), Some(&c), None)),
            403
        );
        // The default reservation (1 h) needs nothing.
        let default = job(json!({"job_queue": "x86", "reserve_data": {}}));
        assert_eq!(status(check_submission(&default, None, None)), 200);
    }

    #[test]
    fn client_updates_are_validated_all_at_once() {
        let body = json!({
            "client_secret": "short",
            "role": "root",
            "max_priority": {"q": -1},
            "allowed_queues": [""],
            "max_reservation_time": [],
            "colour": "blue",
        });
        let Err(Error::Validation { fields, .. }) =
            validate_client_update(body.as_object().unwrap())
        else {
            panic!("expected a validation error");
        };
        let mut names: Vec<&str> = fields.fields().collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "allowed_queues",
                "client_secret",
                "colour",
                "max_priority",
                "max_reservation_time",
                "role"
            ]
        );
    }

    #[test]
    fn only_admins_change_their_peers_or_themselves_beyond_the_secret() {
        let admin = Client::new("a", "h", Role::Admin);
        let manager = Client::new("m", "h", Role::Manager);
        assert!(admin.may_change("a", Role::Admin));
        assert!(admin.may_change("other-admin", Role::Admin));
        assert!(manager.may_change("c", Role::Contributor));
        assert!(manager.may_change("g", Role::Agent));
        assert!(manager.may_change("m2", Role::Manager), "its own role");
        assert!(!manager.may_change("m", Role::Manager), "not itself");
        assert!(!manager.may_change("a", Role::Admin));
        assert!(!is_client_id("user:name"));
        let hidden = format!(
            "{:?}",
            Client::new("x", "$argon2id$secret-hash", Role::Agent)
        );
        assert!(!hidden.contains("argon2"), "{hidden}");
        let update = ClientUpdate {
            client_secret: Some("plain secret value".into()),
            ..ClientUpdate::default()
        };
        assert!(!format!("{update:?}").contains("plain secret"));
        assert!(update.only_secret());
    }

    #[test]
    fn the_cli_flag_forms_are_understood() {
        let body = json!({
            "client_id": "ci",
            "max_priority": "{\"rpi\": 10}",
            "max_reservation": "{\"*\": 36000}",
        });
        let update = validate_client_update(body.as_object().unwrap()).unwrap();
        assert_eq!(update.max_priority.unwrap()["rpi"], 10);
        assert_eq!(update.max_reservation_time.unwrap()["*"], 36_000);
        let bad = json!({"max_priority": "rpi=10"});
        assert!(validate_client_update(bad.as_object().unwrap()).is_err());
    }

    #[test]
    fn a_new_client_needs_a_secret_and_updates_replace_fields() {
        let hash = |s: &str| format!("hashed:{s}");
        let update = |body: Value| validate_client_update(body.as_object().unwrap()).unwrap();
        assert!(matches!(
            update(json!({"role": "agent"})).apply("x", None, hash),
            Err(Error::BadRequest(_))
        ));
        let created = update(json!({"client_secret": "a long enough secret"}))
            .apply("x", None, hash)
            .unwrap();
        assert_eq!(created.role, Role::Contributor);
        assert_eq!(created.secret_hash, "hashed:a long enough secret");
        let edited = update(json!({"role": "manager", "allowed_queues": ["a", "a", "b"]}))
            .apply("x", Some(created.clone()), hash)
            .unwrap();
        assert_eq!(edited.role, Role::Manager);
        assert_eq!(edited.allowed_queues, ["a", "b"]);
        assert_eq!(edited.secret_hash, created.secret_hash);
    }
}
