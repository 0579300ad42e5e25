//! What the aggregating server asks the runtime about a tool call beyond
//! routing it: the policy verdict, the approval of a held (`ask`) call, the
//! questions a provider asks when the calling client cannot answer them, and
//! the audit record of every call.
//!
//! The types here are plain data; the runtime implements the waiting (see
//! [`Backend`](crate::Backend)).

use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::ErrorData;
use rmcp::model::{ElicitRequestParams, ElicitResult, JsonObject};
use sha2::{Digest, Sha256};

/// A tool call held by an `ask` policy until someone answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCall {
    /// The caller, when known.
    pub principal: Option<String>,
    /// The provider (or group) id.
    pub provider: String,
    /// The provider's own tool name.
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

/// The audit record of one `tools/call` (never argument values).
#[derive(Debug, Clone, Copy)]
pub struct CallAudit<'a> {
    /// The caller, when known.
    pub principal: Option<&'a str>,
    /// The provider (or group) id.
    pub provider: &'a str,
    /// The provider's own tool name.
    pub tool: &'a str,
    /// `allow`, `deny`, `approved`, `rejected` or `expired`.
    pub verdict: &'static str,
    /// `success`, `tool_error`, `error`, `denied`, `rejected`, `expired` or `cancelled`.
    pub outcome: &'static str,
    /// From the request to the answer, waiting for approval included.
    pub duration: Duration,
    /// [`arguments_digest`] of the arguments.
    pub arguments_digest: &'a str,
}

/// SHA-256 (hex) of the canonical JSON of a call's arguments: object keys
/// sorted, no whitespace; no arguments hash as `{}`.
pub fn arguments_digest(arguments: Option<&JsonObject>) -> String {
    let mut canonical = String::new();
    match arguments {
        Some(map) => write_object(map, &mut canonical),
        None => canonical.push_str("{}"),
    }
    hex::encode(Sha256::digest(canonical.as_bytes()))
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
        assert_eq!(arguments_digest(Some(&a)), arguments_digest(Some(&b)));
        assert_eq!(
            arguments_digest(None),
            arguments_digest(Some(&JsonObject::new()))
        );
        assert_eq!(arguments_digest(None).len(), 64);
        assert_ne!(arguments_digest(Some(&a)), arguments_digest(None));
    }
}
