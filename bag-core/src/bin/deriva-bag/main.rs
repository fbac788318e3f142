//! `deriva-bag`: inspect and validate DerivaML dataset bags offline.
//!
//! A thin layer over `deriva-bag-core`: [`args`] parses the command line, [`commands`]
//! holds one module per subcommand, [`output`] prints JSON or human text, [`progress`]
//! draws bars on an interactive stderr, [`exit`] maps outcomes and errors to the exit
//! status (0 success, 1 validation failure, 2 bad input).

mod args;
mod commands;
mod exit;
mod output;
mod progress;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::commands::{Context, Run};

fn main() -> ExitCode {
    // clap prints its own usage errors and exits with 2 (bad input), --help/--version with 0.
    let cli = args::Cli::parse();
    init_logging();
    let ctx = Context {
        json: cli.global.json,
        progress: progress::Progress::detect(cli.global.json),
        cache_dir: cli.global.cache_dir.clone(),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = cli
        .command
        .run(&ctx, &mut out)
        .and_then(|outcome| out.flush().map(|()| outcome).map_err(Into::into));
    let (status, failure) = exit::finish(result);
    if let Some(failure) = failure {
        eprintln!("{}", failure.render(ctx.json, status));
    }
    exit::exit_code(status)
}

/// Logs go to stderr (stdout carries the command's output); `RUST_LOG` filters, default warn.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file or pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
