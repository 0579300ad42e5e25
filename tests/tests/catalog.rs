//! The catalog of deployable MCP servers over HTTP against the real server:
//! every route and its errors, filters, deploying an entry and calling the
//! deployed provider's tool through `/mcp`, and durability across `kill -9`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use hangar_e2e::{ADMIN_KEY, Server, bin, fixture_config};
use reqwest::Method;
use serde_json::{Value, json};

const BUILTINS: [&str; 7] = [
    "everything",
    "fetch",
    "filesystem",
    "git",
    "memory",
    "sequential-thinking",
    "time",
];

fn assert_error_shape(v: &Value, status: u16) {
    assert_eq!(v["status_code"], status, "{v}");
    assert!(v["error"].is_string(), "{v}");
    assert!(v["message"].is_string(), "{v}");
}

/// Sends `method /api{path}` with an optional JSON body: (status, body).
async fn send(server: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = server.api(method, path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(list: &Value) -> Vec<String> {
    let entries = list["entries"].as_array().expect("entries array");
    assert_eq!(list["total"], entries.len(), "{list}");
    entries
        .iter()
        .map(|e| e["entry_id"].as_str().unwrap().to_owned())
        .collect()
}

fn fixture_entry(name: &str) -> Value {
    json!({
        "name": name,
        "description": "The Hangar Test Fixture",
        "command": [bin("hangar-fixture").display().to_string()],
        "tags": ["test", "rust"],
        "env": {"GREETING": "from-entry", "OTHER": "kept"},
        "inputs": [{"name": "GREETING", "description": "what the env tool says"}],
    })
}

/// Calls `tool` with `arguments` through `/mcp` (stateless 2026-07-28) and
/// returns the JSON-RPC result.
async fn call_tool(server: &Server, tool: &str, arguments: Value) -> Value {
    let response = server.call_tool_as(ADMIN_KEY, tool, arguments).await;
    assert!(response["error"].is_null(), "{response}");
    response["result"].clone()
}

fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_entries_are_listed_and_shown() {
    let server = Server::start(&fixture_config("fx", "")).await;

    let (status, list) = server.get_json("/catalog").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&list), BUILTINS);
    assert_eq!(list["total"], 7);
    for e in list["entries"].as_array().unwrap() {
        assert_eq!(e["builtin"], true, "{e}");
        assert_eq!(e["mode"], "subprocess", "{e}");
        let tags = e["tags"].as_array().unwrap();
        assert!(tags.contains(&json!("official")), "{e}");
    }

    let (status, time) = server.get_json("/catalog/time").await;
    assert_eq!(status, 200);
    assert_eq!(
        time,
        json!({
            "entry_id": "time",
            "name": "time",
            "description": time["description"],
            "mode": "subprocess",
            "command": ["uvx", "mcp-server-time"],
            "image": null,
            "endpoint": null,
            "tags": ["time", "official", "python"],
            "env": {},
            "inputs": [],
            "builtin": true,
        })
    );
    assert!(time["description"].as_str().unwrap().len() > 10);
    let (_, fs) = server.get_json("/catalog/filesystem").await;
    assert_eq!(
        fs["command"],
        json!([
            "npx",
            "-y",
            "@modelcontextprotocol/server-filesystem",
            "/tmp"
        ])
    );

    let (status, v) = server.get_json("/catalog/nope").await;
    assert_eq!(status, 404);
    assert_error_shape(&v, 404);
    assert!(v["message"].as_str().unwrap().contains("nope"), "{v}");

    // Built-in entries cannot be deleted.
    let (status, v) = send(&server, Method::DELETE, "/catalog/time", None).await;
    assert_eq!(status, 409);
    assert_error_shape(&v, 409);
    assert!(v["message"].as_str().unwrap().contains("built in"), "{v}");
    let (status, _) = server.get_json("/catalog/time").await;
    assert_eq!(status, 200);
    let (status, v) = send(&server, Method::DELETE, "/catalog/nope", None).await;
    assert_eq!(status, 404);
    assert_error_shape(&v, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_entries_are_validated_filtered_and_deleted() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let fixture = bin("hangar-fixture").display().to_string();

    let (status, created) = send(
        &server,
        Method::POST,
        "/catalog",
        Some(fixture_entry("fixture")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created,
        json!({
            "entry_id": "fixture",
            "name": "fixture",
            "description": "The Hangar Test Fixture",
            "mode": "subprocess",
            "command": [fixture],
            "image": null,
            "endpoint": null,
            "tags": ["test", "rust"],
            // Values are never shown to catalog readers.
            "env": {"GREETING": "<redacted>", "OTHER": "<redacted>"},
            "inputs": [{"name": "GREETING", "description": "what the env tool says", "required": false}],
            "builtin": false,
        })
    );
    let (status, got) = server.get_json("/catalog/fixture").await;
    assert_eq!(status, 200);
    assert_eq!(got, created);

    // A remote entry (mode given), for the filters below.
    let (status, remote) = send(
        &server,
        Method::POST,
        "/catalog",
        Some(json!({
            "name": "weather_remote",
            "description": "Forecasts over HTTP",
            "mode": "remote",
            "endpoint": "https://weather.example/mcp",
            "tags": ["web"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{remote}");
    assert_eq!(remote["mode"], "remote");
    assert_eq!(remote["command"], Value::Null);
    assert_eq!(remote["endpoint"], "https://weather.example/mcp");

    // Conflicts: same name, or a built-in's name.
    for name in ["fixture", "time"] {
        let (status, v) = send(&server, Method::POST, "/catalog", Some(fixture_entry(name))).await;
        assert_eq!(status, 409, "{name}: {v}");
        assert_error_shape(&v, 409);
    }

    // Validation: 422 naming the field.
    let cmd = json!([fixture]);
    for (body, field) in [
        (json!({"description": "d", "command": cmd}), "name"),
        (
            json!({"name": "", "description": "d", "command": cmd}),
            "name",
        ),
        (json!({"name": "x"}), "description"),
        (
            json!({"name": "x", "description": "", "command": cmd}),
            "description",
        ),
        (
            json!({"name": "bad name!", "description": "d", "command": cmd}),
            "name",
        ),
        (
            json!({"name": "x".repeat(65), "description": "d", "command": cmd}),
            "name",
        ),
        (json!({"name": "x", "description": "d"}), "command"),
        (
            json!({"name": "x", "description": "d", "command": []}),
            "command",
        ),
        (
            json!({"name": "x", "description": "d", "mode": "sideways", "command": cmd}),
            "mode",
        ),
        (
            json!({"name": "x", "description": "d", "mode": "remote"}),
            "endpoint",
        ),
        (
            json!({"name": "x", "description": "d", "mode": "remote", "endpoint": "ftp://h"}),
            "endpoint",
        ),
        (
            json!({"name": "x", "description": "d", "mode": "docker"}),
            "image",
        ),
        (
            json!({"name": "x", "description": "d", "command": cmd, "env": {"A=B": "v"}}),
            "env.A=B",
        ),
        (
            json!({"name": "x", "description": "d", "command": cmd, "tags": ["ok", ""]}),
            "tags[1]",
        ),
        (
            json!({"name": "x", "description": "d", "command": cmd, "bogus": 1}),
            "bogus",
        ),
    ] {
        let (status, v) = send(&server, Method::POST, "/catalog", Some(body.clone())).await;
        assert_eq!(status, 422, "{body} -> {v}");
        assert_error_shape(&v, 422);
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body} -> {v}"
        );
    }
    let r = server
        .api(Method::POST, "/catalog")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_error_shape(&r.json().await.unwrap(), 400);
    let (status, _) = server.get_json("/catalog/x").await;
    assert_eq!(status, 404, "nothing invalid was added");

    // Filters.
    let all: Vec<String> = {
        let mut v: Vec<String> = BUILTINS.iter().map(|s| (*s).to_owned()).collect();
        v.extend(["fixture".to_owned(), "weather_remote".to_owned()]);
        v.sort();
        v
    };
    for query in ["", "?search=", "?tags=", "?search=&tags="] {
        let (status, list) = server.get_json(&format!("/catalog{query}")).await;
        assert_eq!(status, 200);
        assert_eq!(ids(&list), all, "{query}");
    }
    for (query, expected) in [
        ("?search=FIXTURE", vec!["fixture"]),
        ("?search=test%20fix", vec!["fixture"]),
        ("?search=time%20zone", vec!["time"]),
        ("?search=forecasts", vec!["weather_remote"]),
        ("?search=no-such-thing", vec![]),
        ("?tags=test", vec!["fixture"]),
        ("?tags=official,python", vec!["fetch", "git", "time"]),
        ("?tags=python,web", vec!["fetch"]),
        ("?tags=web", vec!["fetch", "weather_remote"]),
        ("?tags=official,test", vec![]),
        ("?search=fetch&tags=web", vec!["fetch"]),
        ("?search=fetch&tags=node", vec![]),
    ] {
        let (status, list) = server.get_json(&format!("/catalog{query}")).await;
        assert_eq!(status, 200);
        assert_eq!(ids(&list), expected, "{query}");
    }

    // Delete.
    let (status, v) = send(&server, Method::DELETE, "/catalog/weather_remote", None).await;
    assert_eq!(status, 200);
    assert_eq!(v, json!({"entry_id": "weather_remote", "deleted": true}));
    let (status, _) = server.get_json("/catalog/weather_remote").await;
    assert_eq!(status, 404);
    let (status, v) = send(&server, Method::DELETE, "/catalog/weather_remote", None).await;
    assert_eq!(status, 404);
    assert_error_shape(&v, 404);
    let (_, list) = server.get_json("/catalog").await;
    assert_eq!(list["total"], 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_entries_are_providers_whose_tools_work() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let (status, _) = send(
        &server,
        Method::POST,
        "/catalog",
        Some(fixture_entry("fixture")),
    )
    .await;
    assert_eq!(status, 201);

    // No body: provider id = entry id, the entry's env.
    let r = server
        .api(Method::POST, "/catalog/fixture/deploy")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"provider_id": "fixture", "created": true, "entry_id": "fixture"})
    );
    let (status, p) = server.get_json("/providers/fixture").await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["description"], "The Hangar Test Fixture");

    // Provider id and env given: env merged over the entry's.
    let (status, v) = send(
        &server,
        Method::POST,
        "/catalog/fixture/deploy",
        Some(json!({"provider_id": "fixture2", "env": {"GREETING": "override"}})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        v,
        json!({"provider_id": "fixture2", "created": true, "entry_id": "fixture"})
    );
    // An empty JSON body means the defaults too (here: the id is taken).
    let (status, v) = send(
        &server,
        Method::POST,
        "/catalog/fixture/deploy",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert_error_shape(&v, 409);

    // The deployed providers' tools, through /mcp.
    let r = call_tool(&server, "fixture__env", json!({"name": "GREETING"})).await;
    assert_eq!(text_of(&r), "from-entry", "{r}");
    let r = call_tool(&server, "fixture2__env", json!({"name": "GREETING"})).await;
    assert_eq!(text_of(&r), "override", "{r}");
    let r = call_tool(&server, "fixture2__env", json!({"name": "OTHER"})).await;
    assert_eq!(text_of(&r), "kept", "{r}");
    let r = call_tool(&server, "fixture__add", json!({"a": 2, "b": 3})).await;
    assert_eq!(text_of(&r), "5", "{r}");

    // Errors.
    for (path, body, status) in [
        ("/catalog/nope/deploy", json!({}), 404),
        ("/catalog/fixture/deploy", json!({"provider_id": "fx"}), 409),
        (
            "/catalog/fixture/deploy",
            json!({"provider_id": "fixture"}),
            409,
        ),
        (
            "/catalog/fixture/deploy",
            json!({"provider_id": "bad id!"}),
            422,
        ),
        ("/catalog/fixture/deploy", json!({"provider_id": ""}), 422),
        (
            "/catalog/fixture/deploy",
            json!({"provider_id": "a__b"}),
            422,
        ),
        (
            "/catalog/fixture/deploy",
            json!({"provider_id": "ok", "env": {"A=B": "v"}}),
            422,
        ),
        (
            "/catalog/fixture/deploy",
            json!({"provider_id": "ok", "bogus": 1}),
            422,
        ),
    ] {
        let (got, v) = send(&server, Method::POST, path, Some(body.clone())).await;
        assert_eq!(got, status, "{path} {body} -> {v}");
        assert_error_shape(&v, status);
    }
    let (_, v) = send(
        &server,
        Method::POST,
        "/catalog/fixture/deploy",
        Some(json!({"provider_id": "bad id!"})),
    )
    .await;
    assert!(
        v["message"].as_str().unwrap().contains("provider_id"),
        "{v}"
    );
    let (status, _) = server.get_json("/providers/ok").await;
    assert_eq!(status, 404, "no provider from a rejected deploy");

    // A user entry whose id is not a valid provider id deploys under another id.
    let mut entry = fixture_entry("_underscored");
    entry["env"] = json!({});
    let (status, _) = send(&server, Method::POST, "/catalog", Some(entry)).await;
    assert_eq!(status, 201);
    let (status, v) = send(&server, Method::POST, "/catalog/_underscored/deploy", None).await;
    assert_eq!(status, 422, "{v}");
    let (status, v) = send(
        &server,
        Method::POST,
        "/catalog/_underscored/deploy",
        Some(json!({"provider_id": "underscored"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");

    // A built-in deploys without starting (started on first use).
    let (status, v) = send(&server, Method::POST, "/catalog/time/deploy", None).await;
    assert_eq!(status, 201, "{v}");
    let (status, p) = server.get_json("/providers/time").await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["state"], "cold");

    // Deleting the entry leaves its providers alone.
    let (status, _) = send(&server, Method::DELETE, "/catalog/fixture", None).await;
    assert_eq!(status, 200);
    let (status, _) = server.get_json("/providers/fixture").await;
    assert_eq!(status, 200);
    let r = call_tool(&server, "fixture__env", json!({"name": "GREETING"})).await;
    assert_eq!(text_of(&r), "from-entry", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_kill_9() {
    let mut server = Server::start(&fixture_config("fx", "")).await;
    let (status, created) = send(
        &server,
        Method::POST,
        "/catalog",
        Some(fixture_entry("durable")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(
        &server,
        Method::POST,
        "/catalog",
        Some(fixture_entry("doomed")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(&server, Method::POST, "/catalog/durable/deploy", None).await;
    assert_eq!(status, 201);

    server.kill_and_restart().await;
    let (status, got) = server.get_json("/catalog/durable").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, created);
    let (status, _) = server.get_json("/catalog/doomed").await;
    assert_eq!(status, 200);
    let (status, _) = server.get_json("/providers/durable").await;
    assert_eq!(status, 200, "the deployed provider is persisted too");
    let (_, list) = server.get_json("/catalog").await;
    assert_eq!(list["total"], 9);

    let (status, _) = send(&server, Method::DELETE, "/catalog/doomed", None).await;
    assert_eq!(status, 200);
    server.kill_and_restart().await;
    let (status, _) = server.get_json("/catalog/doomed").await;
    assert_eq!(status, 404);
    let (status, _) = server.get_json("/catalog/durable").await;
    assert_eq!(status, 200);
    let (_, list) = server.get_json("/catalog").await;
    assert_eq!(list["total"], 8);

    // And across a clean restart.
    server.restart().await;
    let (status, got) = server.get_json("/catalog/durable").await;
    assert_eq!(status, 200);
    assert_eq!(got, created);
}
