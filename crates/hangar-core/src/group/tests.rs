use std::time::Duration;

use super::{GroupSpec, GroupState, MemberSpec, Strategy, group_state};

#[test]
fn strategy_names_round_trip() {
    for strategy in Strategy::ALL {
        let name = strategy.to_string();
        assert_eq!(name.parse::<Strategy>(), Ok(strategy));
        assert_eq!(
            serde_json::to_string(&strategy).ok(),
            Some(format!("\"{name}\""))
        );
    }
    assert_eq!("Least-Connections".parse(), Ok(Strategy::LeastConnections));
    assert_eq!(Strategy::default(), Strategy::RoundRobin);
    let err = "fastest".parse::<Strategy>().err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "unknown strategy `fastest` (expected round_robin, weighted_round_robin, least_connections, random or priority)"
        )
    );
}

fn valid() -> GroupSpec {
    GroupSpec::new(Strategy::Priority, ["a", "b"])
}

fn field_of(spec: &GroupSpec, id: &str) -> Option<String> {
    spec.validate(id).err().map(|e| e.field)
}

#[test]
fn validation_names_the_field() {
    assert_eq!(valid().validate("pool"), Ok(()));
    assert_eq!(GroupSpec::default().validate("empty"), Ok(()));
    let err = valid().validate("a__b").err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("id: group id `a__b` must not contain the tool separator `__`")
    );

    let mut spec = valid();
    spec.min_healthy = 0;
    assert_eq!(field_of(&spec, "g").as_deref(), Some("min_healthy"));

    let mut spec = valid();
    spec.min_healthy = 5;
    assert_eq!(
        spec.validate("g"),
        Ok(()),
        "more than the members is allowed"
    );

    let mut spec = valid();
    spec.members.push(MemberSpec::new("a"));
    assert_eq!(field_of(&spec, "g").as_deref(), Some("members[2].provider"));

    let mut spec = valid();
    spec.members.push(MemberSpec::new("no way"));
    assert_eq!(field_of(&spec, "g").as_deref(), Some("members[2].provider"));

    let mut spec = valid();
    if let Some(m) = spec.members.get_mut(1) {
        m.weight = 0;
    }
    assert_eq!(field_of(&spec, "g").as_deref(), Some("members[1].weight"));

    let mut spec = valid();
    spec.circuit_breaker.failure_threshold = 0;
    assert_eq!(
        field_of(&spec, "g").as_deref(),
        Some("circuit_breaker.failure_threshold")
    );

    for timeout in [Duration::ZERO, Duration::from_secs(86_401)] {
        let mut spec = valid();
        spec.circuit_breaker.reset_timeout = timeout;
        assert_eq!(
            field_of(&spec, "g").as_deref(),
            Some("circuit_breaker.reset_timeout_s")
        );
    }
    let mut spec = valid();
    spec.circuit_breaker.reset_timeout = Duration::from_millis(1);
    assert_eq!(spec.validate("g"), Ok(()));
}

#[test]
fn serde_uses_defaults_and_leaves_them_out() {
    let spec: GroupSpec = match serde_json::from_str(r#"{"members":[{"provider":"a"}]}"#) {
        Ok(spec) => spec,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(spec, GroupSpec::new(Strategy::RoundRobin, ["a"]));
    assert_eq!(
        serde_json::to_string(&spec).ok().as_deref(),
        Some(r#"{"strategy":"round_robin","min_healthy":1,"members":[{"provider":"a"}]}"#)
    );
    let err = serde_json::from_str::<GroupSpec>(r#"{"member":[]}"#).err();
    assert!(err.is_some_and(|e| e.to_string().contains("unknown field `member`")));
    let member: Result<MemberSpec, _> = serde_json::from_str(r#"{"member_id":"a","weight":3}"#);
    assert_eq!(
        member.ok(),
        Some(MemberSpec {
            provider: "a".into(),
            weight: 3,
            priority: 1,
        })
    );
}

#[test]
fn group_state_from_member_counts() {
    use GroupState::{Degraded, Healthy, Inactive, Partial};
    // (healthy, total, min_healthy, expected)
    for (healthy, total, min, expected) in [
        (0, 0, 1, Inactive),
        (0, 3, 1, Inactive),
        (3, 3, 1, Healthy),
        (3, 3, 3, Healthy),
        (2, 3, 1, Partial),
        (2, 3, 2, Partial),
        (1, 3, 2, Degraded),
        (2, 2, 3, Degraded),
        (5, 2, 1, Healthy),
        (1, 1, 0, Healthy),
    ] {
        assert_eq!(
            group_state(healthy, total, min),
            expected,
            "{healthy}/{total} min {min}"
        );
    }
    for (state, name) in [
        (Healthy, "healthy"),
        (Partial, "partial"),
        (Degraded, "degraded"),
        (Inactive, "inactive"),
    ] {
        assert_eq!(state.to_string(), name);
        assert_eq!(
            serde_json::to_string(&state).ok(),
            Some(format!("\"{name}\""))
        );
    }
}
