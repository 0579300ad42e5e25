//! `hangar-server`: parses arguments, runs [`hangar_api::run`], maps errors to
//! exit codes (64 for bad usage or config).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// jemalloc, with its background thread purging freed pages: memory of a
/// burst of large replies goes back to the system within seconds (glibc's
/// malloc kept it in per-thread arenas).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Hangar: one MCP endpoint in front of all your MCP servers.
#[derive(Debug, Parser)]
#[command(name = "hangar-server", version)]
struct Args {
    /// YAML config file with a `providers:` (or `mcp_servers:`) map.
    #[arg(long, env = "HANGAR_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of config files that `POST /api/config/reload` may also name
    /// (`*.yaml`/`*.yml` directly in it); without it, only --config.
    #[arg(long, env = "HANGAR_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Directory for hangar.db and admin.key.
    #[arg(long, env = "HANGAR_DATA_DIR", default_value = ".hangar")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "HANGAR_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Reload the config file when it changes (same as POST /api/config/reload).
    #[arg(long, env = "HANGAR_WATCH")]
    watch: bool,
    /// Log format on stderr.
    #[arg(long, env = "HANGAR_LOG_FORMAT", value_enum, default_value_t)]
    log_format: hangar_api::LogFormat,
}

#[tokio::main]
async fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() {
                hangar_api::server::EXIT_CONFIG
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let telemetry = hangar_api::init_tracing(args.log_format);
    let opts = hangar_api::ServerOptions {
        config: args.config,
        config_dir: args.config_dir,
        data_dir: args.data_dir,
        listen: args.listen,
        watch: args.watch,
    };
    let result = hangar_api::run(opts).await;
    telemetry.shutdown();
    if let Err(e) = result {
        eprintln!("hangar-server: {e}");
        std::process::exit(e.exit_code());
    }
}
