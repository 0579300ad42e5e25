//! Regression tests for the holes found by attacking the running server as
//! an outsider, a low-privilege insider and an operator: each test repeats
//! the attack against the real `hangar-server` and checks it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hangar_e2e::mcp_client::{call_params, connect_as, legacy, modern, text};
use hangar_e2e::{ADMIN_KEY, Server, bin, fixture_config, process_alive};
use reqwest::Method;
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::{Value, json};

/// Everything `path` reads as bytes, or nothing.
fn read_all(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

// ---- 1. config reload reads only the config file ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reload_reads_only_the_config_file_or_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("configs");
    std::fs::create_dir(&configs).unwrap();
    // A regular config beside the start one, a key-like scalar, a FIFO.
    std::fs::write(
        configs.join("second.yaml"),
        fixture_config("fx2", "").as_bytes(),
    )
    .unwrap();
    std::fs::write(
        configs.join("leak.yaml"),
        "hgr_0123456789abcdef_not_a_config\n",
    )
    .unwrap();
    nix::unistd::mkfifo(&configs.join("fifo.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let configs_arg = configs.display().to_string();
    let server =
        Server::start_with(&fixture_config("fx", ""), &["--config-dir", &configs_arg]).await;
    let operator = server.key_for("ops", "operator").await;
    let reload = |path: String| {
        let server = &server;
        let operator = operator.clone();
        async move {
            server
                .call_as(
                    &operator,
                    Method::POST,
                    "/config/reload",
                    Some(json!({ "config_path": path })),
                )
                .await
        }
    };
    let data = server.data_dir.display().to_string();
    for path in [
        format!("{data}/admin.key"),
        format!("{data}/master.key"),
        format!("{data}/hangar.db"),
        "/etc/passwd".to_owned(),
        "/dev/zero".to_owned(),
        "/proc/self/fd/0".to_owned(),
        "/proc/self/environ".to_owned(),
        format!("{configs_arg}/../configs/../../etc/passwd"),
        "missing.yaml".to_owned(),
    ] {
        let (status, _, v) = reload(path.clone()).await;
        assert_eq!(status, 403, "{path}: {v}");
        assert_eq!(v["error"], "ConfigPathNotAllowed", "{v}");
        assert!(!v.to_string().contains("root:"), "{v}");
    }
    // A FIFO in the directory is refused at once instead of pinning a thread.
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let (status, _, v) = reload("fifo.yaml".to_owned()).await;
        assert_eq!(status, 422, "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("not a regular file"),
            "{v}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    // A file that is not a config: the error names no value found in it.
    let (status, _, v) = reload("leak.yaml".to_owned()).await;
    assert_eq!(status, 422, "{v}");
    assert!(!v.to_string().contains("hgr_0123456789abcdef"), "{v}");
    // The server still works, and a real config of the directory applies.
    let (status, _, v) = reload(format!("{configs_arg}/second.yaml")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["added"], json!(["fx2"]), "{v}");
    let (status, _) = server.get_json("/providers/fx2").await;
    assert_eq!(status, 200);
}

#[test]
fn a_config_dir_holding_the_data_dir_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(bin("hangar-server"))
        .arg("--config-dir")
        .arg(dir.path())
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("HANGAR_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds the data directory"), "{err}");
}

// ---- 2. defining what runs is its own permission ----

fn fixture_entry(name: &str, inputs: Value) -> Value {
    json!({
        "name": name,
        "description": "the fixture",
        "command": [bin("hangar-fixture").display().to_string()],
        "env": {"GREETING": "from-entry"},
        "inputs": inputs,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defining_what_runs_needs_providers_define() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let operator = server.key_for("ops", "operator").await;
    let fixture = bin("hangar-fixture").display().to_string();
    // Create a provider, change its env, add a catalog entry: code execution.
    let (status, _, v) = server
        .call_as(
            &operator,
            Method::POST,
            "/providers",
            Some(json!({"provider_id": "evil", "command": [fixture]})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("providers:define"));
    let (status, _, v) = server
        .call_as(
            &operator,
            Method::PUT,
            "/providers/fx",
            Some(json!({"env": {"LD_PRELOAD": "/tmp/x.so"}})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    let (status, _, v) = server
        .call_as(
            &operator,
            Method::POST,
            "/catalog",
            Some(fixture_entry("mine", json!([]))),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    // Nor through any other field that decides what runs; policies are auth:write's.
    for body in [
        json!({"command": ["/bin/sh", "-c", "id"]}),
        json!({"mode": "docker", "image": "alpine", "command": []}),
        json!({"scope": "other"}),
        json!({"policies": [{"tool": "echo", "role_id": "developer", "effect": "allow"}]}),
    ] {
        let (status, _, v) = server
            .call_as(&operator, Method::PUT, "/providers/fx", Some(body.clone()))
            .await;
        assert_eq!(status, 403, "{body}: {v}");
    }
    // Lifecycle settings stay the operator's.
    let (status, _, v) = server
        .call_as(
            &operator,
            Method::PUT,
            "/providers/fx",
            Some(json!({"idle_ttl_s": 60, "call_timeout_s": 30, "description": "ops"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    // The admin adds an entry with one declared input.
    let (status, v) = server
        .send(
            Method::POST,
            "/catalog",
            Some(fixture_entry(
                "fixture",
                json!([{"name": "GREETING", "description": "what to say"}]),
            )),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    // Env values are not shown to catalog readers.
    let viewer = server.key_for("eve", "viewer").await;
    let (status, _, v) = server
        .call_as(&viewer, Method::GET, "/catalog/fixture", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["env"], json!({"GREETING": "<redacted>"}), "{v}");
    assert!(!v.to_string().contains("from-entry"), "{v}");

    // Deploy-time env is limited to the declared inputs.
    for name in ["NODE_OPTIONS", "LD_PRELOAD", "PATH", "PYTHONPATH"] {
        let (status, _, v) = server
            .call_as(
                &operator,
                Method::POST,
                "/catalog/fixture/deploy",
                Some(json!({"provider_id": "d1", "env": {name: "--import=data:x"}})),
            )
            .await;
        assert_eq!(status, 422, "{name}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains(&format!("env.{name}"))
        );
    }
    // A secret reference needs `secrets:use`, which operators do not hold.
    server
        .send(
            Method::PUT,
            "/secrets/UNRELATED",
            Some(json!({"value": "s3cr3t-unrelated-value"})),
        )
        .await;
    let (status, _, v) = server
        .call_as(
            &operator,
            Method::POST,
            "/catalog/fixture/deploy",
            Some(json!({"provider_id": "d2", "env": {"GREETING": "${secret:UNRELATED}"}})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("secrets:use"),
        "{v}"
    );
    // A plain input value deploys; the provider runs with it.
    let (status, _, v) = server
        .call_as(
            &operator,
            Method::POST,
            "/catalog/fixture/deploy",
            Some(json!({"provider_id": "d3", "env": {"GREETING": "hi"}})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
}

// ---- 3. tokens die with their key, expire, are capped ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_die_with_their_key_and_are_bounded() {
    let mut server = Server::start(&format!(
        "{}server:\n  max_tokens_per_principal: 3\n",
        fixture_config("fx", "")
    ))
    .await;
    let dev = server.key_for("dana", "developer").await;
    let (status, _, token) = server
        .call_as(&dev, Method::POST, "/tokens", Some(json!({"name": "t1"})))
        .await;
    assert_eq!(status, 201, "{token}");
    // Tokens always expire (30 days by default).
    assert!(token["expires_at"].is_string(), "{token}");
    let raw = token["raw_token"].as_str().unwrap().to_owned();
    // A token cannot mint tokens.
    let (status, _, v) = server
        .call_as(&raw, Method::POST, "/tokens", Some(json!({"name": "t2"})))
        .await;
    assert_eq!(status, 403, "{v}");
    // Beyond the longest life: refused.
    let (status, _, v) = server
        .call_as(
            &dev,
            Method::POST,
            "/tokens",
            Some(json!({"name": "long", "expires_at": "2999-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    // At most 3 working tokens.
    for i in 2..=3 {
        let (status, _, v) = server
            .call_as(
                &dev,
                Method::POST,
                "/tokens",
                Some(json!({"name": format!("t{i}")})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
    let (status, _, v) = server
        .call_as(&dev, Method::POST, "/tokens", Some(json!({"name": "t4"})))
        .await;
    assert_eq!(status, 409, "{v}");
    // Viewers hold no `tokens:create`.
    let viewer = server.key_for("vic", "viewer").await;
    let (status, _, v) = server
        .call_as(&viewer, Method::POST, "/tokens", Some(json!({"name": "v"})))
        .await;
    assert_eq!(status, 403, "{v}");

    // Revoking the key revokes its tokens, also across a restart.
    let (status, _, v) = server.call_as(&raw, Method::GET, "/tokens", None).await;
    assert_eq!(status, 200, "{v}");
    let (_, keys) = server.get_json("/auth/keys/dana").await;
    let key_id = keys["keys"][0]["key_id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .send(Method::DELETE, &format!("/auth/keys/{key_id}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _, v) = server.call_as(&raw, Method::GET, "/tokens", None).await;
    assert_eq!(status, 401, "{v}");
    server.kill_and_restart().await;
    let (status, _, _) = server.call_as(&raw, Method::GET, "/tokens", None).await;
    assert_eq!(status, 401);
}

// ---- 4. a group keeps its members' policies ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_keeps_its_members_policies() {
    let config = format!(
        "{}groups:\n  pool:\n    members:\n      - {{ provider: fx }}\n",
        fixture_config("fx", "")
    );
    let server = Server::start(&config).await;
    let (status, v) = server
        .send(
            Method::PUT,
            "/auth/policies/fx/echo",
            Some(json!({"role_id": "developer", "effect": "deny"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let dev = server.key_for("dana", "developer").await;
    for mode in [legacy(), modern()] {
        let (client, _) = connect_as(&server, &dev, mode).await;
        let names: Vec<String> = client
            .peer()
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        assert!(names.contains(&"pool__add".to_owned()), "{names:?}");
        assert!(!names.contains(&"pool__echo".to_owned()), "{names:?}");
        let err = client
            .peer()
            .call_tool(call_params("pool__echo", json!({"text": "hi"})))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Unknown tool"), "{err}");
        let ok = client
            .peer()
            .call_tool(call_params("pool__add", json!({"a": 1, "b": 2})))
            .await
            .unwrap();
        assert_eq!(text(&ok), "3");
        client.cancel().await.unwrap();
    }
}

// ---- 5. the audit trail is append-only ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_cannot_be_compacted_and_retention_is_recorded() {
    let server = Server::start(&format!(
        "{}server:\n  audit_retention: 5\n  snapshot_every: 5\n",
        fixture_config("fx", "")
    ))
    .await;
    // Plenty of admin changes: retention prunes, the trail says so.
    for i in 0..30 {
        server
            .send(
                Method::PUT,
                "/providers/fx",
                Some(json!({"description": format!("d{i}")})),
            )
            .await;
    }
    for stream in ["audit", "approvals"] {
        let (status, v) = server
            .send(
                Method::POST,
                "/maintenance/compact",
                Some(json!({"stream_id": stream})),
            )
            .await;
        assert_eq!(status, 409, "{v}");
        assert_eq!(v["error"], "AppendOnlyStreamError", "{v}");
    }
    let mut pruned = Value::Null;
    for _ in 0..50 {
        let (_, v) = server
            .get_json("/observability/audit?event_type=AuditPruned")
            .await;
        if v["total"].as_u64().unwrap_or(0) > 0 {
            pruned = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = &pruned["records"][0];
    assert_eq!(record["event_type"], "AuditPruned", "{pruned}");
    assert!(record["deleted"].as_u64().unwrap() > 0, "{record}");
    assert_eq!(record["retention"], 5);
}

// ---- 6. failed-auth backoff never locks out a valid key ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_never_locks_out_a_valid_key_nor_is_reset_by_one() {
    let server = Server::start(&format!(
        "{}server:\n  auth_backoff: {{ free_failures: 2, base_delay_s: 30, max_delay_s: 60 }}\n",
        fixture_config("fx", "")
    ))
    .await;
    let bad = "hgr_wrong_0000000000000000000000000000000000";
    let status = |key: &'static str| {
        let server = &server;
        async move { server.call_as(key, Method::GET, "/providers", None).await.0 }
    };
    for _ in 0..3 {
        status(bad).await;
    }
    assert_eq!(status(bad).await, 429);
    // The valid key works while the address is blocked...
    assert_eq!(status(ADMIN_KEY).await, 200);
    // ...and does not clear the block for the guesses that follow.
    assert_eq!(status(bad).await, 429);
    assert_eq!(status(ADMIN_KEY).await, 200);
}

// ---- 7. rate limits are per principal ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_per_principal_across_tokens() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let (status, v) = server
        .send(
            Method::POST,
            "/auth/roles",
            Some(json!({
                "id": "slow",
                "permissions": ["providers:read", "tokens:create"],
                "rate_limit": {"requests": 5, "per_seconds": 3600, "burst": 5},
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let key = server.key_for("sam", "slow").await;
    let mut keys = vec![key.clone()];
    for i in 0..3 {
        let (status, _, v) = server
            .call_as(
                &key,
                Method::POST,
                "/tokens",
                Some(json!({"name": format!("t{i}")})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        keys.push(v["raw_token"].as_str().unwrap().to_owned());
    }
    // The 3 mints used 3 of the 5; 2 more pass, whichever key or token.
    let mut passed = 0;
    for round in 0..4 {
        for k in &keys {
            let (status, _, _) = server.call_as(k, Method::GET, "/providers", None).await;
            if status == 200 {
                passed += 1;
            } else {
                assert_eq!(status, 429, "round {round}");
            }
        }
    }
    assert_eq!(passed, 2);
}

// ---- 9. resources and prompts obey policies and are audited ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_and_prompts_obey_policies_and_are_audited() {
    let server = Server::start(&fixture_config("fx", "")).await;
    for (path, body) in [
        (
            "/auth/policies/fx/test%3A%2F%2Fstatic-%2A",
            json!({"role_id": "developer", "effect": "deny", "kind": "resource"}),
        ),
        (
            "/auth/policies/fx/test_simple_prompt",
            json!({"role_id": "developer", "effect": "deny", "kind": "prompt"}),
        ),
    ] {
        let (status, v) = server.send(Method::PUT, path, Some(body)).await;
        assert_eq!(status, 201, "{v}");
    }
    let dev = server.key_for("dana", "developer").await;
    for mode in [legacy(), modern()] {
        let (client, _) = connect_as(&server, &dev, mode).await;
        let peer = client.peer();
        let uris: Vec<String> = peer
            .list_all_resources()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.uri.clone())
            .collect();
        assert!(uris.is_empty(), "{uris:?}");
        let err = peer
            .read_resource(ReadResourceRequestParams::new("test://static-text"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
        // The template stays readable.
        let ok = peer
            .read_resource(ReadResourceRequestParams::new("test://template/7/data"))
            .await
            .unwrap();
        assert!(!ok.contents.is_empty());
        let prompts: Vec<String> = peer
            .list_all_prompts()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert!(
            !prompts.iter().any(|p| p.ends_with("test_simple_prompt")),
            "{prompts:?}"
        );
        assert!(
            prompts
                .iter()
                .any(|p| p.ends_with("test_prompt_with_arguments")),
            "{prompts:?}"
        );
        let err = peer
            .get_prompt(GetPromptRequestParams::new("fx__test_simple_prompt"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Unknown prompt"), "{err}");
        client.cancel().await.unwrap();
    }
    // The admin reads both; every read and get is in the audit trail.
    let (admin, _) = connect_as(&server, ADMIN_KEY, modern()).await;
    admin
        .peer()
        .read_resource(ReadResourceRequestParams::new("test://static-text"))
        .await
        .unwrap();
    admin
        .peer()
        .get_prompt(GetPromptRequestParams::new("fx__test_simple_prompt"))
        .await
        .unwrap();
    admin.cancel().await.unwrap();
    let (_, reads) = server
        .get_json("/observability/audit?event_type=ResourceReadAudited")
        .await;
    let verdicts: Vec<(&str, &str, &str)> = reads["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["principal"].as_str().unwrap(),
                r["uri"].as_str().unwrap(),
                r["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        verdicts.contains(&("dana", "test://static-text", "deny")),
        "{verdicts:?}"
    );
    assert!(
        verdicts.contains(&("admin", "test://static-text", "allow")),
        "{verdicts:?}"
    );
    let (_, gets) = server
        .get_json("/observability/audit?event_type=PromptGetAudited")
        .await;
    assert!(gets["total"].as_u64().unwrap() >= 3, "{gets}");
}

// ---- 10. nobody approves their own held call ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_approves_their_own_held_call() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let dev = server.key_for("dana", "developer").await;
    // A developer who could also answer approvals.
    server
        .send(
            Method::POST,
            "/auth/roles",
            Some(json!({"id": "reviewer", "permissions": ["approvals:read", "approvals:write"]})),
        )
        .await;
    server
        .send(
            Method::POST,
            "/auth/principals/dana/roles",
            Some(json!({"role_id": "reviewer"})),
        )
        .await;
    let operator = server.key_for("ops", "operator").await;
    server
        .send(
            Method::PUT,
            "/auth/policies/fx/add",
            Some(json!({"principal_id": "dana", "effect": "ask"})),
        )
        .await;
    let (client, _) = connect_as(&server, &dev, modern()).await;
    let peer = client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(call_params("fx__add", json!({"a": 1, "b": 1})))
            .await
    });
    let mut id = String::new();
    for _ in 0..100 {
        let (_, v) = server.get_json("/permissions").await;
        if let Some(p) = v["permissions"].as_array().and_then(|a| a.first()) {
            id = p["id"].as_str().unwrap().to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!id.is_empty());
    let path = format!("/permissions/{id}/reply");
    for reply in ["once", "always"] {
        let (status, _, v) = server
            .call_as(&dev, Method::POST, &path, Some(json!({"reply": reply})))
            .await;
        assert_eq!(status, 403, "{reply}: {v}");
    }
    // `always` stores a policy: an operator (no auth:write) may not.
    let (status, _, v) = server
        .call_as(
            &operator,
            Method::POST,
            &path,
            Some(json!({"reply": "always"})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    let (status, _, v) = server
        .call_as(
            &operator,
            Method::POST,
            &path,
            Some(json!({"reply": "once"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&call.await.unwrap().unwrap()), "2");
    client.cancel().await.unwrap();
}

// ---- 11. clients that never read cannot pin memory or slots ----

/// Sends `request` on a raw connection and never reads from it.
fn stalled(server: &Server, request: &str) -> std::net::TcpStream {
    let addr = server.url.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    tcp
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off() {
    let server = Server::start(&format!(
        "{}server:\n  write_timeout_s: 1\n  max_body_bytes: 8388608\n",
        fixture_config("fx", "")
    ))
    .await;
    // Each asks for a ~3 MB reply and never reads it.
    let big = "x".repeat(3 * 1024 * 1024);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "fx__echo", "arguments": {"text": big}},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}})
    .to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let pid = server.pid().unwrap();
    let before = rss_kib(pid);
    let mut conns: Vec<std::net::TcpStream> = (0..20).map(|_| stalled(&server, &request)).collect();
    // The server closes each one once its reply stalls for write_timeout_s:
    // what the socket holds arrives, then the end, never the whole reply.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for tcp in &mut conns {
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        assert!(
            got < big.len(),
            "read {got} bytes: the whole reply was kept"
        );
    }
    drop(conns);
    // The server answers as before, and gives the memory back.
    let (status, _) = server.get_json("/providers").await;
    assert_eq!(status, 200);
    let mut after = u64::MAX;
    for _ in 0..60 {
        after = rss_kib(pid);
        if after <= before + 48 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        after <= before + 48 * 1024,
        "RSS {before} KiB before, {after} KiB after the clients left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_slot() {
    let server = Server::start(&format!(
        "{}server:\n  max_connections: 2\n",
        fixture_config("fx", "")
    ))
    .await;
    // Two connections that send nothing hold both slots.
    let addr = server.url.trim_start_matches("http://").to_owned();
    let a = std::net::TcpStream::connect(&addr).unwrap();
    let b = std::net::TcpStream::connect(&addr).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let r = client.get(server.at("/health")).send().await;
    assert!(r.is_err(), "a third connection was served: {r:?}");
    drop(a);
    drop(b);
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = client.get(server.at("/health")).send().await {
            ok = r.status().is_success();
            break;
        }
    }
    assert!(ok, "the slot was not given back");
}

// ---- 12. the data directory is private; literal env values are encrypted ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_is_private_and_env_values_are_encrypted_at_rest() {
    let marker = "literal-env-value-7c1f9b2e4d";
    let mut server = Server::start(&fixture_config("fx", "")).await;
    let fixture = bin("hangar-fixture").display().to_string();
    let (status, v) = server
        .send(
            Method::POST,
            "/providers",
            Some(json!({"provider_id": "api", "command": [fixture], "env": {"TOKEN": marker}})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = server.send(Method::POST, "/config/backup", None).await;
    assert_eq!(status, 200, "{v}");
    let backup = std::path::PathBuf::from(v["backup_path"].as_str().unwrap());
    server.kill_and_restart().await;
    // The provider came back with its value...
    let (client, _) = connect_as(&server, ADMIN_KEY, modern()).await;
    let r = client
        .peer()
        .call_tool(call_params("api__env", json!({"name": "TOKEN"})))
        .await
        .unwrap();
    assert_eq!(text(&r), marker);
    client.cancel().await.unwrap();
    // ...which no database file holds in the clear.
    let data = &server.data_dir;
    for name in ["hangar.db", "hangar.db-wal", "hangar.db-shm"] {
        assert!(
            !contains(&read_all(&data.join(name)), marker),
            "{name} holds the value in the clear"
        );
    }
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data), 0o700);
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{}", path.display());
    }
    assert_eq!(mode(&backup), 0o600);
}

// ---- 13. the smaller holes ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_sessions_belong_to_the_principal_that_opened_them() {
    let server = Server::start_logged(&fixture_config("fx", "")).await;
    let dev = server.key_for("dana", "developer").await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}});
    let r = server.mcp_post(init.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let post = |key: &str, body: Value| {
        reqwest::Client::new()
            .post(server.at("/mcp"))
            .bearer_auth(key)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("Mcp-Session-Id", &session)
            .header("MCP-Protocol-Version", "2025-06-18")
            .body(body.to_string())
            .send()
    };
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let r = post(&dev, list.clone()).await.unwrap();
    assert_eq!(r.status(), 404, "another principal used the session");
    let r = reqwest::Client::new()
        .delete(server.at("/mcp"))
        .bearer_auth(&dev)
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "another principal deleted the session");
    let notified = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert!(
        post(ADMIN_KEY, notified)
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let r = post(ADMIN_KEY, list).await.unwrap();
    assert_eq!(r.status(), 200, "the owner lost the session");
    // The id is a credential: never in the log (here at debug).
    assert!(!server.log_text().contains(&session));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_key_from_the_environment_must_be_strong_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = |key: &str| {
        std::process::Command::new(bin("hangar-server"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg("127.0.0.1:1")
            .env("HANGAR_ADMIN_KEY", key)
            .output()
            .unwrap()
    };
    for weak in ["a", "hgr_short", &"ab".repeat(20)] {
        let out = start(weak);
        assert_eq!(out.status.code(), Some(64), "{weak} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("too weak"));
    }
    // A changed value replaces the old key (which stops working).
    let mut server = Server::start(&fixture_config("fx", "")).await;
    let (status, _) = server.get_json("/providers").await;
    assert_eq!(status, 200);
    let new_key = "hgr_rotated_admin_key_9f8e7d6c5b4a39281706";
    server.set_admin_key_env(new_key);
    server.restart().await;
    let (status, _, _) = server
        .call_as(new_key, Method::GET, "/providers", None)
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = server
        .call_as(ADMIN_KEY, Method::GET, "/providers", None)
        .await;
    assert_eq!(status, 401, "the previous HANGAR_ADMIN_KEY still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_flood_is_throttled_and_counted() {
    let script = format!(
        "yes flooding-stderr-line >&2 & exec {}",
        bin("hangar-fixture").display()
    );
    let config = format!(
        "providers:\n  flood:\n    command: [\"sh\", \"-c\", {script:?}]\nserver:\n  log_lines_per_s: 50\n"
    );
    let server = Server::start(&config).await;
    let (status, v) = server
        .send(Method::POST, "/providers/flood/start", None)
        .await;
    assert_eq!(status, 200, "{v}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, logs) = server.get_json("/providers/flood/logs?lines=1000").await;
    assert!(
        logs["dropped"].as_u64().unwrap() > 1000,
        "{}",
        logs["dropped"]
    );
    let kept = logs["logs"].as_array().unwrap();
    assert!(kept.len() <= 1000);
    // Tools still answer.
    let (client, _) = connect_as(&server, ADMIN_KEY, modern()).await;
    let r = client
        .peer()
        .call_tool(call_params("flood__add", json!({"a": 2, "b": 2})))
        .await
        .unwrap();
    assert_eq!(text(&r), "4");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_provider_named_like_a_config_group_does_not_stop_the_server() {
    let mut server = Server::start(&fixture_config("fx", "")).await;
    let fixture = bin("hangar-fixture").display().to_string();
    let (status, v) = server
        .send(
            Method::POST,
            "/providers",
            Some(json!({"provider_id": "pool", "command": [fixture]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    std::fs::write(
        server.config_path(),
        format!(
            "{}groups:\n  pool:\n    members:\n      - {{ provider: fx }}\n",
            fixture_config("fx", "")
        ),
    )
    .unwrap();
    server.restart().await;
    let (status, v) = server.get_json("/providers/pool").await;
    assert_eq!(status, 200, "{v}");
    // And the collision is refused when it is made over the API.
    let (status, v) = server
        .send(
            Method::POST,
            "/groups",
            Some(json!({"group_id": "pool", "members": [{"provider": "fx"}]})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_provider_does_not_start_it() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let viewer = server.key_for("vic", "viewer").await;
    let (status, _, v) = server
        .call_as(&viewer, Method::GET, "/providers/fx/tools", None)
        .await;
    assert_eq!(status, 409, "{v}");
    let (_, p) = server.get_json("/providers/fx").await;
    assert_eq!(p["state"], "cold", "{p}");
    // With providers:start it lists.
    let (status, v) = server.get_json("/providers/fx/tools").await;
    assert_eq!(status, 200, "{v}");
}

/// Pids of live processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| contains(&c, needle))
                && process_alive(*pid)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchildren_left_by_a_killed_server_are_swept_at_the_next_start() {
    // `sleep` is a grandchild: sh forks it, then execs the fixture.
    let script = format!("sleep 987654 & exec {}", bin("hangar-fixture").display());
    let config = format!("providers:\n  gc:\n    command: [\"sh\", \"-c\", {script:?}]\n");
    let mut server = Server::start(&config).await;
    let (status, v) = server.send(Method::POST, "/providers/gc/start", None).await;
    assert_eq!(status, 200, "{v}");
    let sleeper = processes_with("987654");
    assert_eq!(sleeper.len(), 1);
    server.kill_and_restart().await;
    let mut gone = false;
    for _ in 0..100 {
        if !process_alive(sleeper[0]) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the grandchild {} survived", sleeper[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_text_cannot_forge_log_lines() {
    let server = Server::start_logged(&fixture_config("fx", "")).await;
    let (status, v) = server
        .send(
            Method::POST,
            "/auth/keys",
            Some(json!({"principal_id": "p", "name": "k",
                        "created_by": "me\nFORGED-LINE admin logged in"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let key_id = v["key_id"].as_str().unwrap();
    server
        .send(
            Method::DELETE,
            &format!("/auth/keys/{key_id}"),
            Some(json!({"reason": "x\r\nFORGED-LINE too"})),
        )
        .await;
    let log = server.log_text();
    assert!(
        log.contains("FORGED-LINE"),
        "the fields were not logged at all"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED-LINE")),
        "a forged line: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_without_a_key() {
    let server = Server::start(&format!(
        "{}server:\n  allowed_origins: [\"https://app.example.com\"]\n",
        fixture_config("fx", "")
    ))
    .await;
    let preflight = |origin: &str| {
        reqwest::Client::new()
            .request(Method::OPTIONS, server.at("/mcp"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, mcp-session-id",
            )
            .send()
    };
    let r = preflight("https://app.example.com").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("mcp-session-id"));
    let r = preflight("https://evil.example").await.unwrap();
    assert_eq!(r.status(), 403);
    // The real request carries the header browsers need to read the answer.
    let r = reqwest::Client::new()
        .get(server.at("/api/providers"))
        .bearer_auth(ADMIN_KEY)
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}
