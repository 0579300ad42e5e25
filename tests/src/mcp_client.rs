//! The rmcp client the end-to-end tests talk to `/mcp` with (admin key),
//! counting the progress notifications it receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, ProgressNotificationParam, ProtocolVersion,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient};

use crate::{ADMIN_KEY, Server};

/// A client handler that counts progress notifications.
#[derive(Clone, Default)]
pub struct Client {
    /// Progress notifications received.
    pub progress: Arc<AtomicUsize>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("e2e", "0"),
        )
    }
    async fn on_progress(
        &self,
        _p: ProgressNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        self.progress.fetch_add(1, Ordering::SeqCst);
    }
}

/// Connects to `server`'s `/mcp` with the admin key in `lifecycle` mode.
pub async fn connect(
    server: &Server,
    lifecycle: ClientLifecycleMode,
) -> (RunningService<RoleClient, Client>, Client) {
    connect_as(server, ADMIN_KEY, lifecycle).await
}

/// Connects to `server`'s `/mcp` with `key` in `lifecycle` mode.
pub async fn connect_as(
    server: &Server,
    key: &str,
    lifecycle: ClientLifecycleMode,
) -> (RunningService<RoleClient, Client>, Client) {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.at("/mcp")).auth_header(key),
    );
    let handler = Client::default();
    let client = handler
        .clone()
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .expect("connect to hangar");
    (client, handler)
}

/// 2025 protocol: `initialize` and a session.
pub fn legacy() -> ClientLifecycleMode {
    ClientLifecycleMode::Initialize
}

/// 2026-07-28 protocol: stateless.
pub fn modern() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

/// `tools/call` parameters: `name` with the JSON object `args`.
pub fn call_params(name: &str, args: serde_json::Value) -> rmcp::model::CallToolRequestParams {
    rmcp::model::CallToolRequestParams::new(name.to_owned())
        .with_arguments(args.as_object().cloned().unwrap_or_default())
}

/// The text content of a call's result, joined.
pub fn text(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("")
}
