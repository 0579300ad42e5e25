//! The `hangar` CLI's management commands (config, system, maintenance,
//! import) against the real server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation is a failed test"
)]

use hangar_e2e::{Server, bin, fixture_config};
use serde_json::{Value, json};

fn ok_json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_system_and_maintenance_commands() {
    let server = Server::start(&fixture_config("fx", "server:\n  backup_count: 1\n")).await;

    let v = ok_json(&server.cli(&["--output", "json", "config", "get"]));
    assert_eq!(v["config"]["providers"][0]["provider_id"], "fx", "{v}");
    let out = server.cli(&["config", "get"]);
    assert!(stdout(&out).contains("fx"), "{}", stdout(&out));

    let v = ok_json(&server.cli(&["--output", "json", "config", "diff"]));
    assert_eq!(v["has_changes"], false, "{v}");

    // Export to a file, change the file the server runs from, reload.
    let export = server.data_dir.join("export.yaml");
    let out = server.cli(&["config", "export", "--out", export.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let yaml = std::fs::read_to_string(&export).unwrap();
    assert!(yaml.contains("fx:"), "{yaml}");
    let out = server.cli(&["config", "export"]);
    assert_eq!(stdout(&out), yaml);

    let new = format!(
        "{}  fz:\n    command: [\"{}\"]\n",
        fixture_config("fx", ""),
        bin("hangar-fixture").display()
    );
    std::fs::write(server.config_path(), new).unwrap();
    let v = ok_json(&server.cli(&["--output", "json", "config", "diff"]));
    assert_eq!(v["has_changes"], true, "{v}");
    let v = ok_json(&server.cli(&["--output", "json", "config", "reload"]));
    assert_eq!(v["result"]["added"], json!(["fz"]), "{v}");
    assert_eq!(v["result"]["unchanged"], json!(["fx"]), "{v}");
    let out = server.cli(&[
        "config",
        "reload",
        "--config-path",
        "/nonexistent/hangar.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    for _ in 0..2 {
        let v = ok_json(&server.cli(&["--output", "json", "config", "backup"]));
        assert_eq!(v["created"], true, "{v}");
        assert_eq!(v["kept"], 1, "{v}");
    }

    let v = ok_json(&server.cli(&["--output", "json", "system"]));
    assert_eq!(v["system"]["total_providers"], 2, "{v}");
    assert!(v["system"]["version"].is_string(), "{v}");
    let out = server.cli(&["system"]);
    assert!(stdout(&out).contains("total_providers") || stdout(&out).contains("providers"));

    let out = server.cli(&["maintenance", "compact", "provider:fx"]);
    assert_eq!(out.status.code(), Some(1), "no snapshot yet: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("snapshot"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_adds_the_servers_of_a_client_config() {
    let server = Server::start("").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("claude_desktop_config.json");
    let fixture = bin("hangar-fixture");
    std::fs::write(
        &file,
        json!({
            "mcpServers": {
                "my tools": {"command": fixture, "args": [], "env": {"GREETING": "imported"}},
                "off": {"command": fixture, "disabled": true},
            }
        })
        .to_string(),
    )
    .unwrap();
    let path = file.to_str().unwrap();

    // Dry run: nothing created.
    let out = server.cli(&["import", path, "--dry-run"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.get_json("/providers/my-tools").await.0, 404);

    let out = server.cli(&["import", path]);
    assert!(out.status.success(), "{out:?}");
    let (status, v) = server.get_json("/providers/my-tools").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(server.get_json("/providers/off").await.0, 404);
    // The imported server works through /mcp.
    let out = server.cli(&["call", "my-tools__env", "name=GREETING"]);
    assert!(stdout(&out).contains("imported"), "{out:?}");

    // Again: it exists, which is not a failure.
    let v = ok_json(&server.cli(&["--output", "json", "import", path]));
    assert!(v.to_string().contains("exists"), "{v}");

    // Not a client config.
    std::fs::write(&file, "{\"something\": 1}").unwrap();
    let out = server.cli(&["import", path]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// `hangar --url .. --key .. <args>` (after `wrapper`, e.g. `timeout 2`) on
/// the pseudo-terminal `script` makes; what the terminal showed is stdout.
fn on_terminal(server: &Server, wrapper: &str, args: &str) -> std::process::Output {
    let command = format!(
        "{wrapper} {} --url {} --key {} {args}",
        bin("hangar").display(),
        server.url,
        hangar_e2e::ADMIN_KEY
    );
    std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap()
}

/// Long waits show a spinner on a terminal (here a pseudo-terminal made by
/// `script`), and nothing at all when the output is piped or JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_waits_spin_on_a_terminal_and_stay_quiet_when_piped() {
    let server = Server::start(&hangar_e2e::fixture_config("fx", "")).await;
    // Piped: the result only.
    let out = server.cli(&["call", "fx__sleep", "ms=600"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), "slept 600 ms");
    assert!(out.stderr.is_empty(), "{out:?}");
    let out = server.cli(&["--output", "json", "providers", "start", "fx"]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");

    // On a terminal: the spinner says what it waits for, then clears.
    let out = on_terminal(&server, "", "call fx__sleep ms=1500");
    assert!(out.status.success(), "{out:?}");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.contains("calling fx__sleep"), "{seen:?}");
    assert!(seen.contains("slept 1500 ms"), "{seen:?}");

    // `approvals watch` runs until stopped: it spins while nothing is pending.
    let out = on_terminal(&server, "timeout 2", "approvals watch");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.contains("waiting for permission requests"), "{seen:?}");
}
