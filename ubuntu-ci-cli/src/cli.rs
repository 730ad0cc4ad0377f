//! The command line: global options and subcommands, as clap reads them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Continuous integration of Debian/Ubuntu source packages.
#[derive(Debug, Parser)]
#[command(name = "ubuntu-ci", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Where local state lives [default: $XDG_DATA_HOME/ubuntu-ci]
    #[arg(long, global = true, env = "UBUNTU_CI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use the ubuntu-ci server at URL instead of local state
    #[arg(long, global = true, env = "UBUNTU_CI_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for the server
    #[arg(
        long,
        global = true,
        env = "UBUNTU_CI_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Configuration file [default: $XDG_CONFIG_HOME/ubuntu-ci/config.toml]
    #[arg(long, global = true, env = "UBUNTU_CI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print results as JSON
    #[arg(long, global = true, env = "UBUNTU_CI_JSON", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    /// More log output (-v, -vv); UBUNTU_CI_LOG takes a tracing filter
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a ticket for one or more source package uploads and store their files
    #[command(visible_alias = "create_ticket")]
    CreateTicket(crate::commands::create_ticket::CreateTicketArgs),
    /// Show, list and watch tickets
    #[command(subcommand)]
    Ticket(crate::commands::ticket::TicketCommand),
    /// Put, get, list and delete data store objects
    #[command(subcommand)]
    Store(crate::commands::store::StoreCommand),
    /// Get, release and list PPAs; publish into them; print their signing key
    #[command(subcommand)]
    Ppa(crate::commands::ppa::PpaCommand),
    /// Build a source upload into a PPA with sbuild, showing the build log live
    Build(crate::commands::build::BuildArgs),
    /// Make base images, and images with a PPA's packages installed
    #[command(subcommand)]
    Image(crate::commands::image::ImageCommand),
    /// Run a package's DEP-8 tests in an image with autopkgtest, showing them live
    Test(crate::commands::test::TestArgs),
    /// Check this machine's prerequisites (Debian tools, subordinate ids, state) and say how
    /// to fix what is missing
    Doctor,
    /// Run the REST API and serve the data store
    Serve(crate::commands::serve::ServeArgs),
    /// Stop a ticket's request under way (its lander ends the work and releases the PPA)
    Cancel(crate::commands::cancel::CancelArgs),
    /// Take a failed or cancelled ticket's request up again at the step it stopped at
    Retry(crate::commands::retry::RetryArgs),
    /// Where a ticket's request stands; with --follow, its progress until it ends
    Status(crate::commands::status::StatusArgs),
}
