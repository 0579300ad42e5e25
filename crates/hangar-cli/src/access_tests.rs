//! Tests for `access.rs`: the grammar of keys/tokens/roles/principals/auth/audit, request
//! bodies, and tables.
use super::*;
use crate::args::{Command, OutputFormat};
use clap::Parser;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(args).unwrap_or_else(|e| panic!("parse {args:?}: {e}"))
}

#[test]
fn keys_and_tokens() {
    match parse(&[
        "hangar",
        "keys",
        "create",
        "alice",
        "ci",
        "--expires-at",
        "2030-01-01T00:00:00Z",
    ])
    .command
    {
        Command::Keys(KeysCommand::Create {
            principal,
            name,
            expires_at,
        }) => {
            assert_eq!((principal.as_str(), name.as_str()), ("alice", "ci"));
            assert_eq!(expires_at.as_deref(), Some("2030-01-01T00:00:00Z"));
        }
        other => panic!("{other:?}"),
    }
    match parse(&["hangar", "keys", "rm", "k1", "--reason", "leaked"]).command {
        Command::Keys(KeysCommand::Revoke { key_id, reason }) => {
            assert_eq!(key_id, "k1");
            assert_eq!(reason.as_deref(), Some("leaked"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse(&["hangar", "keys", "list", "alice"]).command,
        Command::Keys(KeysCommand::List { .. })
    ));
    assert!(Cli::try_parse_from(["hangar", "keys", "create", "alice"]).is_err());
    let cli = parse(&["hangar", "tokens", "create", "laptop", "-o", "json"]);
    assert_eq!(cli.output, OutputFormat::Json);
    assert!(matches!(
        cli.command,
        Command::Tokens(TokensCommand::Create {
            expires_at: None,
            ..
        })
    ));
    assert!(matches!(
        parse(&["hangar", "tokens", "list"]).command,
        Command::Tokens(TokensCommand::List)
    ));
    assert!(matches!(
        parse(&["hangar", "tokens", "revoke", "t1"]).command,
        Command::Tokens(TokensCommand::Revoke { .. })
    ));
}

#[test]
fn roles_grammar_and_body() {
    let cli = parse(&[
        "hangar",
        "roles",
        "create",
        "deployer",
        "-p",
        "catalog:deploy",
        "--permission",
        "providers:read",
        "--description",
        "Deploys",
        "--rate-limit",
        "120/60:20",
    ]);
    let Command::Roles(RolesCommand::Create { id, spec }) = cli.command else {
        panic!("not roles create");
    };
    assert_eq!(id, "deployer");
    let body = Value::Object(spec.to_body().unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(
        body,
        json!({
            "description": "Deploys",
            "permissions": ["catalog:deploy", "providers:read"],
            "rate_limit": {"requests": 120, "per_seconds": 60, "burst": 20},
        })
    );
    for sub in ["list", "builtin"] {
        assert!(matches!(
            parse(&["hangar", "roles", sub]).command,
            Command::Roles(RolesCommand::List | RolesCommand::Builtin)
        ));
    }
    assert!(matches!(
        parse(&["hangar", "roles", "update", "deployer", "-p", "*"]).command,
        Command::Roles(RolesCommand::Update { .. })
    ));
    assert!(matches!(
        parse(&["hangar", "roles", "delete", "deployer"]).command,
        Command::Roles(RolesCommand::Delete { .. })
    ));
    assert!(matches!(
        parse(&["hangar", "roles", "get", "viewer"]).command,
        Command::Roles(RolesCommand::Get { .. })
    ));
}

#[test]
fn rate_limit_specs() {
    assert_eq!(
        parse_rate_limit("10/1").ok(),
        Some(json!({"requests": 10, "per_seconds": 1}))
    );
    for bad in ["10", "0/60", "10/0", "x/60", "10/60:", "10/60:0", "/60"] {
        match parse_rate_limit(bad) {
            Err(CliError::Usage(m)) => assert!(m.contains("--rate-limit"), "{bad}: {m}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn principals_auth_and_audit() {
    match parse(&["hangar", "principals", "assign", "bob", "viewer"]).command {
        Command::Principals(PrincipalsCommand::Assign { principal, role }) => {
            assert_eq!((principal.as_str(), role.as_str()), ("bob", "viewer"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse(&["hangar", "principals", "unassign", "bob", "viewer"]).command,
        Command::Principals(PrincipalsCommand::Unassign { .. })
    ));
    assert!(matches!(
        parse(&["hangar", "principals", "roles", "bob"]).command,
        Command::Principals(PrincipalsCommand::Roles { .. })
    ));
    assert!(matches!(
        parse(&["hangar", "principals", "list"]).command,
        Command::Principals(PrincipalsCommand::List)
    ));
    match parse(&["hangar", "auth", "check", "bob", "providers:start"]).command {
        Command::Auth(AuthCommand::Check {
            principal,
            permission,
        }) => assert_eq!(
            (principal.as_str(), permission.as_str()),
            ("bob", "providers:start")
        ),
        other => panic!("{other:?}"),
    }
    let cli = parse(&[
        "hangar",
        "audit",
        "--provider",
        "math",
        "--type",
        "AdminChange",
        "--limit",
        "5",
    ]);
    let Command::Audit(args) = cli.command else {
        panic!("not audit");
    };
    assert_eq!(
        args.query(),
        vec![
            ("provider_id", "math".to_owned()),
            ("event_type", "AdminChange".to_owned()),
            ("limit", "5".to_owned()),
        ]
    );
    assert!(Cli::try_parse_from(["hangar", "audit", "--type", "Nope"]).is_err());
    assert!(Cli::try_parse_from(["hangar", "audit", "--limit", "0"]).is_err());
    assert!(Cli::try_parse_from(["hangar", "security-events", "--limit", "1001"]).is_err());
    assert!(matches!(
        parse(&["hangar", "security-events", "-n", "3"]).command,
        Command::SecurityEvents(SecurityEventsArgs { limit: Some(3) })
    ));
}

#[test]
fn tables() {
    let keys = [
        json!({"key_id": "k1", "name": "ci", "prefix": "hgr_12345678", "created_at": "t0",
               "expires_at": null, "revoked_at": null}),
        json!({"key_id": "k2", "name": "old", "prefix": "hgr_abcdefgh", "created_at": "t1",
               "expires_at": "t2", "revoked_at": "t3"}),
    ];
    assert_eq!(
        keys_table(&keys, "key_id"),
        "\
ID  NAME  PREFIX        CREATED  EXPIRES  STATE
k1  ci    hgr_12345678  t0       -        active
k2  old   hgr_abcdefgh  t1       t2       revoked
"
    );
    let roles = [json!({"id": "viewer", "builtin": true, "permissions": ["a:b", "c:d"]})];
    assert_eq!(
        roles_table(&roles),
        "ROLE    BUILTIN  PERMISSIONS\nviewer  yes      a:b,c:d\n"
    );
    let records = [
        json!({"position": 7, "time": "t", "event_type": "AdminChange",
                          "principal": "admin", "method": "POST", "status": 201}),
    ];
    assert_eq!(
        audit_table(&records),
        "POSITION  TIME  TYPE         PRINCIPAL  DETAILS\n7         t     AdminChange  admin      method=POST status=201\n"
    );
}
