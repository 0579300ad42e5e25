//! Hangar's own JSON-RPC connection over a provider's stdio (a child
//! process's pipes or a container's attached streams).
//!
//! A request is written by the task that makes it, under the writer's lock
//! (no task in between); one reader task per connection reads the
//! provider's lines and completes pending requests by id, with the result
//! left as raw JSON for the caller to decode into the type it expects. The
//! provider's notifications (progress, list changes) and requests (sampling,
//! elicitation, roots, ping) go to the [`UpstreamHandler`] shared with the
//! rmcp connection of remote providers.
//!
//! The handshake follows rmcp's automatic lifecycle: `server/discover` for
//! 2026-07-28 (every later request then carries the era's `_meta`), else
//! `initialize` + `notifications/initialized`.

#![allow(deprecated)]

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{
    ClientCapabilities, ClientJsonRpcMessage, ClientRequest, DiscoverRequest,
    DiscoverRequestParams, DiscoverResult, GetMeta, Implementation, InitializeRequest,
    InitializeRequestParams, InitializeResult, NumberOrString, ProgressNotificationParam,
    ProtocolVersion, RequestMetaObject, ServerPeerInfo,
};
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::error::UpstreamError;
use crate::jsonrpc::Envelope;
use crate::upstream::{UpstreamEvent, UpstreamHandler};

/// The longest line accepted from a provider; longer ones are dropped (and
/// fail the request they answer by timeout).
const MAX_LINE: usize = 64 * 1024 * 1024;
/// How long `server/discover` may take before the provider is taken for a
/// 2025-era one (rmcp's default too).
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The provider's answer to one request: its result as raw JSON, or its
/// JSON-RPC error.
pub(crate) type Answer = Result<Box<RawValue>, ErrorData>;

type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// One provider connection.
pub(crate) struct Link {
    provider: String,
    writer: tokio::sync::Mutex<Option<Writer>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next_id: AtomicU64,
    closed: CancellationToken,
    /// The `_meta` every request carries once 2026-07-28 is negotiated.
    era_meta: OnceLock<RequestMetaObject>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Starts the connection: the reader task runs until the provider's
    /// output ends or [`Link::close`].
    pub(crate) fn start(
        provider: &str,
        reader: impl AsyncRead + Send + 'static,
        writer: impl AsyncWrite + Send + 'static,
        handler: UpstreamHandler,
    ) -> Arc<Self> {
        let link = Arc::new(Self {
            provider: provider.to_owned(),
            writer: tokio::sync::Mutex::new(Some(Box::pin(writer))),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
            era_meta: OnceLock::new(),
        });
        let reading = link.clone();
        tokio::spawn(async move {
            let closed = reading.closed.clone();
            tokio::select! {
                () = read_loop(&reading, &handler, reader) => {}
                () = closed.cancelled() => {}
            }
            reading.closed.cancel();
            // Every request still waiting learns the connection is gone.
            reading.pending().clear();
        });
        link
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the provider speaks 2026-07-28 (negotiated by `server/discover`).
    pub(crate) fn is_modern(&self) -> bool {
        self.era_meta.get().is_some()
    }

    /// True once the provider's output ended or the link was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// The MCP handshake (see the module documentation).
    pub(crate) async fn handshake(&self) -> Result<ServerPeerInfo, UpstreamError> {
        let capabilities = ClientCapabilities::builder()
            .enable_sampling()
            .enable_elicitation()
            .build();
        let info = Implementation::new("hangar", env!("CARGO_PKG_VERSION"));
        let modern = ProtocolVersion::V_2026_07_28;
        let meta = RequestMetaObject::with_client_context(
            modern.clone(),
            info.clone(),
            capabilities.clone(),
        );
        let mut discover =
            ClientRequest::DiscoverRequest(DiscoverRequest::new(DiscoverRequestParams {}));
        *discover.get_meta_mut() = meta.clone();
        match self.call(discover, DISCOVER_TIMEOUT).await {
            Ok(raw) => {
                if let Ok(result) = serde_json::from_str::<DiscoverResult>(raw.get())
                    && result.supported_versions.contains(&modern)
                {
                    let _ = self.era_meta.set(meta);
                    return Ok(ServerPeerInfo::from_discover_result(modern, result));
                }
            }
            Err(UpstreamError::Rpc { .. } | UpstreamError::Timeout { .. }) => {}
            Err(e) => return Err(e),
        }
        let params = InitializeRequestParams::new(capabilities, info)
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
        let init = ClientRequest::InitializeRequest(InitializeRequest::new(params));
        let raw = self.call(init, DISCOVER_TIMEOUT).await?;
        let result: InitializeResult =
            serde_json::from_str(raw.get()).map_err(|e| self.protocol(&e))?;
        self.write(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec())
            .await
            .map_err(|_| self.closed_error())?;
        Ok(ServerPeerInfo::from(result))
    }

    /// Writes `request` (with the era's `_meta`, then `meta`, then a progress
    /// token equal to its id when `progress`) and returns its id and where its
    /// answer arrives. Nothing reached the provider when this fails.
    pub(crate) async fn send(
        &self,
        mut request: ClientRequest,
        meta: Option<RequestMetaObject>,
        progress: bool,
    ) -> Result<(u64, oneshot::Receiver<Answer>), UpstreamError> {
        if self.is_closed() {
            return Err(UpstreamError::NotDelivered {
                provider: self.provider.clone(),
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let m = request.get_meta_mut();
        if let Some(era) = self.era_meta.get() {
            m.extend(era.clone());
        }
        if let Some(meta) = meta {
            m.extend(meta);
        }
        if progress {
            m.set_progress_token(progress_token(id));
        }
        let message = ClientJsonRpcMessage::request(request, wire_id(id));
        let mut line = serde_json::to_vec(&message).map_err(|e| self.protocol(&e))?;
        line.push(b'\n');
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id, tx);
        // Until written, the request is forgotten if this future is dropped
        // (a caller's timeout while the provider is not reading).
        let mut unwritten = Unwritten {
            link: self,
            id: Some(id),
        };
        if self.write(line).await.is_err() {
            return Err(UpstreamError::NotDelivered {
                provider: self.provider.clone(),
            });
        }
        unwritten.id = None;
        Ok((id, rx))
    }

    /// Sends `request` and waits for its answer (handshake, listing, health).
    pub(crate) async fn call(
        &self,
        request: ClientRequest,
        timeout: Duration,
    ) -> Result<Box<RawValue>, UpstreamError> {
        let started = tokio::time::Instant::now();
        let (id, rx) = tokio::time::timeout(timeout, self.send(request, None, false))
            .await
            .map_err(|_| UpstreamError::Timeout {
                provider: self.provider.clone(),
                after: timeout,
            })??;
        match tokio::time::timeout_at(started + timeout, rx).await {
            Ok(Ok(Ok(raw))) => Ok(raw),
            Ok(Ok(Err(error))) => Err(UpstreamError::Rpc {
                provider: self.provider.clone(),
                error,
            }),
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => {
                self.forget(id);
                Err(UpstreamError::Timeout {
                    provider: self.provider.clone(),
                    after: timeout,
                })
            }
        }
    }

    /// Stops waiting for request `id`.
    pub(crate) fn forget(&self, id: u64) {
        self.pending().remove(&id);
    }

    /// Tells the provider to stop working on request `id`.
    pub(crate) async fn cancel(&self, id: u64, reason: &str) {
        self.forget(id);
        let notification = serde_json::json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": reason},
        });
        let mut line = notification.to_string().into_bytes();
        line.push(b'\n');
        if self.write(line).await.is_err() {
            tracing::debug!(provider = %self.provider, "could not send cancellation upstream");
        }
    }

    async fn write(&self, mut bytes: Vec<u8>) -> std::io::Result<()> {
        if bytes.last() != Some(&b'\n') {
            bytes.push(b'\n');
        }
        let mut writer = self.writer.lock().await;
        let Some(w) = writer.as_mut() else {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        };
        let written = async {
            w.write_all(&bytes).await?;
            w.flush().await
        }
        .await;
        if written.is_err() {
            // A broken pipe stays broken.
            *writer = None;
        }
        written
    }

    /// Closes the provider's input (a child ends on EOF) and stops reading.
    pub(crate) async fn close(&self) {
        if let Some(mut w) = self.writer.lock().await.take() {
            let _ = w.shutdown().await;
        }
        self.closed.cancel();
    }

    fn closed_error(&self) -> UpstreamError {
        UpstreamError::Closed {
            provider: self.provider.clone(),
        }
    }

    fn protocol(&self, e: &serde_json::Error) -> UpstreamError {
        UpstreamError::Protocol {
            provider: self.provider.clone(),
            message: e.to_string(),
        }
    }

    /// Routes one line from the provider.
    fn dispatch(self: &Arc<Self>, handler: &UpstreamHandler, line: &[u8]) {
        let message: Envelope<'_> = match serde_json::from_slice(line) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(provider = %self.provider, error = %e, "provider wrote a line that is not JSON-RPC");
                return;
            }
        };
        match (message.id, message.method) {
            (Some(id), None) => {
                let NumberOrString::Number(n) = id else {
                    return;
                };
                let Some(tx) = u64::try_from(n)
                    .ok()
                    .and_then(|n| self.pending().remove(&n))
                else {
                    return;
                };
                let answer = match (message.result, message.error) {
                    (_, Some(error)) => Err(error),
                    (Some(result), None) => Ok(result.to_owned()),
                    (None, None) => Err(ErrorData::internal_error(
                        "the provider answered with neither a result nor an error",
                        None,
                    )),
                };
                let _ = tx.send(answer);
            }
            (Some(id), Some(method)) => {
                // A provider's request: answered in its own task, since it
                // may wait for the client (sampling, elicitation).
                let link = self.clone();
                let handler = handler.clone();
                let method = method.into_owned();
                let params = message.params.map(ToOwned::to_owned);
                tokio::spawn(async move {
                    let answer = handler.answer(&method, params.as_deref()).await;
                    let reply = match answer {
                        Ok(result) => {
                            serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result})
                        }
                        Err(error) => {
                            serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error})
                        }
                    };
                    if link.write(reply.to_string().into_bytes()).await.is_err() {
                        tracing::debug!(provider = %link.provider, "could not answer the provider's request");
                    }
                });
            }
            (None, Some(method)) => match method.as_ref() {
                "notifications/progress" => {
                    if let Some(p) = message.params.and_then(|p| {
                        serde_json::from_str::<ProgressNotificationParam>(p.get()).ok()
                    }) {
                        handler.progress(p);
                    }
                }
                "notifications/tools/list_changed"
                | "notifications/resources/list_changed"
                | "notifications/prompts/list_changed" => handler.event(UpstreamEvent::ListChanged),
                "notifications/resources/updated" => {
                    #[derive(serde::Deserialize)]
                    struct Updated {
                        uri: String,
                    }
                    if let Some(Ok(u)) = message
                        .params
                        .map(|p| serde_json::from_str::<Updated>(p.get()))
                    {
                        handler.event(UpstreamEvent::ResourceUpdated(u.uri));
                    }
                }
                "notifications/message" => {
                    match message.params.map(|p| {
                        serde_json::from_str::<rmcp::model::LoggingMessageNotificationParam>(
                            p.get(),
                        )
                    }) {
                        Some(Ok(p)) => handler.log(p),
                        _ => {
                            tracing::debug!(provider = %self.provider, "provider log message not understood");
                        }
                    }
                }
                _ => {}
            },
            (None, None) => {}
        }
    }
}

/// Request `id` as written on the wire.
fn wire_id(id: u64) -> NumberOrString {
    NumberOrString::Number(i64::try_from(id).unwrap_or(i64::MAX))
}

/// The progress token [`Link::send`] gives request `id` (its id).
pub(crate) fn progress_token(id: u64) -> rmcp::model::ProgressToken {
    rmcp::model::ProgressToken(wire_id(id))
}

/// Forgets a request whose line was not written (see [`Link::send`]).
struct Unwritten<'a> {
    link: &'a Link,
    id: Option<u64>,
}

impl Drop for Unwritten<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.link.forget(id);
        }
    }
}

/// Reads lines until the provider's output ends.
async fn read_loop(
    link: &Arc<Link>,
    handler: &UpstreamHandler,
    reader: impl AsyncRead + Send + 'static,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, Box::pin(reader));
    let mut line = Vec::with_capacity(8 * 1024);
    let mut oversized = false;
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) => return,
            Ok(buf) => buf,
            Err(e) => {
                tracing::debug!(provider = %link.provider, error = %e, "provider output ended");
                return;
            }
        };
        let (chunk, end) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !oversized {
            if line.len() + chunk.len() > MAX_LINE {
                tracing::warn!(provider = %link.provider, max = MAX_LINE, "provider wrote a line too long to read; dropped");
                oversized = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let consumed = end.unwrap_or(buf.len());
        reader.consume(consumed);
        if end.is_some() {
            if !oversized && !line.is_empty() {
                link.dispatch(handler, &line);
            }
            line.clear();
            oversized = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A scripted 2025-era provider on the other end of a pipe pair: refuses
    /// `server/discover`, answers `initialize`, answers calls in reverse
    /// order, writes a line that is not JSON, and asks Hangar for a `ping`.
    async fn provider(
        input: tokio::io::DuplexStream,
        mut output: tokio::io::DuplexStream,
        pong: tokio::sync::oneshot::Sender<serde_json::Value>,
    ) {
        let mut lines = BufReader::new(input).lines();
        let mut calls = Vec::new();
        let mut pong = Some(pong);
        while let Ok(Some(line)) = lines.next_line().await {
            let m: serde_json::Value = serde_json::from_str(&line).unwrap();
            let reply = match m["method"].as_str() {
                Some("server/discover") => {
                    Some(serde_json::json!({"jsonrpc": "2.0", "id": m["id"],
                    "error": {"code": -32601, "message": "Method not found"}}))
                }
                Some("initialize") => Some(
                    serde_json::json!({"jsonrpc": "2.0", "id": m["id"], "result": {
                    "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "scripted", "version": "1"}}}),
                ),
                Some("notifications/initialized") => {
                    output.write_all(b"this is not json\n").await.unwrap();
                    output
                        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":\"p1\",\"method\":\"ping\"}\n")
                        .await
                        .unwrap();
                    None
                }
                Some("tools/call") => {
                    calls.push(m["id"].clone());
                    if calls.len() == 2 {
                        for id in calls.iter().rev() {
                            let r = serde_json::json!({"jsonrpc": "2.0", "id": id,
                                "result": {"content": [{"type": "text", "text": id.to_string()}]}});
                            output.write_all(format!("{r}\n").as_bytes()).await.unwrap();
                        }
                    }
                    None
                }
                None if m["id"] == "p1" => {
                    if let Some(tx) = pong.take() {
                        let _ = tx.send(m.clone());
                    }
                    None
                }
                _ => None,
            };
            if let Some(r) = reply {
                output.write_all(format!("{r}\n").as_bytes()).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn falls_back_to_initialize_completes_by_id_and_answers_ping() {
        let (hangar_out, provider_in) = tokio::io::duplex(1 << 16);
        let (provider_out, hangar_in) = tokio::io::duplex(1 << 16);
        let (pong_tx, pong_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(provider(provider_in, provider_out, pong_tx));
        let handler = UpstreamHandler::new("scripted", Arc::new(|_| {}));
        let link = Link::start("scripted", hangar_in, hangar_out, handler);
        let info = link.handshake().await.unwrap();
        assert_eq!(info.protocol_version.as_str(), "2025-06-18");
        assert!(info.capabilities.tools.is_some());
        // The provider asked for a ping; the link answered it.
        let pong = tokio::time::timeout(Duration::from_secs(5), pong_rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pong["result"], serde_json::json!({}));

        let call = |name: &str| {
            ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(
                rmcp::model::CallToolRequestParams::new(name.to_owned()),
            ))
        };
        let (a, rx_a) = link.send(call("a"), None, false).await.unwrap();
        let (b, rx_b) = link.send(call("b"), None, false).await.unwrap();
        // Answered in reverse order; each reaches its own caller.
        let (ra, rb) = tokio::join!(rx_a, rx_b);
        let text = |r: Answer| {
            let v: serde_json::Value = serde_json::from_str(r.unwrap().get()).unwrap();
            v["content"][0]["text"].as_str().unwrap().to_owned()
        };
        assert_eq!(text(ra.unwrap()), a.to_string());
        assert_eq!(text(rb.unwrap()), b.to_string());

        link.close().await;
        assert!(link.is_closed());
        assert!(matches!(
            link.send(call("c"), None, false).await,
            Err(UpstreamError::NotDelivered { .. })
        ));
    }

    #[tokio::test]
    async fn a_provider_that_stops_reading_times_the_request_out_and_leaves_nothing_pending() {
        // A tiny pipe nobody reads: the write blocks.
        let (hangar_out, _provider_in) = tokio::io::duplex(16);
        let (_provider_out, hangar_in) = tokio::io::duplex(16);
        let handler = UpstreamHandler::new("stuck", Arc::new(|_| {}));
        let link = Link::start("stuck", hangar_in, hangar_out, handler);
        let request = ClientRequest::PingRequest(Default::default());
        let r = link.call(request, Duration::from_millis(200)).await;
        assert!(matches!(r, Err(UpstreamError::Timeout { .. })), "{r:?}");
        assert!(link.pending().is_empty());
    }
}
