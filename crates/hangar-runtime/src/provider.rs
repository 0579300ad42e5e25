//! One supervisor per provider: lazy single-flight start, health checks, idle
//! shutdown, restart with backoff, all driven through the core state machine.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use hangar_core::{
    ErrorOrigin, ProviderEvent, ProviderMode, ProviderSpec, ProviderState, ProviderStateMachine,
    Timestamp, Transition,
};
use hangar_mcp::{BackendError, EventSink, Lease, ProviderListing, Upstream, UpstreamEvent};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::container::{Container, DockerEngine};
use crate::error::RuntimeError;
use crate::logs::{LogLine, LogRing};
use crate::process::{self, ChildProcess};
use crate::secrets::EnvResolver;

/// Grace period between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
const HEALTH_HISTORY: usize = 20;
const TICK: Duration = Duration::from_millis(500);

/// Where a provider's definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderSource {
    /// The YAML config file.
    Config,
    /// Created over the REST API (persisted in the store).
    Api,
}

/// What a provider tells the engine.
#[derive(Debug, Clone)]
pub enum ProviderNotice {
    /// Its tools/resources/prompts were (re)fetched.
    ListingChanged,
    /// Its state changed.
    StateChanged(Transition),
    /// It became ready `took` after its start began.
    Ready {
        /// Spawn or connect, handshake and listing.
        took: Duration,
    },
    /// A health check finished.
    HealthChecked {
        /// Whether it passed.
        ok: bool,
    },
    /// It said resource `0` changed (`notifications/resources/updated`).
    ResourceUpdated(String),
}

pub(crate) type NoticeSink = Arc<dyn Fn(&str, ProviderNotice) + Send + Sync>;

/// One health check result.
#[derive(Debug, Clone, Serialize)]
pub struct HealthRecord {
    /// RFC 3339 time of the check.
    pub timestamp: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it took.
    pub latency_ms: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A point-in-time view of one provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderStatus {
    /// Provider id.
    pub provider: String,
    /// Lifecycle state.
    pub state: ProviderState,
    /// subprocess, docker or remote.
    pub mode: ProviderMode,
    /// True while a connection is up.
    pub alive: bool,
    /// Tools known from the last listing.
    pub tools_count: usize,
    /// healthy, degraded, unhealthy or unknown.
    pub health_status: &'static str,
    /// False: tools always come from the provider itself.
    pub tools_predefined: bool,
    /// Free text from the spec.
    pub description: Option<String>,
    /// Process id while running.
    pub pid: Option<i32>,
    /// Calls in flight.
    pub in_flight: usize,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Restarts so far.
    pub restart_count: u64,
    /// The cause of the last failure.
    pub last_error: Option<String>,
    /// Config file or API.
    pub source: ProviderSource,
}

struct Live {
    upstream: Arc<Upstream>,
    runner: Runner,
    generation: u64,
    /// Held while the process runs (`server.max_running_providers`).
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The stdio a local provider speaks MCP over: what it writes, what it reads.
type StdioPair = (
    std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
);

/// What runs a provider, and what stopping it ends.
enum Runner {
    /// A child process (subprocess mode).
    Process(ChildProcess),
    /// A container (docker mode).
    Container(Container),
    /// Nothing local: a remote endpoint; the token ends the link.
    Remote(CancellationToken),
}

impl Runner {
    /// Waits until it ends by itself; why.
    async fn wait(&self) -> String {
        match self {
            Self::Process(child) => child.wait().await.description,
            Self::Container(container) => container.wait().await.description,
            Self::Remote(link) => {
                link.cancelled().await;
                "connection closed".to_owned()
            }
        }
    }

    /// Stops it for good (process group killed, container removed).
    async fn terminate(&self) {
        match self {
            Self::Process(child) => {
                child.terminate(STOP_GRACE).await;
            }
            Self::Container(container) => container.terminate().await,
            Self::Remote(link) => link.cancel(),
        }
    }

    fn pid(&self) -> Option<i32> {
        match self {
            Self::Process(child) => Some(child.pid),
            Self::Container(_) | Self::Remote(_) => None,
        }
    }
}

/// What every provider's start shares with the engine: the env resolver
/// (secrets), the cap on running providers, the Docker engine.
#[derive(Clone)]
pub(crate) struct StartContext {
    pub(crate) env_resolver: Arc<ArcSwapOption<EnvResolver>>,
    /// One permit per running provider; none: no cap.
    pub(crate) slots: Option<Arc<tokio::sync::Semaphore>>,
    /// The cap, for messages.
    pub(crate) max_running: usize,
    /// Where running process groups are recorded (swept at the next start
    /// if the server is killed).
    pub(crate) ledger: Option<crate::store::Store>,
    /// The Docker engine of docker providers.
    pub(crate) docker: Arc<DockerEngine>,
}

impl Live {
    /// Closes the MCP session and stops what runs the provider.
    async fn shut_down(&self) {
        self.upstream.close().await;
        self.runner.terminate().await;
    }
}

/// Milliseconds since `epoch`, as the core's [`Timestamp`].
pub(crate) fn millis_since(epoch: Instant) -> Timestamp {
    Timestamp(u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// The supervisor of one provider.
pub struct Provider {
    id: String,
    source: ProviderSource,
    spec: std::sync::RwLock<Arc<ProviderSpec>>,
    machine: Mutex<ProviderStateMachine>,
    live: ArcSwapOption<Live>,
    listing: ArcSwapOption<ProviderListing>,
    logs: Arc<Mutex<LogRing>>,
    lifecycle: tokio::sync::Mutex<()>,
    in_flight: Arc<AtomicUsize>,
    last_used_ms: Arc<AtomicU64>,
    last_check_ms: AtomicU64,
    health: Mutex<VecDeque<HealthRecord>>,
    generation: AtomicU64,
    epoch: Instant,
    notices: NoticeSink,
    shutdown: CancellationToken,
    /// Resolves `${secret:...}` in the env at each start (shared with the engine).
    start: StartContext,
}

impl Provider {
    pub(crate) fn new(
        id: &str,
        spec: ProviderSpec,
        source: ProviderSource,
        log_limits: crate::logs::LogLimits,
        epoch: Instant,
        notices: NoticeSink,
        start: StartContext,
    ) -> Arc<Self> {
        let machine = ProviderStateMachine::new(spec.failure_policy());
        let p = Arc::new(Self {
            id: id.to_owned(),
            source,
            spec: std::sync::RwLock::new(Arc::new(spec)),
            machine: Mutex::new(machine),
            live: ArcSwapOption::empty(),
            listing: ArcSwapOption::empty(),
            logs: Arc::new(Mutex::new(LogRing::new(id, log_limits))),
            lifecycle: tokio::sync::Mutex::new(()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            last_used_ms: Arc::new(AtomicU64::new(0)),
            last_check_ms: AtomicU64::new(0),
            health: Mutex::new(VecDeque::new()),
            generation: AtomicU64::new(0),
            epoch,
            notices,
            shutdown: CancellationToken::new(),
            start,
        });
        let weak = Arc::downgrade(&p);
        let shutdown = p.shutdown.clone();
        tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let Some(p) = weak.upgrade() else { break };
                    p.supervise().await;
                }
            }
            .instrument(tracing::debug_span!("supervisor", provider = %id)),
        );
        p
    }

    /// Provider id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where its definition came from.
    pub fn source(&self) -> ProviderSource {
        self.source
    }

    /// The current spec.
    pub fn spec(&self) -> Arc<ProviderSpec> {
        self.spec
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether calls may be routed here (not removed). A dead provider counts:
    /// a call starts it again, and a group's circuit breaker limits retries.
    pub fn is_available(&self) -> bool {
        !self.shutdown.is_cancelled()
    }

    /// Calls in flight, for `least_connections`.
    pub(crate) fn in_flight_u32(&self) -> u32 {
        u32::try_from(self.in_flight.load(Ordering::Relaxed)).unwrap_or(u32::MAX)
    }

    /// Current lifecycle state.
    pub fn state(&self) -> ProviderState {
        crate::lock(&self.machine).state()
    }

    /// The last listing (kept while the provider is cold).
    pub fn listing(&self) -> Option<Arc<ProviderListing>> {
        self.listing.load_full()
    }

    /// The last `n` stderr lines.
    pub fn logs(&self, n: usize) -> Vec<LogLine> {
        crate::lock(&self.logs).tail(n)
    }

    /// The last `n` stderr lines, and every later line as it is read.
    pub fn follow_logs(
        &self,
        n: usize,
    ) -> (Vec<LogLine>, tokio::sync::broadcast::Receiver<LogLine>) {
        crate::lock(&self.logs).follow(n)
    }

    /// Lines dropped over the log budget since start.
    pub fn logs_dropped(&self) -> u64 {
        crate::lock(&self.logs).dropped()
    }

    /// Health check history, oldest first.
    pub fn health_history(&self) -> Vec<HealthRecord> {
        crate::lock(&self.health).iter().cloned().collect()
    }

    fn now(&self) -> Timestamp {
        millis_since(self.epoch)
    }

    /// A snapshot for the API.
    pub fn status(&self) -> ProviderStatus {
        let spec = self.spec();
        let m = crate::lock(&self.machine).clone();
        let live = self.live.load();
        let state = m.state();
        ProviderStatus {
            provider: self.id.clone(),
            state,
            mode: spec.mode,
            alive: live.as_ref().is_some_and(|l| !l.upstream.is_closed()),
            tools_count: self.listing.load().as_ref().map_or(0, |l| l.tools.len()),
            health_status: match state {
                ProviderState::Ready => "healthy",
                ProviderState::Degraded => "degraded",
                ProviderState::Dead => "unhealthy",
                ProviderState::Cold | ProviderState::Initializing => "unknown",
            },
            tools_predefined: false,
            description: spec.description.clone(),
            pid: live.as_ref().and_then(|l| l.runner.pid()),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            consecutive_failures: m.consecutive_failures(),
            restart_count: m.restart_count(),
            last_error: m.last_cause().map(str::to_owned),
            source: self.source,
        }
    }

    fn apply(&self, event: ProviderEvent) -> Option<Transition> {
        let now = self.now();
        let result = crate::lock(&self.machine).apply(event, now);
        match result {
            Ok(Some(t)) => {
                tracing::info!(provider = %self.id, from = %t.from, to = %t.to, reason = %t.reason, "provider state changed");
                (self.notices)(&self.id, ProviderNotice::StateChanged(t.clone()));
                Some(t)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(provider = %self.id, error = %e, "ignored invalid provider transition");
                None
            }
        }
    }

    fn lease(&self, live: &Live) -> Lease {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Lease {
            upstream: live.upstream.clone(),
            call_timeout: Duration::from_secs(self.spec().call_timeout_s),
            target: self.id.clone(),
            retryable: false,
            guard: Box::new(LeaseGuard {
                in_flight: self.in_flight.clone(),
                last_used_ms: self.last_used_ms.clone(),
                epoch: self.epoch,
            }),
        }
    }

    fn touch(&self) {
        self.last_used_ms.store(self.now().0, Ordering::Relaxed);
    }

    /// A ready connection, starting the provider if needed. Concurrent callers
    /// share one start.
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease, BackendError> {
        if let Some(live) = self.live.load().as_ref()
            && !live.upstream.is_closed()
        {
            return Ok(self.lease(live));
        }
        self.ensure_started(ProviderEvent::StartRequested)
            .await
            .map_err(|e| match e.origin() {
                // A Hangar limit or state, not the provider's failure.
                ErrorOrigin::Hangar | ErrorOrigin::Downstream => match e {
                    RuntimeError::AtCapacity { .. } => BackendError::Overloaded(e.to_string()),
                    other => BackendError::Refused {
                        provider: self.id.clone(),
                        message: other.to_string(),
                    },
                },
                ErrorOrigin::Upstream => BackendError::Unavailable {
                    provider: self.id.clone(),
                    message: e.to_string(),
                },
            })?;
        match self.live.load().as_ref() {
            Some(live) => Ok(self.lease(live)),
            None => Err(BackendError::Unavailable {
                provider: self.id.clone(),
                message: "stopped while starting".into(),
            }),
        }
    }

    /// Starts the provider unless it is already up.
    pub async fn start(self: &Arc<Self>) -> Result<(), RuntimeError> {
        self.ensure_started(ProviderEvent::StartRequested).await
    }

    async fn ensure_started(self: &Arc<Self>, event: ProviderEvent) -> Result<(), RuntimeError> {
        let _guard = self.lifecycle.lock().await;
        if let Some(live) = self.live.load().as_ref()
            && !live.upstream.is_closed()
        {
            return Ok(());
        }
        if self.live.load().is_some() {
            // The connection died but the exit has not been processed yet.
            self.handle_exit_locked(None, "connection closed").await;
        }
        if self.shutdown.is_cancelled() {
            return Err(RuntimeError::Removed(self.id.clone()));
        }
        // A Hangar limit refuses the start before anything moves: the
        // provider stays where it was and nothing counts against it.
        let spec = self.spec();
        let slot = match spec.mode {
            ProviderMode::Subprocess | ProviderMode::Docker => self.local_slot()?,
            ProviderMode::Remote => None,
        };
        self.apply(event);
        let started = Instant::now();
        match self.spawn_and_connect(&spec, slot).await {
            Ok(live) => {
                self.listing.store(Some(Arc::new(live.1)));
                self.touch();
                self.live.store(Some(live.0.clone()));
                self.apply(ProviderEvent::Initialized);
                let took = started.elapsed();
                tracing::info!(provider = %self.id, elapsed_ms = took.as_millis() as u64, "provider ready");
                (self.notices)(&self.id, ProviderNotice::Ready { took });
                (self.notices)(&self.id, ProviderNotice::ListingChanged);
                self.watch_exit(live.0);
                Ok(())
            }
            Err(e) => {
                crate::lock(&self.logs).push_note(&format!("[hangar] start failed: {e}"));
                self.apply(ProviderEvent::StartFailed {
                    cause: e.to_string(),
                });
                Err(e)
            }
        }
    }

    async fn spawn_and_connect(
        self: &Arc<Self>,
        spec: &ProviderSpec,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<(Arc<Live>, ProviderListing), RuntimeError> {
        match spec.mode {
            ProviderMode::Subprocess | ProviderMode::Docker => self.run_local(spec, slot).await,
            ProviderMode::Remote => self.connect_remote(spec).await,
        }
    }

    /// One of `server.max_running_providers` slots (none when unlimited).
    fn local_slot(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, RuntimeError> {
        let Some(slots) = &self.start.slots else {
            return Ok(None);
        };
        slots
            .clone()
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| RuntimeError::AtCapacity {
                provider: self.id.clone(),
                limit: self.start.max_running,
            })
    }

    /// `map` with its `${secret:...}` references resolved for this provider's
    /// scope (as written when no resolver is set). The result lives only
    /// until it is handed over, and is never logged.
    fn resolve(
        &self,
        spec: &ProviderSpec,
        map: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        match self.start.env_resolver.load().as_deref() {
            Some(r) => r
                .resolve(&self.id, spec.scope.as_deref(), map)
                .map_err(|e| RuntimeError::Spawn {
                    provider: self.id.clone(),
                    message: e.to_string(),
                }),
            None => Ok(map.clone()),
        }
    }

    /// Subprocess and docker providers: something runs locally, holding one
    /// of `server.max_running_providers` slots, and speaks MCP over stdio.
    async fn run_local(
        self: &Arc<Self>,
        spec: &ProviderSpec,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<(Arc<Live>, ProviderListing), RuntimeError> {
        // The spec keeps the `${secret:...}` references; the resolved env
        // lives only until the process or container is created.
        let mut env = self.resolve(spec, &spec.env)?;
        let started = if spec.mode == ProviderMode::Docker {
            self.start
                .docker
                .start(&self.id, spec, &env, self.logs.clone())
                .await
                .map(|(c, pipes)| (Runner::Container(c), (pipes.stdout, pipes.stdin)))
        } else {
            process::spawn(
                &self.id,
                &spec.command,
                &env,
                spec.cwd.as_deref(),
                self.logs.clone(),
                self.start.ledger.clone(),
            )
            .await
            .map(|(child, pipes)| {
                let io: StdioPair = (Box::pin(pipes.stdout), Box::pin(pipes.stdin));
                (Runner::Process(child), io)
            })
        };
        crate::secrets::wipe(&mut env);
        let (runner, io) = started?;
        let (stdout, stdin) = io;
        self.handshake(spec, runner, slot, |events| {
            Upstream::connect_stdio(&self.id, stdout, stdin, events)
        })
        .await
    }

    /// Remote providers: an HTTP client with the spec's headers (secrets
    /// resolved), never the caller's.
    async fn connect_remote(
        self: &Arc<Self>,
        spec: &ProviderSpec,
    ) -> Result<(Arc<Live>, ProviderListing), RuntimeError> {
        let mut headers = self.resolve(spec, &spec.headers)?;
        let transport = hangar_mcp::remote::transport(&hangar_mcp::remote::RemoteOptions {
            provider: &self.id,
            endpoint: spec.endpoint.as_deref().unwrap_or_default(),
            headers: &headers,
            connect_timeout: Duration::from_secs(
                spec.connect_timeout_s
                    .unwrap_or(hangar_core::spec::DEFAULT_CONNECT_TIMEOUT_S),
            ),
            allow_link_local: spec.allow_link_local,
        });
        crate::secrets::wipe(&mut headers);
        let transport = transport.map_err(RuntimeError::Upstream)?;
        let link = CancellationToken::new();
        self.handshake(spec, Runner::Remote(link), None, |events| {
            Upstream::connect(&self.id, transport, events)
        })
        .await
    }

    /// The MCP handshake and first listing over what `connect` opens, within
    /// `startup_timeout_s`; what runs the provider is stopped on failure (or
    /// when it ends during the handshake).
    async fn handshake<F, Fut>(
        self: &Arc<Self>,
        spec: &ProviderSpec,
        runner: Runner,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        connect: F,
    ) -> Result<(Arc<Live>, ProviderListing), RuntimeError>
    where
        F: FnOnce(EventSink) -> Fut,
        Fut: std::future::Future<Output = Result<Upstream, hangar_mcp::UpstreamError>>,
    {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let events = self.event_sink();
        let timeout = Duration::from_secs(spec.startup_timeout_s);
        let connect = async {
            let upstream = connect(events).await?;
            let listing = upstream.fetch_listing().await?;
            Ok::<_, hangar_mcp::UpstreamError>((upstream, listing))
        };
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, connect) => match r {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(RuntimeError::Upstream(e)),
                Err(_) => Err(RuntimeError::StartTimeout { provider: self.id.clone(), after: timeout }),
            },
            cause = runner.wait() => Err(RuntimeError::Spawn {
                provider: self.id.clone(),
                message: format!("{cause} during startup"),
            }),
        };
        match result {
            Ok((upstream, listing)) => Ok((
                Arc::new(Live {
                    upstream: Arc::new(upstream),
                    runner,
                    generation,
                    _slot: slot,
                }),
                listing,
            )),
            Err(e) => {
                runner.terminate().await;
                Err(e)
            }
        }
    }

    fn event_sink(self: &Arc<Self>) -> EventSink {
        let weak = Arc::downgrade(self);
        Arc::new(move |event| {
            let Some(p) = weak.upgrade() else { return };
            match event {
                UpstreamEvent::ListChanged => {
                    tokio::spawn(async move { p.refresh_listing().await });
                }
                UpstreamEvent::ResourceUpdated(uri) => {
                    (p.notices)(&p.id, ProviderNotice::ResourceUpdated(uri));
                }
            }
        })
    }

    /// Cancels its calls in flight (all, or the one whose client request id
    /// is `request_id`); the provider keeps running. The ids aborted.
    pub fn abort(&self, request_id: Option<&str>) -> Vec<String> {
        self.live
            .load_full()
            .map(|live| live.upstream.abort(request_id))
            .unwrap_or_default()
    }

    /// Re-fetches the listing after the provider announced a change.
    async fn refresh_listing(&self) {
        let Some(live) = self.live.load_full() else {
            return;
        };
        match live.upstream.fetch_listing().await {
            Ok(l) => {
                self.listing.store(Some(Arc::new(l)));
                (self.notices)(&self.id, ProviderNotice::ListingChanged);
            }
            Err(e) => tracing::warn!(provider = %self.id, error = %e, "could not refresh listing"),
        }
    }

    fn watch_exit(self: &Arc<Self>, live: Arc<Live>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let cause = live.runner.wait().await;
            let generation = live.generation;
            drop(live);
            if let Some(p) = weak.upgrade() {
                let _guard = p.lifecycle.lock().await;
                p.handle_exit_locked(Some(generation), &cause).await;
            }
        });
    }

    /// Processes the end of the current connection (lifecycle lock held).
    async fn handle_exit_locked(&self, generation: Option<u64>, cause: &str) {
        let Some(live) = self.live.load_full() else {
            return;
        };
        if generation.is_some_and(|g| g != live.generation) {
            return;
        }
        self.live.store(None);
        live.shut_down().await;
        // The state machine words the transition ("crashed: <cause>").
        self.apply(ProviderEvent::Exited {
            cause: cause.to_owned(),
        });
    }

    /// Stops the provider (SIGTERM to its group, SIGKILL after a grace
    /// period). Returns the state it was in.
    pub async fn stop(&self, idle: bool) -> ProviderState {
        let _guard = self.lifecycle.lock().await;
        self.stop_locked(idle).await
    }

    async fn stop_locked(&self, idle: bool) -> ProviderState {
        let before = self.state();
        if let Some(live) = self.live.swap(None) {
            live.shut_down().await;
        }
        let event = if idle {
            ProviderEvent::IdleExpired
        } else {
            ProviderEvent::StopRequested
        };
        self.apply(event);
        before
    }

    /// Stops the provider and starts it again, e.g. so that it gets the
    /// current secret values.
    pub async fn restart(self: &Arc<Self>) -> Result<(), RuntimeError> {
        self.stop(false).await;
        self.start().await
    }

    /// Replaces the spec. What runs (command, env, image...) changes at the
    /// next start; the failure thresholds apply at once.
    pub fn set_spec(&self, spec: ProviderSpec) {
        crate::lock(&self.machine).set_policy(spec.failure_policy());
        *self
            .spec
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(spec);
    }

    /// Stops the provider for good (it is being removed or Hangar shuts down).
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let _guard = self.lifecycle.lock().await;
        self.stop_locked(false).await;
    }

    /// Records the outcome of a forwarded call.
    pub fn record_call(&self, provider_failure: Option<&str>) {
        match provider_failure {
            Some(cause) => {
                let t = self.apply(ProviderEvent::CheckFailed {
                    cause: cause.to_owned(),
                });
                if t.is_some_and(|t| t.to == ProviderState::Dead)
                    && let Some(live) = self.live.swap(None)
                {
                    // Declared dead by its calls: stop it; backoff restarts
                    // it (a remote link would otherwise stay up, dead).
                    tokio::spawn(async move { live.shut_down().await });
                }
            }
            None => {
                if self.state() == ProviderState::Degraded {
                    self.apply(ProviderEvent::CheckSucceeded);
                }
            }
        }
    }

    /// One supervisor tick: idle shutdown, health check, restart backoff.
    async fn supervise(self: &Arc<Self>) {
        let spec = self.spec();
        let now = self.now();
        let state = self.state();
        match state {
            ProviderState::Ready | ProviderState::Degraded => {
                let idle_for = now
                    .0
                    .saturating_sub(self.last_used_ms.load(Ordering::Relaxed));
                if spec.idle_ttl_s > 0
                    && self.in_flight.load(Ordering::Acquire) == 0
                    && idle_for >= spec.idle_ttl_s.saturating_mul(1000)
                {
                    let _guard = self.lifecycle.lock().await;
                    // Re-check under the lock: a call may have started meanwhile.
                    let idle_for = self
                        .now()
                        .0
                        .saturating_sub(self.last_used_ms.load(Ordering::Relaxed));
                    if self.in_flight.load(Ordering::Acquire) == 0
                        && idle_for >= spec.idle_ttl_s.saturating_mul(1000)
                        && self.state().is_running()
                    {
                        tracing::info!(provider = %self.id, idle_s = idle_for / 1000, "stopping idle provider");
                        self.stop_locked(true).await;
                    }
                    return;
                }
                let interval_ms = spec.health_check_interval_s.saturating_mul(1000);
                if interval_ms > 0
                    && now
                        .0
                        .saturating_sub(self.last_check_ms.load(Ordering::Relaxed))
                        >= interval_ms
                {
                    self.last_check_ms.store(now.0, Ordering::Relaxed);
                    self.health_check().await;
                }
            }
            ProviderState::Dead => {
                let due = crate::lock(&self.machine).next_restart_at();
                if due.is_some_and(|at| now >= at)
                    && let Err(e) = self.ensure_started(ProviderEvent::BackoffElapsed).await
                {
                    tracing::warn!(provider = %self.id, error = %e, "restart failed");
                }
            }
            ProviderState::Cold | ProviderState::Initializing => {}
        }
    }

    /// Runs one health check now.
    pub async fn health_check(self: &Arc<Self>) -> Option<HealthRecord> {
        let live = self.live.load_full()?;
        let started = Instant::now();
        let result = live.upstream.health_check(Duration::from_secs(10)).await;
        let record = HealthRecord {
            timestamp: crate::now_rfc3339(),
            ok: result.is_ok(),
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            error: result.as_ref().err().map(ToString::to_string),
        };
        {
            let mut h = crate::lock(&self.health);
            if h.len() == HEALTH_HISTORY {
                h.pop_front();
            }
            h.push_back(record.clone());
        }
        (self.notices)(&self.id, ProviderNotice::HealthChecked { ok: record.ok });
        match result {
            Ok(()) => {
                self.apply(ProviderEvent::CheckSucceeded);
            }
            Err(e) => {
                let t = self.apply(ProviderEvent::CheckFailed {
                    cause: e.to_string(),
                });
                if t.is_some_and(|t| t.to == ProviderState::Dead) {
                    // Declared dead by health checks: kill it; backoff restarts it.
                    let _guard = self.lifecycle.lock().await;
                    if let Some(live) = self.live.swap(None) {
                        live.shut_down().await;
                    }
                }
            }
        }
        Some(record)
    }
}

struct LeaseGuard {
    in_flight: Arc<AtomicUsize>,
    last_used_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.last_used_ms
            .store(millis_since(self.epoch).0, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
