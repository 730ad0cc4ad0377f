//! `ubuntu-ci create-ticket`: steps 1 and 2 of the seed flow, and with `--wait` the rest
//! of it, run by the lander here.

use std::path::PathBuf;

use clap::Args;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::remote::HttpLanders;
use ubuntu_ci_core::lander::{ExecuteRequest, Lander, SubmitOptions};
use ubuntu_ci_core::queue::QueueName;
use ubuntu_ci_core::submit::CreateTicket;
use ubuntu_ci_core::Error;

use crate::output::{self, note};

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
    /// Then run the request through every step (build, image, tests, publishing), showing
    /// each as it goes; exit 0 when it completed, 10 when tests failed, 11 when it stopped
    /// at another step. Through a server, the server's lander runs it (always) and this
    /// follows it
    #[arg(long)]
    pub wait: bool,
    /// The series to build and test for [default: the configured one, bookworm]; not the
    /// .changes' Distribution. Locally with --wait; through a server always
    #[arg(long)]
    pub series: Option<String>,
    /// The base image (a URL of the data store) [default: the series' base image, made
    /// once]. Locally with --wait; through a server always
    #[arg(long, value_name = "URL")]
    pub base_image: Option<String>,
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
    for source in args.sources.clone() {
        request = request.with_upload(source);
    }
    let services = config.connect(None).await?;
    let Some(archives) = services.archives.local().cloned() else {
        return through_server(
            config,
            json,
            request,
            &services,
            (args.series, args.base_image, args.wait),
        )
        .await;
    };
    if !args.wait {
        return created(config, json, request, &services).await;
    }
    // Everything --wait needs is checked before the ticket is made.
    let series = archives.series(args.series.as_deref())?;
    let options = config.lander_options(&series)?;
    let ticket = request
        .run(&services, crate::progress::for_terminal(json))
        .await?;
    let id = ticket.ticket.id;
    if !json {
        note!(
            "==> ticket {id}: {}",
            config.resource_url(&ticket.ticket.resource_uri.to_string())?
        );
    }
    let queue = QueueName::new(format!("ticket-{id}-exchange"))?;
    let messages = services.queues.subscribe(&queue, None).await?;
    let submitted = SubmitOptions {
        series: Some(series),
        base_image: args.base_image,
        binary_packages: Vec::new(),
    };
    let execute = ExecuteRequest::for_ticket_with(&ticket, &queue, submitted)?;
    let lander = Lander::new(services.clone(), options);
    let handle = lander.submit(execute).await?;
    crate::commands::request::follow_request(
        config,
        json,
        "create-ticket",
        &ticket.ticket.resource_uri.to_string(),
        messages,
        handle,
    )
    .await
}

/// Through a server: creates the ticket, hands it to the server's lander, and with
/// `--wait` follows it to its end.
async fn through_server(
    config: &Config,
    json: bool,
    request: CreateTicket,
    services: &ubuntu_ci_core::config::Services,
    (series, base_image, wait): (Option<String>, Option<String>, bool),
) -> anyhow::Result<()> {
    let server = config.server.clone().unwrap_or_default();
    let ticket = request
        .run(services, crate::progress::for_terminal(json))
        .await?;
    let id = ticket.ticket.id;
    let url = config.resource_url(&ticket.ticket.resource_uri.to_string())?;
    let options = SubmitOptions {
        series,
        base_image,
        binary_packages: Vec::new(),
    };
    let landers = HttpLanders::new(&server, config.token.clone())?;
    match landers.submit(id, &options).await {
        Ok(_) => {}
        Err(err) if err.kind() == ubuntu_ci_core::ErrorKind::Unsupported && !wait => {
            eprintln!(
                "ubuntu-ci create-ticket: warning: ticket {id} was not handed to a lander: {err}"
            );
        }
        Err(err) => return Err(err.into()),
    }
    if !wait {
        if json {
            return output::json(&ticket);
        }
        println!("{url}");
        return Ok(());
    }
    if !json {
        note!("==> ticket {id}: {url} (its lander runs on {server})");
    }
    let result = crate::commands::status::follow_ticket(services, &ticket, json).await;
    if !json {
        println!("{url}");
    }
    result
}

/// Creates the ticket and prints it.
async fn created(
    config: &Config,
    json: bool,
    request: CreateTicket,
    services: &ubuntu_ci_core::config::Services,
) -> anyhow::Result<()> {
    let ticket = request
        .run(services, crate::progress::for_terminal(json))
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
