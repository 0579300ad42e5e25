//! REST, auth, Origin, body limits, malformed input, bad config, persistence,
//! and the `hangar` CLI, against the real server.

use std::process::Command;

use hangar_e2e::{ADMIN_KEY, Server, bin, fixture_config};
use reqwest::Method;
use serde_json::{Value, json};

fn assert_error_shape(v: &Value, status: u16) {
    assert_eq!(v["status_code"], status, "{v}");
    assert!(v["error"].is_string(), "{v}");
    assert!(v["message"].is_string(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_open_everything_else_needs_a_key() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let c = reqwest::Client::new();
    let h: Value = c
        .get(server.at("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["ok"], true);
    assert!(h["timestamp"].is_string());

    for (method, path) in [
        ("GET", "/api/providers"),
        ("POST", "/mcp"),
        ("GET", "/api/system"),
    ] {
        let r = c
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                server.at(path),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        assert_error_shape(&r.json().await.unwrap(), 401);
        let r = c
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                server.at(path),
            )
            .bearer_auth("hgr_wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} with a wrong key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_origin_is_403_and_localhost_is_fine() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let r = server
        .api(Method::GET, "/providers")
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_error_shape(&r.json().await.unwrap(), 403);
    let r = server
        .mcp_post("{}")
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = server
        .api(Method::GET, "/providers")
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_mcp_requests_are_4xx_never_5xx() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let bodies = [
        "{not json",
        "[]",
        r#"{"jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"nope"}"#,
        "",
    ];
    for body in bodies {
        let r = server.mcp_post(body).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            (400..500).contains(&status) || status == 200,
            "{body:?} -> {status} {text}"
        );
        if status == 200 {
            assert!(text.contains("\"error\""), "{body:?} -> {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let server = Server::start(&fixture_config("fx", "server:\n  max_body_bytes: 4096\n")).await;
    let big = "x".repeat(10_000);
    let r = server
        .api(Method::POST, "/providers")
        .header("Content-Type", "application/json")
        .body(json!({"provider_id": "p", "mode": "subprocess", "command": [big]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_error_shape(&r.json().await.unwrap(), 413);
    let r = server
        .mcp_post(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
            "y".repeat(10_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_lifecycle_over_rest_persists_across_restarts() {
    let mut server = Server::start(&fixture_config("fx", "")).await;
    let fixture = bin("hangar-fixture").display().to_string();

    let (status, list) = server.get_json("/providers").await;
    assert_eq!(status, 200);
    assert_eq!(list["providers"][0]["provider"], "fx");
    assert_eq!(list["providers"][0]["state"], "cold");

    let r = server
        .api(Method::POST, "/providers")
        .json(&json!({"provider_id": "made", "mode": "subprocess", "command": [fixture], "description": "via REST"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"provider_id": "made", "created": true})
    );

    let r = server
        .api(Method::POST, "/providers")
        .json(&json!({"provider_id": "made", "mode": "subprocess", "command": [fixture]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    for bad in [
        json!({"provider_id": "bad id!", "mode": "subprocess", "command": ["x"]}),
        json!({"provider_id": "nocmd", "mode": "subprocess", "command": []}),
        json!({"provider_id": "x", "mode": "subprocess", "command": ["x"], "bogus": 1}),
        json!({"mode": "subprocess"}),
    ] {
        let r = server
            .api(Method::POST, "/providers")
            .json(&bad)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(status == 422 || status == 400, "{bad} -> {status}");
        assert_error_shape(&r.json().await.unwrap(), status);
    }

    let r = server
        .api(Method::POST, "/providers/made/start")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "ready");
    assert_eq!(v["tools_count"], 34);

    let (_, tools) = server.get_json("/providers/made/tools").await;
    assert!(
        tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "add" && t["parameters"].is_object())
    );
    let (_, health) = server.get_json("/providers/made/health").await;
    assert_eq!(health["state"], "ready");
    let (_, detail) = server.get_json("/providers/made").await;
    assert_eq!(detail["description"], "via REST");
    assert!(detail["tools"].as_array().unwrap().len() == 34);

    let (_, logs) = server.get_json("/providers/made/logs?lines=5").await;
    assert!(logs["count"].as_u64().unwrap() >= 1);
    assert_eq!(logs["logs"][0]["stream"], "stderr");
    for bad in ["0", "1001", "abc"] {
        let (status, v) = server
            .get_json(&format!("/providers/made/logs?lines={bad}"))
            .await;
        assert_eq!(status, 422);
        assert!(v["message"].as_str().unwrap().contains("lines"), "{v}");
    }

    // Update: env applies at the next start (restart_required while running).
    let r = server
        .api(Method::PUT, "/providers/made")
        .json(&json!({"description": "updated", "env": {"GREETING": "changed"}, "idle_ttl_s": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"provider_id": "made", "updated": true, "restart_required": true, "persisted": true})
    );
    for (bad, status) in [
        (json!({"env": {"A=B": "x"}}), 422),
        (json!({"idle_ttl_s": -1}), 422),
        (json!({"bogus": 1}), 422),
    ] {
        let r = server
            .api(Method::PUT, "/providers/made")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{bad}");
        assert_error_shape(&r.json().await.unwrap(), status);
    }
    let r = server
        .api(Method::PUT, "/providers/nope")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (_, detail) = server.get_json("/providers/made").await;
    assert_eq!(detail["description"], "updated");
    assert_eq!(detail["configuration"]["idle_ttl_s"], 600);
    assert_eq!(detail["configuration"]["env"]["GREETING"], "<redacted>");

    let r = server
        .api(Method::POST, "/providers/made/stop")
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "cold");
    assert_eq!(v["reason"], "test");

    let (status, v) = server.get_json("/providers/nope").await;
    assert_eq!(status, 404);
    assert_error_shape(&v, 404);
    let (status, v) = server.get_json("/providers?state=sideways").await;
    assert_eq!(status, 422);
    assert_error_shape(&v, 422);
    let (status, _) = server.get_json("/no/such/route").await;
    assert_eq!(status, 404);

    // Created over REST: survives a restart and a kill -9, updates included.
    server.restart().await;
    let (status, v) = server.get_json("/providers/made").await;
    assert_eq!(status, 200);
    assert_eq!(v["description"], "updated");
    let out = Command::new(bin("hangar"))
        .args([
            "--url",
            &server.url,
            "--key",
            ADMIN_KEY,
            "call",
            "made__env",
            "name=GREETING",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "changed",
        "{out:?}"
    );
    server.kill_and_restart().await;
    let (status, v) = server.get_json("/providers/made").await;
    assert_eq!(status, 200, "{v}");

    let r = server
        .api(Method::DELETE, "/providers/made")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"provider_id": "made", "deleted": true})
    );
    server.restart().await;
    let (status, _) = server.get_json("/providers/made").await;
    assert_eq!(status, 404);

    let (_, sys) = server.get_json("/system").await;
    assert_eq!(sys["system"]["total_providers"], 1);
    assert!(sys["system"]["version"].is_string());
}

#[test]
fn bad_config_exits_64_naming_the_field() {
    let cases = [
        (
            "providers:\n  x:\n    command: [\"a\"]\n    shell: true\n",
            "shell",
        ),
        (
            "providers:\n  x:\n    mode: subprocess\n    command: []\n",
            "command",
        ),
        ("providerz: {}\n", "providerz"),
        ("providers:\n  x:\n    mode: warp\n", "mode"),
    ];
    for (yaml, field) in cases {
        let (code, err) = hangar_e2e::refused_config(yaml);
        assert_eq!(code, Some(64), "{yaml}");
        assert!(err.contains(field), "{yaml} -> {err}");
    }
    let out = Command::new(bin("hangar-server"))
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn generated_admin_key_is_written_0600() {
    use std::os::unix::fs::PermissionsExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(bin("hangar-server"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env_remove("HANGAR_ADMIN_KEY")
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let key_path = dir.path().join("admin.key");
        let mut ok = false;
        for _ in 0..200 {
            if reqwest::get(format!("http://127.0.0.1:{port}/health"))
                .await
                .is_ok()
            {
                ok = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(ok);
        let key = std::fs::read_to_string(&key_path).unwrap();
        assert!(key.trim().starts_with("hgr_"));
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/providers"))
            .bearer_auth(key.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let _ = child.kill();
        let _ = child.wait();
    });
}

fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    server.cli(args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_drives_the_server() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let out = cli(&server, &["call", "fx__add", "a=2", "b=3"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");

    let out = cli(&server, &["--output", "json", "providers", "list"]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["providers"][0]["provider"], "fx");

    let out = cli(&server, &["tools"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("fx__echo"));

    let out = cli(&server, &["providers", "logs", "fx", "--lines", "5"]);
    assert!(out.status.success(), "{out:?}");

    let out = cli(&server, &["providers", "get", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not found") && err.lines().count() == 1,
        "{err}"
    );

    let out = cli(&server, &["call", "fx__nope"]);
    assert!(!out.status.success());

    let out = cli(&server, &["call", "fx__test_error_handling"]);
    assert_eq!(out.status.code(), Some(1));

    let fixture = bin("hangar-fixture").display().to_string();
    let out = cli(&server, &["providers", "add", "extra", "--", &fixture]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(
        &server,
        &[
            "--output",
            "json",
            "providers",
            "update",
            "extra",
            "--description",
            "via CLI",
            "--env",
            "K=V",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["updated"], true);
    let out = cli(&server, &["providers", "update", "extra"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "nothing to update is a usage error"
    );
    let out = cli(&server, &["providers", "start", "extra"]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(&server, &["providers", "stop", "extra"]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(&server, &["providers", "remove", "extra"]);
    assert!(out.status.success(), "{out:?}");

    let out = Command::new(bin("hangar"))
        .args([
            "--url",
            "http://127.0.0.1:9",
            "--key",
            "hgr_x",
            "providers",
            "list",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_invocation_history_is_recorded_paged_and_bounded() {
    let server = Server::start(&fixture_config("fx", "server:\n  history_retention: 5\n")).await;
    let call = |args: &[&str]| {
        Command::new(bin("hangar"))
            .args(["--url", &server.url, "--key", ADMIN_KEY, "call"])
            .args(args)
            .output()
            .unwrap()
    };
    assert!(call(&["fx__add", "a=2", "b=3"]).status.success());
    assert_eq!(call(&["fx__test_error_handling"]).status.code(), Some(1));
    assert!(call(&["fx__echo", "text=secret-value"]).status.success());

    let (status, h) = server.get_json("/providers/fx/tools/history").await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["total"], 3, "{h}");
    let records = h["history"].as_array().unwrap();
    let tools: Vec<&str> = records
        .iter()
        .map(|r| r["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, vec!["add", "test_error_handling", "echo"]);
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["success", "tool_error", "success"]);
    assert!(records.iter().all(|r| r["principal"] == "admin"));
    assert!(records[2]["arguments_bytes"].as_u64().unwrap() > 0);
    assert!(
        !h.to_string().contains("secret-value"),
        "argument values are never stored"
    );

    // Paged by store position.
    let first = records[0]["position"].as_u64().unwrap();
    let (_, page) = server
        .get_json(&format!(
            "/providers/fx/tools/history?from_position={first}&limit=1"
        ))
        .await;
    assert_eq!(page["history"].as_array().unwrap().len(), 1);
    assert_eq!(page["history"][0]["tool"], "test_error_handling");
    for bad in ["limit=0", "limit=501", "from_position=-1", "limit=x"] {
        let (status, v) = server
            .get_json(&format!("/providers/fx/tools/history?{bad}"))
            .await;
        assert_eq!(status, 422, "{bad}");
        let name = bad.split('=').next().unwrap();
        assert!(v["message"].as_str().unwrap().contains(name), "{v}");
    }
    let (status, _) = server.get_json("/providers/nope/tools/history").await;
    assert_eq!(status, 404);

    // Bounded: retention 5 keeps the newest 5.
    for i in 0..6 {
        assert!(call(&["fx__echo", &format!("text=n{i}")]).status.success());
    }
    let (_, h) = server
        .get_json("/providers/fx/tools/history?limit=500")
        .await;
    assert_eq!(h["total"], 5, "{h}");
    assert_eq!(h["history"].as_array().unwrap().len(), 5);

    let out = Command::new(bin("hangar"))
        .args([
            "--url",
            &server.url,
            "--key",
            ADMIN_KEY,
            "providers",
            "history",
            "fx",
            "-n",
            "2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("POSITION"));
}
