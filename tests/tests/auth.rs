//! Keys, tokens, roles and their enforcement on every route, rate limits,
//! failed-auth backoff and the audit log, against the real server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::time::Duration;

use hangar_core::Permission;
use hangar_e2e::{ADMIN_KEY, Server, fixture_config};
use reqwest::Method;
use serde_json::{Value, json};

/// `(status, headers, JSON body or null)` of `/api{path}` with `key`.
async fn call(
    server: &Server,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    server.call_as(key, method, path, body).await
}

/// Gives `principal` the role `role` and returns a new key for it.
async fn key_for(server: &Server, principal: &str, role: &str) -> String {
    server.key_for(principal, role).await
}

/// RFC 3339 for now + `secs` (UTC), without a date library.
fn rfc3339_in(secs: u64) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs;
    let (days, rem) = (t / 86_400, t % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = i64::try_from(days).unwrap() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reaches_exactly_what_its_permissions_allow() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let roles = hangar_core::builtin_roles();
    let mut keys = Vec::new();
    for role in &roles {
        keys.push((
            role,
            key_for(&server, &format!("p-{}", role.id), &role.id).await,
        ));
    }
    let doc: Value = reqwest::get(server.at("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/") {
            continue; // /mcp, /health, /openapi.json
        }
        for (method, op) in item.as_object().unwrap() {
            let scopes = &op["security"][0]["bearer"];
            let scope = scopes[0].as_str().unwrap_or_else(|| {
                panic!("{method} {path} declares no permission: {}", op["security"])
            });
            let uri: String = path
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
            for (role, key) in &keys {
                let allowed = scope == "self"
                    || role.allows(
                        &scope
                            .parse::<Permission>()
                            .unwrap_or_else(|e| panic!("{method} {path}: {e}")),
                    );
                let mut req = client
                    .request(
                        Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                        server.at(&uri),
                    )
                    .bearer_auth(key);
                if op.get("requestBody").is_some() {
                    req = req.json(&json!({}));
                }
                // Only the status matters (a stream's body is never read).
                let status = req.send().await.unwrap().status().as_u16();
                assert_ne!(status, 401, "{method} {uri} as {}", role.id);
                assert_eq!(
                    status == 403,
                    !allowed,
                    "{method} {uri} as {} (needs {scope}): {status}",
                    role.id
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 5 * 40, "only {checked} checks");
    // `/mcp` needs tools:list: a viewer can't even list, let alone call.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "fx__echo", "arguments": {"text": "hi"}}});
    let viewer = &keys.iter().find(|(r, _)| r.id == "viewer").unwrap().1;
    let r = reqwest::Client::new()
        .post(server.at("/mcp"))
        .bearer_auth(viewer)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().contains_key("ratelimit-remaining"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "PermissionDeniedError", "{v}");
    assert!(v["message"].as_str().unwrap().contains("tools:list"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_revoke_and_never_show_secrets() {
    let server = Server::start("providers: {}\n").await;
    let (status, _) = server
        .send(
            Method::POST,
            "/auth/principals/alice/roles",
            Some(json!({"role_id": "viewer"})),
        )
        .await;
    assert_eq!(status, 200);

    // A key that expires in 2 s works, then fails with 401.
    let (status, v) = server
        .send(
            Method::POST,
            "/auth/keys",
            Some(json!({"principal_id": "alice", "name": "short", "expires_at": rfc3339_in(2)})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert!(v["raw_key"].as_str().unwrap().starts_with("hgr_"), "{v}");
    assert!(v["expires_at"].is_string(), "{v}");
    let short = v["raw_key"].as_str().unwrap().to_owned();
    let (status, _, _) = call(&server, &short, Method::GET, "/system", None).await;
    assert_eq!(status, 200);
    let mut expired = false;
    for _ in 0..100 {
        let (status, _, v) = call(&server, &short, Method::GET, "/system", None).await;
        if status == 401 {
            assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(expired, "the key never expired");

    // A revoked key fails with 401.
    let (status, v) = server
        .send(
            Method::POST,
            "/auth/keys",
            Some(json!({"principal_id": "alice", "name": "ci"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (raw, key_id) = (
        v["raw_key"].as_str().unwrap().to_owned(),
        v["key_id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        call(&server, &raw, Method::GET, "/system", None).await.0,
        200
    );
    let (status, v) = server
        .send(
            Method::DELETE,
            &format!("/auth/keys/{key_id}"),
            Some(json!({"revoked_by": "admin", "reason": "rotated"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"key_id": key_id, "revoked": true}));
    let (status, _, v) = call(&server, &raw, Method::GET, "/system", None).await;
    assert_eq!(status, 401, "{v}");
    assert!(v["message"].as_str().unwrap().contains("revoked"), "{v}");
    // Without a body too, and unknown keys are 404.
    let (status, _) = server
        .send(Method::DELETE, &format!("/auth/keys/{key_id}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, v) = server.send(Method::DELETE, "/auth/keys/nope", None).await;
    assert_eq!(status, 404, "{v}");

    // Listings: prefix and metadata, never the key or its hash.
    let (status, v) = server.get_json("/auth/keys/alice").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"], 2, "{v}");
    let text = v.to_string();
    assert!(!text.contains(&raw) && !text.contains(&short), "{v}");
    for k in v["keys"].as_array().unwrap() {
        let fields: Vec<&String> = k.as_object().unwrap().keys().collect();
        for f in [
            "key_id",
            "name",
            "prefix",
            "principal_id",
            "created_at",
            "expires_at",
            "revoked_at",
        ] {
            assert!(k.get(f).is_some(), "{f} missing in {k}");
        }
        assert!(
            !fields
                .iter()
                .any(|f| f.contains("hash") || f.contains("raw")),
            "{k}"
        );
        assert!(
            raw.starts_with(k["prefix"].as_str().unwrap())
                || short.starts_with(k["prefix"].as_str().unwrap())
        );
    }
    let revoked = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id.as_str())
        .unwrap();
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert_eq!(server.get_json("/auth/keys/nobody").await.0, 404);

    // Bad input names the field.
    for (body, field) in [
        (
            json!({"principal_id": "alice", "name": "x", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"principal_id": "alice", "name": "x", "expires_at": "2000-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"principal_id": "a b", "name": "x"}), "principal_id"),
        (json!({"principal_id": "alice", "name": ""}), "name"),
    ] {
        let (status, v) = server.send(Method::POST, "/auth/keys", Some(body)).await;
        assert_eq!(status, 422, "{v}");
        assert!(v["message"].as_str().unwrap().starts_with(field), "{v}");
    }

    // The admin key works across a restart; revoked keys stay revoked.
    let mut server = server;
    server.restart().await;
    assert_eq!(server.get_json("/system").await.0, 200);
    assert_eq!(
        call(&server, &raw, Method::GET, "/system", None).await.0,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_tokens_belong_to_their_principal() {
    let server = Server::start("providers: {}\n").await;
    // Developers may mint tokens (`tokens:create`), viewers may not.
    let vera = key_for(&server, "vera", "developer").await;
    let dan = key_for(&server, "dan", "viewer").await;
    let (status, _, v) = call(
        &server,
        &dan,
        Method::POST,
        "/tokens",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 403, "{v}");

    let (status, _, v) = call(&server, &vera, Method::GET, "/tokens", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"tokens": [], "total": 0}));
    let (status, _, v) = call(
        &server,
        &vera,
        Method::POST,
        "/tokens",
        Some(json!({"name": "laptop"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["principal_id"], "vera");
    let token = v["raw_token"].as_str().unwrap().to_owned();
    let token_id = v["token_id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hgr_"));

    // The token authenticates as vera, with vera's roles.
    let (status, _, v) = call(&server, &token, Method::GET, "/tokens", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["tokens"][0]["token_id"], token_id.as_str());
    assert!(!v.to_string().contains(&token), "{v}");
    assert_eq!(
        call(&server, &token, Method::GET, "/providers", None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, &token, Method::POST, "/providers", Some(json!({})))
            .await
            .0,
        403
    );

    // Someone else's token is not found; the admin sees it as kind token.
    let (status, _, v) = call(
        &server,
        &dan,
        Method::DELETE,
        &format!("/tokens/{token_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{v}");
    let (_, _, v) = call(&server, &dan, Method::GET, "/tokens", None).await;
    assert_eq!(v["total"], 0, "{v}");
    let (_, v) = server.get_json("/auth/keys/vera").await;
    assert!(
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["key_id"] == token_id.as_str() && k["kind"] == "token"),
        "{v}"
    );
    // A key is not a token.
    let keys = v["keys"].as_array().unwrap();
    let key_id = keys.iter().find(|k| k["kind"] == "key").unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        call(
            &server,
            &vera,
            Method::DELETE,
            &format!("/tokens/{key_id}"),
            None
        )
        .await
        .0,
        404
    );

    // Revoking it: 200, then the token fails with 401.
    let (status, _, v) = call(
        &server,
        &token,
        Method::DELETE,
        &format!("/tokens/{token_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"token_id": token_id, "revoked": true}));
    assert_eq!(
        call(&server, &token, Method::GET, "/tokens", None).await.0,
        401
    );
    let (status, _, v) = call(
        &server,
        &vera,
        Method::POST,
        "/tokens",
        Some(json!({"name": "x", "expires_at": "nope"})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_roles_are_assigned_checked_and_enforced() {
    let server = Server::start("providers: {}\n").await;
    let (status, v) = server
        .send(
            Method::POST,
            "/auth/roles",
            Some(json!({"id": "deployer", "description": "Deploys",
                        "permissions": ["catalog:read", "catalog:deploy"]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["builtin"], false);
    let carol = key_for(&server, "carol", "deployer").await;

    let check = |permission: &'static str| {
        let server = &server;
        async move {
            let (status, v) = server
                .send(
                    Method::POST,
                    "/auth/check-permission",
                    Some(json!({"principal_id": "carol", "permission": permission})),
                )
                .await;
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["principal_id"], "carol");
            assert_eq!(v["permission"], permission);
            v["allowed"].as_bool().unwrap()
        }
    };
    assert!(check("catalog:deploy").await);
    assert!(!check("providers:write").await);
    let (status, v) = server
        .send(
            Method::POST,
            "/auth/check-permission",
            Some(json!({"principal_id": "carol", "permission": "nope"})),
        )
        .await;
    assert_eq!(status, 422, "{v}");

    assert_eq!(
        call(&server, &carol, Method::GET, "/catalog", None).await.0,
        200
    );
    assert_eq!(
        call(&server, &carol, Method::GET, "/providers", None)
            .await
            .0,
        403
    );
    // Changing the role applies to the next request.
    let (status, v) = server
        .send(
            Method::PUT,
            "/auth/roles/deployer",
            Some(json!({"permissions": ["catalog:*", "providers:read"]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        call(&server, &carol, Method::GET, "/providers", None)
            .await
            .0,
        200
    );
    let (status, v) = server.get_json("/auth/principals/carol/roles").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["roles"], json!(["deployer"]));
    assert_eq!(v["permissions"], json!(["catalog:*", "providers:read"]));

    // Lists.
    let (_, v) = server.get_json("/auth/roles").await;
    assert_eq!(v["total"], 6, "{v}");
    let (_, v) = server.get_json("/auth/roles/builtin").await;
    assert_eq!(v["total"], 5, "{v}");
    let (status, v) = server.get_json("/auth/roles/viewer").await;
    assert_eq!(status, 200);
    assert_eq!(v["builtin"], true);
    assert_eq!(server.get_json("/auth/roles/nope").await.0, 404);
    let (_, v) = server.get_json("/auth/principals").await;
    let ids: Vec<&str> = v["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["principal_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["admin", "carol"], "{v}");
    assert_eq!(v["principals"][0]["roles"], json!(["admin"]));

    // Built-in roles are fixed; bad roles are refused, naming the field.
    let (status, _) = server
        .send(
            Method::PUT,
            "/auth/roles/viewer",
            Some(json!({"permissions": ["*"]})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        server
            .send(Method::DELETE, "/auth/roles/admin", None)
            .await
            .0,
        409
    );
    let (status, _) = server
        .send(Method::POST, "/auth/roles", Some(json!({"id": "viewer"})))
        .await;
    assert_eq!(status, 409);
    let (status, v) = server
        .send(
            Method::POST,
            "/auth/roles",
            Some(json!({"id": "x", "permissions": ["ok:nope"]})),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    let (status, v) = server
        .send(
            Method::POST,
            "/auth/roles",
            Some(json!({"id": "y", "permissions": ["bad"]})),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().starts_with("permissions[0]"),
        "{v}"
    );
    let (status, _) = server
        .send(
            Method::POST,
            "/auth/principals/carol/roles",
            Some(json!({"role_id": "nope"})),
        )
        .await;
    assert_eq!(status, 404);
    // The last admin keeps the role.
    let (status, v) = server
        .send(Method::DELETE, "/auth/principals/admin/roles/admin", None)
        .await;
    assert_eq!(status, 409, "{v}");

    // Roles and assignments survive a restart.
    let mut server = server;
    server.restart().await;
    assert_eq!(
        call(&server, &carol, Method::GET, "/providers", None)
            .await
            .0,
        200
    );
    let (status, v) = server
        .send(
            Method::DELETE,
            "/auth/principals/carol/roles/deployer",
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        call(&server, &carol, Method::GET, "/catalog", None).await.0,
        403
    );
    assert_eq!(
        server
            .send(
                Method::DELETE,
                "/auth/principals/carol/roles/deployer",
                None
            )
            .await
            .0,
        404
    );
    let (status, v) = server
        .send(Method::DELETE, "/auth/roles/deployer", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(server.get_json("/auth/roles/deployer").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_auth_is_slowed_down_and_recorded() {
    let config = "providers: {}\nserver:\n  auth_backoff: { free_failures: 2, base_delay_s: 3, max_delay_s: 60 }\n";
    let server = Server::start(config).await;
    for _ in 0..3 {
        let (status, _, _) = call(&server, "hgr_wrong", Method::GET, "/system", None).await;
        assert_eq!(status, 401);
    }
    // Blocked: bad keys get 429 (not counted); a good key still works.
    let (status, headers, v) = call(&server, "hgr_wrong", Method::GET, "/system", None).await;
    assert_eq!(status, 429, "{v}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    assert_eq!(
        call(&server, ADMIN_KEY, Method::GET, "/system", None)
            .await
            .0,
        200
    );
    // After the delay, bad keys are looked at again.
    let mut looked_at = false;
    for _ in 0..100 {
        if call(&server, "hgr_wrong", Method::GET, "/system", None)
            .await
            .0
            == 401
        {
            looked_at = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(looked_at, "blocked for good");
    let (status, v) = server.get_json("/observability/security?limit=10").await;
    assert_eq!(status, 200, "{v}");
    let failed: Vec<&Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "auth_failed")
        .collect();
    assert_eq!(failed.len(), 4, "{v}");
    assert_eq!(failed[0]["event_type"], "SecurityEvent");
    assert_eq!(failed[0]["client"], "127.0.0.1");
    assert_eq!(failed[0]["path"], "/api/system");
    assert!(failed[0]["principal"].is_null());
    assert!(!v.to_string().contains("hgr_wrong"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_headers() {
    let config = "providers: {}\nserver:\n  rate_limit: { requests: 5, per_seconds: 3600 }\n";
    let server = Server::start(config).await;
    // Five requests of the admin key.
    let (status, v) = server
        .send(
            Method::POST,
            "/auth/roles",
            Some(json!({"id": "bulk", "permissions": ["audit:read"],
                        "rate_limit": {"requests": 50, "per_seconds": 60}})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let ops = key_for(&server, "ops", "bulk").await; // two requests
    let (status, headers, _) = call(&server, ADMIN_KEY, Method::GET, "/system", None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["ratelimit-limit"], "5");
    assert_eq!(headers["ratelimit-remaining"], "1");
    assert!(headers.contains_key("ratelimit-reset"));
    let (status, headers, _) = call(&server, ADMIN_KEY, Method::GET, "/system", None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["ratelimit-remaining"], "0");
    let (status, headers, v) = call(&server, ADMIN_KEY, Method::GET, "/system", None).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"], "RateLimitExceeded", "{v}");
    assert_eq!(headers["ratelimit-limit"], "5");
    assert_eq!(headers["ratelimit-remaining"], "0");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    let reset: u64 = headers["ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset >= retry, "{reset} < {retry}");

    // Another key has its own budget, from its role.
    let (status, headers, v) =
        call(&server, &ops, Method::GET, "/observability/security", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(headers["ratelimit-limit"], "50");
    let limited = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "rate_limited")
        .unwrap_or_else(|| panic!("no rate_limited event: {v}"));
    assert_eq!(limited["principal"], "admin");
    assert_eq!(limited["path"], "/api/system");
    // Over /mcp too.
    let r = reqwest::Client::new()
        .post(server.at("/mcp"))
        .bearer_auth(ADMIN_KEY)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_and_security_events_are_audited() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let auditor = key_for(&server, "audra", "auditor").await;
    let viewer = key_for(&server, "vic", "viewer").await;
    let (status, _) = server
        .send(
            Method::POST,
            "/providers",
            Some(json!({"provider_id": "bad id"})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = server.send(Method::POST, "/providers/fx/start", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        call(&server, &viewer, Method::POST, "/providers/fx/stop", None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&server, "hgr_nope", Method::GET, "/system", None)
            .await
            .0,
        401
    );
    // The viewer may not read the audit log.
    assert_eq!(
        call(&server, &viewer, Method::GET, "/observability/audit", None)
            .await
            .0,
        403
    );

    let (status, _, v) = call(
        &server,
        &auditor,
        Method::GET,
        "/observability/audit?event_type=AdminChange&limit=1000",
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let records = v["records"].as_array().unwrap();
    assert_eq!(v["total"].as_u64().unwrap() as usize, records.len(), "{v}");
    assert!(
        records.iter().all(|r| r["event_type"] == "AdminChange"),
        "{v}"
    );
    let find = |method: &str, path: &str, status: u16| {
        records
            .iter()
            .any(|r| r["method"] == method && r["path"] == path && r["status"] == status)
    };
    assert!(find("POST", "/api/providers", 422), "{v}");
    assert!(find("POST", "/api/providers/fx/start", 200), "{v}");
    assert!(find("POST", "/api/providers/fx/stop", 403), "{v}");
    assert!(find("POST", "/api/auth/keys", 201), "{v}");
    // Newest first, with position and time.
    let positions: Vec<u64> = records
        .iter()
        .map(|r| r["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "{positions:?}");
    assert!(records[0]["time"].is_string());
    let stop = records
        .iter()
        .find(|r| r["path"] == "/api/providers/fx/stop")
        .unwrap();
    assert_eq!(stop["principal"], "vic");

    let (_, _, v) = call(
        &server,
        &auditor,
        Method::GET,
        "/observability/audit?limit=2",
        None,
    )
    .await;
    assert_eq!(v["records"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["total"].as_u64().unwrap() > 2, "{v}");
    let (_, _, v) = call(
        &server,
        &auditor,
        Method::GET,
        "/observability/audit?provider_id=nope",
        None,
    )
    .await;
    assert_eq!(v["total"], 0, "{v}");

    let (_, _, v) = call(
        &server,
        &auditor,
        Method::GET,
        "/observability/security",
        None,
    )
    .await;
    let events = v["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["kind"] == "access_denied"
            && e["principal"] == "vic"
            && e["path"] == "/api/providers/fx/stop"
            && e["detail"].as_str().unwrap().contains("providers:start")),
        "{v}"
    );
    assert!(events.iter().any(|e| e["kind"] == "auth_failed"), "{v}");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("event_type=Nope", "event_type"),
    ] {
        let (status, _, v) = call(
            &server,
            &auditor,
            Method::GET,
            &format!("/observability/audit?{query}"),
            None,
        )
        .await;
        assert_eq!(status, 422, "{query}: {v}");
        assert!(v["message"].as_str().unwrap().starts_with(field), "{v}");
    }
    let (status, _, _) = call(
        &server,
        &auditor,
        Method::GET,
        "/observability/security?limit=0",
        None,
    )
    .await;
    assert_eq!(status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_keys_roles_and_reads_the_audit_log() {
    let server = Server::start("providers: {}\n").await;
    let run = |args: &[&str]| {
        let out = server.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[
        "roles",
        "create",
        "ci",
        "-p",
        "providers:read",
        "--rate-limit",
        "100/60",
    ]);
    run(&["principals", "assign", "bot", "ci"]);
    let created: Value =
        serde_json::from_str(&run(&["keys", "create", "bot", "ci-key", "-o", "json"])).unwrap();
    let raw = created["raw_key"].as_str().unwrap();
    let listed = run(&["keys", "list", "bot"]);
    assert!(
        listed.contains("ci-key") && !listed.contains(raw),
        "{listed}"
    );
    let check: Value = serde_json::from_str(&run(&[
        "auth",
        "check",
        "bot",
        "providers:read",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(check["allowed"], true);
    assert!(run(&["roles", "list"]).contains("ci"));
    assert!(run(&["principals", "list"]).contains("bot"));
    let audit: Value =
        serde_json::from_str(&run(&["audit", "--type", "AdminChange", "-o", "json"])).unwrap();
    assert!(audit["total"].as_u64().unwrap() >= 3, "{audit}");
    let tokens: Value =
        serde_json::from_str(&run(&["tokens", "create", "mine", "-o", "json"])).unwrap();
    let token_id = tokens["token_id"].as_str().unwrap();
    assert!(run(&["tokens", "list"]).contains("mine"));
    run(&["tokens", "revoke", token_id]);
    run(&[
        "keys",
        "revoke",
        created["key_id"].as_str().unwrap(),
        "--reason",
        "done",
    ]);
    run(&["principals", "unassign", "bot", "ci"]);
    run(&["roles", "delete", "ci"]);
    let events = run(&["security-events", "--limit", "5"]);
    assert!(events.starts_with("POSITION"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_tools_does_not_allow_calling_them() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let (status, v) = server
        .send(
            Method::POST,
            "/auth/roles",
            Some(
                json!({"id": "lister", "description": "Sees tools", "permissions": ["tools:list"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let key = key_for(&server, "lena", "lister").await;
    let hangar = |args: &[&str]| {
        std::process::Command::new(hangar_e2e::bin("hangar"))
            .args(["--url", &server.url, "--key", &key])
            .args(args)
            .output()
            .unwrap()
    };
    let out = hangar(&["tools"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fx__echo"),
        "{out:?}"
    );
    let out = hangar(&["call", "fx__echo", "text=hi"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs the tools:call permission"),
        "{out:?}"
    );
    // The same key with tools:call added may call.
    let (status, v) = server
        .send(
            Method::PUT,
            "/auth/roles/lister",
            Some(json!({"permissions": ["tools:list", "tools:call"]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let out = hangar(&["call", "fx__echo", "text=hi"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hi"),
        "{out:?}"
    );
}
