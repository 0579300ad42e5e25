//! End-to-end tests: spawn the built `hangar-fixture` binary and talk to it
//! over stdio with rmcp's client, in both protocol eras.

// Sampling/logging are deprecated by SEP-2577 but are part of the fixture.
#![allow(deprecated)]

use std::error::Error;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientRequest,
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult,
    ElicitationAction, GetPromptRequestParams, Implementation, JsonObject,
    LoggingMessageNotificationParam, ProgressNotificationParam, ProtocolVersion,
    ReadResourceRequestParams, Request, ResourceContents, SamplingMessage,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{
    ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient, ServiceExt,
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;

type TestResult = Result<(), Box<dyn Error>>;

const TIMEOUT: Duration = Duration::from_secs(10);

const ALL_TOOLS: [&str; 34] = [
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_sampling",
    "test_elicitation",
    "echo",
    "add",
    "sleep",
    "env",
    "crash",
    "trace_context",
    // For the official conformance suite (src/conformance.rs):
    "json_schema_2020_12_tool",
    "test_header_param",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_trigger_tool_change",
    "test_trigger_prompt_change",
    "test_trigger_resource_update",
];

/// A client that supports sampling and elicitation and counts notifications.
#[derive(Clone, Default)]
struct TestClient {
    progress: Arc<AtomicUsize>,
    logs: Arc<AtomicUsize>,
    bare: bool,
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        let capabilities = if self.bare {
            ClientCapabilities::default()
        } else {
            ClientCapabilities::builder()
                .enable_sampling()
                .enable_elicitation()
                .build()
        };
        ClientConfig::new(capabilities, Implementation::new("fixture-test", "0.0.0"))
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text("mocked completion"),
            "mock-model".to_owned(),
        ))
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let mut result = ElicitResult::new(ElicitationAction::Accept);
        result.content = Some(json!({"username": "ferris", "email": "ferris@example.com"}));
        Ok(result)
    }

    async fn on_progress(
        &self,
        _params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.fetch_add(1, Ordering::SeqCst);
    }

    async fn on_logging_message(
        &self,
        _params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.logs.fetch_add(1, Ordering::SeqCst);
    }
}

fn fixture_command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hangar-fixture"));
    command
        .args(args)
        .env("HANGAR_FIXTURE_TEST_VAR", "hello from env");
    command
}

fn spawn_transport() -> std::io::Result<TokioChildProcess> {
    let (transport, _stderr) = TokioChildProcess::builder(fixture_command(&[]))
        .stderr(Stdio::null())
        .spawn()?;
    Ok(transport)
}

async fn connect(
    client: TestClient,
) -> Result<RunningService<RoleClient, TestClient>, Box<dyn Error>> {
    Ok(timeout(TIMEOUT, client.serve(spawn_transport()?)).await??)
}

async fn connect_2026(
    client: TestClient,
) -> Result<RunningService<RoleClient, TestClient>, Box<dyn Error>> {
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    Ok(timeout(
        TIMEOUT,
        client.serve_with_lifecycle(spawn_transport()?, lifecycle),
    )
    .await??)
}

fn args(value: serde_json::Value) -> JsonObject {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

async fn call(
    client: &RunningService<RoleClient, TestClient>,
    name: &'static str,
    arguments: serde_json::Value,
) -> Result<CallToolResult, Box<dyn Error>> {
    let params = CallToolRequestParams::new(name).with_arguments(args(arguments));
    Ok(timeout(TIMEOUT, client.call_tool(params)).await??)
}

fn first_text(result: &CallToolResult) -> &str {
    result
        .content
        .first()
        .and_then(|content| content.as_text())
        .map(|text| text.text.as_str())
        .unwrap_or_else(|| panic!("expected text content in {result:?}"))
}

async fn wait_for(counter: &AtomicUsize, at_least: usize) -> usize {
    for _ in 0..100 {
        if counter.load(Ordering::SeqCst) >= at_least {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    counter.load(Ordering::SeqCst)
}

#[tokio::test]
async fn session_era_surface() -> TestResult {
    let handler = TestClient::default();
    let client = connect(handler.clone()).await?;

    let info = client.peer_info().ok_or("no server info")?;
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("hangar-fixture")
    );
    assert!(info.protocol_version < ProtocolVersion::V_2026_07_28);

    let tools = timeout(TIMEOUT, client.list_all_tools()).await??;
    let mut names: Vec<_> = tools.iter().map(|tool| tool.name.to_string()).collect();
    names.sort();
    let mut expected: Vec<_> = ALL_TOOLS.iter().map(|name| (*name).to_owned()).collect();
    expected.sort();
    assert_eq!(names, expected);

    let sum = call(&client, "add", json!({"a": 2, "b": 3})).await?;
    assert_eq!(first_text(&sum), "5");
    assert_eq!(sum.structured_content, Some(json!({"sum": 5})));
    let fractional = call(&client, "add", json!({"a": 0.5, "b": 0.25})).await?;
    assert_eq!(first_text(&fractional), "0.75");

    let echo = call(&client, "echo", json!({"text": "héllo\n  world"})).await?;
    assert_eq!(first_text(&echo), "héllo\n  world");
    assert_ne!(echo.is_error, Some(true));

    let error = call(&client, "test_error_handling", json!({})).await?;
    assert_eq!(error.is_error, Some(true));
    assert_eq!(
        first_text(&error),
        "This tool intentionally returns an error for testing"
    );

    let simple = call(&client, "test_simple_text", json!({})).await?;
    assert_eq!(
        first_text(&simple),
        "This is a simple text response for testing."
    );
    let image = call(&client, "test_image_content", json!({})).await?;
    assert_eq!(
        image
            .content
            .first()
            .and_then(|c| c.as_image())
            .map(|i| i.mime_type.as_str()),
        Some("image/png")
    );
    let audio = call(&client, "test_audio_content", json!({})).await?;
    assert_eq!(
        audio
            .content
            .first()
            .and_then(|c| c.as_audio())
            .map(|a| a.mime_type.as_str()),
        Some("audio/wav")
    );
    let multiple = call(&client, "test_multiple_content_types", json!({})).await?;
    assert_eq!(multiple.content.len(), 3);

    let env = call(&client, "env", json!({"name": "HANGAR_FIXTURE_TEST_VAR"})).await?;
    assert_eq!(first_text(&env), "hello from env");
    let unset = call(
        &client,
        "env",
        json!({"name": "HANGAR_FIXTURE_SURELY_UNSET"}),
    )
    .await?;
    assert_eq!(unset.is_error, Some(true));
    assert_eq!(first_text(&unset), "not set");

    let resource = timeout(
        TIMEOUT,
        client.read_resource(ReadResourceRequestParams::new("test://template/42/data")),
    )
    .await??;
    match resource.contents.first() {
        Some(ResourceContents::TextResourceContents {
            text, mime_type, ..
        }) => {
            assert!(text.contains("Data for ID: 42"), "{text}");
            assert_eq!(mime_type.as_deref(), Some("application/json"));
        }
        other => panic!("unexpected resource contents {other:?}"),
    }
    let missing = timeout(
        TIMEOUT,
        client.read_resource(ReadResourceRequestParams::new("test://missing")),
    )
    .await?;
    assert!(missing.is_err());

    let prompt = timeout(
        TIMEOUT,
        client.get_prompt(
            GetPromptRequestParams::new("test_prompt_with_arguments")
                .with_arguments(args(json!({"arg1": "one", "arg2": "two"}))),
        ),
    )
    .await??;
    let message = prompt.messages.first().ok_or("no prompt message")?;
    assert_eq!(
        message.content.as_text().map(|t| t.text.as_str()),
        Some("Prompt with arguments: arg1='one', arg2='two'")
    );

    let sampling = call(&client, "test_sampling", json!({"prompt": "hi"})).await?;
    assert_eq!(first_text(&sampling), "LLM response: mocked completion");
    let elicitation = call(&client, "test_elicitation", json!({"message": "who?"})).await?;
    assert_eq!(
        first_text(&elicitation),
        r#"User response: action=accept, content={"email":"ferris@example.com","username":"ferris"}"#
    );

    let logging = call(&client, "test_tool_with_logging", json!({})).await?;
    assert_ne!(logging.is_error, Some(true));
    assert_eq!(wait_for(&handler.logs, 3).await, 3);

    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn invalid_and_unknown_calls_do_not_crash() -> TestResult {
    let client = connect(TestClient::default()).await?;

    // rmcp 3.11 reports argument deserialization failures as tool errors.
    let bad = call(&client, "add", json!({"a": "two", "b": 3})).await?;
    assert_eq!(bad.is_error, Some(true));
    assert!(first_text(&bad).contains("failed to deserialize parameters"));

    let unknown = timeout(
        TIMEOUT,
        client.call_tool(CallToolRequestParams::new("nope")),
    )
    .await?;
    assert!(unknown.is_err());

    // Still alive afterwards.
    let echo = call(&client, "echo", json!({"text": "alive"})).await?;
    assert_eq!(first_text(&echo), "alive");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn capabilities_missing_yield_tool_errors() -> TestResult {
    let client = connect(TestClient {
        bare: true,
        ..TestClient::default()
    })
    .await?;
    let sampling = call(&client, "test_sampling", json!({"prompt": "hi"})).await?;
    assert_eq!(sampling.is_error, Some(true));
    assert!(first_text(&sampling).contains("sampling"));
    let elicitation = call(&client, "test_elicitation", json!({"message": "x"})).await?;
    assert_eq!(elicitation.is_error, Some(true));
    assert!(first_text(&elicitation).contains("elicitation"));
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn progress_notifications() -> TestResult {
    let handler = TestClient::default();
    let client = connect(handler.clone()).await?;

    let slept = call(&client, "sleep", json!({"ms": 300})).await?;
    assert_eq!(first_text(&slept), "slept 300 ms");
    assert!(wait_for(&handler.progress, 1).await >= 1);

    let before = handler.progress.load(Ordering::SeqCst);
    call(&client, "test_tool_with_progress", json!({})).await?;
    assert!(wait_for(&handler.progress, before + 3).await >= before + 3);
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn sleep_is_cancellable() -> TestResult {
    let handler = TestClient::default();
    let client = connect(handler.clone()).await?;

    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("sleep").with_arguments(args(json!({"ms": 60_000}))),
    ));
    let handle = client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await?;
    assert!(
        wait_for(&handler.progress, 2).await >= 2,
        "no progress before cancel"
    );
    handle.cancel(Some("test cancel".to_owned())).await?;

    // Once cancelled, the server stops sending progress for that request.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let after_cancel = handler.progress.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(handler.progress.load(Ordering::SeqCst), after_cancel);

    let echo = call(&client, "echo", json!({"text": "still here"})).await?;
    assert_eq!(first_text(&echo), "still here");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn crash_closes_the_transport() -> TestResult {
    let client = connect(TestClient::default()).await?;
    let outcome = timeout(
        TIMEOUT,
        client.call_tool(CallToolRequestParams::new("crash")),
    )
    .await?;
    assert!(
        outcome.is_err(),
        "crash must not produce a reply: {outcome:?}"
    );
    Ok(())
}

#[tokio::test]
async fn stateless_era_surface() -> TestResult {
    let handler = TestClient::default();
    let client = connect_2026(handler.clone()).await?;
    let info = client.peer_info().ok_or("no server info")?;
    assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);

    let tools = timeout(TIMEOUT, client.list_all_tools()).await??;
    assert_eq!(tools.len(), ALL_TOOLS.len());
    let sum = call(&client, "add", json!({"a": 2, "b": 3})).await?;
    assert_eq!(first_text(&sum), "5");

    // Server-to-client requests are replaced by InputRequiredResult (MRTR);
    // rmcp's client fulfils them through the handler and retries.
    let sampling = call(&client, "test_sampling", json!({"prompt": "hi"})).await?;
    assert_eq!(first_text(&sampling), "LLM response: mocked completion");
    let elicitation = call(&client, "test_elicitation", json!({"message": "who?"})).await?;
    assert!(
        first_text(&elicitation).starts_with("User response: action=accept, content="),
        "{elicitation:?}"
    );

    let slept = call(&client, "sleep", json!({"ms": 250})).await?;
    assert_eq!(first_text(&slept), "slept 250 ms");
    assert!(wait_for(&handler.progress, 1).await >= 1);
    client.cancel().await?;
    Ok(())
}

/// Raw JSON-RPC over the pipes: stdout carries only protocol lines, CLI flags
/// work, and `crash` exits with code 3.
#[tokio::test]
async fn raw_stdio_flags_and_exit_code() -> TestResult {
    let mut child = fixture_command(&["--name", "custom-fixture", "--stderr-lines", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let mut stderr = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();

    let mut stderr_lines = Vec::new();
    for _ in 0..3 {
        let line = timeout(TIMEOUT, stderr.next_line())
            .await??
            .ok_or("stderr closed")?;
        stderr_lines.push(line);
    }
    assert_eq!(stderr_lines[0], "fixture stderr line 0");
    assert_eq!(stderr_lines[1], "fixture stderr line 1");
    assert!(
        stderr_lines[2].starts_with("hangar-fixture ready pid="),
        "{stderr_lines:?}"
    );

    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}
        }
    });
    stdin
        .write_all(format!("{initialize}\n").as_bytes())
        .await?;
    let line = timeout(TIMEOUT, stdout.next_line())
        .await??
        .ok_or("stdout closed")?;
    let response: serde_json::Value = serde_json::from_str(&line)?;
    assert_eq!(response["id"], 1);
    assert_eq!(response["result"]["serverInfo"]["name"], "custom-fixture");
    assert_eq!(response["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(
        response["result"]["capabilities"]["tools"]["listChanged"],
        true
    );

    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let crash = json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "crash", "arguments": {}}
    });
    stdin
        .write_all(format!("{initialized}\n{crash}\n").as_bytes())
        .await?;
    let status = timeout(TIMEOUT, child.wait()).await??;
    assert_eq!(status.code(), Some(3));
    assert!(timeout(TIMEOUT, stdout.next_line()).await??.is_none());
    Ok(())
}
