use std::collections::BTreeMap;

use super::{ProviderMode, ProviderSpec, SpecError, validate_provider_id};

fn field_of(result: Result<(), SpecError>) -> String {
    match result {
        Ok(()) => "<ok>".to_owned(),
        Err(e) => e.field,
    }
}

#[test]
fn mode_parses_displays_and_serializes_lowercase() {
    for mode in [
        ProviderMode::Subprocess,
        ProviderMode::Docker,
        ProviderMode::Remote,
    ] {
        assert_eq!(mode.to_string().parse::<ProviderMode>(), Ok(mode));
        assert_eq!(
            serde_json::to_string(&mode).ok(),
            Some(format!("\"{mode}\""))
        );
    }
    assert_eq!(
        "container".parse::<ProviderMode>(),
        Ok(ProviderMode::Docker)
    );
    assert_eq!("Remote".parse::<ProviderMode>(), Ok(ProviderMode::Remote));
    assert!("shell".parse::<ProviderMode>().is_err());
    let alias: Result<ProviderMode, _> = serde_json::from_str("\"container\"");
    assert_eq!(alias.ok(), Some(ProviderMode::Docker));
}

#[test]
fn defaults_match_the_documented_values() {
    let spec = ProviderSpec::default();
    assert_eq!(spec.mode, ProviderMode::Subprocess);
    assert_eq!(spec.idle_ttl_s, 300);
    assert_eq!(spec.health_check_interval_s, 60);
    assert_eq!(spec.max_consecutive_failures, 3);
    assert_eq!(spec.max_failures, 6);
    assert_eq!(spec.startup_timeout_s, 30);
    assert_eq!(spec.call_timeout_s, 120);
    let policy = spec.failure_policy();
    assert_eq!((policy.failure_threshold, policy.max_failures), (3, 6));
}

#[test]
fn valid_specs_of_every_mode_pass() {
    assert_eq!(
        ProviderSpec::subprocess(["python", "-m", "srv"]).validate("math"),
        Ok(())
    );
    assert_eq!(
        ProviderSpec::docker("ghcr.io/x/y:1").validate("d-1"),
        Ok(())
    );
    assert_eq!(
        ProviderSpec::remote("https://example.com/mcp").validate("r_2"),
        Ok(())
    );
    assert_eq!(
        ProviderSpec::remote("http://127.0.0.1:9000/mcp").validate("R"),
        Ok(())
    );
}

#[test]
fn provider_ids_are_checked() {
    for ok in ["a", "A9", "math", "my-tool_2", &"x".repeat(63)] {
        assert_eq!(validate_provider_id(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "-a",
        "_a",
        "a b",
        "a.b",
        "a__b",
        "é",
        "a/b",
        &"x".repeat(64),
    ] {
        let err = validate_provider_id(bad).err();
        assert_eq!(err.map(|e| e.field), Some("id".to_owned()), "{bad:?}");
    }
    assert_eq!(
        field_of(ProviderSpec::subprocess(["x"]).validate("a__b")),
        "id"
    );
}

#[test]
fn subprocess_needs_a_program() {
    let spec = ProviderSpec::subprocess(Vec::<String>::new());
    let err = spec.validate("p").err();
    assert_eq!(err.as_ref().map(|e| e.field.as_str()), Some("command"));
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(
            "command: must not be empty (subprocess mode needs the program and its arguments)"
                .to_owned()
        )
    );
    assert_eq!(
        field_of(ProviderSpec::subprocess([" "]).validate("p")),
        "command[0]"
    );
    assert_eq!(
        field_of(ProviderSpec::subprocess(["x", "a\0b"]).validate("p")),
        "command[1]"
    );
    let mut spec = ProviderSpec::subprocess(["x"]);
    spec.cwd = Some(String::new());
    assert_eq!(field_of(spec.validate("p")), "cwd");
}

#[test]
fn docker_needs_an_image() {
    let spec = ProviderSpec {
        mode: ProviderMode::Docker,
        ..ProviderSpec::default()
    };
    assert_eq!(field_of(spec.validate("p")), "image");
    assert_eq!(field_of(ProviderSpec::docker("a b").validate("p")), "image");
    let mut spec = ProviderSpec::docker("img");
    spec.volumes = vec!["/data".to_owned()];
    assert_eq!(field_of(spec.validate("p")), "volumes[0]");
    spec.volumes = vec!["/data:/data:ro".to_owned()];
    spec.network = Some(String::new());
    assert_eq!(field_of(spec.validate("p")), "network");
}

#[test]
fn remote_needs_an_http_endpoint() {
    let spec = ProviderSpec {
        mode: ProviderMode::Remote,
        ..ProviderSpec::default()
    };
    assert_eq!(field_of(spec.validate("p")), "endpoint");
    for bad in [
        "ftp://x",
        "example.com",
        "https://",
        "http:///x",
        "https://a b",
    ] {
        assert_eq!(
            field_of(ProviderSpec::remote(bad).validate("p")),
            "endpoint",
            "{bad}"
        );
    }
}

#[test]
fn fields_of_other_modes_are_rejected() {
    let mut spec = ProviderSpec::subprocess(["x"]);
    spec.image = Some("img".to_owned());
    let err = spec.validate("p").err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some("image: not allowed for mode subprocess (only for docker)".to_owned())
    );

    let mut spec = ProviderSpec::remote("https://h");
    spec.command = vec!["x".to_owned()];
    assert_eq!(field_of(spec.validate("p")), "command");

    let mut spec = ProviderSpec::remote("https://h");
    spec.env.insert("A".to_owned(), "1".to_owned());
    assert_eq!(field_of(spec.validate("p")), "env");

    let mut spec = ProviderSpec::subprocess(["x"]);
    spec.headers.insert("X".to_owned(), "1".to_owned());
    assert_eq!(field_of(spec.validate("p")), "headers");

    for (field, setter) in [
        (
            "cwd",
            (|s: &mut ProviderSpec| s.cwd = Some("/".into())) as fn(&mut ProviderSpec),
        ),
        ("endpoint", |s| s.endpoint = Some("https://h".into())),
        ("network", |s| s.network = Some("none".into())),
        ("read_only", |s| s.read_only = Some(true)),
        ("volumes", |s| s.volumes = vec!["a:b".into()]),
    ] {
        let mut spec = if field == "cwd" {
            ProviderSpec::docker("img")
        } else {
            ProviderSpec::subprocess(["x"])
        };
        setter(&mut spec);
        assert_eq!(field_of(spec.validate("p")), field);
    }
}

#[test]
fn env_names_and_values_are_checked() {
    let with_env = |k: &str, v: &str| {
        let mut spec = ProviderSpec::subprocess(["x"]);
        spec.env = BTreeMap::from([(k.to_owned(), v.to_owned())]);
        spec.validate("p")
    };
    assert_eq!(with_env("FOO", "${secret:TOKEN}"), Ok(()));
    assert_eq!(field_of(with_env("", "v")), "env");
    assert_eq!(field_of(with_env("A=B", "v")), "env.A=B");
    assert_eq!(field_of(with_env("A\0", "v")), "env.A\0");
    assert_eq!(field_of(with_env("FOO", "a\0b")), "env.FOO");
}

#[test]
fn header_names_and_values_are_checked() {
    let with_header = |k: &str, v: &str| {
        let mut spec = ProviderSpec::remote("https://h/mcp");
        spec.headers = BTreeMap::from([(k.to_owned(), v.to_owned())]);
        spec.validate("p")
    };
    assert_eq!(with_header("Authorization", "Bearer x"), Ok(()));
    assert_eq!(field_of(with_header("Bad Name", "v")), "headers.Bad Name");
    assert_eq!(
        field_of(with_header("X-A", "a\r\nInjected: 1")),
        "headers.X-A"
    );
}

#[test]
fn timeouts_and_thresholds_are_bounded() {
    let check = |f: fn(&mut ProviderSpec)| {
        let mut spec = ProviderSpec::subprocess(["x"]);
        f(&mut spec);
        field_of(spec.validate("p"))
    };
    assert_eq!(check(|s| s.startup_timeout_s = 0), "startup_timeout_s");
    assert_eq!(check(|s| s.startup_timeout_s = 3601), "startup_timeout_s");
    assert_eq!(check(|s| s.startup_timeout_s = 3600), "<ok>");
    assert_eq!(check(|s| s.call_timeout_s = 0), "call_timeout_s");
    assert_eq!(check(|s| s.call_timeout_s = 86_401), "call_timeout_s");
    assert_eq!(check(|s| s.call_timeout_s = 86_400), "<ok>");
    assert_eq!(
        check(|s| s.max_consecutive_failures = 0),
        "max_consecutive_failures"
    );
    assert_eq!(check(|s| s.max_failures = 2), "max_failures");
    assert_eq!(check(|s| s.max_failures = 3), "<ok>");
    assert_eq!(check(|s| s.idle_ttl_s = 0), "<ok>");
    assert_eq!(check(|s| s.health_check_interval_s = 0), "<ok>");
}

#[test]
fn serialization_skips_empty_fields_and_rejects_unknown_ones() {
    let json = serde_json::to_value(ProviderSpec::subprocess(["x"])).ok();
    let keys: Vec<String> = json
        .as_ref()
        .and_then(|v| v.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for absent in [
        "cwd",
        "image",
        "endpoint",
        "headers",
        "env",
        "volumes",
        "network",
        "read_only",
        "description",
    ] {
        assert!(
            !keys.iter().any(|k| k == absent),
            "{absent} should be skipped"
        );
    }
    assert!(keys.iter().any(|k| k == "command"));

    let parsed: Result<ProviderSpec, _> =
        serde_json::from_str(r#"{"mode":"subprocess","command":["x"],"shell":true}"#);
    assert!(parsed.is_err());
    let parsed: Result<ProviderSpec, _> = serde_json::from_str(r#"{"command":["x"]}"#);
    assert_eq!(parsed.ok(), Some(ProviderSpec::subprocess(["x"])));
}

#[test]
fn policies_round_trip_and_are_validated() {
    let yaml = "command: [x]\npolicies:\n  - {tool: \"write_*\", role_id: developer, effect: ask}\n  - {principal_id: ci, effect: deny}\n";
    let spec: ProviderSpec = yaml_serde::from_str(yaml).unwrap();
    assert_eq!(spec.policies.len(), 2);
    assert_eq!(spec.policies[1].tool_glob, "*");
    let p = spec.policies[0].to_policy("fs");
    assert_eq!(p.provider_glob, "fs");
    assert_eq!(p.effect, crate::Effect::Ask);
    spec.validate("fs").unwrap();
    let back: ProviderSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    assert!(
        yaml_serde::from_str::<ProviderSpec>("command: [x]\npolicies: [{effect: allow}]\n")
            .is_err()
    );
    assert!(
        yaml_serde::from_str::<ProviderSpec>(
            "command: [x]\npolicies: [{role_id: a, principal_id: b, effect: allow}]\n"
        )
        .is_err()
    );
    let bad: ProviderSpec = yaml_serde::from_str(
        "command: [x]\npolicies: [{tool: \"\", role_id: dev, effect: allow}]\n",
    )
    .unwrap();
    assert_eq!(field_of(bad.validate("fs")), "policies[0].tool");
}

#[test]
fn docker_settings_are_checked() {
    let ok = ProviderSpec {
        command: vec!["--flag".into()],
        user: Some("65534:65534".into()),
        workdir: Some("/work".into()),
        memory_mb: Some(256),
        cpus: Some(0.5),
        pids_limit: Some(64),
        tmpfs: Some(vec!["/tmp:size=8m".into(), "/run".into()]),
        cap_add: vec!["NET_BIND_SERVICE".into(), "CAP_CHOWN".into()],
        no_new_privileges: Some(false),
        ..ProviderSpec::docker("img:1")
    };
    ok.validate("p").unwrap();
    for (field, bad) in [
        (
            "workdir",
            ProviderSpec {
                workdir: Some("relative".into()),
                ..ok.clone()
            },
        ),
        (
            "user",
            ProviderSpec {
                user: Some("a b".into()),
                ..ok.clone()
            },
        ),
        (
            "memory_mb",
            ProviderSpec {
                memory_mb: Some(1),
                ..ok.clone()
            },
        ),
        (
            "cpus",
            ProviderSpec {
                cpus: Some(-1.0),
                ..ok.clone()
            },
        ),
        (
            "tmpfs[0]",
            ProviderSpec {
                tmpfs: Some(vec!["tmp".into()]),
                ..ok.clone()
            },
        ),
        (
            "cap_add[0]",
            ProviderSpec {
                cap_add: vec!["SYS_ADMIN".into()],
                ..ok.clone()
            },
        ),
        (
            "cap_add[0]",
            ProviderSpec {
                cap_add: vec!["ALL".into()],
                ..ok.clone()
            },
        ),
        (
            "cap_add[0]",
            ProviderSpec {
                cap_add: vec!["bad cap".into()],
                ..ok.clone()
            },
        ),
        (
            "command[0]",
            ProviderSpec {
                command: vec!["a\0".into()],
                ..ok.clone()
            },
        ),
    ] {
        assert_eq!(field_of(bad.validate("p")), field);
    }
    // 0 lifts a limit.
    ProviderSpec {
        memory_mb: Some(0),
        cpus: Some(0.0),
        pids_limit: Some(0),
        ..ok.clone()
    }
    .validate("p")
    .unwrap();
    // Docker settings belong to docker.
    let mut remote = ProviderSpec::remote("https://h");
    remote.memory_mb = Some(64);
    assert_eq!(field_of(remote.validate("p")), "memory_mb");
}

#[test]
fn remote_settings_and_link_local_endpoints() {
    let mut spec = ProviderSpec::remote("http://169.254.169.254/latest");
    let err = spec
        .validate("p")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with("endpoint:") && err.contains("allow_link_local"),
        "{err}"
    );
    spec.allow_link_local = true;
    spec.validate("p").unwrap();
    spec.connect_timeout_s = Some(0);
    assert_eq!(field_of(spec.validate("p")), "connect_timeout_s");
    let mut sub = ProviderSpec::subprocess(["x"]);
    sub.allow_link_local = true;
    assert_eq!(field_of(sub.validate("p")), "allow_link_local");
}

#[test]
fn what_runs_is_told_from_lifecycle_settings() {
    let base = ProviderSpec::docker("img:1");
    let lifecycle = ProviderSpec {
        description: Some("d".into()),
        idle_ttl_s: 1,
        health_check_interval_s: 1,
        call_timeout_s: 5,
        ..base.clone()
    };
    assert!(!base.runs_differently_from(&lifecycle));
    for other in [
        ProviderSpec {
            image: Some("img:2".into()),
            ..base.clone()
        },
        ProviderSpec {
            memory_mb: Some(64),
            ..base.clone()
        },
        ProviderSpec {
            scope: Some("prod".into()),
            ..base.clone()
        },
        ProviderSpec {
            network: Some("bridge".into()),
            ..base.clone()
        },
    ] {
        assert!(base.runs_differently_from(&other), "{other:?}");
    }
}
