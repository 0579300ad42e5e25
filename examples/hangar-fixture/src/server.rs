//! The fixture's [`ServerHandler`]: server info, capabilities, logging level
//! and the wiring of tools, resources and prompts.

// Logging is deprecated by SEP-2577 (2026-07-28) but the fixture must still
// exercise it for 2025-era clients.
#![allow(deprecated)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResponse,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use crate::state::StateCodec;
use crate::subscriptions::Hub;

/// Source of [`FixtureServer::session`] ids.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(0);

/// Default `serverInfo.name`.
pub const DEFAULT_NAME: &str = "hangar-fixture";

/// The MCP server. Cheap to clone; all state is shared.
#[derive(Clone)]
pub struct FixtureServer {
    name: Arc<str>,
    /// Only the 2025 protocol (see `--legacy`).
    legacy: bool,
    /// Minimum level set through `logging/setLevel`; `0` means "not set".
    log_level: Arc<AtomicU8>,
    /// Identifies the MCP session this instance serves (for
    /// `resources/subscribe`); see [`Self::for_new_session`].
    session: u64,
    /// Resource subscriptions and change notifications, process-wide.
    hub: Arc<Hub>,
    /// Seals the MRTR `requestState`, with a per-process key.
    state_codec: Arc<StateCodec>,
    tool_router: ToolRouter<Self>,
}

impl FixtureServer {
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            legacy: false,
            log_level: Arc::new(AtomicU8::new(0)),
            session: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            hub: Arc::new(Hub::default()),
            state_codec: Arc::new(StateCodec::new()),
            tool_router: Self::tool_router() + Self::conformance_router(),
        }
    }

    /// A clone for another MCP session (Streamable HTTP serves many): the
    /// same shared state, its own session id.
    pub fn for_new_session(&self) -> Self {
        let mut server = self.clone();
        server.session = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        server
    }

    /// The process-wide change hub.
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The `requestState` codec.
    pub(crate) fn state_codec(&self) -> &StateCodec {
        &self.state_codec
    }

    /// The same server listing `n` more tools, `bulk_00000`…, each answering
    /// with its own name (`--tools`, for listing benchmarks).
    pub fn with_bulk_tools(mut self, n: usize) -> Self {
        use rmcp::handler::server::router::tool::ToolRoute;
        let schema: Arc<rmcp::model::JsonObject> = Arc::new(
            serde_json::json!({
                "type": "object",
                "properties": {"text": {"type": "string", "description": "Ignored"}},
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        for i in 0..n {
            let name = format!("bulk_{i:05}");
            let tool = rmcp::model::Tool::new(
                name.clone(),
                "A generated tool (hangar-fixture --tools)",
                schema.clone(),
            );
            self.tool_router
                .add_route(ToolRoute::new_dyn(tool, move |_context| {
                    let text = name.clone();
                    Box::pin(async move {
                        Ok(rmcp::model::CallToolResponse::Complete(
                            rmcp::model::CallToolResult::success(vec![
                                rmcp::model::ContentBlock::text(text),
                            ]),
                        ))
                    })
                }));
        }
        self
    }

    /// The same server speaking only the 2025 protocol.
    pub fn legacy(mut self) -> Self {
        self.legacy = true;
        self
    }

    /// Send a `notifications/message` to the client unless the effective log
    /// level filters it out. The 2026-07-28 era carries the level per request
    /// in `_meta`; the 2025 era sets it once with `logging/setLevel`.
    pub(crate) async fn log(
        &self,
        context: &RequestContext<RoleServer>,
        level: LoggingLevel,
        logger: &str,
        data: serde_json::Value,
    ) {
        let minimum = context
            .meta
            .log_level()
            .map(level_rank)
            .unwrap_or_else(|| self.log_level.load(Ordering::Relaxed));
        if level_rank(level) < minimum {
            return;
        }
        let param = LoggingMessageNotificationParam::new(level, data).with_logger(logger);
        if let Err(error) = context.peer.notify_logging_message(param).await {
            tracing::warn!(%error, "failed to send logging notification");
        }
    }
}

/// `true` when the current request uses the stateless 2026-07-28 (or later)
/// protocol, which forbids server-to-client requests.
pub(crate) fn is_stateless_era(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28)
}

/// Severity rank, 1 (debug) ..= 8 (emergency); 0 is reserved for "unset".
fn level_rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 1,
        LoggingLevel::Info => 2,
        LoggingLevel::Notice => 3,
        LoggingLevel::Warning => 4,
        LoggingLevel::Error => 5,
        LoggingLevel::Critical => 6,
        LoggingLevel::Alert => 7,
        LoggingLevel::Emergency => 8,
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for FixtureServer {
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        if self.legacy {
            std::borrow::Cow::Owned(
                ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .filter(|v| **v < ProtocolVersion::V_2026_07_28)
                    .cloned()
                    .collect(),
            )
        } else {
            std::borrow::Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::DiscoverResult, ErrorData> {
        if self.legacy {
            // What a server that predates 2026-07-28 answers.
            return Err(ErrorData::method_not_found::<
                rmcp::model::DiscoverRequestMethod,
            >());
        }
        let _ = context;
        Ok(rmcp::model::DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        ))
    }

    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging()
            .enable_completions()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                self.name.to_string(),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Hangar MCP test fixture: conformance tools, resources and prompts.")
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log_level
            .store(level_rank(request.level), Ordering::Relaxed);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        crate::prompts::complete(&request)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.hub
            .subscribe(self.session, &request.uri, context.peer.clone());
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.hub.unsubscribe(self.session, &request.uri);
        Ok(())
    }

    /// Everything the client asks for; rmcp narrows it to what
    /// [`Self::get_info`] advertises.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        self.hub.listen(context).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(crate::resources::list()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            crate::resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if let Some(delay) = crate::resources::delay_of(&request.uri) {
            tokio::time::sleep(delay).await;
        }
        crate::resources::read(&request.uri).map(ReadResourceResponse::from)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(crate::prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name == crate::prompts::INPUT_REQUIRED {
            let retry = crate::mrtr::Retry {
                request_state: request.request_state,
                input_responses: request.input_responses,
            };
            return self.input_required_prompt(&context, retry).await;
        }
        crate::prompts::get(&request.name, request.arguments.as_ref()).map(GetPromptResponse::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_advertises_expected_capabilities() {
        let info = FixtureServer::new("custom").get_info();
        assert_eq!(info.server_info.name, "custom");
        assert_eq!(info.server_info.version, env!("CARGO_PKG_VERSION"));
        let tools = info.capabilities.tools.as_ref();
        assert_eq!(tools.and_then(|t| t.list_changed), Some(true));
        assert!(info.capabilities.resources.is_some());
        assert!(info.capabilities.prompts.is_some());
        assert!(info.capabilities.logging.is_some());
        assert!(info.capabilities.completions.is_some());
        let resources = info.capabilities.resources.as_ref();
        assert_eq!(resources.and_then(|r| r.subscribe), Some(true));
        let prompts = info.capabilities.prompts.as_ref();
        assert_eq!(prompts.and_then(|p| p.list_changed), Some(true));
    }

    #[test]
    fn sessions_get_their_own_ids() {
        let server = FixtureServer::new("x");
        let other = server.for_new_session();
        assert_ne!(server.session, other.session);
        assert!(Arc::ptr_eq(&server.hub, &other.hub));
        assert_eq!(server.tool_router.list_all().len(), 16 + 18);
    }

    #[test]
    fn level_ranks_are_ordered() {
        assert!(level_rank(LoggingLevel::Debug) < level_rank(LoggingLevel::Info));
        assert!(level_rank(LoggingLevel::Alert) < level_rank(LoggingLevel::Emergency));
    }
}
