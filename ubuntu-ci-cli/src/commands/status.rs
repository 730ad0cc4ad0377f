//! `ubuntu-ci status`: where a ticket's request stands (its step, what it waits for and its
//! place in line, its builds, image and tests), and with `--follow` its progress until
//! it ends, the exit status saying how.

use clap::Args;
use futures::StreamExt;
use ubuntu_ci_core::config::{Config, Services};
use ubuntu_ci_core::lander::remote::HttpLanders;
use ubuntu_ci_core::lander::store::RequestStatus;
use ubuntu_ci_core::model::{StepStatus, TicketDetail, WorkflowStep};

use crate::exit::{RequestDidNotComplete, TestsDidNotPass};
use crate::output;

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The ticket (its id or URI)
    #[arg(value_parser = crate::cli::ticket_id)]
    pub ticket: i64,
    /// Then print its progress as it comes, until it ends; exit 0 when it completed, 10
    /// when tests failed, 11 when it stopped at another step
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// Runs `status`.
pub async fn run(config: &Config, json: bool, args: StatusArgs) -> anyhow::Result<()> {
    let services = config.connect(None).await?;
    let id = args.ticket;
    let ticket = services.tickets.get_ticket(id).await?;
    let request = request_status(config, &services, id).await?;
    let status = serde_json::json!({"ticket": ticket.ticket, "request": request});
    if json && args.follow {
        // A stream: one JSON object per line, this one first.
        output::json_line(&status)?;
    } else if json {
        output::json(&status)?;
    } else {
        show(&ticket, request.as_ref());
    }
    if !args.follow {
        return Ok(());
    }
    follow_ticket(&services, &ticket, json).await
}

/// The request's status: from the local store, or from the server's landers.
pub async fn request_status(
    config: &Config,
    services: &Services,
    ticket: i64,
) -> anyhow::Result<Option<RequestStatus>> {
    if let Some(requests) = &services.requests {
        return Ok(requests.status(ticket).await?);
    }
    match &config.server {
        Some(server) => Ok(HttpLanders::new(server, config.token.clone())?
            .status(ticket)
            .await?),
        None => Ok(None),
    }
}

/// Prints the ticket's progress as it comes (its events), until it closes; ends as it
/// did: Ok when it completed, [`TestsDidNotPass`] when its tests failed,
/// [`RequestDidNotComplete`] otherwise.
pub async fn follow_ticket(
    services: &Services,
    ticket: &TicketDetail,
    json: bool,
) -> anyhow::Result<()> {
    let id = ticket.ticket.id;
    let mut message = String::new();
    let mut events = ubuntu_ci_core::tickets::follow(services.tickets.clone(), id);
    while let Some(event) = events.next().await {
        let event = event?;
        if json {
            output::json_line(&event)?;
        } else {
            println!(
                "{}  {:<14} {:<11} {}",
                event.created_at.format("%H:%M:%S"),
                event.step,
                event.status,
                event.message
            );
        }
        message = event.message;
    }
    let now = services.tickets.get_ticket(id).await?.ticket;
    let (step, status) = (now.current_workflow_step, now.status);
    match (step, status) {
        (WorkflowStep::Complete, StepStatus::Succeeded) => Ok(()),
        (WorkflowStep::ImageTest, StepStatus::Failed) => {
            Err(TestsDidNotPass(format!("FAILED ({message})")).into())
        }
        (step, _) => Err(RequestDidNotComplete {
            step: step.to_string(),
            reason: message,
        }
        .into()),
    }
}

fn show(detail: &TicketDetail, request: Option<&RequestStatus>) {
    let t = &detail.ticket;
    println!(
        "ticket {}: {} — {} {} ({})",
        t.id,
        t.title,
        t.current_workflow_step,
        t.status,
        format!("{:?}", t.state).to_lowercase()
    );
    show_request(request);
}

/// The request's lines of `status` and `ticket show`.
pub fn show_request(request: Option<&RequestStatus>) {
    let Some(request) = request else {
        println!("no request (create-ticket --wait, or the API, starts one)");
        return;
    };
    let p = &request.progress;
    let state = if request.finished {
        format!("{:?}", p.state).to_uppercase()
    } else if request.cancel_requested {
        "stopping".to_owned()
    } else {
        "under way".to_owned()
    };
    println!(
        "request: {state} at {} (series {})",
        request.step(),
        p.series
    );
    if let (Some(current), false) = (&request.current, request.finished) {
        if !current.activity.is_empty() && request.waiting.is_none() {
            println!("  doing: {}", current.activity);
        }
    }
    if let Some(reason) = &p.reason {
        println!("  reason: {reason}");
    }
    if let Some(waiting) = &request.waiting {
        println!(
            "  waiting for {} since {}: number {} in line",
            waiting.waiting_for, waiting.since, waiting.position
        );
    }
    if let Some(ppa) = &p.ppa {
        println!("  PPA: {ppa}");
    }
    for build in &p.builds {
        println!(
            "  build: {} {} {:?}",
            build.source, build.version, build.state
        );
    }
    if let Some(image) = &p.image {
        println!("  image: {image}");
    }
    for test in &p.tests {
        println!("  tests: {} {}", test.source, test.test_result);
    }
    for published in &p.published {
        println!("  published: {published}");
    }
}
