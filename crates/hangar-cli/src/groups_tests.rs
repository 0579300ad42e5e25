//! Tests for `groups.rs`: the grammar, request bodies and tables.
use super::*;
use crate::args::Command;
use clap::Parser;

fn parse(args: &[&str]) -> GroupsCommand {
    match Cli::try_parse_from(args) {
        Ok(Cli {
            command: Command::Groups(command),
            ..
        }) => command,
        Ok(other) => panic!("parse {args:?}: not groups: {other:?}"),
        Err(e) => panic!("parse {args:?}: {e}"),
    }
}

fn usage_message(result: Result<Member, CliError>) -> String {
    match result {
        Err(CliError::Usage(message)) => message,
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[test]
fn member_specs() {
    let member = |provider: &str, weight, priority| Member {
        provider: provider.into(),
        weight,
        priority,
    };
    let ok = |spec: &str| parse_member(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    assert_eq!(ok("p:3:2"), member("p", 3, 2));
    assert_eq!(ok("p:3"), member("p", 3, 1));
    assert_eq!(ok("p"), member("p", 1, 1));
    assert_eq!(ok("p:1:0"), member("p", 1, 0));

    let message = usage_message(parse_member("p:x"));
    assert_eq!(
        message,
        "invalid --member 'p:x': weight must be a whole number, got 'x' \
         (expected PROVIDER[:WEIGHT[:PRIORITY]])"
    );
    let message = usage_message(parse_member("p:0"));
    assert!(message.contains("weight must be at least 1"), "{message}");
    let message = usage_message(parse_member("p:2:high"));
    assert!(
        message.contains("priority must be a whole number"),
        "{message}"
    );
    for bad in ["", ":3", "p:", "p:-1", "p:1:2:3", "p:1:"] {
        let error = parse_member(bad).err();
        assert!(
            matches!(&error, Some(e) if e.exit_code() == crate::error::EXIT_USAGE),
            "{bad}: {error:?}"
        );
    }
}

#[test]
fn create_body_leaves_out_absent_options() {
    let GroupsCommand::Create(create) = parse(&[
        "hangar",
        "groups",
        "create",
        "llm",
        "--strategy",
        "weighted_round_robin",
        "--member",
        "a:3:2",
        "--member",
        "b",
        "--reset-timeout",
        "2.5",
    ]) else {
        panic!("not create")
    };
    let body = create.to_body().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        body,
        json!({
            "group_id": "llm",
            "strategy": "weighted_round_robin",
            "members": [
                {"provider": "a", "weight": 3, "priority": 2},
                {"provider": "b", "weight": 1, "priority": 1}
            ],
            "circuit_breaker": {"reset_timeout_s": 2.5}
        })
    );
    let GroupsCommand::Create(create) = parse(&["hangar", "groups", "create", "g"]) else {
        panic!("not create")
    };
    let body = create.to_body().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body, json!({"group_id": "g", "members": []}));
    let GroupsCommand::Create(create) =
        parse(&["hangar", "groups", "create", "g", "--member", "p:0"])
    else {
        panic!("not create")
    };
    assert!(matches!(create.to_body(), Err(CliError::Usage(_))));
}

#[test]
fn update_body_needs_a_field() {
    let GroupsCommand::Update(update) = parse(&[
        "hangar",
        "groups",
        "update",
        "g",
        "--min-healthy",
        "2",
        "--failure-threshold",
        "3",
        "--reset-timeout",
        "30",
        "--description",
        "LLMs",
    ]) else {
        panic!("not update")
    };
    let body = update.to_body().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        body,
        json!({"min_healthy": 2, "description": "LLMs",
               "circuit_breaker": {"failure_threshold": 3, "reset_timeout_s": 30}})
    );
    let GroupsCommand::Update(update) = parse(&["hangar", "groups", "update", "g"]) else {
        panic!("not update")
    };
    assert!(
        matches!(update.to_body(), Err(CliError::Usage(m)) if m.starts_with("nothing to update"))
    );
    let GroupsCommand::Update(update) =
        parse(&["hangar", "groups", "update", "g", "--reset-timeout", "0"])
    else {
        panic!("not update")
    };
    assert!(matches!(update.to_body(), Err(CliError::Usage(_))));
    for bad in [
        &["hangar", "groups", "update", "g", "--strategy", "fastest"][..],
        &[
            "hangar",
            "groups",
            "update",
            "g",
            "--failure-threshold",
            "0",
        ],
        &["hangar", "groups", "add-member", "g", "p", "--weight", "0"],
    ] {
        assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
    }
    let GroupsCommand::AddMember {
        weight, priority, ..
    } = parse(&["hangar", "groups", "add-member", "g", "p", "--weight", "4"])
    else {
        panic!("not add-member")
    };
    assert_eq!((weight, priority), (4, 1));
}

fn member(id: &str, state: &str, healthy: bool) -> Value {
    json!({"member_id": id, "weight": 1, "priority": 1, "state": state,
           "circuit_breaker_state": "closed", "consecutive_failures": 0,
           "in_flight": 0, "healthy": healthy})
}

#[test]
fn groups_list_table() {
    let response = json!({"groups": [
        {"group_id": "llm", "state": "partial", "strategy": "round_robin", "min_healthy": 1,
         "description": null, "circuit_breaker_state": "closed",
         "members": [member("a", "ready", true), member("b", "ready", true),
                     member("c", "dead", false)],
         "tool_differences": [], "source": "api"},
        {"group_id": "empty", "state": "inactive", "strategy": "priority", "min_healthy": 1,
         "circuit_breaker_state": "open", "members": [], "tool_differences": [],
         "source": "config"}
    ]});
    let table = groups_table(&response).unwrap_or_else(|e| panic!("{e}"));
    let expected = "\
GROUP  STATE     STRATEGY     MEMBERS  BREAKER
llm    partial   round_robin  2/3      closed
empty  inactive  priority     0/0      open
";
    assert_eq!(table, expected);
    assert_eq!(
        groups_table(&json!({"groups": []})).ok().as_deref(),
        Some("GROUP  STATE  STRATEGY  MEMBERS  BREAKER\n")
    );
    assert!(groups_table(&json!({"oops": 1})).is_err());
}

#[test]
fn group_get_details() {
    let mut slow = member("b", "degraded", false);
    slow["circuit_breaker_state"] = json!("open");
    slow["consecutive_failures"] = json!(5);
    slow["weight"] = json!(3);
    let group = json!({"group_id": "llm", "state": "partial", "strategy": "round_robin",
        "min_healthy": 1, "description": "LLMs", "circuit_breaker_state": "open",
        "members": [member("a", "ready", true), slow],
        "tool_differences": ["a__x", "b__y"], "source": "api",
        "circuit_breaker": {"failure_threshold": 5, "reset_timeout_s": 30}});
    let expected = "\
group              llm
state              partial
strategy           round_robin
min_healthy        1
members            1/2
breaker            open
failure_threshold  5
reset_timeout_s    30
tool_differences   a__x, b__y
source             api
description        LLMs

MEMBER  STATE     WEIGHT  PRIORITY  BREAKER  FAILURES  IN_FLIGHT
a       ready     1       1         closed   0         0
b       degraded  3       1         open     5         0
";
    assert_eq!(group_details(&group), expected);
}
