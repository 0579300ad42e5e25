//! Remote providers against real HTTP servers: `hangar-fixture --http` in
//! both protocol eras (with a session the remote forgets), a second
//! `hangar-server` chained behind the first with its key from a secret (the
//! caller's key never reaches it), health checks, and the refusal of
//! link-local and metadata endpoints.

use std::time::Duration;

use hangar_e2e::mcp_client::{call_params, connect, connect_as, legacy, modern, text};
use hangar_e2e::{HttpFixture, Server, fixture_config};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_providers_of_both_eras_serve_both_client_eras() {
    let modern_remote = HttpFixture::start(false).await;
    let mut legacy_remote = HttpFixture::start(true).await;
    let config = format!(
        "providers:\n  rmod:\n    mode: remote\n    endpoint: {}\n    health_check_interval_s: 1\n  rleg:\n    mode: remote\n    endpoint: {}\n    health_check_interval_s: 1\n",
        modern_remote.url, legacy_remote.url
    );
    let server = Server::start(&config).await;
    for mode in [legacy(), modern()] {
        let (client, _) = connect(&server, mode).await;
        for (tool, expect) in [("rmod__add", "3"), ("rleg__add", "3")] {
            let r = client
                .peer()
                .call_tool(call_params(tool, json!({"a": 1, "b": 2})))
                .await
                .unwrap();
            assert_eq!(text(&r), expect, "{tool}");
        }
        client.cancel().await.unwrap();
    }
    // Health checks reach both (`server/discover` for the 2026 one, ping for
    // the 2025 one).
    for id in ["rmod", "rleg"] {
        let mut ok = false;
        for _ in 0..50 {
            let (_, h) = server.get_json(&format!("/providers/{id}/health")).await;
            if h["history"]
                .as_array()
                .is_some_and(|r| r.iter().any(|c| c["ok"] == true))
            {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ok, "no successful health check of {id}");
    }
    // The 2025 remote restarts and forgets its sessions: the next call
    // re-initializes once, transparently.
    legacy_remote.restart().await;
    assert_eq!(
        server
            .call_text("rleg__add", json!({"a": 20, "b": 3}))
            .await,
        "23"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_hangar_gets_hangars_key_never_the_callers() {
    let behind = Server::start(&fixture_config("fx", "")).await;
    let service_key = behind.key_for("hangar-front", "developer").await;
    let front = Server::start(&format!(
        "providers:\n  back:\n    mode: remote\n    endpoint: {}\n    headers:\n      Authorization: \"Bearer ${{secret:BACK_KEY}}\"\n",
        behind.at("/mcp")
    ))
    .await;
    let (status, v) = front
        .send(
            Method::PUT,
            "/secrets/BACK_KEY",
            Some(json!({"value": service_key})),
        )
        .await;
    assert!(status == 200 || status == 201, "{v}");
    // A developer of the front calls a tool of the back, through both.
    let dana = front.key_for("dana", "developer").await;
    let (client, _) = connect_as(&front, &dana, modern()).await;
    let r = client
        .peer()
        .call_tool(call_params("back__fx__add", json!({"a": 5, "b": 6})))
        .await
        .unwrap();
    assert_eq!(text(&r), "11");
    client.cancel().await.unwrap();
    // The back saw the front's service principal, and never dana's key.
    let (_, audit) = behind
        .get_json("/observability/audit?event_type=ToolCallAudited")
        .await;
    let principals: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["principal"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(principals, ["hangar-front"], "{audit}");
    let (_, security) = behind.get_json("/observability/security").await;
    assert_eq!(security["total"], 0, "{security}");
    // And the front shows the header's name, not its value.
    let (_, p) = front.get_json("/providers/back").await;
    assert!(!p.to_string().contains(&service_key), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_local_and_metadata_endpoints_are_refused() {
    let server = Server::start("providers: {}\n").await;
    for endpoint in [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/mcp",
        "http://[::ffff:169.254.169.254]/mcp",
    ] {
        let (status, v) = server
            .send(
                Method::POST,
                "/providers",
                Some(json!({"provider_id": "meta", "mode": "remote", "endpoint": endpoint})),
            )
            .await;
        assert_eq!(status, 422, "{endpoint}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("allow_link_local"),
            "{v}"
        );
    }
    // Spelled as a number, it is caught when the URL is read to connect.
    let (status, v) = server
        .send(
            Method::POST,
            "/providers",
            Some(json!({"provider_id": "sneaky", "mode": "remote", "endpoint": "http://2852039166/mcp"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = server
        .send(Method::POST, "/providers/sneaky/start", None)
        .await;
    assert_eq!(status, 502, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("169.254.169.254"),
        "{v}"
    );
    // Allowed on purpose, it may be defined.
    let (status, v) = server
        .send(
            Method::POST,
            "/providers",
            Some(json!({"provider_id": "meta", "mode": "remote",
                        "endpoint": "http://169.254.169.254/mcp", "allow_link_local": true})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
}
