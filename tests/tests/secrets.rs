//! Secrets over REST: stored encrypted, injected into a real provider's env
//! at start, re-injected by refresh, never shown anywhere.

use hangar_e2e::{Server, bin};
use reqwest::Method;
use serde_json::{Value, json};

const VALUE: &str = "s3cr3t-VALUE-7f1c9a";
const NEW_VALUE: &str = "rotated-VALUE-0b44e2";

async fn send(server: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    server.send(method, path, body).await
}

fn env_of(server: &Server, tool: &str) -> std::process::Output {
    server.cli(&["call", tool, "name=SECRET_THING"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_injected_refreshed_and_never_shown() {
    let fixture = bin("hangar-fixture");
    let config = format!(
        "providers:\n  fx:\n    command: [\"{f}\"]\n    env:\n      SECRET_THING: \"${{secret:API_TOKEN}}\"\n  fy:\n    command: [\"{f}\"]\n    env:\n      SECRET_THING: \"${{secret:NOPE}}\"\n",
        f = fixture.display()
    );
    let server = Server::start_logged(&config).await;

    let (status, v) = send(
        &server,
        Method::PUT,
        "/secrets/API_TOKEN",
        Some(json!({"value": VALUE})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["created"], true);
    assert_eq!(v["secret"]["name"], "API_TOKEN");
    let (status, v) = send(&server, Method::GET, "/secrets", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["secrets"][0]["name"], "API_TOKEN", "{v}");

    // The provider sees the value.
    let out = env_of(&server, "fx__env");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(VALUE),
        "{out:?}"
    );

    // A provider referencing a missing secret fails to start, naming it.
    let (status, v) = send(&server, Method::POST, "/providers/fy/start", None).await;
    assert!(status >= 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("secret 'NOPE' is not defined"),
        "{v}"
    );

    // Rotate and refresh: the running provider restarts with the new value.
    let (status, v) = send(
        &server,
        Method::PUT,
        "/secrets/API_TOKEN",
        Some(json!({"value": NEW_VALUE})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["created"], false);
    let (status, v) = send(&server, Method::POST, "/providers/fx/refresh", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["restarted"], true, "{v}");
    let out = env_of(&server, "fx__env");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(NEW_VALUE),
        "{out:?}"
    );
    let (status, _) = send(&server, Method::POST, "/providers/nope/refresh", None).await;
    assert_eq!(status, 404);

    // Never shown: API responses, config, export, logs, history, events.
    for path in [
        "/providers",
        "/providers/fx",
        "/providers/fx/logs",
        "/providers/fx/tools/history",
        "/config",
        "/config/diff",
        "/secrets",
        "/system",
    ] {
        let (_, v) = send(&server, Method::GET, path, None).await;
        let text = v.to_string();
        assert!(
            !text.contains(VALUE) && !text.contains(NEW_VALUE),
            "{path}: {text}"
        );
    }
    let (_, v) = send(&server, Method::POST, "/config/export", None).await;
    let yaml = v["yaml"].as_str().unwrap();
    assert!(yaml.contains("${secret:API_TOKEN}"), "{yaml}");
    assert!(!yaml.contains(VALUE) && !yaml.contains(NEW_VALUE), "{yaml}");
    // Nor the database files, in plain text.
    for entry in std::fs::read_dir(&server.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for needle in [VALUE, NEW_VALUE] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{} holds a secret value",
                    path.display()
                );
            }
        }
    }

    // Nor the server's own log (at debug level).
    let log = server.log_text();
    assert!(log.contains("secret stored"), "the log was captured: {log}");
    assert!(!log.contains(VALUE) && !log.contains(NEW_VALUE), "{log}");

    // Bad input and deletion.
    for (name, body, status) in [
        ("1bad", json!({"value": "x"}), 422),
        ("GOOD", json!({"nope": "x"}), 422),
        ("GOOD", json!({"value": "x", "scope": ""}), 422),
    ] {
        let (s, v) = send(
            &server,
            Method::PUT,
            &format!("/secrets/{name}"),
            Some(body),
        )
        .await;
        assert_eq!(s, status, "{name}: {v}");
        assert_eq!(v["status_code"], status, "{v}");
    }
    let (status, v) = send(&server, Method::DELETE, "/secrets/API_TOKEN", None).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = send(&server, Method::DELETE, "/secrets/API_TOKEN", None).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["status_code"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_survive_a_restart_and_need_the_master_key() {
    let mut server = Server::start("").await;
    let (status, _) = send(
        &server,
        Method::PUT,
        "/secrets/KEEP",
        Some(json!({"value": VALUE})),
    )
    .await;
    assert_eq!(status, 201);
    let key_file = server.data_dir.join("master.key");
    let meta = std::fs::metadata(&key_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    server.kill_and_restart().await;
    let (_, v) = send(&server, Method::GET, "/secrets", None).await;
    assert_eq!(v["secrets"][0]["name"], "KEEP", "{v}");
    // With a different master key the server refuses to start (exit 64).
    server.stop();
    std::fs::write(&key_file, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    let out = std::process::Command::new(bin("hangar-server"))
        .arg("--data-dir")
        .arg(&server.data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_decide_which_providers_get_which_secrets() {
    let server = Server::start("").await;
    let fixture = bin("hangar-fixture");
    // Scopes over REST, with their errors.
    let (status, v) = send(
        &server,
        Method::POST,
        "/scopes",
        Some(json!({"scope_id": "prod", "description": "production"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["scope_id"], "prod");
    for (body, status) in [
        (json!({"scope_id": "prod"}), 409),
        (json!({"scope_id": "Bad Id"}), 422),
        (json!({"nope": 1}), 422),
    ] {
        let (s, v) = send(&server, Method::POST, "/scopes", Some(body.clone())).await;
        assert_eq!(s, status, "{body}: {v}");
        assert_eq!(v["status_code"], status, "{v}");
    }
    let (status, v) = send(
        &server,
        Method::PUT,
        "/secrets/PROD_TOKEN",
        Some(json!({"value": VALUE, "scope": "nope"})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    // The CLI reads the value from stdin.
    let mut child = std::process::Command::new(bin("hangar"))
        .args([
            "--url",
            &server.url,
            "--key",
            hangar_e2e::ADMIN_KEY,
            "secrets",
            "set",
            "PROD_TOKEN",
            "--scope",
            "prod",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{VALUE}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(VALUE));
    let out = server.cli(&["secrets", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PROD_TOKEN") && text.contains("prod") && !text.contains(VALUE),
        "{text}"
    );

    for (id, scope) in [("inprod", Some("prod")), ("outside", None)] {
        let mut body = json!({
            "provider_id": id,
            "mode": "subprocess",
            "command": [fixture],
            "env": {"SECRET_THING": "${secret:PROD_TOKEN}"},
        });
        if let Some(s) = scope {
            body["scope"] = json!(s);
        }
        let (status, v) = send(&server, Method::POST, "/providers", Some(body)).await;
        assert_eq!(status, 201, "{v}");
    }
    let out = env_of(&server, "inprod__env");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(VALUE),
        "{out:?}"
    );
    let (status, v) = send(&server, Method::POST, "/providers/outside/start", None).await;
    assert!(status >= 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("is in scope 'prod' and not available to unscoped providers"),
        "{v}"
    );

    // Deleting the scope unscopes its providers and secrets.
    let out = server.cli(&["--output", "json", "scopes", "delete", "prod"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["providers"], json!(["inprod"]), "{v}");
    assert_eq!(v["secrets"], json!(["PROD_TOKEN"]), "{v}");
    let (_, v) = send(&server, Method::GET, "/secrets", None).await;
    assert_eq!(v["secrets"][0]["scope"], Value::Null, "{v}");
    let (status, v) = send(&server, Method::POST, "/providers/outside/start", None).await;
    assert_eq!(status, 200, "{v}");
    let out = env_of(&server, "outside__env");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(VALUE),
        "{out:?}"
    );
    let (status, _) = send(&server, Method::DELETE, "/scopes/prod", None).await;
    assert_eq!(status, 404);
    let out = server.cli(&["scopes", "list"]);
    assert!(out.status.success(), "{out:?}");
}
