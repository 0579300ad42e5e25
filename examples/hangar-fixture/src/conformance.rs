//! Tools the official MCP conformance suite (`@modelcontextprotocol/conformance`)
//! looks for by name, beyond the fixture's original set in `tools.rs`:
//! JSON Schema 2020-12 keywords, elicitation defaults and enums
//! (SEP-1034/1330), the MRTR `input-required-result-*` flows (SEP-2322),
//! the stateless-lifecycle diagnostics (SEP-2575), change triggers and a
//! tool with an `x-mcp-header` parameter (SEP-2243).
//!
//! Every tool that needs client input runs through [`crate::mrtr::drive`], so
//! it works in both eras: MRTR with a sealed `requestState` on 2026-07-28,
//! server-to-client requests on 2025 sessions.

// Logging and sampling are deprecated by SEP-2577 but the conformance surface
// requires them.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, GetPromptResponse, GetPromptResult, JsonObject,
    LoggingLevel, PromptMessage, Role,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::mrtr::{
    self, Elicited, Outcome, Retry, Round, Step, elicit, elicited, field, one, required_schema,
    sample,
};
use crate::server::{FixtureServer, is_stateless_era};
use crate::subscriptions::Change;

/// Key of the name elicitation (`test_input_required_result_elicitation`).
const USER_NAME: &str = "user_name";
/// Key of the sampling request (`test_input_required_result_sampling`).
const CAPITAL_QUESTION: &str = "capital_question";
/// Key of the roots request.
const CLIENT_ROOTS: &str = "client_roots";
/// Key of the confirmation elicitation of the stateful flows.
const CONFIRM: &str = "confirm";
/// Key of the greeting sampling request of the multiple-inputs flow.
const GREETING: &str = "greeting";
/// Key of the context elicitation of `test_input_required_result_prompt`.
const USER_CONTEXT: &str = "user_context";

/// The `inputSchema` of `json_schema_2020_12_tool`, exactly as the
/// `json-schema-2020-12` scenario expects it.
fn json_schema_2020_12() -> Arc<JsonObject> {
    object(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"}
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false
    }))
}

/// The `inputSchema` of `test_header_param`: one string promoted to the
/// `Mcp-Param-Region` HTTP header (SEP-2243).
fn header_param_schema() -> Arc<JsonObject> {
    object(json!({
        "type": "object",
        "properties": {
            "region": {
                "type": "string",
                "description": "Sent as the Mcp-Param-Region header too",
                "x-mcp-header": "Region"
            }
        },
        "required": ["region"]
    }))
}

/// The requested schema of `test_elicitation_sep1034_defaults`: a default for
/// every primitive type (SEP-1034).
fn sep1034_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": true}
        },
        "required": []
    })
}

/// The requested schema of `test_elicitation_sep1330_enums`: all five enum
/// shapes of SEP-1330.
fn sep1330_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Untitled single-select",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string",
                "description": "Titled single-select",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"}
                ]
            },
            "legacyEnum": {
                "type": "string",
                "description": "Legacy titled enum (enumNames, deprecated)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "description": "Untitled multi-select",
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]}
            },
            "titledMulti": {
                "type": "array",
                "description": "Titled multi-select",
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"}
                    ]
                }
            }
        },
        "required": []
    })
}

fn object(value: Value) -> Arc<JsonObject> {
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

fn text(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// A JSON value as prose: strings bare, anything else as JSON.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Flow: ask for a name, greet it.
fn greeting_flow(
    message: &'static str,
) -> impl Fn(Round<'_>) -> Result<Step<CallToolResult>, ErrorData> {
    move |round| match elicited(round.responses, USER_NAME)? {
        None => Ok(Step::Ask {
            requests: one(
                USER_NAME,
                elicit(message, required_schema(&[("name", "string")]))?,
            ),
            state: None,
        }),
        Some(Elicited::Accepted(content)) => {
            let name = field(&content, USER_NAME, "name")?;
            Ok(Step::Done(text(format!("Hello, {}!", as_text(name)))))
        }
        Some(Elicited::Refused(action)) => {
            Ok(Step::Done(text(format!("No name given (action={action})"))))
        }
    }
}

/// Flow: one elicitation with `schema`, reporting the answer verbatim.
fn report_elicitation_flow(
    key: &'static str,
    message: &'static str,
    schema: fn() -> Value,
) -> impl Fn(Round<'_>) -> Result<Step<CallToolResult>, ErrorData> {
    move |round| {
        let Some(result) = mrtr::response::<rmcp::model::ElicitResult>(round.responses, key)?
        else {
            return Ok(Step::Ask {
                requests: one(key, elicit(message, schema())?),
                state: None,
            });
        };
        let action = serde_json::to_value(result.action)
            .ok()
            .and_then(|action| action.as_str().map(str::to_owned))
            .unwrap_or_default();
        let content = result.content.unwrap_or_else(|| json!({}));
        Ok(Step::Done(text(format!(
            "Elicitation completed: action={action}, content={content}"
        ))))
    }
}

/// Flow: one sampling request, reporting the model's answer.
fn sampling_flow(
    key: &'static str,
    prompt: &'static str,
    max_tokens: u32,
) -> impl Fn(Round<'_>) -> Result<Step<CallToolResult>, ErrorData> {
    move |round| match mrtr::sampled(round.responses, key)? {
        None => Ok(Step::Ask {
            requests: one(key, sample(prompt, max_tokens)),
            state: None,
        }),
        Some(answer) => Ok(Step::Done(text(format!("LLM response: {answer}")))),
    }
}

/// Flow: ask for the client's roots and list them.
fn roots_flow(round: Round<'_>) -> Result<Step<CallToolResult>, ErrorData> {
    match mrtr::roots(round.responses, CLIENT_ROOTS)? {
        None => Ok(Step::Ask {
            requests: one(CLIENT_ROOTS, mrtr::list_roots()),
            state: None,
        }),
        Some(roots) if roots.is_empty() => Ok(Step::Done(text("Client roots: none"))),
        Some(roots) => Ok(Step::Done(text(format!(
            "Client roots: {}",
            roots.join(", ")
        )))),
    }
}

/// Flow: ask for a confirmation; completes only with the (verified) state of
/// the round that asked, so the result proves `requestState` round-tripped.
fn confirm_flow(round: Round<'_>) -> Result<Step<CallToolResult>, ErrorData> {
    let asked = round
        .state
        .and_then(|state| state.get("asked"))
        .and_then(Value::as_bool)
        == Some(true);
    let ask = || -> Result<Step<CallToolResult>, ErrorData> {
        Ok(Step::Ask {
            requests: one(
                CONFIRM,
                elicit("Please confirm", required_schema(&[("ok", "boolean")]))?,
            ),
            state: Some(json!({ "asked": true })),
        })
    };
    if !asked {
        return ask();
    }
    match elicited(round.responses, CONFIRM)? {
        None => ask(),
        Some(Elicited::Accepted(content)) => {
            let ok = field(&content, CONFIRM, "ok")?;
            Ok(Step::Done(text(format!("state-ok: confirmed, ok={ok}"))))
        }
        Some(Elicited::Refused(action)) => Ok(Step::Done(text(format!(
            "state-ok: confirmation refused (action={action})"
        )))),
    }
}

/// Flow: elicitation, sampling and roots at once; the state carries the
/// answers collected so far, so a partial retry is asked only for the rest.
fn multiple_inputs_flow(round: Round<'_>) -> Result<Step<CallToolResult>, ErrorData> {
    let mut collected = round
        .state
        .and_then(|state| state.get("collected"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for key in [USER_NAME, GREETING, CLIENT_ROOTS] {
        if let Some(value) = round.responses.get(key) {
            collected.insert(key.to_owned(), value.clone());
        }
    }
    let collected_map: rmcp::model::InputResponses = collected.clone().into_iter().collect();
    let name = match elicited(&collected_map, USER_NAME)? {
        Some(Elicited::Accepted(content)) => Some(as_text(field(&content, USER_NAME, "name")?)),
        Some(Elicited::Refused(action)) => Some(format!("(name {action}d)")),
        None => None,
    };
    let greeting = mrtr::sampled(&collected_map, GREETING)?;
    let roots = mrtr::roots(&collected_map, CLIENT_ROOTS)?;
    if let (Some(name), Some(greeting), Some(roots)) = (&name, &greeting, &roots) {
        return Ok(Step::Done(text(format!(
            "Hello, {name}! Greeting: {greeting}. Roots: {}",
            roots.join(", ")
        ))));
    }
    let mut requests = rmcp::model::InputRequests::new();
    if name.is_none() {
        requests.insert(
            USER_NAME.to_owned(),
            elicit("What is your name?", required_schema(&[("name", "string")]))?,
        );
    }
    if greeting.is_none() {
        requests.insert(GREETING.to_owned(), sample("Generate a greeting", 50));
    }
    if roots.is_none() {
        requests.insert(CLIENT_ROOTS.to_owned(), mrtr::list_roots());
    }
    Ok(Step::Ask {
        requests,
        state: Some(json!({ "collected": collected })),
    })
}

/// Flow: three rounds (name, then colour, then done), the state evolving.
fn multi_round_flow(round: Round<'_>) -> Result<Step<CallToolResult>, ErrorData> {
    let step1 = || -> Result<Step<CallToolResult>, ErrorData> {
        Ok(Step::Ask {
            requests: one(
                "step1",
                elicit(
                    "Step 1: What is your name?",
                    required_schema(&[("name", "string")]),
                )?,
            ),
            state: Some(json!({ "step": 1 })),
        })
    };
    let step2 = |name: &Value| -> Result<Step<CallToolResult>, ErrorData> {
        Ok(Step::Ask {
            requests: one(
                "step2",
                elicit(
                    "Step 2: What is your favorite color?",
                    required_schema(&[("color", "string")]),
                )?,
            ),
            state: Some(json!({ "step": 2, "name": name })),
        })
    };
    let state = round.state.unwrap_or(&Value::Null);
    match state.get("step").and_then(Value::as_u64) {
        Some(1) => match elicited(round.responses, "step1")? {
            None => step1(),
            Some(Elicited::Accepted(content)) => step2(field(&content, "step1", "name")?),
            Some(Elicited::Refused(action)) => Ok(Step::Done(text(format!(
                "Stopped at step 1 (action={action})"
            )))),
        },
        Some(2) => {
            let name = state.get("name").cloned().unwrap_or(Value::Null);
            match elicited(round.responses, "step2")? {
                None => step2(&name),
                Some(Elicited::Accepted(content)) => {
                    let color = field(&content, "step2", "color")?;
                    Ok(Step::Done(text(format!(
                        "{}'s favorite color is {}",
                        as_text(&name),
                        as_text(color)
                    ))))
                }
                Some(Elicited::Refused(action)) => Ok(Step::Done(text(format!(
                    "Stopped at step 2 (action={action})"
                )))),
            }
        }
        _ => step1(),
    }
}

/// Flow: ask only for what the client declared (sampling, elicitation,
/// roots), then report which answers came back.
fn capabilities_flow(round: Round<'_>) -> Result<Step<CallToolResult>, ErrorData> {
    if let Some(asked) = round
        .state
        .and_then(|state| state.get("asked"))
        .and_then(Value::as_array)
    {
        let answered: Vec<&str> = asked
            .iter()
            .filter_map(Value::as_str)
            .filter(|key| round.responses.contains_key(*key))
            .collect();
        return Ok(Step::Done(text(format!(
            "Received responses for: {}",
            if answered.is_empty() {
                "nothing".to_owned()
            } else {
                answered.join(", ")
            }
        ))));
    }
    let capabilities = round.capabilities;
    let mut requests = rmcp::model::InputRequests::new();
    if capabilities.sampling.is_some() {
        requests.insert("sampling".to_owned(), sample("Say hello", 50));
    }
    if capabilities.elicitation.is_some() {
        requests.insert(
            "elicitation".to_owned(),
            elicit("Say something", required_schema(&[("text", "string")]))?,
        );
    }
    if capabilities.roots.is_some() {
        requests.insert("roots".to_owned(), mrtr::list_roots());
    }
    if requests.is_empty() {
        return Ok(Step::Done(text(
            "The client declared none of sampling, elicitation or roots: nothing to ask",
        )));
    }
    let asked: Vec<&String> = requests.keys().collect();
    let state = json!({ "asked": asked });
    Ok(Step::Ask {
        requests,
        state: Some(state),
    })
}

/// Flow of the `test_input_required_result_prompt` prompt.
fn context_prompt_flow(round: Round<'_>) -> Result<Step<GetPromptResult>, ErrorData> {
    let prompt =
        |text: String| GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]);
    match elicited(round.responses, USER_CONTEXT)? {
        None => Ok(Step::Ask {
            requests: one(
                USER_CONTEXT,
                elicit(
                    "What context should the prompt use?",
                    required_schema(&[("context", "string")]),
                )?,
            ),
            state: None,
        }),
        Some(Elicited::Accepted(content)) => {
            let context = field(&content, USER_CONTEXT, "context")?;
            Ok(Step::Done(prompt(format!(
                "Answer using this context: {}",
                as_text(context)
            ))))
        }
        Some(Elicited::Refused(action)) => Ok(Step::Done(prompt(format!(
            "Answer without extra context (action={action})"
        )))),
    }
}

/// Arguments of `test_trigger_resource_update`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateArgs {
    /// URI of the resource that changed (default: test://watched-resource)
    #[serde(default)]
    pub uri: Option<String>,
}

/// Arguments of `test_header_param`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RegionArgs {
    /// Region, also sent as the Mcp-Param-Region header
    pub region: String,
}

impl FixtureServer {
    /// Run a tool's flow and shape the outcome as a `tools/call` answer.
    async fn run_tool(
        &self,
        context: &RequestContext<RoleServer>,
        name: &str,
        RequestState(request_state): RequestState,
        InputResponses(input_responses): InputResponses,
        flow: impl Fn(Round<'_>) -> Result<Step<CallToolResult>, ErrorData>,
    ) -> Result<CallToolResponse, ErrorData> {
        let retry = Retry {
            request_state,
            input_responses,
        };
        Ok(
            match mrtr::drive(context, self.state_codec(), name, retry, flow).await? {
                Outcome::Done(result) => result.into(),
                Outcome::InputRequired(required) => required.into(),
            },
        )
    }

    /// `prompts/get` of `test_input_required_result_prompt`.
    pub(crate) async fn input_required_prompt(
        &self,
        context: &RequestContext<RoleServer>,
        retry: Retry,
    ) -> Result<GetPromptResponse, ErrorData> {
        let name = crate::prompts::INPUT_REQUIRED;
        Ok(
            match mrtr::drive(
                context,
                self.state_codec(),
                name,
                retry,
                context_prompt_flow,
            )
            .await?
            {
                Outcome::Done(result) => result.into(),
                Outcome::InputRequired(required) => required.into(),
            },
        )
    }
}

#[tool_router(router = conformance_router, vis = "pub(crate)")]
impl FixtureServer {
    #[tool(
        description = "Tool with JSON Schema 2020-12 features",
        input_schema = json_schema_2020_12()
    )]
    async fn json_schema_2020_12_tool(
        &self,
        Parameters(arguments): Parameters<JsonObject>,
    ) -> CallToolResult {
        text(format!("ok: {}", Value::Object(arguments)))
    }

    #[tool(
        description = "Echoes `region`, which clients also send as the Mcp-Param-Region header (SEP-2243)",
        input_schema = header_param_schema()
    )]
    async fn test_header_param(
        &self,
        Parameters(RegionArgs { region }): Parameters<RegionArgs>,
    ) -> CallToolResult {
        text(format!("region={region}"))
    }

    #[tool(description = "Elicits a form whose fields all have defaults (SEP-1034)")]
    async fn test_elicitation_sep1034_defaults(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        let flow = report_elicitation_flow(
            "profile",
            "Test client default value handling - please accept with defaults",
            sep1034_schema,
        );
        self.run_tool(
            &context,
            "test_elicitation_sep1034_defaults",
            state,
            responses,
            flow,
        )
        .await
    }

    #[tool(description = "Elicits a form using all five enum schema shapes (SEP-1330)")]
    async fn test_elicitation_sep1330_enums(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        let flow = report_elicitation_flow(
            "choices",
            "Test enum schema handling - please choose",
            sep1330_schema,
        );
        self.run_tool(
            &context,
            "test_elicitation_sep1330_enums",
            state,
            responses,
            flow,
        )
        .await
    }

    #[tool(description = "Asks the user's name (elicitation), then greets them")]
    async fn test_input_required_result_elicitation(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        let flow = greeting_flow("What is your name?");
        self.run_tool(
            &context,
            "test_input_required_result_elicitation",
            state,
            responses,
            flow,
        )
        .await
    }

    #[tool(description = "Asks the client's LLM for the capital of France (sampling)")]
    async fn test_input_required_result_sampling(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        let flow = sampling_flow(CAPITAL_QUESTION, "What is the capital of France?", 100);
        self.run_tool(
            &context,
            "test_input_required_result_sampling",
            state,
            responses,
            flow,
        )
        .await
    }

    #[tool(description = "Asks the client for its roots and lists them")]
    async fn test_input_required_result_list_roots(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        self.run_tool(
            &context,
            "test_input_required_result_list_roots",
            state,
            responses,
            roots_flow,
        )
        .await
    }

    #[tool(
        description = "Asks for a confirmation; completes with \"state-ok\" once the sealed requestState comes back intact"
    )]
    async fn test_input_required_result_request_state(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        self.run_tool(
            &context,
            "test_input_required_result_request_state",
            state,
            responses,
            confirm_flow,
        )
        .await
    }

    #[tool(description = "Asks for a name, an LLM greeting and the client's roots at once")]
    async fn test_input_required_result_multiple_inputs(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        self.run_tool(
            &context,
            "test_input_required_result_multiple_inputs",
            state,
            responses,
            multiple_inputs_flow,
        )
        .await
    }

    #[tool(description = "Asks for a name, then a favourite colour, in two rounds")]
    async fn test_input_required_result_multi_round(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        self.run_tool(
            &context,
            "test_input_required_result_multi_round",
            state,
            responses,
            multi_round_flow,
        )
        .await
    }

    #[tool(
        description = "Asks for a confirmation; a tampered requestState on retry is rejected with -32602"
    )]
    async fn test_input_required_result_tampered_state(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        self.run_tool(
            &context,
            "test_input_required_result_tampered_state",
            state,
            responses,
            confirm_flow,
        )
        .await
    }

    #[tool(
        description = "Asks only for what the client declared: sampling, elicitation and/or roots"
    )]
    async fn test_input_required_result_capabilities(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        self.run_tool(
            &context,
            "test_input_required_result_capabilities",
            state,
            responses,
            capabilities_flow,
        )
        .await
    }

    #[tool(
        description = "Needs the client's sampling capability: without it, fails with -32021 (MissingRequiredClientCapability)"
    )]
    async fn test_missing_capability(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        let flow = sampling_flow("probe", "Say hello", 50);
        self.run_tool(&context, "test_missing_capability", state, responses, flow)
            .await
    }

    #[tool(
        description = "Asks the user's name through the response stream: an InputRequiredResult on 2026-07-28, never a server request"
    )]
    async fn test_streaming_elicitation(
        &self,
        context: RequestContext<RoleServer>,
        state: RequestState,
        responses: InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        let flow = greeting_flow("Streaming elicitation: what is your name?");
        self.run_tool(
            &context,
            "test_streaming_elicitation",
            state,
            responses,
            flow,
        )
        .await
    }

    #[tool(
        description = "Logs three info messages, only when the request asks for logs (2026-07-28: _meta logLevel)"
    )]
    async fn test_logging_tool(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        // 2026-07-28: no logLevel in the request's _meta means no logs at all.
        let wanted = !is_stateless_era(&context) || context.meta.log_level().is_some();
        if wanted {
            for step in [
                "Logging tool started",
                "Logging tool working",
                "Logging tool done",
            ] {
                self.log(
                    &context,
                    LoggingLevel::Info,
                    "test_logging_tool",
                    json!(step),
                )
                .await;
            }
        }
        text(if wanted {
            "Logged 3 messages"
        } else {
            "No logLevel requested: logged nothing"
        })
    }

    #[tool(
        description = "Announces a tool list change (notifications/tools/list_changed) to the caller's session or to listen streams; the list itself stays the same"
    )]
    async fn test_trigger_tool_change(
        &self,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.hub().publish(Change::Tools).await;
        if !is_stateless_era(&context)
            && let Err(error) = context.peer.notify_tool_list_changed().await
        {
            tracing::warn!(%error, "failed to send tools/list_changed");
        }
        text("Announced a tool list change")
    }

    #[tool(
        description = "Announces a prompt list change (notifications/prompts/list_changed) to the caller's session or to listen streams; the list itself stays the same"
    )]
    async fn test_trigger_prompt_change(
        &self,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.hub().publish(Change::Prompts).await;
        if !is_stateless_era(&context)
            && let Err(error) = context.peer.notify_prompt_list_changed().await
        {
            tracing::warn!(%error, "failed to send prompts/list_changed");
        }
        text("Announced a prompt list change")
    }

    #[tool(
        description = "Sends notifications/resources/updated for `uri` (default test://watched-resource) to every subscriber"
    )]
    async fn test_trigger_resource_update(
        &self,
        Parameters(UpdateArgs { uri }): Parameters<UpdateArgs>,
    ) -> CallToolResult {
        let uri = uri.unwrap_or_else(|| crate::resources::WATCHED_URI.to_owned());
        let notified = self
            .hub()
            .publish(Change::ResourceUpdated(uri.clone()))
            .await;
        text(format!(
            "Announced an update of {uri} ({notified} session subscriber(s))"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ClientCapabilities, ElicitationSchema};

    fn round<'a>(
        state: Option<&'a Value>,
        responses: &'a rmcp::model::InputResponses,
        capabilities: &'a ClientCapabilities,
    ) -> Round<'a> {
        Round {
            state,
            responses,
            capabilities,
        }
    }

    fn asked_keys(step: &Step<CallToolResult>) -> Vec<String> {
        match step {
            Step::Ask { requests, .. } => requests.keys().cloned().collect(),
            Step::Done(_) => Vec::new(),
        }
    }

    fn done_text(step: &Step<CallToolResult>) -> Option<String> {
        match step {
            Step::Done(result) => result
                .content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.clone()),
            Step::Ask { .. } => None,
        }
    }

    fn accept(content: Value) -> Value {
        json!({"action": "accept", "content": content})
    }

    #[test]
    fn router_lists_conformance_tools() {
        let tools = FixtureServer::conformance_router().list_all();
        assert_eq!(tools.len(), 18, "{tools:?}");
        let schema = tools
            .iter()
            .find(|t| t.name == "json_schema_2020_12_tool")
            .map(|t| Value::Object((*t.input_schema).clone()));
        let schema = schema.unwrap_or_default();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["$defs"]["address"]["$anchor"], "addressDef");
        assert!(schema["allOf"][0]["anyOf"].is_array());
        assert!(
            schema["if"].is_object() && schema["then"].is_object() && schema["else"].is_object()
        );
        let header = tools.iter().find(|t| t.name == "test_header_param");
        let header = header.map(|t| t.input_schema["properties"]["region"]["x-mcp-header"].clone());
        assert_eq!(header, Some(json!("Region")));
    }

    #[test]
    fn elicitation_schemas_survive_rmcp_types() {
        // What the client receives is rmcp's re-serialization of the schema.
        for (schema, checks) in [
            (
                sep1034_schema(),
                vec![
                    ("/properties/name/default", json!("John Doe")),
                    ("/properties/age/type", json!("integer")),
                    ("/properties/age/default", json!(30)),
                    ("/properties/score/default", json!(95.5)),
                    ("/properties/status/default", json!("active")),
                    ("/properties/status/enum/2", json!("pending")),
                    ("/properties/verified/default", json!(true)),
                ],
            ),
            (
                sep1330_schema(),
                vec![
                    ("/properties/untitledSingle/enum/0", json!("option1")),
                    (
                        "/properties/titledSingle/oneOf/0/title",
                        json!("First Option"),
                    ),
                    ("/properties/legacyEnum/enumNames/2", json!("Option Three")),
                    ("/properties/untitledMulti/items/enum/1", json!("option2")),
                    (
                        "/properties/titledMulti/items/anyOf/1/const",
                        json!("value2"),
                    ),
                ],
            ),
        ] {
            let typed: ElicitationSchema = serde_json::from_value(schema).unwrap();
            let wire = serde_json::to_value(&typed).unwrap();
            for (pointer, expected) in checks {
                assert_eq!(
                    wire.pointer(pointer),
                    Some(&expected),
                    "{pointer} in {wire}"
                );
            }
            assert!(wire.pointer("/properties/titledSingle/enum").is_none());
            assert!(wire.pointer("/properties/titledMulti/items/enum").is_none());
        }
    }

    #[test]
    fn greeting_asks_then_greets() {
        let caps = ClientCapabilities::default();
        let empty = rmcp::model::InputResponses::new();
        let flow = greeting_flow("Name?");
        let step = flow(round(None, &empty, &caps)).unwrap();
        assert_eq!(asked_keys(&step), vec![USER_NAME]);

        let mut responses = empty.clone();
        responses.insert(USER_NAME.into(), accept(json!({"name": "Alice"})));
        responses.insert("extra".into(), json!({"ignored": true}));
        let step = flow(round(None, &responses, &caps)).unwrap();
        assert_eq!(done_text(&step).as_deref(), Some("Hello, Alice!"));

        responses.insert(USER_NAME.into(), json!(12345));
        assert!(flow(round(None, &responses, &caps)).is_err());
    }

    #[test]
    fn confirm_needs_its_state() {
        let caps = ClientCapabilities::default();
        let mut responses = rmcp::model::InputResponses::new();
        responses.insert(CONFIRM.into(), accept(json!({"ok": true})));
        // Without the state of the asking round, it asks (again).
        let step = confirm_flow(round(None, &responses, &caps)).unwrap();
        assert_eq!(asked_keys(&step), vec![CONFIRM]);
        let state = json!({"asked": true});
        let step = confirm_flow(round(Some(&state), &responses, &caps)).unwrap();
        assert_eq!(
            done_text(&step).as_deref(),
            Some("state-ok: confirmed, ok=true")
        );
    }

    #[test]
    fn multi_round_evolves() {
        let caps = ClientCapabilities::default();
        let empty = rmcp::model::InputResponses::new();
        let step = multi_round_flow(round(None, &empty, &caps)).unwrap();
        let Step::Ask {
            state: Some(state1),
            ..
        } = step
        else {
            panic!("asks step 1")
        };
        let mut responses = empty.clone();
        responses.insert("step1".into(), accept(json!({"name": "Alice"})));
        let step = multi_round_flow(round(Some(&state1), &responses, &caps)).unwrap();
        assert_eq!(asked_keys(&step), vec!["step2"]);
        let Step::Ask {
            state: Some(state2),
            ..
        } = step
        else {
            panic!("asks step 2")
        };
        assert_ne!(state1, state2);
        let mut responses = empty.clone();
        responses.insert("step2".into(), accept(json!({"color": "blue"})));
        let step = multi_round_flow(round(Some(&state2), &responses, &caps)).unwrap();
        assert_eq!(
            done_text(&step).as_deref(),
            Some("Alice's favorite color is blue")
        );
    }

    #[test]
    fn multiple_inputs_collects_across_rounds() {
        let caps = ClientCapabilities::default();
        let empty = rmcp::model::InputResponses::new();
        let step = multiple_inputs_flow(round(None, &empty, &caps)).unwrap();
        assert_eq!(asked_keys(&step).len(), 3);
        let mut responses = empty.clone();
        responses.insert(USER_NAME.into(), accept(json!({"name": "Alice"})));
        let step = multiple_inputs_flow(round(None, &responses, &caps)).unwrap();
        assert_eq!(asked_keys(&step), vec![CLIENT_ROOTS, GREETING]);
        let Step::Ask {
            state: Some(state), ..
        } = step
        else {
            panic!("asks the rest")
        };
        let mut responses = empty.clone();
        responses.insert(
            GREETING.into(),
            json!({"role": "assistant", "content": {"type": "text", "text": "Hi!"}, "model": "m"}),
        );
        responses.insert(
            CLIENT_ROOTS.into(),
            json!({"roots": [{"uri": "file:///r"}]}),
        );
        let step = multiple_inputs_flow(round(Some(&state), &responses, &caps)).unwrap();
        assert_eq!(
            done_text(&step).as_deref(),
            Some("Hello, Alice! Greeting: Hi!. Roots: file:///r")
        );
    }

    #[test]
    fn capabilities_limit_requests() {
        let empty = rmcp::model::InputResponses::new();
        let mut caps = ClientCapabilities::default();
        let step = capabilities_flow(round(None, &empty, &caps)).unwrap();
        assert!(done_text(&step).is_some(), "nothing to ask");
        caps.sampling = Some(Default::default());
        let step = capabilities_flow(round(None, &empty, &caps)).unwrap();
        assert_eq!(asked_keys(&step), vec!["sampling"]);
    }
}
