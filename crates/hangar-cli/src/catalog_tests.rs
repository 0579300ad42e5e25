//! Tests for `catalog.rs`: the grammar, request bodies and outputs.
use super::*;
use crate::args::Command;
use clap::Parser;
use serde_json::json;

fn parse(args: &[&str]) -> CatalogCommand {
    match Cli::try_parse_from(args) {
        Ok(Cli {
            command: Command::Catalog(command),
            ..
        }) => command,
        Ok(other) => panic!("parse {args:?}: not catalog: {other:?}"),
        Err(e) => panic!("parse {args:?}: {e}"),
    }
}

fn add_body(args: &[&str]) -> Result<Value, CliError> {
    match parse(args) {
        CatalogCommand::Add(add) => add.to_body(),
        other => panic!("not add: {other:?}"),
    }
}

#[test]
fn list_query_from_options() {
    let CatalogCommand::List { search, tags } = parse(&[
        "hangar", "catalog", "list", "--search", "git", "--tags", "a,b", "--tags", "c",
    ]) else {
        panic!("not list")
    };
    assert_eq!(
        list_query(search.as_deref(), &tags),
        vec![("search", "git".to_owned()), ("tags", "a,b,c".to_owned())]
    );
    let CatalogCommand::List { search, tags } = parse(&["hangar", "catalog", "list"]) else {
        panic!("not list")
    };
    assert!(list_query(search.as_deref(), &tags).is_empty());
    assert!(list_query(Some(""), &[" ".into()]).is_empty());
}

#[test]
fn add_with_command_after_double_dash() {
    let body = add_body(&[
        "hangar",
        "catalog",
        "add",
        "--name",
        "time",
        "--description",
        "Time tools",
        "--tag",
        "time",
        "--tag",
        "utils,python",
        "--env",
        "TZ=UTC",
        "--",
        "uvx",
        "mcp-server-time",
        "--local-timezone",
        "UTC",
    ]);
    assert_eq!(
        body.unwrap_or_else(|e| panic!("{e}")),
        json!({
            "name": "time",
            "description": "Time tools",
            "mode": "subprocess",
            "command": ["uvx", "mcp-server-time", "--local-timezone", "UTC"],
            "tags": ["time", "utils", "python"],
            "env": {"TZ": "UTC"}
        })
    );
}

#[test]
fn add_with_command_flag_and_other_modes() {
    let body = add_body(&[
        "hangar",
        "catalog",
        "add",
        "--name",
        "x",
        "--description",
        "d",
        "--command",
        "prog",
        "-v",
    ]);
    assert_eq!(
        body.ok().map(|b| b["command"].clone()),
        Some(json!(["prog", "-v"]))
    );
    let body = add_body(&[
        "hangar",
        "catalog",
        "add",
        "--name",
        "r",
        "--description",
        "d",
        "--mode",
        "remote",
        "--endpoint",
        "https://h/mcp",
    ]);
    assert_eq!(
        body.ok(),
        Some(
            json!({"name": "r", "description": "d", "mode": "remote", "endpoint": "https://h/mcp"})
        )
    );
    let body = add_body(&[
        "hangar",
        "catalog",
        "add",
        "--name",
        "d",
        "--description",
        "d",
        "--mode",
        "docker",
        "--image",
        "img:1",
    ]);
    assert_eq!(body.ok().map(|b| b["image"].clone()), Some(json!("img:1")));
}

#[test]
fn add_checks_what_it_can() {
    let usage = |args: &[&str]| matches!(add_body(args), Err(CliError::Usage(_)));
    assert!(usage(&[
        "hangar",
        "catalog",
        "add",
        "--name",
        "x",
        "--description",
        "d"
    ]));
    assert!(usage(&[
        "hangar",
        "catalog",
        "add",
        "--name",
        "x",
        "--description",
        "d",
        "--mode",
        "docker"
    ]));
    assert!(usage(&[
        "hangar",
        "catalog",
        "add",
        "--name",
        "x",
        "--description",
        "d",
        "--mode",
        "remote"
    ]));
    assert!(usage(&[
        "hangar",
        "catalog",
        "add",
        "--name",
        " ",
        "--description",
        "d",
        "--",
        "p"
    ]));
    assert!(usage(&[
        "hangar",
        "catalog",
        "add",
        "--name",
        "x",
        "--description",
        "d",
        "--env",
        "NOEQ",
        "--",
        "p"
    ]));
    // --name and --description are required.
    assert!(Cli::try_parse_from(["hangar", "catalog", "add", "--name", "x", "--", "p"]).is_err());
    assert!(
        Cli::try_parse_from(["hangar", "catalog", "add", "--description", "d", "--", "p"]).is_err()
    );
}

#[test]
fn deploy_body() {
    let CatalogCommand::Deploy(deploy) = parse(&["hangar", "catalog", "deploy", "time"]) else {
        panic!("not deploy")
    };
    assert_eq!(deploy.id, "time");
    assert_eq!(deploy.to_body().ok(), Some(json!({})));
    let CatalogCommand::Deploy(deploy) = parse(&[
        "hangar",
        "catalog",
        "deploy",
        "time",
        "--provider-id",
        "time-utc",
        "--env",
        "TZ=UTC",
    ]) else {
        panic!("not deploy")
    };
    assert_eq!(
        deploy.to_body().ok(),
        Some(json!({"provider_id": "time-utc", "env": {"TZ": "UTC"}}))
    );
}

#[test]
fn remove_has_an_alias() {
    assert!(matches!(
        parse(&["hangar", "catalog", "rm", "x"]),
        CatalogCommand::Remove { ref id } if id == "x"
    ));
    assert!(matches!(
        parse(&["hangar", "catalog", "get", "x"]),
        CatalogCommand::Get { ref id } if id == "x"
    ));
}

fn entry() -> Value {
    json!({
        "entry_id": "github",
        "name": "GitHub",
        "description": "GitHub API tools.\nNeeds a token.",
        "mode": "subprocess",
        "command": ["npx", "-y", "@modelcontextprotocol/server-github"],
        "image": null,
        "endpoint": null,
        "tags": ["git", "dev"],
        "env": {"GITHUB_TOKEN": ""},
        "builtin": true
    })
}

#[test]
fn catalog_list_table() {
    let response = json!({"entries": [
        entry(),
        {"entry_id": "remote-x", "mode": "remote", "tags": [], "description": null,
         "endpoint": "https://h/mcp", "builtin": false}
    ], "total": 2});
    let expected = "\
ID        MODE        TAGS     DESCRIPTION
github    subprocess  git,dev  GitHub API tools.
remote-x  remote      -
";
    assert_eq!(catalog_table(&response).ok().as_deref(), Some(expected));
    assert!(catalog_table(&json!({"total": 0})).is_err());
}

#[test]
fn catalog_entry_details() {
    let expected = "\
entry        github
name         GitHub
mode         subprocess
command      npx -y @modelcontextprotocol/server-github
image        -
endpoint     -
tags         git,dev
env          GITHUB_TOKEN=
builtin      yes
description  GitHub API tools.
";
    // The description's second line lines up under its first.
    let details = entry_details(&entry());
    assert_eq!(details, format!("{expected}             Needs a token.\n"));
}

#[test]
fn shell_words_quote_only_when_needed() {
    let argv: Vec<String> = ["python", "-m", "x y", "it's", "", "a=b", "$HOME"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(
        shell_words(&argv),
        r#"python -m 'x y' 'it'\''s' '' a=b '$HOME'"#
    );
}
