//! Hangar's own `/mcp` front, over raw HTTP against the real server: plain
//! JSON replies in both eras, the switch to SSE when progress comes first,
//! cancellation (by notification and by closing the reply), and the 2025
//! session table (DELETE, idle expiry, caps).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::time::Duration;

use hangar_e2e::{ADMIN_KEY, Server, fixture_config};
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

fn modern_call(id: u64, tool: &str, arguments: Value, meta: Value) -> Value {
    let mut m = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    m.as_object_mut()
        .unwrap()
        .extend(meta.as_object().cloned().unwrap_or_default());
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments, "_meta": m}})
}

fn post_modern(server: &Server, key: &str, body: &Value) -> reqwest::RequestBuilder {
    let method = body["method"].as_str().unwrap().to_owned();
    let mut req = reqwest::Client::new()
        .post(server.at("/mcp"))
        .bearer_auth(key)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", MODERN)
        .header("Mcp-Method", method);
    if let Some(name) = body["params"]["name"].as_str() {
        req = req.header("Mcp-Name", name);
    }
    req.body(body.to_string())
}

/// A 2025-era session opened and initialized by `key`; returns its id.
async fn open_session(server: &Server, key: &str) -> reqwest::Response {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "front-e2e", "version": "0"},
    }});
    reqwest::Client::new()
        .post(server.at("/mcp"))
        .bearer_auth(key)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(init.to_string())
        .send()
        .await
        .unwrap()
}

async fn session(server: &Server, key: &str) -> String {
    let r = open_session(server, key).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = r.text().await;
    let r = post_session(
        server,
        key,
        &id,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    id
}

fn post_session(
    server: &Server,
    key: &str,
    session: &str,
    body: &Value,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(server.at("/mcp"))
        .bearer_auth(key)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .header("Mcp-Session-Id", session)
        .body(body.to_string())
}

/// Sends `req` and returns its JSON body.
async fn json_reply(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The JSON-RPC messages of an SSE body, in order.
fn sse_messages(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

#[tokio::test]
async fn calls_and_lists_are_answered_as_plain_json_in_both_eras() {
    let server = Server::start(&fixture_config("fx", "")).await;

    // 2026-07-28: JSON, `resultType` and the caching hints on the list.
    let body = modern_call(1, "fx__echo", json!({"text": "hi"}), json!({}));
    let r = post_modern(&server, ADMIN_KEY, &body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(content_type(&r).starts_with("application/json"), "{r:?}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["resultType"], "complete");
    assert_eq!(v["result"]["content"][0]["text"], "hi");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }}});
    let r = post_modern(&server, ADMIN_KEY, &list).send().await.unwrap();
    assert!(content_type(&r).starts_with("application/json"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["resultType"], "complete");
    assert!(v["result"]["cacheScope"].is_string(), "{v}");
    assert!(
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "fx__echo")
    );

    // An unknown tool: the JSON-RPC error, in-band.
    let body = modern_call(3, "fx__nope", json!({}), json!({}));
    let v = json_reply(post_modern(&server, ADMIN_KEY, &body)).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");

    // 2025 session: JSON too, without the 2026-07-28 fields.
    let id = session(&server, ADMIN_KEY).await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "fx__echo", "arguments": {"text": "old"}}});
    let r = post_session(&server, ADMIN_KEY, &id, &call)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(content_type(&r).starts_with("application/json"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["result"]["content"][0]["text"], "old");
    assert!(v["result"].get("resultType").is_none(), "{v}");
    let list = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"});
    let v = json_reply(post_session(&server, ADMIN_KEY, &id, &list)).await;
    assert!(v["result"].get("cacheScope").is_none(), "{v}");
    assert!(!v["result"]["tools"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn progress_turns_the_reply_into_an_event_stream_with_the_result_last() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let meta = json!({"progressToken": "tok-1"});
    let body = modern_call(1, "fx__test_tool_with_progress", json!({}), meta);
    let r = post_modern(&server, ADMIN_KEY, &body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(content_type(&r).starts_with("text/event-stream"), "{r:?}");
    let messages = sse_messages(&r.text().await.unwrap());
    let progress: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{messages:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok-1")
    );
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 1, "the result comes after every notification");
    assert_eq!(last["result"]["resultType"], "complete");

    // Same in a 2025 session, where the client's token is a number.
    let id = session(&server, ADMIN_KEY).await;
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "fx__test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": 42}}});
    let r = post_session(&server, ADMIN_KEY, &id, &call)
        .send()
        .await
        .unwrap();
    assert!(content_type(&r).starts_with("text/event-stream"));
    let messages = sse_messages(&r.text().await.unwrap());
    assert_eq!(
        messages
            .iter()
            .filter(|m| m["params"]["progressToken"] == 42)
            .count(),
        3,
        "{messages:?}"
    );
    assert_eq!(messages.last().unwrap()["id"], 5);
}

/// Polls the provider's log for `needle` (bounded).
async fn wait_log(server: &Server, provider: &str, needle: &str) -> bool {
    for _ in 0..100 {
        let (_, logs) = server
            .get_json(&format!("/providers/{provider}/logs?lines=200"))
            .await;
        if logs.to_string().contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The fixture under `fx`, logging at info level (rmcp there logs each
/// `notifications/cancelled` it receives, with its reason).
fn chatty_fixture() -> String {
    format!(
        "providers:\n  fx:\n    command: [\"{}\"]\n    env:\n      RUST_LOG: info\n",
        hangar_e2e::bin("hangar-fixture").display()
    )
}

#[tokio::test]
async fn a_session_cancels_a_call_by_notification() {
    let server = Server::start(&chatty_fixture()).await;
    let id = session(&server, ADMIN_KEY).await;
    let call = json!({"jsonrpc": "2.0", "id": "slow-1", "method": "tools/call",
                      "params": {"name": "fx__sleep", "arguments": {"ms": 60000}}});
    let pending = tokio::spawn(post_session(&server, ADMIN_KEY, &id, &call).send());
    // The client cancels (again until the call is seen in flight).
    let mut cancelled = false;
    for _ in 0..100 {
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                            "params": {"requestId": "slow-1", "reason": "changed my mind"}});
        let r = post_session(&server, ADMIN_KEY, &id, &cancel)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        if pending.is_finished() {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cancelled, "the call did not end on notifications/cancelled");
    let r = pending.await.unwrap().unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], "slow-1");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("cancel"),
        "{v}"
    );
    assert!(
        wait_log(&server, "fx", "cancelled by the client").await,
        "the provider was not told"
    );
}

#[tokio::test]
async fn closing_the_reply_cancels_the_call_at_the_provider() {
    let server = Server::start(&chatty_fixture()).await;
    let body = modern_call(1, "fx__sleep", json!({"ms": 60000}), json!({}));
    let request = post_modern(&server, ADMIN_KEY, &body).send();
    // The client gives up on the reply (closes the connection).
    let _ = tokio::time::timeout(Duration::from_millis(1500), request).await;
    assert!(
        wait_log(&server, "fx", "the client went away").await,
        "the provider was not told the client went away"
    );
}

#[tokio::test]
async fn sessions_end_on_delete_with_200_and_on_idle_with_404() {
    let server = Server::start(&fixture_config(
        "fx",
        "server:\n  session_idle_timeout_s: 1\n",
    ))
    .await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});

    let id = session(&server, ADMIN_KEY).await;
    let r = reqwest::Client::new()
        .delete(server.at("/mcp"))
        .bearer_auth(ADMIN_KEY)
        .header("Mcp-Session-Id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post_session(&server, ADMIN_KEY, &id, &list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Unused for longer than the idle timeout: gone, 404, so the client
    // initializes again.
    let id = session(&server, ADMIN_KEY).await;
    let mut expired = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = reqwest::Client::new()
            .get(server.at("/metrics"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        if text.contains("hangar_mcp_sessions_active{era=\"2025\"} 0") {
            expired = true;
            break;
        }
    }
    assert!(expired, "the idle session was not ended");
    let r = post_session(&server, ADMIN_KEY, &id, &list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn session_caps_refuse_initialize_with_a_json_rpc_error() {
    let server = Server::start(&fixture_config(
        "fx",
        "server:\n  max_sessions: 3\n  max_sessions_per_principal: 2\n",
    ))
    .await;
    let other = server.key_for("other", "developer").await;
    session(&server, ADMIN_KEY).await;
    session(&server, ADMIN_KEY).await;
    let r = open_session(&server, ADMIN_KEY).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_sessions_per_principal"),
        "{v}"
    );
    // Another principal still gets one, up to the server's cap.
    session(&server, &other).await;
    let r = open_session(&server, &other).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_sessions ")
    );
    // Stateless 2026-07-28 calls need no session and still work.
    let body = modern_call(1, "fx__echo", json!({"text": "still"}), json!({}));
    let r = post_modern(&server, &other, &body).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_provider_speaking_only_the_2025_protocol_is_reached_through_initialize() {
    // Hangar's stdio link asks `server/discover` first; a 2025-only provider
    // refuses it, and the link falls back to `initialize`.
    let config = format!(
        "providers:\n  old:\n    command: [\"{}\", \"--legacy\"]\n",
        hangar_e2e::bin("hangar-fixture").display()
    );
    let server = Server::start(&config).await;
    let body = modern_call(1, "old__echo", json!({"text": "via initialize"}), json!({}));
    let v = json_reply(post_modern(&server, ADMIN_KEY, &body)).await;
    assert_eq!(v["result"]["content"][0]["text"], "via initialize", "{v}");
    // A 2025 provider's result reaches a 2026-07-28 client with `resultType`.
    assert_eq!(v["result"]["resultType"], "complete");
    let meta = json!({"progressToken": "p"});
    let body = modern_call(2, "old__test_tool_with_progress", json!({}), meta);
    let r = post_modern(&server, ADMIN_KEY, &body).send().await.unwrap();
    let messages = sse_messages(&r.text().await.unwrap());
    assert_eq!(
        messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count(),
        3,
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_session_answers_ping_and_refuses_what_it_does_not_know() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let id = session(&server, ADMIN_KEY).await;
    let ask = |body: Value| {
        let (server, id) = (&server, &id);
        async move {
            let r = post_session(server, ADMIN_KEY, id, &body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, v) = ask(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await;
    assert_eq!((status, &v["result"]), (200, &json!({})));
    let (_, v) = ask(json!({"jsonrpc": "2.0", "id": 2, "method": "no/such"})).await;
    assert_eq!(v["error"]["code"], -32601, "{v}");
    let (_, v) =
        ask(json!({"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {}})).await;
    assert_eq!(v["error"]["code"], -32600, "{v}");
    // Resources and prompts of a session are served too.
    let (_, v) = ask(json!({"jsonrpc": "2.0", "id": 4, "method": "resources/list"})).await;
    assert!(v["result"]["resources"].is_array(), "{v}");
    let (_, v) = ask(json!({"jsonrpc": "2.0", "id": 5, "method": "prompts/list"})).await;
    assert!(v["result"]["prompts"].is_array(), "{v}");
    // A session id nobody opened: 404 with a JSON-RPC body.
    let r = post_session(
        &server,
        ADMIN_KEY,
        "not-a-session",
        &json!({"jsonrpc": "2.0", "id": 6, "method": "ping"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Session not found");
    // Another principal's session does not exist for it either.
    let other = server.key_for("other", "developer").await;
    let r = post_session(
        &server,
        &other,
        &id,
        &json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_providers_question_reaches_a_session_on_the_calls_stream_and_its_answer_goes_back() {
    let server = Server::start(&fixture_config("fx", "")).await;
    // A 2025 client that declares elicitation.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "front-e2e", "version": "0"},
    }});
    let r = reqwest::Client::new()
        .post(server.at("/mcp"))
        .bearer_auth(ADMIN_KEY)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    let id = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = post_session(&server, ADMIN_KEY, &id, &initialized)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "fx__test_elicitation", "arguments": {"message": "Who are you?"}}});
    let mut r = post_session(&server, ADMIN_KEY, &id, &call)
        .send()
        .await
        .unwrap();
    assert!(content_type(&r).starts_with("text/event-stream"));
    // Read until the provider's question arrives on the call's stream.
    let mut text = String::new();
    let question = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(20), r.chunk())
            .await
            .expect("no question within 20 s")
            .unwrap()
            .expect("the stream ended before the question");
        text.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(q) = sse_messages(&text)
            .into_iter()
            .find(|m| m["method"] == "elicitation/create")
        {
            break q;
        }
    };
    assert_eq!(question["params"]["message"], "Who are you?", "{question}");
    // The client answers with a POST of its own; the call then completes.
    let answer = json!({"jsonrpc": "2.0", "id": question["id"], "result": {
        "action": "accept", "content": {"username": "raw-client", "email": "r@example.com"}}});
    let posted = post_session(&server, ADMIN_KEY, &id, &answer)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), r.chunk())
        .await
        .expect("no result within 20 s")
        .unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let last = sse_messages(&text).pop().unwrap();
    assert_eq!(last["id"], 9);
    let result = last["result"].to_string();
    assert!(result.contains("raw-client"), "{last}");
}

/// The next `notifications/resources/updated` URI on an SSE stream (bounded wait).
async fn next_update(stream: &mut reqwest::Response, buffer: &mut String) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for m in sse_messages(&event) {
                if m["method"] == "notifications/resources/updated" {
                    return m["params"]["uri"].as_str().unwrap().to_owned();
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("no resource update arrived")
            .unwrap()
            .expect("the stream ended");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn subscriptions_reach_subscribers_only(legacy_provider: bool) {
    // One provider: the URIs are its own (several providers listing the
    // same URI route it to the first).
    let config = if legacy_provider {
        format!(
            "providers:\n  old:\n    command: [\"{}\", \"--legacy\"]\n",
            hangar_e2e::bin("hangar-fixture").display()
        )
    } else {
        fixture_config("fx", "")
    };
    let server = Server::start(&config).await;
    let (tool, watched, other) = if legacy_provider {
        (
            "old__test_trigger_resource_update",
            "test://watched-resource",
            "test://static-text",
        )
    } else {
        (
            "fx__test_trigger_resource_update",
            "test://watched-resource",
            "test://static-text",
        )
    };
    let (a, b) = (
        session(&server, ADMIN_KEY).await,
        session(&server, ADMIN_KEY).await,
    );
    for (s, uri) in [(&a, watched), (&b, other)] {
        let r = json_reply(post_session(
            &server,
            ADMIN_KEY,
            s,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": uri}}),
        ))
        .await;
        assert_eq!(r["result"], json!({}), "{r}");
    }
    let get = |s: &str| {
        reqwest::Client::new()
            .get(server.at("/mcp"))
            .bearer_auth(ADMIN_KEY)
            .header("Accept", "text/event-stream")
            .header("MCP-Protocol-Version", "2025-06-18")
            .header("Mcp-Session-Id", s)
            .send()
    };
    let mut sa = get(&a).await.unwrap();
    let mut sb = get(&b).await.unwrap();
    let (mut ba, mut bb) = (String::new(), String::new());
    let trigger = |uri: &str| {
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": tool, "arguments": {"uri": uri}}})
    };
    let r = json_reply(post_session(&server, ADMIN_KEY, &a, &trigger(watched))).await;
    assert!(r["result"]["content"][0]["text"].is_string(), "{r}");
    assert_eq!(next_update(&mut sa, &mut ba).await, watched);
    // b subscribed to the other URI only: its first update is that one.
    json_reply(post_session(&server, ADMIN_KEY, &a, &trigger(other))).await;
    assert_eq!(next_update(&mut sb, &mut bb).await, other);

    // Unsubscribed and ended, nobody holds the provider's subscriptions.
    json_reply(post_session(
        &server,
        ADMIN_KEY,
        &a,
        &json!({"jsonrpc": "2.0", "id": 3, "method": "resources/unsubscribe", "params": {"uri": watched}}),
    ))
    .await;
    let r = reqwest::Client::new()
        .delete(server.at("/mcp"))
        .bearer_auth(ADMIN_KEY)
        .header("Mcp-Session-Id", &b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    if legacy_provider {
        // The 2025 provider counts its session's subscriptions.
        for _ in 0..100 {
            let r = json_reply(post_session(&server, ADMIN_KEY, &a, &trigger(other))).await;
            let text = r["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if text.contains("(0 session subscriber(s))") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the provider still has subscribers after every client left");
    }
}

#[tokio::test]
async fn resource_updates_reach_subscribed_sessions_only_2026_provider() {
    subscriptions_reach_subscribers_only(false).await;
}

#[tokio::test]
async fn resource_updates_reach_subscribed_sessions_only_2025_provider() {
    subscriptions_reach_subscribers_only(true).await;
}

#[tokio::test]
async fn a_2026_listen_stream_gets_its_list_changes_and_resource_updates_tagged() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let listen = json!({"jsonrpc": "2.0", "id": 77, "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": true, "resourceSubscriptions": ["test://watched-resource"]},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": {"name": "listen-e2e", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    }});
    let mut stream = post_modern(&server, ADMIN_KEY, &listen)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(content_type(&stream).starts_with("text/event-stream"));
    let mut buffer = String::new();
    let mut next = async |want: &str| -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if let Some(m) = sse_messages(&event)
                    .into_iter()
                    .find(|m| m["method"] == want)
                {
                    return m;
                }
            }
            let chunk = tokio::time::timeout_at(deadline, stream.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {want}"))
                .unwrap()
                .expect("the stream ended");
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    let ack = next("notifications/subscriptions/acknowledged").await;
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        77
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["test://watched-resource"]})
    );

    // A resource update of the provider, for the URI it subscribed to.
    let call = modern_call(1, "fx__test_trigger_resource_update", json!({}), json!({}));
    let r = json_reply(post_modern(&server, ADMIN_KEY, &call)).await;
    assert!(r["result"]["content"][0]["text"].is_string(), "{r}");
    let update = next("notifications/resources/updated").await;
    assert_eq!(update["params"]["uri"], "test://watched-resource");
    assert_eq!(
        update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        77
    );

    // A new provider changes the tool list.
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            "/providers",
            Some(json!({"provider_id": "more", "command": [hangar_e2e::bin("hangar-fixture")]})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = server
        .send(reqwest::Method::POST, "/providers/more/start", None)
        .await;
    assert_eq!(status, 200);
    let changed = next("notifications/tools/list_changed").await;
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        77
    );
}

#[tokio::test]
async fn a_session_holds_a_bounded_number_of_subscriptions() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let s = session(&server, ADMIN_KEY).await;
    let subscribe = |n: usize| {
        json!({"jsonrpc": "2.0", "id": n, "method": "resources/subscribe",
               "params": {"uri": format!("test://many/{n}")}})
    };
    for n in 0..256 {
        let r = json_reply(post_session(&server, ADMIN_KEY, &s, &subscribe(n))).await;
        assert_eq!(r["result"], json!({}), "{n}: {r}");
    }
    let r = json_reply(post_session(&server, ADMIN_KEY, &s, &subscribe(256))).await;
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 256")),
        "{r}"
    );
    // Subscribing again to one it holds is still fine.
    let r = json_reply(post_session(&server, ADMIN_KEY, &s, &subscribe(3))).await;
    assert_eq!(r["result"], json!({}), "{r}");
}

#[tokio::test]
async fn lists_come_in_one_page_and_a_foreign_cursor_is_refused() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let s = session(&server, ADMIN_KEY).await;
    for method in [
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    ] {
        let r = json_reply(post_session(
            &server,
            ADMIN_KEY,
            &s,
            &json!({"jsonrpc": "2.0", "id": 1, "method": method}),
        ))
        .await;
        assert!(r["result"].is_object(), "{method}: {r}");
        assert!(r["result"]["nextCursor"].is_null(), "{method}: {r}");
        let r = json_reply(post_session(
            &server,
            ADMIN_KEY,
            &s,
            &json!({"jsonrpc": "2.0", "id": 2, "method": method, "params": {"cursor": "page-2"}}),
        ))
        .await;
        assert_eq!(r["error"]["code"], -32602, "{method}: {r}");
    }
}

#[tokio::test]
async fn sessions_are_listed_ended_and_aborted_over_rest() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let dev = server.key_for("dev", "developer").await;
    let a = session(&server, ADMIN_KEY).await;
    let b = session(&server, &dev).await;
    let list = |key: String| {
        let server = &server;
        async move {
            let (_, _, v) = server
                .call_as(&key, reqwest::Method::GET, "/sessions", None)
                .await;
            let mut ids: Vec<String> = v["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["session_id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            (ids, v)
        }
    };
    // A principal sees its own; admin (sessions:read) sees all.
    let (ids, v) = list(dev.clone()).await;
    assert_eq!(ids, vec![b.clone()], "{v}");
    assert_eq!(v["sessions"][0]["principal_id"], "dev");
    assert_eq!(v["sessions"][0]["client_name"], "front-e2e");
    assert_eq!(v["sessions"][0]["era"], "2025");
    let (ids, _) = list(ADMIN_KEY.to_owned()).await;
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(ids, both);
    // Someone else's session does not exist for dev.
    let (status, _, _) = server
        .call_as(
            &dev,
            reqwest::Method::DELETE,
            &format!("/sessions/{a}"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Abort a running call of session a: its caller gets an error, the
    // provider stays ready, the session goes on.
    let call = {
        let (server_url, a) = (server.at("/mcp"), a.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(server_url)
                .bearer_auth(ADMIN_KEY)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json, text/event-stream")
                .header("MCP-Protocol-Version", "2025-06-18")
                .header("Mcp-Session-Id", a)
                .body(
                    json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call",
                           "params": {"name": "fx__sleep", "arguments": {"ms": 60000}}})
                    .to_string(),
                )
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    let mut in_flight = Value::Null;
    for _ in 0..200 {
        let (_, v) = server.get_json(&format!("/sessions/{a}")).await;
        if v["in_flight"] == json!(["41"]) {
            in_flight = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(in_flight["calls_in_flight"], 1, "{in_flight}");
    let (status, v) = server
        .send(reqwest::Method::POST, &format!("/sessions/{a}/abort"), None)
        .await;
    assert_eq!((status, &v["aborted"]), (200, &json!(["41"])), "{v}");
    let reply = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the aborted call did not return")
        .unwrap();
    let answer = sse_messages(&reply)
        .into_iter()
        .chain(serde_json::from_str::<Value>(&reply).ok())
        .find(|m| m["id"] == 41)
        .unwrap_or_else(|| panic!("no answer in {reply}"));
    assert!(answer["error"].is_object(), "{answer}");
    let r = json_reply(post_session(
        &server,
        ADMIN_KEY,
        &a,
        &json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
               "params": {"name": "fx__echo", "arguments": {"text": "still here"}}}),
    ))
    .await;
    assert_eq!(r["result"]["content"][0]["text"], "still here", "{r}");
    let (_, detail) = server.get_json(&format!("/sessions/{a}")).await;
    let calls = detail["recent_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{detail}");
    assert_eq!(calls[0]["tool"], "fx__sleep");
    assert_eq!(calls[0]["outcome"], "cancelled");
    assert_eq!(calls[1]["outcome"], "success");

    // Ending b: its next request gets 404, a keeps working.
    let (status, v) = server
        .send(reqwest::Method::DELETE, &format!("/sessions/{b}"), None)
        .await;
    assert_eq!((status, &v["ended"]), (200, &json!(true)), "{v}");
    let r = post_session(
        &server,
        &dev,
        &b,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let r = json_reply(post_session(
        &server,
        ADMIN_KEY,
        &a,
        &json!({"jsonrpc": "2.0", "id": 43, "method": "ping"}),
    ))
    .await;
    assert_eq!(r["result"], json!({}), "{r}");
    let (status, _) = server.get_json(&format!("/sessions/{b}")).await;
    assert_eq!(status, 404);
}
