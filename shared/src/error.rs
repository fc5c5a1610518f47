//! The domain's error type. The `functions` crate maps each variant to one
//! HTTP status in a single place.

use crate::validation::FieldErrors;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is well-formed but some fields are wrong (422).
    #[error("{message}")]
    Validation {
        message: String,
        fields: FieldErrors,
    },
    /// The request cannot be understood (400).
    #[error("{0}")]
    BadRequest(String),
    /// No credentials where the action needs them, or credentials that have
    /// expired (401: the clients re-authenticate and replay once).
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials that do not allow the action, or that are not valid (403).
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// More bytes than the configured limit (413).
    #[error("{what} exceeds the limit of {limit} bytes")]
    TooLarge { what: &'static str, limit: u64 },
    /// A storage backend failed. The cause is logged, never sent to clients (500).
    #[error("{context}: {source}")]
    Backend {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub fn backend(
        context: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Backend {
            context,
            source: source.into(),
        }
    }

    pub fn validation(fields: FieldErrors) -> Self {
        Error::Validation {
            message: "Validation error".into(),
            fields,
        }
    }
}
