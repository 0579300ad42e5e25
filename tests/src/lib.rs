//! Support for Hangar's end-to-end tests: start the real `hangar-server` on a
//! free loopback port with a temp data dir, talk to it over HTTP.
//!
//! The binaries come from the workspace's `target/debug` (built by
//! `cargo build --workspace`, which `scripts/test.sh` runs first), or from
//! `HANGAR_BIN_DIR`.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test-support library: a failed expectation is a failed test"
)]

pub mod docker;
pub mod mcp_client;
pub mod streams;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The admin key every test server is started with.
pub const ADMIN_KEY: &str = "hgr_e2e_admin_key_0123456789abcdef";

/// Directory holding the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("HANGAR_BIN_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug")
}

/// Path of a workspace binary; panics with a clear message if it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: run `cargo build --workspace` first (or set HANGAR_BIN_DIR)",
        p.display()
    );
    p
}

/// A config with the fixture provider under `id`, plus `extra` YAML lines.
pub fn fixture_config(id: &str, extra: &str) -> String {
    format!(
        "providers:\n  {id}:\n    command: [\"{}\"]\n    env:\n      GREETING: hello\n{extra}",
        bin("hangar-fixture").display()
    )
}

/// Starts `hangar-server` on `yaml` (a config it must refuse) and returns
/// its exit code and stderr.
pub fn refused_config(yaml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hangar.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(bin("hangar-server"))
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `hangar-server`.
pub struct Server {
    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub url: String,
    /// Data directory (kept across restarts of the same test).
    pub data_dir: PathBuf,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
    config_path: PathBuf,
    extra_args: Vec<String>,
    /// `RUST_LOG` of the server.
    log_level: String,
    /// Where the server's stderr goes, if captured.
    log_file: Option<PathBuf>,
    /// `HANGAR_ADMIN_KEY` of the next start.
    admin_key_env: String,
    /// More environment of the server process.
    env: Vec<(String, String)>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Server {
    /// Starts a server with `config` YAML and waits until `/health` answers.
    pub async fn start(config: &str) -> Self {
        Self::start_with(config, &[]).await
    }

    /// Like [`Server::start`], with extra `hangar-server` arguments.
    pub async fn start_with(config: &str, args: &[&str]) -> Self {
        let mut s = Self::prepare(config);
        s.extra_args = args.iter().map(|a| (*a).to_owned()).collect();
        s.spawn().await;
        s
    }

    /// Like [`Server::start`], with more environment variables for the server.
    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        let mut s = Self::prepare(config);
        s.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        s.spawn().await;
        s
    }

    /// Like [`Server::start`], with the server logging at `debug` into a
    /// file read by [`Server::log_text`] (for tests about what logs hold).
    pub async fn start_logged(config: &str) -> Self {
        Self::start_logged_with(config, &[]).await
    }

    /// Like [`Server::start_logged`], with extra `hangar-server` arguments.
    pub async fn start_logged_with(config: &str, args: &[&str]) -> Self {
        let mut s = Self::prepare(config);
        s.log_file = s._tmp.as_ref().map(|t| t.path().join("server.log"));
        s.log_level = "debug".into();
        s.extra_args = args.iter().map(|a| (*a).to_owned()).collect();
        s.spawn().await;
        s
    }

    /// A server not started yet: `config` written to a temp dir that also
    /// holds its data dir.
    fn prepare(config: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let config_path = tmp.path().join("hangar.yaml");
        std::fs::write(&config_path, config).unwrap();
        Self {
            url: String::new(),
            data_dir: tmp.path().join("data"),
            child: None,
            _tmp: Some(tmp),
            config_path,
            extra_args: Vec::new(),
            log_level: "warn".into(),
            log_file: None,
            admin_key_env: ADMIN_KEY.into(),
            env: Vec::new(),
        }
    }

    /// Everything the server wrote to stderr (servers from [`Server::start_logged`]).
    pub fn log_text(&self) -> String {
        self.log_file
            .as_ref()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    async fn spawn(&mut self) {
        let port = free_port();
        self.url = format!("http://127.0.0.1:{port}");
        let stderr = match &self.log_file {
            Some(p) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap(),
            ),
            None => Stdio::inherit(),
        };
        let child = Command::new(bin("hangar-server"))
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(&self.extra_args)
            .env("HANGAR_ADMIN_KEY", &self.admin_key_env)
            .env("RUST_LOG", &self.log_level)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/health", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("hangar-server did not become healthy at {}", self.url);
    }

    /// Sets `HANGAR_ADMIN_KEY` for the next (re)start.
    pub fn set_admin_key_env(&mut self, key: &str) {
        key.clone_into(&mut self.admin_key_env);
    }

    /// A key of a second admin, `reviewer`: held calls are answered by
    /// someone other than their caller (the admin key's principal).
    pub async fn reviewer_key(&self) -> String {
        self.key_for("reviewer", "admin").await
    }

    /// Stops with SIGTERM and starts again on the same data dir and config.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Kills with SIGKILL (no cleanup) and starts again.
    pub async fn kill_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn().await;
    }

    /// SIGTERM and wait (bounded); returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..300 {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok().and_then(|s| s.code())
    }

    /// The config file the server was started with (tests may rewrite it).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The server's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs the `hangar` CLI against this server with the admin key.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("hangar"))
            .arg("--url")
            .arg(&self.url)
            .arg("--key")
            .arg(ADMIN_KEY)
            .args(args)
            .output()
            .unwrap()
    }

    /// `url + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// An authenticated REST request builder.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, self.at(&format!("/api{path}")))
            .bearer_auth(ADMIN_KEY)
    }

    /// An authenticated `POST /mcp` with the Streamable HTTP headers.
    pub fn mcp_post(&self, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .post(self.at("/mcp"))
            .bearer_auth(ADMIN_KEY)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(body)
    }

    /// GET `/api{path}` as JSON (status, body).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.api(reqwest::Method::GET, path).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `/api{path}` with an optional JSON body: (status, JSON body or null).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.api(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `/api{path}` as the holder of `key`: (status, headers, JSON body or null).
    pub async fn call_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .request(method, self.at(&format!("/api{path}")))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (
            status,
            headers,
            r.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Calls `tool` with `arguments` through `/mcp` as the holder of `key`
    /// (stateless 2026-07-28, raw JSON-RPC) and returns the JSON-RPC response
    /// (`result` or `error`).
    pub async fn call_tool_as(
        &self,
        key: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> serde_json::Value {
        self.call_tool_meta(key, tool, arguments, serde_json::json!({}))
            .await
    }

    /// Like [`Server::call_tool_as`], with more `_meta` entries (`meta`, an
    /// object) in the request.
    pub async fn call_tool_meta(
        &self,
        key: &str,
        tool: &str,
        arguments: serde_json::Value,
        meta: serde_json::Value,
    ) -> serde_json::Value {
        let mut body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": tool,
                "arguments": arguments,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "0"},
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        });
        if let (Some(extra), Some(into)) =
            (meta.as_object(), body["params"]["_meta"].as_object_mut())
        {
            into.extend(extra.clone());
        }
        self.post_tools_call(key, &body).await
    }

    /// POSTs the stateless 2026-07-28 `tools/call` `body` (its headers from
    /// the body) as the holder of `key` and returns the JSON-RPC response to
    /// it, from a JSON reply or an SSE stream.
    pub async fn post_tools_call(&self, key: &str, body: &serde_json::Value) -> serde_json::Value {
        let tool = body["params"]["name"].as_str().unwrap_or_default();
        let r = reqwest::Client::new()
            .post(self.at("/mcp"))
            .bearer_auth(key)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", tool)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "{tool}: {text}");
        // A JSON reply, or an SSE stream whose data lines hold the response.
        let messages: Vec<serde_json::Value> = match serde_json::from_str(&text) {
            Ok(v) => vec![v],
            Err(_) => text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str(d.trim()).ok())
                .collect(),
        };
        messages
            .into_iter()
            .find(|m| m["id"] == body["id"])
            .unwrap_or_else(|| panic!("no response to the call in {text}"))
    }

    /// The text of a successful call of `tool` (admin key); panics on an error.
    pub async fn call_text(&self, tool: &str, arguments: serde_json::Value) -> String {
        let response = self.call_tool_as(ADMIN_KEY, tool, arguments).await;
        assert!(response["error"].is_null(), "{tool}: {response}");
        result_text(&response["result"])
    }

    /// Gives `principal` the role `role` and returns a new API key for it.
    pub async fn key_for(&self, principal: &str, role: &str) -> String {
        let (status, v) = self
            .send(
                reqwest::Method::POST,
                &format!("/auth/principals/{principal}/roles"),
                Some(serde_json::json!({ "role_id": role })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let (status, v) = self
            .send(
                reqwest::Method::POST,
                "/auth/keys",
                Some(
                    serde_json::json!({ "principal_id": principal, "name": format!("{role} key") }),
                ),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["raw_key"].as_str().unwrap().to_owned()
    }

    /// Polls `/api/providers/{id}` until `state` or gives up after ~20 s.
    pub async fn wait_state(&self, id: &str, state: &str) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..200 {
            let (_, v) = self.get_json(&format!("/providers/{id}")).await;
            if v["state"] == state {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("provider {id} never reached {state}: {last}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `hangar-fixture --http` on a free loopback port: an MCP server reached
/// over Streamable HTTP (a remote provider). Killed on drop.
pub struct HttpFixture {
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    addr: String,
    legacy: bool,
    child: Option<Child>,
}

impl HttpFixture {
    /// Starts it; `legacy`: the 2025 protocol only (`--legacy`).
    pub async fn start(legacy: bool) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut f = Self {
            url: format!("http://{addr}/mcp"),
            addr,
            legacy,
            child: None,
        };
        f.spawn().await;
        f
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new(bin("hangar-fixture"));
        cmd.arg("--http").arg(&self.addr);
        if self.legacy {
            cmd.arg("--legacy");
        }
        self.child = Some(cmd.stderr(Stdio::null()).spawn().unwrap());
        for _ in 0..200 {
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("hangar-fixture --http did not listen on {}", self.addr);
    }

    /// Kills it and starts it again on the same port (its sessions are gone).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The text content of a `tools/call` result, joined.
pub fn result_text(result: &serde_json::Value) -> String {
    result["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

/// Whether a process exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Pids of live processes whose command line contains `needle` and whose
/// parent is `parent`.
pub fn children_named(parent: u32, needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid = fields.get(1).and_then(|p| p.parse::<u32>().ok());
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(parent) && cmd.contains(needle) && fields.first() != Some(&"Z") {
            out.push(pid);
        }
    }
    out
}
