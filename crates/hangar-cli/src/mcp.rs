//! A minimal MCP client over Streamable HTTP, speaking the stateless 2026-07-28 protocol:
//! every request is one POST to `/mcp` that carries its protocol version, client info and
//! capabilities in `params._meta`, plus the SEP-2243 `Mcp-Method`/`Mcp-Name` headers.
//! The answer is either `application/json` or an SSE stream holding the response.

use base64::Engine as _;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::client::{Client, api_error};
use crate::error::CliError;
use crate::sse::SseParser;

pub const PROTOCOL_VERSION: &str = "2026-07-28";
/// JSON-RPC error code rmcp uses when the SEP-2243 headers do not match the body.
const HEADER_MISMATCH: i64 = -32020;
/// Guard against a server that keeps handing out cursors.
const MAX_PAGES: usize = 10_000;

/// A JSON-RPC request with the per-request client context 2026-07-28 requires.
pub fn request_body(id: u64, method: &str, mut params: Map<String, Value>) -> Value {
    params.insert(
        "_meta".into(),
        json!({
            "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
            "io.modelcontextprotocol/clientInfo": {
                "name": "hangar-cli",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "io.modelcontextprotocol/clientCapabilities": {},
        }),
    );
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// The SEP-2243 routing headers for a request: `Mcp-Method`, and `Mcp-Name` for the methods
/// that name a target (`tools/call` and `prompts/get` by `name`, resource methods by `uri`).
pub fn standard_headers(method: &str, params: &Map<String, Value>) -> Vec<(String, String)> {
    let mut headers = vec![("Mcp-Method".to_owned(), method.to_owned())];
    let name_key = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        _ => None,
    };
    if let Some(name) = name_key
        .and_then(|key| params.get(key))
        .and_then(Value::as_str)
    {
        headers.push(("Mcp-Name".to_owned(), encode_header_value(name)));
    }
    headers
}

/// `Mcp-Param-*` headers for a tool whose input schema marks properties with `x-mcp-header`.
pub fn param_headers(
    input_schema: &Value,
    arguments: &Map<String, Value>,
) -> Vec<(String, String)> {
    fn walk(
        schema: &Value,
        path: &mut Vec<String>,
        arguments: &Value,
        out: &mut Vec<(String, String)>,
    ) {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, property) in properties {
            path.push(name.clone());
            if let Some(header) = property
                .get("x-mcp-header")
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty())
            {
                let value = path.iter().try_fold(arguments, |v, key| v.get(key));
                let text = match value {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                if let Some(text) = text {
                    out.push((format!("Mcp-Param-{header}"), encode_header_value(&text)));
                }
            }
            walk(property, path, arguments, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(
        input_schema,
        &mut Vec::new(),
        &Value::Object(arguments.clone()),
        &mut out,
    );
    out
}

/// Header values that cannot travel as-is are sent as `=?base64?...?=` (SEP-2243).
pub fn encode_header_value(value: &str) -> String {
    let edge_space = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let unsafe_char = value.chars().any(|c| !(' '..='~').contains(&c));
    let looks_encoded = value.starts_with("=?base64?") && value.ends_with("?=");
    if edge_space || unsafe_char || looks_encoded {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    } else {
        value.to_owned()
    }
}

/// Find the response to request `id` in one JSON-RPC payload (a message or a batch).
/// `None` when the payload holds no response to `id` (e.g. a progress notification).
pub fn match_response(payload: &Value, id: u64) -> Option<Result<Value, CliError>> {
    if let Value::Array(items) = payload {
        return items.iter().find_map(|item| match_response(item, id));
    }
    if payload.get("id").and_then(Value::as_u64) != Some(id) {
        return None;
    }
    if let Some(error) = payload.get("error") {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown JSON-RPC error")
            .to_owned();
        return Some(Err(CliError::JsonRpc { code, message }));
    }
    payload.get("result").map(|result| Ok(result.clone()))
}

pub struct McpClient<'a> {
    client: &'a Client,
    next_id: u64,
}

impl<'a> McpClient<'a> {
    pub fn new(client: &'a Client) -> Self {
        Self { client, next_id: 1 }
    }

    /// Send one request and return its `result`.
    pub async fn request(
        &mut self,
        method: &str,
        params: Map<String, Value>,
        extra_headers: &[(String, String)],
    ) -> Result<Value, CliError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = self
            .client
            .authorized(Method::POST, self.client.endpoint(&["mcp"]))
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .header("MCP-Protocol-Version", PROTOCOL_VERSION);
        for (name, value) in standard_headers(method, &params)
            .iter()
            .chain(extra_headers)
        {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                request = request.header(name, value);
            }
        }
        let body = request_body(id, method, params);
        let mut response = request
            .json(&body)
            .send()
            .await
            .map_err(|e| self.client.transport_error(&e))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();

        if content_type.starts_with("text/event-stream") && status.is_success() {
            let mut parser = SseParser::default();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| self.client.transport_error(&e))?
            {
                for event in parser.push(&chunk) {
                    if let Some(outcome) = parse_sse_data(&event.data, id) {
                        return outcome;
                    }
                }
            }
            if let Some(outcome) = parser
                .finish()
                .and_then(|event| parse_sse_data(&event.data, id))
            {
                return outcome;
            }
            return Err(CliError::Protocol(format!(
                "the {method} event stream ended without a response"
            )));
        }

        let text = response
            .text()
            .await
            .map_err(|e| self.client.transport_error(&e))?;
        let payload = serde_json::from_str::<Value>(&text).ok();
        if let Some(outcome) = payload.as_ref().and_then(|p| match_response(p, id)) {
            return outcome;
        }
        if !status.is_success() {
            // A JSON-RPC error without our id (e.g. a parse error) still says what went wrong.
            if let Some(error) = payload
                .as_ref()
                .and_then(|p| p.get("error"))
                .filter(|e| e.get("code").is_some())
            {
                let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                return Err(CliError::JsonRpc { code, message });
            }
            return Err(api_error(status, &text));
        }
        Err(CliError::Protocol(format!(
            "no JSON-RPC response to {method} ({status}, content-type '{content_type}')"
        )))
    }

    /// Every tool, following `nextCursor`.
    pub async fn list_tools(&mut self) -> Result<Vec<Value>, CliError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = Map::new();
            if let Some(cursor) = &cursor {
                params.insert("cursor".into(), Value::from(cursor.as_str()));
            }
            let result = self.request("tools/list", params, &[]).await?;
            check_result_type(&result)?;
            match result.get("tools") {
                Some(Value::Array(page)) => tools.extend(page.iter().cloned()),
                _ => {
                    return Err(CliError::Protocol(
                        "tools/list result has no tools array".into(),
                    ));
                }
            }
            let next = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            match next {
                Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
                _ => return Ok(tools),
            }
        }
        Ok(tools)
    }

    /// `tools/call`. When the server wants `Mcp-Param-*` headers for this tool, look up its
    /// schema and retry once with them.
    pub async fn call_tool(
        &mut self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<Value, CliError> {
        let mut params = Map::new();
        params.insert("name".into(), Value::from(name));
        params.insert("arguments".into(), Value::Object(arguments.clone()));
        let result = match self.request("tools/call", params.clone(), &[]).await {
            Err(CliError::JsonRpc {
                code: HEADER_MISMATCH,
                message,
            }) if message.contains("Mcp-Param-") => {
                let tools = self.list_tools().await?;
                let schema = tools
                    .iter()
                    .find(|tool| tool.get("name").and_then(Value::as_str) == Some(name))
                    .and_then(|tool| tool.get("inputSchema"))
                    .ok_or(CliError::JsonRpc {
                        code: HEADER_MISMATCH,
                        message,
                    })?;
                let extra = param_headers(schema, &arguments);
                self.request("tools/call", params, &extra).await?
            }
            other => other?,
        };
        check_result_type(&result)?;
        Ok(result)
    }
}

fn parse_sse_data(data: &str, id: u64) -> Option<Result<Value, CliError>> {
    let payload = serde_json::from_str::<Value>(data).ok()?;
    match_response(&payload, id)
}

/// 2026-07-28 results carry `resultType`; anything but `complete` needs a client this is not.
fn check_result_type(result: &Value) -> Result<(), CliError> {
    match result.get("resultType").and_then(Value::as_str) {
        None | Some("complete") => Ok(()),
        Some("input_required") => Err(CliError::Protocol(
            "the tool asked for more input (elicitation), which the hangar CLI cannot answer"
                .into(),
        )),
        Some(other) => Err(CliError::Protocol(format!(
            "unsupported resultType '{other}'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_client_context() {
        let mut params = Map::new();
        params.insert("name".into(), json!("t"));
        let body = request_body(7, "tools/call", params);
        assert_eq!(body["id"], json!(7));
        assert_eq!(body["params"]["name"], json!("t"));
        let meta = &body["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            json!("2026-07-28")
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientCapabilities"],
            json!({})
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientInfo"]["name"],
            json!("hangar-cli")
        );
    }

    #[test]
    fn routing_headers() {
        let mut params = Map::new();
        params.insert("name".into(), json!("time__now"));
        assert_eq!(
            standard_headers("tools/call", &params),
            vec![
                ("Mcp-Method".into(), "tools/call".into()),
                ("Mcp-Name".into(), "time__now".into())
            ]
        );
        assert_eq!(standard_headers("tools/list", &Map::new()).len(), 1);
        assert_eq!(encode_header_value("plain-name"), "plain-name");
        assert_eq!(encode_header_value("é"), "=?base64?w6k=?=");
        assert_eq!(encode_header_value(" x"), "=?base64?IHg=?=");
    }

    #[test]
    fn param_headers_follow_annotations() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {"n": {"type": "integer", "x-mcp-header": "N"}}},
            "other": {"type": "string"}
        }});
        let args = json!({"region": "eu", "opts": {"n": 3}, "other": "x"});
        let Value::Object(args) = args else { panic!() };
        let mut headers = param_headers(&schema, &args);
        headers.sort();
        assert_eq!(
            headers,
            vec![
                ("Mcp-Param-N".into(), "3".into()),
                ("Mcp-Param-Region".into(), "eu".into())
            ]
        );
    }

    #[test]
    fn responses_are_matched_by_id() {
        assert!(
            match_response(
                &json!({"jsonrpc": "2.0", "method": "notifications/progress"}),
                1
            )
            .is_none()
        );
        assert!(match_response(&json!({"jsonrpc": "2.0", "id": 2, "result": {}}), 1).is_none());
        let ok = match_response(
            &json!([{"id": 9}, {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}]),
            1,
        );
        assert_eq!(ok.and_then(Result::ok), Some(json!({"tools": []})));
        let err = match_response(
            &json!({"id": 1, "error": {"code": -32602, "message": "tool not found"}}),
            1,
        );
        let Some(Err(err)) = err else {
            panic!("expected an error")
        };
        assert_eq!(err.to_string(), "tool not found (code -32602)");
    }

    #[test]
    fn result_type_is_checked() {
        assert!(check_result_type(&json!({"content": []})).is_ok());
        assert!(check_result_type(&json!({"resultType": "complete"})).is_ok());
        assert!(check_result_type(&json!({"resultType": "input_required"})).is_err());
    }
}
