//! The engine: the set of providers, the aggregated catalog, and the
//! [`Backend`] the MCP server handler routes through.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use hangar_core::{DEFAULT_SEPARATOR, ProviderSpec, validate_provider_id};
use hangar_mcp::{Backend, BackendError, CallReport, Catalog, Lease};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::RuntimeError;
use crate::provider::{NoticeSink, Provider, ProviderNotice, ProviderSource, ProviderStatus};
use crate::store::Store;

/// How to build an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Separator between provider and tool in exposed names.
    pub tool_separator: String,
    /// Stderr lines kept per provider.
    pub log_capacity: usize,
    /// Where providers created over the API are persisted (none: in memory only).
    pub store: Option<Store>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            tool_separator: DEFAULT_SEPARATOR.to_owned(),
            log_capacity: 1000,
            store: None,
        }
    }
}

struct Shared {
    providers: RwLock<BTreeMap<String, Arc<Provider>>>,
    catalog: ArcSwap<Catalog>,
    changes: watch::Sender<u64>,
    separator: String,
    log_capacity: usize,
    store: Option<Store>,
    epoch: Instant,
    started_wall: std::time::Instant,
    calls_total: AtomicU64,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with no providers. Must be called inside a tokio runtime.
    pub fn new(config: EngineConfig) -> Self {
        let (changes, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                providers: RwLock::new(BTreeMap::new()),
                catalog: ArcSwap::from_pointee(Catalog::default()),
                changes,
                separator: config.tool_separator,
                log_capacity: config.log_capacity,
                store: config.store,
                epoch: Instant::now(),
                started_wall: std::time::Instant::now(),
                calls_total: AtomicU64::new(0),
            }),
        }
    }

    /// The store, if any.
    pub fn store(&self) -> Option<&Store> {
        self.shared.store.as_ref()
    }

    fn notice_sink(&self) -> NoticeSink {
        let weak = Arc::downgrade(&self.shared);
        Arc::new(move |_id: &str, notice: ProviderNotice| {
            if let (ProviderNotice::ListingChanged, Some(shared)) = (notice, weak.upgrade()) {
                Engine { shared }.rebuild_catalog();
            }
        })
    }

    fn providers(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Provider>>> {
        self.shared
            .providers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn providers_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Provider>>> {
        self.shared
            .providers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rebuilds the catalog from every provider's listing and tells sessions.
    fn rebuild_catalog(&self) {
        let providers: Vec<Arc<Provider>> = self.providers().values().cloned().collect();
        let listings: Vec<(String, Option<Arc<hangar_mcp::ProviderListing>>)> = providers
            .iter()
            .map(|p| (p.id().to_owned(), p.listing()))
            .collect();
        let catalog = Catalog::build(
            listings.iter().map(|(id, l)| (id.as_str(), l.as_deref())),
            &self.shared.separator,
        );
        for c in catalog.tool_collisions() {
            tracing::warn!(exposed = %c.exposed, tools = ?c.tools, "tool name collision; names disambiguated");
        }
        for c in catalog.resource_collisions() {
            tracing::warn!(uri = %c.uri, providers = ?c.providers, "resource served by several providers; the first one wins");
        }
        let old = self.shared.catalog.swap(Arc::new(catalog));
        let new = self.shared.catalog.load();
        if old.tools() != new.tools()
            || old.prompts() != new.prompts()
            || old.resources() != new.resources()
            || old.resource_templates() != new.resource_templates()
        {
            self.shared.changes.send_modify(|g| *g += 1);
        }
    }

    /// Adds a provider. API-created ones are persisted first.
    pub async fn add_provider(
        &self,
        id: &str,
        spec: ProviderSpec,
        source: ProviderSource,
    ) -> Result<(), RuntimeError> {
        validate_provider_id(id)?;
        spec.validate(id)?;
        if self.providers().contains_key(id) {
            return Err(RuntimeError::AlreadyExists(id.to_owned()));
        }
        if source == ProviderSource::Api
            && let Some(store) = &self.shared.store
        {
            store.put_provider(id, &spec).await?;
        }
        let provider = Provider::new(
            id,
            spec,
            source,
            self.shared.log_capacity,
            self.shared.epoch,
            self.notice_sink(),
        );
        {
            let mut map = self.providers_mut();
            if map.contains_key(id) {
                return Err(RuntimeError::AlreadyExists(id.to_owned()));
            }
            map.insert(id.to_owned(), provider);
        }
        self.rebuild_catalog();
        Ok(())
    }

    /// Stops and removes a provider (and its stored definition).
    pub async fn remove_provider(&self, id: &str) -> Result<(), RuntimeError> {
        let provider = self
            .providers_mut()
            .remove(id)
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))?;
        if provider.source() == ProviderSource::Api
            && let Some(store) = &self.shared.store
        {
            store.delete_provider(id).await?;
        }
        provider.shutdown().await;
        self.rebuild_catalog();
        Ok(())
    }

    /// Loads the providers persisted in the store.
    pub async fn load_stored(&self) -> Result<usize, RuntimeError> {
        let Some(store) = self.shared.store.clone() else {
            return Ok(0);
        };
        let stored = store.providers().await?;
        let mut n = 0;
        for (id, spec) in stored {
            if self.providers().contains_key(&id) {
                tracing::warn!(provider = %id, "stored provider shadowed by the config file");
                continue;
            }
            match self.add_provider(&id, spec, ProviderSource::Api).await {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(provider = %id, error = %e, "skipping stored provider"),
            }
        }
        Ok(n)
    }

    /// One provider.
    pub fn provider(&self, id: &str) -> Result<Arc<Provider>, RuntimeError> {
        self.providers()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))
    }

    /// Status of every provider, by id.
    pub fn statuses(&self) -> Vec<ProviderStatus> {
        self.providers().values().map(|p| p.status()).collect()
    }

    /// The current catalog.
    pub fn catalog_snapshot(&self) -> Arc<Catalog> {
        self.shared.catalog.load_full()
    }

    /// Tool calls forwarded since start.
    pub fn calls_total(&self) -> u64 {
        self.shared.calls_total.load(Ordering::Relaxed)
    }

    /// Seconds since the engine was created.
    pub fn uptime_seconds(&self) -> f64 {
        self.shared.started_wall.elapsed().as_secs_f64()
    }

    /// Stops every provider; no provider process is left behind.
    pub async fn shutdown(&self) {
        let providers: Vec<Arc<Provider>> = self.providers().values().cloned().collect();
        futures::future::join_all(providers.iter().map(|p| p.shutdown())).await;
    }
}

impl Backend for Engine {
    fn catalog(&self) -> Arc<Catalog> {
        self.shared.catalog.load_full()
    }

    async fn ensure_listed(&self) {
        let catalog = self.catalog();
        let pending: Vec<Arc<Provider>> = catalog
            .unlisted()
            .iter()
            .filter_map(|id| self.providers().get(id).cloned())
            // A provider that failed to start is left to its restart backoff
            // rather than retried on every list.
            .filter(|p| p.state() == hangar_core::ProviderState::Cold)
            .collect();
        let starts = pending.iter().map(|p| async move {
            if let Err(e) = p.start().await {
                tracing::warn!(provider = %p.id(), error = %e, "provider could not be listed");
            }
        });
        futures::future::join_all(starts).await;
    }

    async fn acquire(&self, provider: &str, tried: &[String]) -> Result<Lease, BackendError> {
        if !tried.is_empty() {
            return Err(BackendError::Unavailable {
                provider: provider.to_owned(),
                message: "the request could not be delivered".into(),
            });
        }
        let p = self
            .providers()
            .get(provider)
            .cloned()
            .ok_or_else(|| BackendError::UnknownProvider(provider.to_owned()))?;
        p.acquire().await
    }

    fn report(&self, report: CallReport<'_>) {
        self.shared.calls_total.fetch_add(1, Ordering::Relaxed);
        let failure = report
            .error
            .filter(|e| e.is_provider_failure())
            .map(ToString::to_string);
        if let Some(p) = self.providers().get(&report.lease.target) {
            p.record_call(failure.as_deref());
        }
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }
}
