//! The engine's tool policies, permission requests, questions and call audit.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hangar_core::{Effect, PolicyKind, Subject, ToolPolicy};
use hangar_mcp::{CallAudit, Questioner};

use super::Engine;
use crate::approvals::{Approvals, PermissionRequest, Reply};
use crate::events::EventBus;
use crate::policies::{GateError, Policies};
use crate::questions::Questions;
use crate::store::Store;

/// The audit stream: `ToolCallAudited` for every tool call, `SecurityEvent`
/// for denials.
pub(crate) use crate::events::AUDIT_STREAM;

/// What decides and holds tool calls.
pub(super) struct Gate {
    pub(super) policies: Policies,
    pub(super) approvals: Approvals,
    pub(super) questions: Questions,
    pub(super) questioner: Arc<dyn Questioner>,
    /// Keys the argument digests of audit records and permission requests.
    digest_key: ArcSwap<[u8; 32]>,
    /// Whether a principal may answer its own held call.
    allow_self_approval: std::sync::atomic::AtomicBool,
}

/// Who answers a permission request, and what they may do besides.
#[derive(Debug, Clone, Copy)]
pub struct Replier<'a> {
    /// The principal answering.
    pub principal: &'a str,
    /// Whether it may set policies (`auth:write`), which `always` does.
    pub may_set_policies: bool,
}

impl Gate {
    pub(super) fn new(store: Option<Store>, timeout: Duration, events: &EventBus) -> Self {
        let questions = Questions::new(timeout, events.clone());
        Self {
            policies: Policies::new(store),
            approvals: Approvals::new(timeout, events.clone()),
            questioner: Arc::new(questions.clone()),
            questions,
            // Until the server sets one derived from its master key: a key
            // of this process only.
            digest_key: ArcSwap::from_pointee(rand::random()),
            allow_self_approval: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(super) fn digest_key(&self) -> Arc<[u8; 32]> {
        self.digest_key.load_full()
    }

    pub(super) fn audit(&self, events: &EventBus, a: &CallAudit<'_>) {
        let (event_type, name_field, denied) = match a.kind {
            PolicyKind::Tool => ("ToolCallAudited", "tool", "tool_denied"),
            PolicyKind::Resource => ("ResourceReadAudited", "uri", "resource_denied"),
            PolicyKind::Prompt => ("PromptGetAudited", "prompt", "prompt_denied"),
        };
        let mut record = serde_json::json!({
            "principal": a.principal,
            "provider": a.provider,
            "verdict": a.verdict.as_str(),
            "outcome": a.outcome.as_str(),
            "duration_ms": a.duration.as_secs_f64() * 1000.0,
            "arguments_digest": a.arguments_digest,
        });
        record[name_field] = serde_json::Value::String(a.tool.to_owned());
        events.emit(AUDIT_STREAM.to_owned(), event_type, record);
        if a.verdict == hangar_mcp::AuditVerdict::Deny {
            let mut event = serde_json::json!({
                "kind": denied,
                "principal": a.principal,
                "provider": a.provider,
            });
            event[name_field] = serde_json::Value::String(a.tool.to_owned());
            events.emit(AUDIT_STREAM.to_owned(), "SecurityEvent", event);
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

    /// Keys the argument digests of audit records and permission requests
    /// (derive it from the server's master key so that digests agree across
    /// restarts and replicas).
    pub fn set_digest_key(&self, key: [u8; 32]) {
        self.shared.gate.digest_key.store(Arc::new(key));
    }

    /// Whether a principal may answer its own held calls
    /// (`server.allow_self_approval`; default no).
    pub fn set_allow_self_approval(&self, allow: bool) {
        self.shared
            .gate
            .allow_self_approval
            .store(allow, std::sync::atomic::Ordering::Relaxed);
    }

    /// Answers a permission request as `replier`; `always` first stores an
    /// allow policy for its principal on exactly that provider and tool.
    /// Nobody answers their own held call (unless the server allows it), and
    /// `always` (which sets a policy) needs the right to set policies.
    pub async fn reply_permission(
        &self,
        id: &str,
        reply: Reply,
        message: Option<String>,
        replier: Replier<'_>,
    ) -> Result<PermissionRequest, GateError> {
        let request = self.approvals().get(id)?;
        let own = request.principal.as_deref() == Some(replier.principal);
        if own
            && reply != Reply::Reject
            && !self
                .shared
                .gate
                .allow_self_approval
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(GateError::Forbidden(
                "a principal cannot approve its own held call; another reviewer must \
                 (server.allow_self_approval: true allows it)"
                    .into(),
            ));
        }
        if reply == Reply::Always && !replier.may_set_policies {
            return Err(GateError::Forbidden(
                "`always` stores an allow policy: it needs the permission `auth:write`; \
                 reply `once` instead"
                    .into(),
            ));
        }
        if reply == Reply::Always
            && let Some(principal) = &request.principal
        {
            self.policies()
                .put(
                    ToolPolicy::new(
                        request.provider.clone(),
                        request.tool.clone(),
                        Subject::Principal(principal.clone()),
                        Effect::Allow,
                    )
                    .with_kind(request.kind),
                )
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
