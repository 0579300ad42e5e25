//! Errors of the engine.

use std::time::Duration;

use hangar_core::{ErrorOrigin, SpecError};

/// A failure in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No provider with this id.
    #[error("provider '{0}' not found")]
    NotFound(String),
    /// A provider with this id exists already.
    #[error("provider '{0}' already exists")]
    AlreadyExists(String),
    /// The provider is still used (e.g. a group member).
    #[error("'{id}' is in use: {why}")]
    InUse {
        /// The provider's id.
        id: String,
        /// What still uses it.
        why: String,
    },
    /// No group with this id.
    #[error("group '{0}' not found")]
    GroupNotFound(String),
    /// The group has no such member.
    #[error("group '{group}' has no member '{member}'")]
    MemberNotFound {
        /// The group's id.
        group: String,
        /// The member's provider id.
        member: String,
    },
    /// The provider is being removed.
    #[error("provider '{0}' was removed")]
    Removed(String),
    /// The spec is invalid.
    #[error("invalid provider spec: {0}")]
    InvalidSpec(#[from] SpecError),
    /// The process could not be started.
    #[error("provider '{provider}' could not be started: {message}")]
    Spawn {
        /// The provider's id.
        provider: String,
        /// What went wrong.
        message: String,
    },
    /// Startup took too long.
    #[error("provider '{provider}' did not become ready within {after:?}")]
    StartTimeout {
        /// The provider's id.
        provider: String,
        /// The time allowed.
        after: Duration,
    },
    /// Talking to the provider failed.
    #[error(transparent)]
    Upstream(#[from] hangar_mcp::UpstreamError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// `server.max_running_providers` processes already run.
    #[error(
        "provider '{provider}' cannot start: {limit} providers are already running (server.max_running_providers); stop one or raise the limit"
    )]
    AtCapacity {
        /// The provider's id.
        provider: String,
        /// `server.max_running_providers`.
        limit: usize,
    },
    /// The stream keeps every event (the audit trail): only its configured
    /// retention removes records, and that removal is itself recorded.
    #[error(
        "stream '{0}' is append-only: only server.audit_retention removes its records (and records that it did)"
    )]
    AppendOnly(String),
    /// A provider could not take a resource subscription (not running, no
    /// subscription support, or it refused).
    #[error("provider '{provider}' could not subscribe: {message}")]
    Subscription {
        /// The provider's id.
        provider: String,
        /// Why.
        message: String,
    },
}

impl RuntimeError {
    /// Where the failure came from.
    pub fn origin(&self) -> ErrorOrigin {
        match self {
            Self::NotFound(_)
            | Self::AlreadyExists(_)
            | Self::InvalidSpec(_)
            | Self::InUse { .. }
            | Self::GroupNotFound(_)
            | Self::MemberNotFound { .. }
            | Self::AppendOnly(_) => ErrorOrigin::Downstream,
            Self::Spawn { .. }
            | Self::StartTimeout { .. }
            | Self::Upstream(_)
            | Self::Subscription { .. } => ErrorOrigin::Upstream,
            Self::Removed(_) | Self::Store(_) | Self::AtCapacity { .. } => ErrorOrigin::Hangar,
        }
    }
}

/// A failure of the SQLite store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row did not decode.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The blocking task failed.
    #[error("store task failed: {0}")]
    Join(String),
    /// Filesystem trouble around the database file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
