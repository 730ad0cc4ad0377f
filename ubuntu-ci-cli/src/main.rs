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
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    if matches!(cli.command, cli::Command::Serve(_)) {
        // A server writes to sockets and logs that others may close: a closed one is an
        // error to handle, never a reason to die.
        ignore_sigpipe();
    }
    let json = cli.global.json;
    output::init(cli.global.quiet, cli.global.color);
    init_logging(cli.global.verbose, output::use_color(cli.global.color));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let err =
                ubuntu_ci_core::Error::internal("cannot start the async runtime").with_source(err);
            return report(&err.into(), json);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => report(&err, json),
    }
}

/// Prints `err` on stderr (as one JSON object with `--json`) and returns its exit status.
fn report(err: &anyhow::Error, json: bool) -> std::process::ExitCode {
    let code = exit::code_of(err);
    if json {
        match serde_json::to_string(&exit::JsonError::of(err)) {
            Ok(line) => eprintln!("{line}"),
            Err(_) => eprintln!("ubuntu-ci: error: {}", exit::describe(err)),
        }
    } else {
        eprintln!(
            "ubuntu-ci: {} {}",
            output::red("error:"),
            exit::describe(err)
        );
    }
    std::process::ExitCode::from(code)
}

/// A command line clap refused: its message (as JSON when `--json` or UBUNTU_CI_JSON asks
/// for it), exit 2; `--help` and `--version` print as clap does.
fn usage_error(err: &clap::Error) -> std::process::ExitCode {
    // --json as clap reads it: the flag, or UBUNTU_CI_JSON by the same boolish rule.
    let asked_json = std::env::args_os().any(|a| a == "--json")
        || std::env::var_os("UBUNTU_CI_JSON").is_some_and(|v| {
            use clap::builder::TypedValueParser;
            clap::builder::BoolishValueParser::new()
                .parse_ref(&clap::Command::new("ubuntu-ci"), None, &v)
                .unwrap_or(false)
        });
    if !err.use_stderr() || !asked_json {
        err.exit();
    }
    let error = exit::JsonError {
        kind: "usage",
        message: err.render().to_string().trim().to_owned(),
        retryable: false,
        exit_code: exit::USAGE,
    };
    if let Ok(line) = serde_json::to_string(&error) {
        eprintln!("{line}");
    }
    std::process::ExitCode::from(exit::USAGE)
}

fn init_logging(verbose: u8, color: bool) {
    let default = match verbose {
        0 => "warn",
        1 => "info,ubuntu_ci_core=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("UBUNTU_CI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
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

/// `serve` ignores SIGPIPE again, as Rust programs do: a client or a log reader that went
/// away gives a write error, and the server goes on.
fn ignore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called in main before the runtime (and so any other thread) starts; SIG_IGN
    // is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
