//! The parts of `tools/call` around forwarding: who calls (for policies),
//! waiting for an approval with progress, and answering a provider's input
//! requests (2026-07-28 `InputRequiredResult`) for clients that cannot.

#![allow(deprecated)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hangar_core::{Effect, PolicyKind};
use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ContentBlock,
    DEFAULT_MRTR_MAX_ROUNDS, InputRequest, InputRequiredResult, InputResponses,
    ProgressNotificationParam, ProtocolVersion,
};
use rmcp::service::RequestContext;

use super::{Backend, Incoming, Lease};
use crate::error::UpstreamError;
use crate::gate::{Approval, ElicitationAsk};
use crate::upstream::DownstreamCall;

/// How often a waiting caller hears that its call is still held.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Whether the request uses the stateless 2026-07-28 protocol, where the
/// server cannot send requests to the client.
pub(super) fn is_stateless(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
}

/// The authenticated caller of a request.
pub(super) struct Caller {
    /// Principal id, when the request was authenticated.
    pub id: Option<String>,
    /// Its role ids.
    pub roles: Arc<[String]>,
}

impl Caller {
    pub(super) fn of(incoming: &Incoming) -> Self {
        Self {
            id: incoming.caller.clone(),
            roles: incoming.roles.clone(),
        }
    }

    pub(super) fn verdict<B: Backend>(
        &self,
        backend: &B,
        kind: PolicyKind,
        provider: &str,
        name: &str,
    ) -> Effect {
        backend.verdict(kind, self.id.as_deref(), &self.roles, provider, name)
    }
}

/// Waits for `approval`, telling the client (when it asked for progress) that
/// its call is waiting. `None`: the client cancelled.
pub(super) async fn wait_for_approval(
    approval: impl Future<Output = Approval>,
    downstream: &DownstreamCall,
) -> Option<Approval> {
    tokio::pin!(approval);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            a = &mut approval => return Some(a),
            () = downstream.ct.cancelled() => return None,
            _ = tick.tick() => {
                if let Some(token) = &downstream.progress_token {
                    ticks = ticks.saturating_add(1);
                    let p = ProgressNotificationParam::new(token.clone(), f64::from(ticks))
                        .with_message("waiting for approval");
                    if !downstream.progress.send(p).await {
                        tracing::debug!("could not send approval progress: the client is gone");
                    }
                }
            }
        }
    }
}

/// The tool error a rejected call gets.
pub(super) fn rejected(message: Option<&str>) -> CallToolResponse {
    let text = match message {
        Some(m) if !m.is_empty() => format!("Tool call rejected by a reviewer: {m}"),
        _ => "Tool call rejected by a reviewer".to_owned(),
    };
    CallToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(text)]))
}

/// The tool error a call gets when nobody approved it in time.
pub(super) fn expired(after: Duration) -> CallToolResponse {
    CallToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(format!(
        "Tool call not approved within {} s: the permission request expired",
        after.as_secs()
    ))]))
}

fn tool_error(text: String) -> CallToolResponse {
    CallToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(text)]))
}

/// Whether a 2026-07-28 client declared what every input request needs (it
/// then fulfils them itself and retries through Hangar).
fn client_can_fulfil(input: &InputRequiredResult, caps: Option<&ClientCapabilities>) -> bool {
    let Some(caps) = caps else { return false };
    input.input_requests.iter().flatten().all(|(_, r)| match r {
        InputRequest::Elicitation(_) => caps.elicitation.is_some(),
        InputRequest::CreateMessage(_) => caps.sampling.is_some(),
        InputRequest::ListRoots(_) => caps.roots.is_some(),
        _ => false,
    })
}

/// The capabilities a stateless client lacks for `input` that Hangar can't
/// stand in for (an elicitation an operator may answer as a question is not
/// one of them), as a `ClientCapabilities` object; `None` when there are none.
fn unanswerable(
    input: &InputRequiredResult,
    downstream: &DownstreamCall,
) -> Option<serde_json::Value> {
    let caps = downstream.capabilities.clone().unwrap_or_default();
    let mut missing = serde_json::Map::new();
    for (_, r) in input.input_requests.iter().flatten() {
        let (name, lacking) = match r {
            InputRequest::CreateMessage(_) => ("sampling", caps.sampling.is_none()),
            InputRequest::ListRoots(_) => ("roots", caps.roots.is_none()),
            InputRequest::Elicitation(_) => (
                "elicitation",
                caps.elicitation.is_none() && downstream.questioner.is_none(),
            ),
            _ => continue,
        };
        if lacking {
            missing.insert(name.to_owned(), serde_json::json!({}));
        }
    }
    (!missing.is_empty()).then_some(serde_json::Value::Object(missing))
}

/// Forwards the call; when the provider answers with input requests the client
/// can't fulfil itself, Hangar fulfils them (a 2025-era client by server
/// requests, elicitations otherwise as pending questions) and retries.
pub(super) async fn call_with_input(
    lease: &Lease,
    mut request: CallToolRequestParams,
    downstream: &DownstreamCall,
    stateless: bool,
) -> Result<CallToolResponse, UpstreamError> {
    for _ in 0..DEFAULT_MRTR_MAX_ROUNDS {
        let response = lease
            .upstream
            .call_tool(request.clone(), downstream, lease.call_timeout)
            .await?;
        let CallToolResponse::InputRequired(input) = response else {
            return Ok(response);
        };
        if stateless && client_can_fulfil(&input, downstream.capabilities.as_ref()) {
            return Ok(CallToolResponse::InputRequired(input));
        }
        if stateless && let Some(missing) = unanswerable(&input, downstream) {
            // What a server itself answers when a 2026-07-28 client lacks a
            // capability the call needs.
            return Err(UpstreamError::Rpc {
                provider: lease.target.clone(),
                error: rmcp::ErrorData::new(
                    rmcp::model::ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
                    "Missing required client capability",
                    Some(serde_json::json!({ "requiredCapabilities": missing })),
                ),
            });
        }
        let mut responses = InputResponses::new();
        for (key, r) in input.input_requests.clone().unwrap_or_default() {
            match fulfil(r, lease, downstream, stateless).await {
                Ok(v) => {
                    responses.insert(key, v);
                }
                Err(message) => return Ok(tool_error(message)),
            }
        }
        request.input_responses = Some(responses);
        request.request_state = input.request_state.clone();
    }
    Ok(tool_error(format!(
        "provider '{}' asked for input more than {DEFAULT_MRTR_MAX_ROUNDS} times",
        lease.target
    )))
}

async fn fulfil(
    request: InputRequest,
    lease: &Lease,
    downstream: &DownstreamCall,
    stateless: bool,
) -> Result<serde_json::Value, String> {
    let caps = downstream.capabilities.as_ref();
    let to_json = |v: Result<serde_json::Value, serde_json::Error>| v.map_err(|e| e.to_string());
    match request {
        InputRequest::Elicitation(r) => {
            let peer = downstream.peer.as_ref().filter(|_| !stateless);
            let result = if let Some(peer) =
                peer.filter(|_| caps.is_some_and(|c| c.elicitation.is_some()))
            {
                peer.create_elicitation(r.params)
                    .await
                    .map_err(|e| format!("the client could not answer the elicitation: {e}"))?
            } else if let Some(q) = &downstream.questioner {
                q.ask(ElicitationAsk {
                    provider: lease.target.clone(),
                    tool: downstream.tool.clone(),
                    principal: downstream.principal.clone(),
                    params: r.params,
                })
                .await
                .map_err(|e| e.message.to_string())?
            } else {
                return Err("the provider asked a question nobody can answer".into());
            };
            to_json(serde_json::to_value(result))
        }
        InputRequest::CreateMessage(r)
            if !stateless
                && caps.is_some_and(|c| c.sampling.is_some())
                && downstream.peer.is_some() =>
        {
            let Some(peer) = &downstream.peer else {
                return Err("the calling client takes no requests".into());
            };
            let result = peer
                .create_message(r.params)
                .await
                .map_err(|e| format!("the client could not answer the sampling request: {e}"))?;
            to_json(serde_json::to_value(result))
        }
        InputRequest::ListRoots(_)
            if !stateless
                && caps.is_some_and(|c| c.roots.is_some())
                && downstream.peer.is_some() =>
        {
            let Some(peer) = &downstream.peer else {
                return Err("the calling client takes no requests".into());
            };
            let result = peer
                .list_roots()
                .await
                .map_err(|e| format!("the client could not list its roots: {e}"))?;
            to_json(serde_json::to_value(result))
        }
        _ => Err(format!(
            "provider '{}' needs input (sampling or roots) the calling client does not support",
            lease.target
        )),
    }
}
