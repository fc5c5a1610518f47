//! The domain's one error type. Every use case returns it; the `functions`
//! crate maps each variant to one HTTP status in a single `match`.

use crate::validation::FieldErrors;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a bad field was found: the JSON body, the query string or the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Json,
    Query,
    Path,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Json => "json",
            Location::Query => "query",
            Location::Path => "path",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is well-formed but some fields are wrong (422).
    #[error("{message}")]
    Validation {
        location: Location,
        message: String,
        fields: FieldErrors,
    },
    /// The request cannot be understood (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request cannot be understood, and these fields say why (400 with
    /// the fields in the detail, as upstream answers a claim without queues).
    #[error("{message}")]
    Malformed {
        location: Location,
        message: String,
        fields: FieldErrors,
    },
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
    /// The named thing is no longer where it was asked for (410).
    #[error("{0}")]
    Gone(String),
    /// The action conflicts with the record's current state (409).
    #[error("{0}")]
    Conflict(String),
    /// More bytes than the configured limit (413).
    #[error("{what} exceeds the limit of {limit} bytes")]
    TooLarge { what: &'static str, limit: u64 },
    /// The server is at a bound it keeps on purpose; try again later (503).
    #[error("{0}")]
    Busy(String),
    /// The client sent its request too slowly (408).
    #[error("{0}")]
    TimedOut(String),
    /// This client (or address) has tried too often; wait `retry_after`
    /// seconds (429).
    #[error("{message}")]
    Throttled { message: String, retry_after: u64 },
    /// A server this one relays to did not answer well (502), or in time (504).
    #[error("{message}")]
    Upstream { message: String, timed_out: bool },
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

    /// 422 for bad fields of the JSON body.
    pub fn validation(fields: FieldErrors) -> Self {
        Self::validation_at(Location::Json, fields)
    }

    /// 422 for bad fields at `location`.
    pub fn validation_at(location: Location, fields: FieldErrors) -> Self {
        Error::Validation {
            location,
            message: "Validation error".into(),
            fields,
        }
    }

    /// 422 for one bad field at `location`.
    pub fn invalid(location: Location, field: &str, problem: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.add(field, problem);
        Self::validation_at(location, fields)
    }

    /// 422 for one bad field of the JSON body.
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        Self::invalid(Location::Json, field, problem)
    }
}
