//! The OpenAPI document against the real router: it is valid and complete,
//! every documented operation is routed, the list of operations is the
//! checked-in one, and real responses match their documented schemas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::server::{ServerOptions, build};

/// Every operation the server documents (and therefore serves), as
/// `METHOD /path`. Adding or removing a route without updating this list fails
/// `documented_operations_are_the_expected_ones`, which prints the new list.
const EXPECTED_OPERATIONS: &[&str] = &[
    "POST /api/auth/check-permission",
    "POST /api/auth/keys",
    "DELETE /api/auth/keys/{id}",
    "GET /api/auth/keys/{id}",
    "DELETE /api/auth/policies/{provider_id}/{tool_name}",
    "GET /api/auth/policies/{provider_id}/{tool_name}",
    "PUT /api/auth/policies/{provider_id}/{tool_name}",
    "GET /api/auth/principals",
    "GET /api/auth/principals/{principal_id}/roles",
    "POST /api/auth/principals/{principal_id}/roles",
    "DELETE /api/auth/principals/{principal_id}/roles/{role_id}",
    "GET /api/auth/roles",
    "POST /api/auth/roles",
    "GET /api/auth/roles/builtin",
    "DELETE /api/auth/roles/{role_id}",
    "GET /api/auth/roles/{role_id}",
    "PUT /api/auth/roles/{role_id}",
    "GET /api/catalog",
    "POST /api/catalog",
    "DELETE /api/catalog/{entry_id}",
    "GET /api/catalog/{entry_id}",
    "POST /api/catalog/{entry_id}/deploy",
    "GET /api/config",
    "POST /api/config/backup",
    "GET /api/config/diff",
    "POST /api/config/export",
    "POST /api/config/reload",
    "GET /api/events",
    "GET /api/groups",
    "POST /api/groups",
    "DELETE /api/groups/{group_id}",
    "GET /api/groups/{group_id}",
    "PUT /api/groups/{group_id}",
    "POST /api/groups/{group_id}/members",
    "DELETE /api/groups/{group_id}/members/{member_id}",
    "POST /api/groups/{group_id}/rebalance",
    "POST /api/maintenance/compact",
    "GET /api/observability/alerts",
    "GET /api/observability/audit",
    "GET /api/observability/metrics",
    "GET /api/observability/metrics/history",
    "GET /api/observability/security",
    "GET /api/permissions",
    "POST /api/permissions/{id}/reply",
    "GET /api/providers",
    "POST /api/providers",
    "DELETE /api/providers/{provider_id}",
    "GET /api/providers/{provider_id}",
    "PUT /api/providers/{provider_id}",
    "GET /api/providers/{provider_id}/health",
    "GET /api/providers/{provider_id}/logs",
    "POST /api/providers/{provider_id}/abort",
    "POST /api/providers/{provider_id}/refresh",
    "POST /api/providers/{provider_id}/restart",
    "POST /api/providers/{provider_id}/start",
    "POST /api/providers/{provider_id}/stop",
    "GET /api/providers/{provider_id}/tools",
    "GET /api/providers/{provider_id}/tools/history",
    "GET /api/questions",
    "POST /api/questions/{id}/reply",
    "GET /api/scopes",
    "POST /api/scopes",
    "DELETE /api/scopes/{scope_id}",
    "GET /api/sessions",
    "DELETE /api/sessions/{session_id}",
    "GET /api/sessions/{session_id}",
    "POST /api/sessions/{session_id}/abort",
    "GET /api/secrets",
    "DELETE /api/secrets/{name}",
    "PUT /api/secrets/{name}",
    "GET /api/system",
    "GET /api/tokens",
    "POST /api/tokens",
    "DELETE /api/tokens/{token_id}",
    "GET /api/ws/events",
    "GET /api/ws/providers/{provider_id}/logs",
    "GET /api/ws/state",
    "GET /health",
    "DELETE /mcp",
    "GET /mcp",
    "POST /mcp",
    "GET /metrics",
    "GET /openapi.json",
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc_json() -> Value {
    crate::openapi::to_value(&crate::openapi::openapi())
}

/// `(METHOD, path, operation)` for every operation of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

fn statuses(op: &Value) -> BTreeSet<String> {
    op["responses"]
        .as_object()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

fn path_params(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                if k == "$ref" {
                    if let Some(s) = val.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    refs(val, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

#[test]
fn document_is_valid_openapi_3_1() {
    let doc = doc_json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Hangar");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["servers"], json!([{ "url": "/" }]));
    let scheme = &doc["components"]["securitySchemes"][crate::openapi::SECURITY_SCHEME];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error_body["required"],
        json!(["error", "message", "status_code"]),
        "{error_body}"
    );

    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    for r in &all_refs {
        assert!(resolve(&doc, r).is_some(), "unresolved $ref {r}");
    }

    let mut ids = BTreeSet::new();
    let ops = operations(&doc);
    assert!(!ops.is_empty());
    for (method, path, op) in &ops {
        let name = format!("{method} {path}");
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{name}: no operationId");
        assert!(
            ids.insert(id.to_owned()),
            "{name}: duplicate operationId {id}"
        );
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{name}: no tag"
        );
        let codes = statuses(op);
        // A WebSocket handshake succeeds with 101.
        assert!(
            codes.iter().any(|c| c.starts_with('2') || c == "101"),
            "{name}: no success response ({codes:?})"
        );
        for (code, resp) in op["responses"].as_object().unwrap() {
            assert!(
                code.len() == 3 && code.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)),
                "{name}: bad status {code}"
            );
            assert!(
                resp["description"].is_string(),
                "{name} {code}: no description"
            );
            if !code.starts_with('2') && code != "101" {
                let schema = &resp["content"]["application/json"]["schema"];
                assert!(
                    schema.is_object(),
                    "{name} {code}: error response without a JSON schema"
                );
            }
        }
        // Path parameters: exactly the template's.
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| {
                        assert_eq!(p["required"], true, "{name}: optional path param");
                        p["name"].as_str().unwrap().to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(declared, path_params(path), "{name}: path parameters");

        let protected = crate::openapi::is_protected(path);
        if protected {
            // Exactly one scope: the permission the operation needs (or
            // `self`); `authz` enforces it, and refuses operations without.
            let scopes = &op["security"][0][crate::openapi::SECURITY_SCHEME];
            assert_eq!(op["security"].as_array().map(Vec::len), Some(1), "{name}");
            let scope = match scopes.as_array().map(Vec::as_slice) {
                Some([Value::String(s)]) => s.as_str(),
                _ => panic!("{name}: declares no permission: {}", op["security"]),
            };
            assert!(
                scope == crate::authz::SELF_SCOPE
                    || scope
                        .parse::<hangar_core::Permission>()
                        .is_ok_and(|p| p.is_known() && !p.is_wildcard()),
                "{name}: `{scope}` is not a known permission"
            );
            assert!(codes.contains("429"), "{name}: 429 not documented");
            assert!(codes.contains("401"), "{name}: 401 not documented");
        } else {
            assert!(
                op.get("security").is_none() || op["security"] == json!([]),
                "{name}: open route with a security requirement"
            );
        }
        assert!(codes.contains("403"), "{name}: 403 (Origin) not documented");
        // Links name an operation that exists and only its parameters.
        for resp in op["responses"].as_object().unwrap().values() {
            for (link_name, link) in resp["links"].as_object().into_iter().flatten() {
                let target = link["operationId"].as_str().unwrap_or_else(|| {
                    panic!("{name}: link {link_name} without operationId: {link}")
                });
                let (_, target_path, target_op) = ops
                    .iter()
                    .find(|(_, _, o)| o["operationId"] == target)
                    .unwrap_or_else(|| panic!("{name}: link {link_name} to unknown {target}"));
                for param in link["parameters"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|p| p.0)
                {
                    assert!(
                        path_params(target_path).contains(param)
                            || target_op["parameters"]
                                .as_array()
                                .is_some_and(|ps| ps.iter().any(|p| p["name"] == *param)),
                        "{name}: link {link_name} passes unknown parameter {param}"
                    );
                }
            }
        }
        if op.get("requestBody").is_some() {
            assert!(codes.contains("413"), "{name}: 413 not documented");
        }
        if path.starts_with("/api/") {
            // Reading or deleting a named resource can miss (a PUT may create it).
            if !path_params(path).is_empty() && (method == "GET" || method == "DELETE") {
                assert!(codes.contains("404"), "{name}: 404 not documented");
            }
            if op.get("requestBody").is_some() {
                for c in ["400", "422"] {
                    assert!(codes.contains(c), "{name}: {c} not documented");
                }
                if op["requestBody"]["required"] == true {
                    assert!(codes.contains("415"), "{name}: 415 not documented");
                }
            }
        }
    }
    assert!(
        doc["paths"]["/mcp"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            .is_object()
    );
}

#[test]
fn documented_operations_are_the_expected_ones() {
    let doc = doc_json();
    let actual: BTreeSet<String> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    let expected: BTreeSet<String> = EXPECTED_OPERATIONS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if actual != expected {
        let added: Vec<_> = actual.difference(&expected).collect();
        let removed: Vec<_> = expected.difference(&actual).collect();
        let mut sorted: Vec<&String> = actual.iter().collect();
        sorted.sort_by(|a, b| {
            let key = |s: &str| {
                let (m, p) = s.split_once(' ').unwrap_or((s, ""));
                (p.to_owned(), m.to_owned())
            };
            key(a).cmp(&key(b))
        });
        let list: String = sorted.iter().map(|s| format!("    \"{s}\",\n")).collect();
        panic!(
            "the documented operations changed.\n\
             documented but not in EXPECTED_OPERATIONS: {added:#?}\n\
             in EXPECTED_OPERATIONS but not documented (so not served): {removed:#?}\n\
             if intended, replace EXPECTED_OPERATIONS in {} with:\n{list}",
            file!()
        );
    }
}

/// A server built like `hangar-server` does, from a config in a scratch data dir.
struct TestServer {
    app: Router,
    key: String,
    dir: PathBuf,
    engine: hangar_runtime::Engine,
}

impl TestServer {
    async fn start(name: &str, config: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("hangar-openapi-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config_path = dir.join("hangar.yaml");
        std::fs::write(&config_path, config).unwrap();
        let opts = ServerOptions {
            config: Some(config_path),
            data_dir: dir.join("data"),
            ..ServerOptions::default()
        };
        let (state, _) = build(&opts).await.unwrap();
        let key = match std::fs::read_to_string(dir.join("data").join("admin.key")) {
            Ok(k) => k.trim().to_owned(),
            Err(_) => std::env::var("HANGAR_ADMIN_KEY").unwrap().trim().to_owned(),
        };
        let engine = state.engine.clone();
        Self {
            app: crate::router(state),
            key,
            dir,
            engine,
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
            .await
            .unwrap();
        (status, headers, body.to_vec())
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.key));
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let (status, _, bytes) = self.send(req.body(body).unwrap()).await;
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    async fn stop(self) {
        self.engine.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_fallback(status: StatusCode, body: &Value) -> bool {
    (status == StatusCode::NOT_FOUND
        && body["error"] == "NotFound"
        && body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no route for")))
        || (status == StatusCode::METHOD_NOT_ALLOWED && body["error"] == "MethodNotAllowed")
}

/// A small JSON Schema check (the subset utoipa emits): `$ref`, `type`,
/// `enum`, `properties`/`required`, `additionalProperties`, `items`, `allOf`,
/// `oneOf`/`anyOf`, `minimum`/`maximum`. Objects with `properties` are closed:
/// an undocumented key in a real response is drift, and an error.
struct Schemas<'a>(&'a Value);

impl<'a> Schemas<'a> {
    fn deref(&self, mut s: &'a Value) -> &'a Value {
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            s = resolve(self.0, r).unwrap_or_else(|| panic!("unresolved {r}"));
        }
        s
    }

    /// Keys an object may have, or `None` if any key is allowed.
    fn known_keys(&self, s: &'a Value) -> Option<BTreeSet<String>> {
        let s = self.deref(s);
        let mut keys = BTreeSet::new();
        let mut closed = false;
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            keys.extend(props.keys().cloned());
            closed = true;
        }
        if s.get("additionalProperties")
            .is_some_and(|a| a != &json!(false))
        {
            return None;
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                keys.extend(self.known_keys(sub)?);
                closed = true;
            }
        }
        closed.then_some(keys)
    }

    fn check(&self, schema: &'a Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let s = self.deref(schema);
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check_open(sub, v, at, errs);
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(any) = s.get(key).and_then(Value::as_array) {
                let matching = any
                    .iter()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        self.check(sub, v, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                let ok = if key == "oneOf" {
                    matching == 1
                } else {
                    matching >= 1
                };
                if !ok {
                    errs.push(format!("{at}: {matching} of the {key} branches match {v}"));
                }
            }
        }
        self.check_open(s, v, at, errs);
        if let (Some(keys), Value::Object(obj)) = (self.known_keys(s), v) {
            for k in obj.keys() {
                if !keys.contains(k) {
                    errs.push(format!("{at}: undocumented key `{k}`"));
                }
            }
        }
    }

    /// `check` without the closed-object rule (for `allOf` branches).
    fn check_open(&self, schema: &'a Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let s = self.deref(schema);
        if let Some(types) = s.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let ok = types.iter().any(|t| match *t {
                "null" => v.is_null(),
                "boolean" => v.is_boolean(),
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                _ => false,
            });
            if !ok {
                errs.push(format!("{at}: {v} is not of type {types:?}"));
                return;
            }
        }
        if let Some(values) = s.get("enum").and_then(Value::as_array)
            && !values.contains(v)
        {
            errs.push(format!("{at}: {v} not in {values:?}"));
        }
        if let Some(n) = v.as_f64() {
            if let Some(min) = s.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                errs.push(format!("{at}: {n} < minimum {min}"));
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                errs.push(format!("{at}: {n} > maximum {max}"));
            }
        }
        if let Value::Object(obj) = v {
            if let Some(required) = s.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        errs.push(format!("{at}: missing required `{r}`"));
                    }
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            for (k, val) in obj {
                let at = format!("{at}.{k}");
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => self.check(sub, val, &at, errs),
                    None => {
                        if let Some(extra) = s.get("additionalProperties").filter(|a| a.is_object())
                        {
                            self.check(extra, val, &at, errs);
                        }
                    }
                }
            }
        }
        if let (Value::Array(items), Some(item_schema)) = (v, s.get("items")) {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{at}[{i}]"), errs);
            }
        }
    }
}

/// Checks a response against the document: its status is documented, and a
/// JSON body matches the status's schema.
fn conforms(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let code = status.as_u16().to_string();
    let resp = &op["responses"][&code];
    assert!(
        resp.is_object(),
        "{method} {path} answered {status}, which is not documented: {body}"
    );
    if let Some(schema) = resp.pointer("/content/application~1json/schema") {
        let mut errs = Vec::new();
        Schemas(doc).check(schema, body, "body", &mut errs);
        assert!(
            errs.is_empty(),
            "{method} {path} {status}: the body does not match the documented schema:\n{}\nbody: {body}",
            errs.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let server = TestServer::start("routed", "providers: {}\n").await;
    let doc = doc_json();
    for (method, path, op) in operations(&doc) {
        let uri = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "placeholder"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(&uri)
            .header("authorization", format!("Bearer {}", server.key))
            .header("accept", "application/json, text/event-stream");
        if path == "/api/events" {
            // The stream never ends: ask for a bad resume point instead (422).
            req = req.header("last-event-id", "not-a-position");
        }
        if path == "/mcp" && method != "POST" {
            // A 2025-era session request: routed to rmcp, which does not know it.
            req = req
                .header("mcp-session-id", "placeholder")
                .header("mcp-protocol-version", "2025-06-18");
        }
        let body = if op.get("requestBody").is_some() {
            req = req.header("content-type", "application/json");
            if path == "/mcp" {
                Body::from(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            } else {
                Body::from("{}")
            }
        } else {
            Body::empty()
        };
        let (status, headers, bytes) = server.send(req.body(body).unwrap()).await;
        let json_body = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let v: Value = if json_body {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        assert!(
            !is_fallback(status, &v),
            "{method} {path} is documented but not routed ({uri} answered {status} {v})"
        );
        conforms(&doc, &method, &path, status, &v);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_is_served_without_a_key() {
    let server = TestServer::start("served", "providers: {}\n").await;
    let req = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let (status, headers, bytes) = server.send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let served: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(served, doc_json(), "served document differs from openapi()");

    // The routes it documents as protected are.
    let req = Request::get("/api/system").body(Body::empty()).unwrap();
    let (status, _, _) = server.send(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An unsupported method on it is a JSON 405.
    let req = Request::post("/openapi.json").body(Body::empty()).unwrap();
    let (status, _, bytes) = server.send(req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["error"], "MethodNotAllowed");
    server.stop().await;
}

/// Real answers, success and error, against their documented schemas: what
/// keeps the schema mirrors in `schema.rs` honest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_match_their_schemas() {
    let config = "\
providers:
  p1:
    command: [\"/nonexistent/hangar-openapi-test\"]
    description: \"never starts\"
    env: { SECRET: \"x\" }
    startup_timeout_s: 5
groups:
  g1:
    strategy: priority
    members:
      - { provider: p1, priority: 2 }
    circuit_breaker: { failure_threshold: 2, reset_timeout_s: 0.5 }
";
    let server = TestServer::start("schemas", config).await;
    let doc = doc_json();
    let p = "/api/providers/{provider_id}";
    let g = "/api/groups/{group_id}";
    let steps: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        ("GET", "/health", "/health".into(), None, 200),
        ("GET", "/api/system", "/api/system".into(), None, 200),
        ("GET", "/api/providers", "/api/providers".into(), None, 200),
        (
            "GET",
            "/api/providers",
            "/api/providers?state=ready".into(),
            None,
            200,
        ),
        (
            "GET",
            "/api/providers",
            "/api/providers?state=nope".into(),
            None,
            422,
        ),
        (
            "GET",
            "/api/providers",
            "/api/providers?state=a&state=b".into(),
            None,
            422,
        ),
        ("GET", p, "/api/providers/p1".into(), None, 200),
        ("GET", p, "/api/providers/nope".into(), None, 404),
        ("GET", p, "/api/providers/%FF".into(), None, 400),
        (
            "GET",
            "/api/providers/{provider_id}/health",
            "/api/providers/p1/health".into(),
            None,
            200,
        ),
        (
            "GET",
            "/api/providers/{provider_id}/logs",
            "/api/providers/p1/logs?lines=5".into(),
            None,
            200,
        ),
        (
            "GET",
            "/api/providers/{provider_id}/logs",
            "/api/providers/p1/logs?lines=0".into(),
            None,
            422,
        ),
        (
            "GET",
            "/api/providers/{provider_id}/tools/history",
            "/api/providers/p1/tools/history".into(),
            None,
            200,
        ),
        (
            "GET",
            "/api/providers/{provider_id}/tools/history",
            "/api/providers/p1/tools/history?limit=501".into(),
            None,
            422,
        ),
        (
            "POST",
            "/api/providers/{provider_id}/start",
            "/api/providers/p1/start".into(),
            None,
            502,
        ),
        (
            "GET",
            "/api/providers/{provider_id}/tools",
            "/api/providers/p1/tools".into(),
            None,
            502,
        ),
        (
            "POST",
            "/api/providers/{provider_id}/stop",
            "/api/providers/p1/stop".into(),
            None,
            200,
        ),
        (
            "POST",
            "/api/providers/{provider_id}/stop",
            "/api/providers/p1/stop".into(),
            Some(json!({"reason": "test"})),
            200,
        ),
        (
            "POST",
            "/api/providers/{provider_id}/stop",
            "/api/providers/p1/stop".into(),
            Some(json!({"nope": 1})),
            422,
        ),
        (
            "PUT",
            p,
            "/api/providers/p1".into(),
            Some(json!({"idle_ttl_s": 10, "env": {"A": "b"}})),
            200,
        ),
        (
            "PUT",
            p,
            "/api/providers/p1".into(),
            Some(json!({"bogus": 1})),
            422,
        ),
        (
            "POST",
            "/api/providers",
            "/api/providers".into(),
            Some(json!({"provider_id": "p2", "command": ["/bin/true"]})),
            201,
        ),
        (
            "POST",
            "/api/providers",
            "/api/providers".into(),
            Some(json!({"provider_id": "p2", "command": ["/bin/true"]})),
            409,
        ),
        (
            "POST",
            "/api/providers",
            "/api/providers".into(),
            Some(json!({"provider_id": "p3", "bogus": 1})),
            422,
        ),
        (
            "POST",
            "/api/providers",
            "/api/providers".into(),
            Some(json!({"provider_id": "p3", "mode": "docker", "image": "x"})),
            201,
        ),
        (
            "POST",
            "/api/providers/{provider_id}/start",
            "/api/providers/p3/start".into(),
            None,
            // The image is not on the engine (or there is no engine): a
            // provider that cannot be started.
            502,
        ),
        ("GET", "/api/groups", "/api/groups".into(), None, 200),
        ("GET", g, "/api/groups/g1".into(), None, 200),
        (
            "PUT",
            g,
            "/api/groups/g1".into(),
            Some(json!({"circuit_breaker": {"failure_threshold": 3}})),
            200,
        ),
        (
            "PUT",
            g,
            "/api/groups/g1".into(),
            Some(json!({"min_healthy": 0})),
            422,
        ),
        (
            "POST",
            "/api/groups/{group_id}/members",
            "/api/groups/g1/members".into(),
            Some(json!({"member_id": "p2", "weight": 2})),
            201,
        ),
        (
            "POST",
            "/api/groups/{group_id}/members",
            "/api/groups/g1/members".into(),
            Some(json!({"member_id": "p2"})),
            409,
        ),
        (
            "POST",
            "/api/groups/{group_id}/members",
            "/api/groups/g1/members".into(),
            Some(json!({"member_id": "nope"})),
            404,
        ),
        ("DELETE", p, "/api/providers/p2".into(), None, 409),
        (
            "POST",
            "/api/groups/{group_id}/rebalance",
            "/api/groups/g1/rebalance".into(),
            None,
            200,
        ),
        (
            "DELETE",
            "/api/groups/{group_id}/members/{member_id}",
            "/api/groups/g1/members/p2".into(),
            None,
            200,
        ),
        (
            "DELETE",
            "/api/groups/{group_id}/members/{member_id}",
            "/api/groups/g1/members/p2".into(),
            None,
            404,
        ),
        (
            "POST",
            "/api/groups",
            "/api/groups".into(),
            Some(json!({"group_id": "g2", "members": [{"provider": "p2"}]})),
            201,
        ),
        (
            "POST",
            "/api/groups",
            "/api/groups".into(),
            Some(json!({"group_id": "g3", "members": [{"provider": "nope"}]})),
            404,
        ),
        ("GET", g, "/api/groups/g2".into(), None, 200),
        ("DELETE", g, "/api/groups/g2".into(), None, 200),
        ("DELETE", g, "/api/groups/g2".into(), None, 404),
        ("DELETE", p, "/api/providers/p2".into(), None, 200),
        ("GET", "/api/groups", "/api/groups".into(), None, 200),
    ];
    for (method, path, uri, body, want) in steps {
        let (status, v) = server.call(method, &uri, body.clone()).await;
        assert_eq!(status.as_u16(), want, "{method} {uri} {body:?}: {v}");
        conforms(&doc, method, path, status, &v);
    }

    // Raw bodies: not JSON (400), not declared JSON (415), too large (413).
    // Too large: declared (Content-Length, the middleware) or not (streamed,
    // the extractors' limit).
    let raw = |method: &str, uri: &str, ctype: Option<&str>, body: Vec<u8>, length: bool| {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", server.key));
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        if length {
            req = req.header("content-length", body.len());
        }
        req.body(Body::from(body)).unwrap()
    };
    let big = vec![b' '; hangar_core::config::DEFAULT_MAX_BODY_BYTES + 1];
    let json = Some("application/json");
    let cases = [
        (
            "POST",
            "/api/providers",
            json,
            b"{nope".to_vec(),
            false,
            400,
        ),
        (
            "POST",
            "/api/providers",
            Some("text/plain"),
            b"{}".to_vec(),
            false,
            415,
        ),
        ("POST", "/api/providers", None, b"{}".to_vec(), false, 415),
        (
            "POST",
            "/api/providers/{provider_id}/stop",
            None,
            b"{nope".to_vec(),
            false,
            400,
        ),
        ("POST", "/api/providers", json, big.clone(), true, 413),
        ("POST", "/api/providers", json, big.clone(), false, 413),
        (
            "POST",
            "/api/providers/{provider_id}/stop",
            json,
            big.clone(),
            true,
            413,
        ),
        (
            "POST",
            "/api/providers/{provider_id}/stop",
            json,
            big,
            false,
            413,
        ),
    ];
    for (method, path, ctype, body, length, want) in cases {
        let uri = path.replace("{provider_id}", "p1");
        let (status, _, bytes) = server.send(raw(method, &uri, ctype, body, length)).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_eq!(status.as_u16(), want, "{method} {uri}: {v}");
        conforms(&doc, method, path, status, &v);
    }
    server.stop().await;
}
