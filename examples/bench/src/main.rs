//! `hangar-bench`: `tools/call` through Hangar versus the same provider called
//! directly, side by side in one run.
//!
//! Direct: an rmcp client speaks stdio to one `hangar-fixture` process.
//! Through Hangar: a release `hangar-server` runs one `hangar-fixture` and the
//! same rmcp client speaks Streamable HTTP (2025 sessions) to `/mcp`.
//! Both call `echo` with the same argument. Reported: latency p50/p99 for one
//! client, added latency (Hangar − direct), throughput with 1, 8 and 64
//! concurrent clients, and the server's own CPU time per call (from
//! `/proc/<pid>/stat`, so the provider's and the client's CPU are excluded).
//!
//! ```text
//! cargo build --release -p hangar-api -p hangar-fixture -p hangar-bench
//! target/release/hangar-bench [--calls N] [--only observers|transports]
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::ProtocolVersion;
use rmcp::model::{CallToolRequestParams, JsonObject};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};

type Client = RunningService<RoleClient, ()>;
type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const KEY: &str = "hgr_bench_0123456789abcdef0123456789abcdef";
const CONCURRENCY: [usize; 3] = [1, 8, 64];

fn bin(name: &str) -> BenchResult<PathBuf> {
    let dir = std::env::var("HANGAR_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("target/release"))
        });
    let p = dir.join(name);
    if !p.exists() {
        return Err(format!(
            "{} not found: cargo build --release -p hangar-api -p hangar-fixture",
            p.display()
        )
        .into());
    }
    Ok(p)
}

fn echo_args() -> JsonObject {
    let mut m = JsonObject::new();
    m.insert(
        "text".into(),
        serde_json::Value::String("hello hangar".into()),
    );
    m
}

async fn direct_client() -> BenchResult<Client> {
    let mut cmd = tokio::process::Command::new(bin("hangar-fixture")?);
    cmd.stderr(Stdio::null());
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    Ok(().serve(transport).await?)
}

async fn rmcp_http_client(url: &str) -> BenchResult<Client> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp")),
    );
    Ok(().serve(transport).await?)
}

/// Kills a spawned process when dropped.
struct ChildGuard(Child);

impl ChildGuard {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn hangar_client(url: &str) -> BenchResult<Client> {
    hangar_client_with(url, ClientLifecycleMode::Initialize).await
}

/// A client on `lifecycle`: `Initialize` = 2025 session, `Discover` = 2026-07-28 stateless.
async fn hangar_client_with(url: &str, lifecycle: ClientLifecycleMode) -> BenchResult<Client> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp")).auth_header(KEY),
    );
    Ok(().serve_with_lifecycle(transport, lifecycle).await?)
}

fn peers(clients: &[Client]) -> Vec<rmcp::Peer<RoleClient>> {
    clients.iter().map(|c| c.peer().clone()).collect()
}

/// Runs `calls` sequential calls on each peer concurrently; returns every
/// call's latency and the wall time.
async fn run(
    peers: &[rmcp::Peer<RoleClient>],
    tool: &'static str,
    calls: usize,
) -> BenchResult<(Vec<Duration>, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in peers {
        let peer = p.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t = Instant::now();
                let r = peer
                    .call_tool(CallToolRequestParams::new(tool).with_arguments(echo_args()))
                    .await?;
                if r.is_error == Some(true) {
                    return Err::<_, Box<dyn std::error::Error + Send + Sync>>("tool error".into());
                }
                lat.push(t.elapsed());
            }
            Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all, started.elapsed()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn cpu_ticks(pid: u32) -> BenchResult<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("bad stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15 (1-based).
    let utime: u64 = f.get(11).ok_or("no utime")?.parse()?;
    let stime: u64 = f.get(12).ok_or("no stime")?.parse()?;
    Ok(utime + stime)
}

/// CPU time of every thread of `pid` so far, in nanoseconds
/// (`/proc/<pid>/task/*/schedstat`: finer than clock ticks).
fn cpu_ns(pid: u32) -> BenchResult<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may end between the listing and the read.
        if let Ok(stat) = std::fs::read_to_string(path) {
            total += stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

/// `tools/list` of 10,000 tools (the fixture with `--tools 9990`): the
/// server's CPU for the first list (built and serialized) and for the
/// repeats (the same catalog, era and visible set: served from the
/// serialized answer), and the reply size.
async fn lists() -> BenchResult<()> {
    let provider = format!(
        "  fx:\n    command: [\"{}\", \"--tools\", \"9990\"]\n    idle_ttl_s: 0\n    health_check_interval_s: 0\n",
        bin("hangar-fixture")?.display()
    );
    let server = start_server_with(&provider, UNLIMITED).await?;
    let pid = server.child.id();
    let client = hangar_client(&server.url).await?;
    // Starts and lists the provider (not measured).
    run(&peers(std::slice::from_ref(&client)), "fx__echo", 1).await?;
    let repeats = 50u32;
    let t0 = cpu_ns(pid)?;
    let first = client.peer().list_tools(None).await?;
    let t1 = cpu_ns(pid)?;
    for _ in 0..repeats {
        client.peer().list_tools(None).await?;
    }
    let t2 = cpu_ns(pid)?;
    let bytes = serde_json::to_vec(&first)?.len();
    let first_ms = (t1 - t0) as f64 / 1e6;
    let repeat_ms = (t2 - t1) as f64 / 1e6 / f64::from(repeats);
    println!(
        "# tools/list of {} tools (2025 session, {:.2} MB reply), server CPU",
        first.tools.len(),
        bytes as f64 / 1e6
    );
    println!("first (built and serialized)   {first_ms:>8.2} ms");
    println!(
        "repeat (serialized answer)     {repeat_ms:>8.2} ms   {:.2}x the first",
        repeat_ms / first_ms
    );
    let _ = client.cancel().await;
    Ok(())
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.wait();
    }
}

/// `server:` settings lifting the per-key rate limit far above
/// what the bench sends.
const UNLIMITED: &str = "server:\n  rate_limit: { requests: 1000000, per_seconds: 1 }\n";

/// The benchmark's subprocess provider, `fx`.
fn fixture_provider() -> BenchResult<String> {
    Ok(format!(
        "  fx:\n    command: [\"{}\"]\n    idle_ttl_s: 0\n    health_check_interval_s: 0\n",
        bin("hangar-fixture")?.display()
    ))
}

async fn start_server(server_settings: &str) -> BenchResult<Server> {
    start_server_with(&fixture_provider()?, server_settings).await
}

/// A server with `providers` (YAML entries under `providers:`).
async fn start_server_with(providers: &str, server_settings: &str) -> BenchResult<Server> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("hangar.yaml");
    std::fs::write(&config, format!("providers:\n{providers}{server_settings}"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin("hangar-server")?)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("HANGAR_ADMIN_KEY", KEY)
        .env("RUST_LOG", "warn")
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let server = Server {
        child,
        url,
        _dir: dir,
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err("hangar-server did not start".into())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let mut calls = 5000usize;
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => calls = args.next().ok_or("--calls needs a number")?.parse()?,
            "--only" => only = Some(args.next().ok_or("--only needs a section")?),
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: hangar-bench [--calls N] [--only observers|transports|lists]"
                )
                .into());
            }
        }
    }
    match only.as_deref() {
        None => {}
        Some("observers") => return observers(calls).await,
        Some("transports") => return transports(calls).await,
        Some("lists") => return lists().await,
        Some(other) => return Err(format!("unknown section {other}").into()),
    }

    // No per-key rate limit in the way of the measurement.
    let server = start_server(UNLIMITED).await?;
    let server_pid = server.child.id();
    let direct = direct_client().await?;
    let hangar = hangar_client(&server.url).await?;
    // Warm up both paths (starts the provider behind Hangar, fills pools).
    run(&peers(std::slice::from_ref(&direct)), "echo", 200).await?;
    run(&peers(std::slice::from_ref(&hangar)), "fx__echo", 200).await?;

    println!("# hangar-bench: tools/call echo, {calls} sequential calls per client");
    println!("# latency, 1 client (ms)        p50      p99");
    let stateless = hangar_client_with(
        &server.url,
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await?;
    run(&peers(std::slice::from_ref(&stateless)), "fx__echo", 200).await?;
    let ticks = clock_ticks_per_second() as f64;
    let mut direct_lat = run(&peers(std::slice::from_ref(&direct)), "echo", calls)
        .await?
        .0;
    direct_lat.sort_unstable();
    let (d50, d99) = (percentile(&direct_lat, 0.5), percentile(&direct_lat, 0.99));
    println!(
        "direct (stdio)                {:>8.3} {:>8.3}",
        ms(d50),
        ms(d99)
    );
    let mut hangar_rows = Vec::new();
    for (label, client) in [
        ("hangar, 2025 session", &hangar),
        ("hangar, 2026 stateless", &stateless),
    ] {
        let cpu0 = cpu_ticks(server_pid)?;
        let mut lat = run(&peers(std::slice::from_ref(client)), "fx__echo", calls)
            .await?
            .0;
        let cpu1 = cpu_ticks(server_pid)?;
        lat.sort_unstable();
        let (h50, h99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        let cpu_ms = (cpu1 - cpu0) as f64 * 1000.0 / ticks;
        hangar_rows.push((label, h50, cpu_ms / calls as f64));
        println!("{label:<30}{:>8.3} {:>8.3}", ms(h50), ms(h99));
        println!(
            "  added by hangar             {:>8.3} {:>8.3}   server CPU/call {:.3} ms ({cpu_ms:.0} ms / {calls})",
            ms(h50.saturating_sub(d50)),
            ms(h99.saturating_sub(d99)),
            cpu_ms / calls as f64
        );
    }
    let _ = stateless.cancel().await;

    // The same 2025-session run against a second server with the event
    // store's per-call writes off (no invocation history).
    let quiet = start_server(&format!("{UNLIMITED}  record_tool_history: false\n")).await?;
    let quiet_client = hangar_client(&quiet.url).await?;
    run(&peers(std::slice::from_ref(&quiet_client)), "fx__echo", 200).await?;
    let cpu0 = cpu_ticks(quiet.child.id())?;
    let mut lat = run(
        &peers(std::slice::from_ref(&quiet_client)),
        "fx__echo",
        calls,
    )
    .await?
    .0;
    let cpu1 = cpu_ticks(quiet.child.id())?;
    lat.sort_unstable();
    let (q50, q99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    let cpu_ms = (cpu1 - cpu0) as f64 * 1000.0 / ticks;
    println!(
        "{:<30}{:>8.3} {:>8.3}",
        "hangar, 2025, history off",
        ms(q50),
        ms(q99)
    );
    println!(
        "  added by hangar             {:>8.3} {:>8.3}   server CPU/call {:.3} ms ({cpu_ms:.0} ms / {calls})",
        ms(q50.saturating_sub(d50)),
        ms(q99.saturating_sub(d99)),
        cpu_ms / calls as f64
    );
    let _ = quiet_client.cancel().await;
    drop(quiet);

    // Baseline: the fixture itself serving Streamable HTTP (rmcp's server
    // alone, no Hangar), to show what the HTTP layer costs by itself.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut http_fixture = ChildGuard(
        Command::new(bin("hangar-fixture")?)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::null())
            .spawn()?,
    );
    let url = format!("http://127.0.0.1:{port}");
    let mut connected = None;
    for _ in 0..200 {
        if let Ok(c) = rmcp_http_client(&url).await {
            connected = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let baseline = connected.ok_or("fixture --http did not start")?;
    run(&peers(std::slice::from_ref(&baseline)), "echo", 200).await?;
    let fixture_pid = http_fixture.0.id();
    let cpu0 = cpu_ticks(fixture_pid)?;
    let mut lat = run(&peers(std::slice::from_ref(&baseline)), "echo", calls)
        .await?
        .0;
    let cpu1 = cpu_ticks(fixture_pid)?;
    lat.sort_unstable();
    let cpu_ms = (cpu1 - cpu0) as f64 * 1000.0 / ticks;
    println!(
        "{:<30}{:>8.3} {:>8.3}",
        "fixture over HTTP (no hangar)",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );
    println!(
        "  rmcp HTTP server + tool, process CPU/call {:.3} ms ({cpu_ms:.0} ms / {calls})",
        cpu_ms / calls as f64
    );
    let floor_p50 = percentile(&lat, 0.5);
    let floor_cpu = cpu_ms / calls as f64;
    println!("# hangar / floor (fixture over HTTP), same run");
    for (label, h50, cpu) in hangar_rows {
        println!(
            "{label:<30} p50 {:.2}x   server CPU/call {:.2}x",
            h50.as_secs_f64() / floor_p50.as_secs_f64(),
            cpu / floor_cpu
        );
    }
    let _ = baseline.cancel().await;

    println!("# throughput (calls/s)    direct    floor   hangar   hangar/direct   hangar/floor");
    for c in CONCURRENCY {
        let per_client = (calls / c).max(50);
        let mut directs = Vec::with_capacity(c);
        let mut hangars = Vec::with_capacity(c);
        // Direct: c concurrent clients on one provider process (rmcp multiplexes).
        for _ in 0..c {
            directs.push(direct.peer().clone());
        }
        for _ in 0..c {
            hangars.push(hangar_client(&server.url).await?);
        }
        let mut floors = Vec::with_capacity(c);
        for _ in 0..c {
            floors.push(rmcp_http_client(&url).await?);
        }
        let (dl, dt) = run(&directs, "echo", per_client).await?;
        let (fl, ft) = run(&peers(&floors), "echo", per_client).await?;
        let (hl, ht) = run(&peers(&hangars), "fx__echo", per_client).await?;
        let dr = dl.len() as f64 / dt.as_secs_f64();
        let fr = fl.len() as f64 / ft.as_secs_f64();
        let hr = hl.len() as f64 / ht.as_secs_f64();
        println!(
            "{c:>3} concurrent clients  {dr:>8.0} {fr:>8.0} {hr:>8.0} {:>15.2} {:>14.2}",
            hr / dr,
            hr / fr
        );
        for h in hangars.into_iter().chain(floors) {
            let _ = h.cancel().await;
        }
    }
    http_fixture.stop();
    let _ = direct.cancel().await;
    let _ = hangar.cancel().await;
    drop(server);
    transports(calls).await?;
    observers(calls).await
}

/// Latency percentiles and the server's CPU per call of `calls` calls.
async fn measure(
    peer: &[rmcp::Peer<RoleClient>],
    pid: u32,
    calls: usize,
) -> BenchResult<(Duration, Duration, f64)> {
    let cpu0 = cpu_ticks(pid)?;
    let mut lat = run(peer, "fx__echo", calls).await?.0;
    let cpu1 = cpu_ticks(pid)?;
    lat.sort_unstable();
    let cpu_ms = (cpu1 - cpu0) as f64 * 1000.0 / clock_ticks_per_second() as f64;
    Ok((
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        cpu_ms / calls as f64,
    ))
}

/// Observers attached while calls run: a client following `GET /api/events`
/// (every call emits its invocation record and its audit record, both
/// delivered over SSE) and a scraper reading `/metrics` every second.
/// Returns the tasks and the number of SSE events received so far.
fn attach_observers(
    url: &str,
) -> BenchResult<(
    Vec<tokio::task::JoinHandle<()>>,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let http = reqwest::Client::builder().build()?;
    let received = std::sync::Arc::new(AtomicU64::new(0));
    let (events, metrics) = (format!("{url}/api/events"), format!("{url}/metrics"));
    let (sse_http, counter) = (http.clone(), received.clone());
    let sse = tokio::spawn(async move {
        let Ok(mut resp) = sse_http.get(&events).bearer_auth(KEY).send().await else {
            return;
        };
        while let Ok(Some(chunk)) = resp.chunk().await {
            let n = chunk.windows(6).filter(|w| w == b"\ndata:").count();
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
    });
    let scraper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Ok(r) = http.get(&metrics).bearer_auth(KEY).send().await {
                let _ = r.bytes().await;
            }
        }
    });
    Ok((vec![sse, scraper], received))
}

/// The call path with observers on vs off, on one server, one 2025-session
/// client: none, then an SSE consumer plus a `/metrics` scraper, then none
/// again (so drift during the run shows), plus what recording one call's
/// metrics costs on its own (in this process, `Metrics::tool_call`).
async fn observers(calls: usize) -> BenchResult<()> {
    let server = start_server(UNLIMITED).await?;
    let pid = server.child.id();
    let client = hangar_client(&server.url).await?;
    let peer = peers(std::slice::from_ref(&client));
    run(&peer, "fx__echo", 200).await?;
    println!(
        "# observers, 2025 session, {calls} calls (ms)       p50      p99  server CPU/call  CPU ratio"
    );
    let mut base = None;
    for (label, observe) in [
        ("none", false),
        ("SSE consumer + /metrics every 1 s", true),
        ("none (again)", false),
    ] {
        let observing = observe.then(|| attach_observers(&server.url)).transpose()?;
        if observing.is_some() {
            // Let the stream open before measuring.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let (p50, p99, cpu) = measure(&peer, pid, calls).await?;
        let base_cpu = *base.get_or_insert(cpu);
        println!(
            "{label:<44}{:>8.3} {:>8.3} {:>12.3} {:>10.2}",
            ms(p50),
            ms(p99),
            cpu,
            cpu / base_cpu
        );
        if let Some((tasks, received)) = observing {
            tokio::time::sleep(Duration::from_millis(500)).await;
            println!(
                "  SSE events received: {} ({} calls)",
                received.load(std::sync::atomic::Ordering::Relaxed),
                calls
            );
            for t in tasks {
                t.abort();
            }
        }
    }
    let _ = client.cancel().await;
    // Recording one call's metrics, alone.
    let metrics = hangar_runtime::Metrics::new(60);
    let n = 1_000_000u32;
    let started = Instant::now();
    for i in 0..n {
        metrics.tool_call(
            "fx",
            "echo",
            "success",
            Duration::from_micros(u64::from(i % 900)),
        );
    }
    let per = started.elapsed().as_secs_f64() * 1e9 / f64::from(n);
    println!("metrics recorded per call (in process)      {per:>8.0} ns");
    Ok(())
}

/// Spawns `hangar-fixture --http` on a free port; its URL.
async fn http_fixture() -> BenchResult<(ChildGuard, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let guard = ChildGuard(
        Command::new(bin("hangar-fixture")?)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::null())
            .spawn()?,
    );
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok((guard, format!("http://127.0.0.1:{port}/mcp")));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err("hangar-fixture --http did not start".into())
}

/// One call through Hangar per provider transport: the same fixture as a
/// subprocess, as a container (`hangar-fixture:dev` on the engine at
/// `DOCKER_HOST`, when there is one) and as a remote endpoint
/// (`hangar-fixture --http`), one server, one 2025-session client.
async fn transports(calls: usize) -> BenchResult<()> {
    let (_remote, endpoint) = http_fixture().await?;
    let docker = std::env::var("DOCKER_HOST").is_ok()
        || std::path::Path::new("/var/run/docker.sock").exists();
    let quiet = "    idle_ttl_s: 0\n    health_check_interval_s: 0\n";
    let mut providers = fixture_provider()?;
    providers.push_str(&format!(
        "  rm:\n    mode: remote\n    endpoint: {endpoint}\n{quiet}"
    ));
    if docker {
        providers.push_str(&format!(
            "  dk:\n    mode: docker\n    image: hangar-fixture:dev\n{quiet}"
        ));
    }
    let server = start_server_with(&providers, UNLIMITED).await?;
    let client = hangar_client(&server.url).await?;
    let peer = peers(std::slice::from_ref(&client));
    let ticks = clock_ticks_per_second() as f64;
    println!(
        "# provider transports through hangar, {calls} calls (ms)   p50      p99   p50 ratio  server CPU/call"
    );
    let mut rows = vec![
        ("subprocess (stdio pipes)", "fx__echo"),
        ("remote (Streamable HTTP)", "rm__echo"),
    ];
    if docker {
        rows.push(("docker (attached stdio)", "dk__echo"));
    }
    let mut base = None;
    for (label, tool) in rows {
        if let Err(e) = run(&peer, tool, 200).await {
            println!("{label:<40} not measured: {e}");
            continue;
        }
        let cpu0 = cpu_ticks(server.child.id())?;
        let mut lat = run(&peer, tool, calls).await?.0;
        let cpu1 = cpu_ticks(server.child.id())?;
        lat.sort_unstable();
        let p50 = percentile(&lat, 0.5);
        let base50 = *base.get_or_insert(p50);
        let cpu_ms = (cpu1 - cpu0) as f64 * 1000.0 / ticks;
        println!(
            "{label:<40}{:>8.3} {:>8.3} {:>9.2} {:>10.3}",
            ms(p50),
            ms(percentile(&lat, 0.99)),
            p50.as_secs_f64() / base50.as_secs_f64(),
            cpu_ms / calls as f64
        );
    }
    if !docker {
        println!(
            "docker (attached stdio)                 not measured: no engine (set DOCKER_HOST)"
        );
    }
    let _ = client.cancel().await;
    Ok(())
}
