//! Role-based access control: permissions, roles, and what a principal may do.
//!
//! Every REST route and MCP method declares the [`Permission`] it needs. A principal holds
//! roles; its [`Grants`] (resolved once by [`Rbac::grants`]) allow a permission when one of
//! its roles holds that permission or a wildcard covering it. Everything else is denied:
//! unknown roles grant nothing.
//!
//! Which *tools* a principal may call is decided afterwards by the tool policies of
//! [`policy`](crate::policy).
//!
//! # Permissions
//!
//! A permission is `resource:action`. Two wildcards exist: `*` (everything) and
//! `resource:*` (every action on one resource, including actions added in later versions).
//!
//! | permission | allows |
//! |---|---|
//! | `providers:read` | list providers, their status, tools and logs |
//! | `providers:define` | define what runs: create providers, change a provider's env (or anything else that decides what it executes), add catalog entries. **Code execution as the server's user: equivalent to admin.** |
//! | `providers:write` | change a provider's lifecycle settings (description, idle TTL, health checks) and delete providers |
//! | `providers:start` | start, stop and restart providers |
//! | `tools:list` | list tools (MCP `tools/list`, REST tool listings) |
//! | `tools:call` | call tools (MCP `tools/call`), subject to tool policies |
//! | `groups:read` | list groups, members and circuit breakers |
//! | `groups:write` | create, update and delete groups; rebalance |
//! | `config:read` | read, export and diff the config |
//! | `config:write` | reload, import and back up the config |
//! | `catalog:read` | browse the catalog |
//! | `catalog:write` | remove catalog entries (adding one needs `providers:define`) |
//! | `catalog:deploy` | deploy a catalog entry as a provider (deploy-time env only for the entry's declared inputs) |
//! | `system:read` | server info, version, health details and metrics |
//! | `maintenance:write` | maintenance tasks (compaction, snapshots) |
//! | `auth:read` | list API keys (never their secrets), roles, principals and tool policies |
//! | `auth:write` | create and revoke API keys; manage roles, principals and tool policies; answer a held call with `always`. **Can grant itself anything: equivalent to admin.** |
//! | `approvals:read` | list pending permission requests (tool calls held by an `ask` policy) and questions |
//! | `approvals:write` | answer permission requests and questions |
//! | `secrets:read` | list secret names (values are never shown) |
//! | `secrets:write` | create, replace, delete and refresh secrets |
//! | `secrets:use` | reference secrets (`${secret:NAME}`) in what a provider is given at deploy time; as good as reading them |
//! | `tokens:create` | mint personal tokens for oneself (never from a token) |
//! | `audit:read` | read the audit log |
//! | `events:read` | read and stream domain events |
//! | `sessions:read` | list every principal's MCP sessions (anyone sees their own) |
//! | `sessions:admin` | end and abort any principal's MCP sessions (anyone may end or abort their own) |
//!
//! # Built-in roles
//!
//! | role | permissions |
//! |---|---|
//! | `admin` | `*` |
//! | `operator` | `providers:read`, `providers:write`, `providers:start`, `tools:list`, `tools:call`, `groups:read`, `groups:write`, `config:read`, `config:write`, `catalog:read`, `catalog:write`, `catalog:deploy`, `system:read`, `maintenance:write`, `approvals:read`, `approvals:write`, `secrets:read`, `secrets:write`, `events:read`, `tokens:create`, `sessions:read`, `sessions:admin` |
//! | `developer` | `tools:list`, `tools:call`, `providers:read`, `groups:read`, `catalog:read`, `system:read`, `approvals:read`, `tokens:create` |
//! | `viewer` | `providers:read`, `groups:read`, `config:read`, `catalog:read`, `system:read`, `auth:read`, `approvals:read`, `events:read`, `sessions:read` |
//! | `auditor` | `audit:read`, `events:read`, `system:read`, `providers:read`, `groups:read` |
//!
//! Built-in roles cannot be changed or removed, and their ids cannot be reused. Custom roles
//! have ids of 1 to 64 characters from `a-z`, `0-9`, `_` and `-`, and may only hold known
//! permissions (or wildcards over known resources):
//!
//! ```yaml
//! id: deployer
//! description: Deploys catalog entries and restarts providers
//! permissions: [catalog:read, catalog:deploy, providers:read, providers:start]
//! rate_limit: { requests: 120, per_seconds: 60, burst: 20 }
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::policy::Effect;
use crate::ratelimit::{RateLimit, RateLimitError};

#[cfg(test)]
mod tests;

/// Longest role id accepted.
pub const MAX_ROLE_ID_LEN: usize = 64;

/// Longest resource or action segment of a permission.
pub const MAX_PERMISSION_SEGMENT_LEN: usize = 32;

/// The ids of the built-in roles.
pub const BUILTIN_ROLE_IDS: [&str; 5] = ["admin", "operator", "developer", "viewer", "auditor"];

/// A permission: `resource:action`, `resource:*` or `*`.
///
/// Parsed with [`str::parse`] (or from a JSON/YAML string) and shown in the same form. The
/// known ones are associated constants ([`Permission::TOOLS_CALL`], …) listed in
/// [`Permission::KNOWN`]. Parsing checks the syntax only, so stored roles keep loading when a
/// permission is retired; [`Role::validate_custom`] rejects unknown permissions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Permission(Repr);

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Repr {
    /// `*`.
    All,
    /// `resource:*`.
    AnyAction(Cow<'static, str>),
    /// `resource:action`.
    Exact(Cow<'static, str>, Cow<'static, str>),
}

impl Permission {
    /// `*`: every permission.
    pub const ALL: Self = Self(Repr::All);
    /// `providers:read`: list providers, their status, tools and logs.
    pub const PROVIDERS_READ: Self = Self::known("providers", "read");
    /// `providers:define`: define what runs (create providers, change what a provider
    /// executes, add catalog entries); equivalent to admin.
    pub const PROVIDERS_DEFINE: Self = Self::known("providers", "define");
    /// `providers:write`: change lifecycle settings of providers and delete them.
    pub const PROVIDERS_WRITE: Self = Self::known("providers", "write");
    /// `providers:start`: start, stop and restart providers.
    pub const PROVIDERS_START: Self = Self::known("providers", "start");
    /// `tools:list`: list tools.
    pub const TOOLS_LIST: Self = Self::known("tools", "list");
    /// `tools:call`: call tools, subject to tool policies.
    pub const TOOLS_CALL: Self = Self::known("tools", "call");
    /// `groups:read`: list groups, members and circuit breakers.
    pub const GROUPS_READ: Self = Self::known("groups", "read");
    /// `groups:write`: create, update and delete groups; rebalance.
    pub const GROUPS_WRITE: Self = Self::known("groups", "write");
    /// `config:read`: read, export and diff the config.
    pub const CONFIG_READ: Self = Self::known("config", "read");
    /// `config:write`: reload, import and back up the config.
    pub const CONFIG_WRITE: Self = Self::known("config", "write");
    /// `catalog:read`: browse the catalog.
    pub const CATALOG_READ: Self = Self::known("catalog", "read");
    /// `catalog:write`: remove catalog entries.
    pub const CATALOG_WRITE: Self = Self::known("catalog", "write");
    /// `catalog:deploy`: deploy a catalog entry as a provider.
    pub const CATALOG_DEPLOY: Self = Self::known("catalog", "deploy");
    /// `system:read`: server info, version, health details and metrics.
    pub const SYSTEM_READ: Self = Self::known("system", "read");
    /// `maintenance:write`: maintenance tasks (compaction, snapshots).
    pub const MAINTENANCE_WRITE: Self = Self::known("maintenance", "write");
    /// `auth:read`: list API keys (never their secrets), roles, principals and tool policies.
    pub const AUTH_READ: Self = Self::known("auth", "read");
    /// `auth:write`: create and revoke API keys; manage roles, principals and tool policies.
    pub const AUTH_WRITE: Self = Self::known("auth", "write");
    /// `approvals:read`: list pending permission requests and questions.
    pub const APPROVALS_READ: Self = Self::known("approvals", "read");
    /// `approvals:write`: answer permission requests and questions.
    pub const APPROVALS_WRITE: Self = Self::known("approvals", "write");
    /// `secrets:read`: list secret names (values are never shown).
    pub const SECRETS_READ: Self = Self::known("secrets", "read");
    /// `secrets:write`: create, replace, delete and refresh secrets.
    pub const SECRETS_WRITE: Self = Self::known("secrets", "write");
    /// `secrets:use`: reference secrets in what a provider is given at deploy time.
    pub const SECRETS_USE: Self = Self::known("secrets", "use");
    /// `tokens:create`: mint personal tokens for oneself.
    pub const TOKENS_CREATE: Self = Self::known("tokens", "create");
    /// `audit:read`: read the audit log.
    pub const AUDIT_READ: Self = Self::known("audit", "read");
    /// `events:read`: read and stream domain events.
    pub const EVENTS_READ: Self = Self::known("events", "read");
    /// `sessions:read`: list every principal's MCP sessions.
    pub const SESSIONS_READ: Self = Self::known("sessions", "read");
    /// `sessions:admin`: end and abort any principal's MCP sessions.
    pub const SESSIONS_ADMIN: Self = Self::known("sessions", "admin");

    /// Every permission Hangar checks, in documentation order.
    pub const KNOWN: [Self; 27] = [
        Self::PROVIDERS_READ,
        Self::PROVIDERS_DEFINE,
        Self::PROVIDERS_WRITE,
        Self::PROVIDERS_START,
        Self::TOOLS_LIST,
        Self::TOOLS_CALL,
        Self::GROUPS_READ,
        Self::GROUPS_WRITE,
        Self::CONFIG_READ,
        Self::CONFIG_WRITE,
        Self::CATALOG_READ,
        Self::CATALOG_WRITE,
        Self::CATALOG_DEPLOY,
        Self::SYSTEM_READ,
        Self::MAINTENANCE_WRITE,
        Self::AUTH_READ,
        Self::AUTH_WRITE,
        Self::APPROVALS_READ,
        Self::APPROVALS_WRITE,
        Self::SECRETS_READ,
        Self::SECRETS_WRITE,
        Self::SECRETS_USE,
        Self::TOKENS_CREATE,
        Self::AUDIT_READ,
        Self::EVENTS_READ,
        Self::SESSIONS_READ,
        Self::SESSIONS_ADMIN,
    ];

    const fn known(resource: &'static str, action: &'static str) -> Self {
        Self(Repr::Exact(Cow::Borrowed(resource), Cow::Borrowed(action)))
    }

    /// `resource:action`, checked like a parsed string.
    pub fn new(resource: &str, action: &str) -> Result<Self, ParsePermissionError> {
        format!("{resource}:{action}").parse()
    }

    /// The resource; `None` for `*`.
    pub fn resource(&self) -> Option<&str> {
        match &self.0 {
            Repr::All => None,
            Repr::AnyAction(resource) | Repr::Exact(resource, _) => Some(resource),
        }
    }

    /// The action; `None` for `*` and `resource:*`.
    pub fn action(&self) -> Option<&str> {
        match &self.0 {
            Repr::All | Repr::AnyAction(_) => None,
            Repr::Exact(_, action) => Some(action),
        }
    }

    /// Whether this is `*` or `resource:*`.
    pub fn is_wildcard(&self) -> bool {
        !matches!(self.0, Repr::Exact(..))
    }

    /// Whether holding `self` implies holding `other`: `*` covers everything, `resource:*`
    /// covers itself and every `resource:action`, and an exact permission covers itself.
    pub fn covers(&self, other: &Permission) -> bool {
        match (&self.0, &other.0) {
            (Repr::All, _) => true,
            (Repr::AnyAction(mine), Repr::AnyAction(theirs) | Repr::Exact(theirs, _)) => {
                mine == theirs
            }
            (Repr::Exact(..), Repr::Exact(..)) => self == other,
            (Repr::AnyAction(_) | Repr::Exact(..), Repr::All)
            | (Repr::Exact(..), Repr::AnyAction(_)) => false,
        }
    }

    /// Whether Hangar checks this permission: one of [`Permission::KNOWN`], `*`, or
    /// `resource:*` over a resource of a known permission.
    pub fn is_known(&self) -> bool {
        match &self.0 {
            Repr::All => true,
            Repr::AnyAction(resource) => Self::KNOWN
                .iter()
                .any(|known| known.resource() == Some(resource)),
            Repr::Exact(..) => Self::KNOWN.contains(self),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::All => f.write_str("*"),
            Repr::AnyAction(resource) => write!(f, "{resource}:*"),
            Repr::Exact(resource, action) => write!(f, "{resource}:{action}"),
        }
    }
}

/// A string that is not a permission.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid permission `{value}`: {reason}")]
pub struct ParsePermissionError {
    /// The string as given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ParsePermissionError {
    fn new(value: &str, reason: impl Into<String>) -> Self {
        Self {
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

impl FromStr for Permission {
    type Err = ParsePermissionError;

    /// Accepts `*`, `resource:*` and `resource:action`, where resource and action are 1 to
    /// 32 characters of `a-z`, `0-9`, `_` and `-` starting with a letter.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "*" {
            return Ok(Self::ALL);
        }
        let Some((resource, action)) = s.split_once(':') else {
            return Err(ParsePermissionError::new(
                s,
                "expected `resource:action`, `resource:*` or `*`",
            ));
        };
        if resource == "*" {
            return Err(ParsePermissionError::new(
                s,
                "the resource cannot be a wildcard (use `*` for everything)",
            ));
        }
        check_segment(s, "resource", resource)?;
        if action == "*" {
            return Ok(Self(Repr::AnyAction(Cow::Owned(resource.to_owned()))));
        }
        check_segment(s, "action", action)?;
        Ok(Self(Repr::Exact(
            Cow::Owned(resource.to_owned()),
            Cow::Owned(action.to_owned()),
        )))
    }
}

fn check_segment(value: &str, what: &str, segment: &str) -> Result<(), ParsePermissionError> {
    let starts_with_letter = segment.starts_with(|c: char| c.is_ascii_lowercase());
    let valid_chars = segment
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if starts_with_letter && valid_chars && segment.len() <= MAX_PERMISSION_SEGMENT_LEN {
        Ok(())
    } else {
        Err(ParsePermissionError::new(
            value,
            format!(
                "the {what} `{segment}` must be 1 to {MAX_PERMISSION_SEGMENT_LEN} characters of \
                 a-z, 0-9, `_` or `-`, starting with a letter"
            ),
        ))
    }
}

impl TryFrom<String> for Permission {
    type Error = ParsePermissionError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Permission> for String {
    fn from(permission: Permission) -> Self {
        permission.to_string()
    }
}

/// A named set of permissions that principals are given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Unique id: 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
    pub id: String,
    /// What the role is for.
    #[serde(default)]
    pub description: String,
    /// What the role allows.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Whether Hangar defines the role (read-only; custom roles must leave it `false`).
    #[serde(default)]
    pub builtin: bool,
    /// Request rate allowed to each API key holding the role; `None` = the server default.
    /// A key with several roles gets the most generous of their limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

impl Role {
    /// Whether one of the role's permissions covers `required`.
    pub fn allows(&self, required: &Permission) -> bool {
        self.permissions.iter().any(|held| held.covers(required))
    }

    /// Checks a custom role: a valid id that no built-in role uses, `builtin` unset, only
    /// known permissions, and a valid rate limit.
    pub fn validate_custom(&self) -> Result<(), RoleError> {
        validate_role_id(&self.id)?;
        if is_builtin_role_id(&self.id) {
            return Err(RoleError::Reserved(self.id.clone()));
        }
        if self.builtin {
            return Err(RoleError::BuiltinFlag(self.id.clone()));
        }
        if let Some(unknown) = self.permissions.iter().find(|p| !p.is_known()) {
            return Err(RoleError::UnknownPermission {
                role: self.id.clone(),
                permission: unknown.clone(),
            });
        }
        if let Some(limit) = &self.rate_limit {
            limit.validate().map_err(|source| RoleError::RateLimit {
                role: self.id.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// An invalid role, role change or role assignment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// The id does not match `^[a-z0-9_-]{1,64}$`.
    #[error(
        "invalid role id `{0}`: expected 1 to {MAX_ROLE_ID_LEN} characters of a-z, 0-9, `_` or `-`"
    )]
    InvalidId(String),
    /// The id is a built-in role's: it cannot be defined, changed or removed.
    #[error("role id `{0}` is reserved for a built-in role")]
    Reserved(String),
    /// A custom role claims to be built in.
    #[error("role `{0}`: only Hangar's own roles can be built in (`builtin` must be false)")]
    BuiltinFlag(String),
    /// A custom role holds a permission Hangar does not check.
    #[error("role `{role}`: unknown permission `{permission}`")]
    UnknownPermission {
        /// The role.
        role: String,
        /// The unknown permission.
        permission: Permission,
    },
    /// A custom role's rate limit is invalid.
    #[error("role `{role}`: {source}")]
    RateLimit {
        /// The role.
        role: String,
        /// What is wrong with the limit.
        #[source]
        source: RateLimitError,
    },
    /// The same custom role id was given twice.
    #[error("role `{0}` is defined twice")]
    Duplicate(String),
    /// No role has this id.
    #[error("unknown role `{0}`")]
    Unknown(String),
}

/// Checks a role id against `^[a-z0-9_-]{1,64}$`.
pub fn validate_role_id(id: &str) -> Result<(), RoleError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ROLE_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(RoleError::InvalidId(id.to_owned()))
    }
}

/// Whether `id` is a built-in role's.
pub fn is_builtin_role_id(id: &str) -> bool {
    BUILTIN_ROLE_IDS.contains(&id)
}

/// The five built-in roles (see the [module docs](self) for their permissions).
pub fn builtin_roles() -> Vec<Role> {
    use Permission as P;
    let role = |id: &str, description: &str, permissions: &[P]| Role {
        id: id.to_owned(),
        description: description.to_owned(),
        permissions: permissions.to_vec(),
        builtin: true,
        rate_limit: None,
    };
    vec![
        role(
            "admin",
            "Everything, including keys, roles and policies",
            &[P::ALL],
        ),
        role(
            "operator",
            "Runs Hangar: provider lifecycle, groups, config, catalog deploys, secrets and \
             approvals; not what providers execute, keys, roles or policies",
            &[
                P::PROVIDERS_READ,
                P::PROVIDERS_WRITE,
                P::PROVIDERS_START,
                P::TOOLS_LIST,
                P::TOOLS_CALL,
                P::GROUPS_READ,
                P::GROUPS_WRITE,
                P::CONFIG_READ,
                P::CONFIG_WRITE,
                P::CATALOG_READ,
                P::CATALOG_WRITE,
                P::CATALOG_DEPLOY,
                P::SYSTEM_READ,
                P::MAINTENANCE_WRITE,
                P::APPROVALS_READ,
                P::APPROVALS_WRITE,
                P::SECRETS_READ,
                P::SECRETS_WRITE,
                P::EVENTS_READ,
                P::TOKENS_CREATE,
                P::SESSIONS_READ,
                P::SESSIONS_ADMIN,
            ],
        ),
        role(
            "developer",
            "Lists and calls tools; reads providers, groups and the catalog",
            &[
                P::TOOLS_LIST,
                P::TOOLS_CALL,
                P::PROVIDERS_READ,
                P::GROUPS_READ,
                P::CATALOG_READ,
                P::SYSTEM_READ,
                P::APPROVALS_READ,
                P::TOKENS_CREATE,
            ],
        ),
        role(
            "viewer",
            "Reads everything except the audit log and secret names; calls nothing",
            &[
                P::PROVIDERS_READ,
                P::GROUPS_READ,
                P::CONFIG_READ,
                P::CATALOG_READ,
                P::SYSTEM_READ,
                P::AUTH_READ,
                P::APPROVALS_READ,
                P::EVENTS_READ,
                P::SESSIONS_READ,
            ],
        ),
        role(
            "auditor",
            "Reads the audit log and events",
            &[
                P::AUDIT_READ,
                P::EVENTS_READ,
                P::SYSTEM_READ,
                P::PROVIDERS_READ,
                P::GROUPS_READ,
            ],
        ),
    ]
}

/// All roles, built-in and custom, by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rbac {
    roles: BTreeMap<String, Role>,
}

impl Default for Rbac {
    fn default() -> Self {
        Self::new()
    }
}

impl Rbac {
    /// The built-in roles only.
    pub fn new() -> Self {
        let roles = builtin_roles()
            .into_iter()
            .map(|role| (role.id.clone(), role))
            .collect();
        Self { roles }
    }

    /// The built-in roles plus `custom` ones, each validated with [`Role::validate_custom`];
    /// an id given twice is an error.
    pub fn with_custom_roles(custom: impl IntoIterator<Item = Role>) -> Result<Self, RoleError> {
        let mut rbac = Self::new();
        for role in custom {
            if rbac.roles.contains_key(&role.id) && !is_builtin_role_id(&role.id) {
                return Err(RoleError::Duplicate(role.id));
            }
            rbac.insert(role)?;
        }
        Ok(rbac)
    }

    /// The role with this id.
    pub fn get(&self, id: &str) -> Option<&Role> {
        self.roles.get(id)
    }

    /// Every role, by id.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// Adds or replaces a custom role (validated); returns the role it replaced.
    pub fn insert(&mut self, role: Role) -> Result<Option<Role>, RoleError> {
        role.validate_custom()?;
        Ok(self.roles.insert(role.id.clone(), role))
    }

    /// Removes a custom role; returns it, or `None` if there was none. Principals that held
    /// it simply lose its permissions.
    pub fn remove(&mut self, id: &str) -> Result<Option<Role>, RoleError> {
        if is_builtin_role_id(id) {
            return Err(RoleError::Reserved(id.to_owned()));
        }
        Ok(self.roles.remove(id))
    }

    /// Checks that every role of an assignment exists (before storing it).
    pub fn check_assignment<S: AsRef<str>>(&self, role_ids: &[S]) -> Result<(), RoleError> {
        match role_ids
            .iter()
            .find(|id| !self.roles.contains_key(id.as_ref()))
        {
            Some(unknown) => Err(RoleError::Unknown(unknown.as_ref().to_owned())),
            None => Ok(()),
        }
    }

    /// What a principal holding `role_ids` may do. Unknown ids are ignored (they grant
    /// nothing).
    pub fn grants<S: AsRef<str>>(&self, role_ids: &[S]) -> Grants {
        let mut roles: Vec<&Role> = role_ids
            .iter()
            .filter_map(|id| self.roles.get(id.as_ref()))
            .collect();
        roles.sort_by(|a, b| a.id.cmp(&b.id));
        roles.dedup_by(|a, b| a.id == b.id);
        let mut permissions: Vec<Permission> = roles
            .iter()
            .flat_map(|role| role.permissions.iter().cloned())
            .collect();
        permissions.sort();
        permissions.dedup();
        let minimal = permissions
            .iter()
            .filter(|p| !permissions.iter().any(|q| q != *p && q.covers(p)))
            .cloned()
            .collect();
        let rate_limit = roles
            .iter()
            .filter_map(|role| role.rate_limit)
            .reduce(|a, b| if b.is_more_generous_than(&a) { b } else { a });
        Grants {
            roles: roles.iter().map(|role| role.id.clone()).collect(),
            permissions: minimal,
            rate_limit,
        }
    }

    /// Whether a principal holding `role_ids` may do `required` (see [`Rbac::grants`]).
    pub fn allows<S: AsRef<str>>(&self, role_ids: &[S], required: &Permission) -> bool {
        role_ids
            .iter()
            .filter_map(|id| self.roles.get(id.as_ref()))
            .any(|role| role.allows(required))
    }
}

/// What one principal may do: its known roles and their permissions, resolved once (e.g. when
/// its API key is authenticated) and checked on each request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Grants {
    roles: Vec<String>,
    permissions: Vec<Permission>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RateLimit>,
}

impl Grants {
    /// Whether one of the permissions covers `required`.
    pub fn allows(&self, required: &Permission) -> bool {
        self.permissions.iter().any(|held| held.covers(required))
    }

    /// The ids of the known roles held, sorted (what tool policies match on).
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The permissions held, sorted, without duplicates or permissions a held wildcard covers.
    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }

    /// The most generous rate limit among the roles; `None` = the server default.
    pub fn rate_limit(&self) -> Option<&RateLimit> {
        self.rate_limit.as_ref()
    }

    /// The effect of a tool call no policy matches: allow with `tools:call`, deny without.
    pub fn default_tool_effect(&self) -> Effect {
        Effect::default_for(self.allows(&Permission::TOOLS_CALL))
    }
}
