//! Tests for `config.rs`: the grammar, the reload body and the outputs for people.
use super::*;
use crate::args::Command;
use clap::Parser;

fn parse(args: &[&str]) -> ConfigCommand {
    match Cli::try_parse_from(args) {
        Ok(Cli {
            command: Command::Config(command),
            ..
        }) => command,
        Ok(other) => panic!("parse {args:?}: not config: {other:?}"),
        Err(e) => panic!("parse {args:?}: {e}"),
    }
}

#[test]
fn reload_body() {
    let ConfigCommand::Reload(reload) = parse(&["hangar", "config", "reload"]) else {
        panic!("not reload")
    };
    assert_eq!(reload.to_body().ok(), Some(json!({})));
    let ConfigCommand::Reload(reload) = parse(&[
        "hangar",
        "config",
        "reload",
        "--config-path",
        "/etc/hangar/hangar.yaml",
    ]) else {
        panic!("not reload")
    };
    assert_eq!(
        reload.to_body().ok(),
        Some(json!({"config_path": "/etc/hangar/hangar.yaml"}))
    );
    let empty = ReloadArgs {
        config_path: Some(" ".into()),
    };
    assert!(matches!(empty.to_body(), Err(CliError::Usage(_))));
}

#[test]
fn subcommands_parse() {
    assert!(matches!(
        parse(&["hangar", "config", "get"]),
        ConfigCommand::Get
    ));
    assert!(matches!(
        parse(&["hangar", "config", "backup"]),
        ConfigCommand::Backup
    ));
    assert!(matches!(
        parse(&["hangar", "config", "diff", "-o", "json"]),
        ConfigCommand::Diff
    ));
    let ConfigCommand::Export(export) = parse(&["hangar", "config", "export", "--out", "x.yaml"])
    else {
        panic!("not export")
    };
    assert_eq!(export.out, Some(PathBuf::from("x.yaml")));
    let ConfigCommand::Export(export) = parse(&["hangar", "config", "export"]) else {
        panic!("not export")
    };
    assert_eq!(export.out, None);
    assert!(Cli::try_parse_from(["hangar", "config"]).is_err());
}

#[test]
fn config_as_yaml() {
    let response = json!({
        "config": {
            "providers": {"math": {"mode": "subprocess", "command": ["python", "-m", "math"]}},
            "groups": {},
            "server": {"listen": "127.0.0.1:8000"}
        },
        "config_path": "/etc/hangar.yaml"
    });
    let text = config_text(&response).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.starts_with("# config file: /etc/hangar.yaml\n"),
        "{text}"
    );
    assert!(text.contains("providers:\n  math:\n"), "{text}");
    assert!(text.contains("- python\n"), "{text}");
    assert!(text.ends_with('\n'));
    // What is printed is YAML that reads back as the same configuration.
    let back: Value = yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, response["config"]);
    let no_file = json!({"config": {"providers": {}}, "config_path": null});
    let text = config_text(&no_file).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.starts_with("# no config file"), "{text}");
    assert!(config_text(&json!({"config": null})).is_err());
}

#[test]
fn reload_summary_lists_what_changed() {
    let response = json!({"status": "reloaded", "result": {
        "added": ["a", "b"], "removed": [], "updated": ["c"], "unchanged": ["d", "e"],
        "kept": ["api-1"],
        "groups": {"added": [], "removed": ["g"], "updated": [], "unchanged": ["h"]}
    }});
    let expected = "\
configuration reloaded (2 providers, 1 group unchanged)
KIND      CHANGE      IDS
provider  added       a, b
provider  updated     c
provider  kept (API)  api-1
group     removed     g
";
    assert_eq!(reload_summary(&response), expected);
    let nothing = json!({"status": "reloaded", "result": {
        "added": [], "removed": [], "updated": [], "unchanged": ["x"], "kept": [],
        "groups": {"added": [], "removed": [], "updated": [], "unchanged": []}
    }});
    assert_eq!(
        reload_summary(&nothing),
        "configuration reloaded: no changes (1 provider unchanged)\n"
    );
    assert!(!reload_failed(&response));
    // The server's full answer: failures (id → reason), restart-only settings, the file.
    let partial = json!({"status": "reloaded", "result": {
        "config_path": "/etc/hangar.yaml",
        "added": [], "removed": [], "updated": [], "unchanged": [], "kept": [],
        "failed": {"bad": "command: must not be empty"},
        "restart_required": ["listen"],
        "groups": {"added": [], "removed": [], "updated": [], "unchanged": [], "kept": [],
                   "failed": {}}
    }});
    let expected = "\
configuration reloaded from /etc/hangar.yaml
KIND      CHANGE         IDS
provider  FAILED         bad: command: must not be empty
server    needs restart  listen
";
    assert_eq!(reload_summary(&partial), expected);
    assert!(reload_failed(&partial));
    let group_failed = json!({"result": {"groups": {"failed": ["g"]}}});
    assert!(reload_failed(&group_failed));
    assert!(!reload_failed(&json!({"status": "reloaded"})));
    // Without a result object, the response is shown as it is.
    assert_eq!(
        reload_summary(&json!({"status": "reloaded"})),
        "status  reloaded\n"
    );
}

#[test]
fn backup_summary_lines() {
    let response =
        json!({"backup_path": "/etc/hangar.yaml.20260101T000000.bak", "created": true, "kept": 5});
    assert_eq!(
        backup_summary(&response),
        "backup created: /etc/hangar.yaml.20260101T000000.bak (backups kept: 5)\n"
    );
    assert_eq!(
        backup_summary(&json!({"backup_path": "/b"})),
        "backup created: /b\n"
    );
    assert_eq!(
        backup_summary(&json!({"backup_path": null, "created": false})),
        "backup_path  -\ncreated      no\n"
    );
}

#[test]
fn newline_handling() {
    assert_eq!(with_newline(""), "");
    assert_eq!(with_newline("a"), "a\n");
    assert_eq!(with_newline("a\n"), "a\n");
    assert!(string_field(&json!({"yaml": 1}), "yaml").is_err());
    assert_eq!(string_field(&json!({"yaml": "x"}), "yaml").ok(), Some("x"));
}
