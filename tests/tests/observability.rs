//! Observability end to end: metrics after known calls, domain events over
//! SSE and both WebSockets, `Last-Event-ID` resume, live provider logs,
//! alerts (with their webhook) when a provider keeps dying, a consumer that
//! never reads, streams ending when their key is revoked, JSON logs; and
//! the CLI's `events`, `providers logs -f`, `status`, `metrics`, `alerts`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use hangar_e2e::streams::{Sse, is_transition, json_sink, rss_kib, ws_next, ws_open, ws_until};
use hangar_e2e::{ADMIN_KEY, Server, bin, fixture_config, result_text};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

async fn start_fx(server: &Server) {
    let (status, v) = server.send(Method::POST, "/providers/fx/start", None).await;
    assert_eq!(status, 200, "{v}");
}

/// The value of the sample `name{labels}` in OpenMetrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_calls_in_prometheus_text_and_summary() {
    let server = Server::start(&fixture_config("fx", "")).await;
    for i in 0..3 {
        assert_eq!(
            server.call_text("fx__add", json!({"a": i, "b": 1})).await,
            (i + 1).to_string()
        );
    }
    let r = server
        .call_tool_as(ADMIN_KEY, "fx__test_error_handling", json!({}))
        .await;
    assert_eq!(r["result"]["isError"], true, "{r}");
    // Two requests with a bad key.
    for _ in 0..2 {
        let (status, _, _) = server
            .call_as("hgr_not_a_key", Method::GET, "/system", None)
            .await;
        assert_eq!(status, 401);
    }

    // `/metrics` needs a key with system:read.
    let r = reqwest::get(server.at("/metrics")).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::Client::new()
        .get(server.at("/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    let calls = |tool: &str, outcome: &str| {
        sample(
            &text,
            &format!(
                "hangar_tool_calls_total{{provider=\"fx\",tool=\"{tool}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(calls("add", "success"), Some(3.0), "{text}");
    assert_eq!(calls("test_error_handling", "tool_error"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "hangar_tool_call_duration_seconds_count{provider=\"fx\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "hangar_provider_starts_total{provider=\"fx\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "hangar_provider_cold_start_seconds_count{provider=\"fx\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "hangar_provider_state{provider=\"fx\",state=\"ready\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "hangar_provider_state{provider=\"fx\",state=\"cold\"}"
        ),
        Some(0.0)
    );
    assert_eq!(sample(&text, "hangar_auth_failures_total"), Some(2.0));
    // The four calls were stateless 2026-07-28 requests.
    assert_eq!(
        sample(&text, "hangar_mcp_requests_total{era=\"2026-07-28\"}"),
        Some(4.0)
    );
    assert!(text.contains("hangar_event_writer_queue_depth"));
    assert!(text.trim_end().ends_with("# EOF"));

    // The JSON form: the same text plus the summary.
    let (status, v) = server.get_json("/observability/metrics").await;
    assert_eq!(status, 200);
    assert!(
        v["prometheus_text"]
            .as_str()
            .unwrap()
            .contains("hangar_tool_calls_total")
    );
    assert_eq!(v["summary"]["tool_calls_total"], 4.0);
    assert_eq!(v["summary"]["tool_call_errors_total"], 1.0);
    assert_eq!(v["summary"]["providers_ready"], 1.0);
    assert_eq!(v["summary"]["auth_failures_total"], 2.0);

    // History: bounded `minutes`.
    let (status, v) = server
        .get_json("/observability/metrics/history?minutes=5")
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["minutes"], 5);
    assert_eq!(v["interval_s"], 10);
    assert!(v["samples"].is_array());
    for bad in ["0", "100000", "x"] {
        let (status, v) = server
            .get_json(&format!("/observability/metrics/history?minutes={bad}"))
            .await;
        assert_eq!(status, 422, "{bad}: {v}");
        assert!(v["message"].as_str().unwrap().starts_with("minutes"));
    }

    // The CLI prints the same text, and the JSON with --output json.
    let out = server.cli(&["metrics"]);
    assert!(out.status.success());
    let cli_text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        sample(
            &cli_text,
            "hangar_tool_calls_total{provider=\"fx\",tool=\"add\",outcome=\"success\"}"
        ),
        Some(3.0)
    );
    let out = server.cli(&["metrics", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["tool_calls_total"], 4.0);

    // A viewer lacks nothing here (system:read); a key without it is refused.
    let auditor = server.key_for("carol", "auditor").await;
    let r = reqwest::Client::new()
        .get(server.at("/metrics"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, _) = server
        .call_as(
            &server.key_for("dan", "developer").await,
            Method::GET,
            "/events",
            None,
        )
        .await;
    assert_eq!(status, 403, "developers have no events:read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_arrive_over_sse_and_both_websockets() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let mut sse = Sse::open(&server, ADMIN_KEY, "provider_id=fx", None).await;
    let (mut events_ws, protocol) = ws_open(&server, "/ws/events?provider_id=fx", ADMIN_KEY, false)
        .await
        .unwrap();
    assert_eq!(protocol, None, "no subprotocol offered, none chosen");
    // The browser way: the key as a subprotocol; the server picks hangar.v1
    // and never echoes the key.
    let (mut state_ws, protocol) = ws_open(&server, "/ws/state", ADMIN_KEY, true)
        .await
        .unwrap();
    assert_eq!(protocol.as_deref(), Some("hangar.v1"));

    start_fx(&server).await;
    server.call_text("fx__add", json!({"a": 1, "b": 2})).await;

    let seen = sse
        .until(WAIT, |e| e.data["event_type"] == "ToolInvocationCompleted")
        .await;
    let states: Vec<&Value> = seen
        .iter()
        .map(|e| &e.data)
        .filter(|e| e["event_type"] == "ProviderStateChanged")
        .collect();
    assert!(is_transition(states[0], "fx", "initializing"), "{states:?}");
    assert!(is_transition(states[1], "fx", "ready"), "{states:?}");
    for e in &seen {
        // The SSE id is the event's store position.
        assert_eq!(e.id, e.data["position"].as_u64(), "{e:?}");
    }
    let ids: Vec<u64> = seen.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let frames = ws_until(&mut events_ws, WAIT, |e| {
        e["event_type"] == "ToolInvocationCompleted"
    })
    .await;
    assert!(frames.iter().any(|e| is_transition(e, "fx", "ready")));
    assert_eq!(
        frames.last().unwrap()["payload"]["tool"],
        "add",
        "{frames:?}"
    );
    let frames = ws_until(&mut state_ws, WAIT, |e| is_transition(e, "fx", "ready")).await;
    assert!(is_transition(&frames[0], "fx", "initializing"));
    // Only state changes on /ws/state: the tool call is not there.
    server.send(Method::POST, "/providers/fx/stop", None).await;
    let next = ws_next(&mut state_ws, WAIT).await.unwrap();
    assert!(is_transition(&next, "fx", "cold"), "{next}");

    // Without a key the handshake is refused with a JSON 401.
    let err = ws_open(&server, "/ws/state", "hgr_wrong", true)
        .await
        .err()
        .unwrap();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => {
            assert_eq!(r.status(), 401);
            let body: Value = serde_json::from_slice(r.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["status_code"], 401);
        }
        other => panic!("{other}"),
    }
    // A plain GET (no upgrade) gets a JSON error too.
    let (status, _, v) = server
        .call_as(ADMIN_KEY, Method::GET, "/ws/events", None)
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"], "WebSocketUpgradeError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_resumes_with_exactly_what_was_missed() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let mut sse = Sse::open(&server, ADMIN_KEY, "", None).await;
    start_fx(&server).await;
    server.call_text("fx__add", json!({"a": 1, "b": 1})).await;
    let seen = sse
        .until(WAIT, |e| e.data["event_type"] == "ToolInvocationCompleted")
        .await;
    let last = seen.last().unwrap().id.unwrap();
    drop(sse);

    // While disconnected: more calls, more events.
    for i in 0..5 {
        server.call_text("fx__add", json!({"a": i, "b": 0})).await;
    }
    let mut resumed = Sse::open(&server, ADMIN_KEY, "", Some(last)).await;
    let mut positions = Vec::new();
    let mut calls = 0;
    while calls < 5 {
        let e = resumed.next(WAIT).await.expect("the missed events");
        positions.push(e.id.unwrap());
        if e.data["event_type"] == "ToolInvocationCompleted" {
            calls += 1;
        }
    }
    // Exactly the missed ones: from the next position on, none skipped
    // (an admin sees every stream), none repeated.
    assert_eq!(positions[0], last + 1, "{positions:?}");
    assert!(
        positions.windows(2).all(|w| w[1] == w[0] + 1),
        "{positions:?}"
    );
    // Then the live tail, after the replay.
    server.call_text("fx__add", json!({"a": 9, "b": 9})).await;
    let live = resumed
        .until(WAIT, |e| e.data["event_type"] == "ToolInvocationCompleted")
        .await;
    assert!(live[0].id.unwrap() > *positions.last().unwrap());

    // `?last_event_id=` works too (EventSource can't set headers on its
    // first connection); a bad one is a 422.
    let mut q = Sse::open(&server, ADMIN_KEY, &format!("last_event_id={last}"), None).await;
    assert_eq!(q.next(WAIT).await.unwrap().id, Some(last + 1));
    let r = reqwest::Client::new()
        .get(server.at("/api/events"))
        .bearer_auth(ADMIN_KEY)
        .header("Last-Event-ID", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // Positions survive a restart: a client resumes across it.
    let mut server = server;
    server.restart().await;
    let mut after = Sse::open(&server, ADMIN_KEY, "", Some(last)).await;
    assert_eq!(after.next(WAIT).await.unwrap().id, Some(last + 1));

    // The CLI: `hangar events --since N --count K --output json`.
    let out = server.cli(&[
        "events",
        "--since",
        &last.to_string(),
        "--count",
        "3",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<u64> = lines
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![last + 1, last + 2, last + 3]);
    // Pretty lines for people.
    let out = server.cli(&[
        "events",
        "--since",
        &last.to_string(),
        "--count",
        "1",
        "--event-type",
        "ToolInvocationCompleted",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("ToolInvocationCompleted") && text.contains("tool=add"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_logs_arrive_live_over_websocket_and_the_cli() {
    let config = format!(
        "providers:\n  fx:\n    command: [\"{}\", \"--stderr-lines\", \"3\"]\n",
        bin("hangar-fixture").display()
    );
    let server = Server::start(&config).await;
    let (mut ws, _) = ws_open(&server, "/ws/providers/fx/logs?lines=0", ADMIN_KEY, false)
        .await
        .unwrap();
    let mut cli = Command::new(bin("hangar"))
        .args(["--url", &server.url, "--key", ADMIN_KEY])
        .args(["providers", "logs", "fx", "-f", "-n", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Give both followers a moment to subscribe, then start the provider:
    // every line it writes arrives live.
    tokio::time::sleep(Duration::from_millis(500)).await;
    start_fx(&server).await;
    let frames = ws_until(&mut ws, WAIT, |l| {
        l["line"]
            .as_str()
            .is_some_and(|t| t.starts_with("hangar-fixture ready"))
    })
    .await;
    let lines: Vec<&str> = frames.iter().filter_map(|l| l["line"].as_str()).collect();
    assert!(
        lines.starts_with(&[
            "fixture stderr line 0",
            "fixture stderr line 1",
            "fixture stderr line 2"
        ]),
        "{lines:?}"
    );
    assert_eq!(frames[0]["provider_id"], "fx");
    assert_eq!(frames[0]["stream"], "stderr");

    let stdout = cli.stdout.take().unwrap();
    let reader = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let ready = line.contains("hangar-fixture ready");
            got.push(line);
            if ready {
                break;
            }
        }
        got
    });
    let got = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    let _ = cli.kill();
    let _ = cli.wait();
    assert!(got[0].ends_with("fixture stderr line 0"), "{got:?}");

    // With `lines`, the recent ones come first.
    let (mut ws, _) = ws_open(&server, "/ws/providers/fx/logs?lines=2", ADMIN_KEY, true)
        .await
        .unwrap();
    let first = ws_next(&mut ws, WAIT).await.unwrap();
    assert_eq!(first["line"], "fixture stderr line 2");
    // Unknown provider: 404 before any upgrade.
    let err = ws_open(&server, "/ws/providers/nope/logs", ADMIN_KEY, false)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 404),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_repeatedly_raises_alerts_and_calls_the_webhook() {
    let (sink, mut posted) = json_sink().await;
    let hook = format!("{sink}/hook");
    let config = fixture_config(
        "fx",
        &format!(
            "server:\n  alerts:\n    restart_loop_count: 3\n    webhooks:\n      critical: {hook}\n"
        ),
    );
    let server = Server::start(&config).await;
    // A webhook URL may hold a credential: the config view redacts it.
    let (_, v) = server.get_json("/config").await;
    assert_eq!(
        v["config"]["server"]["alerts"]["webhooks"]["critical"], "<redacted>",
        "{v}"
    );
    assert!(!v.to_string().contains(&hook), "{v}");
    let mut sse = Sse::open(&server, ADMIN_KEY, "event_type=AlertRaised", None).await;
    for _ in 0..3 {
        start_fx(&server).await;
        let r = server.call_tool_as(ADMIN_KEY, "fx__crash", json!({})).await;
        assert!(r["error"].is_object(), "{r}");
        server.wait_state("fx", "dead").await;
    }

    // The webhook gets the critical alert.
    let alert = tokio::time::timeout(WAIT, async {
        loop {
            let a = posted.recv().await.unwrap();
            if a["kind"] == "restart_loop" {
                return a;
            }
        }
    })
    .await
    .expect("the webhook was called");
    assert_eq!(alert["level"], "critical");
    assert_eq!(alert["subject"], "provider:fx");
    assert!(
        alert["message"].as_str().unwrap().contains("3 times"),
        "{alert}"
    );

    // The alert list, by level, newest first.
    let (status, v) = server
        .get_json("/observability/alerts?level=critical")
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["alerts"][0]["kind"], "restart_loop");
    assert!(v["alerts"][0]["time"].is_string());
    assert!(v["alerts"][0]["cause"].is_string(), "{v}");
    let (_, v) = server.get_json("/observability/alerts?level=warning").await;
    // One provider_dead alert while it stays dead (not one per death).
    let kinds: BTreeSet<&str> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains("provider_dead"), "{v}");
    let (status, v) = server.get_json("/observability/alerts?level=loud").await;
    assert_eq!(status, 422, "{v}");

    // The alerts went out on the event stream as well.
    let seen = sse
        .until(WAIT, |e| e.data["payload"]["kind"] == "restart_loop")
        .await;
    assert!(
        seen.iter()
            .all(|e| e.data["event_type"] == "AlertRaised" && e.data["stream_id"] == "alerts")
    );

    // Recovery is an info alert.
    start_fx(&server).await;
    let (_, v) = server.get_json("/observability/alerts?level=info").await;
    assert_eq!(v["alerts"][0]["kind"], "provider_recovered", "{v}");

    // The CLI's views.
    let out = server.cli(&["alerts", "--level", "critical"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("restart_loop") && text.contains("provider:fx"),
        "{text}"
    );
    let out = server.cli(&["status"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("providers  1 (ready 1,"), "{text}");
    assert!(text.contains("restart_loop"), "{text}");
    let out = server.cli(&["status", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["providers_ready"], 1.0);
    assert!(v["summary"]["tool_calls_total"].as_f64().unwrap() >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_follow_permissions_and_end_when_the_key_is_revoked() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let viewer = server.key_for("vera", "viewer").await;
    let mut sse = Sse::open(&server, &viewer, "", None).await;
    // An admin change (audit stream) then a provider start: the viewer,
    // without audit:read, gets only the second.
    let (status, _) = server
        .send(
            Method::POST,
            "/auth/check-permission",
            Some(json!({"principal_id": "vera", "permission": "events:read"})),
        )
        .await;
    assert_eq!(status, 200);
    start_fx(&server).await;
    let seen = sse
        .until(WAIT, |e| is_transition(&e.data, "fx", "ready"))
        .await;
    assert!(
        seen.iter().all(|e| e.data["stream_id"] != "audit"),
        "{seen:?}"
    );
    // An auditor sees the audit stream.
    let auditor = server.key_for("aude", "auditor").await;
    let mut audit = Sse::open(&server, &auditor, "event_type=AdminChange", None).await;
    server.send(Method::POST, "/providers/fx/stop", None).await;
    let e = audit.next(WAIT).await.unwrap();
    assert_eq!(e.data["stream_id"], "audit");

    // Revoking the viewer's key ends its stream (checked every few seconds).
    let (_, keys) = server.get_json("/auth/keys/vera").await;
    let key_id = keys["keys"][0]["key_id"].as_str().unwrap().to_owned();
    let (status, v) = server
        .send(Method::DELETE, &format!("/auth/keys/{key_id}"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    // A busy stream too: provider state changes (which a viewer sees) keep
    // coming every few hundred ms, and the check still comes every few
    // seconds.
    let busy = {
        let (url, key) = (server.url.clone(), ADMIN_KEY.to_owned());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for action in ["stop", "start"].iter().cycle() {
                let _ = http
                    .post(format!("{url}/api/providers/fx/{action}"))
                    .bearer_auth(&key)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let ended = tokio::time::timeout(WAIT, async {
        while sse.next(Duration::from_secs(30)).await.is_some() {}
    })
    .await;
    busy.abort();
    assert!(ended.is_ok(), "the revoked key's stream kept going");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_never_reads_does_not_grow_the_servers_memory() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(&fixture_config(
        "fx",
        "server:\n  write_timeout_s: 3\n  history_retention: 100\n  \
         rate_limit: {requests: 1000000, per_seconds: 60}\n",
    ))
    .await;
    start_fx(&server).await;
    let pid = server.pid().unwrap();
    // Warm up, then measure.
    flood(&server, 500).await;
    let before = rss_kib(pid);

    // A consumer that asks for every event and never reads a byte.
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
                 Accept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Each call is two events (the invocation record and its audit record).
    flood(&server, 20_000).await;
    let after = rss_kib(pid);
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("RSS before {before} KiB, after 40,000 events {after} KiB");
    // Held, those events would be tens of MiB; a stalled consumer holds a
    // cursor in a 1,024-event ring and a few queued events.
    assert!(
        grown_mib < 24,
        "RSS grew by {grown_mib} MiB with a consumer that never reads"
    );
    // The stalled connection was cut off by the write timeout, and the
    // server still serves.
    let (status, v) = server.get_json("/observability/metrics").await;
    assert_eq!(status, 200);
    assert!(v["summary"]["tool_calls_total"].as_f64().unwrap() >= 20_500.0);
    drop(stalled);
}

/// `n` tool calls, 16 at a time.
async fn flood(server: &Server, n: usize) {
    let client = reqwest::Client::new();
    let url = server.at("/mcp");
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": "fx__add", "arguments": {"a": 1, "b": 2},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "0"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    })
    .to_string();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = (0..16).map(|_| {
        let (client, url, body, next) = (client.clone(), url.clone(), body.clone(), next.clone());
        tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let r = client
                    .post(&url)
                    .bearer_auth(ADMIN_KEY)
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json, text/event-stream")
                    .header("MCP-Protocol-Version", "2026-07-28")
                    .header("Mcp-Method", "tools/call")
                    .header("Mcp-Name", "fx__add")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await;
            }
        })
    });
    for w in futures::future::join_all(workers).await {
        w.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let mut server =
        Server::start_logged_with(&fixture_config("fx", ""), &["--log-format", "json"]).await;
    server.call_text("fx__add", json!({"a": 1, "b": 1})).await;
    server.stop();
    let text = server.log_text();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    // The tool call's span carries provider, tool, principal, session and era.
    let span = lines
        .iter()
        .flat_map(|l| l["spans"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == "tools/call")
        .expect("a tools/call span in the debug log");
    assert_eq!(span["provider"], "fx");
    assert_eq!(span["tool"], "add");
    assert_eq!(span["principal"], "admin");
    assert_eq!(span["era"], "2026-07-28");
    assert!(span["session"].is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_is_an_event() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let mut sse = Sse::open(&server, ADMIN_KEY, "event_type=ConfigReloaded", None).await;
    let config = fixture_config("fx", "") + &fixture_config("fy", "").replace("providers:\n", "");
    std::fs::write(server.config_path(), config).unwrap();
    let (status, v) = server
        .send(Method::POST, "/config/reload", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{v}");
    let e = sse.next(WAIT).await.unwrap();
    assert_eq!(e.data["stream_id"], "config");
    assert_eq!(
        e.data["payload"]["providers"]["added"],
        json!(["fy"]),
        "{:?}",
        e.data
    );
}

/// What `fx__trace_context` saw in its request's `_meta` when called with
/// `meta` (an object of extra `_meta` entries).
async fn trace_seen(server: &Server, meta: Value) -> Value {
    let r = server
        .call_tool_meta(ADMIN_KEY, "fx__trace_context", json!({}), meta)
        .await;
    serde_json::from_str(&result_text(&r["result"])).unwrap_or_else(|_| panic!("{r}"))
}

/// The spans of every OTLP/HTTP JSON export posted so far, flattened, until
/// one matches `want`.
async fn exported_span(
    posted: &mut tokio::sync::mpsc::UnboundedReceiver<Value>,
    want: impl Fn(&Value) -> bool,
) -> (Value, Value) {
    tokio::time::timeout(WAIT, async {
        loop {
            let export = posted.recv().await.expect("the collector");
            for rs in export["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        if want(span) {
                            return (rs["resource"].clone(), span.clone());
                        }
                    }
                }
            }
        }
    })
    .await
    .expect("the span was exported")
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_join_the_clients_trace_and_are_exported_over_otlp() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CLIENT_SPAN: &str = "00f067aa0ba902b7";
    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    let meta = json!({
        "traceparent": traceparent,
        "tracestate": "congo=t61rcWkgMzE",
        "baggage": "user=alice",
    });

    // Without an exporter the client's context reaches the provider as it
    // was; baggage does not; a malformed traceparent is dropped.
    let plain = Server::start(&fixture_config("fx", "")).await;
    let seen = trace_seen(&plain, meta.clone()).await;
    assert_eq!(seen["traceparent"], traceparent.as_str(), "{seen}");
    assert_eq!(seen["tracestate"], "congo=t61rcWkgMzE");
    assert_eq!(seen["baggage"], Value::Null);
    let seen = trace_seen(&plain, json!({"traceparent": "00-zz-not-a-trace"})).await;
    assert_eq!(seen["traceparent"], Value::Null, "{seen}");
    drop(plain);

    // With an OTLP collector: Hangar's tools/call span is the client span's
    // child, the provider's parent, and is exported with its fields.
    let (collector, mut posted) = json_sink().await;
    let server = Server::start_with_env(
        &fixture_config("fx", ""),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "hangar-e2e"),
        ],
    )
    .await;
    let seen = trace_seen(&server, meta).await;
    let got = seen["traceparent"]
        .as_str()
        .expect("a traceparent")
        .to_owned();
    assert!(got.starts_with(&format!("00-{TRACE}-")), "{got}");
    let hangar_span = &got[36..52];
    assert_ne!(
        hangar_span, CLIENT_SPAN,
        "the provider's parent is Hangar's span"
    );
    assert_eq!(seen["tracestate"], "congo=t61rcWkgMzE");

    let (resource, span) = exported_span(&mut posted, |s| s["name"] == "tools/call").await;
    assert_eq!(span["traceId"], TRACE, "{span}");
    assert_eq!(span["spanId"], hangar_span, "{span}");
    assert_eq!(span["parentSpanId"], CLIENT_SPAN, "{span}");
    assert_eq!(attribute(&span, "provider").unwrap()["stringValue"], "fx");
    assert_eq!(
        attribute(&span, "tool").unwrap()["stringValue"],
        "trace_context"
    );
    assert_eq!(
        attribute(&span, "principal").unwrap()["stringValue"],
        "admin"
    );
    assert_eq!(
        attribute(&span, "era").unwrap()["stringValue"],
        "2026-07-28"
    );
    assert_eq!(
        attribute(&resource, "service.name").unwrap()["stringValue"],
        "hangar-e2e"
    );

    // A call without a client context starts a trace of Hangar's own, and
    // the provider still gets Hangar's span as its parent.
    let seen = trace_seen(&server, json!({})).await;
    let got = seen["traceparent"]
        .as_str()
        .expect("a traceparent")
        .to_owned();
    assert!(!got.contains(TRACE), "{got}");
    let (_, span) = exported_span(&mut posted, |s| {
        s["name"] == "tools/call" && s["spanId"] == got[36..52]
    })
    .await;
    assert_eq!(span["traceId"], got[3..35]);
}
