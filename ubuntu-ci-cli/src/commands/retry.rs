//! `ubuntu-ci retry`: takes a failed or cancelled ticket's request up again at the step it
//! stopped at, here, showing it live as `create-ticket --wait` does.

use clap::Args;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::remote::HttpLanders;
use ubuntu_ci_core::queue::QueueName;
use ubuntu_ci_core::Error;

use crate::output::note;

/// Arguments of `retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The ticket (its id or URI)
    #[arg(value_parser = crate::cli::ticket_id)]
    pub ticket: i64,
}

/// Runs `retry`.
pub async fn run(config: &Config, json: bool, args: RetryArgs) -> anyhow::Result<()> {
    let services = config.connect(None).await?;
    let ticket = services.tickets.get_ticket(args.ticket).await?;
    let (Some(requests), true) = (
        services.requests.clone(),
        services.archives.local().is_some(),
    ) else {
        let Some(server) = &config.server else {
            return Err(Error::unsupported("retry needs local state or a server").into());
        };
        // The server's lander runs it; its progress is on the ticket.
        let status = HttpLanders::new(server, config.token.clone())?
            .retry(args.ticket)
            .await?;
        if !json {
            note!(
                "==> ticket {}: retrying from {} on {server}",
                args.ticket,
                status.progress.step
            );
        }
        let ticket = services.tickets.get_ticket(args.ticket).await?;
        return crate::commands::status::follow_ticket(&services, &ticket, json).await;
    };
    // Where it stopped, for the message (the lander checks that there is a request to
    // retry; its series is the request's).
    let stopped_at = requests.status(args.ticket).await?.map(|s| s.progress.step);
    let lander = config.lander(&services, None)?;
    let queue = QueueName::fresh(&format!("ticket-{}", args.ticket))?;
    let messages = services.queues.subscribe(&queue, None).await?;
    let handle = lander.retry(args.ticket, Some(queue)).await?;
    if let (false, Some(step)) = (json, stopped_at) {
        note!("==> ticket {}: retrying from {step}", args.ticket);
    }
    crate::commands::request::follow_request(
        config,
        json,
        "retry",
        &ticket.ticket.resource_uri.to_string(),
        messages,
        handle,
    )
    .await
}
