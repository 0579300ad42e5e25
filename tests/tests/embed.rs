//! Hangar embedded as a library: in-process MCP clients acting as
//! principals, through the same permissions, audit and events as `/mcp`,
//! next to the mounted HTTP routes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::time::Duration;

use hangar_api::embed::Hangar;
use hangar_e2e::fixture_config;
use hangar_runtime::feed::{EventFilter, FeedItem};
use rmcp::model::{CallToolRequestParams, JsonObject};

fn args(v: serde_json::Value) -> JsonObject {
    v.as_object().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_hangar_serves_in_process_clients_as_principals() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hangar.yaml");
    std::fs::write(&config, fixture_config("fx", "")).unwrap();
    let hangar = Hangar::start(&hangar_api::ServerOptions {
        config: Some(config),
        data_dir: dir.path().join("data"),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut audit = hangar.events(
        EventFilter {
            event_types: vec!["ToolCallAudited".into()],
            ..EventFilter::default()
        },
        None,
        64,
    );

    // The admin principal lists and calls like a remote admin key would.
    let admin = hangar.client("admin").await.unwrap();
    let tools = admin.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "fx__echo"), "{tools:?}");
    let r = admin
        .call_tool(
            CallToolRequestParams::new("fx__echo")
                .with_arguments(args(serde_json::json!({"text": "in process"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        r.content[0].as_text().map(|t| t.text.as_str()),
        Some("in process")
    );
    // ... and the call is audited under its name.
    let event = tokio::time::timeout(Duration::from_secs(10), audit.recv())
        .await
        .unwrap()
        .unwrap();
    let FeedItem::Event(event) = event else {
        panic!("{event:?}");
    };
    assert_eq!(event.payload["principal"], "admin", "{event:?}");
    assert_eq!(event.payload["tool"], "echo");

    // A viewer may list but not call; an unknown principal holds nothing.
    hangar_access_assign(&hangar, "vera", "viewer").await;
    let viewer = hangar.client("vera").await.unwrap();
    assert!(!viewer.list_all_tools().await.unwrap().is_empty());
    let denied = viewer
        .call_tool(
            CallToolRequestParams::new("fx__echo")
                .with_arguments(args(serde_json::json!({"text": "x"}))),
        )
        .await;
    assert!(
        denied
            .as_ref()
            .is_err_and(|e| e.to_string().contains("tools:call")),
        "{denied:?}"
    );
    let nobody = hangar.client("nobody").await.unwrap();
    assert!(
        nobody
            .call_tool(
                CallToolRequestParams::new("fx__echo")
                    .with_arguments(args(serde_json::json!({"text": "x"})))
            )
            .await
            .is_err()
    );

    // The HTTP routes mount in the host's own router.
    let app = axum_like_health(&hangar).await;
    assert_eq!(app, 200);

    let pid = hangar
        .engine()
        .provider("fx")
        .unwrap()
        .status()
        .pid
        .unwrap();
    hangar.shutdown().await;
    assert!(!hangar_e2e::process_alive(pid));
}

async fn hangar_access_assign(hangar: &Hangar, principal: &str, role: &str) {
    hangar.access().assign(principal, role).await.unwrap();
}

/// `GET /health` through the mounted router, on a real socket.
async fn axum_like_health(hangar: &Hangar) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = hangar.router();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let status = reqwest::get(format!("http://{addr}/health"))
        .await
        .unwrap()
        .status()
        .as_u16();
    server.abort();
    status
}
