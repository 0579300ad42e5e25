//! The state every `/api` handler can extract: the engine, plus what the
//! config lifecycle routes need. Handlers take `State<Engine>` (or another
//! part) through [`FromRef`].

use std::sync::Arc;

use axum::extract::FromRef;
use hangar_runtime::scopes::Scopes;
use hangar_runtime::secrets::Secrets;
use hangar_runtime::{CatalogService, Engine};

use crate::config_api::ConfigLifecycle;

/// Shared state of the `/api` router.
#[derive(Clone)]
pub struct ApiContext {
    /// The engine.
    pub engine: Engine,
    /// Config file, reload, backups.
    pub lifecycle: Arc<ConfigLifecycle>,
    /// The catalog of deployable MCP servers.
    pub catalog: Arc<CatalogService>,
    /// Encrypted secrets.
    pub secrets: Secrets,
    /// Scopes of providers and secrets.
    pub scopes: Scopes,
    /// API keys and personal tokens.
    pub keys: crate::auth::KeyRing,
    /// Roles, assignments, limits, audit.
    pub access: crate::authz::Access,
    /// Cancelled at shutdown: ends live streams.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The live 2025-era MCP sessions (`/api/sessions`).
    pub sessions: Arc<hangar_mcp::SessionTable>,
}

impl FromRef<ApiContext> for Scopes {
    fn from_ref(ctx: &ApiContext) -> Scopes {
        ctx.scopes.clone()
    }
}

impl FromRef<ApiContext> for Secrets {
    fn from_ref(ctx: &ApiContext) -> Secrets {
        ctx.secrets.clone()
    }
}

impl FromRef<ApiContext> for Engine {
    fn from_ref(ctx: &ApiContext) -> Engine {
        ctx.engine.clone()
    }
}

impl FromRef<ApiContext> for Arc<ConfigLifecycle> {
    fn from_ref(ctx: &ApiContext) -> Arc<ConfigLifecycle> {
        ctx.lifecycle.clone()
    }
}

impl FromRef<ApiContext> for Arc<CatalogService> {
    fn from_ref(ctx: &ApiContext) -> Arc<CatalogService> {
        ctx.catalog.clone()
    }
}

impl FromRef<ApiContext> for crate::tokens_api::TokenLimits {
    fn from_ref(ctx: &ApiContext) -> crate::tokens_api::TokenLimits {
        let settings = ctx.lifecycle.settings();
        crate::tokens_api::TokenLimits {
            max_ttl: std::time::Duration::from_secs(settings.token_max_ttl_s),
            per_principal: settings.max_tokens_per_principal,
        }
    }
}
