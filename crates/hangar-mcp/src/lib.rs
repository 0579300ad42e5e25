//! Hangar's MCP layer, on top of `rmcp`.
//!
//! - [`upstream`]: the client session to one provider ([`Upstream`]), shared
//!   by every downstream client, with progress and cancellation forwarding.
//! - [`catalog`]: the aggregated, immutable view of all providers' tools,
//!   resources and prompts, with routing.
//! - [`server`]: [`AggregatingServer`], the MCP server handler clients talk
//!   to, behind the small [`Backend`] trait the runtime implements.
//! - [`sessions`]: the 2025-era sessions Hangar's own `/mcp` front serves
//!   (small entries, no task per session).
//! - [`remote`]: the Streamable HTTP client transport of remote providers
//!   (their headers, never the caller's; link-local addresses refused).
//!
//! API boundary: this crate knows nothing about processes, containers or
//! storage.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod catalog;
pub mod error;
pub mod gate;
pub mod jsonrpc;
mod link;
pub mod remote;
pub mod server;
pub mod sessions;
pub mod trace;
pub mod upstream;

pub use catalog::{Catalog, Listed, PromptRef, ProviderNaming, ResourceCollision};
pub use error::UpstreamError;
pub use gate::{
    Approval, AuditOutcome, AuditVerdict, CallAudit, ElicitationAsk, HeldCall, Questioner,
    arguments_digest,
};
pub use rmcp;
pub use server::{
    AggregatingServer, Backend, BackendError, CallReport, CallerCanCall, CallerId, CallerRoles,
    Incoming, Lease, tools_result,
};
pub use sessions::{ClientAnswer, RecentCall, SessionEntry, SessionInit, SessionTable};
pub use upstream::{
    ClientPeer, ClientRequests, DownstreamCall, EventSink, ProgressSink, ProviderListing, Upstream,
    UpstreamEvent,
};
