//! `hangar serve`: run the Hangar server in this process (what `hangar-server` does).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::args::ServeArgs;

pub fn serve(args: ServeArgs, data_dir: PathBuf) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = hangar_api::init_tracing(args.log_format);
    let options = hangar_api::server::ServerOptions {
        config: args.config,
        config_dir: args.config_dir,
        data_dir,
        listen: args.listen,
        watch: args.watch,
    };
    let result = runtime.block_on(hangar_api::server::run(options));
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
