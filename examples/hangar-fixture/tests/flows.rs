//! End-to-end tests of the conformance-suite tools added in `conformance.rs`:
//! the input-required (MRTR) flows in both protocol eras, the sealed
//! `requestState`, completion, media prompts and change notifications.

// Sampling/roots are deprecated by SEP-2577 but are part of the fixture.
#![allow(deprecated)]

use std::error::Error;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult,
    ElicitationAction, GetPromptRequestParams, Implementation, JsonObject, ListRootsResult,
    ProtocolVersion, ResourceUpdatedNotificationParam, Root, SamplingMessage, ServerNotification,
    SubscribeRequestParams, SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{
    ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient, ServiceExt,
};
use serde_json::json;
use tokio::time::timeout;

type TestResult = Result<(), Box<dyn Error>>;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Answers every kind of input request; elicitations by the field asked for.
#[derive(Clone, Default)]
struct FlowClient {
    bare: bool,
    updates: Arc<AtomicUsize>,
}

impl ClientHandler for FlowClient {
    fn get_info(&self) -> ClientConfig {
        let capabilities = if self.bare {
            ClientCapabilities::default()
        } else {
            ClientCapabilities::builder()
                .enable_roots()
                .enable_sampling()
                .enable_elicitation()
                .build()
        };
        ClientConfig::new(capabilities, Implementation::new("flow-test", "0.0.0"))
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text("Paris"),
            "mock-model".to_owned(),
        ))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let schema = serde_json::to_value(&request).unwrap_or_default();
        let properties = &schema["requestedSchema"]["properties"];
        let content = if properties.get("color").is_some() {
            json!({"color": "blue"})
        } else if properties.get("ok").is_some() {
            json!({"ok": true})
        } else if properties.get("context").is_some() {
            json!({"context": "tests"})
        } else if properties.get("verified").is_some() {
            json!({"name": "Jane", "verified": false})
        } else {
            json!({"name": "Alice"})
        };
        let mut result = ElicitResult::new(ElicitationAction::Accept);
        result.content = Some(content);
        Ok(result)
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        Ok(ListRootsResult::new(vec![Root::new("file:///work")]))
    }

    async fn on_resource_updated(
        &self,
        _params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.updates.fetch_add(1, Ordering::SeqCst);
    }
}

fn spawn_transport() -> std::io::Result<TokioChildProcess> {
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hangar-fixture"));
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()?;
    Ok(transport)
}

async fn connect(
    client: FlowClient,
    modern: bool,
) -> Result<RunningService<RoleClient, FlowClient>, Box<dyn Error>> {
    if !modern {
        return Ok(timeout(TIMEOUT, client.serve(spawn_transport()?)).await??);
    }
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    Ok(timeout(
        TIMEOUT,
        client.serve_with_lifecycle(spawn_transport()?, lifecycle),
    )
    .await??)
}

async fn call(
    client: &RunningService<RoleClient, FlowClient>,
    name: &'static str,
) -> Result<CallToolResult, Box<dyn Error>> {
    let params = CallToolRequestParams::new(name).with_arguments(JsonObject::new());
    Ok(timeout(TIMEOUT, client.call_tool(params)).await??)
}

fn first_text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|content| content.as_text())
        .map(|text| text.text.clone())
        .unwrap_or_else(|| panic!("expected text content in {result:?}"))
}

/// The same flows complete in both eras: by MRTR retries on 2026-07-28, by
/// server-to-client requests on 2025 sessions.
#[tokio::test]
async fn input_flows_complete_in_both_eras() -> TestResult {
    for modern in [false, true] {
        let client = connect(FlowClient::default(), modern).await?;
        let expectations = [
            ("test_input_required_result_elicitation", "Hello, Alice!"),
            ("test_input_required_result_sampling", "LLM response: Paris"),
            (
                "test_input_required_result_list_roots",
                "Client roots: file:///work",
            ),
            (
                "test_input_required_result_request_state",
                "state-ok: confirmed, ok=true",
            ),
            (
                "test_input_required_result_tampered_state",
                "state-ok: confirmed, ok=true",
            ),
            (
                "test_input_required_result_multiple_inputs",
                "Hello, Alice! Greeting: Paris. Roots: file:///work",
            ),
            (
                "test_input_required_result_multi_round",
                "Alice's favorite color is blue",
            ),
            (
                "test_input_required_result_capabilities",
                "Received responses for: elicitation, roots, sampling",
            ),
            ("test_missing_capability", "LLM response: Paris"),
            ("test_streaming_elicitation", "Hello, Alice!"),
            (
                "test_elicitation_sep1034_defaults",
                r#"Elicitation completed: action=accept, content={"name":"Jane","verified":false}"#,
            ),
        ];
        for (tool, expected) in expectations {
            let result = call(&client, tool).await?;
            assert_eq!(first_text(&result), expected, "{tool}, modern={modern}");
        }
        let prompt = timeout(
            TIMEOUT,
            client.get_prompt(GetPromptRequestParams::new(
                "test_input_required_result_prompt",
            )),
        )
        .await??;
        let text = prompt.messages.first().and_then(|m| m.content.as_text());
        assert_eq!(
            text.map(|t| t.text.as_str()),
            Some("Answer using this context: tests"),
            "modern={modern}"
        );
        client.cancel().await?;
    }
    Ok(())
}

#[tokio::test]
async fn undeclared_capability_is_32021() -> TestResult {
    for modern in [false, true] {
        let client = FlowClient {
            bare: true,
            ..FlowClient::default()
        };
        let client = connect(client, modern).await?;
        let params = CallToolRequestParams::new("test_missing_capability");
        let error = timeout(TIMEOUT, client.call_tool(params)).await?.err();
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("-32021") || message.contains("Missing required client capability"),
            "{message}"
        );
        client.cancel().await?;
    }
    Ok(())
}

/// A stateless retry must bring back the sealed state untouched.
#[tokio::test]
async fn tampered_request_state_is_rejected() -> TestResult {
    let client = connect(FlowClient::default(), true).await?;
    let name = "test_input_required_result_tampered_state";
    let first = timeout(
        TIMEOUT,
        client.call_tool_once(CallToolRequestParams::new(name)),
    )
    .await??;
    let CallToolResponse::InputRequired(required) = first else {
        panic!("expected an InputRequiredResult, got {first:?}");
    };
    let state = required.request_state.ok_or("no requestState")?;
    let mut responses = rmcp::model::InputResponses::new();
    responses.insert(
        "confirm".into(),
        json!({"action": "accept", "content": {"ok": true}}),
    );

    let mut tampered = CallToolRequestParams::new(name);
    tampered.input_responses = Some(responses.clone());
    tampered.request_state = Some(format!("{state}-TAMPERED"));
    let error = timeout(TIMEOUT, client.call_tool_once(tampered))
        .await?
        .err();
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("requestState"), "{message}");

    let mut honest = CallToolRequestParams::new(name);
    honest.input_responses = Some(responses);
    honest.request_state = Some(state);
    let done = timeout(TIMEOUT, client.call_tool_once(honest)).await??;
    assert!(matches!(done, CallToolResponse::Complete(_)), "{done:?}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn completion_and_media_prompts() -> TestResult {
    let client = connect(FlowClient::default(), false).await?;
    let values = timeout(
        TIMEOUT,
        client.complete_prompt_simple("test_prompt_with_arguments", "arg1", "test"),
    )
    .await??;
    assert_eq!(values, vec!["test", "testing", "tested"]);
    let ids = timeout(
        TIMEOUT,
        client.complete_resource_simple("test://template/{id}/data", "id", ""),
    )
    .await??;
    assert_eq!(ids, vec!["1", "2", "3", "42"]);

    let image = timeout(
        TIMEOUT,
        client.get_prompt(GetPromptRequestParams::new("test_prompt_with_image")),
    )
    .await??;
    assert!(
        image
            .messages
            .first()
            .and_then(|m| m.content.as_image())
            .is_some()
    );
    let mut arguments = JsonObject::new();
    arguments.insert("resourceUri".into(), json!("test://example-resource"));
    let embedded = timeout(
        TIMEOUT,
        client.get_prompt(
            GetPromptRequestParams::new("test_prompt_with_embedded_resource")
                .with_arguments(arguments),
        ),
    )
    .await??;
    let json = serde_json::to_value(&embedded)?;
    assert_eq!(
        json["messages"][0]["content"]["resource"]["uri"],
        "test://example-resource"
    );
    client.cancel().await?;
    Ok(())
}

/// 2025 sessions: `resources/subscribe` then an update notifies the session;
/// after `resources/unsubscribe` it does not.
#[tokio::test]
async fn resource_subscriptions_notify_sessions() -> TestResult {
    let handler = FlowClient::default();
    let client = connect(handler.clone(), false).await?;
    let uri = "test://watched-resource";
    timeout(TIMEOUT, client.subscribe(SubscribeRequestParams::new(uri))).await??;
    let result = call(&client, "test_trigger_resource_update").await?;
    assert!(
        first_text(&result).contains("(1 session subscriber(s))"),
        "{result:?}"
    );
    for _ in 0..100 {
        if handler.updates.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(handler.updates.load(Ordering::SeqCst), 1);
    timeout(
        TIMEOUT,
        client.unsubscribe(rmcp::model::UnsubscribeRequestParams::new(uri)),
    )
    .await??;
    let result = call(&client, "test_trigger_resource_update").await?;
    assert!(
        first_text(&result).contains("(0 session subscriber(s))"),
        "{result:?}"
    );
    client.cancel().await?;
    Ok(())
}

/// 2026-07-28: `subscriptions/listen` streams the changes the filter allows.
#[tokio::test]
async fn listen_streams_filtered_changes() -> TestResult {
    let client = connect(FlowClient::default(), true).await?;
    let filter = SubscriptionFilter::builder()
        .tools_list_changed()
        .resource_subscription("test://watched-resource")
        .build();
    let mut subscription = timeout(TIMEOUT, client.listen(filter)).await??;
    call(&client, "test_trigger_prompt_change").await?; // not asked for
    call(&client, "test_trigger_tool_change").await?;
    call(&client, "test_trigger_resource_update").await?;
    let first = timeout(TIMEOUT, subscription.next()).await??;
    assert!(
        matches!(
            first,
            Some(ServerNotification::ToolListChangedNotification(_))
        ),
        "{first:?}"
    );
    let second = timeout(TIMEOUT, subscription.next()).await??;
    assert!(
        matches!(&second, Some(ServerNotification::ResourceUpdatedNotification(n)) if n.params.uri == "test://watched-resource"),
        "{second:?}"
    );
    client.cancel().await?;
    Ok(())
}
