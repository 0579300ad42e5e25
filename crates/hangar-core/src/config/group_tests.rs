//! The `groups:` section.

use std::time::Duration;

use super::{ConfigError, HangarConfig};
use crate::group::{MemberSpec, Strategy};

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

const PROVIDERS: &str = "\
providers:
  a:
    command: [x]
  b:
    command: [y]
";

#[test]
fn reads_groups() {
    let config = parse_ok(&format!(
        "{PROVIDERS}\
groups:
  pool:
    strategy: weighted_round_robin
    min_healthy: 2
    description: two
    members:
      - provider: a
        weight: 3
      - {{ member_id: b, priority: 2 }}
    circuit_breaker:
      failure_threshold: 2
      reset_timeout_s: 0.5
  simple:
    members: [{{ provider: a }}]
"
    ));
    let pool = config.groups.get("pool").cloned().unwrap_or_default();
    assert_eq!(pool.strategy, Strategy::WeightedRoundRobin);
    assert_eq!(pool.min_healthy, 2);
    assert_eq!(
        pool.members,
        [
            MemberSpec {
                provider: "a".into(),
                weight: 3,
                priority: 1
            },
            MemberSpec {
                provider: "b".into(),
                weight: 1,
                priority: 2
            },
        ]
    );
    assert_eq!(pool.circuit_breaker.failure_threshold, 2);
    assert_eq!(
        pool.circuit_breaker.reset_timeout,
        Duration::from_millis(500)
    );
    let simple = config.groups.get("simple").cloned().unwrap_or_default();
    assert_eq!(simple.strategy, Strategy::RoundRobin);
    assert_eq!(simple.min_healthy, 1);
    assert_eq!(simple.circuit_breaker.failure_threshold, 5);
    assert_eq!(
        simple.circuit_breaker.reset_timeout,
        Duration::from_secs(30)
    );
}

#[test]
fn group_errors_name_field_and_line() {
    let cases: [(&str, &str, Option<usize>, &str); 10] = [
        (
            "groups:\n  g:\n    members:\n      - provider: a\n      - provider: nope\n",
            "groups.g.members[1].provider",
            Some(10),
            "unknown provider 'nope'",
        ),
        (
            "groups:\n  g:\n    members:\n    - provider: a\n    - provider: a\n",
            "groups.g.members[1].provider",
            Some(10),
            "provider `a` is listed twice",
        ),
        (
            "groups:\n  g:\n    members:\n      - provider: a\n        weight: 0\n",
            "groups.g.members[0].weight",
            Some(10),
            "must be at least 1",
        ),
        (
            "groups:\n  g:\n    strategy: fastest\n",
            "groups.g.strategy",
            Some(8),
            "unknown variant",
        ),
        (
            "groups:\n  g:\n    members: [{ provider: a, wight: 2 }]\n",
            "groups.g.members[0].wight",
            Some(8),
            "unknown field `wight`",
        ),
        (
            "groups:\n  g:\n    min_healthy: 0\n",
            "groups.g.min_healthy",
            Some(8),
            "must be at least 1",
        ),
        (
            "groups:\n  g:\n    circuit_breaker:\n      reset_timeout_s: 0\n",
            "groups.g.circuit_breaker.reset_timeout_s",
            Some(9),
            "must be more than 0",
        ),
        (
            "groups:\n  g:\n    circuit_breaker: { failure_threshold: 0 }\n",
            "groups.g.circuit_breaker.failure_threshold",
            Some(8),
            "must be at least 1",
        ),
        (
            "groups:\n  a:\n    members: [{ provider: b }]\n",
            "groups.a",
            Some(7),
            "`a` is already a provider id",
        ),
        (
            "groups:\n  g:\n    {}\n  g:\n    {}\n",
            "groups.g",
            Some(9),
            "duplicate group id `g`",
        ),
    ];
    for (groups, field, line, message) in cases {
        let yaml = format!("{PROVIDERS}{groups}");
        let err = parse_err(&yaml);
        assert_eq!(err.field.as_deref(), Some(field), "{yaml}\n{err}");
        assert_eq!(err.line, line, "{yaml}\n{err}");
        assert!(err.message.starts_with(message), "{yaml}\n{err}");
    }
    let err = parse_err("groups:\n  a__b: {}\n");
    assert_eq!(err.field.as_deref(), Some("groups.a__b"));
    assert!(err.message.starts_with("group id `a__b`"), "{err}");
}
