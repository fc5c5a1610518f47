//! Who a caller is: the roles clients hold, and the modes that say what
//! anonymous callers may do (SPEC.md §3).

use serde::{Deserialize, Serialize};

/// Roles, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Manager,
    Contributor,
    Agent,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Manager, Role::Contributor, Role::Agent];

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Contributor => "contributor",
            Role::Agent => "agent",
        }
    }

    /// Higher is stronger; only used to decide who may grant or edit whom.
    pub fn rank(self) -> u8 {
        match self {
            Role::Admin => 3,
            Role::Manager => 2,
            Role::Contributor => 1,
            Role::Agent => 0,
        }
    }

    /// Whether a holder of `self` may grant or edit `other`.
    pub fn may_manage(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }
}

/// Who may call without a token (SPEC.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Anonymous callers act as contributors and agents.
    Open,
    /// Anonymous callers act as contributors; agent endpoints need a token.
    Standard,
    /// Everything but the health check needs a token.
    Strict,
}

impl AuthMode {
    pub fn parse(text: &str) -> Option<AuthMode> {
        match text {
            "open" => Some(AuthMode::Open),
            "standard" => Some(AuthMode::Standard),
            "strict" => Some(AuthMode::Strict),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Open => "open",
            AuthMode::Standard => "standard",
            AuthMode::Strict => "strict",
        }
    }

    /// The roles an anonymous caller holds in this mode.
    pub fn anonymous_roles(self) -> &'static [Role] {
        match self {
            AuthMode::Open => &[Role::Contributor, Role::Agent],
            AuthMode::Standard => &[Role::Contributor],
            AuthMode::Strict => &[],
        }
    }
}
