//! Groups end to end: real `hangar-fixture` members behind one name,
//! load balancing, failover on kill -9, circuit breakers that trip and
//! recover, and the group REST routes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use hangar_e2e::{ADMIN_KEY, Server, bin, process_alive};
use reqwest::Method;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

/// A member: the fixture with `MEMBER=<id>` in its env.
fn member(id: &str) -> String {
    format!(
        "  {id}:\n    command: [\"{}\"]\n    env:\n      MEMBER: {id}\n",
        bin("hangar-fixture").display()
    )
}

async fn connect(server: &Server) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.at("/mcp")).auth_header(ADMIN_KEY),
    );
    ().serve(transport).await.unwrap()
}

fn args(v: Value) -> rmcp::model::JsonObject {
    v.as_object().cloned().unwrap()
}

/// Calls `<group>__env MEMBER` and returns which member answered.
async fn who(client: &Client, group: &str) -> Result<String, String> {
    let name = format!("{group}__env");
    let r = client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args(json!({"name": "MEMBER"}))))
        .await
        .map_err(|e| e.to_string())?;
    if r.is_error == Some(true) {
        return Err(format!("{r:?}"));
    }
    Ok(r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect())
}

/// Kills provider `id`'s process with SIGKILL and waits until it is gone.
async fn kill_9(server: &Server, id: &str) {
    let (_, p) = server.get_json(&format!("/providers/{id}")).await;
    let pid = i32::try_from(p["pid"].as_i64().unwrap()).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for _ in 0..200 {
        if !process_alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn counts(client: &Client, group: &str, calls: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for _ in 0..calls {
        *out.entry(who(client, group).await.unwrap()).or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_evenly_and_weights_hold() {
    let config = format!(
        "providers:\n{}{}{}{}groups:\n  pool:\n    strategy: round_robin\n    members:\n      - provider: a\n      - provider: b\n  weighted:\n    strategy: weighted_round_robin\n    members:\n      - provider: c\n        weight: 3\n      - provider: a2\n        weight: 1\n",
        member("a"),
        member("b"),
        member("c"),
        member("a2"),
    );
    let server = Server::start(&config).await;
    let client = connect(&server).await;

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    assert!(names.contains(&"pool__echo".to_owned()), "{names:?}");
    assert!(names.contains(&"weighted__echo".to_owned()));
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("a__") || n.starts_with("b__")),
        "members are reached through their group: {names:?}"
    );

    let rr = counts(&client, "pool", 1000).await;
    assert_eq!(rr.get("a"), Some(&500), "{rr:?}");
    assert_eq!(rr.get("b"), Some(&500), "{rr:?}");

    let w = counts(&client, "weighted", 400).await;
    assert_eq!(w.get("c"), Some(&300), "{w:?}");
    assert_eq!(w.get("a2"), Some(&100), "{w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_prefers_the_idle_member() {
    let config = format!(
        "providers:\n{}{}groups:\n  pool:\n    strategy: least_connections\n    members:\n      - provider: a\n      - provider: b\n",
        member("a"),
        member("b"),
    );
    let server = Server::start(&config).await;
    let client = connect(&server).await;
    // Start both members so neither pays a start during the measurement.
    counts(&client, "pool", 4).await;

    let peer = client.peer().clone();
    let slow = tokio::spawn(async move {
        peer.call_tool(
            CallToolRequestParams::new("pool__sleep").with_arguments(args(json!({"ms": 3000}))),
        )
        .await
    });
    // Wait until the sleep is in flight on one member.
    let mut busy = None;
    for _ in 0..100 {
        let (_, g) = server.get_json("/groups/pool").await;
        if let Some(m) = g["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["in_flight"] == 1)
        {
            busy = Some(m["member_id"].as_str().unwrap().to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = busy.expect("the sleep call never showed up as in flight");
    let seen = counts(&client, "pool", 20).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        !seen.contains_key(&busy),
        "calls went to the busy member {busy}: {seen:?}"
    );
    slow.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_member_fails_no_call() {
    let config = format!(
        "providers:\n{}{}groups:\n  pool:\n    members:\n      - provider: a\n      - provider: b\n",
        member("a"),
        member("b"),
    );
    let server = Server::start(&config).await;
    let client = connect(&server).await;
    let mut failures = Vec::new();
    let mut served = BTreeMap::<String, usize>::new();
    for i in 0..60 {
        if i == 20 {
            kill_9(&server, "a").await;
        }
        match who(&client, "pool").await {
            Ok(m) => *served.entry(m).or_default() += 1,
            Err(e) => failures.push((i, e)),
        }
    }
    assert!(
        failures.is_empty(),
        "calls failed after kill -9: {failures:?}"
    );
    assert!(
        served.get("a").is_some_and(|n| *n > 10) && served.get("b").is_some_and(|n| *n > 10),
        "{served:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_half_opens_and_closes_and_caller_errors_never_trip_it() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("primary-may-start");
    let fixture = bin("hangar-fixture").display().to_string();
    let config = format!(
        "providers:\n  primary:\n    command: [\"sh\", \"-c\", \"test -f {flag} && exec {fixture}\"]\n    env:\n      MEMBER: primary\n{}groups:\n  pool:\n    strategy: priority\n    circuit_breaker:\n      failure_threshold: 2\n      reset_timeout_s: 1\n    members:\n      - provider: primary\n        priority: 1\n      - provider: backup\n        priority: 2\n",
        member("backup"),
        flag = flag.display(),
    );
    let server = Server::start(&config).await;
    let client = connect(&server).await;

    // The primary cannot start: each call fails over to the backup, no call fails.
    for _ in 0..2 {
        assert_eq!(who(&client, "pool").await.unwrap(), "backup");
    }
    let (_, g) = server.get_json("/groups/pool").await;
    assert_eq!(g["members"][0]["circuit_breaker_state"], "open", "{g}");
    assert_eq!(g["members"][0]["consecutive_failures"], 2, "{g}");
    assert_eq!(g["circuit_breaker_state"], "open");
    // Open: the healthy backup keeps serving.
    for _ in 0..5 {
        assert_eq!(who(&client, "pool").await.unwrap(), "backup");
    }

    // Caller errors (a tool error from bad arguments) go to the backup and never count.
    for _ in 0..5 {
        let r = client
            .call_tool(
                CallToolRequestParams::new("pool__add").with_arguments(args(json!({"a": "x"}))),
            )
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true));
    }
    let (_, g) = server.get_json("/groups/pool").await;
    assert_eq!(g["members"][1]["circuit_breaker_state"], "closed", "{g}");
    assert_eq!(g["members"][1]["consecutive_failures"], 0, "{g}");

    // The member recovers; after the reset timeout the breaker half-opens,
    // the probe succeeds and it closes.
    std::fs::write(&flag, "ok").unwrap();
    let mut half_open = false;
    for _ in 0..100 {
        let (_, g) = server.get_json("/groups/pool").await;
        if g["members"][0]["circuit_breaker_state"] == "half_open" {
            half_open = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(half_open, "the reset timeout never half-opened the breaker");
    assert_eq!(who(&client, "pool").await.unwrap(), "primary");
    let (_, g) = server.get_json("/groups/pool").await;
    assert_eq!(g["members"][0]["circuit_breaker_state"], "closed", "{g}");
    assert_eq!(g["state"], "healthy", "{g}");
    assert_eq!(who(&client, "pool").await.unwrap(), "primary");

    // Breaker and provider changes are stored domain events, in order.
    drop(client);
    let mut server = server;
    server.stop();
    let db = rusqlite::Connection::open(server.data_dir.join("hangar.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT version, payload FROM events WHERE stream_id = 'group:pool'
             AND event_type = 'CircuitBreakerStateChanged' ORDER BY position",
        )
        .unwrap();
    let rows: Vec<(i64, Value)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                serde_json::from_str(&r.get::<_, String>(1)?).unwrap(),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let changes: Vec<(String, String, String)> = rows
        .iter()
        .map(|(_, p)| {
            (
                p["member_id"].as_str().unwrap().to_owned(),
                p["from"].as_str().unwrap().to_owned(),
                p["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("primary", "closed", "open"),
        ("primary", "open", "half_open"),
        ("primary", "half_open", "closed"),
    ]
    .iter()
    .map(|(m, f, t)| ((*m).to_owned(), (*f).to_owned(), (*t).to_owned()))
    .collect();
    assert_eq!(changes, expected);
    let versions: Vec<i64> = rows.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    let provider_events: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM events WHERE stream_id = 'provider:primary' AND event_type = 'ProviderStateChanged'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(provider_events >= 4, "{provider_events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_routes_over_rest_and_persistence() {
    let config = format!("providers:\n{}{}{}", member("a"), member("b"), member("c"));
    let mut server = Server::start(&config).await;

    let r = server
        .api(Method::POST, "/groups")
        .json(&json!({"group_id": "g", "strategy": "priority", "members": [{"provider": "a"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"group_id": "g", "created": true})
    );

    for (body, status) in [
        (json!({"group_id": "g"}), 409),
        (json!({"group_id": "a"}), 409),
        (
            json!({"group_id": "h", "members": [{"provider": "nope"}]}),
            404,
        ),
        (json!({"group_id": "h", "strategy": "fastest"}), 422),
        (json!({"group_id": "h", "min_healthy": 0}), 422),
        (json!({"group_id": "bad id"}), 422),
    ] {
        let r = server
            .api(Method::POST, "/groups")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status_code"], status, "{v}");
    }

    let (_, list) = server.get_json("/groups").await;
    assert_eq!(list["groups"][0]["group_id"], "g");
    assert_eq!(list["groups"][0]["strategy"], "priority");

    let r = server
        .api(Method::POST, "/groups/g/members")
        .json(&json!({"member_id": "b", "weight": 2, "priority": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"group_id": "g", "provider_id": "b", "added": true})
    );
    let r = server
        .api(Method::POST, "/groups/g/members")
        .json(&json!({"member_id": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    let r = server
        .api(Method::PUT, "/groups/g")
        .json(&json!({"circuit_breaker": {"failure_threshold": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .api(Method::PUT, "/groups/g")
        .json(&json!({"circuit_breaker": {"reset_timeout_s": 7}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .api(Method::PUT, "/groups/g")
        .json(&json!({"circuit_breaker": {"failure_threshold": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = server
        .api(Method::PUT, "/groups/g")
        .json(&json!({"strategy": "round_robin", "min_healthy": 2, "description": "pool"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"group_id": "g", "updated": true})
    );

    let (_, g) = server.get_json("/groups/g").await;
    assert_eq!(g["strategy"], "round_robin");
    assert_eq!(g["min_healthy"], 2);
    assert_eq!(g["members"][1]["member_id"], "b");
    assert_eq!(g["members"][1]["weight"], 2);
    assert_eq!(g["members"][1]["circuit_breaker_state"], "closed");
    assert_eq!(g["circuit_breaker"]["failure_threshold"], 3, "{g}");
    assert_eq!(g["circuit_breaker"]["reset_timeout_s"], 7, "{g}");

    // A member cannot be deleted out from under its group.
    let r = server
        .api(Method::DELETE, "/providers/a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    let r = server
        .api(Method::POST, "/groups/g/rebalance")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "rebalanced", "group_id": "g"})
    );

    // Survives a restart.
    server.restart().await;
    let (status, g) = server.get_json("/groups/g").await;
    assert_eq!(status, 200);
    assert_eq!(g["members"].as_array().unwrap().len(), 2);
    assert_eq!(g["description"], "pool");

    let r = server
        .api(Method::DELETE, "/groups/g/members/b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"group_id": "g", "provider_id": "b", "removed": true})
    );
    let r = server
        .api(Method::DELETE, "/groups/g/members/zzz")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = server
        .api(Method::DELETE, "/groups/g")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"group_id": "g", "deleted": true})
    );
    let (status, v) = server.get_json("/groups/g").await;
    assert_eq!(status, 404);
    assert_eq!(v["status_code"], 404);
    server.restart().await;
    let (status, _) = server.get_json("/groups/g").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_groups() {
    let config = format!("providers:\n{}{}", member("a"), member("b"));
    let server = Server::start(&config).await;
    let hangar = |args: &[&str]| {
        std::process::Command::new(bin("hangar"))
            .args(["--url", &server.url, "--key", ADMIN_KEY])
            .args(args)
            .output()
            .unwrap()
    };
    let out = hangar(&[
        "groups",
        "create",
        "g",
        "--strategy",
        "priority",
        "--member",
        "a:1:1",
        "--failure-threshold",
        "3",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = hangar(&["groups", "add-member", "g", "b", "--priority", "2"]);
    assert!(out.status.success(), "{out:?}");
    let out = hangar(&["groups", "update", "g", "--reset-timeout", "9"]);
    assert!(out.status.success(), "{out:?}");
    let out = hangar(&["--output", "json", "groups", "get", "g"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["members"].as_array().unwrap().len(), 2);
    assert_eq!(v["circuit_breaker"]["failure_threshold"], 3, "{v}");
    assert_eq!(v["circuit_breaker"]["reset_timeout_s"], 9, "{v}");
    let out = hangar(&["groups", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("priority"),
        "{out:?}"
    );
    let out = hangar(&["groups", "rebalance", "g"]);
    assert!(out.status.success(), "{out:?}");
    let out = hangar(&["groups", "remove-member", "g", "b"]);
    assert!(out.status.success(), "{out:?}");
    let out = hangar(&["groups", "delete", "g"]);
    assert!(out.status.success(), "{out:?}");
    let out = hangar(&["groups", "get", "g"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

/// A member Hangar itself refuses to start (`server.max_running_providers`
/// reached) is not at fault: its breaker does not count it, and the group
/// answers as soon as there is room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hangar_side_start_refusals_never_trip_a_members_breaker() {
    let config = format!(
        "providers:\n{}{}groups:\n  pool:\n    circuit_breaker:\n      failure_threshold: 1\n      reset_timeout_s: 300\n    members:\n      - provider: solo\nserver:\n  max_running_providers: 1\n",
        member("other"),
        member("solo"),
    );
    let server = Server::start(&config).await;
    let client = connect(&server).await;
    // The member runs once (its tools are listed), then the other provider
    // takes the only slot (listing at connect may have started either).
    server
        .send(Method::POST, "/providers/other/stop", None)
        .await;
    let (status, v) = server
        .send(Method::POST, "/providers/solo/start", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(who(&client, "pool").await.unwrap(), "solo");
    for (path, want) in [
        ("/providers/solo/stop", 200),
        ("/providers/other/start", 200),
    ] {
        let (status, v) = server.send(Method::POST, path, None).await;
        assert_eq!(status, want, "{path}: {v}");
    }

    // No room for the member: the call fails, naming the limit.
    for _ in 0..2 {
        let err = who(&client, "pool").await.unwrap_err();
        assert!(err.contains("max_running_providers"), "{err}");
    }
    let (_, g) = server.get_json("/groups/pool").await;
    assert_eq!(g["members"][0]["circuit_breaker_state"], "closed", "{g}");
    assert_eq!(g["members"][0]["consecutive_failures"], 0, "{g}");

    // Room again: the member answers at once (an open breaker would refuse
    // it for reset_timeout_s).
    server
        .send(Method::POST, "/providers/other/stop", None)
        .await;
    assert_eq!(who(&client, "pool").await.unwrap(), "solo");
}

/// Resource reads and prompt gets go through a group like tool calls: a
/// member's failure reaches its breaker and its health, and a member killed
/// with -9 fails none of them (a request it never received goes to the
/// other member).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_reads_and_prompt_gets_fail_over_like_calls() {
    use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
    let config = format!(
        "providers:\n{}{}groups:\n  pool:\n    members:\n      - provider: a\n      - provider: b\n",
        member("a"),
        member("b"),
    );
    let config = config
        .replace("MEMBER: a\n", "MEMBER: a\n    call_timeout_s: 1\n")
        .replace("MEMBER: b\n", "MEMBER: b\n    call_timeout_s: 1\n");
    let server = Server::start(&config).await;
    let client = connect(&server).await;

    // A read the member does not answer in time is the member's failure:
    // its breaker and its health count it.
    let slow = client
        .read_resource(ReadResourceRequestParams::new("test://slow/3000"))
        .await;
    assert!(slow.is_err(), "{slow:?}");
    let (_, g) = server.get_json("/groups/pool").await;
    let counted: Vec<_> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["consecutive_failures"] == 1)
        .collect();
    assert_eq!(counted.len(), 1, "{g}");
    let id = counted[0]["member_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, p) = server.get_json(&format!("/providers/{id}")).await;
    assert_eq!(p["consecutive_failures"], 1, "{p}");

    let mut failures = Vec::new();
    for i in 0..40 {
        if i == 10 {
            kill_9(&server, "a").await;
        }
        let read = client
            .read_resource(ReadResourceRequestParams::new("test://static-text"))
            .await;
        if let Err(e) = read {
            failures.push((i, "read", e.to_string()));
        }
        let get = client
            .get_prompt(GetPromptRequestParams::new("pool__test_simple_prompt"))
            .await;
        if let Err(e) = get {
            failures.push((i, "get", e.to_string()));
        }
    }
    assert!(
        failures.is_empty(),
        "requests failed after kill -9: {failures:?}"
    );
}
