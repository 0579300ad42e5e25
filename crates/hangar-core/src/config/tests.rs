use std::time::Duration;

use super::{ConfigError, HangarConfig, ServerSettings};
use crate::group::{GroupSpec, Strategy};
use crate::spec::{ProviderMode, ProviderSpec};

fn parse_err(yaml: &str) -> ConfigError {
    match HangarConfig::from_yaml(yaml) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(err) => err,
    }
}

fn parse_ok(yaml: &str) -> HangarConfig {
    match HangarConfig::from_yaml(yaml) {
        Ok(config) => config,
        Err(err) => panic!("expected a config, got {err}"),
    }
}

#[test]
fn empty_documents_are_empty_configs() {
    for yaml in [
        "",
        "\n\n",
        "# only a comment\n",
        "---\n",
        "~\n",
        "providers:\n",
    ] {
        assert_eq!(parse_ok(yaml), HangarConfig::default(), "{yaml:?}");
    }
}

#[test]
fn reads_providers_of_every_mode() {
    let config = parse_ok(
        "\
providers:
  math:
    mode: subprocess
    command: [python, -m, math_server]
    env: { LOG_LEVEL: debug }
    idle_ttl_s: 180
  sqlite:
    mode: container
    image: ghcr.io/example/sqlite-mcp:1
    volumes: [\"/data:/data:ro\"]
    read_only: true
  search:
    mode: remote
    endpoint: https://search.example.com/mcp
    headers: { Authorization: \"Bearer ${secret:SEARCH}\" }
server:
  tool_separator: \"-\"
  allowed_origins: [\"https://app.example.com\"]
",
    );
    assert_eq!(config.providers.len(), 3);
    let math = config.providers.get("math");
    assert_eq!(math.map(|s| s.command.len()), Some(3));
    assert_eq!(math.map(|s| s.idle_ttl_s), Some(180));
    assert_eq!(math.map(|s| s.call_timeout_s), Some(120));
    assert_eq!(
        config.providers.get("sqlite").map(|s| s.mode),
        Some(ProviderMode::Docker)
    );
    assert_eq!(config.server.tool_separator, "-");
    assert_eq!(config.server.max_body_bytes, 4 * 1024 * 1024);
    assert_eq!(config.server.max_log_lines, 1000);
}

#[test]
fn reads_mcp_hangar_style_configs() {
    let config = parse_ok(
        "\
# MCP Hangar style
mcp_servers:
  filesystem:
    command: [npx, -y, \"@modelcontextprotocol/server-filesystem\", /tmp]
    description: Files under /tmp
    health_check_interval_s: 30
    max_consecutive_failures: 2
providers:
  math:
    mode: subprocess
    command: [python, -m, math]
",
    );
    let ids: Vec<&str> = config.providers.keys().map(String::as_str).collect();
    assert_eq!(ids, ["filesystem", "math"]);
    let fs = config.providers.get("filesystem");
    assert_eq!(fs.map(|s| s.mode), Some(ProviderMode::Subprocess));
    assert_eq!(fs.map(|s| s.max_consecutive_failures), Some(2));
}

#[test]
fn duplicate_ids_across_sections_are_errors() {
    let err = parse_err(
        "\
providers:
  math:
    command: [a]
mcp_servers:
  math:
    command: [b]
",
    );
    assert_eq!(err.field.as_deref(), Some("mcp_servers.math"));
    assert_eq!(err.line, Some(5));
}

#[test]
fn duplicate_ids_in_one_section_are_errors() {
    let err = parse_err("providers:\n  math:\n    command: [a]\n  math:\n    command: [b]\n");
    assert_eq!(err.field.as_deref(), Some("providers.math"));
    assert_eq!(err.line, Some(4));
    assert_eq!(err.message, "duplicate provider id `math`");
}

#[test]
fn unknown_keys_are_errors_with_locations() {
    let err = parse_err("providers: {}\nlogging: true\n");
    assert_eq!(err.field.as_deref(), Some("logging"));
    assert_eq!(err.line, Some(2));
    assert!(err.message.starts_with("unknown field `logging`"), "{err}");

    let err = parse_err("providers:\n  math:\n    command: [x]\n    shell: true\n");
    assert_eq!(err.field.as_deref(), Some("providers.math.shell"));
    assert_eq!(err.line, Some(4));
    assert_eq!(err.column, Some(5));
    assert!(
        err.to_string().starts_with(
            "config error at line 4 column 5: providers.math.shell: unknown field `shell`"
        ),
        "{err}"
    );

    let err = parse_err("server:\n  port: 1\n");
    assert_eq!(err.field.as_deref(), Some("server.port"));
    assert_eq!(err.line, Some(2));
}

#[test]
fn type_and_syntax_errors_have_lines() {
    let err = parse_err("providers:\n  math:\n    idle_ttl_s: soon\n");
    assert_eq!(err.field.as_deref(), Some("providers.math.idle_ttl_s"));
    assert_eq!(err.line, Some(3));
    assert!(err.message.contains("invalid type"), "{err}");

    let err = parse_err("providers:\n  math:\n    mode: shell\n    command: [x]\n");
    assert_eq!(err.field.as_deref(), Some("providers.math.mode"));
    assert_eq!(err.line, Some(3));

    let err = parse_err("providers:\n  math: [unclosed\n");
    assert!(err.line.is_some(), "{err:?}");
    assert!(!err.message.contains(" at line "), "{err:?}");

    let err = parse_err("- a\n- b\n");
    assert_eq!(
        err.to_string(),
        "config error at line 1 column 1: invalid type: sequence, expected a map with providers, mcp_servers, groups and server"
    );

    let err = parse_err("providers:\n  math: [x]\n");
    assert_eq!(err.field.as_deref(), Some("providers.math"));
    assert!(
        err.message
            .ends_with("expected a provider spec (a map of its fields)"),
        "{err}"
    );
}

#[test]
fn validation_errors_name_field_and_line() {
    let err = parse_err(
        "\
server:
  tool_separator: __

providers:
  ok:
    command: [x]
  math:
    mode: subprocess
    command: []
",
    );
    assert_eq!(
        err.to_string(),
        "config error at line 9: providers.math.command: must not be empty (subprocess mode needs the program and its arguments)"
    );

    let err = parse_err("providers:\n  math:\n    mode: subprocess\n");
    assert_eq!(err.field.as_deref(), Some("providers.math.command"));
    assert_eq!(err.line, Some(2));

    let err = parse_err("mcp_servers:\n  math:\n    command: [x]\n    env:\n      \"A=B\": x\n");
    assert_eq!(err.field.as_deref(), Some("providers.math.env.A=B"));
    assert_eq!(err.line, Some(5));

    let err = parse_err("providers:\n  r:\n    mode: remote\n    endpoint: ftp://x\n");
    assert_eq!(err.field.as_deref(), Some("providers.r.endpoint"));
    assert_eq!(err.line, Some(4));

    let err = parse_err("providers:\n  d:\n    mode: docker\n    cwd: /x\n    image: i\n");
    assert_eq!(err.field.as_deref(), Some("providers.d.cwd"));
    assert_eq!(err.line, Some(4));

    let err = parse_err("providers:\n  s:\n    command: [x]\n    startup_timeout_s: 0\n");
    assert_eq!(err.field.as_deref(), Some("providers.s.startup_timeout_s"));
    assert_eq!(err.line, Some(4));
}

#[test]
fn bad_provider_ids_are_errors() {
    let err = parse_err("providers:\n  a__b:\n    command: [x]\n");
    assert_eq!(err.field.as_deref(), Some("providers.a__b"));
    assert_eq!(err.line, Some(2));
    let err = parse_err("providers:\n  \"-x\":\n    command: [x]\n");
    assert_eq!(err.field.as_deref(), Some("providers.-x"));
}

#[test]
fn server_settings_are_validated() {
    for (yaml, field) in [
        ("server:\n  tool_separator: \"\"\n", "server.tool_separator"),
        (
            "server:\n  tool_separator: \".\"\n",
            "server.tool_separator",
        ),
        (
            "server:\n  allowed_origins: [\"*\"]\n",
            "server.allowed_origins[0]",
        ),
        (
            "server:\n  allowed_origins: [\"https://a.b/path\"]\n",
            "server.allowed_origins[0]",
        ),
        (
            "server:\n  allowed_origins: [\"a.b\"]\n",
            "server.allowed_origins[0]",
        ),
        ("server:\n  max_body_bytes: 10\n", "server.max_body_bytes"),
    ] {
        let err = parse_err(yaml);
        assert_eq!(err.field.as_deref(), Some(field), "{yaml}");
        assert!(err.line.is_some(), "{yaml}: {err:?}");
    }
    assert_eq!(ServerSettings::default().validate(), Ok(()));
}

#[test]
fn error_display_omits_missing_parts() {
    let err = ConfigError {
        field: None,
        line: None,
        column: None,
        message: "boom".into(),
    };
    assert_eq!(err.to_string(), "config error: boom");
    let err = ConfigError {
        field: Some("server".into()),
        line: Some(7),
        column: None,
        message: "bad".into(),
    };
    assert_eq!(err.to_string(), "config error at line 7: server: bad");
}

#[test]
fn yaml_round_trips() {
    let mut config = HangarConfig::default();
    let mut math =
        ProviderSpec::subprocess(["python", "-m", "math server", "123", "true", "null", ""]);
    math.env.insert("NUM".into(), "0123".into());
    math.env.insert("YES".into(), "yes".into());
    math.description = Some("multi\nline: text # not a comment".into());
    math.cwd = Some("/srv".into());
    config.providers.insert("math".into(), math);
    let mut docker = ProviderSpec::docker("img:1");
    docker.read_only = Some(false);
    docker.network = Some("bridge".into());
    docker.volumes = vec!["/a:/b:ro".into()];
    config.providers.insert("d".into(), docker);
    let mut remote = ProviderSpec::remote("https://h/mcp");
    remote.headers.insert("X-Key".into(), "${secret:K}".into());
    remote.idle_ttl_s = 0;
    config.providers.insert("r".into(), remote);
    config.server.allowed_origins = vec!["http://localhost:3000".into()];
    config.server.max_log_lines = 0;
    let mut pool = GroupSpec::new(Strategy::Priority, ["math", "r"]);
    pool.min_healthy = 2;
    pool.description = Some("pool: # of two".into());
    pool.circuit_breaker.reset_timeout = Duration::from_millis(1500);
    if let Some(member) = pool.members.get_mut(1) {
        member.priority = 2;
        member.weight = 3;
    }
    config.groups.insert("pool".into(), pool);
    config
        .groups
        .insert("plain".into(), GroupSpec::new(Strategy::RoundRobin, ["d"]));

    let yaml = match config.to_yaml() {
        Ok(yaml) => yaml,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(parse_ok(&yaml), config, "{yaml}");
    assert_eq!(
        parse_ok(&HangarConfig::default().to_yaml().unwrap_or_default()),
        HangarConfig::default()
    );
}

mod roundtrip {
    use proptest::prelude::*;

    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::super::HangarConfig;
    use crate::group::{BreakerConfig, GroupSpec, MemberSpec, Strategy as Balance};
    use crate::spec::ProviderSpec;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,12}",
            Just("123".to_owned()),
            Just("null".to_owned()),
            Just("~".to_owned()),
            Just("- x".to_owned()),
            Just(" lead and trail ".to_owned()),
            Just("a: b # c".to_owned()),
        ]
    }

    fn spec() -> impl Strategy<Value = ProviderSpec> {
        (
            prop::collection::vec(text(), 1..4),
            prop::collection::btree_map("[A-Z_]{1,6}", text(), 0..3),
            prop::option::of(text()),
            0u64..100_000,
        )
            .prop_map(|(command, env, description, idle)| ProviderSpec {
                command,
                env,
                description,
                idle_ttl_s: idle,
                ..ProviderSpec::default()
            })
    }

    /// Member picks as (provider index, weight, priority).
    type Picks = Vec<(usize, u32, u32)>;

    /// A group without members yet, and the members to give it.
    fn group() -> impl Strategy<Value = (GroupSpec, Picks)> {
        (
            prop::sample::select(Balance::ALL.to_vec()),
            1u32..4,
            1u32..10,
            1u64..100_000,
            prop::option::of(text()),
            prop::collection::vec((0usize..8, 1u32..5, 0u32..3), 0..4),
        )
            .prop_map(
                |(strategy, min_healthy, threshold, timeout_ms, description, picks)| {
                    let spec = GroupSpec {
                        strategy,
                        min_healthy,
                        members: Vec::new(),
                        circuit_breaker: BreakerConfig {
                            failure_threshold: threshold,
                            reset_timeout: Duration::from_millis(timeout_ms),
                        },
                        description,
                    };
                    (spec, picks)
                },
            )
    }

    /// Gives each group distinct members among `providers`.
    fn with_members(
        providers: &BTreeMap<String, ProviderSpec>,
        groups: BTreeMap<String, (GroupSpec, Picks)>,
    ) -> BTreeMap<String, GroupSpec> {
        let ids: Vec<&String> = providers.keys().collect();
        groups
            .into_iter()
            .map(|(id, (mut spec, picks))| {
                for (pick, weight, priority) in picks {
                    let Some(provider) = ids.get(pick % ids.len().max(1)) else {
                        continue;
                    };
                    if spec.member_index(provider).is_none() {
                        spec.members.push(MemberSpec {
                            provider: (*provider).clone(),
                            weight,
                            priority,
                        });
                    }
                }
                (id, spec)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn from_yaml_reads_back_to_yaml(
            providers in prop::collection::btree_map("[a-z][a-z0-9-]{0,8}", spec(), 0..4),
            groups in prop::collection::btree_map("G[a-z0-9]{0,6}", group(), 0..3),
        ) {
            let groups = with_members(&providers, groups);
            let config = HangarConfig { providers, groups, ..HangarConfig::default() };
            let yaml = config.to_yaml();
            prop_assert!(yaml.is_ok());
            let yaml = yaml.unwrap_or_default();
            // Specs with a blank program are rejected by validation; compare parse only then.
            match HangarConfig::from_yaml(&yaml) {
                Ok(back) => prop_assert_eq!(back, config),
                Err(err) => {
                    prop_assert!(config.validate().is_err(), "{err}\n{yaml}");
                }
            }
        }
    }
}

#[test]
fn zero_backups_or_snapshot_interval_are_rejected() {
    let e = parse_err("server:\n  backup_count: 0\n");
    assert_eq!(e.field.as_deref(), Some("server.backup_count"));
    let e = parse_err("server:\n  snapshot_every: 0\n");
    assert_eq!(e.field.as_deref(), Some("server.snapshot_every"));
}

#[test]
fn rate_limit_and_auth_backoff_are_validated() {
    let e = parse_err("server:\n  rate_limit: { requests: 0, per_seconds: 60 }\n");
    assert_eq!(e.field.as_deref(), Some("server.rate_limit.requests"));
    let e = parse_err("server:\n  auth_backoff: { quiet_period_s: 0 }\n");
    assert_eq!(
        e.field.as_deref(),
        Some("server.auth_backoff.quiet_period_s")
    );
    let ok = HangarConfig::from_yaml(
        "server:\n  rate_limit: { requests: 5, per_seconds: 1, burst: 2 }\n  auth_backoff: { free_failures: 1 }\n",
    );
    let ok = ok.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ok.server.rate_limit,
        Some(crate::RateLimit::new(5, 1).with_burst(2))
    );
    assert_eq!(ok.server.auth_backoff.map(|b| b.free_failures), Some(1));
}

#[test]
fn errors_never_quote_the_values_they_found() {
    let secret = "hgr_5ecret0123456789abcdef";
    for yaml in [
        // A key file, /etc/passwd, ...: the whole document is one scalar.
        format!("{secret}\n"),
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin\n".to_owned(),
        format!("providers:\n  p:\n    mode: {secret}\n    command: [x]\n"),
        format!("providers:\n  p:\n    command: [x]\n    idle_ttl_s: \"{secret}\"\n"),
        "providers:\n  p:\n    command: [x]\n    idle_ttl_s: 31337.5\n".to_owned(),
        "providers:\n  p:\n    command: x\n    env: 987654321\n".to_owned(),
        format!("server:\n  tool_separator: [\"{secret}\\\"quoted\"]\n"),
    ] {
        let err = parse_err(&yaml).to_string();
        for needle in [secret, "root:x", "31337", "987654321", "quoted"] {
            assert!(!err.contains(needle), "{err:?} quotes {needle:?}");
        }
    }
    let err = parse_err(&format!("providers:\n  p:\n    mode: {secret}\n"));
    assert_eq!(err.field.as_deref(), Some("providers.p.mode"), "{err}");
    assert!(
        err.message.starts_with("unknown variant, expected one of"),
        "{err}"
    );
    assert_eq!(
        super::redact_values(r#"invalid type: string "a\"b", expected a map"#),
        "invalid type: a string, expected a map"
    );
}
