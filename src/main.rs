//! `larder`: parse the command line, set up logging, run the proxy.

use std::process::ExitCode;

use clap::Parser;
use simplelog::{ColorChoice, ConfigBuilder, TermLogger, TerminalMode};

use larder::config::{Cli, Config};
use larder::server::Server;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_config = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .build();
    // Logging is optional: if the terminal logger cannot start, run without it.
    let _ = TermLogger::init(
        cli.log_level,
        log_config,
        TerminalMode::Stderr,
        ColorChoice::Never,
    );
    let config = Config::from(cli);
    let mut server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("larder: {e}");
            return ExitCode::from(2);
        }
    };
    larder::sys::catch_signals();
    if let Some(note) = server.cache_note() {
        eprintln!("larder: {note}");
    }
    // Scripts and tests wait for this line (it is printed at every log level).
    for addr in server.local_addrs() {
        eprintln!("larder: listening on {addr}");
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("larder: {e}");
            ExitCode::FAILURE
        }
    }
}
