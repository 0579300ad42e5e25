//! The engine's tool policies, permission requests, questions and call audit.

use std::sync::Arc;
use std::time::Duration;

use hangar_core::{Effect, Subject, ToolPolicy};
use hangar_mcp::{CallAudit, Questioner};

use super::Engine;
use crate::approvals::{Approvals, PermissionRequest, Reply};
use crate::events::EventBus;
use crate::policies::{GateError, Policies};
use crate::questions::Questions;
use crate::store::Store;

/// The audit stream: `ToolCallAudited` for every tool call, `SecurityEvent`
/// for denials.
pub const AUDIT_STREAM: &str = "audit";

/// What decides and holds tool calls.
pub(super) struct Gate {
    pub(super) policies: Policies,
    pub(super) approvals: Approvals,
    pub(super) questions: Questions,
    pub(super) questioner: Arc<dyn Questioner>,
}

impl Gate {
    pub(super) fn new(store: Option<Store>, timeout: Duration, events: &EventBus) -> Self {
        let questions = Questions::new(timeout, events.clone());
        Self {
            policies: Policies::new(store),
            approvals: Approvals::new(timeout, events.clone()),
            questioner: Arc::new(questions.clone()),
            questions,
        }
    }

    pub(super) fn audit(&self, events: &EventBus, a: &CallAudit<'_>) {
        events.emit(
            AUDIT_STREAM.to_owned(),
            "ToolCallAudited",
            serde_json::json!({
                "principal": a.principal,
                "provider": a.provider,
                "tool": a.tool,
                "verdict": a.verdict,
                "outcome": a.outcome,
                "duration_ms": a.duration.as_secs_f64() * 1000.0,
                "arguments_digest": a.arguments_digest,
            }),
        );
        if a.verdict == "deny" {
            events.emit(
                AUDIT_STREAM.to_owned(),
                "SecurityEvent",
                serde_json::json!({
                    "kind": "tool_denied",
                    "principal": a.principal,
                    "provider": a.provider,
                    "tool": a.tool,
                }),
            );
        }
    }
}

impl Engine {
    /// Tool policies (spec and API ones).
    pub fn policies(&self) -> &Policies {
        &self.shared.gate.policies
    }

    /// Pending permission requests.
    pub fn approvals(&self) -> &Approvals {
        &self.shared.gate.approvals
    }

    /// Pending questions.
    pub fn questions(&self) -> &Questions {
        &self.shared.gate.questions
    }

    /// Answers a permission request; `always` first stores an allow policy for
    /// its principal on exactly that provider and tool.
    pub async fn reply_permission(
        &self,
        id: &str,
        reply: Reply,
        message: Option<String>,
    ) -> Result<PermissionRequest, GateError> {
        let request = self.approvals().get(id)?;
        if reply == Reply::Always
            && let Some(principal) = &request.principal
        {
            self.policies()
                .put(ToolPolicy::new(
                    request.provider.clone(),
                    request.tool.clone(),
                    Subject::Principal(principal.clone()),
                    Effect::Allow,
                ))
                .await?;
        }
        self.approvals().reply(id, reply, message)
    }

    /// Recomputes the policies that come from provider specs.
    pub(super) fn refresh_spec_policies(&self) {
        let policies: Vec<ToolPolicy> = self
            .providers_snapshot()
            .iter()
            .flat_map(|p| {
                let spec = p.spec();
                spec.policies
                    .iter()
                    .map(|pp| pp.to_policy(p.id()))
                    .collect::<Vec<_>>()
            })
            .collect();
        self.shared.gate.policies.set_from_specs(policies);
    }
}
