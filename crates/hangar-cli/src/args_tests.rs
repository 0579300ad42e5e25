//! Tests for `args.rs`: the clap grammar and the key=value parsers.
use super::*;
use clap::CommandFactory;
use serde_json::json;

fn parse(args: &[&str]) -> Cli {
    match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => panic!("parse {args:?}: {e}"),
    }
}

#[test]
fn clap_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn tool_args_are_json_when_they_parse() {
    let cases = [
        ("a=1", json!(1)),
        ("a=2.5", json!(2.5)),
        ("a=true", json!(true)),
        ("a=null", json!(null)),
        ("a={\"x\":[1]}", json!({"x": [1]})),
        ("a=\"quoted\"", json!("quoted")),
        ("a=hello world", json!("hello world")),
        ("a=01", json!("01")),
        ("a=", json!("")),
        ("a=b=c", json!("b=c")),
    ];
    for (pair, expected) in cases {
        let (key, value) = parse_tool_arg(pair).unwrap_or_else(|e| panic!("{pair}: {e}"));
        assert_eq!(key, "a");
        assert_eq!(value, expected, "{pair}");
    }
    assert!(parse_tool_arg("novalue").is_err());
    assert!(parse_tool_arg("=1").is_err());
}

#[test]
fn call_merges_json_with_pairs_and_pairs_win() {
    let cli = parse(&[
        "hangar",
        "call",
        "math__add",
        "a=1",
        "c=x",
        "--json",
        r#"{"a":5,"b":2}"#,
    ]);
    let Command::Call(call) = cli.command else {
        panic!("not call")
    };
    let arguments = call.arguments().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Value::Object(arguments), json!({"a": 1, "b": 2, "c": "x"}));
}

#[test]
fn call_rejects_non_object_json() {
    let cli = parse(&["hangar", "call", "t", "--json", "[1]"]);
    let Command::Call(call) = cli.command else {
        panic!("not call")
    };
    assert!(matches!(call.arguments(), Err(CliError::Usage(_))));
}

fn add_body(args: &[&str]) -> Result<Value, CliError> {
    let cli = parse(args);
    match cli.command {
        Command::Providers(ProvidersCommand::Add(add)) => add.to_body(),
        other => panic!("not add: {other:?}"),
    }
}

#[test]
fn add_takes_the_command_after_double_dash() {
    let body = add_body(&[
        "hangar",
        "providers",
        "add",
        "time",
        "--env",
        "TZ=UTC",
        "--env",
        "A=b=c",
        "--idle-ttl",
        "30",
        "--",
        "python",
        "-m",
        "mcp_server_time",
        "--local-timezone",
        "UTC",
    ]);
    let body = body.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        body,
        json!({
            "provider_id": "time",
            "mode": "subprocess",
            "command": ["python", "-m", "mcp_server_time", "--local-timezone", "UTC"],
            "env": {"TZ": "UTC", "A": "b=c"},
            "idle_ttl_s": 30
        })
    );
}

#[test]
fn add_command_flag_takes_the_rest() {
    let body = add_body(&[
        "hangar",
        "providers",
        "add",
        "x",
        "--description",
        "d",
        "--command",
        "prog",
        "-v",
        "--flag",
    ]);
    let body = body.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["command"], json!(["prog", "-v", "--flag"]));
    assert_eq!(body["description"], json!("d"));
}

#[test]
fn add_checks_mode_requirements() {
    assert!(matches!(
        add_body(&["hangar", "providers", "add", "x"]),
        Err(CliError::Usage(_))
    ));
    assert!(add_body(&["hangar", "providers", "add", "x", "--mode", "docker"]).is_err());
    let body = add_body(&[
        "hangar",
        "providers",
        "add",
        "x",
        "--mode",
        "remote",
        "--endpoint",
        "http://h/mcp",
    ]);
    assert_eq!(
        body.ok(),
        Some(json!({"provider_id": "x", "mode": "remote", "endpoint": "http://h/mcp"}))
    );
    assert!(
        add_body(&[
            "hangar",
            "providers",
            "add",
            "x",
            "--env",
            "NOEQ",
            "--",
            "p"
        ])
        .is_err()
    );
}

#[test]
fn global_flags_work_after_the_subcommand() {
    let cli = parse(&[
        "hangar",
        "providers",
        "list",
        "--output",
        "json",
        "--url",
        "http://h:1",
        "--state",
        "ready",
    ]);
    assert_eq!(cli.output, OutputFormat::Json);
    assert_eq!(cli.url, "http://h:1");
    assert!(
        matches!(cli.command, Command::Providers(ProvidersCommand::List { state: Some(ref s) }) if s == "ready")
    );
}

#[test]
fn providers_update_body() {
    use clap::Parser;
    let cli = crate::args::Cli::try_parse_from([
        "hangar",
        "providers",
        "update",
        "p",
        "--env",
        "A=1",
        "--idle-ttl",
        "60",
    ])
    .expect("parses");
    let crate::args::Command::Providers(crate::args::ProvidersCommand::Update(u)) = cli.command
    else {
        panic!("not an update");
    };
    assert_eq!(
        u.to_body().expect("body"),
        serde_json::json!({"env": {"A": "1"}, "idle_ttl_s": 60})
    );
    let cli =
        crate::args::Cli::try_parse_from(["hangar", "providers", "update", "p"]).expect("parses");
    let crate::args::Command::Providers(crate::args::ProvidersCommand::Update(u)) = cli.command
    else {
        panic!("not an update");
    };
    assert!(u.to_body().is_err());
}

#[test]
fn completions_cover_every_command() {
    let mut script = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::Bash,
        &mut Cli::command(),
        "hangar",
        &mut script,
    );
    let script = String::from_utf8_lossy(&script);
    for word in [
        "providers",
        "groups",
        "config",
        "catalog",
        "system",
        "maintenance",
        "import",
        "reload",
        "deploy",
        "compact",
    ] {
        assert!(script.contains(word), "bash completion lacks '{word}'");
    }
}

#[test]
fn new_top_level_commands_parse() {
    assert!(matches!(
        parse(&["hangar", "system"]).command,
        Command::System
    ));
    let cli = parse(&["hangar", "maintenance", "compact", "provider:math"]);
    let Command::Maintenance(crate::system::MaintenanceCommand::Compact { stream_id }) =
        cli.command
    else {
        panic!("not compact")
    };
    assert_eq!(stream_id, "provider:math");
    assert!(Cli::try_parse_from(["hangar", "maintenance", "compact"]).is_err());
}
