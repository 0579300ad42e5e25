//! The upstream side: one MCP client session to one provider.
//!
//! A provider process is shared by every downstream client, so one [`Upstream`]
//! multiplexes all their requests over a single connection (rmcp matches
//! responses by JSON-RPC id). Progress notifications are routed back to the
//! downstream request that caused them through a per-request channel; a
//! cancelled downstream request cancels its upstream request.

// Sampling and logging are deprecated by SEP-2577 but 2025-era providers still
// use them, so Hangar keeps forwarding them.
#![allow(deprecated)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CancelledNotificationParam,
    ClientCapabilities, ClientConfig, ClientRequest, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequestParams, ElicitResult, GetPromptRequest,
    GetPromptRequestParams, GetPromptResponse, Implementation, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken, Prompt, ReadResourceRequest,
    ReadResourceRequestParams, ReadResourceResponse, RequestId, Resource, ResourceTemplate,
    ResultType, ServerResult, Tool,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, NotificationContext, Peer, PeerRequestOptions,
    RequestContext, RunningService, ServiceError,
};
use rmcp::{ClientHandler, ErrorData, RoleClient, RoleServer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::UpstreamError;
use crate::gate::{ElicitationAsk, Questioner};

/// How many progress notifications for not-yet-registered tokens are kept.
const EARLY_PROGRESS_CAP: usize = 64;

/// What the upstream connection tells its owner (the runtime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamEvent {
    /// The provider said its tool, resource or prompt list changed.
    ListChanged,
}

/// Callback for [`UpstreamEvent`]s; must not block.
pub type EventSink = Arc<dyn Fn(UpstreamEvent) + Send + Sync>;

/// Where a forwarded request's progress notifications go.
#[derive(Clone, Debug)]
pub enum ProgressSink {
    /// Nowhere (the client asked for no progress).
    None,
    /// The client's rmcp session (an in-process client).
    Peer(Peer<RoleServer>),
    /// The HTTP response of the request, which switches to SSE on the first
    /// notification (Hangar's own `/mcp` front). Bounded: a client that does
    /// not read holds the call back instead of growing a buffer.
    Channel(mpsc::Sender<ProgressNotificationParam>),
}

impl ProgressSink {
    /// Sends one notification; false when the client is gone.
    pub async fn send(&self, p: ProgressNotificationParam) -> bool {
        match self {
            Self::None => true,
            Self::Peer(peer) => peer.notify_progress(p).await.is_ok(),
            Self::Channel(tx) => tx.send(p).await.is_ok(),
        }
    }
}

/// The downstream request an upstream request is made for.
#[derive(Clone)]
pub struct DownstreamCall {
    /// The client's session, which a provider's server-to-client requests
    /// (sampling, elicitation, roots) are sent to; `None` when the client
    /// takes none (2026-07-28).
    pub peer: Option<Peer<RoleServer>>,
    /// Where progress for this request goes.
    pub progress: ProgressSink,
    /// The client's progress token, when it asked for progress.
    pub progress_token: Option<ProgressToken>,
    /// The client's capabilities (from `initialize` or the request's `_meta`).
    pub capabilities: Option<ClientCapabilities>,
    /// Cancelled when the client cancels the request or goes away.
    pub ct: CancellationToken,
    /// Identifies the client session (equal for requests of one session).
    pub client_key: u64,
    /// Whether the client takes server-to-client requests (2025 era; a
    /// 2026-07-28 client does not).
    pub server_requests: bool,
    /// Where an elicitation goes when the client can't answer it.
    pub questioner: Option<Arc<dyn Questioner>>,
    /// The provider's own tool name, for a `tools/call`.
    pub tool: Option<String>,
    /// The caller, when known.
    pub principal: Option<String>,
    /// The trace context the provider gets in the request's `_meta`.
    pub trace: Option<crate::trace::TraceContext>,
}

/// The options of a request forwarded for `downstream`: its trace context
/// in `_meta` (rmcp adds the progress token and the era's own keys).
fn request_options(downstream: &DownstreamCall) -> PeerRequestOptions {
    match &downstream.trace {
        Some(trace) => PeerRequestOptions::no_options().with_meta(trace.to_meta()),
        None => PeerRequestOptions::no_options(),
    }
}

struct InflightCall {
    client_key: u64,
    peer: Option<Peer<RoleServer>>,
    capabilities: Option<ClientCapabilities>,
    server_requests: bool,
    questioner: Option<Arc<dyn Questioner>>,
    tool: Option<String>,
    principal: Option<String>,
}

#[derive(Default)]
struct ProgressRoutes {
    routes: HashMap<ProgressToken, mpsc::UnboundedSender<ProgressNotificationParam>>,
    early: VecDeque<ProgressNotificationParam>,
}

struct HandlerShared {
    provider: String,
    progress: Mutex<ProgressRoutes>,
    inflight: Mutex<HashMap<u64, InflightCall>>,
    next_call: std::sync::atomic::AtomicU64,
    events: EventSink,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it;
    // the maps stay structurally valid, so keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The rmcp client handler for one provider connection.
#[derive(Clone)]
pub struct UpstreamHandler {
    shared: Arc<HandlerShared>,
}

impl UpstreamHandler {
    fn new(provider: &str, events: EventSink) -> Self {
        Self {
            shared: Arc::new(HandlerShared {
                provider: provider.to_owned(),
                progress: Mutex::new(ProgressRoutes::default()),
                inflight: Mutex::new(HashMap::new()),
                next_call: std::sync::atomic::AtomicU64::new(1),
                events,
            }),
        }
    }

    fn register_progress(
        &self,
        token: ProgressToken,
    ) -> mpsc::UnboundedReceiver<ProgressNotificationParam> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut routes = lock(&self.shared.progress);
        // Progress that raced ahead of the registration is delivered now.
        let early = std::mem::take(&mut routes.early);
        for p in early {
            if p.progress_token == token {
                let _ = tx.send(p);
            } else {
                routes.early.push_back(p);
            }
        }
        routes.routes.insert(token, tx);
        rx
    }

    fn unregister_progress(&self, token: &ProgressToken) {
        lock(&self.shared.progress).routes.remove(token);
    }

    /// Picks the downstream client that should answer a provider's
    /// server-to-client request. stdio carries no association between such a
    /// request and the call that caused it, so it is routed only when it is
    /// unambiguous: every call in flight on this provider comes from one client.
    fn route_client_request(
        &self,
        need: fn(&ClientCapabilities) -> bool,
    ) -> Result<Peer<RoleServer>, ErrorData> {
        let inflight = lock(&self.shared.inflight);
        let mut chosen: Option<&InflightCall> = None;
        for call in inflight.values() {
            match chosen {
                None => chosen = Some(call),
                Some(c) if c.client_key == call.client_key => {}
                Some(_) => {
                    return Err(ErrorData::internal_error(
                        "request is ambiguous: calls from several clients are in flight on this provider",
                        None,
                    ));
                }
            }
        }
        let Some(call) = chosen else {
            return Err(ErrorData::internal_error(
                "no client call is in flight",
                None,
            ));
        };
        match &call.peer {
            Some(peer) if call.server_requests && call.capabilities.as_ref().is_some_and(need) => {
                Ok(peer.clone())
            }
            _ => Err(ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                "the calling client does not support this request",
                None,
            )),
        }
    }
}

impl UpstreamHandler {
    /// Turns an elicitation into a pending question, naming the tool and caller
    /// when only one call is in flight on this provider.
    fn question_route(
        &self,
        params: ElicitRequestParams,
    ) -> Option<futures::future::BoxFuture<'static, Result<ElicitResult, ErrorData>>> {
        let inflight = lock(&self.shared.inflight);
        let questioner = inflight.values().find_map(|c| c.questioner.clone())?;
        let single = (inflight.len() == 1)
            .then(|| inflight.values().next())
            .flatten();
        let ask = ElicitationAsk {
            provider: self.shared.provider.clone(),
            tool: single.and_then(|c| c.tool.clone()),
            principal: single.and_then(|c| c.principal.clone()),
            params,
        };
        drop(inflight);
        Some(questioner.ask(ask))
    }
}

struct InflightGuard<'a> {
    handler: &'a UpstreamHandler,
    id: u64,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        lock(&self.handler.shared.inflight).remove(&self.id);
    }
}

impl ClientHandler for UpstreamHandler {
    fn get_info(&self) -> ClientConfig {
        // Hangar declares what it can forward; each request is then routed to a
        // client that really supports it, or refused.
        ClientConfig::new(
            ClientCapabilities::builder()
                .enable_sampling()
                .enable_elicitation()
                .build(),
            Implementation::new("hangar", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let mut routes = lock(&self.shared.progress);
        if let Some(tx) = routes.routes.get(&params.progress_token) {
            let _ = tx.send(params);
        } else {
            if routes.early.len() >= EARLY_PROGRESS_CAP {
                routes.early.pop_front();
            }
            routes.early.push_back(params);
        }
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        tracing::debug!(provider = %self.shared.provider, level = ?params.level, "provider log message");
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        (self.shared.events)(UpstreamEvent::ListChanged);
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        (self.shared.events)(UpstreamEvent::ListChanged);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        (self.shared.events)(UpstreamEvent::ListChanged);
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let peer = self.route_client_request(|c| c.sampling.is_some())?;
        peer.create_message(params)
            .await
            .map_err(service_error_to_error_data)
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let peer = match self.route_client_request(|c| c.elicitation.is_some()) {
            Ok(peer) => peer,
            Err(e) => {
                // The client can't answer: an operator can, as a pending question.
                let Some(ask) = self.question_route(params) else {
                    return Err(e);
                };
                return ask.await;
            }
        };
        peer.create_elicitation(params)
            .await
            .map_err(service_error_to_error_data)
    }
}

fn service_error_to_error_data(e: ServiceError) -> ErrorData {
    match e {
        ServiceError::McpError(e) => e,
        other => ErrorData::internal_error(other.to_string(), None),
    }
}

/// Sends `notifications/cancelled` for a request whose forwarding future was
/// dropped before the provider answered (disarmed by taking `peer`).
struct CancelOnDrop {
    peer: Option<Peer<RoleClient>>,
    id: RequestId,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(peer) = self.peer.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let n = CancelledNotificationParam::new(
            Some(self.id.clone()),
            Some("the client went away".to_owned()),
        );
        runtime.spawn(async move {
            let _ = peer.notify_cancelled(n).await;
        });
    }
}

/// Everything a provider offers, fetched after every start.
#[derive(Debug, Clone, Default)]
pub struct ProviderListing {
    /// Tools, with the provider's own names.
    pub tools: Vec<Tool>,
    /// Concrete resources.
    pub resources: Vec<Resource>,
    /// Resource templates.
    pub resource_templates: Vec<ResourceTemplate>,
    /// Prompts, with the provider's own names.
    pub prompts: Vec<Prompt>,
}

/// A live MCP client session to one provider.
pub struct Upstream {
    provider: String,
    handler: UpstreamHandler,
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, UpstreamHandler>>>,
    peer: Peer<RoleClient>,
    closed: CancellationToken,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("provider", &self.provider)
            .finish()
    }
}

impl Upstream {
    /// Runs the MCP handshake over `transport` (a child's stdout/stdin pair, for
    /// instance). rmcp's automatic lifecycle tries `server/discover`
    /// (2026-07-28) and falls back to `initialize`.
    pub async fn connect<T, E, A>(
        provider: &str,
        transport: T,
        events: EventSink,
    ) -> Result<Self, UpstreamError>
    where
        T: rmcp::transport::IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let handler = UpstreamHandler::new(provider, events);
        let lifecycle = ClientLifecycleMode::Auto {
            preferred_versions: rmcp::model::ProtocolVersion::KNOWN_VERSIONS
                .iter()
                .rev()
                .cloned()
                .collect(),
            legacy_version: None,
        };
        let service = handler
            .clone()
            .serve_with_lifecycle(transport, lifecycle)
            .await
            .map_err(|e| UpstreamError::Handshake {
                provider: provider.to_owned(),
                message: crate::error::with_sources(&e),
            })?;
        let peer = service.peer().clone();
        let closed = CancellationToken::new();
        Ok(Self {
            provider: provider.to_owned(),
            handler,
            service: tokio::sync::Mutex::new(Some(service)),
            peer,
            closed,
        })
    }

    /// The provider this connection belongs to.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The provider's `initialize` / `server/discover` answer.
    pub fn server_info(&self) -> Option<Arc<rmcp::model::ServerPeerInfo>> {
        self.peer.peer_info()
    }

    /// True once the connection is gone (process exited, stream closed).
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled() || self.peer.is_transport_closed()
    }

    /// Fetches tools, resources, templates and prompts, each only when the
    /// provider declares the capability.
    pub async fn fetch_listing(&self) -> Result<ProviderListing, UpstreamError> {
        let caps = self
            .server_info()
            .map(|i| i.capabilities.clone())
            .unwrap_or_default();
        let mut listing = ProviderListing::default();
        if caps.tools.is_some() {
            listing.tools = self.peer.list_all_tools().await.map_err(|e| self.err(e))?;
        }
        if caps.resources.is_some() {
            listing.resources = self
                .peer
                .list_all_resources()
                .await
                .map_err(|e| self.err(e))?;
            listing.resource_templates = self
                .peer
                .list_all_resource_templates()
                .await
                .map_err(|e| self.err(e))?;
        }
        if caps.prompts.is_some() {
            listing.prompts = self
                .peer
                .list_all_prompts()
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(listing)
    }

    /// A health check: `ping` on the 2025 protocol, `server/discover` on 2026-07-28.
    pub async fn health_check(&self, timeout: Duration) -> Result<(), UpstreamError> {
        let modern = self
            .server_info()
            .is_some_and(|i| i.protocol_version.as_str() >= "2026-07-28");
        let fut = async {
            if modern {
                // Sent as a request, not through `Peer::discover`, which
                // answers from its cache (stale ones too, on error) and
                // would hide a dead provider.
                let discover = rmcp::model::DiscoverRequest::new(Default::default());
                self.peer
                    .send_request(ClientRequest::DiscoverRequest(discover))
                    .await
                    .map(|_| ())
            } else {
                self.peer
                    .send_request(ClientRequest::PingRequest(Default::default()))
                    .await
                    .map(|_| ())
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r.map_err(|e| self.err(e)),
            Err(_) => Err(UpstreamError::Timeout {
                provider: self.provider.clone(),
                after: timeout,
            }),
        }
    }

    fn err(&self, e: ServiceError) -> UpstreamError {
        UpstreamError::from_service(&self.provider, e)
    }

    /// Forwards one `tools/call` (with the provider's own tool name).
    pub async fn call_tool(
        &self,
        mut params: CallToolRequestParams,
        downstream: &DownstreamCall,
        timeout: Duration,
    ) -> Result<CallToolResponse, UpstreamError> {
        params.meta = None;
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let result = self.forward(request, downstream, timeout).await?;
        match result {
            ServerResult::CallToolResult(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(CallToolResponse::Complete(r))
            }
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            _ => Err(UpstreamError::Protocol {
                provider: self.provider.clone(),
                message: "unexpected result type for tools/call".into(),
            }),
        }
    }

    /// Forwards one `resources/read`.
    pub async fn read_resource(
        &self,
        mut params: ReadResourceRequestParams,
        downstream: &DownstreamCall,
        timeout: Duration,
    ) -> Result<ReadResourceResponse, UpstreamError> {
        params.meta = None;
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params));
        match self.forward(request, downstream, timeout).await? {
            ServerResult::ReadResourceResult(r) => Ok(ReadResourceResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            _ => Err(UpstreamError::Protocol {
                provider: self.provider.clone(),
                message: "unexpected result type for resources/read".into(),
            }),
        }
    }

    /// Forwards one `prompts/get` (with the provider's own prompt name).
    pub async fn get_prompt(
        &self,
        mut params: GetPromptRequestParams,
        downstream: &DownstreamCall,
        timeout: Duration,
    ) -> Result<GetPromptResponse, UpstreamError> {
        params.meta = None;
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(params));
        match self.forward(request, downstream, timeout).await? {
            ServerResult::GetPromptResult(r) => Ok(GetPromptResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
            _ => Err(UpstreamError::Protocol {
                provider: self.provider.clone(),
                message: "unexpected result type for prompts/get".into(),
            }),
        }
    }

    /// Sends `request`, forwarding progress to the downstream client while it
    /// runs, and cancelling upstream when the downstream request is cancelled.
    async fn forward(
        &self,
        request: ClientRequest,
        downstream: &DownstreamCall,
        timeout: Duration,
    ) -> Result<ServerResult, UpstreamError> {
        let call_id = self
            .handler
            .shared
            .next_call
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.handler.shared.inflight).insert(
            call_id,
            InflightCall {
                client_key: downstream.client_key,
                peer: downstream.peer.clone(),
                capabilities: downstream.capabilities.clone(),
                server_requests: downstream.server_requests,
                questioner: downstream.questioner.clone(),
                tool: downstream.tool.clone(),
                principal: downstream.principal.clone(),
            },
        );
        let _inflight = InflightGuard {
            handler: &self.handler,
            id: call_id,
        };

        let handle = self
            .peer
            .send_cancellable_request(request, request_options(downstream))
            .await
            .map_err(|e| match e {
                // Nothing reached the provider: safe to send elsewhere.
                ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                    UpstreamError::NotDelivered {
                        provider: self.provider.clone(),
                    }
                }
                other => self.err(other),
            })?;
        let upstream_token = handle.progress_token.clone();
        let request_id = handle.id.clone();
        // If this future is dropped before the answer (the client closed the
        // response stream), the provider is told to stop.
        let mut unanswered = CancelOnDrop {
            peer: Some(self.peer.clone()),
            id: request_id.clone(),
        };
        let mut progress = downstream
            .progress_token
            .as_ref()
            .map(|_| self.handler.register_progress(upstream_token.clone()));
        let mut rx = handle.rx;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);

        let outcome = loop {
            tokio::select! {
                biased;
                r = &mut rx => {
                    break match r {
                        Ok(r) => r.map_err(|e| self.err(e)),
                        Err(_) => Err(UpstreamError::Closed { provider: self.provider.clone() }),
                    };
                }
                Some(p) = async {
                    match progress.as_mut() {
                        Some(p) => p.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.forward_progress(downstream, p).await;
                }
                () = downstream.ct.cancelled() => {
                    self.cancel_upstream(request_id.clone(), "cancelled by the client").await;
                    break Err(UpstreamError::Cancelled { provider: self.provider.clone() });
                }
                () = &mut deadline => {
                    self.cancel_upstream(request_id.clone(), "timed out in hangar").await;
                    break Err(UpstreamError::Timeout { provider: self.provider.clone(), after: timeout });
                }
            }
        };

        unanswered.peer = None;
        // Progress sent before the result may still sit in the channel: drain
        // it so the client sees every update before the result.
        if let Some(mut p) = progress.take() {
            self.handler.unregister_progress(&upstream_token);
            while let Ok(n) = p.try_recv() {
                self.forward_progress(downstream, n).await;
            }
        }
        outcome
    }

    async fn forward_progress(
        &self,
        downstream: &DownstreamCall,
        mut p: ProgressNotificationParam,
    ) {
        if let Some(token) = &downstream.progress_token {
            p.progress_token = token.clone();
            if !downstream.progress.send(p).await {
                tracing::debug!(provider = %self.provider, "could not forward progress: the client is gone");
            }
        }
    }

    async fn cancel_upstream(&self, id: RequestId, reason: &str) {
        let n = CancelledNotificationParam::new(Some(id), Some(reason.to_owned()));
        if let Err(e) = self.peer.notify_cancelled(n).await {
            tracing::debug!(provider = %self.provider, error = %e, "could not send cancellation upstream");
        }
    }

    /// Ends the session (the transport is dropped, which closes the child's stdin).
    pub async fn close(&self) {
        self.closed.cancel();
        let service = self.service.lock().await.take();
        if let Some(mut s) = service {
            let _ = s.close_with_timeout(Duration::from_secs(2)).await;
        }
    }
}
