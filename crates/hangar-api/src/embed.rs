//! Hangar as a library: start it in your program, call its tools in-process
//! as one of its principals, follow its events, mount its HTTP routes in your
//! own `axum` application, and stop it cleanly.
//!
//! An in-process client ([`Hangar::client`]) is an ordinary rmcp client
//! connected to the same MCP server `/mcp` runs, over an in-memory pipe: its
//! calls pass the same policies (deny, ask with approvals), audit records,
//! groups, breakers, metrics and history as a remote client's. Only what is
//! HTTP stays out (keys, rate limits, Origin checks): the program that embeds
//! Hangar says who is calling.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hangar_api::embed::Hangar;
//! use rmcp::model::CallToolRequestParams;
//!
//! let hangar = Hangar::start(&hangar_api::ServerOptions {
//!     config: Some("hangar.yaml".into()),
//!     ..Default::default()
//! })
//! .await?;
//! // The built-in `admin` principal; any principal with roles works.
//! let client = hangar.client("admin").await?;
//! let tools = client.list_all_tools().await?;
//! let result = client
//!     .call_tool(CallToolRequestParams::new("time__get_current_time"))
//!     .await?;
//! # let _ = (tools, result);
//! // Hangar's routes next to your own.
//! let app = axum::Router::new().merge(hangar.router());
//! # let _ = app;
//! hangar.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use hangar_core::rbac::Permission;
use hangar_mcp::{AggregatingServer, CallerCanCall, CallerId, CallerRoles};
use hangar_runtime::Engine;
use hangar_runtime::feed::{EventFilter, FeedItem};
use rmcp::service::{RoleClient, RoleServer, RunningService, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{ServiceExt, model::GetExtensions as _};
use tokio::sync::mpsc;

use crate::app::AppState;
use crate::server::{ServerError, ServerOptions};

/// An MCP client inside the embedding process (see [`Hangar::client`]).
pub type InProcessClient = RunningService<RoleClient, ()>;

/// Bytes in flight between an in-process client and the server.
const PIPE_BYTES: usize = 1 << 20;

/// What can go wrong embedding Hangar.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Starting failed (config, data directory, store).
    #[error(transparent)]
    Start(#[from] ServerError),
    /// The in-process MCP connection could not be set up.
    #[error("in-process MCP connection: {0}")]
    Connect(String),
}

impl EmbedError {
    /// The exit code `hangar-server` would use for it.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Start(e) => e.exit_code(),
            Self::Connect(_) => 1,
        }
    }
}

/// A running Hangar inside another program.
pub struct Hangar {
    state: AppState,
}

impl Hangar {
    /// Starts Hangar as `hangar-server` would (config file, data directory,
    /// keys, providers from the store), without listening anywhere: mount
    /// [`Hangar::router`] to serve HTTP, or use [`Hangar::client`].
    pub async fn start(opts: &ServerOptions) -> Result<Self, EmbedError> {
        let (state, _config) = crate::server::build(opts).await?;
        Ok(Self { state })
    }

    /// The engine: providers, groups, events, metrics.
    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// Roles and their assignments: who may do what (e.g.
    /// `hangar.access().assign("alice", "developer")`).
    pub fn access(&self) -> &crate::authz::Access {
        &self.state.access
    }

    /// The HTTP surface (`/health`, `/mcp`, `/api`, `/metrics`,
    /// `/openapi.json`) to merge into your router and serve.
    pub fn router(&self) -> axum::Router {
        crate::app::router(self.state.clone())
    }

    /// Domain events matching `filter` as they happen; with `after`, the
    /// stored events after that position first. At most `buffer` wait
    /// unread (a slow reader catches up from the store, never grows memory).
    pub fn events(
        &self,
        filter: EventFilter,
        after: Option<u64>,
        buffer: usize,
    ) -> mpsc::Receiver<FeedItem> {
        self.state.engine.events().feed(filter, after, buffer)
    }

    /// An MCP client acting as `principal` (its roles decide what it may
    /// list and call, exactly as for a key of that principal). Use rmcp's
    /// client API on it: `list_all_tools`, `call_tool`, `read_resource`,
    /// `get_prompt`; drop it or call `cancel` to close it.
    pub async fn client(&self, principal: &str) -> Result<InProcessClient, EmbedError> {
        let grants = self.state.access.grants(principal);
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.extensions.insert(CallerId(principal.to_owned()));
        parts.extensions.insert(CallerRoles(grants.roles().into()));
        parts
            .extensions
            .insert(CallerCanCall(grants.allows(&Permission::TOOLS_CALL)));
        let (client_side, server_side) = tokio::io::duplex(PIPE_BYTES);
        let (server_read, server_write) = tokio::io::split(server_side);
        let transport = AsCaller {
            inner: AsyncRwTransport::new_server(server_read, server_write),
            parts,
        };
        let server = AggregatingServer::new(Arc::new(self.state.engine.clone()));
        let shutdown = self.state.shutdown.clone();
        tokio::spawn(async move {
            match server
                .serve_with_ct(transport, shutdown.child_token())
                .await
            {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(e) => tracing::warn!(error = %e, "in-process MCP session did not start"),
            }
        });
        let (client_read, client_write) = tokio::io::split(client_side);
        ().serve(AsyncRwTransport::new_client(client_read, client_write))
            .await
            .map_err(|e| EmbedError::Connect(e.to_string()))
    }

    /// Ends in-process sessions and open streams, then stops every provider
    /// (processes, containers, remote connections).
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        self.state.engine.shutdown().await;
    }
}

/// The server side of an in-process connection: every request carries the
/// caller, as the HTTP layer's `http::request::Parts` would.
struct AsCaller<T> {
    inner: T,
    parts: http::request::Parts,
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for AsCaller<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        let mut message = self.inner.receive().await?;
        if let rmcp::model::JsonRpcMessage::Request(r) = &mut message {
            r.request.extensions_mut().insert(self.parts.clone());
        }
        Some(message)
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
