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

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// YAML config file (none: no providers).
    pub config: Option<PathBuf>,
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
    DataDir { path: PathBuf, message: String },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
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

/// Loads and validates a config file.
pub fn load_config(path: &std::path::Path) -> Result<HangarConfig, ServerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServerError::Config(format!("cannot read config {}: {e}", path.display())))?;
    HangarConfig::from_yaml(&text)
        .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
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
    std::fs::create_dir_all(&opts.data_dir).map_err(|e| data_err(e.to_string()))?;
    let store =
        Store::open(&opts.data_dir.join("hangar.db")).map_err(|e| data_err(e.to_string()))?;
    let engine = Engine::new(EngineConfig {
        tool_separator: config.server.tool_separator.clone(),
        log_capacity: config.server.max_log_lines,
        store: Some(store.clone()),
        record_tool_history: config.server.record_tool_history,
        approval_timeout: std::time::Duration::from_secs(config.server.approval_timeout_s),
        max_running_providers: config.server.max_running_providers,
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
        engine
            .add_group(id, spec.clone(), ProviderSource::Config)
            .await
            .map_err(|e| ServerError::Config(format!("groups.{id}: {e}")))?;
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
    .map_err(|e| data_err(e.to_string()))?;
    if let Some(path) = admin_key_file {
        tracing::warn!(path = %path.display(), "first start: admin API key written (mode 0600); the CLI uses it by default");
    }
    let access =
        crate::authz::Access::load(Some(store.clone()), engine.events().clone(), &config.server)
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
            Some(opts.data_dir.clone()),
            config.server.clone(),
        )),
        catalog: std::sync::Arc::new(catalog),
        secrets,
        scopes,
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

/// Binds `addr` with `TCP_NODELAY` on every accepted connection: responses
/// are small and latency-bound (SSE frames, JSON-RPC replies), and without it
/// Nagle plus the client's delayed ACK can add ~40 ms to a call.
pub async fn bind(addr: SocketAddr) -> Result<NodelayListener, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let nodelay: fn(&mut tokio::net::TcpStream) = |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    };
    Ok(axum::serve::ListenerExt::tap_io(listener, nodelay))
}

/// What [`bind`] returns: a TCP listener setting `TCP_NODELAY` (a concrete
/// type, so `into_make_service_with_connect_info::<SocketAddr>` works on it).
pub type NodelayListener =
    axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)>;

/// Runs the server until SIGINT/SIGTERM, then stops every provider.
pub async fn run(opts: ServerOptions) -> Result<(), ServerError> {
    let (state, _config) = build(&opts).await?;
    let listener = bind(opts.listen).await?;
    let addr = axum::serve::Listener::local_addr(&listener).map_err(ServerError::Serve)?;
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
    let app = router(state);
    let stop = shutdown.clone();
    // The peer address feeds the failed-auth backoff (`auth::require_key`).
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        // Ends MCP sessions and SSE streams so connections can drain.
        stop.cancel();
    });
    let result = serve.into_future();
    tokio::pin!(result);
    let outcome = tokio::select! {
        r = &mut result => r,
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
