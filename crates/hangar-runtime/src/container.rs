//! Docker providers: a container per provider, speaking MCP over its attached
//! stdio, through the Docker Engine API (`bollard`; never the `docker` CLI).
//!
//! A container is created hardened unless its spec says otherwise: every
//! capability dropped, `no-new-privileges`, a read-only root with a small
//! tmpfs at `/tmp`, memory, CPU and process limits, no network, Docker's own
//! log driver off (MCP traffic never lands in the engine's log files). It is
//! attached before it starts (nothing it writes is lost), its stdout frames
//! feed the MCP client and its stderr frames the provider's log ring.
//! Containers carry the labels `io.hangar.managed=true`,
//! `io.hangar.provider=<id>` and `io.hangar.instance=<server instance>`;
//! stopping removes them, and at start a server removes what an earlier run
//! of the same data directory left.
//!
//! Images are never pulled: a missing image is an error naming it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bollard::Docker;
use bollard::container::{AttachContainerResults, LogOutput};
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures::StreamExt;
use hangar_core::ProviderSpec;
use hangar_core::spec::{DEFAULT_CPUS, DEFAULT_MEMORY_MB, DEFAULT_PIDS_LIMIT, DEFAULT_TMPFS};
use tokio::sync::watch;

use crate::error::RuntimeError;
use crate::logs::LogRing;
use crate::process::ExitInfo;

/// Label every container Hangar creates carries.
pub const LABEL_MANAGED: &str = "io.hangar.managed";
/// Label naming the provider.
pub const LABEL_PROVIDER: &str = "io.hangar.provider";
/// Label naming the server instance (one per data directory).
pub const LABEL_INSTANCE: &str = "io.hangar.instance";

/// Seconds a container gets between SIGTERM and SIGKILL when stopped.
const STOP_GRACE_S: i32 = 3;
/// How long one call to the engine may take to answer (headers).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(30);
/// Stderr lines of an exited container quoted in its cause.
const CAUSE_LINES: usize = 3;

/// The Docker engine, reached lazily (`DOCKER_HOST`, else the local socket):
/// a server without Docker runs every other provider normally.
pub struct DockerEngine {
    client: ArcSwapOption<Docker>,
    connect: tokio::sync::Mutex<()>,
    instance: String,
}

impl std::fmt::Debug for DockerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerEngine")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// Where the engine is, for messages.
fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
}

fn unreachable(e: &DockerError) -> String {
    format!(
        "the docker engine at {} is unreachable: {e}",
        engine_address()
    )
}

impl DockerEngine {
    /// An engine handle for a server instance (the `io.hangar.instance` label).
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            client: ArcSwapOption::empty(),
            connect: tokio::sync::Mutex::new(()),
            instance: instance.into(),
        }
    }

    /// The server instance id the containers are labelled with.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A client that answered a version negotiation (made once; made again
    /// after the engine was found unreachable).
    async fn client(&self) -> Result<Arc<Docker>, String> {
        if let Some(c) = self.client.load_full() {
            return Ok(c);
        }
        let _one = self.connect.lock().await;
        if let Some(c) = self.client.load_full() {
            return Ok(c);
        }
        let docker = Docker::connect_with_defaults()
            .map_err(|e| unreachable(&e))?
            .with_timeout(ENGINE_TIMEOUT);
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(&e))?;
        let docker = Arc::new(docker);
        self.client.store(Some(docker.clone()));
        Ok(docker)
    }

    /// Forgets the client after a connection failure (the next use reconnects).
    fn forget_if_unreachable(&self, e: &DockerError) {
        if matches!(
            e,
            DockerError::HyperLegacyError { .. }
                | DockerError::SocketNotFoundError(_)
                | DockerError::RequestTimeoutError
                | DockerError::IOError { .. }
        ) {
            self.client.store(None);
        }
    }

    fn labels(&self, provider: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_PROVIDER.to_owned(), provider.to_owned()),
            (LABEL_INSTANCE.to_owned(), self.instance.clone()),
        ])
    }

    /// Removes the containers an earlier run of this server instance left
    /// (killed before it could stop them). An engine that is not there is no
    /// error: there is nothing to sweep. Returns how many were removed.
    pub async fn sweep_strays(&self) -> usize {
        let Ok(docker) = self.client().await else {
            return 0;
        };
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_INSTANCE}={}", self.instance),
            ],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = match docker.list_containers(Some(options)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "could not list stray containers");
                return 0;
            }
        };
        let mut removed = 0;
        for c in list {
            let Some(id) = c.id else { continue };
            let provider = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_PROVIDER))
                .cloned()
                .unwrap_or_default();
            match remove(&docker, &id).await {
                Ok(()) => {
                    tracing::warn!(%provider, container = %short(&id), "removed a container left by an earlier run");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(%provider, container = %short(&id), error = %e, "could not remove a stray container");
                }
            }
        }
        removed
    }

    /// Creates, attaches and starts the container of `provider`, with `env`
    /// (secrets resolved). Its stderr goes to `logs`.
    pub async fn start(
        &self,
        provider: &str,
        spec: &ProviderSpec,
        env: &BTreeMap<String, String>,
        logs: Arc<Mutex<LogRing>>,
    ) -> Result<(Container, ContainerPipes), RuntimeError> {
        let fail = |message: String| RuntimeError::Spawn {
            provider: provider.to_owned(),
            message,
        };
        let docker = self.client().await.map_err(fail)?;
        let image = spec.image.clone().unwrap_or_default();
        if let Err(e) = docker.inspect_image(&image).await {
            self.forget_if_unreachable(&e);
            return Err(fail(match e {
                DockerError::DockerResponseServerError {
                    status_code: 404, ..
                } => format!(
                    "image '{image}' is not on the docker engine, and Hangar never pulls images: \
                     pull or build it there first"
                ),
                other => unreachable(&other),
            }));
        }
        let name = format!("hangar-{provider}-{:08x}", rand::random::<u32>());
        let body = create_body(spec, env, self.labels(provider));
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                body,
            )
            .await
            .map_err(|e| {
                self.forget_if_unreachable(&e);
                fail(format!("creating the container: {e}"))
            })?;
        let id = created.id;
        // Attach before start, so nothing the container writes is lost.
        let attach = AttachContainerOptionsBuilder::new()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(false)
            .build();
        let attached = match docker.attach_container(&id, Some(attach)).await {
            Ok(a) => a,
            Err(e) => {
                let _ = remove(&docker, &id).await;
                return Err(fail(format!("attaching to the container: {e}")));
            }
        };
        if let Err(e) = docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
        {
            let _ = remove(&docker, &id).await;
            return Err(fail(format!("starting the container: {e}")));
        }
        tracing::debug!(provider, container = %short(&id), "container started");
        let AttachContainerResults { output, input } = attached;
        let stderr = logs.clone();
        let stdout = output.filter_map(move |frame| {
            let out = match frame {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    Some(Ok(message))
                }
                Ok(LogOutput::StdErr { message }) => {
                    crate::lock(&stderr).push_chunk(&message);
                    None
                }
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(std::io::Error::other(e))),
            };
            std::future::ready(out)
        });
        let reader = tokio_util::io::StreamReader::new(Box::pin(stdout));
        let exited = watch_exit(docker.clone(), id.clone(), logs);
        Ok((
            Container { id, docker, exited },
            ContainerPipes {
                stdout: Box::pin(reader),
                stdin: input,
            },
        ))
    }
}

/// The MCP pipes of a started container.
pub struct ContainerPipes {
    /// Container → Hangar (stdout frames, as a byte stream).
    pub stdout: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    /// Hangar → container.
    pub stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// A running provider container.
pub struct Container {
    id: String,
    docker: Arc<Docker>,
    /// Becomes `Some` once the container has stopped.
    exited: watch::Receiver<Option<ExitInfo>>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container").field("id", &self.id).finish()
    }
}

impl Container {
    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits until the container has stopped; its exit code and last
    /// stderr lines.
    pub async fn wait(&self) -> ExitInfo {
        crate::process::wait_exit(&self.exited, "container gone").await
    }

    /// Stops the container (SIGTERM, SIGKILL after a grace period) and
    /// removes it.
    pub async fn terminate(&self) {
        let stop = StopContainerOptionsBuilder::new().t(STOP_GRACE_S).build();
        if let Err(e) = self.docker.stop_container(&self.id, Some(stop)).await {
            tracing::debug!(container = %short(&self.id), error = %e, "stop failed; removing by force");
        }
        if let Err(e) = remove(&self.docker, &self.id).await {
            tracing::warn!(container = %short(&self.id), error = %e, "could not remove the container");
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

async fn remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
    match docker
        .remove_container(
            id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
    {
        // Gone already, or being removed: the end is the same.
        Err(DockerError::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Ok(()),
        other => other,
    }
}

/// Watches for the container to stop: its exit code and last stderr lines
/// become the cause.
fn watch_exit(
    docker: Arc<Docker>,
    id: String,
    logs: Arc<Mutex<LogRing>>,
) -> watch::Receiver<Option<ExitInfo>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut wait = std::pin::pin!(docker.wait_container(&id, Some(options)));
        let code = match wait.next().await {
            Some(Ok(r)) => Some(r.status_code),
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Some(code),
            Some(Err(e)) => {
                tracing::debug!(container = %short(&id), error = %e, "waiting for the container failed");
                None
            }
            None => None,
        };
        let mut description = match code {
            Some(code) => format!("container exited with code {code}"),
            None => "container stopped".to_owned(),
        };
        let last: Vec<String> = {
            let mut ring = crate::lock(&logs);
            ring.flush();
            ring.tail(CAUSE_LINES + 1)
                .into_iter()
                .map(|l| l.line)
                .filter(|l| !l.starts_with("[hangar]"))
                .collect()
        };
        if !last.is_empty() {
            description.push_str("; last stderr: ");
            description.push_str(&last.join(" | "));
        }
        crate::lock(&logs).push_note(&format!("[hangar] {description}"));
        let _ = tx.send(Some(ExitInfo { description }));
    });
    rx
}

/// The create request: the spec's settings over hardened defaults.
fn create_body(
    spec: &ProviderSpec,
    env: &BTreeMap<String, String>,
    labels: HashMap<String, String>,
) -> ContainerCreateBody {
    const MIB: i64 = 1024 * 1024;
    let read_only = spec.read_only.unwrap_or(true);
    let memory = match spec.memory_mb.unwrap_or(DEFAULT_MEMORY_MB) {
        0 => None,
        mb => Some(
            i64::try_from(mb)
                .unwrap_or(i64::MAX / MIB)
                .saturating_mul(MIB),
        ),
    };
    let cpus = spec.cpus.unwrap_or(DEFAULT_CPUS);
    // Whole nano-CPUs: the spec bounds cpus to 0.01..=1024.
    #[allow(clippy::cast_possible_truncation)]
    let nano_cpus = (cpus > 0.0).then(|| (cpus * 1e9).round() as i64);
    let pids = match spec.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT) {
        0 => None,
        n => Some(i64::try_from(n).unwrap_or(i64::MAX)),
    };
    let tmpfs_list: Vec<String> = match &spec.tmpfs {
        Some(list) => list.clone(),
        None if read_only => vec![DEFAULT_TMPFS.to_owned()],
        None => Vec::new(),
    };
    let tmpfs: HashMap<String, String> = tmpfs_list
        .iter()
        .map(|m| match m.split_once(':') {
            Some((path, options)) => (path.to_owned(), options.to_owned()),
            None => (m.clone(), String::new()),
        })
        .collect();
    let mut security = Vec::new();
    if spec.no_new_privileges.unwrap_or(true) {
        security.push("no-new-privileges".to_owned());
    }
    let host = HostConfig {
        network_mode: Some(spec.network.clone().unwrap_or_else(|| "none".to_owned())),
        readonly_rootfs: Some(read_only),
        cap_drop: Some(vec!["ALL".to_owned()]),
        cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
        security_opt: (!security.is_empty()).then_some(security),
        memory,
        // No swap beyond the memory limit.
        memory_swap: memory,
        nano_cpus,
        pids_limit: pids,
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        binds: (!spec.volumes.is_empty()).then(|| spec.volumes.clone()),
        auto_remove: Some(false),
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_owned()),
            config: None,
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: spec.image.clone(),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.workdir.clone(),
        user: spec.user.clone(),
        labels: Some(labels),
        open_stdin: Some(true),
        // Closing Hangar's end of stdin closes the container's: an MCP server
        // exits on EOF, so a stop does not wait out the SIGTERM grace (PID 1
        // ignores SIGTERM unless it handles it).
        stdin_once: Some(true),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        host_config: Some(host),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_hardened_unless_the_spec_says_otherwise() {
        let spec = ProviderSpec::docker("img:1");
        let body = create_body(&spec, &BTreeMap::new(), HashMap::new());
        let host = body.host_config.expect("host config");
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(host.cap_add, None);
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_owned()])
        );
        assert_eq!(host.memory, Some(512 * 1024 * 1024));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.nano_cpus, Some(1_000_000_000));
        assert_eq!(host.pids_limit, Some(256));
        assert_eq!(
            host.tmpfs,
            Some(HashMap::from([(
                "/tmp".to_owned(),
                "rw,noexec,nosuid,size=64m".to_owned()
            )]))
        );
        assert_eq!(body.tty, Some(false));
        assert_eq!(body.open_stdin, Some(true));

        let open = ProviderSpec {
            network: Some("bridge".into()),
            read_only: Some(false),
            memory_mb: Some(0),
            cpus: Some(0.5),
            pids_limit: Some(0),
            cap_add: vec!["NET_BIND_SERVICE".into()],
            no_new_privileges: Some(false),
            command: vec!["--flag".into()],
            ..ProviderSpec::docker("img:1")
        };
        let env = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        let body = create_body(&open, &env, HashMap::new());
        let host = body.host_config.expect("host config");
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        assert_eq!(host.readonly_rootfs, Some(false));
        assert_eq!(host.memory, None);
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, None);
        assert_eq!(host.tmpfs, None);
        assert_eq!(host.cap_add, Some(vec!["NET_BIND_SERVICE".to_owned()]));
        assert_eq!(host.security_opt, None);
        assert_eq!(body.cmd, Some(vec!["--flag".to_owned()]));
        assert_eq!(body.env, Some(vec!["A=1".to_owned()]));
    }
}
