//! `ubuntu-ci cancel`: asks the lander running a ticket's request to stop it.

use clap::Args;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::Error;

/// Arguments of `cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The ticket (its number)
    pub ticket: i64,
}

/// Runs `cancel`.
pub async fn run(config: &Config, json: bool, args: CancelArgs) -> anyhow::Result<()> {
    let services = config.connect(None).await?;
    let Some(requests) = services.requests.clone() else {
        return Err(Error::unsupported(
            "cancel through a server needs workers and landers on the server, which are not \
             there yet",
        )
        .into());
    };
    // Unknown tickets are named as such.
    services.tickets.get_ticket(args.ticket).await?;
    if !requests.request_cancel(args.ticket).await? {
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
