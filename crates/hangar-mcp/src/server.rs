//! The downstream side: the MCP server handler every client talks to.
//!
//! [`AggregatingServer`] serves the [`Catalog`](crate::Catalog) of a
//! [`Backend`] (the runtime) and routes each request to the provider that owns
//! the tool, resource or prompt. It is created once per client session (or
//! per request for stateless 2026-07-28 clients), so it is a thin handle.

// `logging/setLevel` is deprecated by SEP-2577; 2025-era clients still send it.
#![allow(deprecated)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hangar_core::{Effect, ErrorOrigin, PolicyKind};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
    Implementation, JsonObject, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    SubscriptionFilter,
};
use rmcp::model::{ClientCapabilities, ProgressToken};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::catalog::Catalog;
use crate::error::UpstreamError;
use crate::gate::{Approval, AuditOutcome, AuditVerdict, CallAudit, HeldCall, Questioner};
use crate::trace::TraceContext;
use crate::upstream::{ClientPeer, DownstreamCall, ProgressSink, Upstream};

/// A provider connection handed out for one request. Dropping it ends the
/// request's use of the provider (the runtime counts in-flight calls with it).
pub struct Lease {
    /// The provider connection.
    pub upstream: Arc<Upstream>,
    /// How long one request may take.
    pub call_timeout: Duration,
    /// The provider that serves the request: a group's chosen member, or the
    /// provider that was asked for.
    pub target: String,
    /// Whether another target may take the request when this one could not
    /// receive it (a group with members left to try).
    pub retryable: bool,
    /// Runtime bookkeeping: read back by [`Backend::report`], released on drop.
    pub guard: Box<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("target", &self.target)
            .field("retryable", &self.retryable)
            .finish_non_exhaustive()
    }
}

/// Why the backend could not hand out a provider.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No provider has this id.
    #[error("unknown provider '{0}'")]
    UnknownProvider(String),
    /// The provider failed to start or is not reachable (its own failure:
    /// counts on its breaker).
    #[error("provider '{provider}' is unavailable: {message}")]
    Unavailable {
        /// The provider's id.
        provider: String,
        /// What went wrong.
        message: String,
    },
    /// Hangar would not start the provider (being removed, shutting down):
    /// not the provider's failure.
    #[error("provider '{provider}' is unavailable: {message}")]
    Refused {
        /// The provider's id.
        provider: String,
        /// What went wrong.
        message: String,
    },
    /// A Hangar limit was reached (e.g. `server.max_running_providers`):
    /// not the provider's failure.
    #[error("{0}")]
    Overloaded(String),
}

impl BackendError {
    /// Where the failure came from: only `upstream` ones are the provider's
    /// (and count on a group member's breaker).
    pub fn origin(&self) -> ErrorOrigin {
        match self {
            Self::UnknownProvider(_) => ErrorOrigin::Downstream,
            Self::Unavailable { .. } => ErrorOrigin::Upstream,
            Self::Refused { .. } | Self::Overloaded(_) => ErrorOrigin::Hangar,
        }
    }

    fn to_error_data(&self) -> ErrorData {
        ErrorData::internal_error(
            self.to_string(),
            Some(serde_json::json!({"origin": self.origin().as_str()})),
        )
    }
}

/// Who is calling: put into the HTTP request's extensions by the layer that
/// authenticated it; recorded with each call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId(pub String);

/// The caller's role ids (sorted, known roles only), put into the HTTP
/// request's extensions next to [`CallerId`] by the layer that authorized it.
/// `call_tool`/`list_tools` use them for `tools:call` and tool policies; a
/// request without them carries no roles (deny by default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerRoles(pub std::sync::Arc<[String]>);

/// Whether the caller holds `tools:call`, which `tools/call`, `resources/read`
/// and `prompts/get` need (listing needs `tools:list`, checked before the
/// request reaches MCP). Set by the HTTP layer that authorized the request;
/// absent only when no auth layer is in front (an in-process client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerCanCall(pub bool);

/// One client request as the handler sees it, whichever front it came
/// through: rmcp's (an in-process client, see [`Incoming::of`]) or Hangar's
/// own Streamable HTTP front, which builds it from the HTTP request.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The authenticated principal, when known.
    pub caller: Option<String>,
    /// Its role ids (see [`CallerRoles`]).
    pub roles: Arc<[String]>,
    /// Whether it holds `tools:call` (see [`CallerCanCall`]).
    pub can_call: bool,
    /// A stateless 2026-07-28 request (no server-to-client requests; results
    /// carry `resultType`).
    pub stateless: bool,
    /// The client's capabilities (its `initialize`, or the request's `_meta`).
    pub capabilities: Option<ClientCapabilities>,
    /// The request's progress token, when it asked for progress.
    pub progress_token: Option<ProgressToken>,
    /// Cancelled when the client cancels the request.
    pub ct: CancellationToken,
    /// The client's trace context (`_meta`, else the HTTP headers).
    pub trace: Option<TraceContext>,
    /// Where a provider's server-to-client requests go (`None`: the client
    /// takes none).
    pub peer: Option<ClientPeer>,
    /// Where progress goes.
    pub progress: ProgressSink,
    /// The client's JSON-RPC id of the request, as text.
    pub request_id: Option<String>,
}

impl Incoming {
    /// The request rmcp hands a [`ServerHandler`] method.
    pub fn of(context: &RequestContext<RoleServer>) -> Self {
        let parts = context.extensions.get::<http::request::Parts>();
        let progress_token = context.meta.get_progress_token();
        Self {
            caller: parts
                .and_then(|p| p.extensions.get::<CallerId>())
                .map(|c| c.0.clone()),
            roles: parts
                .and_then(|p| p.extensions.get::<CallerRoles>())
                .map_or_else(|| Arc::from(Vec::new()), |r| r.0.clone()),
            can_call: parts
                .and_then(|p| p.extensions.get::<CallerCanCall>())
                .is_none_or(|c| c.0),
            stateless: tool_call::is_stateless(context),
            capabilities: context.client_capabilities(),
            progress: match progress_token {
                Some(_) => ProgressSink::Peer(context.peer.clone()),
                None => ProgressSink::None,
            },
            progress_token,
            ct: context.ct.clone(),
            trace: incoming_trace(context),
            peer: Some(ClientPeer::Rmcp(context.peer.clone())),
            request_id: Some(crate::jsonrpc::id_text(&context.id)),
        }
    }
}

/// Refuses the request unless the caller may call (see [`CallerCanCall`]).
fn check_can_call(incoming: &Incoming, method: &str) -> Result<(), ErrorData> {
    if !incoming.can_call {
        return Err(ErrorData::invalid_request(
            format!("permission denied: {method} needs the tools:call permission"),
            None,
        ));
    }
    Ok(())
}

/// What happened to one forwarded call, for health accounting and history.
#[derive(Debug)]
pub struct CallReport<'a> {
    /// The lease the call ran on.
    pub lease: &'a Lease,
    /// A tool call, a resource read or a prompt get.
    pub kind: PolicyKind,
    /// The provider's own tool (or prompt) name, or the resource URI.
    pub tool: &'a str,
    /// The authenticated caller, if known.
    pub principal: Option<&'a str>,
    /// Size of the JSON arguments in bytes (never the values).
    pub arguments_bytes: usize,
    /// Time spent in the provider.
    pub duration: Duration,
    /// The failure, if the call failed at the transport or protocol level.
    pub error: Option<&'a UpstreamError>,
    /// The tool itself reported an error (`isError: true`).
    pub tool_error: bool,
}

/// What the aggregating server needs from the runtime.
pub trait Backend: Send + Sync + 'static {
    /// The current catalog snapshot (lock-free).
    fn catalog(&self) -> Arc<Catalog>;
    /// Starts providers whose lists are unknown and waits until they are listed
    /// (or failed).
    fn ensure_listed(&self) -> impl Future<Output = ()> + Send + '_;
    /// A ready connection for `provider` (a provider or a group), starting it
    /// if needed (single-flight). `tried` lists targets that already failed to
    /// receive this request; a group picks another member.
    fn acquire<'a>(
        &'a self,
        provider: &'a str,
        tried: &'a [String],
    ) -> impl Future<Output = Result<Lease, BackendError>> + Send + 'a;
    /// Reports a finished call.
    fn report(&self, report: CallReport<'_>);
    /// Bumped whenever the catalog changes.
    fn changes(&self) -> watch::Receiver<u64>;
    /// The policy verdict for `caller` holding `roles` on `name` (a tool's or
    /// prompt's own name, or a resource URI, by `kind`) of `provider`. For a
    /// group, the group's policies and every member's apply (the strictest
    /// wins), so a group never lifts a member's deny. In memory, no IO.
    fn verdict(
        &self,
        kind: PolicyKind,
        caller: Option<&str>,
        roles: &[String],
        provider: &str,
        name: &str,
    ) -> Effect;
    /// The digest of a request's arguments kept in audit records and
    /// permission requests (keyed with a server secret; never the values).
    fn arguments_digest(&self, arguments: Option<&JsonObject>) -> String;
    /// Holds a call (an `ask` verdict) as a pending permission request until it
    /// is answered or expires. Dropping the future withdraws the request.
    fn request_approval(&self, call: HeldCall) -> impl Future<Output = Approval> + Send + 'static {
        let _ = call;
        std::future::ready(Approval::Rejected {
            message: Some("approvals are not available".into()),
        })
    }
    /// Where a provider's elicitation goes when the calling client cannot answer it.
    fn questioner(&self) -> Option<Arc<dyn Questioner>> {
        None
    }
    /// Records the audit of one `tools/call`, `resources/read` or
    /// `prompts/get` (denied ones included).
    fn audit(&self, _audit: CallAudit<'_>) {}
    /// Why provider `provider` could not start (its last failure), when it
    /// is not running.
    fn unavailable_cause(&self, provider: &str) -> Option<String> {
        let _ = provider;
        None
    }
}

static NEXT_CLIENT_KEY: AtomicU64 = AtomicU64::new(1);

/// The MCP server handler clients talk to.
pub struct AggregatingServer<B: Backend> {
    backend: Arc<B>,
    client_key: u64,
}

impl<B: Backend> Clone for AggregatingServer<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            client_key: self.client_key,
        }
    }
}

impl<B: Backend> AggregatingServer<B> {
    /// A handler for one client session.
    pub fn new(backend: Arc<B>) -> Self {
        Self::for_session(backend, Self::next_client_key())
    }

    /// A fresh session number (see [`crate::sessions::SessionEntry::client_key`]).
    pub fn next_client_key() -> u64 {
        NEXT_CLIENT_KEY.fetch_add(1, Ordering::Relaxed)
    }

    /// The handler of the session numbered `client_key`.
    pub fn for_session(backend: Arc<B>, client_key: u64) -> Self {
        Self {
            backend,
            client_key,
        }
    }

    async fn catalog_listed(&self) -> Arc<Catalog> {
        let catalog = self.backend.catalog();
        if catalog.unlisted().is_empty() {
            return catalog;
        }
        self.backend.ensure_listed().await;
        self.backend.catalog()
    }

    /// Policies, approval and audit for a resource read or prompt get:
    /// `None` when a policy denies it (audited); otherwise the request may
    /// proceed and must report its outcome through [`Admitted::finish`]. A
    /// rejected or expired `ask` is an error for the client.
    async fn gate(
        &self,
        incoming: &Incoming,
        kind: PolicyKind,
        provider: &str,
        name: &str,
        arguments: Option<&JsonObject>,
    ) -> Result<Option<Admitted<'_, B>>, ErrorData> {
        let caller = tool_call::Caller::of(incoming);
        let effect = caller.verdict(self.backend.as_ref(), kind, provider, name);
        let admitted = Admitted {
            backend: self.backend.as_ref(),
            principal: caller.id.clone(),
            provider: provider.to_owned(),
            kind,
            name: name.to_owned(),
            digest: self.backend.arguments_digest(arguments),
            started: Instant::now(),
            verdict: AuditVerdict::Allow,
            downstream: self.downstream(incoming),
        };
        match effect {
            Effect::Deny => {
                admitted.record(AuditVerdict::Deny, AuditOutcome::Denied);
                Ok(None)
            }
            Effect::Allow => Ok(Some(admitted)),
            Effect::Ask => {
                let held = HeldCall {
                    principal: caller.id,
                    provider: provider.to_owned(),
                    kind,
                    tool: name.to_owned(),
                    arguments_digest: admitted.digest.clone(),
                };
                let wait = self.backend.request_approval(held);
                let what = match kind {
                    PolicyKind::Resource => "resource read",
                    PolicyKind::Prompt => "prompt",
                    PolicyKind::Tool => "tool call",
                };
                match tool_call::wait_for_approval(wait, &admitted.downstream).await {
                    Some(Approval::Approved) => Ok(Some(Admitted {
                        verdict: AuditVerdict::Approved,
                        ..admitted
                    })),
                    Some(Approval::Rejected { message }) => {
                        admitted.record(AuditVerdict::Rejected, AuditOutcome::Rejected);
                        let why = message.map(|m| format!(": {m}")).unwrap_or_default();
                        Err(ErrorData::invalid_request(
                            format!("{what} rejected by a reviewer{why}"),
                            None,
                        ))
                    }
                    Some(Approval::Expired { after }) => {
                        admitted.record(AuditVerdict::Expired, AuditOutcome::Expired);
                        Err(ErrorData::invalid_request(
                            format!(
                                "{what} not approved within {} s: the permission request expired",
                                after.as_secs()
                            ),
                            None,
                        ))
                    }
                    None => {
                        admitted.record(AuditVerdict::Expired, AuditOutcome::Cancelled);
                        Err(ErrorData::internal_error(
                            format!("the {what} was cancelled while waiting for approval"),
                            None,
                        ))
                    }
                }
            }
        }
    }

    fn downstream(&self, incoming: &Incoming) -> DownstreamCall {
        DownstreamCall {
            peer: incoming.peer.clone(),
            progress: incoming.progress.clone(),
            progress_token: incoming.progress_token.clone(),
            capabilities: incoming.capabilities.clone(),
            ct: incoming.ct.clone(),
            client_key: self.client_key,
            // A 2026-07-28 call takes server requests only through Hangar's
            // own bridge (its front turns them into input-required results).
            server_requests: !incoming.stateless
                || matches!(incoming.peer, Some(ClientPeer::Front(_))),
            questioner: self.backend.questioner(),
            tool: None,
            principal: None,
            trace: incoming.trace.clone(),
            request_id: incoming.request_id.clone(),
        }
    }
}

/// The client's trace context: the request's `_meta` (SEP-414), else the
/// HTTP request's `traceparent`/`tracestate` headers.
fn incoming_trace(context: &RequestContext<RoleServer>) -> Option<TraceContext> {
    TraceContext::from_meta(&context.meta).or_else(|| {
        let headers = &context.extensions.get::<http::request::Parts>()?.headers;
        let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        TraceContext::new(value("traceparent")?, value("tracestate"))
    })
}

mod tool_call;

/// A resource read or prompt get the policies let through: what its audit
/// record needs.
struct Admitted<'a, B: Backend> {
    backend: &'a B,
    principal: Option<String>,
    provider: String,
    kind: PolicyKind,
    name: String,
    digest: String,
    started: Instant,
    verdict: AuditVerdict,
    downstream: DownstreamCall,
}

impl<B: Backend> Admitted<'_, B> {
    fn record(&self, verdict: AuditVerdict, outcome: AuditOutcome) {
        self.backend.audit(CallAudit {
            principal: self.principal.as_deref(),
            provider: &self.provider,
            kind: self.kind,
            tool: &self.name,
            verdict,
            outcome,
            duration: self.started.elapsed(),
            arguments_digest: &self.digest,
        });
    }

    /// Records the outcome.
    fn finish(&self, outcome: AuditOutcome) {
        self.record(self.verdict, outcome);
    }

    /// Sends the admitted request (`send`, given the lease) to its provider
    /// or group like a tool call: every attempt is reported (health, breaker),
    /// a request no member received goes to the next member, and the audit
    /// record gets the outcome.
    async fn forward<R: Forwarded>(&self, request: &R) -> Result<R::Response, ErrorData> {
        let mut tried: Vec<String> = Vec::new();
        loop {
            let lease = match self.backend.acquire(&self.provider, &tried).await {
                Ok(lease) => lease,
                Err(e) => {
                    self.finish(AuditOutcome::Error);
                    return Err(e.to_error_data());
                }
            };
            let started = Instant::now();
            let result = request.send(&lease, &self.downstream).await;
            self.backend.report(CallReport {
                lease: &lease,
                kind: self.kind,
                tool: &self.name,
                principal: self.principal.as_deref(),
                arguments_bytes: 0,
                duration: started.elapsed(),
                error: result.as_ref().err(),
                tool_error: false,
            });
            if lease.retryable && matches!(result, Err(UpstreamError::NotDelivered { .. })) {
                tried.push(lease.target.clone());
                continue;
            }
            self.finish(if result.is_ok() {
                AuditOutcome::Success
            } else {
                AuditOutcome::Error
            });
            return result.map_err(|e| e.to_error_data());
        }
    }
}

/// A request other than `tools/call` that [`Admitted::forward`] sends to a
/// provider (possibly more than once, to another group member).
trait Forwarded: Sync {
    type Response;
    fn send<'a>(
        &'a self,
        lease: &'a Lease,
        downstream: &'a DownstreamCall,
    ) -> impl Future<Output = Result<Self::Response, UpstreamError>> + Send + 'a;
}

impl Forwarded for ReadResourceRequestParams {
    type Response = ReadResourceResponse;
    fn send<'a>(
        &'a self,
        lease: &'a Lease,
        downstream: &'a DownstreamCall,
    ) -> impl Future<Output = Result<Self::Response, UpstreamError>> + Send + 'a {
        lease
            .upstream
            .read_resource(self.clone(), downstream, lease.call_timeout)
    }
}

impl Forwarded for GetPromptRequestParams {
    type Response = GetPromptResponse;
    fn send<'a>(
        &'a self,
        lease: &'a Lease,
        downstream: &'a DownstreamCall,
    ) -> impl Future<Output = Result<Self::Response, UpstreamError>> + Send + 'a {
        lease
            .upstream
            .get_prompt(self.clone(), downstream, lease.call_timeout)
    }
}

/// The `tools/list` result of the tools at `visible` in `catalog`.
pub fn tools_result(catalog: &Catalog, visible: &[u32]) -> ListToolsResult {
    let tools = catalog.tools();
    ListToolsResult::with_all_items(
        visible
            .iter()
            .filter_map(|&i| tools.get(i as usize).cloned())
            .collect(),
    )
}

impl<B: Backend> AggregatingServer<B> {
    /// The error of a call to a name the catalog does not hold: when it names
    /// a provider that could not start (and the caller may call that tool),
    /// the provider and the cause; else the unknown-tool error.
    fn unresolved_tool(
        &self,
        catalog: &Catalog,
        caller: &tool_call::Caller,
        name: &str,
    ) -> ErrorData {
        let Some((provider, tool)) = catalog.unlisted_route(name) else {
            return unknown_tool(name);
        };
        if caller.verdict(self.backend.as_ref(), PolicyKind::Tool, provider, tool) == Effect::Deny {
            return unknown_tool(name);
        }
        let cause = self
            .backend
            .unavailable_cause(provider)
            .unwrap_or_else(|| "it has not listed its tools yet".to_owned());
        ErrorData::internal_error(
            format!("provider '{provider}' of tool {name} could not start: {cause}"),
            Some(serde_json::json!({"provider": provider, "cause": cause, "origin": "upstream"})),
        )
    }
}

fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("Unknown tool: {name}"), None)
}

impl<B: Backend> AggregatingServer<B> {
    /// `resources/list` for `incoming` (what a policy denies is not shown).
    pub async fn list_resources_as(&self, incoming: &Incoming) -> ListResourcesResult {
        let catalog = self.catalog_listed().await;
        let caller = tool_call::Caller::of(incoming);
        let resources = catalog
            .resources()
            .iter()
            .filter(|r| {
                catalog.resolve_resource(&r.uri).is_none_or(|p| {
                    caller.verdict(self.backend.as_ref(), PolicyKind::Resource, p, &r.uri)
                        != Effect::Deny
                })
            })
            .cloned()
            .collect();
        ListResourcesResult::with_all_items(resources)
    }

    /// `resources/templates/list` for `incoming`.
    pub async fn list_resource_templates_as(
        &self,
        incoming: &Incoming,
    ) -> ListResourceTemplatesResult {
        let catalog = self.catalog_listed().await;
        let caller = tool_call::Caller::of(incoming);
        let templates = catalog
            .resource_templates_by_provider()
            .filter(|(t, p)| {
                caller.verdict(
                    self.backend.as_ref(),
                    PolicyKind::Resource,
                    p,
                    &t.uri_template,
                ) != Effect::Deny
            })
            .map(|(t, _)| t.clone())
            .collect();
        ListResourceTemplatesResult::with_all_items(templates)
    }

    /// `resources/read` for `incoming` (policies, approval, audit; a denied
    /// resource does not exist).
    pub async fn read_resource_as(
        &self,
        request: ReadResourceRequestParams,
        incoming: Incoming,
    ) -> Result<ReadResourceResponse, ErrorData> {
        check_can_call(&incoming, "resources/read")?;
        let catalog = self.catalog_listed().await;
        let not_found = || {
            ErrorData::resource_not_found(
                format!("Resource not found: {}", request.uri),
                Some(serde_json::json!({ "uri": request.uri })),
            )
        };
        let provider = catalog
            .resolve_resource(&request.uri)
            .map(str::to_owned)
            .ok_or_else(not_found)?;
        drop(catalog);
        let uri = request.uri.clone();
        let gated = self
            .gate(&incoming, PolicyKind::Resource, &provider, &uri, None)
            .await?;
        let Some(admitted) = gated else {
            // A denied resource does not exist.
            return Err(not_found());
        };
        admitted.forward(&request).await
    }

    /// `completion/complete` for `incoming`: to the provider of the prompt or
    /// resource template it names (by the names clients see), with the
    /// provider's own prompt name. What a policy denies does not exist.
    pub async fn complete_as(
        &self,
        mut request: rmcp::model::CompleteRequestParams,
        incoming: Incoming,
    ) -> Result<rmcp::model::CompleteResult, ErrorData> {
        let catalog = self.catalog_listed().await;
        let caller = tool_call::Caller::of(&incoming);
        let (provider, kind, name) = match &mut request.r#ref {
            rmcp::model::Reference::Prompt(p) => {
                let route = catalog.resolve_prompt(&p.name).cloned().ok_or_else(|| {
                    ErrorData::invalid_params(format!("Unknown prompt: {}", p.name), None)
                })?;
                p.name.clone_from(&route.prompt);
                (route.provider, PolicyKind::Prompt, route.prompt)
            }
            rmcp::model::Reference::Resource(r) => {
                let provider = catalog
                    .resource_templates_by_provider()
                    .find(|(t, _)| t.uri_template == r.uri)
                    .map(|(_, p)| p.to_owned())
                    .or_else(|| catalog.resolve_resource(&r.uri).map(str::to_owned))
                    .ok_or_else(|| {
                        ErrorData::resource_not_found(
                            format!("Resource not found: {}", r.uri),
                            None,
                        )
                    })?;
                (provider, PolicyKind::Resource, r.uri.clone())
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "unsupported completion reference {}",
                        other.reference_type()
                    ),
                    None,
                ));
            }
        };
        drop(catalog);
        if caller.verdict(self.backend.as_ref(), kind, &provider, &name) == Effect::Deny {
            return Err(match kind {
                PolicyKind::Prompt => {
                    ErrorData::invalid_params(format!("Unknown prompt: {name}"), None)
                }
                _ => ErrorData::resource_not_found(format!("Resource not found: {name}"), None),
            });
        }
        let lease = self
            .backend
            .acquire(&provider, &[])
            .await
            .map_err(|e| e.to_error_data())?;
        let downstream = self.downstream(&incoming);
        lease
            .upstream
            .complete(request, &downstream, lease.call_timeout)
            .await
            .map_err(|e| e.to_error_data())
    }

    /// `prompts/list` for `incoming`.
    pub async fn list_prompts_as(&self, incoming: &Incoming) -> ListPromptsResult {
        let catalog = self.catalog_listed().await;
        let caller = tool_call::Caller::of(incoming);
        let prompts = catalog
            .prompts()
            .iter()
            .filter(|p| {
                catalog.resolve_prompt(&p.name).is_none_or(|r| {
                    caller.verdict(
                        self.backend.as_ref(),
                        PolicyKind::Prompt,
                        &r.provider,
                        &r.prompt,
                    ) != Effect::Deny
                })
            })
            .cloned()
            .collect();
        ListPromptsResult::with_all_items(prompts)
    }

    /// `prompts/get` for `incoming` (policies, approval, audit; a denied
    /// prompt does not exist).
    pub async fn get_prompt_as(
        &self,
        mut request: GetPromptRequestParams,
        incoming: Incoming,
    ) -> Result<GetPromptResponse, ErrorData> {
        check_can_call(&incoming, "prompts/get")?;
        let catalog = self.catalog_listed().await;
        let unknown =
            || ErrorData::invalid_params(format!("Unknown prompt: {}", request.name), None);
        let route = catalog
            .resolve_prompt(&request.name)
            .cloned()
            .ok_or_else(unknown)?;
        drop(catalog);
        let gated = self
            .gate(
                &incoming,
                PolicyKind::Prompt,
                &route.provider,
                &route.prompt,
                request.arguments.as_ref(),
            )
            .await?;
        let Some(admitted) = gated else {
            // A denied prompt does not exist.
            return Err(unknown());
        };
        request.name = route.prompt;
        admitted.forward(&request).await
    }

    /// `tools/list` for `incoming`: every tool but those a policy denies to
    /// the caller.
    pub async fn list_tools_as(&self, incoming: &Incoming) -> ListToolsResult {
        let (catalog, visible) = self.visible_tools(incoming).await;
        tools_result(&catalog, &visible)
    }

    /// The current catalog (listed) and the indices of its tools `incoming`
    /// may see: a tool a policy denies to the caller is not shown at all.
    /// Together they decide a `tools/list` answer completely.
    pub async fn visible_tools(&self, incoming: &Incoming) -> (Arc<Catalog>, Vec<u32>) {
        let catalog = self.catalog_listed().await;
        let caller = tool_call::Caller::of(incoming);
        let visible = catalog
            .tools()
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                catalog.resolve_tool(&t.name).is_none_or(|r| {
                    caller.verdict(
                        self.backend.as_ref(),
                        PolicyKind::Tool,
                        &r.provider,
                        &r.tool,
                    ) != Effect::Deny
                })
            })
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        (catalog, visible)
    }

    /// `tools/call` for `incoming`: routing, `tools:call`, policies (a denied
    /// tool is an unknown tool), approval, forwarding with group failover,
    /// health accounting and audit.
    pub async fn call_tool_as(
        &self,
        mut request: CallToolRequestParams,
        incoming: Incoming,
    ) -> Result<CallToolResponse, ErrorData> {
        check_can_call(&incoming, "tools/call")?;
        let mut catalog = self.backend.catalog();
        if catalog.resolve_tool(&request.name).is_none() && !catalog.unlisted().is_empty() {
            self.backend.ensure_listed().await;
            catalog = self.backend.catalog();
        }
        let caller = tool_call::Caller::of(&incoming);
        let route = match catalog.resolve_tool(&request.name) {
            Some(r) => r.clone(),
            None => return Err(self.unresolved_tool(&catalog, &caller, &request.name)),
        };
        drop(catalog);
        let verdict = caller.verdict(
            self.backend.as_ref(),
            PolicyKind::Tool,
            &route.provider,
            &route.tool,
        );
        let started = Instant::now();
        let digest = self.backend.arguments_digest(request.arguments.as_ref());
        let audit = |verdict: AuditVerdict, outcome: AuditOutcome| {
            self.backend.audit(CallAudit {
                principal: caller.id.as_deref(),
                provider: &route.provider,
                kind: PolicyKind::Tool,
                tool: &route.tool,
                verdict,
                outcome,
                duration: started.elapsed(),
                arguments_digest: &digest,
            });
        };
        if verdict == Effect::Deny {
            // Exactly what an unknown tool gets: a denied tool does not exist.
            audit(AuditVerdict::Deny, AuditOutcome::Denied);
            return Err(unknown_tool(&request.name));
        }
        // Debug level: an enabled span formats its fields, and nothing is
        // formatted on the call path unless asked for (`RUST_LOG=hangar_mcp=debug`).
        // `session` is this server's number for the client's session, never
        // the session id itself (which would let a log reader use it).
        let span = tracing::debug_span!(
            "tools/call",
            provider = %route.provider,
            tool = %route.tool,
            principal = caller.id.as_deref().unwrap_or("-"),
            session = self.client_key,
            era = if incoming.stateless { "2026-07-28" } else { "2025" },
        );
        // Joined to the client's trace before the span is first entered.
        let trace = crate::trace::propagate(&span, incoming.trace.clone());
        async {
            request.name = route.tool.clone().into();
            let mut downstream = self.downstream(&incoming);
            downstream.tool = Some(route.tool.clone());
            downstream.principal = caller.id.clone();
            downstream.trace = trace;
            let verdict = if verdict == Effect::Ask {
                let held = HeldCall {
                    principal: caller.id.clone(),
                    provider: route.provider.clone(),
                    kind: PolicyKind::Tool,
                    tool: route.tool.clone(),
                    arguments_digest: digest.clone(),
                };
                let wait = self.backend.request_approval(held);
                match tool_call::wait_for_approval(wait, &downstream).await {
                    Some(Approval::Approved) => AuditVerdict::Approved,
                    Some(Approval::Rejected { message }) => {
                        audit(AuditVerdict::Rejected, AuditOutcome::Rejected);
                        return Ok(tool_call::rejected(message.as_deref()));
                    }
                    Some(Approval::Expired { after }) => {
                        audit(AuditVerdict::Expired, AuditOutcome::Expired);
                        return Ok(tool_call::expired(after));
                    }
                    None => {
                        audit(AuditVerdict::Expired, AuditOutcome::Cancelled);
                        return Err(ErrorData::internal_error(
                            "the call was cancelled while waiting for approval",
                            None,
                        ));
                    }
                }
            } else {
                AuditVerdict::Allow
            };
            let principal = caller.id.clone();
            let arguments_bytes = request
                .arguments
                .as_ref()
                .and_then(|a| serde_json::to_vec(a).ok())
                .map_or(0, |v| v.len());
            let mut tried: Vec<String> = Vec::new();
            loop {
                let lease = match self.backend.acquire(&route.provider, &tried).await {
                    Ok(lease) => lease,
                    Err(e) => {
                        audit(verdict, AuditOutcome::Error);
                        return Err(e.to_error_data());
                    }
                };
                let started = Instant::now();
                let result =
                    tool_call::call_with_input(
                        &lease,
                        request.clone(),
                        &downstream,
                        incoming.stateless,
                    )
                        .await;
                let tool_error = matches!(&result, Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true));
                self.backend.report(CallReport {
                    lease: &lease,
                    kind: PolicyKind::Tool,
                    tool: &route.tool,
                    principal: principal.as_deref(),
                    arguments_bytes,
                    duration: started.elapsed(),
                    error: result.as_ref().err(),
                    tool_error,
                });
                // A request no provider received may go to another member;
                // one that reached a provider is never sent twice.
                if lease.retryable && matches!(result, Err(UpstreamError::NotDelivered { .. })) {
                    tried.push(lease.target.clone());
                    continue;
                }
                let outcome = match &result {
                    Err(_) => AuditOutcome::Error,
                    Ok(_) if tool_error => AuditOutcome::ToolError,
                    Ok(_) => AuditOutcome::Success,
                };
                audit(verdict, outcome);
                tracing::debug!(
                    outcome = outcome.as_str(),
                    verdict = verdict.as_str(),
                    "tool call finished"
                );
                return result.map_err(|e| e.to_error_data());
            }
        }
        .instrument(span)
        .await
    }
}

impl<B: Backend> ServerHandler for AggregatingServer<B> {
    fn get_info(&self) -> ServerConfig {
        // Logging is deprecated by SEP-2577; 2025-era clients still set levels.
        #[allow(deprecated)]
        let builder = ServerCapabilities::builder().enable_logging();
        ServerConfig::new(
            builder
                .enable_completions()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_prompts_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("hangar", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Hangar: the tools, resources and prompts of every configured MCP provider.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(self.list_tools_as(&Incoming::of(&context)).await)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call_tool_as(request, Incoming::of(&context)).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(self.list_resources_as(&Incoming::of(&context)).await)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(self
            .list_resource_templates_as(&Incoming::of(&context))
            .await)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.read_resource_as(request, Incoming::of(&context)).await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(self.list_prompts_as(&Incoming::of(&context)).await)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.get_prompt_as(request, Incoming::of(&context)).await
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        // rmcp's HTTP service checks `Mcp-Param-*` headers against it.
        self.backend.catalog().tool(name).cloned()
    }

    async fn complete(
        &self,
        request: rmcp::model::CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CompleteResult, ErrorData> {
        self.complete_as(request, Incoming::of(&context)).await
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // A 2025-era session: push list changes to it until it goes away.
        let mut changes = self.backend.changes();
        let peer = context.peer;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tokio::select! {
                    r = changes.changed() => {
                        if r.is_err() { break; }
                        if peer.notify_tool_list_changed().await.is_err() { break; }
                        let _ = peer.notify_resource_list_changed().await;
                        let _ = peer.notify_prompt_list_changed().await;
                    }
                    _ = tick.tick() => {
                        if peer.is_transport_closed() { break; }
                    }
                }
            }
        });
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::default();
        accepted.tools_list_changed = requested.tools_list_changed;
        accepted.prompts_list_changed = requested.prompts_list_changed;
        accepted.resources_list_changed = requested.resources_list_changed;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        // A 2026-07-28 client's subscriptions/listen stream.
        let mut changes = self.backend.changes();
        let accepted = context.accepted().clone();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                r = changes.changed() => {
                    if r.is_err() { return Ok(()); }
                    let sink = context.sink();
                    if accepted.tools_list_changed == Some(true) {
                        let _ = sink.notify_tool_list_changed().await;
                    }
                    if accepted.prompts_list_changed == Some(true) {
                        let _ = sink.notify_prompt_list_changed().await;
                    }
                    if accepted.resources_list_changed == Some(true) {
                        let _ = sink.notify_resource_list_changed().await;
                    }
                }
            }
        }
    }
}
