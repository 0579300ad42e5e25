use proptest::prelude::*;

use super::{Effect, Subject, ToolPolicy, Verdict, evaluate};

// Small vocabularies so that random policies often match random calls.
const PROVIDER_GLOBS: &[&str] = &["*", "fs", "f?", "git", "g*", "db", "*s"];
const TOOL_GLOBS: &[&str] = &["*", "read", "write_*", "write_file", "r??d", "*_dir", "?*"];
const PROVIDERS: &[&str] = &["fs", "git", "db"];
const TOOLS: &[&str] = &["read", "write_file", "write_dir", "drop"];
const PRINCIPALS: &[&str] = &["alice", "bob"];
const ROLES: &[&str] = &["developer", "viewer", "ops"];

fn effect() -> impl Strategy<Value = Effect> {
    prop::sample::select(Effect::ALL.to_vec())
}

fn subject() -> impl Strategy<Value = Subject> {
    prop_oneof![
        prop::sample::select(PRINCIPALS).prop_map(|id| Subject::Principal(id.to_owned())),
        prop::sample::select(ROLES).prop_map(|id| Subject::Role(id.to_owned())),
    ]
}

fn policy() -> impl Strategy<Value = ToolPolicy> {
    (
        prop::sample::select(PROVIDER_GLOBS),
        prop::sample::select(TOOL_GLOBS),
        subject(),
        effect(),
    )
        .prop_map(|(provider, tool, subject, effect)| {
            ToolPolicy::new(provider, tool, subject, effect)
        })
}

/// One call: principal, its roles, provider, tool, default effect.
#[derive(Clone, Debug)]
struct Call {
    principal: &'static str,
    roles: Vec<&'static str>,
    provider: &'static str,
    tool: &'static str,
    default: Effect,
}

fn call() -> impl Strategy<Value = Call> {
    (
        prop::sample::select(PRINCIPALS),
        prop::sample::subsequence(ROLES, 0..=ROLES.len()),
        prop::sample::select(PROVIDERS),
        prop::sample::select(TOOLS),
        effect(),
    )
        .prop_map(|(principal, roles, provider, tool, default)| Call {
            principal,
            roles,
            provider,
            tool,
            default,
        })
}

fn eval(policies: &[ToolPolicy], c: &Call) -> Verdict {
    evaluate(
        policies,
        c.principal,
        &c.roles,
        c.provider,
        c.tool,
        c.default,
    )
}

proptest! {
    /// The effect is the strongest among matching policies, or the default when none
    /// matches, and the reported policy matches and carries that effect.
    #[test]
    fn effect_is_the_strongest_match(policies in prop::collection::vec(policy(), 0..12), c in call()) {
        let v = eval(&policies, &c);
        let strongest = policies
            .iter()
            .filter(|p| p.matches(c.principal, &c.roles, c.provider, c.tool))
            .map(|p| p.effect)
            .max();
        prop_assert_eq!(v.effect, strongest.unwrap_or(c.default));
        match v.matched {
            None => prop_assert!(strongest.is_none()),
            Some(i) => {
                let p = &policies[i];
                prop_assert!(p.matches(c.principal, &c.roles, c.provider, c.tool));
                prop_assert_eq!(p.effect, v.effect);
            }
        }
    }

    /// Adding a deny policy never weakens the verdict, and a matching one always denies:
    /// a deny can never turn into an allow or an ask.
    #[test]
    fn adding_a_deny_never_weakens(
        policies in prop::collection::vec(policy(), 0..12),
        (provider, tool, subject) in (
            prop::sample::select(PROVIDER_GLOBS),
            prop::sample::select(TOOL_GLOBS),
            subject(),
        ),
        at in any::<prop::sample::Index>(),
        c in call(),
    ) {
        let before = eval(&policies, &c);
        let deny = ToolPolicy::new(provider, tool, subject, Effect::Deny);
        let mut more = policies.clone();
        more.insert(at.index(policies.len() + 1), deny.clone());
        let after = eval(&more, &c);
        prop_assert!(after.effect >= before.effect, "{:?} -> {:?}", before, after);
        if before.effect == Effect::Deny {
            prop_assert_eq!(after.effect, Effect::Deny);
        }
        if deny.matches(c.principal, &c.roles, c.provider, c.tool) {
            prop_assert_eq!(after.effect, Effect::Deny);
            prop_assert!(after.matched.is_some());
        }
    }

    /// Shuffling the policies changes neither the effect nor which policy is reported.
    #[test]
    fn evaluation_is_order_independent(
        (policies, shuffled) in prop::collection::vec(policy(), 0..12)
            .prop_flat_map(|p| (Just(p.clone()), Just(p).prop_shuffle())),
        c in call(),
    ) {
        let a = eval(&policies, &c);
        let b = eval(&shuffled, &c);
        prop_assert_eq!(a.effect, b.effect);
        prop_assert_eq!(
            a.matched.map(|i| &policies[i]),
            b.matched.map(|i| &shuffled[i])
        );
    }

    /// Policies for other principals and for roles not held change nothing.
    #[test]
    fn policies_for_others_are_ignored(
        policies in prop::collection::vec(policy(), 0..12),
        c in call(),
    ) {
        let mine: Vec<ToolPolicy> = policies
            .iter()
            .filter(|p| p.applies_to(c.principal, &c.roles))
            .cloned()
            .collect();
        let full = eval(&policies, &c);
        let own = eval(&mine, &c);
        prop_assert_eq!(full.effect, own.effect);
        prop_assert_eq!(full.matched.map(|i| &policies[i]), own.matched.map(|i| &mine[i]));
    }

    /// Policies survive a JSON round trip.
    #[test]
    fn json_round_trip(p in policy()) {
        let json = serde_json::to_string(&p).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: ToolPolicy =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, p);
    }
}
