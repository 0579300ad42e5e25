//! Tool and prompt naming modes (`server.tool_naming`), a provider's
//! `prefix:`, and per-tool `rename`/`hide`, through the real server in both
//! eras; collisions are reported by `GET /api/system`, never dropped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use hangar_e2e::mcp_client::{connect, legacy, modern, text};
use hangar_e2e::{ADMIN_KEY, Server, bin};
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams};
use serde_json::json;

fn two_fixtures(mode: &str) -> String {
    let fixture = bin("hangar-fixture").display().to_string();
    format!(
        r#"providers:
  a:
    command: ["{fixture}"]
    prefix: alpha
    tools:
      rename: {{ add: plus }}
      hide: [crash]
    prompts:
      rename: {{ test_simple_prompt: hello_prompt }}
  b:
    command: ["{fixture}"]
server:
  tool_naming: {mode}
"#
    )
}

async fn names(server: &Server, era: rmcp::ClientLifecycleMode) -> (Vec<String>, Vec<String>) {
    let (client, _) = connect(server, era).await;
    let tools = client.list_all_tools().await.unwrap();
    let prompts = client.list_all_prompts().await.unwrap();
    let mut tools: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    let mut prompts: Vec<String> = prompts.iter().map(|p| p.name.clone()).collect();
    tools.sort();
    prompts.sort();
    (tools, prompts)
}

#[tokio::test]
async fn conditional_names_are_bare_while_unique_and_prefixed_on_a_collision() {
    let server = Server::start(&two_fixtures("conditional")).await;
    for era in [legacy(), modern()] {
        let (tools, prompts) = names(&server, era).await;
        // `plus` (a's renamed `add`) and b's `add` and `crash` are unique.
        for unique in ["plus", "add", "crash"] {
            assert!(tools.contains(&unique.to_owned()), "{unique} in {tools:?}");
        }
        // Both have `echo`: prefixed, a with its own prefix.
        assert!(tools.contains(&"alpha__echo".to_owned()), "{tools:?}");
        assert!(tools.contains(&"b__echo".to_owned()), "{tools:?}");
        assert!(!tools.contains(&"echo".to_owned()));
        // a's `crash` is hidden: only b's is there, under the bare name.
        assert!(!tools.iter().any(|t| t.contains("crash") && t != "crash"));
        assert!(prompts.contains(&"hello_prompt".to_owned()), "{prompts:?}");
        assert!(tools.iter().all(|t| t.len() <= 64));
    }

    let (client, _) = connect(&server, modern()).await;
    let r = client
        .call_tool(
            CallToolRequestParams::new("plus")
                .with_arguments(json!({"a": 2, "b": 5}).as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(text(&r), "7");
    let r = client
        .call_tool(
            CallToolRequestParams::new("alpha__echo")
                .with_arguments(json!({"text": "via a"}).as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(text(&r), "via a");
    // The renamed prompt routes to the provider's own name.
    let prompt = client
        .get_prompt(GetPromptRequestParams::new("hello_prompt"))
        .await
        .unwrap();
    assert!(!prompt.messages.is_empty());

    // A hidden tool is not callable under any name.
    for hidden in ["alpha__crash", "a__crash"] {
        let response = server.call_tool_as(ADMIN_KEY, hidden, json!({})).await;
        assert!(
            response["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Unknown tool")),
            "{hidden}: {response}"
        );
    }

    // Collisions are reported, with every member.
    let (status, system) = server.get_json("/system").await;
    assert_eq!(status, 200);
    let collisions = system["system"]["name_collisions"].as_array().unwrap();
    let echo = collisions
        .iter()
        .find(|c| c["kind"] == "tool" && c["name"] == "echo")
        .unwrap_or_else(|| panic!("echo collision in {collisions:?}"));
    assert_eq!(echo["members"], json!(["a/echo", "b/echo"]));
}

#[tokio::test]
async fn bare_names_disambiguate_shared_names_and_prefixed_is_the_default() {
    let server = Server::start(&two_fixtures("bare")).await;
    let (tools, _) = names(&server, modern()).await;
    assert!(tools.contains(&"plus".to_owned()));
    let echoes: Vec<&String> = tools.iter().filter(|t| t.starts_with("echo-")).collect();
    assert_eq!(echoes.len(), 2, "{tools:?}");
    assert!(!tools.iter().any(|t| t.contains("__")), "{tools:?}");
    for echo in echoes {
        let r = server.call_text(echo, json!({"text": "x"})).await;
        assert_eq!(r, "x");
    }

    let server = Server::start(&two_fixtures("prefixed")).await;
    let (tools, prompts) = names(&server, legacy()).await;
    assert!(tools.contains(&"alpha__plus".to_owned()), "{tools:?}");
    assert!(tools.contains(&"b__add".to_owned()));
    assert!(!tools.contains(&"alpha__crash".to_owned()));
    assert!(
        prompts.contains(&"alpha__hello_prompt".to_owned()),
        "{prompts:?}"
    );
}

#[tokio::test]
async fn invalid_naming_settings_are_refused_with_the_field() {
    let fixture = bin("hangar-fixture").display().to_string();
    for (yaml, field) in [
        (
            format!("providers:\n  a:\n    command: [\"{fixture}\"]\n    prefix: \"a b\"\n"),
            "prefix",
        ),
        (
            format!(
                "providers:\n  a:\n    command: [\"{fixture}\"]\n    tools:\n      rename: {{ add: \"\" }}\n"
            ),
            "tools.rename.add",
        ),
        (
            "server:\n  tool_naming: sometimes\n".to_owned(),
            "tool_naming",
        ),
    ] {
        let (code, stderr) = hangar_e2e::refused_config(&yaml);
        assert_eq!(code, Some(64), "{yaml}");
        assert!(stderr.contains(field), "{field} in {stderr}");
    }
}

#[tokio::test]
async fn a_call_whose_provider_cannot_start_names_the_provider_and_the_cause() {
    let config = "providers:\n  time:\n    command: [\"/nonexistent/uvx\", \"mcp-server-time\"]\n";
    let server = Server::start(config).await;
    let response = server
        .call_tool_as(ADMIN_KEY, "time__get_current_time", json!({}))
        .await;
    let message = response["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("provider 'time'"), "{response}");
    assert!(
        message.contains("/nonexistent/uvx") || message.contains("No such file"),
        "{response}"
    );
    assert_eq!(response["error"]["data"]["provider"], "time");
    // A name that points at no provider is still just unknown.
    let response = server
        .call_tool_as(ADMIN_KEY, "nothing__here", json!({}))
        .await;
    assert!(
        response["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Unknown tool")),
        "{response}"
    );
}
