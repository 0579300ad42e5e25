//! Hangar's engine.
//!
//! - [`engine`]: [`Engine`], the set of providers and the aggregated catalog;
//!   it implements [`hangar_mcp::Backend`].
//! - [`provider`]: one supervisor per provider (lazy single-flight start,
//!   health checks, idle shutdown, restart with backoff).
//! - [`events`]: domain events, batched to the store off the call path.
//! - [`feed`]: what one event stream consumer gets (replay, then live).
//! - [`metrics`], [`alerts`]: Prometheus metrics; alerts derived from events.
//! - [`group`]: groups: balancer, circuit breakers, failover.
//! - [`process`]: subprocesses in their own process group, stderr capture.
//! - [`logs`]: the bounded stderr ring.
//! - [`secrets`]: encrypted secrets and their injection into provider env.
//! - [`store`]: the SQLite store.
//! - [`files`]: bounded reads of config files; the private data directory.
//!
//! API boundary: this crate knows nothing about HTTP.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod alerts;
pub mod approvals;
pub mod catalog;
pub mod container;
pub mod engine;
pub mod error;
pub mod events;
pub mod feed;
pub mod files;
pub mod group;
pub mod logs;
pub mod metrics;
pub mod policies;
pub mod process;
pub mod provider;
pub mod questions;
pub mod scopes;
pub mod secrets;
pub mod store;

pub use alerts::{Alert, AlertLevel, AlertSettings};
pub use catalog::{CatalogEntry, CatalogError, CatalogService, NewCatalogEntry};
pub use engine::{Engine, EngineConfig, ReconcileReport, ReconcileSet, Replier, TOOL_INVOCATION};
pub use error::{RuntimeError, StoreError};
pub use events::{DomainEvent, EventBus, EventStoreSettings, WriterReading};
pub use feed::{EventFilter, FeedItem};
pub use group::{Group, GroupStatus, MemberStatus};
pub use logs::LogLine;
pub use metrics::Metrics;
pub use provider::{HealthRecord, Provider, ProviderSource, ProviderStatus};
pub use secrets::{EnvResolver, MasterKey, Sealer, SecretError, SecretInfo, Secrets};
pub use store::{Snapshot, Store, StoredEvent, StoredKey, StoredSecret};

use std::sync::{Mutex, MutexGuard};

/// Locks a std mutex, recovering from poisoning (the data stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The current UTC time as RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
