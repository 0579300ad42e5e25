//! The real hangar-server driven by the rmcp client over Streamable HTTP, in
//! both protocol eras, in front of real `hangar-fixture` processes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use hangar_e2e::mcp_client::{connect, legacy, modern, text};
use hangar_e2e::{Server, fixture_config};
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use rmcp::{ClientLifecycleMode, RoleClient};
use serde_json::json;

fn args(v: serde_json::Value) -> rmcp::model::JsonObject {
    v.as_object().cloned().unwrap()
}

/// Calls `name` with `arguments` and returns the result (panics on a protocol error).
async fn call(
    peer: &rmcp::Peer<RoleClient>,
    name: &'static str,
    arguments: serde_json::Value,
) -> rmcp::model::CallToolResult {
    peer.call_tool(CallToolRequestParams::new(name).with_arguments(args(arguments)))
        .await
        .unwrap()
}

async fn exercise(mode: ClientLifecycleMode) {
    let server = Server::start(&fixture_config("fx", "")).await;
    let (client, handler) = connect(&server, mode).await;

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for expected in [
        "fx__add",
        "fx__echo",
        "fx__sleep",
        "fx__test_simple_text",
        "fx__crash",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} missing from {names:?}"
        );
    }
    assert!(names.iter().all(|n| n.starts_with("fx__")));

    let r = call(client.peer(), "fx__add", json!({"a": 2, "b": 3})).await;
    assert_eq!(text(&r), "5");

    let r = call(client.peer(), "fx__echo", json!({"text": "héllo"})).await;
    assert_eq!(text(&r), "héllo");

    let r = call(client.peer(), "fx__env", json!({"name": "GREETING"})).await;
    assert_eq!(text(&r), "hello");

    let r = client
        .call_tool(CallToolRequestParams::new("fx__test_error_handling"))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));

    let err = client
        .call_tool(CallToolRequestParams::new("fx__no_such_tool"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fx__no_such_tool"), "{err}");

    // Progress from the provider reaches this client before the result.
    let r = call(client.peer(), "fx__sleep", json!({"ms": 350})).await;
    assert_ne!(r.is_error, Some(true));
    assert!(
        handler.progress.load(Ordering::SeqCst) >= 1,
        "no progress forwarded"
    );

    let res = client
        .read_resource(ReadResourceRequestParams::new("test://template/42/data"))
        .await
        .unwrap();
    assert!(format!("{res:?}").contains("Data for ID: 42"));

    let prompts = client.list_all_prompts().await.unwrap();
    assert!(
        prompts
            .iter()
            .any(|p| p.name == "fx__test_prompt_with_arguments")
    );
    let p = client
        .get_prompt(
            GetPromptRequestParams::new("fx__test_prompt_with_arguments")
                .with_arguments(args(json!({"arg1": "x", "arg2": "y"}))),
        )
        .await
        .unwrap();
    assert!(format!("{p:?}").contains("arg1='x'"));
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_client_sees_namespaced_tools_and_calls_them() {
    exercise(legacy()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_2026_client_sees_namespaced_tools_and_calls_them() {
    exercise(modern()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_first_calls_start_one_process() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let (client, _) = connect(&server, legacy()).await;
    let (_, v) = server.get_json("/providers/fx").await;
    assert_eq!(v["state"], "cold");
    let peer = client.peer().clone();
    let calls = (0..100).map(|i| {
        let peer = peer.clone();
        tokio::spawn(async move {
            peer.call_tool(
                CallToolRequestParams::new("fx__echo")
                    .with_arguments(args(json!({"text": format!("{i}")}))),
            )
            .await
        })
    });
    for (i, c) in futures_join(calls).await.into_iter().enumerate() {
        assert_eq!(text(&c.unwrap().unwrap()), i.to_string());
    }
    let (_, logs) = server.get_json("/providers/fx/logs?lines=1000").await;
    let starts = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["line"]
                .as_str()
                .unwrap_or("")
                .starts_with("hangar-fixture ready")
        })
        .count();
    assert_eq!(starts, 1, "one process for all clients: {logs}");
    let pids = hangar_e2e::children_named(server.pid().unwrap(), "hangar-fixture");
    assert_eq!(pids.len(), 1, "{pids:?}");
}

async fn futures_join<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_moves_to_dead_and_next_call_restarts() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let (client, _) = connect(&server, legacy()).await;
    let r = call(client.peer(), "fx__echo", json!({"text": "a"})).await;
    assert_eq!(text(&r), "a");
    let (_, before) = server.get_json("/providers/fx").await;
    let pid = before["pid"].as_i64().unwrap();
    let mut transitions = hangar_e2e::streams::Sse::open(
        &server,
        hangar_e2e::ADMIN_KEY,
        "provider_id=fx&event_type=ProviderStateChanged",
        None,
    )
    .await;

    let crash = tokio::time::timeout(
        Duration::from_secs(20),
        client.call_tool(CallToolRequestParams::new("fx__crash")),
    )
    .await
    .expect("a crash must not hang the call");
    assert!(crash.is_err(), "crash should fail the call: {crash:?}");
    let dead = server.wait_state("fx", "dead").await;
    // The cause is the exit itself; the transition says "crashed" once.
    let cause = dead["last_error"].as_str().unwrap_or("");
    assert!(
        cause.contains("exit") && !cause.starts_with("crashed"),
        "{dead}"
    );
    let seen = transitions
        .until(Duration::from_secs(20), |e| {
            e.data["payload"]["to"] == "dead"
        })
        .await;
    let reason = seen.last().unwrap().data["payload"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reason, format!("crashed: {cause}"));
    assert!(!reason.contains("crashed: crashed"), "{reason}");
    assert!(
        !hangar_e2e::process_alive(i32::try_from(pid).unwrap()),
        "crashed process reaped"
    );

    // The next call starts a fresh process.
    let r = call(client.peer(), "fx__echo", json!({"text": "b"})).await;
    assert_eq!(text(&r), "b");
    let (_, after) = server.get_json("/providers/fx").await;
    assert_eq!(after["state"], "ready");
    assert_ne!(after["pid"], before["pid"]);
    assert!(after["restart_count"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_provider_is_stopped_and_restarted_on_demand() {
    let config = fixture_config("fx", "    idle_ttl_s: 1\n");
    let server = Server::start(&config).await;
    let (client, _) = connect(&server, legacy()).await;
    call(client.peer(), "fx__echo", json!({"text": "a"})).await;
    let (_, v) = server.get_json("/providers/fx").await;
    let pid = v["pid"].as_i64().unwrap();
    server.wait_state("fx", "cold").await;
    assert!(!hangar_e2e::process_alive(i32::try_from(pid).unwrap()));
    // Tools stay listed while cold, and a call brings it back.
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "fx__echo"));
    let r = call(client.peer(), "fx__echo", json!({"text": "again"})).await;
    assert_eq!(text(&r), "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_providers_share_one_namespace() {
    let config = format!(
        "{}  other:\n    command: [\"{}\", \"--name\", \"other\"]\n",
        fixture_config("alpha", ""),
        hangar_e2e::bin("hangar-fixture").display()
    );
    let server = Server::start(&config).await;
    let (client, _) = connect(&server, legacy()).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "alpha__add"));
    assert!(tools.iter().any(|t| t.name == "other__add"));
    let r = call(client.peer(), "other__add", json!({"a": 1, "b": 1})).await;
    assert_eq!(text(&r), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_no_provider_process() {
    let mut server = Server::start(&fixture_config("fx", "")).await;
    let (client, _) = connect(&server, legacy()).await;
    call(client.peer(), "fx__echo", json!({"text": "a"})).await;
    let (_, v) = server.get_json("/providers/fx").await;
    let pid = i32::try_from(v["pid"].as_i64().unwrap()).unwrap();
    assert!(hangar_e2e::process_alive(pid));
    drop(client);
    let code = server.stop();
    assert_eq!(code, Some(0));
    assert!(
        !hangar_e2e::process_alive(pid),
        "provider {pid} survived shutdown"
    );
}
