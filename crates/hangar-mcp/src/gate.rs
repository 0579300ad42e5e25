//! What the aggregating server asks the runtime about a tool call beyond
//! routing it: the policy verdict, the approval of a held (`ask`) call, the
//! questions a provider asks when the calling client cannot answer them, and
//! the audit record of every call.
//!
//! The types here are plain data; the runtime implements the waiting (see
//! [`Backend`](crate::Backend)).

use std::time::Duration;

use futures::future::BoxFuture;
use hangar_core::PolicyKind;
use hmac::{Hmac, Mac};
use rmcp::ErrorData;
use rmcp::model::{ElicitRequestParams, ElicitResult, JsonObject};
use sha2::Sha256;

/// A tool call (or resource read, or prompt get) held by an `ask` policy
/// until someone answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCall {
    /// The caller, when known.
    pub principal: Option<String>,
    /// The provider (or group) id.
    pub provider: String,
    /// What is asked for: a tool call, a resource read or a prompt get.
    pub kind: PolicyKind,
    /// The provider's own tool name (the resource URI, the prompt name).
    pub tool: String,
    /// [`arguments_digest`] of the call's arguments (never the values).
    pub arguments_digest: String,
}

/// How a held call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Someone approved it (`once` or `always`).
    Approved,
    /// Someone rejected it, maybe with a message for the caller.
    Rejected {
        /// The reviewer's message.
        message: Option<String>,
    },
    /// Nobody answered in time.
    Expired {
        /// How long it waited.
        after: Duration,
    },
}

/// An elicitation a provider sent that the calling client cannot answer: it
/// waits as a pending question for an operator.
#[derive(Debug, Clone)]
pub struct ElicitationAsk {
    /// The provider that asks.
    pub provider: String,
    /// The provider's own tool name of the call it belongs to, when known.
    pub tool: Option<String>,
    /// The caller of that tool, when known.
    pub principal: Option<String>,
    /// The elicitation itself.
    pub params: ElicitRequestParams,
}

/// Turns a provider's elicitation into a pending question and waits for the
/// answer (implemented by the runtime).
pub trait Questioner: Send + Sync + 'static {
    /// Waits for an operator's answer (or a cancel when it times out).
    fn ask(&self, ask: ElicitationAsk) -> BoxFuture<'static, Result<ElicitResult, ErrorData>>;
}

/// What the policies decided about a call, as its audit record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Allowed outright.
    Allow,
    /// Denied: the caller was told the tool, resource or prompt does not exist.
    Deny,
    /// Held (`ask`) and approved.
    Approved,
    /// Held and rejected.
    Rejected,
    /// Held until the approval timed out (or the caller went away).
    Expired,
}

impl AuditVerdict {
    /// The name in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }
}

/// How an audited call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// The provider answered.
    Success,
    /// The tool answered with `isError: true`.
    ToolError,
    /// The call failed (the provider, the transport, or Hangar).
    Error,
    /// A policy denied it.
    Denied,
    /// An approver rejected it.
    Rejected,
    /// No approval came in time.
    Expired,
    /// The caller went away while it was held.
    Cancelled,
}

impl AuditOutcome {
    /// The name in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ToolError => "tool_error",
            Self::Error => "error",
            Self::Denied => "denied",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The audit record of one `tools/call`, `resources/read` or `prompts/get`
/// (never argument values).
#[derive(Debug, Clone, Copy)]
pub struct CallAudit<'a> {
    /// The caller, when known.
    pub principal: Option<&'a str>,
    /// The provider (or group) id.
    pub provider: &'a str,
    /// What was asked for.
    pub kind: PolicyKind,
    /// The provider's own tool name (the resource URI, the prompt name).
    pub tool: &'a str,
    /// What the policies decided.
    pub verdict: AuditVerdict,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// From the request to the answer, waiting for approval included.
    pub duration: Duration,
    /// [`arguments_digest`] of the arguments.
    pub arguments_digest: &'a str,
}

/// HMAC-SHA256 (hex) under `key` of the canonical JSON of a call's
/// arguments: object keys sorted, no whitespace; no arguments count as `{}`.
/// Keyed with a server secret, so a digest in the audit log cannot be
/// brute-forced back to small argument values; equal arguments still give
/// equal digests on the same server.
pub fn arguments_digest(key: &[u8], arguments: Option<&JsonObject>) -> String {
    let mut canonical = String::new();
    match arguments {
        Some(map) => write_object(map, &mut canonical),
        None => canonical.push_str("{}"),
    }
    // HMAC takes keys of every length, so this never fails; an empty digest
    // would only mean "no digest", never a wrong one.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn write_object(map: &JsonObject, out: &mut String) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(key.clone()).to_string());
        out.push(':');
        if let Some(v) = map.get(key) {
            write_value(v, out);
        }
    }
    out.push('}');
}

fn write_value(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => write_object(map, out),
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_key_order_and_whitespace() {
        let a: JsonObject =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"k": 2, "j": 3}], "x": "s"}}"#)
                .unwrap_or_default();
        let b: JsonObject = serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"j":3,"k":2}]},"b":1}"#)
            .unwrap_or_default();
        let key = b"server secret";
        assert_eq!(
            arguments_digest(key, Some(&a)),
            arguments_digest(key, Some(&b))
        );
        assert_eq!(
            arguments_digest(key, None),
            arguments_digest(key, Some(&JsonObject::new()))
        );
        assert_eq!(arguments_digest(key, None).len(), 64);
        assert_ne!(arguments_digest(key, Some(&a)), arguments_digest(key, None));
        // Another server's key gives another digest: no rainbow table across servers.
        assert_ne!(
            arguments_digest(key, Some(&a)),
            arguments_digest(b"another", Some(&a))
        );
    }
}
