//! Tool policies and approvals end to end: a real hangar-server with the
//! fixture provider, the rmcp client (both eras) waiting on held calls while
//! the test answers over REST, and the events in the real SQLite file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use hangar_e2e::mcp_client::{Client, call_params, connect, legacy, modern, text};
use hangar_e2e::{Server, fixture_config};
use reqwest::Method;
use rmcp::service::RunningService;
use rmcp::{ClientLifecycleMode, RoleClient};
use serde_json::{Value, json};

/// The principal of the admin key (see `hangar-api`'s auth bootstrap).
const ADMIN: &str = "admin";

async fn tool_names(client: &RunningService<RoleClient, Client>) -> Vec<String> {
    client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect()
}

async fn set_policy(server: &Server, provider: &str, tool: &str, body: Value) -> u16 {
    let (status, v) = server
        .send(
            Method::PUT,
            &format!("/auth/policies/{provider}/{tool}"),
            Some(body),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {v}");
    status
}

/// Polls `GET /api/permissions` until `n` are pending.
async fn pending(server: &Server, n: usize) -> Vec<Value> {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (_, v) = server.get_json("/permissions").await;
        if let Some(list) = v["permissions"].as_array()
            && list.len() == n
        {
            return list.clone();
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {n} pending permission requests: {last}");
}

async fn wait_progress(handler: &Client, at_least: usize) {
    for _ in 0..200 {
        if handler.progress.load(Ordering::SeqCst) >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no progress while waiting for approval");
}

/// Events of `stream` of type `kind` in the server's SQLite file (polled:
/// the writer batches them off the call path).
async fn events(server: &Server, stream: &str, kind: &str, at_least: usize) -> Vec<Value> {
    let db = server.data_dir.join("hangar.db");
    let mut found = Vec::new();
    for _ in 0..100 {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT payload FROM events WHERE stream_id = ?1 AND event_type = ?2 ORDER BY position",
            )
            .unwrap();
        found = stmt
            .query_map(rusqlite::params![stream, kind], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
            .collect();
        if found.len() >= at_least {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("only {} {kind} events on {stream}: {found:?}", found.len());
}

async fn deny_hides_and_refuses(mode: ClientLifecycleMode) {
    let server = Server::start(&fixture_config("fx", "")).await;
    let (client, _) = connect(&server, mode).await;
    assert!(tool_names(&client).await.contains(&"fx__echo".to_owned()));

    // By principal, exact names.
    assert_eq!(
        set_policy(
            &server,
            "fx",
            "echo",
            json!({"principal_id": ADMIN, "effect": "deny"})
        )
        .await,
        201
    );
    let names = tool_names(&client).await;
    assert!(!names.contains(&"fx__echo".to_owned()), "{names:?}");
    assert!(names.contains(&"fx__add".to_owned()));
    let denied = client
        .call_tool(call_params("fx__echo", json!({"text": "x"})))
        .await
        .unwrap_err();
    let unknown = client
        .call_tool(call_params("fx__nope", json!({"text": "x"})))
        .await
        .unwrap_err();
    assert_eq!(
        denied.to_string().replace("fx__echo", "NAME"),
        unknown.to_string().replace("fx__nope", "NAME"),
        "a denied tool looks exactly like an unknown one"
    );

    // By role, with globs in both segments (URL-encoded).
    set_policy(
        &server,
        "f%3F",
        "ad%2A",
        json!({"role_id": "admin", "effect": "deny"}),
    )
    .await;
    let (_, got) = server.get_json("/auth/policies/f%3F/ad%2A").await;
    assert_eq!(got["policies"][0]["provider"], "f?");
    assert_eq!(got["policies"][0]["tool"], "ad*");
    assert_eq!(got["policies"][0]["role_id"], "admin");
    let names = tool_names(&client).await;
    assert!(!names.contains(&"fx__add".to_owned()), "{names:?}");
    assert!(
        client
            .call_tool(call_params("fx__add", json!({"a": 1, "b": 2})))
            .await
            .is_err()
    );

    // Clearing brings them back.
    let (_, d) = server
        .send(
            Method::DELETE,
            "/auth/policies/f%3F/ad%2A?role_id=admin",
            None,
        )
        .await;
    assert_eq!(d["deleted"], 1);
    let (_, d) = server
        .send(Method::DELETE, "/auth/policies/fx/echo", None)
        .await;
    assert_eq!(d["deleted"], 1);
    let (s, _) = server.get_json("/auth/policies/fx/echo").await;
    assert_eq!(s, 404, "nothing left for this pair");
    let (s, _) = server
        .send(Method::DELETE, "/auth/policies/fx/echo", None)
        .await;
    assert_eq!(s, 404);
    let names = tool_names(&client).await;
    assert!(names.contains(&"fx__add".to_owned()) && names.contains(&"fx__echo".to_owned()));
    let r = client
        .call_tool(call_params("fx__echo", json!({"text": "back"})))
        .await
        .unwrap();
    assert_eq!(text(&r), "back");

    // The denials were audited, without argument values.
    let denied = events(&server, "audit", "SecurityEvent", 2).await;
    assert_eq!(denied[0]["kind"], "tool_denied");
    assert_eq!(denied[0]["principal"], ADMIN);
    assert_eq!(denied[0]["tool"], "echo");
    let audited = events(&server, "audit", "ToolCallAudited", 3).await;
    assert!(
        audited
            .iter()
            .any(|a| a["verdict"] == "deny" && a["outcome"] == "denied")
    );
    assert!(
        audited
            .iter()
            .any(|a| a["verdict"] == "allow" && a["outcome"] == "success")
    );
    assert!(
        audited
            .iter()
            .all(|a| a["arguments_digest"].as_str().unwrap().len() == 64)
    );
    assert!(!audited.iter().any(|a| a.to_string().contains("back")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_hides_the_tool_and_refuses_it_like_an_unknown_one_legacy() {
    deny_hides_and_refuses(legacy()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_hides_the_tool_and_refuses_it_like_an_unknown_one_2026() {
    deny_hides_and_refuses(modern()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_beats_ask_beats_allow() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let (client, _) = connect(&server, legacy()).await;
    set_policy(
        &server,
        "*",
        "*",
        json!({"principal_id": ADMIN, "effect": "allow"}),
    )
    .await;
    set_policy(
        &server,
        "fx",
        "echo",
        json!({"role_id": "admin", "effect": "ask"}),
    )
    .await;
    // ask > allow: the call is held.
    let peer = client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(call_params("fx__echo", json!({"text": "held"})))
            .await
    });
    let list = pending(&server, 1).await;
    assert_eq!(list[0]["tool"], "echo");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let s = reply(&server, &id, json!({"reply": "once"})).await.0;
    assert_eq!(s, 200);
    assert_eq!(text(&call.await.unwrap().unwrap()), "held");
    // deny > ask.
    set_policy(
        &server,
        "fx",
        "e*",
        json!({"principal_id": ADMIN, "effect": "deny"}),
    )
    .await;
    assert!(!tool_names(&client).await.contains(&"fx__echo".to_owned()));
    assert!(
        client
            .call_tool(call_params("fx__echo", json!({"text": "x"})))
            .await
            .is_err()
    );
    assert!(
        server.get_json("/permissions").await.1["permissions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_from_the_yaml_config() {
    let extra = format!(
        "    policies:\n      - {{tool: echo, principal_id: {ADMIN}, effect: deny}}\n      - {{tool: \"a?d\", role_id: admin, effect: ask}}\n"
    );
    let server = Server::start(&fixture_config("fx", &extra)).await;
    let (client, _) = connect(&server, legacy()).await;
    let names = tool_names(&client).await;
    assert!(!names.contains(&"fx__echo".to_owned()), "{names:?}");
    assert!(names.contains(&"fx__add".to_owned()));
    let (_, got) = server.get_json("/auth/policies/fx/echo").await;
    assert_eq!(got["policies"][0]["source"], "config");
    assert_eq!(got["policies"][0]["effect"], "deny");
    let peer = client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(call_params("fx__add", json!({"a": 1, "b": 1})))
            .await
    });
    let id = pending(&server, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    reply(&server, &id, json!({"reply": "once"})).await;
    assert_eq!(text(&call.await.unwrap().unwrap()), "2");
}

/// Answers permission request `id` as a second admin (`reviewer`): nobody
/// answers their own held call.
async fn reply(server: &Server, id: &str, body: Value) -> (u16, Value) {
    let reviewer = server.reviewer_key().await;
    let (status, _, v) = server
        .call_as(
            &reviewer,
            Method::POST,
            &format!("/permissions/{id}/reply"),
            Some(body),
        )
        .await;
    (status, v)
}

async fn approvals(mode: ClientLifecycleMode) {
    let server = Server::start(&fixture_config("fx", "")).await;
    set_policy(
        &server,
        "fx",
        "add",
        json!({"principal_id": ADMIN, "effect": "ask"}),
    )
    .await;
    let (client, handler) = connect(&server, mode).await;

    // once: the call waits (with progress) until approved.
    let peer = client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(call_params("fx__add", json!({"b": 3, "a": 2})))
            .await
    });
    let list = pending(&server, 1).await;
    let p = &list[0];
    assert_eq!(p["principal"], ADMIN);
    assert_eq!(p["provider"], "fx");
    assert_eq!(p["tool"], "add");
    // Keyed with the server's secret: not the plain SHA-256 of the canonical
    // arguments (which a dictionary of small values reverses).
    let digest = p["arguments_digest"].as_str().unwrap();
    assert_eq!(digest.len(), 64, "{p}");
    assert_ne!(
        digest,
        "206f7b5543e6f2ef39bf334988fd7097b725caeed16588cd9d785480f2f0f8f6"
    );
    assert!(p["created_at"].is_string() && p["expires_at"].is_string());
    assert!(
        !p.to_string().contains("\"a\":2"),
        "no argument values: {p}"
    );
    wait_progress(&handler, 1).await;
    assert!(!call.is_finished());
    let id = p["id"].as_str().unwrap().to_owned();
    // The caller cannot approve its own call; another admin can.
    let (s, v) = server
        .send(
            Method::POST,
            &format!("/permissions/{id}/reply"),
            Some(json!({"reply": "once"})),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = reply(&server, &id, json!({"reply": "once"})).await;
    assert_eq!((s, &v["replied"]), (200, &json!(true)));
    assert_eq!(text(&call.await.unwrap().unwrap()), "5");
    let (s, v) = reply(&server, &id, json!({"reply": "once"})).await;
    assert_eq!(s, 409, "{v}");
    let (s, _) = server
        .send(
            Method::POST,
            "/permissions/perm_unknown/reply",
            Some(json!({"reply": "once"})),
        )
        .await;
    assert_eq!(s, 404);

    // reject: a tool error with the reviewer's message.
    let peer = client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(call_params("fx__add", json!({"a": 1, "b": 1})))
            .await
    });
    let id = pending(&server, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = reply(&server, &id, json!({"reply": "maybe"})).await;
    assert_eq!(s, 422);
    reply(
        &server,
        &id,
        json!({"reply": "reject", "message": "not on fridays"}),
    )
    .await;
    let r = call.await.unwrap().unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("not on fridays"), "{}", text(&r));

    // always: approved, and remembered as a stored allow policy.
    let peer = client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(call_params("fx__add", json!({"a": 4, "b": 4})))
            .await
    });
    let id = pending(&server, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    reply(&server, &id, json!({"reply": "always"})).await;
    assert_eq!(text(&call.await.unwrap().unwrap()), "8");
    let (_, got) = server.get_json("/auth/policies/fx/add").await;
    assert!(
        got["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["principal_id"] == ADMIN && p["effect"] == "allow" && p["source"] == "api"),
        "{got}"
    );
    // Not asked again.
    let r = client
        .call_tool(call_params("fx__add", json!({"a": 5, "b": 5})))
        .await
        .unwrap();
    assert_eq!(text(&r), "10");

    let requested = events(&server, "approvals", "PermissionRequested", 3).await;
    assert_eq!(requested[0]["tool"], "add");
    let answered = events(&server, "approvals", "PermissionAnswered", 3).await;
    let replies: Vec<&str> = answered
        .iter()
        .map(|a| a["reply"].as_str().unwrap())
        .collect();
    assert_eq!(replies, ["once", "reject", "always"]);
    let audited = events(&server, "audit", "ToolCallAudited", 4).await;
    let verdicts: Vec<&str> = audited
        .iter()
        .map(|a| a["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["approved", "rejected", "approved", "allow"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_once_reject_always_legacy() {
    approvals(legacy()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_once_reject_always_2026() {
    approvals(modern()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_request_expires() {
    let config = fixture_config("fx", "server:\n  approval_timeout_s: 1\n");
    let server = Server::start(&config).await;
    set_policy(
        &server,
        "fx",
        "*",
        json!({"role_id": "admin", "effect": "ask"}),
    )
    .await;
    let (client, _) = connect(&server, legacy()).await;
    let r = client
        .call_tool(call_params("fx__echo", json!({"text": "late"})))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("not approved within 1 s"), "{}", text(&r));
    assert!(
        server.get_json("/permissions").await.1["permissions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let answered = events(&server, "approvals", "PermissionAnswered", 1).await;
    assert_eq!(answered[0]["reply"], "expired");
    let audited = events(&server, "audit", "ToolCallAudited", 1).await;
    assert_eq!(audited[0]["verdict"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sets_policies_and_approves() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let out = server.cli(&["policies", "set", "fx", "echo", "ask", "--principal", ADMIN]);
    assert!(out.status.success(), "{out:?}");
    let out = server.cli(&["-o", "json", "policies", "get", "fx", "echo"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policies"][0]["effect"], "ask");

    let (client, _) = connect(&server, legacy()).await;
    let peer = client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(call_params("fx__echo", json!({"text": "cli"})))
            .await
    });
    let id = pending(&server, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = server.cli(&["approvals", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    let out = server.cli(&["approvals", "reject", &id, "--message", "nope"]);
    assert!(out.status.success(), "{out:?}");
    let r = call.await.unwrap().unwrap();
    assert!(text(&r).contains("nope"));

    let out = server.cli(&["policies", "clear", "fx", "echo", "--principal", ADMIN]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 policies deleted"),
        "{out:?}"
    );
}
