//! The config lifecycle: `GET /api/config`, `POST /api/config/reload`,
//! `POST /api/config/export`, `POST /api/config/backup`, `GET /api/config/diff`,
//! and the `--watch` file watcher that applies the same reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use hangar_core::{HangarConfig, ServerSettings};
use hangar_runtime::{Engine, ProviderSource, ReconcileReport};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};

/// The event stream of config changes.
pub const CONFIG_STREAM: &str = "config";
/// The event of one applied reload: `{config_path, providers, groups,
/// restart_required}` (the reload's report).
pub const CONFIG_RELOADED: &str = "ConfigReloaded";

/// Why a config lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The server runs without a config file and none was named.
    #[error("the server was started without --config; name a file with config_path")]
    NoConfigFile,
    /// `config_path` names a file that may not be reloaded.
    #[error(
        "config_path {path}: only the server's config file, or a .yaml/.yml file directly in \
         the directory given with --config-dir at start, can be reloaded"
    )]
    NotAllowed {
        /// The file named.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: hangar_runtime::files::ReadError,
    },
    /// Reading the file did not finish in time.
    #[error("cannot read {path}: no answer from the file system in {secs} s")]
    ReadTimeout {
        /// The file.
        path: PathBuf,
        /// The time allowed, in seconds.
        secs: u64,
    },
    /// The file is not a valid config (the message names field and line).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with field and line.
        message: String,
    },
    /// The server has no data directory to keep backups in.
    #[error("no data directory: backups are unavailable")]
    NoDataDir,
    /// Writing a backup failed.
    #[error("backup {path}: {source}")]
    Write {
        /// The backup file.
        path: PathBuf,
        /// Why it could not be written.
        source: std::io::Error,
    },
    /// The live state could not be written as YAML.
    #[error("cannot serialize the live config: {0}")]
    Serialize(String),
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        let (status, kind) = match &e {
            LifecycleError::NoConfigFile => (StatusCode::CONFLICT, "NoConfigFileError"),
            LifecycleError::NotAllowed { .. } => (StatusCode::FORBIDDEN, "ConfigPathNotAllowed"),
            LifecycleError::Read { .. }
            | LifecycleError::ReadTimeout { .. }
            | LifecycleError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "ConfigError"),
            LifecycleError::NoDataDir => (StatusCode::CONFLICT, "NoDataDirError"),
            LifecycleError::Write { .. } | LifecycleError::Serialize(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
        };
        ApiError::new(status, kind, e.to_string())
    }
}

/// How long reading a config file may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads and validates a config file: a regular file of at most
/// [`MAX_CONFIG_BYTES`](hangar_runtime::files::MAX_CONFIG_BYTES), never a
/// FIFO or device. Errors name the field and line, never the values found.
pub fn read_config_file(path: &Path) -> Result<HangarConfig, LifecycleError> {
    let text =
        hangar_runtime::files::read_text_bounded(path, hangar_runtime::files::MAX_CONFIG_BYTES)
            .map_err(|source| LifecycleError::Read {
                path: path.to_owned(),
                source,
            })?;
    HangarConfig::from_yaml(&text).map_err(|e| LifecycleError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The files a reload may read, fixed when the server starts: the config
/// file it started with, and `*.yaml`/`*.yml` files directly in the
/// `--config-dir` directory. Paths are compared after resolving symlinks.
#[derive(Debug, Clone, Default)]
pub struct AllowedConfigs {
    file: Option<PathBuf>,
    dir: Option<PathBuf>,
}

impl AllowedConfigs {
    /// The start file and directory. The directory must exist and must not
    /// hold the data directory (its keys are not config).
    pub fn new(
        file: Option<&Path>,
        dir: Option<&Path>,
        data_dir: Option<&Path>,
    ) -> Result<Self, String> {
        let file = file.and_then(|f| std::fs::canonicalize(f).ok());
        let dir = match dir {
            None => None,
            Some(d) => {
                let d = std::fs::canonicalize(d)
                    .map_err(|e| format!("--config-dir {}: {e}", d.display()))?;
                if !d.is_dir() {
                    return Err(format!("--config-dir {}: not a directory", d.display()));
                }
                let data = data_dir.and_then(|p| std::fs::canonicalize(p).ok());
                if data.is_some_and(|data| data.starts_with(&d)) {
                    return Err(format!(
                        "--config-dir {} holds the data directory (keys and the database); \
                         give a directory of config files only",
                        d.display()
                    ));
                }
                Some(d)
            }
        };
        Ok(Self { file, dir })
    }

    /// The file to read for `requested`, or why it may not be read. A bare
    /// file name is looked up in the config directory.
    pub fn check(&self, requested: &Path) -> Result<PathBuf, LifecycleError> {
        let refused = || LifecycleError::NotAllowed {
            path: requested.to_owned(),
        };
        let bare = requested.components().count() == 1;
        let candidate = match (&self.dir, bare) {
            (Some(dir), true) => dir.join(requested),
            _ => requested.to_owned(),
        };
        let real = std::fs::canonicalize(&candidate).map_err(|_| refused())?;
        if self.file.as_ref() == Some(&real) {
            return Ok(real);
        }
        let in_dir = self
            .dir
            .as_ref()
            .is_some_and(|dir| real.parent() == Some(dir.as_path()));
        let yaml = real
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        if in_dir && yaml {
            Ok(real)
        } else {
            Err(refused())
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReloadResult {
    /// The file that was applied.
    pub config_path: String,
    /// Providers and groups added, removed, updated, unchanged, kept (API-created), failed.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub report: ReconcileReport,
    /// `server:` settings that changed in the file but apply only at the next start.
    pub restart_required: Vec<String>,
}

/// The config file, reloads and backups of a running server.
#[derive(Debug)]
pub struct ConfigLifecycle {
    /// The YAML file applied last (the one the server started with, or the
    /// last `config_path` reloaded).
    config_path: Mutex<Option<PathBuf>>,
    /// Backups go to `<data-dir>/backups`.
    data_dir: Option<PathBuf>,
    /// The files a reload may read (fixed at start).
    allowed: AllowedConfigs,
    /// The settings the server runs with (changes need a restart).
    settings: ServerSettings,
    /// Serializes reloads (API and watcher).
    reload: tokio::sync::Mutex<()>,
}

impl ConfigLifecycle {
    /// Lifecycle for a server started from `config_path` (if any) with
    /// `settings`, keeping backups under `data_dir`; reloads may read only
    /// what `allowed` allows.
    pub fn new(
        config_path: Option<PathBuf>,
        allowed: AllowedConfigs,
        data_dir: Option<PathBuf>,
        settings: ServerSettings,
    ) -> Self {
        Self {
            config_path: Mutex::new(config_path),
            allowed,
            data_dir,
            settings,
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// The config file applied last.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config_path
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The settings the server runs with.
    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// Reads `path` (or the current file) and applies the difference to the
    /// engine. An invalid file changes nothing. A `path` must be one
    /// [`AllowedConfigs`] allows; the read is bounded in size and time.
    pub async fn reload(
        &self,
        engine: &Engine,
        path: Option<PathBuf>,
    ) -> Result<ReloadResult, LifecycleError> {
        let path = match path {
            Some(requested) => self.allowed.check(&requested)?,
            None => self.config_path().ok_or(LifecycleError::NoConfigFile)?,
        };
        let _one_at_a_time = self.reload.lock().await;
        let file = path.clone();
        let read = tokio::task::spawn_blocking(move || read_config_file(&file));
        let config = match tokio::time::timeout(READ_TIMEOUT, read).await {
            Ok(Ok(result)) => result?,
            Ok(Err(join)) => {
                return Err(LifecycleError::Read {
                    path,
                    source: std::io::Error::other(join.to_string()).into(),
                });
            }
            Err(_) => {
                return Err(LifecycleError::ReadTimeout {
                    path,
                    secs: READ_TIMEOUT.as_secs(),
                });
            }
        };
        let report = engine.reconcile(&config).await;
        *self
            .config_path
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(path.clone());
        let restart_required = changed_settings(&self.settings, &config.server);
        tracing::info!(
            path = %path.display(),
            added = ?report.providers.added,
            removed = ?report.providers.removed,
            updated = ?report.providers.updated,
            failed = ?report.providers.failed,
            "config reloaded"
        );
        engine.events().emit(
            CONFIG_STREAM.to_owned(),
            CONFIG_RELOADED,
            serde_json::json!({
                "config_path": path.display().to_string(),
                "providers": &report.providers,
                "groups": &report.groups,
                "restart_required": &restart_required,
            }),
        );
        Ok(ReloadResult {
            config_path: path.display().to_string(),
            report,
            restart_required,
        })
    }

    /// The live state as YAML that loads back to the same state.
    pub fn export(&self, engine: &Engine) -> Result<String, LifecycleError> {
        engine
            .live_config(self.settings.clone())
            .to_yaml()
            .map_err(|e| LifecycleError::Serialize(e.to_string()))
    }

    /// Writes the live state to `<data-dir>/backups/` and deletes the oldest
    /// backups beyond `server.backup_count`. Returns the new file and how
    /// many backups remain.
    pub fn backup(&self, engine: &Engine) -> Result<(PathBuf, usize), LifecycleError> {
        let dir = self
            .data_dir
            .as_ref()
            .ok_or(LifecycleError::NoDataDir)?
            .join("backups");
        let yaml = self.export(engine)?;
        let werr = |path: &Path| {
            let path = path.to_owned();
            move |source| LifecycleError::Write { path, source }
        };
        // Backups hold env values: private, like the rest of the data dir.
        hangar_runtime::files::ensure_private_dir(&dir).map_err(werr(&dir))?;
        let stamp = time::OffsetDateTime::now_utc();
        let base = format!(
            "hangar-{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
            stamp.year(),
            u8::from(stamp.month()),
            stamp.day(),
            stamp.hour(),
            stamp.minute(),
            stamp.second(),
            stamp.millisecond()
        );
        let mut path = dir.join(format!("{base}.yaml"));
        let mut n = 1;
        while path.exists() {
            path = dir.join(format!("{base}-{n}.yaml"));
            n += 1;
        }
        // Write then rename: a crash never leaves a half-written backup.
        hangar_runtime::files::write_private_atomic(&path, yaml.as_bytes()).map_err(werr(&path))?;
        let mut backups: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(werr(&dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("hangar-") && n.ends_with(".yaml"))
            })
            .collect();
        // Names sort by time.
        backups.sort();
        let excess = backups.len().saturating_sub(self.settings.backup_count);
        for old in backups.drain(..excess) {
            std::fs::remove_file(&old).map_err(werr(&old))?;
        }
        Ok((path, backups.len()))
    }

    /// A unified diff from the file on disk (normalized) to the live state.
    pub fn diff(&self, engine: &Engine) -> Result<String, LifecycleError> {
        let on_disk = match self.config_path() {
            Some(path) => read_config_file(&path)?
                .to_yaml()
                .map_err(|e| LifecycleError::Serialize(e.to_string()))?,
            None => String::new(),
        };
        let live = self.export(engine)?;
        Ok(similar::TextDiff::from_lines(&on_disk, &live)
            .unified_diff()
            .context_radius(3)
            .header("on-disk", "in-memory")
            .to_string())
    }
}

/// `server:` settings that differ (they apply at the next start).
fn changed_settings(old: &ServerSettings, new: &ServerSettings) -> Vec<String> {
    let old = serde_json::to_value(old).unwrap_or(Value::Null);
    let new = serde_json::to_value(new).unwrap_or(Value::Null);
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut all = keys(&old);
    all.extend(keys(&new));
    all.sort();
    all.dedup();
    all.into_iter()
        .filter(|k| old.get(k) != new.get(k))
        .map(|k| format!("server.{k}"))
        .collect()
}

/// `GET /api/config` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigResponse {
    /// `providers` and `groups` (lists, each with its id and `source`:
    /// `config` or `api`) and `server` settings. Env values are redacted.
    #[schema(value_type = Object)]
    pub config: Value,
    /// The config file applied last, if any.
    pub config_path: Option<String>,
}

/// Returns the live configuration with sensitive fields stripped (env values
/// are shown as `<redacted>`).
#[utoipa::path(
    get,
    path = "/config",
    tag = "config",
    operation_id = "get_config",
    responses(
        (status = 200, description = "Live configuration", body = ConfigResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
    ),
    security(("bearer" = ["config:read"]))
)]
pub async fn get_config(State(ctx): State<ApiContext>) -> Json<ConfigResponse> {
    let source = |s: ProviderSource| match s {
        ProviderSource::Config => "config",
        ProviderSource::Api => "api",
    };
    let providers: Vec<Value> = ctx
        .engine
        .providers_snapshot()
        .into_iter()
        .map(|p| {
            let mut v = crate::rest::redacted_spec(&p.spec());
            if let Some(o) = v.as_object_mut() {
                o.insert("provider_id".into(), json!(p.id()));
                o.insert("source".into(), json!(source(p.source())));
            }
            v
        })
        .collect();
    let groups: Vec<Value> = ctx
        .engine
        .groups_snapshot()
        .into_iter()
        .map(|g| {
            let mut v = serde_json::to_value(&*g.spec()).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("group_id".into(), json!(g.id()));
                o.insert("source".into(), json!(source(g.source())));
            }
            v
        })
        .collect();
    Json(ConfigResponse {
        config: json!({
            "providers": providers,
            "groups": groups,
            "server": redacted_settings(ctx.lifecycle.settings()),
        }),
        config_path: ctx.lifecycle.config_path().map(|p| p.display().to_string()),
    })
}

/// The server settings as `GET /api/config` shows them: alert webhook URLs
/// often carry their own credential (a chat service's hook token), so they
/// are `<redacted>` like env values; `export` shows them.
fn redacted_settings(settings: &ServerSettings) -> Value {
    let mut v = serde_json::to_value(settings).unwrap_or(Value::Null);
    if let Some(hooks) = v
        .pointer_mut("/alerts/webhooks")
        .and_then(Value::as_object_mut)
    {
        for url in hooks.values_mut() {
            *url = json!("<redacted>");
        }
    }
    v
}

/// `POST /api/config/reload` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {
    /// File to apply (default: the file applied last): the server's config
    /// file, or a `.yaml`/`.yml` file directly in `--config-dir` (a bare
    /// name is looked up there).
    #[serde(default)]
    pub config_path: Option<String>,
    /// Accepted for compatibility; reloads are always graceful (unchanged
    /// providers keep running).
    #[serde(default)]
    pub graceful: Option<bool>,
}

/// `POST /api/config/reload` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadResponse {
    /// Always `reloaded`.
    pub status: String,
    /// What changed.
    pub result: ReloadResult,
}

/// Re-reads the config file and applies only the difference: unchanged
/// providers keep running, removed ones stop, added ones appear, providers
/// created over the API are kept. Clients get `tools/list_changed`.
#[utoipa::path(
    post,
    path = "/config/reload",
    tag = "config",
    operation_id = "reload_config",
    request_body(content = Option<ReloadRequest>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "Reloaded", body = ReloadResponse),
        (status = 400, description = "Malformed JSON body", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "`config_path` is neither the server's config file nor a .yaml file in --config-dir", body = ErrorBody),
        (status = 409, description = "No config file to reload", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Unreadable or invalid config file (names field and line, never values)", body = ErrorBody),
    ),
    security(("bearer" = ["config:write"]))
)]
pub async fn reload_config(
    State(ctx): State<ApiContext>,
    body: Bytes,
) -> Result<Json<ReloadResponse>, ApiError> {
    let req: ReloadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("invalid JSON body: {e}"),
            )
        })?
    };
    let path = req.config_path.filter(|p| !p.is_empty()).map(PathBuf::from);
    let result = ctx.lifecycle.reload(&ctx.engine, path).await?;
    Ok(Json(ReloadResponse {
        status: "reloaded".into(),
        result,
    }))
}

/// `POST /api/config/export` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportResponse {
    /// The live providers, groups and settings as YAML.
    pub yaml: String,
}

/// The live state (providers and groups from the file and the API, and the
/// settings) as YAML that loads back to the same state. It shows env values
/// unredacted (secrets stay `${secret:...}` references), so it needs
/// `config:write`, like `diff`; `GET /api/config` (redacted) needs `config:read`.
#[utoipa::path(
    post,
    path = "/config/export",
    tag = "config",
    operation_id = "export_config",
    responses(
        (status = 200, description = "Live state as YAML", body = ExportResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
    ),
    security(("bearer" = ["config:write"]))
)]
pub async fn export_config(
    State(ctx): State<ApiContext>,
) -> Result<Json<ExportResponse>, ApiError> {
    Ok(Json(ExportResponse {
        yaml: ctx.lifecycle.export(&ctx.engine)?,
    }))
}

/// `POST /api/config/backup` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupResponse {
    /// The file written.
    pub backup_path: String,
    /// Always true.
    pub created: bool,
    /// Backups kept after rotation (at most `server.backup_count`).
    pub kept: usize,
}

/// Writes the live state to `<data-dir>/backups/hangar-<time>.yaml`,
/// keeping the newest `server.backup_count` backups.
#[utoipa::path(
    post,
    path = "/config/backup",
    tag = "config",
    operation_id = "backup_config",
    responses(
        (status = 200, description = "Backup written", body = BackupResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 409, description = "No data directory", body = ErrorBody),
    ),
    security(("bearer" = ["config:write"]))
)]
pub async fn backup_config(
    State(ctx): State<ApiContext>,
) -> Result<Json<BackupResponse>, ApiError> {
    let (path, kept) = on_blocking_pool(&ctx, |l, e| l.backup(e)).await?;
    Ok(Json(BackupResponse {
        backup_path: path.display().to_string(),
        created: true,
        kept,
    }))
}

/// `GET /api/config/diff` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffResponse {
    /// Unified diff, `--- on-disk` to `+++ in-memory` (empty when equal).
    pub diff: String,
    /// Whether the live state differs from the file.
    pub has_changes: bool,
}

/// Compares the config file (normalized) with the live state.
#[utoipa::path(
    get,
    path = "/config/diff",
    tag = "config",
    operation_id = "diff_config",
    responses(
        (status = 200, description = "Unified diff", body = DiffResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 422, description = "The file on disk is unreadable or invalid", body = ErrorBody),
    ),
    security(("bearer" = ["config:write"]))
)]
pub async fn diff_config(State(ctx): State<ApiContext>) -> Result<Json<DiffResponse>, ApiError> {
    let diff = on_blocking_pool(&ctx, |l, e| l.diff(e)).await?;
    Ok(Json(DiffResponse {
        has_changes: !diff.is_empty(),
        diff,
    }))
}

/// Runs file work of the lifecycle off the async workers.
async fn on_blocking_pool<T: Send + 'static>(
    ctx: &ApiContext,
    f: impl FnOnce(&ConfigLifecycle, &Engine) -> Result<T, LifecycleError> + Send + 'static,
) -> Result<T, ApiError> {
    let lifecycle = ctx.lifecycle.clone();
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || f(&lifecycle, &engine))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        })?
        .map_err(ApiError::from)
}

/// The config lifecycle routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(get_config))
        .routes(routes!(reload_config))
        .routes(routes!(export_config))
        .routes(routes!(backup_config))
        .routes(routes!(diff_config))
}

/// Watches the config file and reloads when it changes (`--watch`). Editors
/// replace files by rename, so the directory is watched; bursts of events
/// are coalesced. Stops when `stop` is cancelled.
pub fn watch(
    lifecycle: Arc<ConfigLifecycle>,
    engine: Engine,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), notify::Error> {
    use notify::Watcher;
    let Some(path) = lifecycle.config_path() else {
        return Ok(());
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = path.file_name().map(ToOwned::to_owned);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && !event.kind.is_access()
            && event
                .paths
                .iter()
                .any(|p| p.file_name().map(ToOwned::to_owned) == name)
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        // Owned by the task: dropping it stops watching.
        let _watcher = watcher;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                got = rx.recv() => if got.is_none() { return },
            }
            // Coalesce the burst an editor's save produces.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            match lifecycle.reload(&engine, None).await {
                Ok(r) if r.report.changed() => {}
                Ok(_) => tracing::debug!("config file touched; nothing changed"),
                Err(e) => tracing::warn!(error = %e, "config file changed but was not applied"),
            }
        }
    });
    Ok(())
}
