//! The engine in-process with real `hangar-fixture` processes: start/stop
//! cycles leave no process or zombie behind.

use hangar_core::ProviderSpec;
use hangar_e2e::{Server, bin, process_alive};
use hangar_mcp::Backend;
use hangar_runtime::{Engine, EngineConfig, ProviderSource};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_start_stop_cycles_leave_nothing_behind() {
    let engine = Engine::new(EngineConfig::default());
    let spec = ProviderSpec::subprocess(vec![bin("hangar-fixture").display().to_string()]);
    engine
        .add_provider("fx", spec, ProviderSource::Config)
        .await
        .unwrap();
    let provider = engine.provider("fx").unwrap();
    let mut pids = Vec::new();
    for _ in 0..200 {
        provider.start().await.unwrap();
        let status = provider.status();
        assert_eq!(status.state, hangar_core::ProviderState::Ready);
        let pid = status.pid.unwrap();
        pids.push(pid);
        provider.stop(false).await;
        assert!(!process_alive(pid), "process {pid} left after stop");
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 200, "each start is a new process");
    let me = std::process::id();
    assert!(hangar_e2e::children_named(me, "hangar-fixture").is_empty());
    // Nothing of ours is left as a zombie either.
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || !process_alive(pid));
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_command_is_a_clear_error_not_a_hang() {
    let engine = Engine::new(EngineConfig::default());
    let spec = ProviderSpec::subprocess(["/nonexistent/provider-binary"]);
    engine
        .add_provider("broken", spec, ProviderSource::Config)
        .await
        .unwrap();
    let err = engine.acquire("broken", &[]).await.expect_err("must fail");
    assert!(
        err.to_string().contains("/nonexistent/provider-binary"),
        "{err}"
    );
    assert_eq!(
        engine.provider("broken").unwrap().state(),
        hangar_core::ProviderState::Dead
    );
    // A process that is not an MCP server fails the handshake.
    let spec = ProviderSpec::subprocess(["/bin/cat"]);
    let mut spec = spec;
    spec.startup_timeout_s = 2;
    engine
        .add_provider("cat", spec, ProviderSource::Config)
        .await
        .unwrap();
    let err = engine.acquire("cat", &[]).await.expect_err("must fail");
    assert!(err.to_string().contains("cat"), "{err}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_providers_are_capped_with_a_clear_503() {
    let fixture = bin("hangar-fixture");
    let config = format!(
        "providers:\n  fx:\n    command: [\"{f}\"]\n  fy:\n    command: [\"{f}\"]\nserver:\n  max_running_providers: 1\n",
        f = fixture.display()
    );
    let server = Server::start(&config).await;
    let (status, v) = server.send(Method::POST, "/providers/fx/start", None).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = server.send(Method::POST, "/providers/fy/start", None).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"], "ProviderCapacityError", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("max_running_providers"),
        "{v}"
    );
    // A call to the capped provider's tool fails the same way over MCP.
    let out = server.cli(&["call", "fy__echo", "text=hi"]);
    assert!(!out.status.success(), "{out:?}");
    // Freeing the slot lets it start.
    let (status, v) = server.send(Method::POST, "/providers/fx/stop", None).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = server.send(Method::POST, "/providers/fy/start", None).await;
    assert_eq!(status, 200, "{v}");
}

/// Failure thresholds changed by `PUT` apply to the running provider at
/// once (they decide nothing about what runs, so no restart is asked for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_thresholds_changed_by_put_apply_at_once() {
    let config = format!(
        "providers:\n  fx:\n    command: [\"{}\"]\n    call_timeout_s: 1\n",
        bin("hangar-fixture").display()
    );
    let server = Server::start(&config).await;
    let (status, v) = server.send(Method::POST, "/providers/fx/start", None).await;
    assert_eq!(status, 200, "{v}");
    let (_, detail) = server.get_json("/providers/fx").await;
    let mut spec = detail["configuration"].clone();
    spec["max_consecutive_failures"] = 1.into();
    spec["max_failures"] = 1.into();
    let (status, v) = server.send(Method::PUT, "/providers/fx", Some(spec)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["restart_required"], false, "{v}");
    // One provider failure (a call that times out) now degrades it (the
    // default threshold of 3 would have left it ready).
    let r = server
        .call_tool_as(
            hangar_e2e::ADMIN_KEY,
            "fx__sleep",
            serde_json::json!({"ms": 3000}),
        )
        .await;
    assert!(r["error"].is_object(), "{r}");
    let degraded = server.wait_state("fx", "degraded").await;
    assert_eq!(degraded["consecutive_failures"], 1, "{degraded}");
}

#[tokio::test]
async fn start_stop_and_restart_say_what_they_did() {
    let server = hangar_e2e::Server::start(&hangar_e2e::fixture_config("fx", "")).await;
    let post = |path: &'static str| server.send(reqwest::Method::POST, path, None);
    let (s, v) = post("/providers/fx/start").await;
    assert_eq!(
        (s, &v["started"], &v["state"]),
        (200, &serde_json::json!(true), &serde_json::json!("ready")),
        "{v}"
    );
    let (_, v) = post("/providers/fx/start").await;
    assert_eq!(v["started"], false, "already running: {v}");
    let pid = v["pid"].clone();
    let (s, v) = post("/providers/fx/restart").await;
    assert_eq!(
        (s, &v["started"], &v["state"]),
        (200, &serde_json::json!(true), &serde_json::json!("ready")),
        "{v}"
    );
    assert_ne!(v["pid"], pid, "a new process: {v}");
    let (_, v) = post("/providers/fx/stop").await;
    assert_eq!(
        (&v["stopped"], &v["state"]),
        (&serde_json::json!(true), &serde_json::json!("cold")),
        "{v}"
    );
    let (_, v) = post("/providers/fx/stop").await;
    assert_eq!(v["stopped"], false, "not running: {v}");
    // The CLI restarts too.
    let out = server.cli(&["providers", "restart", "fx", "--output", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "ready", "{v}");
}

#[tokio::test]
async fn aborting_a_providers_calls_cancels_them_and_keeps_it_running() {
    let server = hangar_e2e::Server::start(&hangar_e2e::fixture_config("fx", "")).await;
    let url = server.at("/mcp");
    let body = serde_json::json!({"jsonrpc": "2.0", "id": "long-1", "method": "tools/call", "params": {
        "name": "fx__sleep", "arguments": {"ms": 60000},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "abort-e2e", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    }});
    let call = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(hangar_e2e::ADMIN_KEY)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", "fx__sleep")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let mut running = false;
    for _ in 0..200 {
        let (_, v) = server.get_json("/providers/fx").await;
        if v["in_flight"] == 1 {
            running = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(running, "the call never showed as in flight");
    // Naming another call aborts nothing.
    let (s, v) = server
        .send(
            Method::POST,
            "/providers/fx/abort",
            Some(serde_json::json!({"request_id": "other"})),
        )
        .await;
    assert_eq!((s, &v["aborted"]), (200, &serde_json::json!([])), "{v}");
    let (s, v) = server.send(Method::POST, "/providers/fx/abort", None).await;
    assert_eq!(
        (s, &v["aborted"]),
        (200, &serde_json::json!(["long-1"])),
        "{v}"
    );
    let reply = tokio::time::timeout(std::time::Duration::from_secs(20), call)
        .await
        .expect("the aborted call did not return")
        .unwrap();
    assert!(reply.contains("\"error\""), "{reply}");
    assert_eq!(
        server
            .call_text("fx__echo", serde_json::json!({"text": "ok"}))
            .await,
        "ok"
    );
    let (_, v) = server.get_json("/providers/fx").await;
    assert_eq!(v["state"], "ready", "{v}");
}
