//! Subprocess providers: argv only (never a shell), an explicit environment,
//! their own process group, stderr into the provider's log ring.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio_process_stream::{Item, ProcessChunkStream};

use crate::error::RuntimeError;
use crate::logs::LogRing;
use crate::provider::STOP_GRACE;

/// Variables passed through from Hangar's own environment; everything else a
/// provider sees comes from its spec.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"];

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// Human-readable cause ("exited with code 3", "killed by SIGKILL").
    pub description: String,
}

/// A running provider process.
#[derive(Debug)]
pub struct ChildProcess {
    /// Process id, which is also its process group id.
    pub pid: i32,
    /// Becomes `Some` once the process has exited and been reaped.
    pub exited: watch::Receiver<Option<ExitInfo>>,
}

/// The MCP pipes of a freshly spawned process.
pub struct ChildPipes {
    /// Hangar → provider.
    pub stdin: ChildStdin,
    /// Provider → Hangar.
    pub stdout: ChildStdout,
}

/// Spawns `argv` in its own process group with exactly the given environment
/// (plus [`INHERITED_ENV`]), and starts a task that reads stderr into `logs`
/// and reaps the process.
pub fn spawn(
    provider: &str,
    argv: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&str>,
    logs: Arc<Mutex<LogRing>>,
) -> Result<(ChildProcess, ChildPipes), RuntimeError> {
    let (program, args) = argv.split_first().ok_or_else(|| RuntimeError::Spawn {
        provider: provider.to_owned(),
        message: "empty command".into(),
    })?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for key in INHERITED_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(env);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| RuntimeError::Spawn {
        provider: provider.to_owned(),
        message: format!("{program}: {e}"),
    })?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| RuntimeError::Spawn {
            provider: provider.to_owned(),
            message: "process exited before it could be tracked".into(),
        })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(RuntimeError::Spawn {
            provider: provider.to_owned(),
            message: "stdio pipes missing".into(),
        });
    };
    let (exit_tx, exit_rx) = watch::channel(None);
    let mut stream = ProcessChunkStream::from(child);
    let provider_id = provider.to_owned();
    tokio::spawn(async move {
        let mut exit = None;
        while let Some(item) = stream.next().await {
            match item {
                Item::Stderr(chunk) => {
                    crate::lock(&logs).push_chunk(&chunk);
                }
                Item::Stdout(_) => {}
                Item::Done(status) => {
                    let description = match status {
                        Ok(s) => describe_status(s),
                        Err(e) => format!("wait failed: {e}"),
                    };
                    exit = Some(ExitInfo { description });
                }
            }
        }
        let exit = exit.unwrap_or_else(|| ExitInfo {
            description: "exited".into(),
        });
        {
            let mut l = crate::lock(&logs);
            l.flush();
            l.push_note(&format!("[hangar] process {pid} {}", exit.description));
        }
        tracing::debug!(provider = %provider_id, pid, cause = %exit.description, "provider process reaped");
        let _ = exit_tx.send(Some(exit));
    });
    Ok((
        ChildProcess {
            pid,
            exited: exit_rx,
        },
        ChildPipes { stdin, stdout },
    ))
}

fn describe_status(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = s.code() {
        format!("exited with code {code}")
    } else if let Some(sig) = s.signal() {
        let name = Signal::try_from(sig)
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|_| sig.to_string());
        format!("killed by {name}")
    } else {
        "exited".into()
    }
}

impl ChildProcess {
    /// True once the process has been reaped.
    pub fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    /// Waits until the process has exited and been reaped.
    pub async fn wait(&self) -> ExitInfo {
        let mut rx = self.exited.clone();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                return ExitInfo {
                    description: "exited".into(),
                };
            }
        }
    }

    /// SIGTERM to the whole process group, SIGKILL after `grace`, then waits
    /// until the process is reaped.
    pub async fn terminate(&self, grace: Duration) -> ExitInfo {
        if self.has_exited() {
            // The leader is gone; still sweep any grandchildren left in its group.
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
            return self.wait_bounded().await;
        }
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGTERM);
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(info) => {
                let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                info
            }
            Err(_) => {
                let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                self.wait_bounded().await
            }
        }
    }

    /// Waits for the reap, but not forever: a process that escaped the group
    /// (e.g. via `setsid`) and holds the stderr pipe open delays the reap
    /// until it exits, and must not hang a stop or a shutdown.
    async fn wait_bounded(&self) -> ExitInfo {
        match tokio::time::timeout(STOP_GRACE, self.wait()).await {
            Ok(info) => info,
            Err(_) => {
                tracing::warn!(
                    pid = self.pid,
                    "process killed but not reaped yet: a process outside its group holds its stderr"
                );
                ExitInfo {
                    description: "killed by SIGKILL (reap pending)".into(),
                }
            }
        }
    }
}
