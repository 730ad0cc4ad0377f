//! `ubuntu-ci create-ticket`: steps 1 and 2 of the seed flow.

use std::path::PathBuf;

use clap::Args;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::submit::CreateTicket;
use ubuntu_ci_core::Error;

use crate::output;

/// Arguments of `create-ticket`.
#[derive(Debug, Args)]
pub struct CreateTicketArgs {
    /// Ticket title
    #[arg(short = 't', long)]
    pub title: String,
    /// Ticket description
    #[arg(short = 'd', long, default_value = "")]
    pub description: String,
    /// Launchpad bug number (or URL)
    #[arg(short = 'b', long = "bug")]
    pub bug: Option<String>,
    /// Owner [default: `owner` in the config, else DEBEMAIL]
    #[arg(short = 'o', long)]
    pub owner: Option<String>,
    /// A _source.changes; repeat for more source packages
    #[arg(short = 's', long = "source", value_name = "CHANGES", required = true)]
    pub sources: Vec<PathBuf>,
    /// Who looks after the subtickets [default: the owner]
    #[arg(long)]
    pub assignee: Option<String>,
}

/// Runs `create-ticket`.
pub async fn run(config: &Config, json: bool, args: CreateTicketArgs) -> anyhow::Result<()> {
    let owner = args
        .owner
        .or_else(|| config.default_owner())
        .ok_or_else(|| {
            Error::invalid("no owner: pass -o EMAIL, set `owner` in the config, or set DEBEMAIL")
        })?;
    let mut request = CreateTicket::new(owner, args.title).with_description(args.description);
    if let Some(bug) = args.bug {
        request = request.with_bug(bug);
    }
    if let Some(assignee) = args.assignee {
        request = request.with_assignee(assignee);
    }
    for source in args.sources {
        request = request.with_upload(source);
    }
    let services = config.connect(None).await?;
    let ticket = request
        .run(&services, crate::progress::for_terminal(json))
        .await?;
    if json {
        return output::json(&ticket);
    }
    println!(
        "{}",
        config.resource_url(&ticket.ticket.resource_uri.to_string())?
    );
    Ok(())
}
