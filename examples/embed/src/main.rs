//! Embedding Hangar: start it from a config in a few lines, call its tools
//! in-process as one of its principals, and mount its routes (`/health`,
//! `/mcp`, `/api`, `/metrics`) in your own axum application.
//!
//! `cargo run -p hangar-embed-example -- examples/config/hangar.yaml`
#![forbid(unsafe_code)]

use std::path::PathBuf;

use axum::routing::get;
use hangar_api::embed::Hangar;

#[tokio::main]
async fn main() {
    // Keep the guard for the program's life (it flushes exported spans on drop).
    let _telemetry = hangar_api::init_tracing(hangar_api::LogFormat::Text);
    let opts = hangar_api::ServerOptions {
        config: std::env::args().nth(1).map(PathBuf::from),
        data_dir: PathBuf::from(".hangar-embed"),
        listen: ([127, 0, 0, 1], 8001).into(),
        ..hangar_api::ServerOptions::default()
    };
    let hangar = match Hangar::start(&opts).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("embed: {e}");
            std::process::exit(e.exit_code());
        }
    };

    // In-process: an MCP client acting as the `admin` principal, through the
    // same policies, approvals and audit as /mcp (no HTTP, no key).
    match hangar.client("admin").await {
        Ok(client) => {
            match client.list_all_tools().await {
                Ok(tools) => eprintln!("in-process: {} tools", tools.len()),
                Err(e) => eprintln!("in-process listing failed: {e}"),
            }
            let _ = client.cancel().await;
        }
        Err(e) => eprintln!("embed: {e}"),
    }

    // Over HTTP: your own routes live next to Hangar's.
    let app = axum::Router::new()
        .route(
            "/hello",
            get(|| async { "hello from the host application" }),
        )
        .merge(hangar.router());
    let listener = match hangar_api::server::bind(opts.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("embed: {e}");
            std::process::exit(e.exit_code());
        }
    };
    eprintln!(
        "embedded Hangar on http://{}/mcp (Ctrl-C to stop)",
        opts.listen
    );
    // Hangar's accept loop: connection cap, write timeout, TCP_NODELAY, peer
    // addresses for the failed-auth backoff (plain `axum::serve` works too).
    let limits = hangar_api::server::ConnectionLimits::default();
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = hangar_api::server::serve(listener, app, limits, stop).await {
        eprintln!("embed: {e}");
    }
    // Stop every provider process before exiting.
    hangar.shutdown().await;
}
