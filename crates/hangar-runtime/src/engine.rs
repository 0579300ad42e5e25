//! The engine: the set of providers, the aggregated catalog, and the
//! [`Backend`] the MCP server handler routes through.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use hangar_core::{CallOutcome, DEFAULT_SEPARATOR, GroupSpec, ProviderSpec, validate_provider_id};
use hangar_mcp::{Backend, BackendError, CallReport, Catalog, Lease};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::RuntimeError;
use crate::events::EventBus;
use crate::group::{Group, GroupStatus, GroupTicket};
use crate::provider::{NoticeSink, Provider, ProviderNotice, ProviderSource, ProviderStatus};
use crate::store::Store;

mod gate;
pub use gate::Replier;
mod observe;
pub use observe::SessionCounter;
mod reconcile;
pub use reconcile::{ReconcileReport, ReconcileSet};

/// Event type of one finished tool call (the invocation history).
pub const TOOL_INVOCATION: &str = "ToolInvocationCompleted";

/// How to build an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Separator between provider and tool in exposed names.
    pub tool_separator: String,
    /// How exposed names are formed (`server.tool_naming`).
    pub tool_naming: hangar_core::naming::NamingMode,
    /// Elicitations for clients that can't answer them become operator
    /// questions (`server.operator_questions`).
    pub operator_questions: bool,
    /// Stderr lines kept per provider.
    pub log_capacity: usize,
    /// Stderr lines per second kept per provider (the rest are counted and dropped).
    pub log_lines_per_s: u32,
    /// Where providers created over the API are persisted (none: in memory only).
    pub store: Option<Store>,
    /// Where domain events go (none: an in-memory bus).
    pub events: Option<EventBus>,
    /// Record every tool call in the invocation history (`ToolInvocationCompleted`).
    pub record_tool_history: bool,
    /// At most this many provider processes run at once (0: no cap); a start
    /// beyond it fails with [`RuntimeError::AtCapacity`].
    pub max_running_providers: usize,
    /// How long a call held by an `ask` policy (or a provider's question) waits.
    pub approval_timeout: std::time::Duration,
    /// This server instance (one per data directory, see
    /// [`Store::instance_id`]): labels its containers, so a restart finds
    /// the ones an earlier run left.
    pub instance_id: String,
    /// Minutes of metric samples kept for charts.
    pub metrics_history_minutes: u32,
    /// When alerts fire and where they are sent.
    pub alerts: crate::alerts::AlertSettings,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            tool_separator: DEFAULT_SEPARATOR.to_owned(),
            tool_naming: hangar_core::naming::NamingMode::Prefixed,
            operator_questions: true,
            log_capacity: hangar_core::config::DEFAULT_MAX_LOG_LINES,
            log_lines_per_s: hangar_core::config::DEFAULT_LOG_LINES_PER_S,
            store: None,
            events: None,
            record_tool_history: true,
            max_running_providers: 0,
            approval_timeout: std::time::Duration::from_secs(
                hangar_core::config::DEFAULT_APPROVAL_TIMEOUT_S,
            ),
            instance_id: format!("mem-{:016x}", rand::random::<u64>()),
            metrics_history_minutes: hangar_core::config::DEFAULT_METRICS_HISTORY_MINUTES,
            alerts: crate::alerts::AlertSettings::default(),
        }
    }
}

struct Shared {
    providers: RwLock<BTreeMap<String, Arc<Provider>>>,
    groups: RwLock<BTreeMap<String, Arc<Group>>>,
    catalog: ArcSwap<Catalog>,
    changes: watch::Sender<u64>,
    separator: String,
    naming: hangar_core::naming::NamingMode,
    operator_questions: bool,
    log_limits: crate::logs::LogLimits,
    store: Option<Store>,
    events: EventBus,
    epoch: Instant,
    started_wall: std::time::Instant,
    calls_total: AtomicU64,
    record_tool_history: bool,
    start: crate::provider::StartContext,
    gate: gate::Gate,
    metrics: Arc<crate::metrics::Metrics>,
    alerts_active: Arc<std::sync::Mutex<crate::alerts::Active>>,
    sessions: ArcSwapOption<SessionCounter>,
    /// Resource URIs clients subscribed to, by provider, with how many
    /// subscriptions each has.
    subscriptions: std::sync::Mutex<BTreeMap<String, BTreeMap<String, usize>>>,
    /// `notifications/resources/updated` of every provider: the URI.
    resource_updates: tokio::sync::broadcast::Sender<Arc<str>>,
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
        let events = config.events.unwrap_or_else(EventBus::in_memory);
        let gate = gate::Gate::new(config.store.clone(), config.approval_timeout, &events);
        let alerts = config.alerts;
        let engine = Self {
            shared: Arc::new(Shared {
                providers: RwLock::new(BTreeMap::new()),
                groups: RwLock::new(BTreeMap::new()),
                catalog: ArcSwap::from_pointee(Catalog::default()),
                changes,
                separator: config.tool_separator,
                naming: config.tool_naming,
                operator_questions: config.operator_questions,
                log_limits: crate::logs::LogLimits {
                    capacity: config.log_capacity,
                    lines_per_s: config.log_lines_per_s,
                },
                store: config.store.clone(),
                events,
                epoch: Instant::now(),
                started_wall: std::time::Instant::now(),
                calls_total: AtomicU64::new(0),
                record_tool_history: config.record_tool_history,
                start: crate::provider::StartContext {
                    env_resolver: Arc::new(ArcSwapOption::empty()),
                    slots: (config.max_running_providers > 0).then(|| {
                        Arc::new(tokio::sync::Semaphore::new(config.max_running_providers))
                    }),
                    max_running: config.max_running_providers,
                    ledger: config.store.clone(),
                    docker: Arc::new(crate::container::DockerEngine::new(config.instance_id)),
                },
                gate,
                metrics: Arc::new(crate::metrics::Metrics::new(config.metrics_history_minutes)),
                alerts_active: Arc::default(),
                sessions: ArcSwapOption::empty(),
                subscriptions: std::sync::Mutex::default(),
                resource_updates: tokio::sync::broadcast::channel(256).0,
            }),
        };
        engine.start_observers(alerts);
        engine
    }

    /// The domain event bus.
    pub fn events(&self) -> &EventBus {
        &self.shared.events
    }

    /// Sets (or clears) how every provider's env is resolved at start (e.g.
    /// `${secret:NAME}`, see [`crate::secrets`]); applies from each
    /// provider's next start. Without one, env values are passed as written.
    pub fn set_env_resolver(&self, resolver: Option<crate::secrets::EnvResolver>) {
        self.shared.start.env_resolver.store(resolver.map(Arc::new));
    }

    /// The store, if any.
    pub fn store(&self) -> Option<&Store> {
        self.shared.store.as_ref()
    }

    /// Kills the provider processes and removes the containers an earlier
    /// run of this server (same data directory) left behind when it was
    /// killed without stopping them: process groups were recorded at spawn,
    /// containers carry this instance's label. Returns how many processes
    /// and containers went. Call before any provider starts.
    pub async fn sweep_strays(&self) -> Result<usize, RuntimeError> {
        let mut killed = self.shared.start.docker.sweep_strays().await;
        let Some(store) = &self.shared.store else {
            return Ok(killed);
        };
        for (provider, record) in store.process_groups().await? {
            let n = crate::process::sweep_group(record);
            if n > 0 {
                tracing::warn!(provider = %provider, pgid = record.pgid, processes = n, "killed provider processes left by an earlier run");
            }
            killed += n;
            store.forget_process_group(record.pgid).await?;
        }
        Ok(killed)
    }

    fn notice_sink(&self) -> NoticeSink {
        let weak = Arc::downgrade(&self.shared);
        Arc::new(move |id: &str, notice: ProviderNotice| {
            let Some(shared) = weak.upgrade() else { return };
            match notice {
                ProviderNotice::ListingChanged => Engine { shared }.rebuild_catalog(),
                ProviderNotice::StateChanged(t) => {
                    shared
                        .metrics
                        .transition(id, t.from.as_str(), t.to.as_str());
                    shared.events.emit(
                        format!("provider:{id}"),
                        "ProviderStateChanged",
                        serde_json::json!({
                            "provider_id": id,
                            "from": t.from,
                            "to": t.to,
                            "reason": t.reason,
                        }),
                    );
                }
                ProviderNotice::Ready { took } => {
                    shared.metrics.started(id, took);
                    // A new connection has none of the subscriptions yet.
                    let has = crate::lock(&shared.subscriptions).contains_key(id);
                    if has {
                        let engine = Engine { shared };
                        let id = id.to_owned();
                        tokio::spawn(async move { engine.apply_subscriptions(&id).await });
                    }
                }
                ProviderNotice::ResourceUpdated(uri) => {
                    let _ = shared.resource_updates.send(Arc::from(uri));
                }
                ProviderNotice::HealthChecked { ok } => shared.metrics.health_check(id, ok),
            }
        })
    }

    /// The URIs of the resources providers said changed, as they come (a
    /// slow receiver misses some: it is told it lagged).
    pub fn resource_updates(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.shared.resource_updates.subscribe()
    }

    /// A client subscribes to resource `uri`: the provider that serves it
    /// (or, for a URI no listing names, every listed provider that supports
    /// subscriptions) is subscribed while any client is.
    pub async fn subscribe_resource(&self, uri: &str) -> Result<(), RuntimeError> {
        if !self.catalog_snapshot().unlisted().is_empty() {
            // Who serves it is known once every provider listed.
            hangar_mcp::Backend::ensure_listed(self).await;
        }
        let owners = self.resource_owners(uri);
        let mut changed = Vec::new();
        {
            let mut subs = crate::lock(&self.shared.subscriptions);
            for p in &owners {
                let n = subs
                    .entry(p.clone())
                    .or_default()
                    .entry(uri.to_owned())
                    .or_default();
                *n += 1;
                if *n == 1 {
                    changed.push(p.clone());
                }
            }
        }
        let mut first_error = None;
        for p in changed {
            if let Err(e) = self.apply_subscriptions(&p).await
                && first_error.is_none()
            {
                first_error = Some(e);
            }
        }
        match first_error {
            // Some provider took it: that is a subscription.
            Some(e) if owners.len() == 1 => Err(e),
            _ => Ok(()),
        }
    }

    /// A client's subscription to `uri` ends.
    pub async fn unsubscribe_resource(&self, uri: &str) {
        let mut changed = Vec::new();
        {
            let mut subs = crate::lock(&self.shared.subscriptions);
            for (p, uris) in subs.iter_mut() {
                if let Some(n) = uris.get_mut(uri) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        uris.remove(uri);
                        changed.push(p.clone());
                    }
                }
            }
            subs.retain(|_, uris| !uris.is_empty());
        }
        for p in changed {
            if let Err(e) = self.apply_subscriptions(&p).await {
                tracing::debug!(provider = %p, error = %e, "could not unsubscribe");
            }
        }
    }

    /// Who serves `uri`: its catalog route, else every listed provider.
    fn resource_owners(&self, uri: &str) -> Vec<String> {
        let catalog = self.catalog_snapshot();
        if let Some(p) = catalog.resolve_resource(uri) {
            return vec![p.to_owned()];
        }
        self.providers()
            .values()
            .filter(|p| p.listing().is_some())
            .map(|p| p.id().to_owned())
            .collect()
    }

    /// Brings provider `id`'s subscriptions at the provider in line with
    /// what clients hold (only if it runs and supports them).
    async fn apply_subscriptions(&self, id: &str) -> Result<(), RuntimeError> {
        let Some(p) = self.providers().get(id).cloned() else {
            return Ok(());
        };
        let uris: std::collections::BTreeSet<String> = crate::lock(&self.shared.subscriptions)
            .get(id)
            .map(|u| u.keys().cloned().collect())
            .unwrap_or_default();
        let lease = p.acquire().await.map_err(|e| RuntimeError::Subscription {
            provider: id.to_owned(),
            message: e.to_string(),
        })?;
        let supported = lease.upstream.server_info().is_some_and(|i| {
            i.capabilities
                .resources
                .as_ref()
                .is_some_and(|r| r.subscribe == Some(true))
        });
        if !supported {
            return Err(RuntimeError::Subscription {
                provider: id.to_owned(),
                message: "the provider does not support resource subscriptions".into(),
            });
        }
        lease
            .upstream
            .set_subscriptions(uris, lease.call_timeout)
            .await
            .map_err(|e| RuntimeError::Subscription {
                provider: id.to_owned(),
                message: e.to_string(),
            })
    }

    /// Every provider, by id (a snapshot; no lock held).
    pub fn providers_snapshot(&self) -> Vec<Arc<Provider>> {
        self.providers().values().cloned().collect()
    }

    /// Every group, by id (a snapshot; no lock held).
    pub fn groups_snapshot(&self) -> Vec<Arc<Group>> {
        self.groups().values().cloned().collect()
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

    fn groups(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Group>>> {
        self.shared
            .groups
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn groups_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Group>>> {
        self.shared
            .groups
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The member providers of `group`, in spec order (`None`: missing).
    fn members_of(&self, group: &Group) -> Vec<Option<Arc<Provider>>> {
        let providers = self.providers();
        group
            .spec()
            .members
            .iter()
            .map(|m| providers.get(&m.provider).cloned())
            .collect()
    }

    /// Rebuilds the catalog and tells sessions. A group is listed under its own
    /// id with its first listed member's tools; group members are reached
    /// through their group only, not listed on their own.
    fn rebuild_catalog(&self) {
        let groups: Vec<Arc<Group>> = self.groups().values().cloned().collect();
        let member_ids: std::collections::BTreeSet<String> = groups
            .iter()
            .flat_map(|g| {
                g.spec()
                    .members
                    .iter()
                    .map(|m| m.provider.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        let providers: Vec<Arc<Provider>> = self.providers().values().cloned().collect();
        /// One catalog source: its id, listing, the spec whose naming applies,
        /// and whether that spec's own `prefix:` applies (not for a group).
        struct Source {
            id: String,
            listing: Option<Arc<hangar_mcp::ProviderListing>>,
            spec: Option<Arc<ProviderSpec>>,
            own_prefix: bool,
        }
        let mut sources: Vec<Source> = providers
            .iter()
            .filter(|p| !member_ids.contains(p.id()))
            .map(|p| Source {
                id: p.id().to_owned(),
                listing: p.listing(),
                spec: Some(p.spec()),
                own_prefix: true,
            })
            .collect();
        for g in &groups {
            let members = self.members_of(g);
            // A group's items are its first listed member's, named as that
            // member renames and hides them, under the group's id.
            let (listing, spec) = if members.is_empty() {
                (Some(Arc::new(hangar_mcp::ProviderListing::default())), None)
            } else {
                members
                    .iter()
                    .flatten()
                    .find_map(|p| p.listing().map(|l| (Some(l), Some(p.spec()))))
                    .unwrap_or((None, None))
            };
            sources.push(Source {
                id: g.id().to_owned(),
                listing,
                spec,
                own_prefix: false,
            });
        }
        let catalog = Catalog::build_named(
            sources.iter().map(|s| hangar_mcp::Listed {
                id: &s.id,
                listing: s.listing.as_deref(),
                naming: s
                    .spec
                    .as_deref()
                    .map(|spec| hangar_mcp::ProviderNaming {
                        prefix: if s.own_prefix {
                            spec.prefix.as_deref()
                        } else {
                            None
                        },
                        tools: Some(&spec.tools),
                        prompts: Some(&spec.prompts),
                    })
                    .unwrap_or_default(),
            }),
            self.shared.naming,
            &self.shared.separator,
        );
        let old = self.shared.catalog.swap(Arc::new(catalog));
        let new = self.shared.catalog.load();
        // Report each collision once, when it appears.
        for c in new
            .tool_collisions()
            .iter()
            .filter(|c| !old.tool_collisions().contains(c))
        {
            tracing::warn!(exposed = %c.exposed, tools = ?c.tools, "tool name collision; names disambiguated");
        }
        for c in new
            .prompt_collisions()
            .iter()
            .filter(|c| !old.prompt_collisions().contains(c))
        {
            tracing::warn!(exposed = %c.exposed, prompts = ?c.tools, "prompt name collision; names disambiguated");
        }
        for c in new
            .resource_collisions()
            .iter()
            .filter(|c| !old.resource_collisions().contains(c))
        {
            tracing::warn!(uri = %c.uri, providers = ?c.providers, "resource served by several providers; the first one wins");
        }
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
        if self.providers().contains_key(id) || self.groups().contains_key(id) {
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
            self.shared.log_limits,
            self.shared.epoch,
            self.notice_sink(),
            self.shared.start.clone(),
        );
        {
            let mut map = self.providers_mut();
            if map.contains_key(id) {
                return Err(RuntimeError::AlreadyExists(id.to_owned()));
            }
            map.insert(id.to_owned(), provider);
        }
        self.rebuild_catalog();
        self.refresh_spec_policies();
        Ok(())
    }

    /// Stops and removes a provider (and its stored definition).
    pub async fn remove_provider(&self, id: &str) -> Result<(), RuntimeError> {
        if let Some(g) = self
            .groups()
            .values()
            .find(|g| g.spec().member_index(id).is_some())
        {
            return Err(RuntimeError::InUse {
                id: id.to_owned(),
                why: format!("it is a member of group '{}'", g.id()),
            });
        }
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
        self.refresh_spec_policies();
        Ok(())
    }

    /// Replaces a provider's spec (validated; persisted for API providers).
    /// Returns whether the running process must restart to pick it up: env,
    /// command and the like apply at the next start; idle TTL, health-check
    /// interval, timeouts and description apply at once.
    pub async fn update_provider(
        &self,
        id: &str,
        spec: ProviderSpec,
    ) -> Result<bool, RuntimeError> {
        spec.validate(id)?;
        let provider = self.provider(id)?;
        if provider.source() == ProviderSource::Api
            && let Some(store) = &self.shared.store
        {
            store.put_provider(id, &spec).await?;
        }
        let old = provider.spec();
        let restart_required = provider.state().is_running() && old.runs_differently_from(&spec);
        let renamed =
            old.prefix != spec.prefix || old.tools != spec.tools || old.prompts != spec.prompts;
        provider.set_spec(spec);
        self.refresh_spec_policies();
        if renamed {
            // New names apply at once (clients get list_changed).
            self.rebuild_catalog();
        }
        Ok(restart_required)
    }

    /// Loads the providers persisted in the store.
    pub async fn load_stored(&self) -> Result<usize, RuntimeError> {
        let Some(store) = self.shared.store.clone() else {
            return Ok(0);
        };
        self.shared.gate.policies.load().await?;
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

    /// Adds a group. Its members must exist; API-created groups are persisted first.
    pub async fn add_group(
        &self,
        id: &str,
        spec: GroupSpec,
        source: ProviderSource,
    ) -> Result<(), RuntimeError> {
        spec.validate(id)?;
        if self.providers().contains_key(id) || self.groups().contains_key(id) {
            return Err(RuntimeError::AlreadyExists(id.to_owned()));
        }
        self.check_members(&spec)?;
        if source == ProviderSource::Api
            && let Some(store) = &self.shared.store
        {
            store.put_group(id, &spec).await?;
        }
        let group = Group::new(
            id,
            spec,
            source,
            self.shared.epoch,
            self.shared.events.clone(),
            self.shared.metrics.clone(),
        );
        {
            let mut map = self.groups_mut();
            if map.contains_key(id) {
                return Err(RuntimeError::AlreadyExists(id.to_owned()));
            }
            map.insert(id.to_owned(), group);
        }
        self.rebuild_catalog();
        Ok(())
    }

    fn check_members(&self, spec: &GroupSpec) -> Result<(), RuntimeError> {
        let providers = self.providers();
        for m in &spec.members {
            if !providers.contains_key(&m.provider) {
                return Err(RuntimeError::NotFound(m.provider.clone()));
            }
        }
        Ok(())
    }

    /// Replaces a group's spec (breakers of remaining members are kept) and
    /// persists it (a config-file group becomes API-owned only in memory).
    pub async fn update_group(&self, id: &str, spec: GroupSpec) -> Result<(), RuntimeError> {
        spec.validate(id)?;
        let group = self.group(id)?;
        self.check_members(&spec)?;
        if group.source() == ProviderSource::Api
            && let Some(store) = &self.shared.store
        {
            store.put_group(id, &spec).await?;
        }
        group.set_spec(spec);
        self.rebuild_catalog();
        Ok(())
    }

    /// Removes a group (its member providers stay).
    pub async fn remove_group(&self, id: &str) -> Result<(), RuntimeError> {
        let group = self
            .groups_mut()
            .remove(id)
            .ok_or_else(|| RuntimeError::GroupNotFound(id.to_owned()))?;
        if group.source() == ProviderSource::Api
            && let Some(store) = &self.shared.store
        {
            store.delete_group(id).await?;
        }
        self.rebuild_catalog();
        Ok(())
    }

    /// Loads the groups persisted in the store (after the providers).
    pub async fn load_stored_groups(&self) -> Result<usize, RuntimeError> {
        let Some(store) = self.shared.store.clone() else {
            return Ok(0);
        };
        let mut n = 0;
        for (id, spec) in store.groups().await? {
            if self.groups().contains_key(&id) || self.providers().contains_key(&id) {
                tracing::warn!(group = %id, "stored group shadowed by the config file");
                continue;
            }
            match self.add_group(&id, spec, ProviderSource::Api).await {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(group = %id, error = %e, "skipping stored group"),
            }
        }
        Ok(n)
    }

    /// One group.
    pub fn group(&self, id: &str) -> Result<Arc<Group>, RuntimeError> {
        self.groups()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::GroupNotFound(id.to_owned()))
    }

    /// Status of one group.
    pub fn group_status(&self, id: &str) -> Result<GroupStatus, RuntimeError> {
        let g = self.group(id)?;
        Ok(g.status(&self.members_of(&g)))
    }

    /// Status of every group, by id.
    pub fn group_statuses(&self) -> Vec<GroupStatus> {
        let groups: Vec<Arc<Group>> = self.groups().values().cloned().collect();
        groups
            .iter()
            .map(|g| g.status(&self.members_of(g)))
            .collect()
    }

    async fn acquire_group(
        &self,
        group: Arc<Group>,
        tried: &[String],
    ) -> Result<Lease, BackendError> {
        let members = self.members_of(&group);
        let spec = group.spec();
        let mut exclude: Vec<usize> = spec
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| tried.contains(&m.provider))
            .map(|(i, _)| i)
            .collect();
        let mut last_error = None;
        while let Some(selection) = group.select(&members, &exclude) {
            let index = selection.index;
            let Some(Some(provider)) = members.get(index) else {
                group.record(selection, CallOutcome::CallerError);
                exclude.push(index);
                continue;
            };
            match provider.acquire().await {
                Ok(mut lease) => {
                    let remaining = spec.members.len().saturating_sub(exclude.len() + 1);
                    let inner = std::mem::replace(&mut lease.guard, Box::new(()));
                    lease.retryable = remaining > 0;
                    lease.guard = Box::new(GroupTicket::new(group.clone(), selection, inner));
                    return Ok(lease);
                }
                Err(e) => {
                    // Never reached the member: try the next one; it counts
                    // on the member's breaker only when it was the member's
                    // failure (not a Hangar limit or state).
                    tracing::warn!(group = %group.id(), member = %provider.id(), error = %e, "member unavailable; failing over");
                    let outcome = if e.origin() == hangar_core::ErrorOrigin::Upstream {
                        CallOutcome::MemberFailure
                    } else {
                        CallOutcome::CallerError
                    };
                    group.record(selection, outcome);
                    exclude.push(index);
                    last_error = Some(e.to_string());
                }
            }
        }
        Err(BackendError::Unavailable {
            provider: group.id().to_owned(),
            message: last_error.unwrap_or_else(|| {
                "no healthy member (circuit breakers open or no members)".into()
            }),
        })
    }

    /// One provider.
    pub fn provider(&self, id: &str) -> Result<Arc<Provider>, RuntimeError> {
        self.providers()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))
    }

    /// A provider's tool invocation history: records after store position
    /// `from_position`, oldest first, at most `limit`; and how many it holds.
    pub async fn tool_history(
        &self,
        id: &str,
        from_position: u64,
        limit: usize,
    ) -> Result<(Vec<crate::store::StoredEvent>, u64), RuntimeError> {
        self.provider(id)?;
        let Some(store) = &self.shared.store else {
            return Ok((Vec::new(), 0));
        };
        self.shared.events.flush().await;
        Ok(store
            .events_of(
                &format!("provider:{id}"),
                TOOL_INVOCATION,
                from_position,
                limit,
            )
            .await?)
    }

    /// Deletes the events of `stream_id` covered by its latest snapshot
    /// (after storing every event emitted so far). `None` when the stream has
    /// no snapshot (or there is no store); else the number deleted. The audit
    /// trail is append-only and cannot be compacted.
    pub async fn compact(&self, stream_id: &str) -> Result<Option<u64>, RuntimeError> {
        if crate::events::is_append_only(stream_id) {
            return Err(RuntimeError::AppendOnly(stream_id.to_owned()));
        }
        let Some(store) = &self.shared.store else {
            return Ok(None);
        };
        self.shared.events.flush().await;
        Ok(store.compact(stream_id).await?)
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
        self.shared.events.flush().await;
    }
}

impl Backend for Engine {
    fn catalog(&self) -> Arc<Catalog> {
        self.shared.catalog.load_full()
    }

    async fn ensure_listed(&self) {
        let catalog = self.catalog();
        // Each unlisted entry is a list of candidates tried in order until one
        // lists: the provider itself, or a group's members.
        let pending: Vec<Vec<Arc<Provider>>> = catalog
            .unlisted()
            .iter()
            .map(|id| match self.groups().get(id).cloned() {
                Some(g) => self.members_of(&g).into_iter().flatten().collect(),
                None => self.providers().get(id).cloned().into_iter().collect(),
            })
            .collect();
        let starts = pending.into_iter().map(|candidates| async move {
            // A provider that failed to start is left to its restart backoff
            // rather than retried on every list.
            for p in candidates.iter().filter(|p| p.state() == hangar_core::ProviderState::Cold) {
                match p.start().await {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(provider = %p.id(), error = %e, "provider could not be listed"),
                }
            }
        });
        futures::future::join_all(starts).await;
    }

    async fn acquire(&self, provider: &str, tried: &[String]) -> Result<Lease, BackendError> {
        let group = self.groups().get(provider).cloned();
        if let Some(group) = group {
            return self.acquire_group(group, tried).await;
        }
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
        let outcome = match (report.error, report.tool_error) {
            (Some(_), _) => hangar_mcp::AuditOutcome::Error,
            (None, true) => hangar_mcp::AuditOutcome::ToolError,
            (None, false) => hangar_mcp::AuditOutcome::Success,
        }
        .as_str();
        // Tool calls are counted per tool and kept in the invocation
        // history; reads and prompt gets (whose URIs are unbounded) only
        // reach the health and breaker accounting below.
        let tool_call = report.kind == hangar_core::PolicyKind::Tool;
        if tool_call {
            self.shared.metrics.tool_call(
                &report.lease.target,
                report.tool,
                outcome,
                report.duration,
            );
        }
        if tool_call && self.shared.record_tool_history {
            self.shared.events.emit(
                format!("provider:{}", report.lease.target),
                TOOL_INVOCATION,
                serde_json::json!({
                    "tool": report.tool,
                    "principal": report.principal,
                    "arguments_bytes": report.arguments_bytes,
                    "duration_ms": report.duration.as_secs_f64() * 1000.0,
                    "outcome": outcome,
                    "error": report.error.map(ToString::to_string),
                }),
            );
        }
        let failure = report
            .error
            .filter(|e| e.is_provider_failure())
            .map(ToString::to_string);
        if let Some(p) = self.providers().get(&report.lease.target) {
            p.record_call(failure.as_deref());
        }
        if let Some(ticket) = report.lease.guard.downcast_ref::<GroupTicket>() {
            let outcome = match report.error {
                Some(e) if e.is_provider_failure() => CallOutcome::MemberFailure,
                // The caller's or the tool's own error: not the member's fault.
                Some(_) => CallOutcome::CallerError,
                None if report.tool_error => CallOutcome::CallerError,
                None => CallOutcome::Success,
            };
            ticket.finish(outcome);
        }
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    fn verdict(
        &self,
        kind: hangar_core::PolicyKind,
        caller: Option<&str>,
        roles: &[String],
        provider: &str,
        name: &str,
    ) -> hangar_core::Effect {
        let policies = &self.shared.gate.policies;
        if policies.is_empty() {
            return hangar_core::Effect::Allow;
        }
        // A group's call may reach any member: their policies apply too.
        let spec = self.groups().get(provider).map(|g| g.spec());
        match spec {
            Some(spec) => {
                let mut ids: Vec<&str> = Vec::with_capacity(spec.members.len() + 1);
                ids.push(provider);
                ids.extend(spec.members.iter().map(|m| m.provider.as_str()));
                policies.verdict(kind, caller, roles, &ids, name)
            }
            None => policies.verdict(kind, caller, roles, &[provider], name),
        }
    }

    fn arguments_digest(&self, arguments: Option<&hangar_mcp::rmcp::model::JsonObject>) -> String {
        hangar_mcp::arguments_digest(&self.shared.gate.digest_key()[..], arguments)
    }

    fn request_approval(
        &self,
        call: hangar_mcp::HeldCall,
    ) -> impl std::future::Future<Output = hangar_mcp::Approval> + Send + 'static {
        self.shared.gate.approvals.hold(call)
    }

    fn questioner(&self) -> Option<Arc<dyn hangar_mcp::Questioner>> {
        self.shared
            .operator_questions
            .then(|| self.shared.gate.questioner.clone())
    }

    fn audit(&self, audit: hangar_mcp::CallAudit<'_>) {
        self.shared.gate.audit(&self.shared.events, &audit);
    }

    fn unavailable_cause(&self, provider: &str) -> Option<String> {
        let p = self.providers().get(provider).cloned()?;
        if p.listing().is_some() {
            return None;
        }
        p.status().last_error
    }
}
