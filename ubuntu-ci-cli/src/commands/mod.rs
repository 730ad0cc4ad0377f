//! One module per subcommand; each turns its arguments into one call into the core.

pub mod build;
pub mod cancel;
pub mod create_ticket;
pub mod doctor;
pub mod image;
pub mod manual;
pub mod ppa;
pub mod request;
pub mod retry;
pub mod serve;
pub mod status;
pub mod store;
pub mod test;
pub mod ticket;

use ubuntu_ci_core::config::Config;

use crate::cli::{Cli, Command, Global};

/// The configuration: the file, then `UBUNTU_CI_*` variables, then flags.
pub fn config(global: &Global) -> anyhow::Result<Config> {
    let mut config = Config::load(global.config.as_deref())?.with_env();
    if let Some(dir) = &global.data_dir {
        config.data_dir = Some(dir.clone());
    }
    if let Some(server) = &global.server {
        config.server = Some(server.clone());
    }
    if let Some(token) = &global.token {
        config.token = Some(token.clone());
    }
    Ok(config)
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Generated from the command line's definition alone: no configuration needed.
    match &cli.command {
        Command::Completions(args) => {
            manual::completions(args);
            return Ok(());
        }
        Command::Man(args) => return manual::man(args),
        _ => {}
    }
    let config = config(&cli.global)?;
    let json = cli.global.json;
    match cli.command {
        Command::CreateTicket(args) => create_ticket::run(&config, json, args).await,
        Command::Ticket(command) => ticket::run(&config, json, command).await,
        Command::Store(command) => store::run(&config, json, command).await,
        Command::Ppa(command) => ppa::run(&config, json, command).await,
        Command::Doctor(args) => doctor::run(&config, json, args).await,
        Command::Build(args) => build::run(&config, json, args).await,
        Command::Image(command) => image::run(&config, json, command).await,
        Command::Test(args) => test::run(&config, json, args).await,
        Command::Serve(args) => serve::run(config, args).await,
        Command::Cancel(args) => cancel::run(&config, json, args).await,
        Command::Retry(args) => retry::run(&config, json, args).await,
        Command::Status(args) => status::run(&config, json, args).await,
        // Handled above, before the configuration is read.
        Command::Completions(_) | Command::Man(_) => Ok(()),
    }
}
