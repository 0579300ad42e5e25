//! Running the server: config, data dir, store, engine, keys, HTTP, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hangar_core::HangarConfig;
use hangar_runtime::{Engine, EngineConfig, ProviderSource, Store};
use tokio_util::sync::CancellationToken;

use crate::app::{AppState, OriginPolicy, router};
use crate::auth::{KeyRing, bootstrap_admin_key};

/// Exit code for bad usage or configuration (EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;

/// What the audit's argument-digest key is derived under.
const AUDIT_DIGEST_LABEL: &str = "hangar/audit-digest/v1";

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// YAML config file (none: no providers).
    pub config: Option<PathBuf>,
    /// Directory of config files `POST /api/config/reload` may also name
    /// (`--config-dir`); none: only `config`.
    pub config_dir: Option<PathBuf>,
    /// Holds `hangar.db` and `admin.key`.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Reload when the config file changes (`--watch`).
    pub watch: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            config: None,
            config_dir: None,
            data_dir: PathBuf::from(".hangar"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            watch: false,
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The config file is unreadable or invalid.
    #[error("{0}")]
    Config(String),
    /// The data directory or database failed.
    #[error("data directory {path}: {message}")]
    DataDir {
        /// The data directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why it could not be bound.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

impl ServerError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) => EXIT_CONFIG,
            Self::DataDir { .. } => 73,
            Self::Bind { .. } => 69,
            Self::Serve(_) => 1,
        }
    }
}

/// Loads and validates a config file (a regular file, size-capped).
pub fn load_config(path: &std::path::Path) -> Result<HangarConfig, ServerError> {
    crate::config_api::read_config_file(path).map_err(|e| ServerError::Config(e.to_string()))
}

/// A ready-to-serve Hangar: engine with the config's and the store's
/// providers, keys bootstrapped.
pub async fn build(opts: &ServerOptions) -> Result<(AppState, HangarConfig), ServerError> {
    let config = match &opts.config {
        Some(p) => load_config(p)?,
        None => HangarConfig::default(),
    };
    let data_err = |message: String| ServerError::DataDir {
        path: opts.data_dir.clone(),
        message,
    };
    // 0700: the database, keys and backups are for this user only.
    hangar_runtime::files::ensure_private_dir(&opts.data_dir)
        .map_err(|e| data_err(e.to_string()))?;
    let allowed_configs = crate::config_api::AllowedConfigs::new(
        opts.config.as_deref(),
        opts.config_dir.as_deref(),
        Some(&opts.data_dir),
    )
    .map_err(ServerError::Config)?;
    let store =
        Store::open(&opts.data_dir.join("hangar.db")).map_err(|e| data_err(e.to_string()))?;
    let instance_id = store
        .instance_id()
        .await
        .map_err(|e| data_err(e.to_string()))?;
    let engine = Engine::new(EngineConfig {
        instance_id,
        tool_separator: config.server.tool_separator.clone(),
        tool_naming: config.server.tool_naming,
        operator_questions: config.server.operator_questions,
        log_capacity: config.server.max_log_lines,
        log_lines_per_s: config.server.log_lines_per_s,
        store: Some(store.clone()),
        record_tool_history: config.server.record_tool_history,
        approval_timeout: std::time::Duration::from_secs(config.server.approval_timeout_s),
        max_running_providers: config.server.max_running_providers,
        metrics_history_minutes: config.server.metrics_history_minutes,
        alerts: (&config.server.alerts).into(),
        events: Some(
            hangar_runtime::EventBus::new(
                Some(store.clone()),
                hangar_runtime::EventStoreSettings {
                    history_retention: config.server.history_retention,
                    snapshot_every: config.server.snapshot_every,
                    audit_retention: config.server.audit_retention,
                },
            )
            .await,
        ),
    });
    // What a killed earlier run left behind goes first.
    engine
        .sweep_strays()
        .await
        .map_err(|e| data_err(format!("sweeping stray provider processes: {e}")))?;
    // Secrets first: a provider's env may reference them, resolved at start.
    // A bad master key is the operator's configuration (exit 64).
    let secret_err = |e: hangar_runtime::secrets::SecretError| match e {
        hangar_runtime::secrets::SecretError::BadMasterKey { .. } => {
            ServerError::Config(e.to_string())
        }
        other => data_err(other.to_string()),
    };
    let (master_key, key_file) =
        hangar_runtime::secrets::MasterKey::from_environment(&opts.data_dir).map_err(secret_err)?;
    if let Some(path) = key_file {
        tracing::warn!(path = %path.display(), "first start: master key for secrets written (mode 0600); back it up, secrets can't be read without it");
    }
    // Audit digests are keyed by the master key: stable across restarts and
    // replicas, useless to anyone without it.
    engine.set_digest_key(master_key.derive(AUDIT_DIGEST_LABEL));
    // Provider and catalog rows hold env values: encrypted at rest, like secrets.
    let sealer = hangar_runtime::Sealer::new(&master_key).map_err(secret_err)?;
    let sealed = store
        .seal_rows(sealer)
        .await
        .map_err(|e| data_err(e.to_string()))?;
    if sealed > 0 {
        tracing::info!(
            rows = sealed,
            "encrypted provider and catalog rows stored in the clear by an older version"
        );
    }
    engine.set_allow_self_approval(config.server.allow_self_approval);
    let secrets = hangar_runtime::secrets::Secrets::new(Some(store.clone()), master_key)
        .await
        .map_err(secret_err)?;
    engine.set_env_resolver(Some(secrets.env_resolver()));
    let scopes = hangar_runtime::scopes::Scopes::new(Some(store.clone()))
        .await
        .map_err(|e| data_err(format!("scopes: {e}")))?;
    for (id, spec) in &config.providers {
        engine
            .add_provider(id, spec.clone(), ProviderSource::Config)
            .await
            .map_err(|e| ServerError::Config(format!("providers.{id}: {e}")))?;
    }
    let stored = engine
        .load_stored()
        .await
        .map_err(|e| data_err(e.to_string()))?;
    for (id, spec) in &config.groups {
        match engine
            .add_group(id, spec.clone(), ProviderSource::Config)
            .await
        {
            Ok(()) => {}
            // A provider created over the API took the id first: keep
            // serving, say what to fix.
            Err(hangar_runtime::RuntimeError::AlreadyExists(_)) => tracing::warn!(
                group = %id,
                "groups.{id} is not loaded: a provider created over the API has the same id; \
                 delete that provider or rename the group"
            ),
            Err(e) => return Err(ServerError::Config(format!("groups.{id}: {e}"))),
        }
    }
    engine
        .load_stored_groups()
        .await
        .map_err(|e| data_err(e.to_string()))?;
    let keys = KeyRing::load(&store)
        .await
        .map_err(|e| data_err(e.to_string()))?;
    let admin_key_file = bootstrap_admin_key(
        &keys,
        &store,
        &opts.data_dir,
        std::env::var("HANGAR_ADMIN_KEY").ok(),
    )
    .await
    .map_err(|e| match e {
        crate::auth::BootstrapError::Store(e) => data_err(e.to_string()),
        weak_or_dead => ServerError::Config(weak_or_dead.to_string()),
    })?;
    if let Some(path) = admin_key_file {
        tracing::warn!(path = %path.display(), "first start: admin API key written (mode 0600); the CLI uses it by default");
    }
    let access = crate::authz::Access::load(
        Some(store.clone()),
        engine.events().clone(),
        engine.metrics().clone(),
        &config.server,
    )
    .await
    .map_err(|e| data_err(format!("roles: {e}")))?;
    // The bootstrap key's principal holds `admin` unless someone else does.
    access
        .ensure_admin(crate::auth::ADMIN_PRINCIPAL)
        .await
        .map_err(|e| data_err(format!("roles: {e}")))?;
    tracing::info!(
        config_providers = config.providers.len(),
        stored_providers = stored,
        "providers loaded"
    );
    let catalog = hangar_runtime::CatalogService::new(Some(store.clone()))
        .await
        .map_err(|e| data_err(format!("catalog: {e}")))?;
    let state = AppState {
        engine,
        keys,
        access,
        origins: OriginPolicy::new(config.server.allowed_origins.clone()),
        max_body_bytes: config.server.max_body_bytes,
        shutdown: CancellationToken::new(),
        listen: Some(opts.listen),
        lifecycle: std::sync::Arc::new(crate::config_api::ConfigLifecycle::new(
            opts.config.clone(),
            allowed_configs,
            Some(opts.data_dir.clone()),
            config.server.clone(),
        )),
        catalog: std::sync::Arc::new(catalog),
        secrets,
        scopes,
        session_limits: crate::mcp_front::SessionLimits::from_settings(&config.server),
    };
    Ok((state, config))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Binds the listen address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// How many connections are served at once and how long a stalled reply may
/// hold one.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the kernel's listen queue.
    pub max_connections: usize,
    /// A reply that makes no progress (the client reads nothing) for this
    /// long closes its connection, freeing what it buffered.
    pub write_timeout: Duration,
    /// A client must send a request's headers within this long.
    pub header_read_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits of `server:` settings.
    pub fn from_settings(settings: &hangar_core::ServerSettings) -> Self {
        Self {
            max_connections: settings.max_connections,
            write_timeout: Duration::from_secs(settings.write_timeout_s),
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::from_settings(&hangar_core::ServerSettings::default())
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// connections finish (the caller bounds how long). Each connection gets
/// `TCP_NODELAY` (replies are small and latency-bound: without it Nagle and
/// delayed ACKs add ~40 ms), its peer address (`ConnectInfo`, for the
/// failed-auth backoff), a write timeout, and one of `max_connections` slots.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // Wait for a free slot before accepting: beyond the cap, clients
        // queue in the kernel instead of costing memory here.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let mut io = tokio_io_timeout::TimeoutStream::new(tcp);
        io.set_write_timeout(Some(limits.write_timeout));
        let io = TokioIo::new(Box::pin(io));
        let svc = app.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                req
            },
        );
        let conn = builder
            .serve_connection_with_upgrades(io, hyper_util::service::TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Runs the server until SIGINT/SIGTERM, then stops every provider.
pub async fn run(opts: ServerOptions) -> Result<(), ServerError> {
    let (state, _config) = build(&opts).await?;
    let listener = bind(opts.listen).await?;
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    tracing::info!(%addr, "hangar listening: MCP at http://{addr}/mcp, REST at http://{addr}/api");
    let engine = state.engine.clone();
    let shutdown = state.shutdown.clone();
    if opts.watch {
        if opts.config.is_none() {
            return Err(ServerError::Config(
                "--watch needs --config (there is no file to watch)".into(),
            ));
        }
        crate::config_api::watch(state.lifecycle.clone(), engine.clone(), shutdown.clone())
            .map_err(|e| ServerError::Config(format!("cannot watch the config file: {e}")))?;
        tracing::info!("watching the config file; changes are applied as a reload");
    }
    let limits = ConnectionLimits::from_settings(state.lifecycle.settings());
    let app = router(state);
    let stop = shutdown.clone();
    let serve = serve(listener, app, limits, async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        // Ends MCP sessions and SSE streams so connections can drain.
        stop.cancel();
    });
    tokio::pin!(serve);
    let outcome = tokio::select! {
        r = &mut serve => r,
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        } => {
            tracing::warn!("connections did not drain in 5 s; closing them");
            Ok(())
        }
    };
    engine.shutdown().await;
    tracing::info!("all providers stopped");
    outcome.map_err(ServerError::Serve)
}
