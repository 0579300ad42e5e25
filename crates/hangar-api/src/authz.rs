//! Authorization: roles and assignments ([`Access`]), the permission every
//! route declares ([`RoutePermissions`]), per-key rate limits, and
//! [`authorize`], the middleware after [`require_key`](crate::auth::require_key).
//!
//! Each operation declares what it needs as the scope of its bearer security
//! requirement in its `#[utoipa::path]`: a permission
//! (`security(("bearer" = ["providers:read"]))`) or `self` (any authenticated
//! principal, acting on its own things, e.g. `/api/tokens`). The map
//! `(method, matched path) → requirement` is derived from the OpenAPI document
//! when the router is built, so what is documented is what is enforced; a
//! route that declares nothing is refused with 403 (fail-closed).
//!
//! Per request, [`authorize`]: resolves the principal's [`Grants`] (cached per
//! principal, dropped on every role change), charges the principal's rate limit
//! (the most generous of its roles' limits, else `server.rate_limit`; 429 with
//! `Retry-After` when exceeded, `RateLimit-*` headers on every answer), checks
//! the permission (403), hands the caller's roles to the MCP layer as
//! [`hangar_mcp::CallerRoles`], and records mutating `/api` requests as
//! `AdminChange` and refusals as `SecurityEvent` on the `audit` stream.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hangar_core::ratelimit::{AuthBackoff, AuthBackoffConfig, Decision, RateLimit, RateLimiter};
use hangar_core::{Grants, Permission, Rbac, Role, RoleError, ServerSettings, Timestamp};
use hangar_runtime::{EventBus, Store, StoreError};
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::{Principal, client_of};
use crate::error::ApiError;

/// The stream audit records go to (defined once, by the runtime).
pub use hangar_runtime::events::AUDIT_STREAM;
/// Event type of a mutating `/api` request: `{principal, method, path, status}`.
pub const ADMIN_CHANGE: &str = "AdminChange";
/// Event type of a refused or failed request:
/// `{kind, principal, client, method, path, detail}`.
pub const SECURITY_EVENT: &str = "SecurityEvent";
/// Event type of an audited tool call (emitted by the MCP path):
/// `{principal, provider, tool, verdict, outcome, duration_ms, arguments_digest}`.
pub const TOOL_CALL_AUDITED: &str = "ToolCallAudited";

/// The scope that lets any authenticated principal through (routes acting on
/// the caller's own things).
pub const SELF_SCOPE: &str = "self";

/// What a `SecurityEvent` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityKind {
    /// A bad, expired or revoked key.
    AuthFailed,
    /// A valid key without the route's permission.
    AccessDenied,
    /// A key over its rate limit.
    RateLimited,
}

impl SecurityKind {
    /// The `kind` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthFailed => "auth_failed",
            Self::AccessDenied => "access_denied",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// A role or assignment change that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// An invalid role or a change to a built-in one.
    #[error(transparent)]
    Role(#[from] RoleError),
    /// A custom role with this id exists already.
    #[error("role '{0}' already exists")]
    Exists(String),
    /// No role with this id.
    #[error("role '{0}' not found")]
    RoleNotFound(String),
    /// The principal does not hold the role.
    #[error("principal '{principal}' does not hold role '{role}'")]
    NotAssigned {
        /// The principal.
        principal: String,
        /// The role.
        role: String,
    },
    /// The change would leave no principal holding `admin`.
    #[error(
        "'{0}' is the last principal holding role 'admin'; assign it to another principal first"
    )]
    LastAdmin(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Roles and who holds them.
#[derive(Debug, Default)]
struct Book {
    rbac: Rbac,
    /// principal → role ids.
    assigned: BTreeMap<String, BTreeSet<String>>,
}

impl Book {
    fn holders_of(&self, role: &str) -> usize {
        self.assigned.values().filter(|r| r.contains(role)).count()
    }
}

struct Inner {
    store: Option<Store>,
    events: EventBus,
    metrics: Arc<hangar_runtime::Metrics>,
    book: RwLock<Book>,
    /// Serializes changes so the store and memory agree.
    changes: tokio::sync::Mutex<()>,
    grants: RwLock<HashMap<String, Arc<Grants>>>,
    /// Bumped (under the `grants` lock) on every role change, so a resolution
    /// that raced with a change is not cached.
    generation: AtomicU64,
    limiter: Mutex<RateLimiter<String>>,
    default_limit: RateLimit,
    backoff: Mutex<AuthBackoff<String>>,
    origin: Instant,
    last_sweep_ms: AtomicU64,
}

/// Roles, assignments, rate limits, the failed-auth backoff, and the audit
/// sink; cheap to clone.
#[derive(Clone)]
pub struct Access {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

/// How often idle rate-limit and backoff entries are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Locks a std mutex, recovering from poisoning (the data stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Access {
    /// Loads custom roles and assignments from `store` (a stored role that no
    /// longer validates is skipped with a warning), with the rate limit and
    /// backoff of `settings` (validated with the config).
    pub async fn load(
        store: Option<Store>,
        events: EventBus,
        metrics: Arc<hangar_runtime::Metrics>,
        settings: &ServerSettings,
    ) -> Result<Self, AccessError> {
        let mut book = Book::default();
        if let Some(store) = &store {
            for role in store.roles().await? {
                let id = role.id.clone();
                if let Err(e) = book.rbac.insert(role) {
                    tracing::warn!(role = %id, error = %e, "skipping an invalid stored role");
                }
            }
            for (principal, role) in store.role_assignments().await? {
                book.assigned.entry(principal).or_default().insert(role);
            }
        }
        let default_limit = settings
            .rate_limit
            .unwrap_or(hangar_core::config::DEFAULT_RATE_LIMIT);
        let limiter = RateLimiter::new(default_limit)
            .or_else(|_| RateLimiter::new(hangar_core::config::DEFAULT_RATE_LIMIT))
            .map_err(|e| RoleError::RateLimit {
                role: "server".into(),
                source: e,
            })?;
        let backoff_config = settings.auth_backoff.unwrap_or_default();
        let backoff = AuthBackoff::new(backoff_config)
            .or_else(|_| AuthBackoff::new(AuthBackoffConfig::default()))
            .map_err(|e| RoleError::RateLimit {
                role: "server".into(),
                source: e,
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                events,
                metrics,
                book: RwLock::new(book),
                changes: tokio::sync::Mutex::new(()),
                grants: RwLock::default(),
                generation: AtomicU64::new(0),
                limiter: Mutex::new(limiter),
                default_limit,
                backoff: Mutex::new(backoff),
                origin: Instant::now(),
                last_sweep_ms: AtomicU64::new(0),
            }),
        })
    }

    /// Built-in roles only, nothing stored, default limits.
    #[cfg(test)]
    pub fn in_memory(events: EventBus) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: None,
                events,
                metrics: Arc::default(),
                book: RwLock::default(),
                changes: tokio::sync::Mutex::new(()),
                grants: RwLock::default(),
                generation: AtomicU64::new(0),
                limiter: Mutex::new(
                    RateLimiter::new(hangar_core::config::DEFAULT_RATE_LIMIT).expect("valid"),
                ),
                default_limit: hangar_core::config::DEFAULT_RATE_LIMIT,
                backoff: Mutex::new(AuthBackoff::new(AuthBackoffConfig::default()).expect("valid")),
                origin: Instant::now(),
                last_sweep_ms: AtomicU64::new(0),
            }),
        }
    }

    /// The engine's event bus, where audit records go.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    fn now(&self) -> Timestamp {
        let ms = u64::try_from(self.inner.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Timestamp::from_millis(ms)
    }

    // ----- roles -----

    /// Every role (built-in and custom), by id.
    pub fn roles(&self) -> Vec<Role> {
        read(&self.inner.book).rbac.roles().cloned().collect()
    }

    /// The role with this id.
    pub fn role(&self, id: &str) -> Option<Role> {
        read(&self.inner.book).rbac.get(id).cloned()
    }

    fn invalidate(&self) {
        let mut cache = write(&self.inner.grants);
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        cache.clear();
    }

    /// Creates a custom role (validated, stored first).
    pub async fn create_role(&self, role: Role) -> Result<Role, AccessError> {
        let _guard = self.inner.changes.lock().await;
        role.validate_custom()?;
        if read(&self.inner.book).rbac.get(&role.id).is_some() {
            return Err(AccessError::Exists(role.id));
        }
        if let Some(store) = &self.inner.store {
            store.put_role(&role).await?;
        }
        write(&self.inner.book).rbac.insert(role.clone())?;
        self.invalidate();
        Ok(role)
    }

    /// Replaces a custom role (validated, stored first).
    pub async fn update_role(&self, role: Role) -> Result<Role, AccessError> {
        let _guard = self.inner.changes.lock().await;
        role.validate_custom()?;
        if read(&self.inner.book).rbac.get(&role.id).is_none() {
            return Err(AccessError::RoleNotFound(role.id));
        }
        if let Some(store) = &self.inner.store {
            store.put_role(&role).await?;
        }
        write(&self.inner.book).rbac.insert(role.clone())?;
        self.invalidate();
        Ok(role)
    }

    /// Deletes a custom role and its assignments.
    pub async fn delete_role(&self, id: &str) -> Result<(), AccessError> {
        let _guard = self.inner.changes.lock().await;
        if hangar_core::is_builtin_role_id(id) {
            return Err(RoleError::Reserved(id.to_owned()).into());
        }
        if read(&self.inner.book).rbac.get(id).is_none() {
            return Err(AccessError::RoleNotFound(id.to_owned()));
        }
        if let Some(store) = &self.inner.store {
            store.delete_role(id).await?;
        }
        {
            let mut book = write(&self.inner.book);
            book.rbac.remove(id)?;
            for roles in book.assigned.values_mut() {
                roles.remove(id);
            }
            book.assigned.retain(|_, roles| !roles.is_empty());
        }
        self.invalidate();
        Ok(())
    }

    // ----- assignments -----

    /// Gives `principal` the role `role_id`; true if it did not hold it.
    pub async fn assign(&self, principal: &str, role_id: &str) -> Result<bool, AccessError> {
        let _guard = self.inner.changes.lock().await;
        if read(&self.inner.book).rbac.get(role_id).is_none() {
            return Err(AccessError::RoleNotFound(role_id.to_owned()));
        }
        let added = match &self.inner.store {
            Some(store) => store.assign_role(principal, role_id).await?,
            None => true,
        };
        let added = write(&self.inner.book)
            .assigned
            .entry(principal.to_owned())
            .or_default()
            .insert(role_id.to_owned())
            || added;
        self.invalidate();
        Ok(added)
    }

    /// Takes `role_id` from `principal`. The last holder of `admin` keeps it.
    pub async fn unassign(&self, principal: &str, role_id: &str) -> Result<(), AccessError> {
        let _guard = self.inner.changes.lock().await;
        {
            let book = read(&self.inner.book);
            let holds = book
                .assigned
                .get(principal)
                .is_some_and(|r| r.contains(role_id));
            if !holds {
                return Err(AccessError::NotAssigned {
                    principal: principal.to_owned(),
                    role: role_id.to_owned(),
                });
            }
            if role_id == "admin" && book.holders_of("admin") <= 1 {
                return Err(AccessError::LastAdmin(principal.to_owned()));
            }
        }
        if let Some(store) = &self.inner.store {
            store.unassign_role(principal, role_id).await?;
        }
        {
            let mut book = write(&self.inner.book);
            if let Some(roles) = book.assigned.get_mut(principal) {
                roles.remove(role_id);
                if roles.is_empty() {
                    book.assigned.remove(principal);
                }
            }
        }
        self.invalidate();
        Ok(())
    }

    /// The role ids assigned to `principal` (unknown ones included), sorted.
    pub fn roles_of(&self, principal: &str) -> Vec<String> {
        read(&self.inner.book)
            .assigned
            .get(principal)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every principal with at least one role, with its role ids.
    pub fn assignments(&self) -> BTreeMap<String, Vec<String>> {
        read(&self.inner.book)
            .assigned
            .iter()
            .map(|(p, r)| (p.clone(), r.iter().cloned().collect()))
            .collect()
    }

    /// Makes sure some principal holds `admin`: if none does, `principal` (the
    /// bootstrap admin key's) gets it. Returns whether it was assigned.
    pub async fn ensure_admin(&self, principal: &str) -> Result<bool, AccessError> {
        if read(&self.inner.book).holders_of("admin") > 0 {
            return Ok(false);
        }
        self.assign(principal, "admin").await?;
        tracing::info!(
            principal,
            "role 'admin' assigned to the bootstrap principal"
        );
        Ok(true)
    }

    /// What `principal` may do, resolved now (not cached: for questions about
    /// any principal, e.g. `check-permission`).
    pub fn resolve(&self, principal: &str) -> Grants {
        let book = read(&self.inner.book);
        let roles: Vec<&String> = book
            .assigned
            .get(principal)
            .map(|r| r.iter().collect())
            .unwrap_or_default();
        book.rbac.grants(&roles)
    }

    /// What an authenticated `principal` may do, resolved once and cached
    /// until roles or assignments change.
    pub fn grants(&self, principal: &str) -> Arc<Grants> {
        if let Some(g) = read(&self.inner.grants).get(principal) {
            return g.clone();
        }
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let grants = Arc::new(self.resolve(principal));
        let mut cache = write(&self.inner.grants);
        if self.inner.generation.load(Ordering::SeqCst) == generation {
            cache.insert(principal.to_owned(), grants.clone());
        }
        grants
    }

    // ----- limits -----

    fn maybe_sweep(&self, now: Timestamp) {
        let last = self.inner.last_sweep_ms.load(Ordering::Relaxed);
        let every = u64::try_from(SWEEP_EVERY.as_millis()).unwrap_or(u64::MAX);
        if now.as_millis().saturating_sub(last) < every
            || self
                .inner
                .last_sweep_ms
                .compare_exchange(last, now.as_millis(), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let keys = lock(&self.inner.limiter).sweep(now);
        let clients = lock(&self.inner.backoff).sweep(now);
        tracing::debug!(keys, clients, "swept idle rate-limit and backoff entries");
    }

    /// Charges one request to `principal` under `limit` (else the server
    /// default). Every key and token of a principal shares its bucket, so
    /// minting tokens buys no extra requests.
    pub fn rate_check(&self, principal: &str, limit: Option<&RateLimit>) -> Decision {
        let now = self.now();
        self.maybe_sweep(now);
        let limit = limit.copied().unwrap_or(self.inner.default_limit);
        lock(&self.inner.limiter).check_with(principal, &limit, now)
    }

    /// How long `client` must still wait before its key is looked at.
    pub fn auth_blocked(&self, client: &str) -> Option<Duration> {
        let now = self.now();
        self.maybe_sweep(now);
        lock(&self.inner.backoff).check(client, now)
    }

    /// Counts a failed authentication of `client`; returns its new delay.
    pub fn auth_failed(&self, client: &str) -> Duration {
        let now = self.now();
        lock(&self.inner.backoff).record_failure(client, now)
    }

    // ----- audit -----

    /// Records a `SecurityEvent` on the `audit` stream.
    pub fn security_event(
        &self,
        kind: SecurityKind,
        principal: Option<&str>,
        client: &str,
        method: &str,
        path: &str,
        detail: &str,
    ) {
        let metrics = &self.inner.metrics;
        match kind {
            SecurityKind::AuthFailed => metrics.auth_failure(),
            SecurityKind::AccessDenied => metrics.access_denied(),
            SecurityKind::RateLimited => metrics.rate_limited(),
        }
        self.inner.events.emit(
            AUDIT_STREAM.to_owned(),
            SECURITY_EVENT,
            json!({
                "kind": kind.as_str(),
                "principal": principal,
                "client": client,
                "method": method,
                "path": path,
                "detail": detail,
            }),
        );
    }

    /// Records an `AdminChange` on the `audit` stream.
    pub fn admin_change(&self, principal: &str, method: &str, path: &str, status: u16) {
        self.inner.events.emit(
            AUDIT_STREAM.to_owned(),
            ADMIN_CHANGE,
            json!({
                "principal": principal,
                "method": method,
                "path": path,
                "status": status,
            }),
        );
    }
}

/// Checks, inside a handler, a permission an operation needs only for some
/// of what it can do (e.g. `providers:define` to change a provider's env
/// through `PUT /api/providers/{id}`): 403 naming the permission and `what`.
pub fn require(grants: &Grants, permission: &Permission, what: &str) -> Result<(), ApiError> {
    if grants.allows(permission) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PermissionDeniedError",
            format!("requires permission `{permission}` to {what}"),
        ))
    }
}

/// What an operation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Required {
    /// A permission.
    Permission(Permission),
    /// Any authenticated principal (it acts on its own things).
    OwnPrincipal,
}

/// `(method, matched path) → what it needs`, derived from the OpenAPI document.
#[derive(Debug, Clone, Default)]
pub struct RoutePermissions(Arc<HashMap<(Method, String), Required>>);

impl RoutePermissions {
    /// Reads the bearer scopes of every operation of `doc` (the serialized
    /// document). An operation declares exactly one scope: a known
    /// permission or `self`; anything else declares nothing (refused).
    pub fn from_document(doc: &Value) -> Self {
        let mut map = HashMap::new();
        let paths = doc.get("paths").and_then(Value::as_object);
        for (path, item) in paths.into_iter().flatten() {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                    continue;
                };
                let scopes: Vec<&str> = op
                    .get("security")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|req| req.get(crate::openapi::SECURITY_SCHEME))
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let required = match scopes.as_slice() {
                    [SELF_SCOPE] => Some(Required::OwnPrincipal),
                    [one] => match one.parse::<Permission>() {
                        Ok(p) if p.is_known() && !p.is_wildcard() => Some(Required::Permission(p)),
                        _ => None,
                    },
                    _ => None,
                };
                match required {
                    Some(r) => {
                        map.insert((method, path.clone()), r);
                    }
                    None if crate::openapi::is_protected(path) => {
                        tracing::error!(%method, %path, ?scopes, "operation declares no valid permission; it will answer 403");
                    }
                    None => {}
                }
            }
        }
        Self(Arc::new(map))
    }

    /// What `method` on the route `path` needs (HEAD as GET).
    pub fn get(&self, method: &Method, path: &str) -> Option<&Required> {
        self.0.get(&(method.clone(), path.to_owned())).or_else(|| {
            (method == Method::HEAD)
                .then(|| self.0.get(&(Method::GET, path.to_owned())))
                .flatten()
        })
    }

    /// How many operations declare something.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no operation declares anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// State of [`authorize`].
#[derive(Clone)]
pub struct Authz {
    /// Roles, limits, audit.
    pub access: Access,
    /// What each route needs.
    pub routes: RoutePermissions,
}

fn set_rate_headers(resp: &mut Response, d: &Decision) {
    let h = resp.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", u64::from(d.limit)),
        ("ratelimit-remaining", u64::from(d.remaining)),
        ("ratelimit-reset", d.reset_after_secs()),
    ] {
        h.insert(name, HeaderValue::from(value));
    }
    if let Some(secs) = d.retry_after_secs() {
        h.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
}

fn is_mutating(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    )
}

/// Middleware (after `require_key`): rate limit, permission, caller roles,
/// audit. See the [module docs](self).
pub async fn authorize(State(authz): State<Authz>, mut req: Request, next: Next) -> Response {
    let Some(principal) = req.extensions().get::<Principal>().cloned() else {
        return ApiError::unauthorized("not authenticated").into_response();
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let audited = is_mutating(&method) && path.starts_with("/api/");
    let access = &authz.access;
    let grants = access.grants(&principal.id);
    let decision = access.rate_check(&principal.id, grants.rate_limit());
    let mut resp = if !decision.allowed {
        access.security_event(
            SecurityKind::RateLimited,
            Some(&principal.id),
            &client_of(&req),
            method.as_str(),
            &path,
            "rate limit exceeded",
        );
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimitExceeded",
            format!(
                "rate limit of this principal exceeded ({} requests at once); retry in {} s",
                decision.limit,
                decision.retry_after_secs().unwrap_or(1)
            ),
        )
        .into_response()
    } else {
        let matched = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned());
        let required = matched
            .as_deref()
            .and_then(|m| authz.routes.get(&method, m));
        let denial = match required {
            None => Some("this operation declares no permission".to_owned()),
            Some(Required::OwnPrincipal) => None,
            Some(Required::Permission(p)) if grants.allows(p) => None,
            Some(Required::Permission(p)) => Some(format!("requires permission `{p}`")),
        };
        match denial {
            Some(detail) => {
                tracing::info!(principal = %principal.id, %method, %path, %detail, "access denied");
                access.security_event(
                    SecurityKind::AccessDenied,
                    Some(&principal.id),
                    &client_of(&req),
                    method.as_str(),
                    &path,
                    &detail,
                );
                ApiError::new(StatusCode::FORBIDDEN, "PermissionDeniedError", detail)
                    .into_response()
            }
            None => {
                req.extensions_mut()
                    .insert(hangar_mcp::CallerRoles(grants.roles().into()));
                req.extensions_mut().insert(hangar_mcp::CallerCanCall(
                    grants.allows(&Permission::TOOLS_CALL),
                ));
                req.extensions_mut().insert(grants.clone());
                // Debug level, like `tools/call`: nothing is formatted per
                // request unless asked for.
                let span = tracing::debug_span!(
                    "request",
                    method = %method,
                    path = %path,
                    principal = %principal.id,
                );
                tracing::Instrument::instrument(next.run(req), span).await
            }
        }
    };
    set_rate_headers(&mut resp, &decision);
    if audited {
        access.admin_change(
            &principal.id,
            method.as_str(),
            &path,
            resp.status().as_u16(),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_permissions_come_from_the_document() {
        let doc = json!({"paths": {
            "/api/a": {
                "get": {"security": [{"bearer": ["providers:read"]}]},
                "post": {"security": [{"bearer": []}]},
                "put": {"security": [{"bearer": ["nope:nope"]}]},
                "delete": {"security": [{"bearer": ["*"]}]}
            },
            "/api/tokens": {"get": {"security": [{"bearer": ["self"]}]}},
        }});
        let r = RoutePermissions::from_document(&doc);
        assert_eq!(
            r.get(&Method::GET, "/api/a"),
            Some(&Required::Permission(Permission::PROVIDERS_READ))
        );
        assert_eq!(
            r.get(&Method::HEAD, "/api/a"),
            Some(&Required::Permission(Permission::PROVIDERS_READ))
        );
        assert_eq!(r.get(&Method::POST, "/api/a"), None);
        assert_eq!(r.get(&Method::PUT, "/api/a"), None);
        assert_eq!(r.get(&Method::DELETE, "/api/a"), None);
        assert_eq!(
            r.get(&Method::GET, "/api/tokens"),
            Some(&Required::OwnPrincipal)
        );
    }

    #[tokio::test]
    async fn roles_assignments_and_cached_grants() {
        let access = Access::in_memory(EventBus::in_memory());
        assert!(!access.grants("bob").allows(&Permission::PROVIDERS_READ));
        assert!(access.assign("bob", "viewer").await.unwrap());
        assert!(access.grants("bob").allows(&Permission::PROVIDERS_READ));
        let role: Role =
            serde_json::from_value(json!({"id": "deployer", "permissions": ["catalog:deploy"]}))
                .unwrap();
        access.create_role(role.clone()).await.unwrap();
        assert!(matches!(
            access.create_role(role).await,
            Err(AccessError::Exists(_))
        ));
        access.assign("bob", "deployer").await.unwrap();
        assert!(access.grants("bob").allows(&Permission::CATALOG_DEPLOY));
        access.delete_role("deployer").await.unwrap();
        assert!(!access.grants("bob").allows(&Permission::CATALOG_DEPLOY));
        assert_eq!(access.roles_of("bob"), vec!["viewer".to_owned()]);
        assert!(matches!(
            access.delete_role("viewer").await,
            Err(AccessError::Role(RoleError::Reserved(_)))
        ));
        assert!(access.ensure_admin("admin").await.unwrap());
        assert!(!access.ensure_admin("admin").await.unwrap());
        assert!(matches!(
            access.unassign("admin", "admin").await,
            Err(AccessError::LastAdmin(_))
        ));
        assert!(matches!(
            access.assign("bob", "nope").await,
            Err(AccessError::RoleNotFound(_))
        ));
    }

    #[test]
    fn backoff_blocks_after_free_failures() {
        let access = Access::in_memory(EventBus::in_memory());
        let free = AuthBackoffConfig::default().free_failures;
        for _ in 0..free {
            assert_eq!(access.auth_failed("1.2.3.4"), Duration::ZERO);
        }
        assert!(access.auth_blocked("1.2.3.4").is_none());
        assert!(access.auth_failed("1.2.3.4") > Duration::ZERO);
        assert!(access.auth_blocked("1.2.3.4").is_some());
        assert!(access.auth_blocked("5.6.7.8").is_none());
    }
}
