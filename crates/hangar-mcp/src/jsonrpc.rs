//! The JSON-RPC envelope Hangar reads off the wire on both sides (a
//! client's POST to `/mcp`, a provider's line on stdio): only what routing
//! needs is parsed; params and results stay raw JSON.

use std::borrow::Cow;

use rmcp::ErrorData;
use rmcp::model::RequestId;
use serde::Deserialize;
use serde_json::value::RawValue;

/// One JSON-RPC message: a request (`id` + `method`), a notification
/// (`method`), or a response (`id` + `result` or `error`).
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// The request or response id.
    #[serde(default)]
    pub id: Option<RequestId>,
    /// The method of a request or notification.
    #[serde(default, borrow)]
    pub method: Option<Cow<'a, str>>,
    /// Its params, unparsed.
    #[serde(default, borrow)]
    pub params: Option<&'a RawValue>,
    /// A response's result, unparsed.
    #[serde(default, borrow)]
    pub result: Option<&'a RawValue>,
    /// A response's error.
    #[serde(default)]
    pub error: Option<ErrorData>,
}

/// A JSON-RPC id as text: a number's digits, a string as it is.
pub fn id_text(id: &rmcp::model::RequestId) -> String {
    match id {
        rmcp::model::NumberOrString::Number(n) => n.to_string(),
        rmcp::model::NumberOrString::String(s) => s.to_string(),
    }
}
