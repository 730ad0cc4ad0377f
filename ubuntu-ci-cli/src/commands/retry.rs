//! `ubuntu-ci retry`: takes a failed or cancelled ticket's request up again at the step it
//! stopped at, here, showing it live as `create-ticket --wait` does.

use clap::Args;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::Lander;
use ubuntu_ci_core::queue::QueueName;
use ubuntu_ci_core::Error;

/// Arguments of `retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The ticket (its number)
    pub ticket: i64,
}

/// Runs `retry`.
pub async fn run(config: &Config, json: bool, args: RetryArgs) -> anyhow::Result<()> {
    let services = config.connect(None).await?;
    let (Some(requests), Some(archives)) = (
        services.requests.clone(),
        services.archives.local().cloned(),
    ) else {
        return Err(Error::unsupported(
            "retry through a server needs landers on the server, which are not there yet; \
             without --server it runs the request here",
        )
        .into());
    };
    let ticket = services.tickets.get_ticket(args.ticket).await?;
    let Some(status) = requests.status(args.ticket).await? else {
        return Err(Error::not_found(format!(
            "ticket {} never had a request to retry (create-ticket --wait starts one)",
            args.ticket
        ))
        .into());
    };
    let series = archives.series(Some(&status.progress.series))?;
    let lander = Lander::new(services.clone(), config.lander.options(&series)?);
    let queue = QueueName::fresh(&format!("ticket-{}", args.ticket))?;
    let messages = services.queues.subscribe(&queue, None).await?;
    let handle = lander.retry(args.ticket, Some(queue)).await?;
    if !json {
        eprintln!(
            "==> ticket {}: retrying from {}",
            args.ticket, status.progress.step
        );
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
