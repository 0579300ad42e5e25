//! The config lifecycle (get, reload, export, backup, diff, `--watch`), event
//! store compaction, and durability across `kill -9`, against the real server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hangar_e2e::{ADMIN_KEY, Server, bin, fixture_config};
use reqwest::Method;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Client {
    list_changed: Arc<AtomicUsize>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("e2e-config", "0"),
        )
    }
    async fn on_tool_list_changed(&self, _c: NotificationContext<RoleClient>) {
        self.list_changed.fetch_add(1, Ordering::SeqCst);
    }
}

async fn connect(server: &Server) -> (RunningService<RoleClient, Client>, Client) {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.at("/mcp")).auth_header(ADMIN_KEY),
    );
    let handler = Client::default();
    let client = handler
        .clone()
        .serve_with_lifecycle(transport, ClientLifecycleMode::Initialize)
        .await
        .expect("connect to hangar");
    (client, handler)
}

async fn call_text(
    client: &RunningService<RoleClient, Client>,
    name: &'static str,
    args: Value,
) -> String {
    let r = client
        .call_tool(
            CallToolRequestParams::new(name).with_arguments(args.as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

fn fixture(id: &str, greeting: &str) -> String {
    format!(
        "  {id}:\n    command: [\"{}\"]\n    env:\n      GREETING: {greeting}\n",
        bin("hangar-fixture").display()
    )
}

fn assert_error(v: &Value, status: u16) {
    assert_eq!(v["status_code"], status, "{v}");
    assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
}

async fn send(server: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    server.send(method, path, body).await
}

async fn create_api_provider(server: &Server, id: &str) {
    let (status, v) = send(
        server,
        Method::POST,
        "/providers",
        Some(json!({
            "provider_id": id,
            "mode": "subprocess",
            "command": [bin("hangar-fixture")],
            "env": {"GREETING": "from-api"},
        })),
    )
    .await;
    assert_eq!(status, 201, "{v}");
}

async fn poll<F: AsyncFn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_only_the_difference() {
    let config = format!(
        "providers:\n{}{}{}",
        fixture("fx", "hello"),
        fixture("fy", "hello"),
        fixture("fw", "before")
    );
    let server = Server::start(&config).await;
    create_api_provider(&server, "apiprov").await;
    let (client, handler) = connect(&server).await;
    assert_eq!(
        call_text(&client, "fx__echo", json!({"text": "one"})).await,
        "one"
    );
    assert_eq!(
        call_text(&client, "fw__env", json!({"name": "GREETING"})).await,
        "before"
    );
    let (_, fx) = server.get_json("/providers/fx").await;
    let fx_pid = fx["pid"].as_i64().expect("fx runs");

    // fx unchanged, fy removed, fz added, fw changed.
    let new_config = format!(
        "providers:\n{}{}{}",
        fixture("fx", "hello"),
        fixture("fz", "hello"),
        fixture("fw", "after")
    );
    std::fs::write(server.config_path(), new_config).unwrap();
    let (status, v) = send(&server, Method::POST, "/config/reload", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "reloaded");
    let r = &v["result"];
    assert_eq!(r["added"], json!(["fz"]), "{v}");
    assert_eq!(r["removed"], json!(["fy"]), "{v}");
    assert_eq!(r["updated"], json!(["fw"]), "{v}");
    assert_eq!(r["unchanged"], json!(["fx"]), "{v}");
    assert_eq!(r["kept"], json!(["apiprov"]), "{v}");
    assert_eq!(r["failed"], json!({}), "{v}");
    assert_eq!(r["restart_required"], json!([]), "{v}");

    // The unchanged provider kept its process and the client its session.
    let (_, fx) = server.get_json("/providers/fx").await;
    assert_eq!(fx["pid"].as_i64(), Some(fx_pid), "{fx}");
    assert_eq!(
        call_text(&client, "fx__echo", json!({"text": "two"})).await,
        "two"
    );
    // The changed one runs with its new spec.
    assert_eq!(
        call_text(&client, "fw__env", json!({"name": "GREETING"})).await,
        "after"
    );
    let (status, _) = server.get_json("/providers/fy").await;
    assert_eq!(status, 404);
    let (status, v) = server.get_json("/providers/apiprov").await;
    assert_eq!(status, 200, "{v}");
    // Clients were told the tool list changed, and see the new one.
    poll("tools/list_changed", async || {
        handler.list_changed.load(Ordering::SeqCst) > 0
    })
    .await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"fz__echo".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("fy__")), "{names:?}");

    // An invalid file changes nothing and names the line.
    std::fs::write(
        server.config_path(),
        "providers:\n  fx:\n    command: [x]\n    bogus_key: 1\n",
    )
    .unwrap();
    let (status, v) = send(&server, Method::POST, "/config/reload", Some(json!({}))).await;
    assert_eq!(status, 422, "{v}");
    assert_error(&v, 422);
    assert!(v["message"].as_str().unwrap().contains("line 4"), "{v}");
    let (status, _) = server.get_json("/providers/fz").await;
    assert_eq!(status, 200);

    // Malformed bodies and unknown fields are 400; a missing file is 422.
    let r = server
        .api(Method::POST, "/config/reload")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_error(&r.json().await.unwrap(), 400);
    let (status, v) = send(
        &server,
        Method::POST,
        "/config/reload",
        Some(json!({"config_path": "/nonexistent/hangar.yaml"})),
    )
    .await;
    // Only the server's own config file (or --config-dir's) can be named.
    assert_eq!(status, 403, "{v}");
    assert_error(&v, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_export_diff_and_backup() {
    let config = format!(
        "providers:\n{}server:\n  backup_count: 2\n",
        fixture("fx", "secret-value")
    );
    let server = Server::start(&config).await;

    // GET /config: env values never shown.
    let (status, v) = server.get_json("/config").await;
    assert_eq!(status, 200, "{v}");
    let fx = &v["config"]["providers"][0];
    assert_eq!(fx["provider_id"], "fx", "{v}");
    assert_eq!(fx["source"], "config", "{v}");
    assert_eq!(fx["env"]["GREETING"], "<redacted>", "{v}");
    assert!(!v.to_string().contains("secret-value"), "{v}");
    assert_eq!(v["config"]["server"]["backup_count"], 2, "{v}");
    assert!(
        v["config_path"].as_str().unwrap().ends_with("hangar.yaml"),
        "{v}"
    );
    let r = reqwest::Client::new()
        .get(server.at("/api/config"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Same state as the file: no diff.
    let (status, v) = server.get_json("/config/diff").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["has_changes"], false, "{v}");
    assert_eq!(v["diff"], "", "{v}");

    // An API provider makes the live state differ from the file.
    create_api_provider(&server, "apiprov").await;
    let (_, v) = server.get_json("/config/diff").await;
    assert_eq!(v["has_changes"], true, "{v}");
    let diff = v["diff"].as_str().unwrap();
    assert!(diff.starts_with("--- on-disk\n+++ in-memory\n"), "{diff}");
    assert!(diff.contains("\n+  apiprov:"), "{diff}");

    // Export loads back to the same state: reloading it changes nothing.
    let (status, v) = send(&server, Method::POST, "/config/export", None).await;
    assert_eq!(status, 200, "{v}");
    let yaml = v["yaml"].as_str().unwrap().to_owned();
    assert!(yaml.contains("apiprov:") && yaml.contains("fx:"), "{yaml}");
    let exported = server.config_path().to_owned();
    std::fs::write(&exported, &yaml).unwrap();
    let (status, v) = send(
        &server,
        Method::POST,
        "/config/reload",
        Some(json!({"config_path": exported})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["added"], json!([]), "{v}");
    assert_eq!(v["result"]["removed"], json!([]), "{v}");
    assert_eq!(v["result"]["updated"], json!([]), "{v}");
    assert_eq!(v["result"]["unchanged"], json!(["fx"]), "{v}");
    assert_eq!(v["result"]["kept"], json!(["apiprov"]), "{v}");
    // The exported file is now the one applied: it matches the live state.
    let (_, v) = server.get_json("/config/diff").await;
    assert_eq!(v["has_changes"], false, "{v}");

    // Backups rotate: three made, the newest two kept.
    let mut paths = Vec::new();
    for _ in 0..3 {
        let (status, v) = send(&server, Method::POST, "/config/backup", None).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["created"], true, "{v}");
        paths.push(v["backup_path"].as_str().unwrap().to_owned());
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(server.data_dir.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, paths[1..].to_vec());
    assert_eq!(std::fs::read_to_string(&paths[2]).unwrap(), yaml);

    // A broken file on disk: diff says so (422), export still works.
    std::fs::write(&exported, "providers: [").unwrap();
    let (status, v) = server.get_json("/config/diff").await;
    assert_eq!(status, 422, "{v}");
    assert_error(&v, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_applies_file_changes() {
    let server = Server::start_with(&fixture_config("fx", ""), &["--watch"]).await;
    let config = format!(
        "providers:\n{}{}",
        fixture("fx", "hello"),
        fixture("fz", "hi")
    );
    std::fs::write(server.config_path(), config).unwrap();
    poll("fz to appear", async || {
        server.get_json("/providers/fz").await.0 == 200
    })
    .await;
    let (_, v) = server.get_json("/providers/fx").await;
    assert_eq!(v["provider"], "fx");
    // Removing it from the file removes it.
    std::fs::write(server.config_path(), fixture_config("fx", "")).unwrap();
    poll("fz to go", async || {
        server.get_json("/providers/fz").await.0 == 404
    })
    .await;
}

async fn history(server: &Server, id: &str) -> Vec<Value> {
    let (status, v) = server
        .get_json(&format!("/providers/{id}/tools/history?limit=500"))
        .await;
    assert_eq!(status, 200, "{v}");
    v["history"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_deletes_what_a_snapshot_covers() {
    let server = Server::start(&fixture_config("fx", "server:\n  snapshot_every: 5\n")).await;
    let (client, _) = connect(&server).await;
    for i in 0..12 {
        let text = format!("n{i}");
        let out = call_text(&client, "fx__echo", json!({ "text": text })).await;
        assert_eq!(out, text);
    }
    assert_eq!(history(&server, "fx").await.len(), 12);

    for (body, status) in [
        (json!({}), 422),
        (json!({"stream_id": ""}), 422),
        (json!({"stream_id": "  "}), 422),
        (json!({"stream_id": "provider:nope"}), 409),
    ] {
        let (s, v) = send(
            &server,
            Method::POST,
            "/maintenance/compact",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, status, "{body} → {v}");
        assert_error(&v, status);
    }
    let (status, v) = send(
        &server,
        Method::POST,
        "/maintenance/compact",
        Some(json!({"stream_id": "provider:fx"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["compacted"]["stream_id"], "provider:fx");
    let deleted = v["compacted"]["events_deleted"].as_u64().unwrap();
    assert!(deleted >= 10, "{v}");
    let left = history(&server, "fx").await.len();
    assert!(left < 12, "{left} records left");

    // The stream goes on after compaction, also across a kill -9.
    for _ in 0..3 {
        call_text(&client, "fx__echo", json!({"text": "more"})).await;
    }
    assert_eq!(history(&server, "fx").await.len(), left + 3);
    drop(client);
    let mut server = server;
    server.kill_and_restart().await;
    let (client, _) = connect(&server).await;
    call_text(&client, "fx__echo", json!({"text": "after"})).await;
    assert_eq!(history(&server, "fx").await.len(), left + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_provider_history_or_catalog_entry() {
    let mut server = Server::start("").await;
    create_api_provider(&server, "durable").await;
    let (status, v) = send(
        &server,
        Method::PUT,
        "/providers/durable",
        Some(json!({"description": "after update"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = send(
        &server,
        Method::POST,
        "/catalog",
        Some(json!({"name": "durable-entry", "description": "kept", "command": ["x"], "tags": ["t"]})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (client, _) = connect(&server).await;
    for i in 0..20 {
        call_text(&client, "durable__echo", json!({ "text": format!("t{i}") })).await;
    }
    // What the API has shown is acknowledged.
    let before = history(&server, "durable").await;
    assert_eq!(before.len(), 20);
    drop(client);

    server.kill_and_restart().await;
    let (status, v) = server.get_json("/providers/durable").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["description"], "after update", "{v}");
    let after = history(&server, "durable").await;
    assert_eq!(after, before);
    let (status, v) = server.get_json("/catalog/durable-entry").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["tags"], json!(["t"]), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_are_bounded_by_retention() {
    let server = Server::start("server:\n  audit_retention: 3\n").await;
    for i in 0..8 {
        let (status, v) = send(
            &server,
            Method::PUT,
            &format!("/secrets/S{i}"),
            Some(json!({"value": "x"})),
        )
        .await;
        assert_eq!(status, 201, "{v}");
    }
    let (status, v) = server
        .get_json("/observability/audit?event_type=AdminChange&limit=100")
        .await;
    assert_eq!(status, 200, "{v}");
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{v}");
    // The newest are the ones kept.
    assert!(v.to_string().contains("/api/secrets/S7"), "{v}");
    assert!(!v.to_string().contains("/api/secrets/S0"), "{v}");
}
