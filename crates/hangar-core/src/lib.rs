#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
//! Hangar's domain core: the types and rules every other crate builds on.
//!
//! This crate is pure and synchronous. It does no IO (apart from parsing strings it is
//! handed), spawns nothing and never reads a clock: every function that needs the time takes
//! a [`Timestamp`] supplied by the caller, so supervisors can be tested on paused or injected
//! time.
//!
//! - [`spec`]: [`ProviderSpec`], how to run or reach one provider, and its validation.
//! - [`state`]: the provider state machine ([`ProviderStateMachine`]) with failure counting and
//!   restart backoff.
//! - [`naming`]: the tool names clients see (`<provider>__<tool>`), shortening and collisions.
//! - [`group`]: groups of providers ([`GroupSpec`]), member selection ([`Balancer`]) and
//!   per-member circuit breakers ([`CircuitBreaker`]).
//! - [`rbac`]: permissions, built-in and custom roles, and what a principal may do ([`Rbac`],
//!   [`Grants`]).
//! - [`policy`]: tool policies (allow / ask / deny per provider and tool) and [`evaluate`].
//! - [`ratelimit`]: per-key rate limits ([`RateLimiter`]) and the failed-auth slowdown
//!   ([`AuthBackoff`]).
//! - [`config`]: the YAML config model ([`HangarConfig`]) with errors that name field and line.
//! - [`error`]: [`ErrorOrigin`], the tag other crates put on their errors.

pub mod config;
pub mod error;
pub mod group;
pub mod naming;
pub mod net;
pub mod policy;
pub mod ratelimit;
pub mod rbac;
pub mod spec;
pub mod state;

pub use config::{ConfigError, HangarConfig, ServerSettings};
pub use error::ErrorOrigin;
pub use group::{
    Admission, Admitted, Balancer, BreakerConfig, BreakerState, BreakerStatus, BreakerTransition,
    CallOutcome, CircuitBreaker, GroupSpec, GroupState, MemberSpec, MemberView, ParseStrategyError,
    Permit, Selection, Strategy, group_state,
};
pub use naming::{
    Collision, DEFAULT_SEPARATOR, MAX_TOOL_NAME_LEN, ToolIndex, ToolRef, exposed_name,
};
pub use policy::{
    Effect, ParseEffectError, PolicyError, PolicyKind, Subject, ToolPolicy, Verdict, evaluate,
    evaluate_kind, glob_match,
};
pub use ratelimit::{
    AuthBackoff, AuthBackoffConfig, Decision, RateLimit, RateLimitError, RateLimiter,
};
pub use rbac::{
    BUILTIN_ROLE_IDS, Grants, ParsePermissionError, Permission, Rbac, Role, RoleError,
    builtin_roles, is_builtin_role_id, validate_role_id,
};
pub use spec::{
    ParseModeError, ProviderMode, ProviderPolicy, ProviderSpec, SpecError, validate_provider_id,
    validate_scope_id,
};
pub use state::{
    BackoffPolicy, FailurePolicy, ProviderEvent, ProviderState, ProviderStateMachine, Timestamp,
    Transition, TransitionError,
};
