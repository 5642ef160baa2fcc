//! `larder`: parse the command line, set up logging, run the proxy.

use std::process::ExitCode;

use clap::Parser;
use log::warn;
use simplelog::{ColorChoice, ConfigBuilder, TermLogger, TerminalMode};

use larder::cache::dir;
use larder::config::{self, Cli, Config};
use larder::server::Server;

fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A bad LARDER_* value is named as the variable it came from; mistakes on
            // the command line (and --help, --version) get clap's own output.
            if let Some(message) =
                config::env_error(&e, std::env::args_os(), |name| std::env::var_os(name))
            {
                eprintln!("larder: {message}");
                return ExitCode::from(2);
            }
            e.exit();
        }
    };
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
    for listen in &mut cli.listen {
        match listen.drop_unusable(config::probe_listen) {
            Ok(dropped) => {
                for (addr, e) in dropped {
                    warn!(
                        "not listening on {addr}, one of the addresses of {}: {e}",
                        listen.given
                    );
                }
            }
            Err(message) => {
                eprintln!("larder: {message}");
                return ExitCode::from(2);
            }
        }
    }
    let config = Config::from(cli);
    if let Err(message) = config.parents.check() {
        eprintln!("larder: {message}");
        return ExitCode::from(2);
    }
    if let Err(message) = config.cache.check() {
        eprintln!("larder: {message}");
        return ExitCode::from(2);
    }
    let allow = config.allow.clone();
    let mut server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("larder: {e}");
            return ExitCode::from(2);
        }
    };
    larder::sys::catch_signals();
    eprintln!("larder: {}", server.cache_note());
    let (path, capacity) = server.cache_file();
    if let Some(warning) = dir::space_warning(&path, capacity) {
        warn!("{warning}");
    }
    if let Some(warning) = config::loopback_only_warning(&allow, server.local_addrs()) {
        warn!("{warning}");
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
