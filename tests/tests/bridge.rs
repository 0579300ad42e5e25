//! The era bridge through the real server: a 2025-era provider's sampling
//! and elicitation requests reach a stateless 2026-07-28 client as
//! `InputRequiredResult`s, and its retries with `inputResponses` complete the
//! call; a 2026-era provider's input requests reach a 2025 session as
//! server-to-client requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]
// Sampling is deprecated by SEP-2577; 2025-era clients still answer it.
#![allow(deprecated)]

use hangar_e2e::mcp_client::{legacy, text};
use hangar_e2e::{ADMIN_KEY, Server, bin};
use rmcp::model::{
    ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
    Implementation, SamplingMessage,
};
use rmcp::service::RequestContext;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientServiceExt, ErrorData, RoleClient};
use serde_json::{Value, json};

fn legacy_fixture() -> String {
    format!(
        "providers:\n  old:\n    command: [\"{}\", \"--legacy\"]\n  new:\n    command: [\"{}\"]\n",
        bin("hangar-fixture").display(),
        bin("hangar-fixture").display()
    )
}

/// A stateless 2026-07-28 `tools/call` as the holder of `key` whose client
/// declares sampling and elicitation; `extra` goes into `params`.
async fn call(server: &Server, key: &str, tool: &str, arguments: Value, extra: Value) -> Value {
    let mut params = json!({
        "name": tool,
        "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "bridge-test", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {"sampling": {}, "elicitation": {"form": {}}},
        },
    });
    if let (Some(into), Some(extra)) = (params.as_object_mut(), extra.as_object()) {
        into.extend(extra.clone());
    }
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params});
    server.post_tools_call(key, &body).await
}

/// The single input request of an input-required result: (key, request).
fn single_request(response: &Value) -> (String, Value) {
    let result = &response["result"];
    assert_eq!(result["resultType"], "input_required", "{response}");
    assert!(
        result["requestState"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let requests = result["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{response}");
    let (key, request) = requests.iter().next().unwrap();
    (key.clone(), request.clone())
}

#[tokio::test]
async fn a_2025_providers_requests_become_input_required_for_a_2026_client() {
    let server = Server::start(&legacy_fixture()).await;

    // Sampling: one round.
    let first = call(
        &server,
        ADMIN_KEY,
        "old__test_sampling",
        json!({"prompt": "2+2?"}),
        json!({}),
    )
    .await;
    let (key, request) = single_request(&first);
    assert_eq!(request["method"], "sampling/createMessage");
    assert_eq!(request["params"]["messages"][0]["content"]["text"], "2+2?");
    let state = first["result"]["requestState"].clone();
    let answer = json!({
        "role": "assistant",
        "content": {"type": "text", "text": "four"},
        "model": "test-model",
        "stopReason": "endTurn",
    });
    let done = call(
        &server,
        ADMIN_KEY,
        "old__test_sampling",
        json!({"prompt": "2+2?"}),
        json!({"requestState": state, "inputResponses": {key: answer}}),
    )
    .await;
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert_eq!(done["result"]["content"][0]["text"], "LLM response: four");

    // Elicitation: the provider's form reaches the client; its answer comes back.
    let first = call(
        &server,
        ADMIN_KEY,
        "old__test_elicitation",
        json!({"message": "who?"}),
        json!({}),
    )
    .await;
    let (key, request) = single_request(&first);
    assert_eq!(request["method"], "elicitation/create");
    assert_eq!(request["params"]["message"], "who?");
    let state = first["result"]["requestState"].as_str().unwrap().to_owned();

    // A retry without the answer is asked again, a changed state or another
    // principal is refused; none of them disturbs the waiting call.
    let again = call(
        &server,
        ADMIN_KEY,
        "old__test_elicitation",
        json!({}),
        json!({"requestState": state}),
    )
    .await;
    assert_eq!(single_request(&again).0, key);
    let mut tampered = state.clone();
    tampered.pop();
    tampered.push(if state.ends_with('0') { '1' } else { '0' });
    let refused = call(
        &server,
        ADMIN_KEY,
        "old__test_elicitation",
        json!({}),
        json!({"requestState": tampered, "inputResponses": {}}),
    )
    .await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let other = server.key_for("mallory", "developer").await;
    let refused = call(
        &server,
        &other,
        "old__test_elicitation",
        json!({}),
        json!({"requestState": state, "inputResponses": {}}),
    )
    .await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");

    let done = call(
        &server,
        ADMIN_KEY,
        "old__test_elicitation",
        json!({}),
        json!({
            "requestState": state,
            "inputResponses": {key: {"action": "accept", "content": {"username": "ada", "email": "ada@example.com"}}},
        }),
    )
    .await;
    let text = done["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("accept") && text.contains("ada"), "{done}");

    // The parked call is gone once answered: its state is refused now.
    let gone = call(
        &server,
        ADMIN_KEY,
        "old__test_elicitation",
        json!({}),
        json!({"requestState": state, "inputResponses": {}}),
    )
    .await;
    assert!(
        gone["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("gone")),
        "{gone}"
    );

    // A client that declares neither still gets the provider's own refusal.
    let plain = server
        .call_tool_as(ADMIN_KEY, "old__test_sampling", json!({"prompt": "x"}))
        .await;
    assert_eq!(plain["result"]["isError"], true, "{plain}");
}

#[tokio::test]
async fn a_2026_providers_input_requests_become_server_requests_for_a_2025_session() {
    let server = Server::start(&legacy_fixture()).await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.at("/mcp")).auth_header(ADMIN_KEY),
    );
    let client = Sampler
        .serve_with_lifecycle(transport, legacy())
        .await
        .unwrap();
    let r = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("new__test_sampling")
                .with_arguments(json!({"prompt": "hi"}).as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(text(&r), "LLM response: sampled by the client");
    assert_ne!(r.is_error, Some(true));
}

/// A 2025-era client that answers sampling requests with a fixed text.
#[derive(Clone)]
struct Sampler;

impl ClientHandler for Sampler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_sampling().build(),
            Implementation::new("sampler", "0"),
        )
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text("sampled by the client"),
            "test-model".into(),
        ))
    }
}

#[tokio::test]
async fn a_2026_provider_asks_only_for_what_the_calling_client_declared() {
    // Stdio and remote: each request carries the calling client's own
    // capabilities (operator questions off: nothing stands in for it).
    let remote = hangar_e2e::HttpFixture::start(false).await;
    let config = format!(
        "providers:\n  local:\n    command: [\"{}\"]\n  far:\n    mode: remote\n    endpoint: {}\nserver:\n  operator_questions: false\n",
        bin("hangar-fixture").display(),
        remote.url
    );
    let server = Server::start(&config).await;
    for tool in [
        "local__test_input_required_result_capabilities",
        "far__test_input_required_result_capabilities",
    ] {
        let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
            "name": tool,
            "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "caps-test", "version": "0"},
                "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
            },
        }});
        let response = server.post_tools_call(ADMIN_KEY, &body).await;
        assert_eq!(
            response["result"]["resultType"], "input_required",
            "{tool}: {response}"
        );
        let requests = response["result"]["inputRequests"].as_object().unwrap();
        assert!(!requests.is_empty(), "{tool}: {response}");
        for request in requests.values() {
            assert_eq!(
                request["method"], "sampling/createMessage",
                "{tool}: {response}"
            );
        }
    }
}
