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
    ResultType, ServerPeerInfo, ServerResult, Tool,
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
use crate::link::Link;

/// How many progress notifications for not-yet-registered tokens are kept.
const EARLY_PROGRESS_CAP: usize = 64;

/// What the upstream connection tells its owner (the runtime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamEvent {
    /// The provider said its tool, resource or prompt list changed.
    ListChanged,
    /// The provider said a resource it serves changed
    /// (`notifications/resources/updated`), for Hangar's subscribers of it.
    ResourceUpdated(String),
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

/// What a client answering server-to-client requests does for Hangar's own
/// front: send `method` with `params` to the client and await its answer.
pub trait ClientRequests: Send + Sync {
    /// One request to the client (the result's JSON, or its JSON-RPC error).
    fn request(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> futures::future::BoxFuture<'static, Result<serde_json::Value, ErrorData>>;

    /// A provider's log message for the client (dropped when the client
    /// set a higher level, or its reply stream is full: never waited for).
    fn log(&self, params: &LoggingMessageNotificationParam) {
        let _ = params;
    }
}

/// Where a provider's server-to-client requests for a call go: the client's
/// rmcp session (an in-process client) or Hangar's own front.
#[derive(Clone)]
pub enum ClientPeer {
    /// An rmcp session.
    Rmcp(Peer<RoleServer>),
    /// Hangar's own `/mcp` front (the call's reply stream).
    Front(Arc<dyn ClientRequests>),
}

impl std::fmt::Debug for ClientPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rmcp(_) => "ClientPeer::Rmcp",
            Self::Front(_) => "ClientPeer::Front",
        })
    }
}

/// One request to a client behind Hangar's front, typed both ways.
async fn ask<T: serde::de::DeserializeOwned>(
    front: &dyn ClientRequests,
    method: &'static str,
    params: impl serde::Serialize,
) -> Result<T, ErrorData> {
    let params =
        serde_json::to_value(params).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    let value = front.request(method, params).await?;
    serde_json::from_value(value).map_err(|e| {
        ErrorData::internal_error(format!("the client's answer to {method}: {e}"), None)
    })
}

impl ClientPeer {
    /// `sampling/createMessage` to the client.
    pub async fn create_message(
        &self,
        params: CreateMessageRequestParams,
    ) -> Result<CreateMessageResult, ErrorData> {
        match self {
            Self::Rmcp(peer) => peer
                .create_message(params)
                .await
                .map_err(service_error_to_error_data),
            Self::Front(front) => ask(front.as_ref(), "sampling/createMessage", params).await,
        }
    }

    /// `elicitation/create` to the client.
    pub async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
    ) -> Result<ElicitResult, ErrorData> {
        match self {
            Self::Rmcp(peer) => peer
                .create_elicitation(params)
                .await
                .map_err(service_error_to_error_data),
            Self::Front(front) => ask(front.as_ref(), "elicitation/create", params).await,
        }
    }

    /// A provider's log message to the client (never waits).
    pub fn log(&self, params: LoggingMessageNotificationParam) {
        match self {
            Self::Rmcp(peer) => {
                let peer = peer.clone();
                tokio::spawn(async move {
                    let _ = peer.notify_logging_message(params).await;
                });
            }
            Self::Front(front) => front.log(&params),
        }
    }

    /// `roots/list` to the client.
    pub async fn list_roots(&self) -> Result<rmcp::model::ListRootsResult, ErrorData> {
        match self {
            Self::Rmcp(peer) => peer.list_roots().await.map_err(service_error_to_error_data),
            Self::Front(front) => ask(front.as_ref(), "roots/list", serde_json::json!({})).await,
        }
    }
}

/// The downstream request an upstream request is made for.
#[derive(Clone)]
pub struct DownstreamCall {
    /// The client's session, which a provider's server-to-client requests
    /// (sampling, elicitation, roots) are sent to; `None` when the client
    /// takes none (2026-07-28).
    pub peer: Option<ClientPeer>,
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
    /// The client's JSON-RPC id of the request, as text (what an operator's
    /// abort names).
    pub request_id: Option<String>,
}

/// `_meta` naming no client capability, and naming elicitation only: what
/// most calls send, built once.
static NO_CAPS_META: std::sync::LazyLock<rmcp::model::RequestMetaObject> =
    std::sync::LazyLock::new(|| caps_meta(ClientCapabilities::default()));
static ELICIT_META: std::sync::LazyLock<rmcp::model::RequestMetaObject> =
    std::sync::LazyLock::new(|| {
        caps_meta(ClientCapabilities::builder().enable_elicitation().build())
    });

fn caps_meta(caps: ClientCapabilities) -> rmcp::model::RequestMetaObject {
    let mut meta = rmcp::model::RequestMetaObject::default();
    meta.set_client_capabilities(caps);
    meta
}

impl DownstreamCall {
    /// [`Self::answerable_capabilities`] as the `_meta` a request carries.
    pub fn capabilities_meta(&self) -> rmcp::model::RequestMetaObject {
        let declared = self.capabilities.as_ref();
        let none = declared
            .is_none_or(|c| c.sampling.is_none() && c.elicitation.is_none() && c.roots.is_none());
        match (none, self.questioner.is_some()) {
            (true, false) => NO_CAPS_META.clone(),
            (true, true) => ELICIT_META.clone(),
            _ => caps_meta(self.answerable_capabilities()),
        }
    }

    /// What the provider may ask of this call's client: the client's own
    /// sampling, elicitation and roots (as it declared them), plus elicitation
    /// when an operator can answer questions for it.
    pub fn answerable_capabilities(&self) -> ClientCapabilities {
        let declared = self.capabilities.clone().unwrap_or_default();
        let mut caps = ClientCapabilities::default();
        caps.sampling = declared.sampling;
        caps.elicitation = declared.elicitation;
        caps.roots = declared.roots;
        if caps.elicitation.is_none() && self.questioner.is_some() {
            caps.elicitation = ClientCapabilities::builder()
                .enable_elicitation()
                .build()
                .elicitation;
        }
        caps
    }
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
    /// Cancels the call (an operator's abort).
    ct: CancellationToken,
    request_id: Option<String>,
    peer: Option<ClientPeer>,
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
    pub(crate) fn new(provider: &str, events: EventSink) -> Self {
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
    /// server-to-client request (sampling, elicitation, roots).
    ///
    /// A 2025-era provider's request carries nothing that ties it to the
    /// call that caused it (its stdio has no related-request id), so the
    /// candidates are the calls in flight on this provider whose client can
    /// take it: a session with a reply stream, or a 2026-07-28 call Hangar
    /// bridges (see `ClientPeer::Front`), that declared the capability
    /// (`need`). Clients that can't answer never make it ambiguous; when the
    /// candidates belong to one client, it gets the request; when they belong
    /// to several, the request is refused rather than guessed (never sent to a
    /// client whose call did not ask).
    fn route_client_request(
        &self,
        need: fn(&ClientCapabilities) -> bool,
    ) -> Result<ClientPeer, ErrorData> {
        let inflight = lock(&self.shared.inflight);
        if inflight.is_empty() {
            return Err(ErrorData::internal_error(
                "no client call is in flight",
                None,
            ));
        }
        let mut candidates = inflight.values().filter(|call| {
            call.peer.is_some()
                && call.server_requests
                && call.capabilities.as_ref().is_some_and(need)
        });
        let Some(first) = candidates.next() else {
            return Err(ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                "the calling client does not support this request",
                None,
            ));
        };
        if candidates.any(|c| c.client_key != first.client_key) {
            return Err(ErrorData::internal_error(
                "request is ambiguous: calls of several clients that could answer it are in flight on this provider",
                None,
            ));
        }
        first
            .peer
            .clone()
            .ok_or_else(|| ErrorData::internal_error("the calling client takes no requests", None))
    }
}

impl UpstreamHandler {
    /// Routes a provider's progress notification to the request it is for.
    pub(crate) fn progress(&self, params: ProgressNotificationParam) {
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

    /// A provider's log message (`notifications/message`): to the client whose
    /// calls are in flight on this provider. Log messages carry no request id,
    /// so when calls of several clients are in flight it is not known whose it
    /// is, and it goes to none of them (never to another client).
    pub(crate) fn log(&self, params: LoggingMessageNotificationParam) {
        let peer = {
            let inflight = lock(&self.shared.inflight);
            let mut calls = inflight.values().filter(|c| c.peer.is_some());
            let Some(first) = calls.next() else { return };
            if calls.any(|c| c.client_key != first.client_key) {
                tracing::debug!(provider = %self.shared.provider, "provider log message not forwarded: calls of several clients are in flight");
                return;
            }
            first.peer.clone()
        };
        if let Some(peer) = peer {
            peer.log(params);
        }
    }

    /// Cancels the calls in flight on this provider (those whose client
    /// request id is `request_id`, or all): each is cancelled at the provider
    /// (`notifications/cancelled`) and its caller gets a cancelled error.
    /// Returns the client request ids (`#<n>` for a call without one).
    pub(crate) fn abort(&self, request_id: Option<&str>) -> Vec<String> {
        let inflight = lock(&self.shared.inflight);
        let mut aborted = Vec::new();
        for (n, call) in inflight.iter() {
            let id = call.request_id.clone().unwrap_or_else(|| format!("#{n}"));
            if request_id.is_none_or(|wanted| wanted == id) && !call.ct.is_cancelled() {
                call.ct.cancel();
                aborted.push(id);
            }
        }
        aborted.sort();
        aborted
    }

    /// Passes a provider's event to the runtime.
    pub(crate) fn event(&self, event: UpstreamEvent) {
        (self.shared.events)(event);
    }

    /// Answers a provider's request (Hangar's own stdio link): sampling and
    /// elicitation go to the calling client (or, for an elicitation it can't
    /// answer, to an operator), `ping` is answered here.
    pub(crate) async fn answer(
        &self,
        method: &str,
        params: Option<&serde_json::value::RawValue>,
    ) -> Result<serde_json::Value, ErrorData> {
        fn parse<T: serde::de::DeserializeOwned>(
            params: Option<&serde_json::value::RawValue>,
        ) -> Result<T, ErrorData> {
            serde_json::from_str(params.map_or("{}", |p| p.get()))
                .map_err(|e| ErrorData::invalid_params(format!("invalid params: {e}"), None))
        }
        fn to_value(v: impl serde::Serialize) -> Result<serde_json::Value, ErrorData> {
            serde_json::to_value(v).map_err(|e| ErrorData::internal_error(e.to_string(), None))
        }
        match method {
            "ping" => Ok(serde_json::json!({})),
            "sampling/createMessage" => {
                let params: CreateMessageRequestParams = parse(params)?;
                let peer = self.route_client_request(|c| c.sampling.is_some())?;
                to_value(peer.create_message(params).await?)
            }
            "elicitation/create" => {
                let params: ElicitRequestParams = parse(params)?;
                to_value(self.elicit(params).await?)
            }
            // What rmcp's client answers too: Hangar declares no roots.
            "roots/list" => Ok(serde_json::json!({"roots": []})),
            other => Err(ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                format!("method not found: {other}"),
                None,
            )),
        }
    }

    /// An elicitation: to the calling client when it can answer, else to an
    /// operator as a pending question.
    async fn elicit(&self, params: ElicitRequestParams) -> Result<ElicitResult, ErrorData> {
        let peer = match self.route_client_request(|c| c.elicitation.is_some()) {
            Ok(peer) => peer,
            Err(e) => {
                let Some(ask) = self.question_route(params) else {
                    return Err(e);
                };
                return ask.await;
            }
        };
        peer.create_elicitation(params).await
    }

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
        self.progress(params);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.log(params);
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        (self.shared.events)(UpstreamEvent::ResourceUpdated(params.uri));
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
        peer.create_message(params).await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.elicit(params).await
    }
}

fn service_error_to_error_data(e: ServiceError) -> ErrorData {
    match e {
        ServiceError::McpError(e) => e,
        other => ErrorData::internal_error(other.to_string(), None),
    }
}

/// Where a forwarded request went, for cancelling it.
#[derive(Clone)]
enum Sent {
    Rmcp(Peer<RoleClient>, RequestId),
    Link(Arc<Link>, u64),
}

impl Sent {
    async fn cancel(&self, reason: &str) {
        match self {
            Self::Rmcp(peer, id) => {
                let n = CancelledNotificationParam::new(Some(id.clone()), Some(reason.to_owned()));
                if let Err(e) = peer.notify_cancelled(n).await {
                    tracing::debug!(error = %e, "could not send cancellation upstream");
                }
            }
            Self::Link(link, id) => link.cancel(*id, reason).await,
        }
    }
}

/// Sends `notifications/cancelled` for a request whose forwarding future was
/// dropped before the provider answered (disarmed by taking `sent`).
struct CancelOnDrop {
    sent: Option<Sent>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(sent) = self.sent.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move { sent.cancel("the client went away").await });
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
    conn: Conn,
    /// The resource URIs subscribed at the provider, and a 2026-07-28
    /// provider's `subscriptions/listen` request carrying them.
    subscribed: tokio::sync::Mutex<Subscribed>,
}

#[derive(Default)]
struct Subscribed {
    uris: std::collections::BTreeSet<String>,
    listen: Option<u64>,
}

/// The connection under an [`Upstream`].
enum Conn {
    /// rmcp's client service (remote providers over Streamable HTTP).
    Rmcp {
        service: Box<tokio::sync::Mutex<Option<RunningService<RoleClient, UpstreamHandler>>>>,
        peer: Peer<RoleClient>,
        closed: CancellationToken,
    },
    /// Hangar's own stdio link (child processes, containers).
    Link {
        link: Arc<Link>,
        info: Arc<ServerPeerInfo>,
    },
}

/// A provider's answer as it arrived: typed by rmcp, or raw JSON from the link.
enum Reply {
    Typed(Box<ServerResult>),
    Raw(Box<serde_json::value::RawValue>),
}

/// How a raw result says what it is (2026-07-28 `resultType`).
#[derive(serde::Deserialize)]
struct ResultKind {
    #[serde(rename = "resultType", default)]
    result_type: Option<String>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("provider", &self.provider)
            .finish()
    }
}

impl Upstream {
    /// Runs the MCP handshake over an rmcp `transport` (a remote provider's
    /// Streamable HTTP client). rmcp's automatic lifecycle tries
    /// `server/discover` (2026-07-28) and falls back to `initialize`.
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
        Ok(Self {
            provider: provider.to_owned(),
            handler,
            conn: Conn::Rmcp {
                service: Box::new(tokio::sync::Mutex::new(Some(service))),
                peer,
                closed: CancellationToken::new(),
            },
            subscribed: tokio::sync::Mutex::default(),
        })
    }

    /// Runs the MCP handshake over a provider's stdio (a child's stdout and
    /// stdin, or a container's attached streams) on Hangar's own link: each
    /// request is written by the task that makes it, and one reader task
    /// completes them by id.
    pub async fn connect_stdio(
        provider: &str,
        reader: impl tokio::io::AsyncRead + Send + 'static,
        writer: impl tokio::io::AsyncWrite + Send + 'static,
        events: EventSink,
    ) -> Result<Self, UpstreamError> {
        let handler = UpstreamHandler::new(provider, events);
        let link = Link::start(provider, reader, writer, handler.clone());
        let info = match link.handshake().await {
            Ok(info) => info,
            Err(e) => {
                link.close().await;
                return Err(UpstreamError::Handshake {
                    provider: provider.to_owned(),
                    message: e.to_string(),
                });
            }
        };
        Ok(Self {
            provider: provider.to_owned(),
            handler,
            conn: Conn::Link {
                link,
                info: Arc::new(info),
            },
            subscribed: tokio::sync::Mutex::default(),
        })
    }

    /// The provider this connection belongs to.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The provider's `initialize` / `server/discover` answer.
    pub fn server_info(&self) -> Option<Arc<rmcp::model::ServerPeerInfo>> {
        match &self.conn {
            Conn::Rmcp { peer, .. } => peer.peer_info(),
            Conn::Link { info, .. } => Some(info.clone()),
        }
    }

    /// True once the connection is gone (process exited, stream closed).
    pub fn is_closed(&self) -> bool {
        match &self.conn {
            Conn::Rmcp { peer, closed, .. } => closed.is_cancelled() || peer.is_transport_closed(),
            Conn::Link { link, .. } => link.is_closed(),
        }
    }

    /// One request whose answer is awaited whole (listing, health).
    async fn request<T: serde::de::DeserializeOwned>(
        &self,
        request: ClientRequest,
        timeout: Duration,
        pick: fn(ServerResult) -> Option<T>,
    ) -> Result<T, UpstreamError> {
        match &self.conn {
            Conn::Rmcp { peer, .. } => {
                let r = tokio::time::timeout(timeout, peer.send_request(request))
                    .await
                    .map_err(|_| self.timeout(timeout))?
                    .map_err(|e| self.err(e))?;
                pick(r).ok_or_else(|| self.protocol("unexpected result type"))
            }
            Conn::Link { link, .. } => {
                let raw = link.call(request, timeout).await?;
                serde_json::from_str(raw.get()).map_err(|e| self.protocol(&e.to_string()))
            }
        }
    }

    /// Every page of one listing: `request` builds the request for a
    /// cursor, `pick` takes the typed result from rmcp's, `take` keeps a
    /// page's items and returns its next cursor.
    async fn pages<R: serde::de::DeserializeOwned>(
        &self,
        request: fn(rmcp::model::PaginatedRequestParams) -> ClientRequest,
        pick: fn(ServerResult) -> Option<R>,
        mut take: impl FnMut(R) -> Option<String>,
    ) -> Result<(), UpstreamError> {
        const LIST_TIMEOUT: Duration = Duration::from_secs(60);
        /// Pages are followed up to this many (a provider looping on cursors
        /// can't hold a start forever).
        const MAX_PAGES: usize = 1000;
        let mut cursor = None;
        for _ in 0..MAX_PAGES {
            let params = rmcp::model::PaginatedRequestParams::default().with_cursor(cursor);
            let page = self.request(request(params), LIST_TIMEOUT, pick).await?;
            cursor = take(page);
            if cursor.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// Fetches tools, resources, templates and prompts, each only when the
    /// provider declares the capability (every page).
    pub async fn fetch_listing(&self) -> Result<ProviderListing, UpstreamError> {
        use rmcp::model::{
            ListPromptsRequest, ListResourceTemplatesRequest, ListResourcesRequest,
            ListToolsRequest,
        };
        let caps = self
            .server_info()
            .map(|i| i.capabilities.clone())
            .unwrap_or_default();
        let mut listing = ProviderListing::default();
        if caps.tools.is_some() {
            self.pages(
                |p| ClientRequest::ListToolsRequest(ListToolsRequest::with_param(p)),
                |r| match r {
                    ServerResult::ListToolsResult(r) => Some(r),
                    _ => None,
                },
                |r| {
                    listing.tools.extend(r.tools);
                    r.next_cursor
                },
            )
            .await?;
        }
        if caps.resources.is_some() {
            self.pages(
                |p| ClientRequest::ListResourcesRequest(ListResourcesRequest::with_param(p)),
                |r| match r {
                    ServerResult::ListResourcesResult(r) => Some(r),
                    _ => None,
                },
                |r| {
                    listing.resources.extend(r.resources);
                    r.next_cursor
                },
            )
            .await?;
            self.pages(
                |p| {
                    ClientRequest::ListResourceTemplatesRequest(
                        ListResourceTemplatesRequest::with_param(p),
                    )
                },
                |r| match r {
                    ServerResult::ListResourceTemplatesResult(r) => Some(r),
                    _ => None,
                },
                |r| {
                    listing.resource_templates.extend(r.resource_templates);
                    r.next_cursor
                },
            )
            .await?;
        }
        if caps.prompts.is_some() {
            self.pages(
                |p| ClientRequest::ListPromptsRequest(ListPromptsRequest::with_param(p)),
                |r| match r {
                    ServerResult::ListPromptsResult(r) => Some(r),
                    _ => None,
                },
                |r| {
                    listing.prompts.extend(r.prompts);
                    r.next_cursor
                },
            )
            .await?;
        }
        Ok(listing)
    }

    /// A health check: `ping` on the 2025 protocol, `server/discover` on 2026-07-28.
    pub async fn health_check(&self, timeout: Duration) -> Result<(), UpstreamError> {
        let modern = self
            .server_info()
            .is_some_and(|i| i.protocol_version.as_str() >= "2026-07-28");
        // Sent as a request, not through `Peer::discover`, which answers
        // from its cache (stale ones too, on error) and would hide a dead
        // provider.
        let request = if modern {
            ClientRequest::DiscoverRequest(rmcp::model::DiscoverRequest::new(Default::default()))
        } else {
            ClientRequest::PingRequest(Default::default())
        };
        self.request::<serde_json::Value>(request, timeout, |_| Some(serde_json::Value::Null))
            .await
            .map(|_| ())
    }

    fn err(&self, e: ServiceError) -> UpstreamError {
        UpstreamError::from_service(&self.provider, e)
    }

    fn timeout(&self, after: Duration) -> UpstreamError {
        UpstreamError::Timeout {
            provider: self.provider.clone(),
            after,
        }
    }

    fn protocol(&self, message: &str) -> UpstreamError {
        UpstreamError::Protocol {
            provider: self.provider.clone(),
            message: message.to_owned(),
        }
    }

    /// The `resultType` of a raw result (`None`: a complete one).
    fn kind_of(&self, raw: &serde_json::value::RawValue) -> Result<Option<String>, UpstreamError> {
        serde_json::from_str::<ResultKind>(raw.get())
            .map(|k| k.result_type.filter(|t| t != "complete"))
            .map_err(|e| self.protocol(&e.to_string()))
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        raw: &serde_json::value::RawValue,
    ) -> Result<T, UpstreamError> {
        serde_json::from_str(raw.get()).map_err(|e| self.protocol(&e.to_string()))
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
        match self.forward(request, downstream, timeout).await? {
            Reply::Typed(r) => match *r {
                ServerResult::CallToolResult(mut r) => {
                    r.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(CallToolResponse::Complete(r))
                }
                ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
                ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
                _ => Err(self.protocol("unexpected result type for tools/call")),
            },
            Reply::Raw(raw) => match self.kind_of(&raw)?.as_deref() {
                None => {
                    let mut r: rmcp::model::CallToolResult = self.decode(&raw)?;
                    r.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(CallToolResponse::Complete(r))
                }
                Some("input_required") => Ok(CallToolResponse::InputRequired(self.decode(&raw)?)),
                Some("task") => Ok(CallToolResponse::Task(self.decode(&raw)?)),
                Some(other) => {
                    Err(self.protocol(&format!("unexpected result type '{other}' for tools/call")))
                }
            },
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
            Reply::Typed(r) => match *r {
                ServerResult::ReadResourceResult(mut r) => {
                    r.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(ReadResourceResponse::Complete(r))
                }
                ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
                _ => Err(self.protocol("unexpected result type for resources/read")),
            },
            Reply::Raw(raw) => match self.kind_of(&raw)?.as_deref() {
                None => {
                    let mut r: rmcp::model::ReadResourceResult = self.decode(&raw)?;
                    r.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(ReadResourceResponse::Complete(r))
                }
                Some("input_required") => {
                    Ok(ReadResourceResponse::InputRequired(self.decode(&raw)?))
                }
                Some(other) => Err(self.protocol(&format!(
                    "unexpected result type '{other}' for resources/read"
                ))),
            },
        }
    }

    /// Makes the provider's resource subscriptions `uris`: a 2025-era
    /// provider gets `resources/subscribe` / `resources/unsubscribe` for what
    /// changed; a 2026-07-28 one a new `subscriptions/listen` request naming
    /// them all (the previous one is cancelled). Its
    /// `notifications/resources/updated` arrive as
    /// [`UpstreamEvent::ResourceUpdated`].
    pub async fn set_subscriptions(
        &self,
        uris: std::collections::BTreeSet<String>,
        timeout: Duration,
    ) -> Result<(), UpstreamError> {
        let mut current = self.subscribed.lock().await;
        if let Conn::Link { link, .. } = &self.conn
            && link.is_modern()
        {
            if current.uris == uris && (current.listen.is_some() || uris.is_empty()) {
                return Ok(());
            }
            if let Some(old) = current.listen.take() {
                link.cancel(old, "subscriptions changed").await;
            }
            if !uris.is_empty() {
                let filter = serde_json::json!({
                    "notifications": {"resourceSubscriptions": uris},
                });
                let request = ClientRequest::SubscriptionsListenRequest(
                    serde_json::from_value(serde_json::json!({
                        "method": "subscriptions/listen",
                        "params": filter,
                    }))
                    .map_err(|e| self.protocol(&e.to_string()))?,
                );
                // The stream lasts until cancelled; its answer is not awaited.
                let (id, _answer) = link.send(request, None, false).await?;
                current.listen = Some(id);
            }
            current.uris = uris;
            return Ok(());
        }
        let added: Vec<String> = uris.difference(&current.uris).cloned().collect();
        let removed: Vec<String> = current.uris.difference(&uris).cloned().collect();
        for uri in added {
            let request = ClientRequest::SubscribeRequest(rmcp::model::SubscribeRequest::new(
                rmcp::model::SubscribeRequestParams::new(uri.clone()),
            ));
            self.request::<serde_json::Value>(request, timeout, |_| Some(serde_json::Value::Null))
                .await?;
            current.uris.insert(uri);
        }
        for uri in removed {
            let request = ClientRequest::UnsubscribeRequest(rmcp::model::UnsubscribeRequest::new(
                rmcp::model::UnsubscribeRequestParams::new(uri.clone()),
            ));
            self.request::<serde_json::Value>(request, timeout, |_| Some(serde_json::Value::Null))
                .await?;
            current.uris.remove(&uri);
        }
        Ok(())
    }

    /// Cancels calls in flight on this connection (see `UpstreamHandler::abort`).
    pub fn abort(&self, request_id: Option<&str>) -> Vec<String> {
        self.handler.abort(request_id)
    }

    /// Forwards one `completion/complete` (with the provider's own prompt name).
    pub async fn complete(
        &self,
        mut params: rmcp::model::CompleteRequestParams,
        downstream: &DownstreamCall,
        timeout: Duration,
    ) -> Result<rmcp::model::CompleteResult, UpstreamError> {
        params.meta = None;
        let request = ClientRequest::CompleteRequest(rmcp::model::CompleteRequest::new(params));
        match self.forward(request, downstream, timeout).await? {
            Reply::Typed(r) => match *r {
                ServerResult::CompleteResult(mut r) => {
                    r.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(r)
                }
                _ => Err(self.protocol("unexpected result type for completion/complete")),
            },
            Reply::Raw(raw) => {
                let mut r: rmcp::model::CompleteResult = self.decode(&raw)?;
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(r)
            }
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
            Reply::Typed(r) => match *r {
                ServerResult::GetPromptResult(mut r) => {
                    r.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(GetPromptResponse::Complete(r))
                }
                ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
                _ => Err(self.protocol("unexpected result type for prompts/get")),
            },
            Reply::Raw(raw) => match self.kind_of(&raw)?.as_deref() {
                None => {
                    let mut r: rmcp::model::GetPromptResult = self.decode(&raw)?;
                    r.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(GetPromptResponse::Complete(r))
                }
                Some("input_required") => Ok(GetPromptResponse::InputRequired(self.decode(&raw)?)),
                Some(other) => {
                    Err(self.protocol(&format!("unexpected result type '{other}' for prompts/get")))
                }
            },
        }
    }

    /// Writes `request` to the provider; returns where it went, its upstream
    /// progress token, and its answer to come.
    async fn send(
        &self,
        request: ClientRequest,
        downstream: &DownstreamCall,
    ) -> Result<
        (
            Sent,
            ProgressToken,
            futures::future::BoxFuture<'static, Result<Reply, UpstreamError>>,
        ),
        UpstreamError,
    > {
        let not_delivered = || UpstreamError::NotDelivered {
            provider: self.provider.clone(),
        };
        match &self.conn {
            Conn::Rmcp { peer, .. } => {
                let handle = peer
                    .send_cancellable_request(request, {
                        let mut options = request_options(downstream);
                        // A 2026-07-28 remote asks only for what this call's
                        // client can give, as a stdio provider does.
                        let modern = peer.peer_info().is_some_and(|i| {
                            i.protocol_version >= rmcp::model::ProtocolVersion::V_2026_07_28
                        });
                        if modern {
                            let mut meta = options.meta.take().unwrap_or_default();
                            meta.extend(downstream.capabilities_meta());
                            options = options.with_meta(meta);
                        }
                        options
                    })
                    .await
                    .map_err(|e| match e {
                        // Nothing reached the provider: safe to send elsewhere.
                        ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                            not_delivered()
                        }
                        other => self.err(other),
                    })?;
                let provider = self.provider.clone();
                let rx = handle.rx;
                let answer = Box::pin(async move {
                    match rx.await {
                        Ok(r) => r
                            .map(|r| Reply::Typed(Box::new(r)))
                            .map_err(|e| UpstreamError::from_service(&provider, e)),
                        Err(_) => Err(UpstreamError::Closed { provider }),
                    }
                });
                Ok((
                    Sent::Rmcp(peer.clone(), handle.id),
                    handle.progress_token,
                    answer,
                ))
            }
            Conn::Link { link, .. } => {
                let mut meta = downstream
                    .trace
                    .as_ref()
                    .map(crate::trace::TraceContext::to_meta)
                    .unwrap_or_default();
                // A 2026-07-28 provider asks only for what this call's client
                // can give (read from `_meta`).
                if link.is_modern() {
                    meta.extend(downstream.capabilities_meta());
                }
                let (id, rx) = link.send(request, Some(meta), true).await?;
                let provider = self.provider.clone();
                let answer = Box::pin(async move {
                    match rx.await {
                        Ok(Ok(raw)) => Ok(Reply::Raw(raw)),
                        Ok(Err(error)) => Err(UpstreamError::Rpc { provider, error }),
                        Err(_) => Err(UpstreamError::Closed { provider }),
                    }
                });
                Ok((
                    Sent::Link(link.clone(), id),
                    crate::link::progress_token(id),
                    answer,
                ))
            }
        }
    }

    /// Sends `request`, forwarding progress to the downstream client while it
    /// runs, and cancelling upstream when the downstream request is cancelled.
    async fn forward(
        &self,
        request: ClientRequest,
        downstream: &DownstreamCall,
        timeout: Duration,
    ) -> Result<Reply, UpstreamError> {
        let call_id = self
            .handler
            .shared
            .next_call
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.handler.shared.inflight).insert(
            call_id,
            InflightCall {
                client_key: downstream.client_key,
                ct: downstream.ct.clone(),
                request_id: downstream.request_id.clone(),
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

        // Writing is bounded too: a provider that stopped reading its input
        // must not hold the caller past its timeout.
        let started = tokio::time::Instant::now();
        let (sent, upstream_token, mut rx) =
            tokio::time::timeout(timeout, self.send(request, downstream))
                .await
                .map_err(|_| self.timeout(timeout))??;
        // If this future is dropped before the answer (the client closed the
        // response stream), the provider is told to stop.
        let mut unanswered = CancelOnDrop {
            sent: Some(sent.clone()),
        };
        let mut progress = downstream
            .progress_token
            .as_ref()
            .map(|_| self.handler.register_progress(upstream_token.clone()));
        let deadline = tokio::time::sleep_until(started + timeout);
        tokio::pin!(deadline);

        let outcome = loop {
            tokio::select! {
                biased;
                r = &mut rx => break r,
                Some(p) = async {
                    match progress.as_mut() {
                        Some(p) => p.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.forward_progress(downstream, p).await;
                }
                () = downstream.ct.cancelled() => {
                    sent.cancel("cancelled by the client").await;
                    break Err(UpstreamError::Cancelled { provider: self.provider.clone() });
                }
                () = &mut deadline => {
                    sent.cancel("timed out in hangar").await;
                    break Err(UpstreamError::Timeout { provider: self.provider.clone(), after: timeout });
                }
            }
        };
        unanswered.sent = None;

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

    /// Ends the session (the provider's input is closed: a child ends on EOF).
    pub async fn close(&self) {
        match &self.conn {
            Conn::Rmcp {
                service, closed, ..
            } => {
                closed.cancel();
                let service = service.lock().await.take();
                if let Some(mut s) = service {
                    let _ = s.close_with_timeout(Duration::from_secs(2)).await;
                }
            }
            Conn::Link { link, .. } => link.close().await,
        }
    }
}
