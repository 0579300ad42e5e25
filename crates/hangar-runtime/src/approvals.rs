//! Permission requests: a tool call an `ask` policy holds until
//! someone replies `once`, `always` or `reject`, or until it expires
//! (`server.approval_timeout_s`).
//!
//! Pending requests live in memory, each with a oneshot its waiting call
//! listens on; a reply removes the request and wakes the call. Replies are
//! remembered (a bounded list of ids) so a second reply is a conflict rather
//! than "not found". Events go to stream `approvals`: `PermissionRequested`,
//! `PermissionAnswered` (reply `once`, `always`, `reject`, `expired` or
//! `withdrawn` when the caller went away).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangar_mcp::{Approval, HeldCall};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::events::EventBus;
use crate::policies::GateError;

/// The event stream of permission requests and questions.
pub const APPROVALS_STREAM: &str = "approvals";
/// How many answered ids are remembered for conflict answers.
const ANSWERED_CAP: usize = 4096;

/// A pending permission request (never the call's argument values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionRequest {
    /// `perm_<hex>`.
    pub id: String,
    /// The caller, when known.
    pub principal: Option<String>,
    /// Provider (or group) id.
    pub provider: String,
    /// What is held: `tool` (a tool call), `resource` (a read) or `prompt`.
    pub kind: hangar_core::PolicyKind,
    /// The provider's own tool name (the resource URI, the prompt name).
    pub tool: String,
    /// HMAC-SHA256 hex (under a server key) of the canonical JSON arguments.
    pub arguments_digest: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; the call fails when nobody answered by then.
    pub expires_at: String,
}

/// A reply to a permission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    /// Allow this call.
    Once,
    /// Allow this call and, from now on, this principal on this tool.
    Always,
    /// Refuse this call.
    Reject,
}

impl Reply {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Always => "always",
            Self::Reject => "reject",
        }
    }
}

struct Pending {
    request: PermissionRequest,
    tx: oneshot::Sender<Approval>,
}

#[derive(Default)]
struct State {
    pending: BTreeMap<String, Pending>,
    answered: AnsweredIds,
}

/// The ids answered lately (at most [`ANSWERED_CAP`]), so a second reply is
/// a conflict rather than "not found". Shared with questions.
#[derive(Default)]
pub(crate) struct AnsweredIds(VecDeque<String>);

impl AnsweredIds {
    /// Records `id` as answered, forgetting the oldest beyond the cap.
    pub(crate) fn remember(&mut self, id: &str) {
        if self.0.len() >= ANSWERED_CAP {
            self.0.pop_front();
        }
        self.0.push_back(id.to_owned());
    }

    /// The error for an `id` that is not pending: answered already, or unknown.
    pub(crate) fn not_pending(&self, what: &'static str, id: &str) -> GateError {
        let id = id.to_owned();
        if self.0.contains(&id) {
            GateError::AlreadyAnswered { what, id }
        } else {
            GateError::NotFound { what, id }
        }
    }
}

struct Inner {
    state: Mutex<State>,
    timeout: Duration,
    events: EventBus,
}

/// The pending permission requests; cheap to clone.
#[derive(Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

/// A fresh id with `prefix` (`perm`, `q`).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

/// RFC 3339 of now + `after`.
pub(crate) fn rfc3339_after(after: Duration) -> String {
    let t = time::OffsetDateTime::now_utc()
        + time::Duration::try_from(after).unwrap_or(time::Duration::ZERO);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Approvals {
    /// Requests wait at most `timeout`; events go to `events`.
    pub fn new(timeout: Duration, events: EventBus) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                timeout,
                events,
            }),
        }
    }

    /// How long a request waits.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Registers `call` as pending now and returns what its caller awaits.
    /// Dropping the future withdraws the request.
    pub fn hold(&self, call: HeldCall) -> impl Future<Output = Approval> + Send + 'static {
        let id = new_id("perm");
        let (tx, rx) = oneshot::channel();
        let request = PermissionRequest {
            id: id.clone(),
            principal: call.principal,
            provider: call.provider,
            kind: call.kind,
            tool: call.tool,
            arguments_digest: call.arguments_digest,
            created_at: crate::now_rfc3339(),
            expires_at: rfc3339_after(self.inner.timeout),
        };
        self.inner.events.emit(
            APPROVALS_STREAM.to_owned(),
            "PermissionRequested",
            serde_json::to_value(&request).unwrap_or_default(),
        );
        crate::lock(&self.inner.state)
            .pending
            .insert(id.clone(), Pending { request, tx });
        let guard = Withdraw {
            inner: self.inner.clone(),
            id,
        };
        let timeout = self.inner.timeout;
        async move {
            let outcome = match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(approval)) => approval,
                Ok(Err(_)) => Approval::Rejected {
                    message: Some("the permission request was dropped".into()),
                },
                Err(_) => {
                    guard.finish("expired");
                    return Approval::Expired { after: timeout };
                }
            };
            drop(guard);
            outcome
        }
    }

    /// The pending requests, oldest first.
    pub fn list(&self) -> Vec<PermissionRequest> {
        let mut list: Vec<PermissionRequest> = crate::lock(&self.inner.state)
            .pending
            .values()
            .map(|p| p.request.clone())
            .collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        list
    }

    /// One pending request.
    pub fn get(&self, id: &str) -> Result<PermissionRequest, GateError> {
        let state = crate::lock(&self.inner.state);
        match state.pending.get(id) {
            Some(p) => Ok(p.request.clone()),
            None => Err(state.answered.not_pending("permission request", id)),
        }
    }

    /// Answers a pending request and wakes its call.
    pub fn reply(
        &self,
        id: &str,
        reply: Reply,
        message: Option<String>,
    ) -> Result<PermissionRequest, GateError> {
        let pending = {
            let mut state = crate::lock(&self.inner.state);
            let Some(p) = state.pending.remove(id) else {
                return Err(state.answered.not_pending("permission request", id));
            };
            state.answered.remember(id);
            p
        };
        self.inner.events.emit(
            APPROVALS_STREAM.to_owned(),
            "PermissionAnswered",
            serde_json::json!({
                "id": id,
                "reply": reply.as_str(),
                "principal": pending.request.principal,
                "provider": pending.request.provider,
                "tool": pending.request.tool,
                "message": message,
            }),
        );
        let approval = match reply {
            Reply::Once | Reply::Always => Approval::Approved,
            Reply::Reject => Approval::Rejected { message },
        };
        // The caller may have gone in the meantime; nothing to wake then.
        let _ = pending.tx.send(approval);
        Ok(pending.request)
    }
}

/// Removes a request its caller no longer waits for.
struct Withdraw {
    inner: Arc<Inner>,
    id: String,
}

impl Withdraw {
    fn finish(&self, reply: &'static str) {
        let removed = crate::lock(&self.inner.state).pending.remove(&self.id);
        if let Some(p) = removed {
            self.inner.events.emit(
                APPROVALS_STREAM.to_owned(),
                "PermissionAnswered",
                serde_json::json!({
                    "id": self.id,
                    "reply": reply,
                    "principal": p.request.principal,
                    "provider": p.request.provider,
                    "tool": p.request.tool,
                    "message": null,
                }),
            );
        }
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        self.finish("withdrawn");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> HeldCall {
        HeldCall {
            principal: Some("alice".into()),
            provider: "fx".into(),
            kind: hangar_core::PolicyKind::Tool,
            tool: "echo".into(),
            arguments_digest: "d".into(),
        }
    }

    #[tokio::test]
    async fn once_reject_conflict_and_expiry() {
        let a = Approvals::new(Duration::from_secs(60), EventBus::in_memory());
        let wait = tokio::spawn(a.hold(call()));
        tokio::task::yield_now().await;
        let list = a.list();
        assert_eq!(list.len(), 1);
        let id = list[0].id.clone();
        a.reply(&id, Reply::Once, None).unwrap();
        assert_eq!(wait.await.unwrap(), Approval::Approved);
        assert!(matches!(
            a.reply(&id, Reply::Reject, None),
            Err(GateError::AlreadyAnswered { .. })
        ));
        assert!(matches!(
            a.reply("perm_nope", Reply::Once, None),
            Err(GateError::NotFound { .. })
        ));

        let wait = a.hold(call());
        let id = a.list()[0].id.clone();
        a.reply(&id, Reply::Reject, Some("no".into())).unwrap();
        assert_eq!(
            wait.await,
            Approval::Rejected {
                message: Some("no".into())
            }
        );

        // A withdrawn request disappears.
        let wait = a.hold(call());
        assert_eq!(a.list().len(), 1);
        drop(wait);
        assert!(a.list().is_empty());
    }

    #[tokio::test]
    async fn expires_after_the_timeout() {
        let a = Approvals::new(Duration::from_millis(50), EventBus::in_memory());
        let wait = a.hold(call());
        let id = a.list()[0].id.clone();
        assert_eq!(
            wait.await,
            Approval::Expired {
                after: Duration::from_millis(50)
            }
        );
        assert!(a.list().is_empty());
        assert!(matches!(
            a.reply(&id, Reply::Once, None),
            Err(GateError::NotFound { .. })
        ));
    }
}
