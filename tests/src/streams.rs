//! Clients of the server's live streams: Server-Sent Events (`/api/events`)
//! and WebSockets (`/api/ws/...`).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::Server;

/// One SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `id:` (the store position).
    pub id: Option<u64>,
    /// `event:` (empty for plain messages).
    pub event: String,
    /// `data:` as JSON (Null if it is not JSON).
    pub data: Value,
}

/// An open `GET /api/events` stream.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// Opens `/api/events?{query}` with `key`, resuming after `last_event_id`.
    /// Panics unless the server answers 200 with an event stream.
    pub async fn open(server: &Server, key: &str, query: &str, last_event_id: Option<u64>) -> Self {
        let mut req = reqwest::Client::new()
            .get(server.at(&format!("/api/events?{query}")))
            .bearer_auth(key)
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200, "GET /api/events?{query}");
        let ct = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` if the stream ended or
    /// nothing came within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: String::new(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() && event.event.is_empty() {
                    continue; // a keep-alive comment
                }
                event.data = serde_json::from_str(&data).unwrap_or(Value::Null);
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until one matches `done` (included); panics after `within`.
    pub async fn until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&SseEvent) -> bool,
    ) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(e) = self.next(left).await else {
                panic!("stream ended or timed out; got {seen:#?}");
            };
            let stop = done(&e);
            seen.push(e);
            if stop {
                return seen;
            }
        }
    }
}

/// An open WebSocket to the server.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `ws://.../api{path}` with `key`: as a browser would (the key as
/// a `bearer.<key>` subprotocol next to `hangar.v1`) or with an
/// `Authorization` header. Returns the socket and the protocol the server
/// chose.
pub async fn ws_open(
    server: &Server,
    path: &str,
    key: &str,
    browser: bool,
) -> Result<(Ws, Option<String>), tokio_tungstenite::tungstenite::Error> {
    let url = format!("{}/api{path}", server.url.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request()?;
    let headers = req.headers_mut();
    if browser {
        headers.insert(
            "Sec-WebSocket-Protocol",
            format!("hangar.v1, bearer.{key}").parse().unwrap(),
        );
    } else {
        headers.insert("Authorization", format!("Bearer {key}").parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::connect_async(req).await?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((ws, protocol))
}

/// The next text frame as JSON, `None` if the socket closed or nothing came
/// within `within`.
pub async fn ws_next(ws: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match msg.ok()? {
            Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
            Message::Close(_) => return None,
            Message::Ping(p) => {
                let _ = ws.send(Message::Pong(p)).await;
            }
            _ => {}
        }
    }
}

/// Frames until one matches `done` (included); panics after `within`.
pub async fn ws_until(
    ws: &mut Ws,
    within: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(v) = ws_next(ws, left).await else {
            panic!("socket closed or timed out; got {seen:#?}");
        };
        let stop = done(&v);
        seen.push(v);
        if stop {
            return seen;
        }
    }
}

/// Whether `e` is `ProviderStateChanged` of `provider` to `to`.
pub fn is_transition(e: &Value, provider: &str, to: &str) -> bool {
    e["event_type"] == "ProviderStateChanged"
        && e["payload"]["provider_id"] == provider
        && e["payload"]["to"] == to
}

/// The server process's resident memory in KiB (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// A tiny HTTP server that records the JSON bodies POSTed to it (any
/// path), answering 204: an alert webhook, an OTLP/HTTP JSON collector.
/// Returns its base URL.
pub async fn json_sink() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() < len {
                        continue;
                    }
                    let _ = tx.send(
                        serde_json::from_str(&body[..len]).unwrap_or(serde_json::Value::Null),
                    );
                    let _ = socket
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
            });
        }
    });
    (url, rx)
}
