//! `ubuntu-ci cancel`: asks the lander running a ticket's request to stop it.

use clap::Args;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::remote::HttpLanders;
use ubuntu_ci_core::Error;

/// Arguments of `cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The ticket (its id or URI)
    #[arg(value_parser = crate::cli::ticket_id)]
    pub ticket: i64,
}

/// Runs `cancel`.
pub async fn run(config: &Config, json: bool, args: CancelArgs) -> anyhow::Result<()> {
    let services = config.connect(None).await?;
    // Unknown tickets are named as such.
    services.tickets.get_ticket(args.ticket).await?;
    let asked = match (&services.requests, &config.server) {
        (Some(requests), _) => requests.request_cancel(args.ticket).await?,
        (None, Some(server)) => {
            HttpLanders::new(server, config.token.clone())?
                .cancel(args.ticket)
                .await?;
            true
        }
        (None, None) => false,
    };
    if !asked {
        return Err(Error::conflict(format!(
            "ticket {} has no request under way (its lander finished, or it never started)",
            args.ticket
        ))
        .into());
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"ticket": args.ticket, "cancel_requested": true})
        );
    } else {
        println!(
            "Asked the lander of ticket {} to stop: it ends its work within seconds, releases \
             the PPA and marks the ticket CANCELLED.",
            args.ticket
        );
    }
    Ok(())
}
