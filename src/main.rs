//! The `lanspread` command line: parse the flags, build the config, set up
//! logging, and hand the command to the library.

use std::process::ExitCode;

use clap::Parser;
use lanspread::cli::Cli;
use lanspread::logging;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(generated) = cli.generated() {
        return match generated.print() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err),
        };
    }
    let config = match cli.config() {
        Ok(config) => config,
        Err(err) => return fail(&err),
    };
    let _log_guard = match logging::init(&config.log_dir, cli.logs_to_stderr()) {
        Ok(guard) => guard,
        Err(err) => return fail(&err),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("lanspread: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(cli.run(config)) {
        Ok(code) => code,
        Err(err) => fail(&err),
    };
    // A blocking task still running (an install cut short by shutdown) must not hold the
    // exit: it is left as a crash would leave it, for the journal and startup recovery.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

fn fail(err: &dyn std::error::Error) -> ExitCode {
    eprintln!("lanspread: {err}");
    ExitCode::FAILURE
}
