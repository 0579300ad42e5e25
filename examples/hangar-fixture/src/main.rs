//! `hangar-fixture`: an MCP server over stdio used by Hangar's tests.
//!
//! It serves the MCP conformance fixture surface (tools, resources, prompts)
//! plus a few Hangar-specific test tools (`echo`, `add`, `sleep`, `env`,
//! `crash`). Everything except the MCP protocol itself goes to stderr.

mod cli;
mod conformance;
mod interactive;
mod media;
mod mrtr;
mod prompts;
mod resources;
mod server;
mod state;
mod subscriptions;
mod tools;

use std::io::Write as _;
use std::process::ExitCode;

use rmcp::ServiceExt as _;
use tracing_subscriber::EnvFilter;

use crate::cli::Command;
use crate::server::FixtureServer;

#[tokio::main]
async fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Serve(options)) => options,
        Ok(Command::Help) => {
            eprintln!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("hangar-fixture: {error}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };

    // Logs must never reach stdout: it carries the JSON-RPC stream.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .try_init();

    {
        let mut stderr = std::io::stderr().lock();
        for i in 0..options.stderr_lines {
            let _ = writeln!(stderr, "fixture stderr line {i}");
        }
        let _ = writeln!(stderr, "hangar-fixture ready pid={}", std::process::id());
        let _ = stderr.flush();
    }

    let mut server = FixtureServer::new(options.name);
    if options.legacy {
        server = server.legacy();
    }
    server = server.with_bulk_tools(options.tools);
    if let Some(addr) = options.http {
        return serve_http(server, addr).await;
    }
    let running = match server.serve(rmcp::transport::stdio_pipes()).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("hangar-fixture: failed to start MCP session: {error}");
            return ExitCode::FAILURE;
        }
    };
    match running.waiting().await {
        Ok(reason) => {
            tracing::info!(?reason, "MCP session ended");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("hangar-fixture: MCP session task failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Serves MCP Streamable HTTP at `http://addr/mcp` until Ctrl-C.
async fn serve_http(server: FixtureServer, addr: std::net::SocketAddr) -> ExitCode {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let service = StreamableHttpService::new(
        move || Ok(server.for_new_session()),
        std::sync::Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_json_response(true),
    );
    let app = axum::Router::new().route_service("/mcp", service);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(error) => {
            eprintln!("hangar-fixture: cannot listen on {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!("hangar-fixture serving http://{addr}/mcp");
    let serve = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    match serve.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hangar-fixture: {error}");
            ExitCode::FAILURE
        }
    }
}
