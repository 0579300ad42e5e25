use proptest::prelude::*;

use super::{
    BUILTIN_ROLE_IDS, Grants, ParsePermissionError, Permission, Rbac, Role, RoleError,
    builtin_roles, is_builtin_role_id, validate_role_id,
};
use crate::policy::Effect;
use crate::ratelimit::RateLimit;

fn perm(s: &str) -> Permission {
    match s.parse() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn custom(id: &str, permissions: &[&str]) -> Role {
    Role {
        id: id.to_owned(),
        description: String::new(),
        permissions: permissions.iter().map(|p| perm(p)).collect(),
        builtin: false,
        rate_limit: None,
    }
}

fn rbac_with(roles: Vec<Role>) -> Rbac {
    match Rbac::with_custom_roles(roles) {
        Ok(rbac) => rbac,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn permissions_parse_and_print() {
    for s in [
        "*",
        "providers:*",
        "providers:read",
        "maintenance:write",
        "x-y_1:a-b_2",
    ] {
        assert_eq!(perm(s).to_string(), s);
    }
    assert_eq!(perm("tools:call"), Permission::TOOLS_CALL);
    assert_eq!(perm("*"), Permission::ALL);
    assert_eq!(Permission::new("tools", "call"), Ok(Permission::TOOLS_CALL));
    let p = perm("providers:*");
    assert_eq!((p.resource(), p.action()), (Some("providers"), None));
    assert!(p.is_wildcard() && Permission::ALL.is_wildcard());
    assert!(!Permission::TOOLS_CALL.is_wildcard());
    assert_eq!(Permission::ALL.resource(), None);
    assert_eq!(Permission::TOOLS_CALL.action(), Some("call"));
}

#[test]
fn bad_permissions_are_named_in_the_error() {
    for (s, reason) in [
        ("", "expected `resource:action`"),
        ("providers", "expected `resource:action`"),
        ("*:read", "the resource cannot be a wildcard"),
        (":read", "the resource ``"),
        ("providers:", "the action ``"),
        ("Providers:read", "the resource `Providers`"),
        ("providers:read:all", "the action `read:all`"),
        ("providers:re ad", "the action `re ad`"),
        ("1providers:read", "the resource `1providers`"),
        ("providers:**", "the action `**`"),
        (" providers:read", "the resource ` providers`"),
    ] {
        let err: Result<Permission, ParsePermissionError> = s.parse();
        match err {
            Ok(p) => panic!("{s:?} parsed as {p}"),
            Err(e) => {
                assert_eq!(e.value, s);
                assert!(e.reason.starts_with(reason), "{s:?}: {}", e.reason);
                assert!(
                    e.to_string()
                        .starts_with(&format!("invalid permission `{s}`: "))
                );
            }
        }
    }
    let long = format!("{}:read", "a".repeat(33));
    assert!(long.parse::<Permission>().is_err());
    assert!(
        format!("{}:read", "a".repeat(32))
            .parse::<Permission>()
            .is_ok()
    );
}

#[test]
fn permissions_are_json_strings() {
    let json = serde_json::to_string(&[Permission::ALL, perm("groups:*"), Permission::AUDIT_READ]);
    assert_eq!(
        json.ok().as_deref(),
        Some(r#"["*","groups:*","audit:read"]"#)
    );
    let parsed: Result<Vec<Permission>, _> = serde_json::from_str(r#"["tools:call", "*"]"#);
    assert_eq!(
        parsed.ok(),
        Some(vec![Permission::TOOLS_CALL, Permission::ALL])
    );
    let err = serde_json::from_str::<Permission>(r#""tools""#)
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("invalid permission `tools`")),
        "{err:?}"
    );
}

#[test]
fn wildcards_cover_what_they_should() {
    let all = Permission::ALL;
    let providers = perm("providers:*");
    let read = Permission::PROVIDERS_READ;
    for p in Permission::KNOWN {
        assert!(all.covers(&p), "{p}");
        assert_eq!(
            providers.covers(&p),
            p.resource() == Some("providers"),
            "{p}"
        );
        assert_eq!(read.covers(&p), p == read, "{p}");
    }
    assert!(all.covers(&all) && all.covers(&providers));
    assert!(providers.covers(&providers));
    assert!(!providers.covers(&all) && !providers.covers(&perm("tools:*")));
    assert!(!read.covers(&providers) && !read.covers(&all));
    // `providers:*` also covers actions added later.
    assert!(providers.covers(&perm("providers:delete")));
}

#[test]
fn known_permissions_are_the_documented_ones() {
    let names: Vec<String> = Permission::KNOWN.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        names,
        [
            "providers:read",
            "providers:define",
            "providers:write",
            "providers:start",
            "tools:list",
            "tools:call",
            "groups:read",
            "groups:write",
            "config:read",
            "config:write",
            "catalog:read",
            "catalog:write",
            "catalog:deploy",
            "system:read",
            "maintenance:write",
            "auth:read",
            "auth:write",
            "approvals:read",
            "approvals:write",
            "secrets:read",
            "secrets:write",
            "secrets:use",
            "tokens:create",
            "audit:read",
            "events:read",
            "sessions:read",
            "sessions:admin",
        ]
    );
    // Every one appears in the module docs' table.
    let docs = include_str!("../rbac.rs");
    for name in &names {
        assert!(
            docs.contains(&format!("//! | `{name}` |")),
            "{name} is undocumented"
        );
    }
    assert!(perm("catalog:*").is_known() && Permission::ALL.is_known());
    assert!(!perm("catalogue:*").is_known() && !perm("tools:delete").is_known());
}

#[test]
fn builtin_roles_hold_the_documented_permissions() {
    let roles = builtin_roles();
    let ids: Vec<&str> = roles.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, BUILTIN_ROLE_IDS);
    let docs = include_str!("../rbac.rs");
    for role in &roles {
        assert!(role.builtin && role.rate_limit.is_none());
        assert!(!role.description.is_empty());
        assert!(
            role.permissions.iter().all(Permission::is_known),
            "{}",
            role.id
        );
        // The docs' table lists exactly these permissions, in this order.
        let listed: Vec<String> = role.permissions.iter().map(|p| format!("`{p}`")).collect();
        let row = format!("//! | `{}` | {} |", role.id, listed.join(", "));
        assert!(docs.contains(&row), "docs lack: {row}");
    }
}

#[test]
fn builtin_roles_allow_and_deny_as_described() {
    let rbac = Rbac::new();
    let allows = |role: &str, p: &Permission| rbac.allows(&[role], p);
    for p in Permission::KNOWN {
        assert!(allows("admin", &p), "admin {p}");
        let reads = p.action() == Some("read");
        let secret_or_audit = matches!(p.resource(), Some("secrets" | "audit"));
        assert_eq!(
            allows("viewer", &p),
            reads && !secret_or_audit,
            "viewer {p}"
        );
    }
    assert!(allows("admin", &perm("anything:new")));

    for p in [
        Permission::AUTH_READ,
        Permission::AUTH_WRITE,
        Permission::AUDIT_READ,
    ] {
        assert!(!allows("operator", &p), "operator {p}");
    }
    for p in [
        Permission::PROVIDERS_START,
        Permission::CONFIG_WRITE,
        Permission::CATALOG_DEPLOY,
        Permission::SECRETS_WRITE,
        Permission::TOOLS_CALL,
        Permission::MAINTENANCE_WRITE,
        Permission::APPROVALS_WRITE,
    ] {
        assert!(allows("operator", &p), "operator {p}");
    }

    assert!(allows("developer", &Permission::TOOLS_CALL));
    assert!(allows("developer", &Permission::TOOLS_LIST));
    assert!(!allows("developer", &Permission::PROVIDERS_WRITE));
    assert!(!allows("developer", &Permission::CONFIG_READ));

    assert!(allows("auditor", &Permission::AUDIT_READ));
    assert!(!allows("auditor", &Permission::TOOLS_CALL));
    assert!(!allows("auditor", &Permission::SECRETS_READ));

    for role in ["viewer", "auditor"] {
        assert!(!allows(role, &Permission::TOOLS_CALL), "{role}");
    }
}

#[test]
fn deny_by_default() {
    let rbac = Rbac::new();
    let none: &[&str] = &[];
    assert!(!rbac.allows(none, &Permission::SYSTEM_READ));
    assert!(!rbac.allows(&["no-such-role"], &Permission::SYSTEM_READ));
    let grants = rbac.grants(&["no-such-role"]);
    assert_eq!(grants, Grants::default());
    assert!(!grants.allows(&Permission::SYSTEM_READ));
    assert_eq!(grants.default_tool_effect(), Effect::Deny);
}

#[test]
fn grants_merge_roles_minimally() {
    let rbac = rbac_with(vec![
        custom(
            "deployer",
            &["catalog:*", "providers:start", "providers:read"],
        ),
        custom("reader", &["catalog:read", "system:read"]),
    ]);
    let grants = rbac.grants(&["reader", "ghost", "deployer", "reader"]);
    assert_eq!(grants.roles(), ["deployer", "reader"]);
    let names: Vec<String> = grants.permissions().iter().map(|p| p.to_string()).collect();
    // `catalog:read` is covered by `catalog:*`.
    assert_eq!(
        names,
        [
            "catalog:*",
            "providers:read",
            "providers:start",
            "system:read"
        ]
    );
    assert!(grants.allows(&Permission::CATALOG_DEPLOY));
    assert!(grants.allows(&perm("catalog:*")));
    assert!(!grants.allows(&Permission::TOOLS_CALL));
    assert_eq!(grants.default_tool_effect(), Effect::Deny);

    let admin = rbac.grants(&["viewer", "admin"]);
    assert_eq!(admin.permissions(), [Permission::ALL]);
    assert_eq!(
        rbac.grants(&["developer"]).default_tool_effect(),
        Effect::Allow
    );
}

#[test]
fn grants_take_the_most_generous_rate_limit() {
    let mut slow = custom("slow", &["system:read"]);
    slow.rate_limit = Some(RateLimit::new(10, 60));
    let mut fast = custom("fast", &["system:read"]);
    fast.rate_limit = Some(RateLimit::new(10, 1));
    let rbac = rbac_with(vec![slow, fast]);
    assert_eq!(
        rbac.grants(&["slow", "fast", "viewer"]).rate_limit(),
        Some(&RateLimit::new(10, 1))
    );
    assert_eq!(
        rbac.grants(&["slow"]).rate_limit(),
        Some(&RateLimit::new(10, 60))
    );
    assert_eq!(rbac.grants(&["viewer"]).rate_limit(), None);
}

#[test]
fn grants_serialize_for_whoami() {
    let grants = Rbac::new().grants(&["auditor"]);
    let json = serde_json::to_value(&grants).ok();
    assert_eq!(
        json,
        Some(serde_json::json!({
            "roles": ["auditor"],
            "permissions": ["audit:read", "events:read", "groups:read", "providers:read", "system:read"]
        }))
    );
}

#[test]
fn role_ids_are_checked() {
    for id in ["a", "ops", "team-1_x", &"x".repeat(64)] {
        assert_eq!(validate_role_id(id), Ok(()), "{id}");
    }
    for id in ["", "Ops", "ops team", "ops.team", "é", &"x".repeat(65)] {
        assert_eq!(
            validate_role_id(id),
            Err(RoleError::InvalidId(id.to_owned())),
            "{id}"
        );
    }
    assert!(BUILTIN_ROLE_IDS.iter().all(|id| is_builtin_role_id(id)));
    assert!(!is_builtin_role_id("administrator"));
}

#[test]
fn custom_roles_are_validated() {
    assert_eq!(
        custom("deployer", &["catalog:deploy"]).validate_custom(),
        Ok(())
    );
    assert_eq!(
        custom("Deployer", &[]).validate_custom(),
        Err(RoleError::InvalidId("Deployer".into()))
    );
    assert_eq!(
        custom("admin", &["*"]).validate_custom(),
        Err(RoleError::Reserved("admin".into()))
    );
    let mut flagged = custom("mine", &[]);
    flagged.builtin = true;
    assert_eq!(
        flagged.validate_custom(),
        Err(RoleError::BuiltinFlag("mine".into()))
    );
    assert_eq!(
        custom("mine", &["tools:call", "tools:delete"]).validate_custom(),
        Err(RoleError::UnknownPermission {
            role: "mine".into(),
            permission: perm("tools:delete"),
        })
    );
    let mut limited = custom("mine", &[]);
    limited.rate_limit = Some(RateLimit::new(0, 1));
    let err = limited.validate_custom().err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("role `mine`: requests: must be between 1 and 1000000, got 0")
    );
}

#[test]
fn custom_roles_are_added_replaced_and_removed() {
    let mut rbac = Rbac::new();
    assert_eq!(rbac.insert(custom("ci", &["tools:call"])), Ok(None));
    assert!(rbac.allows(&["ci"], &Permission::TOOLS_CALL));
    let replaced = rbac.insert(custom("ci", &["tools:list"]));
    assert_eq!(replaced, Ok(Some(custom("ci", &["tools:call"]))));
    assert!(!rbac.allows(&["ci"], &Permission::TOOLS_CALL));
    assert_eq!(rbac.roles().count(), 6);

    assert_eq!(
        rbac.insert(custom("viewer", &["*"])),
        Err(RoleError::Reserved("viewer".into()))
    );
    assert_eq!(
        rbac.remove("viewer"),
        Err(RoleError::Reserved("viewer".into()))
    );
    assert!(rbac.get("viewer").is_some_and(|r| r.builtin));

    assert_eq!(rbac.check_assignment(&["ci", "viewer"]), Ok(()));
    assert_eq!(rbac.remove("ci"), Ok(Some(custom("ci", &["tools:list"]))));
    assert_eq!(rbac.remove("ci"), Ok(None));
    assert_eq!(
        rbac.check_assignment(&["viewer", "ci"]),
        Err(RoleError::Unknown("ci".into()))
    );
    // A principal holding a removed role keeps its other roles.
    assert!(rbac.allows(&["ci", "viewer"], &Permission::SYSTEM_READ));
    assert_eq!(Rbac::default(), Rbac::new());
}

#[test]
fn with_custom_roles_rejects_duplicates_and_builtin_ids() {
    let dup = Rbac::with_custom_roles([custom("a", &[]), custom("a", &[])]);
    assert_eq!(dup, Err(RoleError::Duplicate("a".into())));
    let builtin = Rbac::with_custom_roles([custom("operator", &[])]);
    assert_eq!(builtin, Err(RoleError::Reserved("operator".into())));
}

#[test]
fn roles_round_trip_as_json() {
    let body = r#"{
        "id": "deployer",
        "description": "Deploys catalog entries",
        "permissions": ["catalog:read", "catalog:deploy", "providers:*"],
        "rate_limit": {"requests": 120, "per_seconds": 60, "burst": 20}
    }"#;
    let role: Result<Role, _> = serde_json::from_str(body);
    let role = match role {
        Ok(role) => role,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(role.validate_custom(), Ok(()));
    assert!(!role.builtin);
    assert_eq!(
        role.rate_limit,
        Some(RateLimit::new(120, 60).with_burst(20))
    );
    let json = serde_json::to_value(&role).ok();
    let back: Option<Role> = json.and_then(|j| serde_json::from_value(j).ok());
    assert_eq!(back.as_ref(), Some(&role));

    let minimal: Result<Role, _> = serde_json::from_str(r#"{"id": "empty"}"#);
    assert_eq!(minimal.ok(), Some(custom("empty", &[])));
    assert!(serde_json::from_str::<Role>(r#"{"id": "x", "perms": []}"#).is_err());
    assert!(serde_json::from_str::<Role>(r#"{"id": "x", "permissions": ["bad"]}"#).is_err());
}

#[test]
fn errors_read_well() {
    let cases = [
        (
            RoleError::InvalidId("A B".into()),
            "invalid role id `A B`: expected 1 to 64 characters of a-z, 0-9, `_` or `-`",
        ),
        (
            RoleError::Reserved("admin".into()),
            "role id `admin` is reserved for a built-in role",
        ),
        (
            RoleError::UnknownPermission {
                role: "r".into(),
                permission: perm("x:y"),
            },
            "role `r`: unknown permission `x:y`",
        ),
        (RoleError::Unknown("ghost".into()), "unknown role `ghost`"),
        (
            RoleError::Duplicate("a".into()),
            "role `a` is defined twice",
        ),
    ];
    for (err, text) in cases {
        assert_eq!(err.to_string(), text);
    }
}

fn permission() -> impl Strategy<Value = Permission> {
    prop_oneof![
        1 => Just(Permission::ALL),
        2 => prop::sample::select(vec!["providers", "tools", "groups", "audit"])
            .prop_map(|r| perm(&format!("{r}:*"))),
        8 => prop::sample::select(Permission::KNOWN.to_vec()),
    ]
}

proptest! {
    /// Anything printed parses back to itself.
    #[test]
    fn display_round_trips(p in permission()) {
        prop_assert_eq!(perm(&p.to_string()), p);
    }

    /// `covers` is a preorder (reflexive, transitive), and grants allow exactly what some
    /// held permission covers, whether resolved or checked role by role.
    #[test]
    fn covers_is_consistent(
        a in permission(),
        b in permission(),
        c in permission(),
        held in prop::collection::vec(permission(), 0..6),
        required in permission(),
    ) {
        prop_assert!(a.covers(&a));
        if a.covers(&b) && b.covers(&c) {
            prop_assert!(a.covers(&c));
        }
        let role = Role {
            id: "r".into(),
            description: String::new(),
            permissions: held.clone(),
            builtin: false,
            rate_limit: None,
        };
        let rbac = rbac_with(vec![role]);
        let expected = held.iter().any(|h| h.covers(&required));
        prop_assert_eq!(rbac.allows(&["r"], &required), expected);
        prop_assert_eq!(rbac.grants(&["r"]).allows(&required), expected);
    }
}
