//! Tools that need input from the client: `test_sampling` and
//! `test_elicitation`.
//!
//! Two protocol eras are supported:
//! * 2025-xx session era: the server sends a `sampling/createMessage` or
//!   `elicitation/create` request to the client and awaits the reply.
//! * 2026-07-28 stateless era: server-to-client requests are forbidden, so the
//!   tool answers with an `InputRequiredResult` (MRTR, SEP-2322); the client
//!   fulfils the embedded request and retries the call with `inputResponses`
//!   and the echoed `requestState`.

// Sampling is deprecated by SEP-2577 but the conformance surface requires it.
#![allow(deprecated)]

use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, CreateMessageRequest,
    CreateMessageRequestParams, CreateMessageResult, ElicitRequest, ElicitRequestParams,
    ElicitResult, ElicitationAction, ElicitationSchema, InputRequest, InputRequests,
    InputRequiredResult, InputResponses, SamplingMessage,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use crate::mrtr::sampled_text;
use crate::server::is_stateless_era;

const SAMPLING_KEY: &str = "sampling";
const SAMPLING_STATE: &str = "test_sampling:awaiting-sampling";
const ELICITATION_KEY: &str = "elicitation";
const ELICITATION_STATE: &str = "test_elicitation:awaiting-elicitation";

/// Extra input carried by an MRTR retry (2026-07-28 era only).
pub struct Retry {
    pub request_state: Option<String>,
    pub input_responses: Option<InputResponses>,
}

impl Retry {
    /// The client's response for `key`, if this call is the retry of our own
    /// `InputRequiredResult` (identified by its `requestState`).
    fn response(&self, state: &str, key: &str) -> Option<&serde_json::Value> {
        if self.request_state.as_deref() != Some(state) {
            return None;
        }
        self.input_responses.as_ref()?.get(key)
    }
}

fn tool_error(message: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message)]).into()
}

fn tool_text(text: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(text)]).into()
}

pub async fn sampling(
    context: &RequestContext<RoleServer>,
    prompt: String,
    retry: Retry,
) -> Result<CallToolResponse, ErrorData> {
    let supported = context
        .client_capabilities()
        .is_some_and(|capabilities| capabilities.sampling.is_some());
    if !supported {
        return Ok(tool_error(
            "Client does not support sampling (no sampling capability declared)",
        ));
    }

    if is_stateless_era(context) {
        if let Some(response) = retry.response(SAMPLING_STATE, SAMPLING_KEY) {
            return Ok(
                match serde_json::from_value::<CreateMessageResult>(response.clone()) {
                    Ok(result) => tool_text(format!("LLM response: {}", sampled_text(&result))),
                    Err(error) => tool_error(format!("Invalid sampling response: {error}")),
                },
            );
        }
        let mut requests = InputRequests::new();
        requests.insert(
            SAMPLING_KEY.to_owned(),
            InputRequest::CreateMessage(CreateMessageRequest::new(sampling_params(prompt))),
        );
        return Ok(
            InputRequiredResult::new(Some(requests), Some(SAMPLING_STATE.to_owned())).into(),
        );
    }

    Ok(
        match context.peer.create_message(sampling_params(prompt)).await {
            Ok(result) => tool_text(format!("LLM response: {}", sampled_text(&result))),
            Err(error) => tool_error(format!("Sampling request failed: {error}")),
        },
    )
}

pub async fn elicitation(
    context: &RequestContext<RoleServer>,
    message: String,
    retry: Retry,
) -> Result<CallToolResponse, ErrorData> {
    let supported = context
        .client_capabilities()
        .is_some_and(|capabilities| capabilities.elicitation.is_some());
    if !supported {
        return Ok(tool_error(
            "Client does not support elicitation (no elicitation capability declared)",
        ));
    }
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema: elicitation_schema()?,
    };

    if is_stateless_era(context) {
        if let Some(response) = retry.response(ELICITATION_STATE, ELICITATION_KEY) {
            return Ok(
                match serde_json::from_value::<ElicitResult>(response.clone()) {
                    Ok(result) => tool_text(describe_elicitation(&result)),
                    Err(error) => tool_error(format!("Invalid elicitation response: {error}")),
                },
            );
        }
        let mut requests = InputRequests::new();
        requests.insert(
            ELICITATION_KEY.to_owned(),
            InputRequest::Elicitation(ElicitRequest::new(params)),
        );
        return Ok(
            InputRequiredResult::new(Some(requests), Some(ELICITATION_STATE.to_owned())).into(),
        );
    }

    Ok(match context.peer.create_elicitation(params).await {
        Ok(result) => tool_text(describe_elicitation(&result)),
        Err(error) => tool_error(format!("Elicitation request failed: {error}")),
    })
}

fn sampling_params(prompt: String) -> CreateMessageRequestParams {
    CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100)
}

fn elicitation_schema() -> Result<ElicitationSchema, ErrorData> {
    ElicitationSchema::builder()
        .required_string_property("username", |s| s.description("Your username"))
        .required_string_property("email", |s| s.description("Your email address"))
        .build()
        .map_err(|error| {
            ErrorData::internal_error(format!("bad elicitation schema: {error}"), None)
        })
}

fn describe_elicitation(result: &ElicitResult) -> String {
    let action = match result.action {
        ElicitationAction::Accept => "accept",
        ElicitationAction::Decline => "decline",
        ElicitationAction::Cancel => "cancel",
        _ => "unknown",
    };
    let content = result
        .content
        .clone()
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    format!("User response: action={action}, content={content}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_builds() {
        assert!(elicitation_schema().is_ok());
    }

    #[test]
    fn describes_elicitation() {
        let mut result = ElicitResult::new(ElicitationAction::Accept);
        result.content = Some(serde_json::json!({"username": "u"}));
        assert_eq!(
            describe_elicitation(&result),
            r#"User response: action=accept, content={"username":"u"}"#
        );
        let declined = ElicitResult::new(ElicitationAction::Decline);
        assert_eq!(
            describe_elicitation(&declined),
            "User response: action=decline, content={}"
        );
    }

    #[test]
    fn samples_text() {
        let result =
            CreateMessageResult::new(SamplingMessage::assistant_text("hello"), "model".to_owned());
        assert_eq!(sampled_text(&result), "hello");
    }
}
