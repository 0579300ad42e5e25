//! Docker providers against a real engine: calls in both client eras, the
//! hardening as the engine reports it, logs, stop, restarts, strays after a
//! `kill -9`, clear errors, and failover between a container and a process.
//!
//! Needs an engine at `DOCKER_HOST` with `hangar-fixture:dev` (`cargo xtask
//! fixture-image`); skipped without one unless `HANGAR_REQUIRE_DOCKER=1`.

use std::time::Duration;

use bollard::query_parameters::{InspectContainerOptions, KillContainerOptionsBuilder};
use hangar_e2e::docker::{FIXTURE_IMAGE, containers_of, engine};
use hangar_e2e::mcp_client::{call_params, connect, legacy, modern};
use hangar_e2e::{Server, bin};
use reqwest::Method;
use serde_json::json;

fn docker_provider(id: &str, extra: &str) -> String {
    format!(
        "  {id}:\n    mode: docker\n    image: {FIXTURE_IMAGE}\n    env:\n      GREETING: from-container\n{extra}"
    )
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_serves_both_eras_hardened_logged_and_removed_on_stop() {
    let Some(docker) = engine().await else { return };
    let server = Server::start(&format!("providers:\n{}", docker_provider("dk1", ""))).await;
    for mode in [legacy(), modern()] {
        let (client, _) = connect(&server, mode).await;
        let r = client
            .peer()
            .call_tool(call_params("dk1__add", json!({"a": 2, "b": 3})))
            .await
            .unwrap();
        assert_eq!(r.content[0].as_text().map(|t| t.text.as_str()), Some("5"));
        client.cancel().await.unwrap();
    }
    assert_eq!(
        server
            .call_text("dk1__env", json!({"name": "GREETING"}))
            .await,
        "from-container"
    );

    // What the engine says about the container.
    let list = containers_of(&docker, "dk1").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0].id.clone().unwrap();
    let info = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = info.host_config.unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges".to_owned()])
    );
    assert_eq!(host.memory, Some(512 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert_eq!(host.pids_limit, Some(256));
    assert!(host.tmpfs.unwrap().contains_key("/tmp"));
    let labels = info.config.unwrap().labels.unwrap();
    assert_eq!(labels["io.hangar.managed"], "true");
    assert_eq!(labels["io.hangar.provider"], "dk1");
    assert!(!labels["io.hangar.instance"].is_empty());

    // Its stderr is the provider's log.
    let (_, logs) = server.get_json("/providers/dk1/logs").await;
    assert!(
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["line"].as_str().unwrap().contains("hangar-fixture ready")),
        "{logs}"
    );

    // Stop removes the container.
    let (status, v) = server.send(Method::POST, "/providers/dk1/stop", None).await;
    assert_eq!(status, 200, "{v}");
    wait_for("the container's removal", || {
        let docker = docker.clone();
        async move { containers_of(&docker, "dk1").await.is_empty() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_killed_from_outside_is_restarted() {
    let Some(docker) = engine().await else { return };
    let server = Server::start(&format!("providers:\n{}", docker_provider("dk2", ""))).await;
    assert_eq!(
        server.call_text("dk2__add", json!({"a": 1, "b": 1})).await,
        "2"
    );
    let id = containers_of(&docker, "dk2").await[0].id.clone().unwrap();
    docker
        .kill_container(
            &id,
            Some(KillContainerOptionsBuilder::new().signal("SIGKILL").build()),
        )
        .await
        .unwrap();
    // Dead with the exit code as its cause, then back through the backoff.
    wait_for("the provider to notice the kill", || {
        let server = &server;
        async move {
            let (_, p) = server.get_json("/providers/dk2").await;
            p["last_error"]
                .as_str()
                .is_some_and(|c| c.contains("exited with code 137"))
        }
    })
    .await;
    server.wait_state("dk2", "ready").await;
    assert_eq!(
        server.call_text("dk2__add", json!({"a": 2, "b": 2})).await,
        "4"
    );
    let list = containers_of(&docker, "dk2").await;
    assert_eq!(
        list.len(),
        1,
        "the dead container was not removed: {list:?}"
    );
    assert_ne!(list[0].id.as_deref(), Some(id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_left_by_a_killed_server_are_removed_at_the_next_start() {
    let Some(docker) = engine().await else { return };
    let mut server = Server::start(&format!("providers:\n{}", docker_provider("dk3", ""))).await;
    assert_eq!(
        server.call_text("dk3__add", json!({"a": 1, "b": 2})).await,
        "3"
    );
    assert_eq!(containers_of(&docker, "dk3").await.len(), 1);
    server.kill_and_restart().await;
    // The restarted server swept it before serving (the provider is cold).
    assert!(containers_of(&docker, "dk3").await.is_empty());
    assert_eq!(
        server.call_text("dk3__add", json!({"a": 3, "b": 3})).await,
        "6"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_and_a_stopped_engine_are_clear_errors() {
    let Some(_docker) = engine().await else {
        return;
    };
    let config = format!(
        "providers:\n  nope:\n    mode: docker\n    image: hangar-no-such-image:1\n  fx:\n    command: [\"{}\"]\n",
        bin("hangar-fixture").display()
    );
    let server = Server::start(&config).await;
    let (status, v) = server
        .send(Method::POST, "/providers/nope/start", None)
        .await;
    assert_eq!(status, 502, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("hangar-no-such-image:1") && message.contains("never pulls"),
        "{message}"
    );
    // An engine that is not there: every other provider keeps working.
    let dir = tempfile::tempdir().unwrap();
    let gone = format!("unix://{}/docker.sock", dir.path().display());
    let mut cut_off = Server::start_with_env(
        &format!("{config}  dk:\n    mode: docker\n    image: {FIXTURE_IMAGE}\n"),
        &[("DOCKER_HOST", gone.as_str())],
    )
    .await;
    let (status, v) = cut_off
        .send(Method::POST, "/providers/dk/start", None)
        .await;
    assert_eq!(status, 502, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("unreachable"),
        "{v}"
    );
    assert_eq!(
        cut_off.call_text("fx__add", json!({"a": 4, "b": 4})).await,
        "8"
    );
    cut_off.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_fails_over_between_containers_and_processes() {
    let Some(_docker) = engine().await else {
        return;
    };
    let fixture = bin("hangar-fixture").display().to_string();
    let config = format!(
        "providers:\n\
         {dk}\
         \x20 badimg:\n    mode: docker\n    image: hangar-no-such-image:2\n\
         \x20 proc:\n    command: [\"{fixture}\"]\n    env:\n      GREETING: from-process\n\
         \x20 badproc:\n    command: [\"/nonexistent/mcp-server\"]\n\
         groups:\n\
         \x20 to_process:\n    strategy: priority\n    members:\n      - {{ provider: badimg, priority: 1 }}\n      - {{ provider: proc, priority: 2 }}\n\
         \x20 to_container:\n    strategy: priority\n    members:\n      - {{ provider: badproc, priority: 1 }}\n      - {{ provider: dk4, priority: 2 }}\n",
        dk = docker_provider("dk4", "")
    );
    let server = Server::start(&config).await;
    assert_eq!(
        server
            .call_text("to_process__env", json!({"name": "GREETING"}))
            .await,
        "from-process"
    );
    assert_eq!(
        server
            .call_text("to_container__env", json!({"name": "GREETING"}))
            .await,
        "from-container"
    );
}
