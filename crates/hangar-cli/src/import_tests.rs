//! Tests for `import.rs`: every file format, id sanitizing, disabled servers, placeholders,
//! file-level errors and the reports.
use super::*;

const FILE: &str = "claude_desktop_config.json";

fn plan(text: &str) -> ImportPlan {
    plan_with_prefix(text, None)
}

fn plan_with_prefix(text: &str, prefix: Option<&str>) -> ImportPlan {
    plan_import(text, FILE, prefix).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn error(text: &str) -> ImportError {
    match plan_import(text, FILE, None) {
        Ok(plan) => panic!("expected an error, got {plan:?}"),
        Err(e) => e,
    }
}

fn body(planned: &PlannedProvider) -> &Value {
    match &planned.action {
        Action::Create(body) => body,
        other => panic!("{}: expected a create, got {other:?}", planned.name),
    }
}

fn find<'a>(plan: &'a ImportPlan, name: &str) -> &'a PlannedProvider {
    plan.providers
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no server '{name}' in {plan:?}"))
}

fn warnings_about<'a>(plan: &'a ImportPlan, needle: &str) -> Vec<&'a String> {
    plan.warnings
        .iter()
        .filter(|w| w.contains(needle))
        .collect()
}

#[test]
fn claude_desktop_servers_become_subprocess_providers() {
    let text = r#"{
      "mcpServers": {
        "filesystem": {
          "command": "npx",
          "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"]
        },
        "github": {
          "command": "docker",
          "args": ["run", "-i", "--rm", "-e", "GITHUB_TOKEN", "ghcr.io/github/github-mcp-server"],
          "env": {"GITHUB_TOKEN": "ghp_x", "PORT": 8080, "DEBUG": true}
        }
      },
      "globalShortcut": "Ctrl+Space"
    }"#;
    let plan = plan(text);
    assert_eq!(plan.providers.len(), 2);
    assert_eq!(plan.warnings, Vec::<String>::new());
    let fs = find(&plan, "filesystem");
    assert_eq!(fs.provider_id, "filesystem");
    assert_eq!(fs.mode(), Some("subprocess"));
    assert_eq!(
        body(fs),
        &json!({
            "provider_id": "filesystem",
            "mode": "subprocess",
            "command": ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
            "description": "imported from claude_desktop_config.json"
        })
    );
    assert_eq!(
        body(find(&plan, "github")),
        &json!({
            "provider_id": "github",
            "mode": "subprocess",
            "command": ["docker", "run", "-i", "--rm", "-e", "GITHUB_TOKEN",
                        "ghcr.io/github/github-mcp-server"],
            "env": {"GITHUB_TOKEN": "ghp_x", "PORT": "8080", "DEBUG": "true"},
            "description": "imported from claude_desktop_config.json"
        })
    );
}

#[test]
fn servers_are_planned_in_name_order() {
    let plan = plan(r#"{"mcpServers": {"zeta": {"command": "z"}, "alpha": {"command": "a"}}}"#);
    let names: Vec<&str> = plan.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
}

#[test]
fn cursor_url_entries_become_remote_providers() {
    let text = r#"{
      "mcpServers": {
        "linear": {"url": "https://mcp.linear.app/mcp", "headers": {"Authorization": "Bearer t"}},
        "local": {"command": "python", "args": ["server.py"], "env": {}},
        "windsurf": {"serverUrl": "http://localhost:3000/mcp"}
      }
    }"#;
    let plan = plan(text);
    assert_eq!(plan.warnings, Vec::<String>::new());
    let linear = find(&plan, "linear");
    assert_eq!(linear.mode(), Some("remote"));
    assert_eq!(
        body(linear),
        &json!({
            "provider_id": "linear",
            "mode": "remote",
            "endpoint": "https://mcp.linear.app/mcp",
            "headers": {"Authorization": "Bearer t"},
            "description": "imported from claude_desktop_config.json"
        })
    );
    // An empty env is left out.
    assert_eq!(body(find(&plan, "local")).get("env"), None);
    assert_eq!(
        body(find(&plan, "windsurf"))["endpoint"],
        json!("http://localhost:3000/mcp")
    );
}

#[test]
fn vscode_workspace_file_with_types_inputs_and_comments() {
    let text = r#"{
      // VS Code writes JSON with comments
      "inputs": [
        {"type": "promptString", "id": "perplexity-key", "description": "Perplexity API Key", "password": true}
      ],
      "servers": {
        "Perplexity": {
          "type": "stdio",
          "command": "npx",
          "args": ["-y", "server-perplexity-ask"],
          "env": {"PERPLEXITY_API_KEY": "${input:perplexity-key}"},
          "cwd": "${workspaceFolder}", /* trailing comma next */
        },
        "fetch": {"type": "http", "url": "https://example.com/mcp"},
        "legacy": {"type": "sse", "url": "http://localhost:8080/sse"},
      },
    }"#;
    let plan = plan(text);
    assert_eq!(plan.providers.len(), 3);
    let perplexity = find(&plan, "Perplexity");
    assert_eq!(perplexity.provider_id, "Perplexity");
    assert_eq!(
        body(perplexity),
        &json!({
            "provider_id": "Perplexity",
            "mode": "subprocess",
            "command": ["npx", "-y", "server-perplexity-ask"],
            "env": {"PERPLEXITY_API_KEY": "${input:perplexity-key}"},
            "cwd": "${workspaceFolder}",
            "description": "imported from claude_desktop_config.json"
        })
    );
    let input = warnings_about(&plan, "${input:perplexity-key}");
    assert_eq!(input.len(), 1, "{:?}", plan.warnings);
    assert!(input[0].starts_with("server 'Perplexity': env PERPLEXITY_API_KEY uses"));
    assert!(input[0].contains("hangar providers update Perplexity"));
    assert_eq!(warnings_about(&plan, "${workspaceFolder}").len(), 1);
    assert_eq!(find(&plan, "fetch").mode(), Some("remote"));
    let legacy = find(&plan, "legacy");
    assert_eq!(body(legacy)["endpoint"], json!("http://localhost:8080/sse"));
    assert_eq!(warnings_about(&plan, "server 'legacy': type sse").len(), 1);
}

#[test]
fn vscode_user_settings_form() {
    let text = r#"{
      "editor.fontSize": 14,
      "mcp": {
        "inputs": [],
        "servers": {
          "time": {"command": "uvx", "args": ["mcp-server-time", "--local-timezone=UTC"]}
        }
      }
    }"#;
    let plan = plan(text);
    assert_eq!(plan.providers.len(), 1);
    assert_eq!(
        body(&plan.providers[0])["command"],
        json!(["uvx", "mcp-server-time", "--local-timezone=UTC"])
    );
}

#[test]
fn every_recognised_section_is_read() {
    let text = r#"{"mcpServers": {"a": {"command": "a"}}, "servers": {"b": {"command": "b"}}}"#;
    let ids: Vec<String> = plan(text)
        .providers
        .into_iter()
        .map(|p| p.provider_id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
}

#[test]
fn disabled_servers_are_skipped() {
    let text = r#"{"mcpServers": {
        "off": {"command": "x", "disabled": true},
        "on": {"command": "y", "disabled": false},
        "broken-but-off": {"disabled": true}
    }}"#;
    let plan = plan(text);
    assert_eq!(find(&plan, "off").action, Action::Skip("disabled".into()));
    assert_eq!(
        find(&plan, "broken-but-off").action,
        Action::Skip("disabled".into())
    );
    assert_eq!(find(&plan, "on").mode(), Some("subprocess"));
    assert_eq!(find(&plan, "off").mode(), None);
}

#[test]
fn names_are_sanitized_and_renames_reported() {
    let text = r#"{"mcpServers": {
        "My Server (old)": {"command": "a"},
        "@scope/server-github": {"command": "b"},
        "ok_name-1": {"command": "c"}
    }}"#;
    let plan = plan(text);
    assert_eq!(find(&plan, "My Server (old)").provider_id, "My-Server-old");
    assert_eq!(
        body(find(&plan, "My Server (old)"))["provider_id"],
        json!("My-Server-old")
    );
    assert_eq!(
        find(&plan, "@scope/server-github").provider_id,
        "scope-server-github"
    );
    assert_eq!(find(&plan, "ok_name-1").provider_id, "ok_name-1");
    assert_eq!(
        warnings_about(&plan, "is not a valid provider id"),
        [
            "server '@scope/server-github': '@scope/server-github' is not a valid provider id; \
             using 'scope-server-github'",
            "server 'My Server (old)': 'My Server (old)' is not a valid provider id; using \
             'My-Server-old'",
        ]
    );
}

#[test]
fn sanitize_rules() {
    let cases = [
        ("github", "github"),
        ("a-b_c", "a-b_c"),
        ("Trailing-", "Trailing-"),
        ("my server", "my-server"),
        ("a  .  b", "a-b"),
        ("a - b", "a-b"),
        ("a _b", "a_b"),
        ("x.y.z", "x-y-z"),
        ("_leading", "leading"),
        ("--dash", "dash"),
        ("-_-x", "x"),
        ("a__b", "a_b"),
        ("a___b", "a_b"),
        ("café", "caf"),
        ("日本", "server"),
        ("", "server"),
        ("!!!", "server"),
        ("end!", "end"),
        ("0", "0"),
    ];
    for (wanted, expected) in cases {
        assert_eq!(sanitize_id(wanted), expected, "{wanted:?}");
    }
    let long = "x".repeat(100);
    assert_eq!(sanitize_id(&long).len(), MAX_PROVIDER_ID_LEN);
}

#[test]
fn sanitized_ids_pass_the_servers_validation() {
    let samples = [
        "github",
        "My Server (old)",
        "@modelcontextprotocol/server-filesystem",
        "__init__",
        "a__b__c",
        "-x-",
        "日本語 server",
        "",
        "emoji 🚀 server",
        &"long name ".repeat(20),
        &"_".repeat(70),
        "x\u{0}y",
    ];
    for sample in samples {
        let id = sanitize_id(sample);
        assert!(
            hangar_core::spec::validate_provider_id(&id).is_ok(),
            "{sample:?} → {id:?}"
        );
        // Within the brief's looser rule too.
        assert!((1..=64).contains(&id.len()));
        // Sanitizing is idempotent: a valid id is left alone.
        assert_eq!(sanitize_id(&id), id);
    }
}

#[test]
fn long_names_are_truncated() {
    let name = "n".repeat(80);
    let text = format!(r#"{{"mcpServers": {{"{name}": {{"command": "x"}}}}}}"#);
    let plan = plan(&text);
    assert_eq!(plan.providers[0].provider_id, "n".repeat(63));
    assert_eq!(warnings_about(&plan, "is not a valid provider id").len(), 1);
}

#[test]
fn colliding_ids_get_a_number() {
    let text = r#"{"mcpServers": {
        "my server": {"command": "a"},
        "my-server": {"command": "b"},
        "my.server": {"command": "c"},
        "my/server": {"disabled": true}
    }}"#;
    let plan = plan(text);
    let ids: Vec<(&str, &str)> = plan
        .providers
        .iter()
        .map(|p| (p.name.as_str(), p.provider_id.as_str()))
        .collect();
    // Name order: "my server" < "my-server" < "my.server" < "my/server".
    assert_eq!(
        ids,
        [
            ("my server", "my-server"),
            ("my-server", "my-server-2"),
            ("my.server", "my-server-3"),
            ("my/server", "my-server"),
        ]
    );
    assert_eq!(warnings_about(&plan, "already used").len(), 2);
    let long = unique_id(&"x".repeat(63), &BTreeSet::from(["x".repeat(63)]));
    assert_eq!(long, format!("{}-2", "x".repeat(61)));
    assert!(hangar_core::spec::validate_provider_id(&long).is_ok());
}

#[test]
fn prefix_is_prepended_and_checked() {
    let text = r#"{"mcpServers": {"github": {"command": "a"}, "my server": {"command": "b"}}}"#;
    let plan = plan_with_prefix(text, Some("cursor-"));
    assert_eq!(find(&plan, "github").provider_id, "cursor-github");
    assert_eq!(find(&plan, "my server").provider_id, "cursor-my-server");
    // Only the real rename is reported, not the prefix.
    assert_eq!(warnings_about(&plan, "is not a valid provider id").len(), 1);
    for bad in ["-x", "a b", "a__", "é", &"p".repeat(33)] {
        assert!(
            matches!(
                plan_import(text, FILE, Some(bad)),
                Err(ImportError::BadPrefix { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        plan_with_prefix(text, Some("")).providers[0].provider_id,
        "github"
    );
}

#[test]
fn invalid_entries_are_reported_per_server() {
    let text = r#"{"mcpServers": {
        "no-command": {"env": {"A": "1"}},
        "not-object": "npx foo",
        "bad-args": {"command": "x", "args": "--flag"},
        "bad-arg": {"command": "x", "args": ["ok", {"k": 1}]},
        "bad-env": {"command": "x", "env": {"A": ["1"]}},
        "bad-command": {"command": ["npx", "foo"]},
        "bad-type": {"type": "websocket", "url": "ws://h"},
        "stdio-no-command": {"type": "stdio", "url": "http://h/mcp"},
        "http-no-url": {"type": "http", "command": "x"},
        "bad-url": {"url": "localhost:3000/mcp"},
        "empty-command": {"command": "  "},
        "good": {"command": "x"}
    }}"#;
    let plan = plan(text);
    let reason = |name: &str| match &find(&plan, name).action {
        Action::Invalid(reason) => reason.clone(),
        other => panic!("{name}: expected invalid, got {other:?}"),
    };
    assert_eq!(reason("no-command"), "has neither \"command\" nor \"url\"");
    assert_eq!(reason("not-object"), "expected an object, got a string");
    assert_eq!(
        reason("bad-args"),
        "\"args\" must be a list of strings, got a string"
    );
    assert_eq!(
        reason("bad-arg"),
        "\"args\"[1] must be a string, got an object"
    );
    assert_eq!(reason("bad-env"), "\"env\".A must be a string, got a list");
    assert_eq!(
        reason("bad-command"),
        "\"command\" must be a string, got a list"
    );
    assert_eq!(
        reason("bad-type"),
        "unknown type 'websocket' (expected stdio, http or sse)"
    );
    assert_eq!(
        reason("stdio-no-command"),
        "a stdio server needs a \"command\""
    );
    assert_eq!(reason("http-no-url"), "an http/sse server needs a \"url\"");
    assert_eq!(
        reason("bad-url"),
        "url 'localhost:3000/mcp' must start with http:// or https://"
    );
    assert_eq!(
        reason("empty-command"),
        "a stdio server needs a \"command\""
    );
    assert_eq!(find(&plan, "good").mode(), Some("subprocess"));
}

#[test]
fn warnings_for_ignored_and_doubtful_fields() {
    let text = r#"{"mcpServers": {
        "spaced": {"command": "npx -y some-server"},
        "both": {"command": "x", "url": "http://h/mcp", "headers": {"A": "b"}},
        "remote": {"url": "http://h/mcp", "env": {"A": "1"}, "args": ["a"]},
        "extras": {"command": "x", "autoApprove": ["t"], "timeout": 60},
        "envfile": {"type": "stdio", "command": "x", "envFile": "${workspaceFolder}/.env"},
        "secret": {"command": "x", "env": {"TOKEN": "${secret:github}"}}
    }}"#;
    let plan = plan(text);
    let about = |name: &str| -> Vec<String> {
        let prefix = format!("server '{name}': ");
        plan.warnings
            .iter()
            .filter_map(|w| w.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    };
    assert_eq!(about("spaced").len(), 1);
    assert!(about("spaced")[0].contains("without a shell"));
    assert_eq!(
        about("both"),
        [
            "\"url\" is ignored for a stdio server",
            "\"headers\" is ignored for a stdio server"
        ]
    );
    assert_eq!(body(find(&plan, "both"))["mode"], json!("subprocess"));
    assert_eq!(
        about("remote"),
        [
            "\"args\" is ignored for a remote server",
            "\"env\" is ignored for a remote server"
        ]
    );
    assert_eq!(about("extras"), ["ignored field(s): autoApprove, timeout"]);
    assert_eq!(about("envfile").len(), 1);
    assert!(about("envfile")[0].contains("\"envFile\" is not imported"));
    // Hangar's own secret references are not flagged.
    assert_eq!(about("secret"), Vec::<String>::new());
}

#[test]
fn placeholders_are_found() {
    assert_eq!(
        placeholders("a ${input:x} b ${env:HOME}/c ${unterminated"),
        ["${input:x}", "${env:HOME}"]
    );
    assert_eq!(
        placeholders("no placeholders $HOME {x}"),
        Vec::<&str>::new()
    );
    let text = r#"{"servers": {"s": {
        "command": "${userHome}/bin/server",
        "args": ["--token", "${input:tok}"],
        "headers": {}
    }}}"#;
    let plan = plan(text);
    assert_eq!(warnings_about(&plan, "command uses ${userHome}").len(), 1);
    assert_eq!(warnings_about(&plan, "args[1] uses ${input:tok}").len(), 1);
    let remote = r#"{"servers": {"r": {"url": "https://h/${input:path}",
        "headers": {"Authorization": "Bearer ${input:token}"}}}}"#;
    let plan = super::plan_import(remote, FILE, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        warnings_about(&plan, "endpoint uses ${input:path}").len(),
        1
    );
    assert_eq!(
        warnings_about(&plan, "headers Authorization uses ${input:token}").len(),
        1
    );
}

#[test]
fn file_level_errors() {
    assert!(matches!(error(""), ImportError::Json { .. }));
    let e = error("{\"mcpServers\": {\n  \"a\": {\"command\": \"x\"\n}");
    let message = e.to_string();
    assert!(
        message.starts_with("claude_desktop_config.json is not valid JSON: "),
        "{message}"
    );
    assert!(message.contains("line"), "{message}");
    assert_eq!(
        error("[1, 2]"),
        ImportError::NotAnObject {
            file: FILE.into(),
            found: "a list"
        }
    );
    assert_eq!(
        error(r#"{"foo": {}}"#),
        ImportError::NoServerSection { file: FILE.into() }
    );
    assert!(
        error(r#"{"mcp": {"inputs": []}}"#)
            .to_string()
            .contains("no MCP servers found")
    );
    assert_eq!(
        error(r#"{"mcpServers": [{"command": "x"}]}"#),
        ImportError::BadSection {
            file: FILE.into(),
            section: "mcpServers",
            found: "a list"
        }
    );
    assert_eq!(
        error(r#"{"mcp": {"servers": null}}"#),
        ImportError::BadSection {
            file: FILE.into(),
            section: "mcp.servers",
            found: "null"
        }
    );
    // Every file-level error is a usage error (exit code 2).
    let cli_error: CliError = error("nope").into();
    assert_eq!(cli_error.exit_code(), crate::error::EXIT_USAGE);
}

#[test]
fn an_empty_section_is_not_an_error() {
    let plan = plan(r#"{"mcpServers": {}}"#);
    assert!(plan.providers.is_empty());
    assert_eq!(
        plan.warnings,
        ["claude_desktop_config.json lists no servers: nothing to import"]
    );
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let plan = plan("\u{feff}{\"mcpServers\": {\"a\": {\"command\": \"x\"}}}");
    assert_eq!(plan.providers.len(), 1);
}

#[test]
fn jsonc_stripping() {
    let plain = r#"{"a": "x // not a comment", "b": "/* nor this */", "c": "q\"//", "d": [1, 2]}"#;
    assert_eq!(strip_jsonc(plain), plain);
    let commented = "{\n  // line\n  \"a\": 1, /* block\n spans */ \"b\": [1, 2,],\n}";
    let value: Value =
        serde_json::from_str(&strip_jsonc(commented)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(value, json!({"a": 1, "b": [1, 2]}));
    // Line breaks are kept, so errors point at the right line.
    assert_eq!(
        strip_jsonc(commented).lines().count(),
        commented.lines().count()
    );
    // A comma inside a string before a brace is not touched.
    assert_eq!(strip_jsonc(r#"{"a": ",}"}"#), r#"{"a": ",}"}"#);
    // An unterminated block comment swallows the rest; the parse then fails.
    assert!(serde_json::from_str::<Value>(&strip_jsonc("{\"a\": 1 /* oops")).is_err());
}

fn sample_results() -> Vec<ImportResult> {
    let result = |name: &str, id: &str, mode: Option<&str>, outcome| ImportResult {
        name: name.into(),
        provider_id: id.into(),
        mode: mode.map(str::to_owned),
        outcome,
    };
    vec![
        result("github", "github", Some("subprocess"), Outcome::Created),
        result(
            "time",
            "time",
            Some("subprocess"),
            Outcome::Exists("provider 'time' already exists".into()),
        ),
        result("old", "old", None, Outcome::Skipped("disabled".into())),
        result(
            "my server",
            "my-server",
            Some("remote"),
            Outcome::Failed("invalid provider spec: endpoint (400)".into()),
        ),
    ]
}

#[test]
fn results_report() {
    let expected = "\
SERVER     PROVIDER   MODE        RESULT
github     github     subprocess  created
time       time       subprocess  exists (left unchanged)
old        old        -           skipped: disabled
my server  my-server  remote      failed: invalid provider spec: endpoint (400)
1 created, 1 already existed, 1 skipped, 1 failed
";
    assert_eq!(results_table(&sample_results()), expected);
    let report = results_json("f.json", &["w".into()], &sample_results());
    assert_eq!(
        report["summary"],
        json!({"created": 1, "exists": 1, "skipped": 1, "failed": 1})
    );
    assert_eq!(report["dry_run"], json!(false));
    assert_eq!(report["warnings"], json!(["w"]));
    assert_eq!(
        report["results"][0],
        json!({"server": "github", "provider_id": "github", "mode": "subprocess", "result": "created"})
    );
    assert_eq!(
        report["results"][2],
        json!({"server": "old", "provider_id": "old", "mode": null, "result": "skipped",
               "message": "disabled"})
    );
    assert_eq!(report["results"][3]["result"], json!("failed"));
}

#[test]
fn dry_run_report() {
    let text = r#"{"mcpServers": {
        "fs": {"command": "npx", "args": ["-y", "server fs"]},
        "linear": {"url": "https://mcp.linear.app/mcp"},
        "off": {"command": "x", "disabled": true},
        "bad": {"args": []}
    }}"#;
    let plan = plan(text);
    let expected = "\
SERVER  PROVIDER  MODE        ACTION   DETAIL
bad     bad       -           invalid  has neither \"command\" nor \"url\"
fs      fs        subprocess  create   npx -y 'server fs'
linear  linear    remote      create   https://mcp.linear.app/mcp
off     off       -           skip     disabled
dry run: 2 to create, 1 skipped, 1 invalid; nothing was sent
";
    assert_eq!(dry_run_table(&plan), expected);
    let report = dry_run_json(FILE, &plan);
    assert_eq!(report["dry_run"], json!(true));
    assert_eq!(report["providers"][0]["action"], json!("invalid"));
    assert_eq!(report["providers"][1]["action"], json!("create"));
    assert_eq!(
        report["providers"][1]["body"]["command"],
        json!(["npx", "-y", "server fs"])
    );
    assert_eq!(
        report["providers"][3],
        json!({"server": "off", "provider_id": "off", "action": "skip", "reason": "disabled"})
    );
}

#[test]
fn import_arguments_parse() {
    use clap::Parser;
    let cli = crate::args::Cli::try_parse_from([
        "hangar",
        "import",
        "mcp.json",
        "--dry-run",
        "--prefix",
        "vs-",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let crate::args::Command::Import(args) = cli.command else {
        panic!("not import")
    };
    assert_eq!(args.file, PathBuf::from("mcp.json"));
    assert!(args.dry_run);
    assert_eq!(args.prefix.as_deref(), Some("vs-"));
    assert!(crate::args::Cli::try_parse_from(["hangar", "import"]).is_err());
}
