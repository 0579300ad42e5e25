//! The Docker engine as the tests see it: through its API (bollard), the way
//! an operator would check on what Hangar did.
//!
//! Without an engine the docker tests are skipped, unless
//! `HANGAR_REQUIRE_DOCKER=1` (set by `.ci/run`, which starts one) turns a
//! missing engine or image into a failure.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;

/// The image `cargo xtask fixture-image` builds.
pub const FIXTURE_IMAGE: &str = "hangar-fixture:dev";

/// The engine at `DOCKER_HOST` with the fixture image, or `None` when the
/// test should be skipped. Panics when docker is required but unusable.
pub async fn engine() -> Option<Docker> {
    let required = std::env::var("HANGAR_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let why = match connect().await {
        Ok(docker) => match docker.inspect_image(FIXTURE_IMAGE).await {
            Ok(_) => return Some(docker),
            Err(e) => {
                format!("image {FIXTURE_IMAGE} is missing ({e}): run `cargo xtask fixture-image`")
            }
        },
        Err(e) => format!("no docker engine ({e})"),
    };
    assert!(!required, "HANGAR_REQUIRE_DOCKER=1 but {why}");
    eprintln!("skipping: {why}");
    None
}

async fn connect() -> Result<Docker, bollard::errors::Error> {
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    docker.ping().await?;
    Ok(docker)
}

/// Every container (running or not) of `provider`.
pub async fn containers_of(docker: &Docker, provider: &str) -> Vec<ContainerSummary> {
    let filters = HashMap::from([(
        "label",
        vec![
            "io.hangar.managed=true".to_owned(),
            format!("io.hangar.provider={provider}"),
        ],
    )]);
    docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap_or_default()
}
