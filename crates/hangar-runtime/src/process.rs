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
use crate::store::Store;

/// Variables passed through from Hangar's own environment; everything else a
/// provider sees comes from its spec.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"];

/// Pause between stderr reads of a provider writing past its line budget.
const FLOOD_BACKOFF: Duration = Duration::from_millis(20);

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
    /// Where the process group is recorded until it is gone, so a server
    /// killed with SIGKILL finds its strays at the next start.
    ledger: Option<Store>,
}

/// The process group's record: its id and its leader's start time (clock
/// ticks since boot, from `/proc/<pid>/stat`), which tells the leader from a
/// later process that reused its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRecord {
    /// Process group id (the leader's pid).
    pub pgid: i32,
    /// The leader's start time.
    pub start_ticks: u64,
}

/// Fields of `/proc/<pid>/stat` after the command name: (pgrp, starttime).
fn stat_of(pid: i32) -> Option<(i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // state ppid pgrp ... starttime is the 20th field after the name.
    let pgrp = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((pgrp, start))
}

/// Live processes (not zombies) whose process group is `pgid`.
fn members_of(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            !zombie && stat_of(*pid).is_some_and(|(pgrp, _)| pgrp == pgid)
        })
        .collect()
}

/// Kills what is left of a provider's process group recorded by an earlier
/// run of this server (one that was killed before it could stop its
/// providers): grandchildren keep the group alive after the leader exits.
/// A live leader must be the recorded one (same start time); a group whose
/// leader is gone can only be the recorded one (the kernel does not reuse a
/// pid while a group of that id has members). Returns how many processes
/// were killed.
pub fn sweep_group(record: GroupRecord) -> usize {
    let members = members_of(record.pgid);
    if members.is_empty() {
        return 0;
    }
    if let Some((pgrp, start)) = stat_of(record.pgid)
        && pgrp == record.pgid
        && start != record.start_ticks
    {
        // Another process leads a group of that id now: not ours.
        return 0;
    }
    match killpg(Pid::from_raw(record.pgid), Signal::SIGKILL) {
        Ok(()) => members.len(),
        Err(_) => 0,
    }
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
pub async fn spawn(
    provider: &str,
    argv: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&str>,
    logs: Arc<Mutex<LogRing>>,
    ledger: Option<Store>,
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
                    let dropped = crate::lock(&logs).push_chunk(&chunk);
                    if dropped > 0 {
                        // Flooding: read less often, so the flood costs
                        // little CPU here (the pipe fills, the provider waits).
                        tokio::time::sleep(FLOOD_BACKOFF).await;
                    }
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
    if let Some(store) = &ledger
        && let Some((_, start_ticks)) = stat_of(pid)
        && let Err(e) = store
            .record_process_group(
                provider,
                GroupRecord {
                    pgid: pid,
                    start_ticks,
                },
            )
            .await
    {
        tracing::warn!(provider = %provider, error = %e, "could not record the process group");
    }
    Ok((
        ChildProcess {
            pid,
            exited: exit_rx,
            ledger,
        },
        ChildPipes { stdin, stdout },
    ))
}

/// Waits until `exited` holds how something ended (`fallback` when its
/// watcher is gone without saying).
pub(crate) async fn wait_exit(
    exited: &watch::Receiver<Option<ExitInfo>>,
    fallback: &str,
) -> ExitInfo {
    let mut rx = exited.clone();
    loop {
        if let Some(e) = rx.borrow_and_update().clone() {
            return e;
        }
        if rx.changed().await.is_err() {
            return ExitInfo {
                description: fallback.to_owned(),
            };
        }
    }
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
        wait_exit(&self.exited, "exited").await
    }

    /// SIGTERM to the whole process group, SIGKILL after `grace`, then waits
    /// until the process is reaped; the group's record is dropped then.
    pub async fn terminate(&self, grace: Duration) -> ExitInfo {
        let info = self.terminate_group(grace).await;
        if let Some(store) = &self.ledger
            && let Err(e) = store.forget_process_group(self.pid).await
        {
            tracing::warn!(pid = self.pid, error = %e, "could not drop the process group's record");
        }
        info
    }

    async fn terminate_group(&self, grace: Duration) -> ExitInfo {
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
