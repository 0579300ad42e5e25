//! Hangar's HTTP surface on `axum`/`hyper`: `/health`, `/mcp` (MCP Streamable
//! HTTP, both protocol eras), the REST API under `/api`, API-key auth, JSON
//! errors, Origin and body-size checks; plus [`server::run`], used by the
//! `hangar-server` binary and `hangar serve`.
//!
//! API boundary: business rules live in `hangar-core` and `hangar-runtime`;
//! this crate maps them to HTTP, once, in [`error`].
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod app;
pub mod approvals_api;
pub mod audit_api;
pub mod auth;
pub mod auth_api;
pub mod authz;
pub mod catalog_api;
pub mod config_api;
pub mod context;
pub mod embed;
pub mod error;
pub mod extract;
pub mod groups;
pub mod maintenance;
mod mcp_bridge;
pub mod mcp_front;
pub mod observe_api;
pub mod openapi;
pub mod policies_api;
pub mod questions_api;
pub mod rest;
pub mod schema;
pub mod scopes_api;
pub mod secrets_api;
pub mod server;
pub mod sessions_api;
pub mod streams;
pub mod tokens_api;

pub use app::{AppState, OriginPolicy, router};
pub use error::ApiError;
pub use server::{ServerError, ServerOptions, run};

/// How the binaries write their logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`,
    /// and the enclosing `spans` with their fields: provider, tool,
    /// principal, session, protocol era), for log collectors.
    Json,
}

/// Installs the `tracing` subscriber used by the binaries (`RUST_LOG`
/// overrides the default `info`; rmcp stays at `warn`, so neither its message
/// dumps nor session ids are logged, unless `RUST_LOG` names `rmcp`). Logs go
/// to stderr, as text or JSON lines. With the `otlp` feature and
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
/// set, spans are also exported over OTLP/HTTP ([`telemetry`]). Keep the
/// returned guard alive, and [`Telemetry::shutdown`] it before exiting so the
/// last spans are sent.
pub fn init_tracing(format: LogFormat) -> Telemetry {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let mut filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // rmcp logs whole messages (tool arguments and results, which may carry
    // secrets a provider was given) at debug, and MCP session ids (which let
    // their holder use the session) at info: only when asked for by name.
    if !spec.contains("rmcp")
        && let Ok(quiet) = "rmcp=warn".parse()
    {
        filter = filter.add_directive(quiet);
    }
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(filter));
    let (export, problem) = telemetry::export();
    let telemetry = match export {
        Some((layer, guard)) => {
            let _ = registry.with(layer).try_init();
            guard
        }
        None => {
            let _ = registry.try_init();
            Telemetry::default()
        }
    };
    if let Some(problem) = problem {
        tracing::warn!(%problem, "OpenTelemetry export is off");
    }
    telemetry
}

pub mod telemetry;
pub use telemetry::Telemetry;
