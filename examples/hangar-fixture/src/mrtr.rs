//! A small engine for tools and prompts that need input from the client, in
//! both protocol eras (SEP-2322 multi round-trip requests).
//!
//! A *flow* is a pure step function: given its own state from the previous
//! round (if any), the client's responses to the previous round's requests
//! and the client's capabilities, it either asks for more input or finishes.
//! [`drive`] runs a flow:
//! * 2026-07-28 stateless era: each round is one request. Asking answers with
//!   an `InputRequiredResult` whose `requestState` is the flow state sealed by
//!   [`StateCodec`]; the client's retry brings `inputResponses` and the state
//!   back, which is verified before the flow sees it.
//! * 2025 session era: the server sends each input request to the client
//!   itself (`sampling/createMessage`, `elicitation/create`, `roots/list`) and
//!   feeds the answers to the next round, all within one call.
//!
//! Either way, a flow never asks for input the client has not declared a
//! capability for: [`drive`] answers that with `-32021`
//! (MissingRequiredClientCapability).

// Sampling and roots are deprecated by SEP-2577 but the conformance surface
// requires them.
#![allow(deprecated)]

use rmcp::model::{
    ClientCapabilities, CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
    InputRequest, InputRequests, InputRequiredResult, InputResponses, ListRootsResult,
    SamplingContent, SamplingMessage, SamplingMessageContentBlock,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::Value;

use crate::server::is_stateless_era;
use crate::state::StateCodec;

/// Rounds a session-era call may take before the fixture gives up.
const MAX_ROUNDS: usize = 10;

/// What one round of a flow decided.
pub enum Step<T> {
    /// Ask the client for `requests`; `state` is handed to the next round.
    Ask {
        /// Keyed input requests.
        requests: InputRequests,
        /// The flow's state for the next round (sealed into `requestState`
        /// in the stateless era); `None` for single-round flows.
        state: Option<Value>,
    },
    /// The flow is complete.
    Done(T),
}

/// What one round of a flow sees.
pub struct Round<'a> {
    /// The flow's state from the previous round, verified.
    pub state: Option<&'a Value>,
    /// The client's responses to the previous round's requests.
    pub responses: &'a InputResponses,
    /// What the client declared it supports.
    pub capabilities: &'a ClientCapabilities,
}

/// The outcome of [`drive`].
pub enum Outcome<T> {
    /// The flow completed.
    Done(T),
    /// Stateless era: the client must fulfil these requests and retry.
    InputRequired(InputRequiredResult),
}

/// What the client echoed back on an MRTR retry (stateless era only).
#[derive(Default)]
pub struct Retry {
    /// The echoed `requestState`, untrusted.
    pub request_state: Option<String>,
    /// The client's `inputResponses`.
    pub input_responses: Option<InputResponses>,
}

/// Run `flow` (named `name`, which binds its sealed state) for one request.
pub async fn drive<T>(
    context: &RequestContext<RoleServer>,
    codec: &StateCodec,
    name: &str,
    retry: Retry,
    flow: impl Fn(Round<'_>) -> Result<Step<T>, ErrorData>,
) -> Result<Outcome<T>, ErrorData> {
    let capabilities = context.client_capabilities().unwrap_or_default();

    if is_stateless_era(context) {
        let state = match retry.request_state.as_deref() {
            Some(sealed) => Some(codec.open(name, sealed).map_err(|error| {
                ErrorData::invalid_params(
                    error.to_string(),
                    Some(serde_json::json!({"requestState": sealed})),
                )
            })?),
            None => None,
        };
        let responses = retry.input_responses.unwrap_or_default();
        let round = Round {
            state: state.as_ref(),
            responses: &responses,
            capabilities: &capabilities,
        };
        return Ok(match flow(round)? {
            Step::Done(done) => Outcome::Done(done),
            Step::Ask { requests, state } => {
                require_capabilities(&requests, &capabilities)?;
                let sealed = state.map(|state| codec.seal(name, &state));
                Outcome::InputRequired(InputRequiredResult::new(Some(requests), sealed))
            }
        });
    }

    let mut state = None;
    let mut responses = InputResponses::new();
    for _ in 0..MAX_ROUNDS {
        let round = Round {
            state: state.as_ref(),
            responses: &responses,
            capabilities: &capabilities,
        };
        let (requests, next) = match flow(round)? {
            Step::Done(done) => return Ok(Outcome::Done(done)),
            Step::Ask { requests, state } => (requests, state),
        };
        require_capabilities(&requests, &capabilities)?;
        responses = InputResponses::new();
        for (key, request) in requests {
            responses.insert(key, ask_client(context, request).await?);
        }
        state = next;
    }
    Err(ErrorData::internal_error(
        format!("{name} did not complete within {MAX_ROUNDS} rounds"),
        None,
    ))
}

/// `-32021` unless the client declared every capability `requests` need.
fn require_capabilities(
    requests: &InputRequests,
    capabilities: &ClientCapabilities,
) -> Result<(), ErrorData> {
    let mut missing = ClientCapabilities::default();
    let mut any = false;
    for request in requests.values() {
        match request {
            InputRequest::CreateMessage(_) if capabilities.sampling.is_none() => {
                missing.sampling = Some(Default::default());
                any = true;
            }
            InputRequest::Elicitation(_) if capabilities.elicitation.is_none() => {
                missing.elicitation = Some(Default::default());
                any = true;
            }
            InputRequest::ListRoots(_) if capabilities.roots.is_none() => {
                missing.roots = Some(Default::default());
                any = true;
            }
            _ => {}
        }
    }
    if any {
        return Err(ErrorData::missing_required_client_capability(missing));
    }
    Ok(())
}

/// Session era: send `request` to the client and return its answer as JSON.
async fn ask_client(
    context: &RequestContext<RoleServer>,
    request: InputRequest,
) -> Result<Value, ErrorData> {
    let failed = |error: rmcp::ServiceError| {
        ErrorData::internal_error(format!("client request failed: {error}"), None)
    };
    let encode = |result: Result<Value, serde_json::Error>| {
        result.map_err(|error| ErrorData::internal_error(error.to_string(), None))
    };
    match request {
        InputRequest::CreateMessage(request) => {
            let result = context
                .peer
                .create_message(request.params)
                .await
                .map_err(failed)?;
            encode(serde_json::to_value(result))
        }
        InputRequest::Elicitation(request) => {
            let result = context
                .peer
                .create_elicitation(request.params)
                .await
                .map_err(failed)?;
            encode(serde_json::to_value(result))
        }
        InputRequest::ListRoots(_) => {
            let result = context.peer.list_roots().await.map_err(failed)?;
            encode(serde_json::to_value(result))
        }
        _ => Err(ErrorData::internal_error("unsupported input request", None)),
    }
}

/// One `requests` map with a single entry.
pub fn one(key: &str, request: InputRequest) -> InputRequests {
    let mut requests = InputRequests::new();
    requests.insert(key.to_owned(), request);
    requests
}

/// An `elicitation/create` form request; `schema` is the `requestedSchema`.
pub fn elicit(message: &str, schema: Value) -> Result<InputRequest, ErrorData> {
    let requested_schema: ElicitationSchema = serde_json::from_value(schema).map_err(|error| {
        ErrorData::internal_error(format!("bad elicitation schema: {error}"), None)
    })?;
    Ok(InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: message.to_owned(),
            requested_schema,
        },
    )))
}

/// An elicitation schema of required properties, each `(name, type)`.
pub fn required_schema(properties: &[(&str, &str)]) -> Value {
    let props: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(name, ty)| ((*name).to_owned(), serde_json::json!({ "type": ty })))
        .collect();
    let required: Vec<&str> = properties.iter().map(|(name, _)| *name).collect();
    serde_json::json!({ "type": "object", "properties": props, "required": required })
}

/// A `sampling/createMessage` request for one user message.
pub fn sample(prompt: &str, max_tokens: u32) -> InputRequest {
    InputRequest::CreateMessage(CreateMessageRequest::new(CreateMessageRequestParams::new(
        vec![SamplingMessage::user_text(prompt)],
        max_tokens,
    )))
}

/// A `roots/list` request.
pub fn list_roots() -> InputRequest {
    InputRequest::ListRoots(Default::default())
}

/// The client's response for `key`, decoded as `R`; `Ok(None)` when absent,
/// `-32602` when present but not an `R`.
pub fn response<R: serde::de::DeserializeOwned>(
    responses: &InputResponses,
    key: &str,
) -> Result<Option<R>, ErrorData> {
    let Some(value) = responses.get(key) else {
        return Ok(None);
    };
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|error| {
            ErrorData::invalid_params(
                format!("inputResponses.{key} is not a valid response: {error}"),
                Some(serde_json::json!({ "key": key })),
            )
        })
}

/// An elicitation answer: accepted content, or the action taken instead.
pub enum Elicited {
    /// The user accepted; the submitted content (an object, maybe empty).
    Accepted(serde_json::Map<String, Value>),
    /// `decline` or `cancel`.
    Refused(&'static str),
}

/// Decode the elicitation response for `key`.
pub fn elicited(responses: &InputResponses, key: &str) -> Result<Option<Elicited>, ErrorData> {
    Ok(
        response::<ElicitResult>(responses, key)?.map(|result| match result.action {
            ElicitationAction::Accept => Elicited::Accepted(match result.content {
                Some(Value::Object(content)) => content,
                _ => serde_json::Map::new(),
            }),
            ElicitationAction::Decline => Elicited::Refused("decline"),
            _ => Elicited::Refused("cancel"),
        }),
    )
}

/// A required string field of accepted elicitation content, or `-32602`.
pub fn field<'a>(
    content: &'a serde_json::Map<String, Value>,
    key: &str,
    name: &str,
) -> Result<&'a Value, ErrorData> {
    content.get(name).ok_or_else(|| {
        ErrorData::invalid_params(
            format!("inputResponses.{key}: accepted content lacks {name:?}"),
            None,
        )
    })
}

/// Decode the sampling response for `key` to its text.
pub fn sampled(responses: &InputResponses, key: &str) -> Result<Option<String>, ErrorData> {
    Ok(response::<CreateMessageResult>(responses, key)?.map(|result| sampled_text(&result)))
}

/// Concatenate the text blocks of a sampling reply.
pub fn sampled_text(result: &CreateMessageResult) -> String {
    let blocks: Vec<&SamplingMessageContentBlock> = match &result.message.content {
        SamplingContent::Single(block) => vec![block],
        SamplingContent::Multiple(blocks) => blocks.iter().collect(),
    };
    blocks
        .into_iter()
        .filter_map(|block| match block {
            SamplingMessageContentBlock::Text(text) => Some(text.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("")
}

/// Decode the `roots/list` response for `key` to its root URIs.
pub fn roots(responses: &InputResponses, key: &str) -> Result<Option<Vec<String>>, ErrorData> {
    Ok(response::<ListRootsResult>(responses, key)?
        .map(|result| result.roots.into_iter().map(|root| root.uri).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_requests() {
        let request = elicit("Name?", required_schema(&[("name", "string")]));
        let json = request.ok().and_then(|r| serde_json::to_value(r).ok());
        let json = json.unwrap_or_default();
        assert_eq!(json["method"], "elicitation/create");
        assert_eq!(
            json["params"]["requestedSchema"]["required"],
            serde_json::json!(["name"])
        );
        let json = serde_json::to_value(sample("Hi", 7)).unwrap_or_default();
        assert_eq!(json["method"], "sampling/createMessage");
        assert_eq!(json["params"]["maxTokens"], 7);
        let json = serde_json::to_value(list_roots()).unwrap_or_default();
        assert_eq!(json["method"], "roots/list");
    }

    #[test]
    fn decodes_responses() {
        let mut responses = InputResponses::new();
        responses.insert(
            "e".into(),
            serde_json::json!({"action": "accept", "content": {"name": "Alice"}}),
        );
        responses.insert(
            "s".into(),
            serde_json::json!({"role": "assistant", "content": {"type": "text", "text": "Paris"}, "model": "m"}),
        );
        responses.insert(
            "r".into(),
            serde_json::json!({"roots": [{"uri": "file:///a"}]}),
        );
        responses.insert("bad".into(), serde_json::json!(12345));
        assert!(matches!(
            elicited(&responses, "e"),
            Ok(Some(Elicited::Accepted(content))) if content["name"] == "Alice"
        ));
        assert_eq!(
            sampled(&responses, "s").ok().flatten().as_deref(),
            Some("Paris")
        );
        assert_eq!(
            roots(&responses, "r").ok().flatten(),
            Some(vec!["file:///a".to_owned()])
        );
        assert!(elicited(&responses, "missing").is_ok_and(|r| r.is_none()));
        assert!(elicited(&responses, "bad").is_err());
    }

    #[test]
    fn missing_capabilities_are_named() {
        let requests = one("s", sample("Hi", 1));
        let error = require_capabilities(&requests, &ClientCapabilities::default()).err();
        let error = error.map(|e| (e.code.0, e.data)).unwrap_or_default();
        assert_eq!(error.0, -32021);
        assert_eq!(
            error.1,
            Some(serde_json::json!({"requiredCapabilities": {"sampling": {}}}))
        );
        let mut capabilities = ClientCapabilities::default();
        capabilities.sampling = Some(Default::default());
        assert!(require_capabilities(&requests, &capabilities).is_ok());
    }
}
