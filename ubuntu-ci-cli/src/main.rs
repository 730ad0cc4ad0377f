//! `ubuntu-ci`: continuous integration of Debian/Ubuntu source packages, from the command line.
//!
//! Parses arguments, builds the configuration (file, `UBUNTU_CI_*` environment, flags), runs
//! one subcommand from `commands/`, and maps errors to exit codes (`exit.rs`). Every rule
//! lives in `ubuntu-ci-core`; this crate only reads arguments and prints results.

mod cli;
mod commands;
mod exit;
mod follow;
mod output;
mod progress;

use clap::Parser;

fn main() -> std::process::ExitCode {
    restore_sigpipe();
    let cli = cli::Cli::parse();
    init_logging(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ubuntu-ci: cannot start the async runtime: {err}");
            return std::process::ExitCode::from(exit::INTERNAL);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let code = exit::code_of(&err);
            eprintln!("ubuntu-ci: error: {}", exit::describe(&err));
            std::process::ExitCode::from(code)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,ubuntu_ci_core=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("UBUNTU_CI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Rust ignores SIGPIPE, so `ubuntu-ci … | head` would panic on the closed pipe; a command
/// line tool should end quietly instead, as `ls | head` does.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
