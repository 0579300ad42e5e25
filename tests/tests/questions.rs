//! Questions end to end: the fixture's `test_elicitation` asks for a username
//! and an email. A client without the elicitation capability gets the answer
//! an operator gives over REST (or the CLI); a client with it answers itself,
//! in both protocol eras.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::time::Duration;

use hangar_e2e::mcp_client::text;
use hangar_e2e::{ADMIN_KEY, Server, fixture_config};
use reqwest::Method;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult,
    ElicitationAction, Implementation, ProtocolVersion,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient};
use serde_json::{Value, json};

#[derive(Clone)]
struct Client {
    elicitation: bool,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        let caps = if self.elicitation {
            ClientCapabilities::builder().enable_elicitation().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("e2e", "0"))
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let mut r = ElicitResult::new(ElicitationAction::Accept);
        r.content = Some(json!({"username": "from-client", "email": "c@example.com"}));
        Ok(r)
    }
}

async fn connect(
    server: &Server,
    lifecycle: ClientLifecycleMode,
    elicitation: bool,
) -> RunningService<RoleClient, Client> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.at("/mcp")).auth_header(ADMIN_KEY),
    );
    Client { elicitation }
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .expect("connect to hangar")
}

fn legacy() -> ClientLifecycleMode {
    ClientLifecycleMode::Initialize
}

fn modern() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

fn elicit_call() -> CallToolRequestParams {
    CallToolRequestParams::new("fx__test_elicitation").with_arguments(
        json!({"message": "Who are you?"})
            .as_object()
            .cloned()
            .unwrap(),
    )
}

async fn one_question(server: &Server) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (_, v) = server.get_json("/questions").await;
        if let Some([q]) = v["questions"].as_array().map(Vec::as_slice) {
            return q.clone();
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no pending question: {last}");
}

/// Answers in the order of the question's fields.
fn answers_for(q: &Value, username: &str, email: &str) -> Value {
    let list: Vec<Value> = q["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| match item["header"].as_str().unwrap() {
            "username" => json!([username]),
            "email" => json!([email]),
            other => panic!("unexpected field {other}"),
        })
        .collect();
    json!({ "answers": list })
}

async fn answered_over_rest(mode: ClientLifecycleMode) {
    let server = Server::start(&fixture_config("fx", "")).await;
    let client = connect(&server, mode, false).await;

    let peer = client.peer().clone();
    let call = tokio::spawn(async move { peer.call_tool(elicit_call()).await });
    let q = one_question(&server).await;
    assert_eq!(q["provider"], "fx");
    assert_eq!(q["tool"], "test_elicitation");
    assert_eq!(q["principal"], "admin");
    assert_eq!(q["message"], "Who are you?");
    assert!(
        q["requested_schema"]["properties"]["username"].is_object(),
        "{q}"
    );
    assert_eq!(q["questions"].as_array().unwrap().len(), 2);
    assert!(q["created_at"].is_string() && q["expires_at"].is_string());
    let path = format!("/questions/{}/reply", q["id"].as_str().unwrap());
    // Answers must fit the schema: both fields are required.
    let (s, _) = server
        .send(
            Method::POST,
            &path,
            Some(json!({"answers": [["only-one"]]})),
        )
        .await;
    assert_eq!(s, 422);
    let (s, v) = server
        .send(
            Method::POST,
            &path,
            Some(answers_for(&q, "alice", "alice@example.com")),
        )
        .await;
    assert_eq!((s, &v["replied"]), (200, &json!(true)), "{v}");
    let r = call.await.unwrap().unwrap();
    let t = text(&r);
    assert!(t.contains("action=accept"), "{t}");
    assert!(
        t.contains("\"username\":\"alice\"") && t.contains("alice@example.com"),
        "{t}"
    );
    let (s, _) = server
        .send(Method::POST, &path, Some(json!({"action": "decline"})))
        .await;
    assert_eq!(s, 409);
    let (s, _) = server
        .send(
            Method::POST,
            "/questions/q_unknown/reply",
            Some(json!({"action": "cancel"})),
        )
        .await;
    assert_eq!(s, 404);

    // Declined.
    let peer = client.peer().clone();
    let call = tokio::spawn(async move { peer.call_tool(elicit_call()).await });
    let q = one_question(&server).await;
    let path = format!("/questions/{}/reply", q["id"].as_str().unwrap());
    server
        .send(Method::POST, &path, Some(json!({"action": "decline"})))
        .await;
    let t = text(&call.await.unwrap().unwrap());
    assert!(t.contains("action=decline"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elicitation_without_client_support_is_answered_over_rest_legacy() {
    answered_over_rest(legacy()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elicitation_without_client_support_is_answered_over_rest_2026() {
    answered_over_rest(modern()).await;
}

async fn forwarded(mode: ClientLifecycleMode) {
    let server = Server::start(&fixture_config("fx", "")).await;
    let client = connect(&server, mode, true).await;
    let r = client.call_tool(elicit_call()).await.unwrap();
    let t = text(&r);
    assert!(t.contains("from-client"), "{t}");
    let (_, v) = server.get_json("/questions").await;
    assert_eq!(v["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elicitation_goes_to_a_client_that_supports_it_legacy() {
    forwarded(legacy()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elicitation_goes_to_a_client_that_supports_it_2026() {
    forwarded(modern()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_and_answers_questions() {
    let server = Server::start(&fixture_config("fx", "")).await;
    let client = connect(&server, legacy(), false).await;
    let peer = client.peer().clone();
    let call = tokio::spawn(async move { peer.call_tool(elicit_call()).await });
    let q = one_question(&server).await;
    let id = q["id"].as_str().unwrap();
    let out = server.cli(&["questions", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listed.contains(id) && listed.contains("username"),
        "{listed}"
    );
    let answers = answers_for(&q, "bob", "bob@example.com");
    let args: Vec<String> = answers["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a[0].as_str().unwrap().to_owned())
        .collect();
    let mut cli_args = vec!["questions", "answer", id];
    cli_args.extend(args.iter().map(String::as_str));
    let out = server.cli(&cli_args);
    assert!(out.status.success(), "{out:?}");
    let t = text(&call.await.unwrap().unwrap());
    assert!(t.contains("\"username\":\"bob\""), "{t}");
}
