use super::{Effect, PolicyError, Subject, ToolPolicy, Verdict, evaluate};

const NO_ROLES: &[&str] = &[];

fn role(id: &str, provider: &str, tool: &str, effect: Effect) -> ToolPolicy {
    ToolPolicy::new(provider, tool, Subject::Role(id.to_owned()), effect)
}

fn principal(id: &str, provider: &str, tool: &str, effect: Effect) -> ToolPolicy {
    ToolPolicy::new(provider, tool, Subject::Principal(id.to_owned()), effect)
}

fn verdict(effect: Effect, matched: Option<usize>) -> Verdict {
    Verdict { effect, matched }
}

#[test]
fn no_matching_policy_gives_the_default() {
    let policies = [
        role("ops", "fs", "*", Effect::Deny),
        principal("bob", "*", "*", Effect::Deny),
        role("developer", "git", "*", Effect::Deny),
    ];
    for default in Effect::ALL {
        let v = evaluate(&policies, "alice", &["developer"], "fs", "read", default);
        assert_eq!(v, verdict(default, None));
        assert!(v.is_default());
    }
    let v = evaluate([], "alice", NO_ROLES, "fs", "read", Effect::Allow);
    assert_eq!(v, verdict(Effect::Allow, None));
}

#[test]
fn default_depends_on_tools_call() {
    assert_eq!(Effect::default_for(true), Effect::Allow);
    assert_eq!(Effect::default_for(false), Effect::Deny);
}

#[test]
fn deny_wins_over_ask_wins_over_allow() {
    let allow = principal("alice", "fs", "write_file", Effect::Allow);
    let ask = role("developer", "fs", "write_*", Effect::Ask);
    let deny = role("developer", "*", "*_file", Effect::Deny);
    let roles = ["developer"];
    let check = |policies: &[ToolPolicy], expected: Verdict| {
        let v = evaluate(policies, "alice", &roles, "fs", "write_file", Effect::Allow);
        assert_eq!(v, expected, "{policies:?}");
    };
    check(
        std::slice::from_ref(&allow),
        verdict(Effect::Allow, Some(0)),
    );
    check(&[allow.clone(), ask.clone()], verdict(Effect::Ask, Some(1)));
    check(&[ask.clone(), allow.clone()], verdict(Effect::Ask, Some(0)));
    check(
        &[allow.clone(), ask.clone(), deny.clone()],
        verdict(Effect::Deny, Some(2)),
    );
    check(&[deny, ask, allow], verdict(Effect::Deny, Some(0)));
}

#[test]
fn an_allow_policy_overrides_a_deny_default() {
    let policies = [role("viewer", "time", "*", Effect::Allow)];
    let v = evaluate(&policies, "v", &["viewer"], "time", "now", Effect::Deny);
    assert_eq!(v, verdict(Effect::Allow, Some(0)));
    let v = evaluate(&policies, "v", &["viewer"], "fs", "read", Effect::Deny);
    assert_eq!(v, verdict(Effect::Deny, None));
}

#[test]
fn subjects_match_principal_id_or_held_role() {
    let policies = [
        principal("alice", "*", "*", Effect::Deny),
        role("contractors", "*", "*", Effect::Ask),
    ];
    let eval = |who: &str, roles: &[&str]| {
        evaluate(&policies, who, roles, "fs", "read", Effect::Allow).effect
    };
    assert_eq!(eval("alice", &[]), Effect::Deny);
    assert_eq!(eval("bob", &["contractors"]), Effect::Ask);
    assert_eq!(eval("bob", &["developer", "contractors"]), Effect::Ask);
    assert_eq!(eval("bob", &["developer"]), Effect::Allow);
    // A role named like a principal is not that principal, and vice versa.
    assert_eq!(eval("contractors", &[]), Effect::Allow);
    assert_eq!(eval("bob", &["alice"]), Effect::Allow);
}

#[test]
fn globs_apply_to_provider_and_tool() {
    let policies = [role("dev", "fs*", "write_?", Effect::Deny)];
    let eval = |provider: &str, tool: &str| {
        evaluate(&policies, "p", &["dev"], provider, tool, Effect::Allow).effect
    };
    assert_eq!(eval("fs", "write_a"), Effect::Deny);
    assert_eq!(eval("fs-backup", "write_b"), Effect::Deny);
    assert_eq!(eval("fs", "write_ab"), Effect::Allow);
    assert_eq!(eval("git", "write_a"), Effect::Allow);
}

#[test]
fn the_most_specific_policy_of_the_winning_effect_is_reported() {
    let policies = [
        role("dev", "*", "*", Effect::Deny),
        role("dev", "fs", "*", Effect::Deny),
        role("dev", "fs", "delete", Effect::Deny),
        principal("alice", "*", "*", Effect::Deny),
        principal("alice", "fs", "del*", Effect::Allow),
    ];
    let v = evaluate(&policies, "alice", &["dev"], "fs", "delete", Effect::Allow);
    // A principal's policy before any role's, even one with more literal characters.
    assert_eq!(v, verdict(Effect::Deny, Some(3)));
    let v = evaluate(&policies, "bob", &["dev"], "fs", "delete", Effect::Allow);
    assert_eq!(v, verdict(Effect::Deny, Some(2)));
    let v = evaluate(&policies, "bob", &["dev"], "fs", "read", Effect::Allow);
    assert_eq!(v, verdict(Effect::Deny, Some(1)));
}

#[test]
fn duplicate_policies_report_the_first() {
    let p = role("dev", "fs", "*", Effect::Ask);
    let policies = [p.clone(), p.clone(), p];
    let v = evaluate(&policies, "x", &["dev"], "fs", "a", Effect::Allow);
    assert_eq!(v, verdict(Effect::Ask, Some(0)));
}

#[test]
fn evaluate_accepts_any_iterator_of_policies() {
    struct Stored {
        id: u32,
        policy: ToolPolicy,
    }
    let stored = [
        Stored {
            id: 7,
            policy: role("dev", "*", "*", Effect::Allow),
        },
        Stored {
            id: 9,
            policy: role("dev", "fs", "*", Effect::Ask),
        },
    ];
    let roles = vec!["dev".to_owned()];
    let v = evaluate(
        stored.iter().map(|s| &s.policy),
        "x",
        &roles,
        "fs",
        "read",
        Effect::Deny,
    );
    assert_eq!(v.matched.map(|i| stored[i].id), Some(9));
}

#[test]
fn effects_parse_print_and_order() {
    for effect in Effect::ALL {
        assert_eq!(effect.as_str().parse(), Ok(effect));
        assert_eq!(effect.to_string().to_uppercase().parse(), Ok(effect));
        assert_eq!(
            serde_json::to_string(&effect).ok(),
            Some(format!("\"{effect}\""))
        );
    }
    assert!(Effect::Allow < Effect::Ask && Effect::Ask < Effect::Deny);
    let err = "block".parse::<Effect>().err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("unknown effect `block` (expected allow, ask or deny)")
    );
}

#[test]
fn policies_round_trip_as_flat_json() {
    let policy = role("developer", "fs", "write_*", Effect::Ask);
    let json = serde_json::to_value(&policy).ok();
    assert_eq!(
        json,
        Some(serde_json::json!({
            "provider": "fs", "tool": "write_*", "role_id": "developer", "effect": "ask"
        }))
    );
    let back: Option<ToolPolicy> = json.and_then(|j| serde_json::from_value(j).ok());
    assert_eq!(back, Some(policy));

    let parsed: Result<ToolPolicy, _> =
        serde_json::from_str(r#"{"principal_id": "ci-bot", "effect": "deny"}"#);
    assert_eq!(
        parsed.ok(),
        Some(principal("ci-bot", "*", "*", Effect::Deny))
    );
}

#[test]
fn policies_need_exactly_one_subject() {
    for body in [
        r#"{"provider": "fs", "effect": "deny"}"#,
        r#"{"principal_id": "a", "role_id": "b", "effect": "deny"}"#,
    ] {
        let err = serde_json::from_str::<ToolPolicy>(body)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("exactly one of `principal_id` and `role_id`")),
            "{body}: {err:?}"
        );
    }
    for body in [
        r#"{"role_id": "a", "effect": "maybe"}"#,
        r#"{"role_id": "a"}"#,
        r#"{"role_id": "a", "effect": "deny", "extra": 1}"#,
    ] {
        assert!(serde_json::from_str::<ToolPolicy>(body).is_err(), "{body}");
    }
}

#[test]
fn validation_names_the_field() {
    let err = |p: ToolPolicy| p.validate().err().map(|e: PolicyError| e.field);
    assert_eq!(err(role("dev", "fs", "*", Effect::Deny)), None);
    assert_eq!(
        err(principal("Alice@example.com", "*", "*", Effect::Deny)),
        None
    );
    assert_eq!(
        err(role("dev", "", "*", Effect::Deny)).as_deref(),
        Some("provider")
    );
    assert_eq!(
        err(role("dev", "fs", "", Effect::Deny)).as_deref(),
        Some("tool")
    );
    assert_eq!(
        err(role("dev", "fs", "a\nb", Effect::Deny)).as_deref(),
        Some("tool")
    );
    assert_eq!(
        err(role("dev", &"x".repeat(257), "*", Effect::Deny)).as_deref(),
        Some("provider")
    );
    assert_eq!(
        err(principal("", "*", "*", Effect::Deny)).as_deref(),
        Some("principal_id")
    );
    assert_eq!(
        err(role("Dev Team", "*", "*", Effect::Deny)).as_deref(),
        Some("role_id")
    );
    let message = role("dev", "fs", "", Effect::Deny)
        .validate()
        .err()
        .map(|e| e.to_string());
    assert_eq!(message.as_deref(), Some("tool: must not be empty"));
}

#[test]
fn subjects_show_and_serialize() {
    let p = Subject::Principal("alice".into());
    let r = Subject::Role("dev".into());
    assert_eq!(p.to_string(), "principal `alice`");
    assert_eq!(r.to_string(), "role `dev`");
    assert_eq!((p.id(), r.id()), ("alice", "dev"));
    assert_eq!(
        serde_json::to_string(&r).ok().as_deref(),
        Some(r#"{"role_id":"dev"}"#)
    );
}
