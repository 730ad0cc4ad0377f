//! `ubuntu-ci ticket show|list|watch`.

use clap::Subcommand;
use futures::StreamExt;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::model::{PageRequest, TicketDetail, TicketFilter};

use crate::output;

/// Subcommands of `ticket`.
#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Show a ticket with its subtickets, artifacts and progress
    Show {
        /// The ticket's id (or URI)
        #[arg(value_parser = crate::cli::ticket_id)]
        id: i64,
    },
    /// List tickets, newest first
    List {
        /// Only this owner's tickets
        #[arg(long)]
        owner: Option<String>,
        /// Only open or closed tickets
        #[arg(long)]
        state: Option<String>,
        /// Only tickets at this workflow step (NEW, QUEUED, SOURCE_BUILD, …)
        #[arg(long)]
        step: Option<String>,
        /// Only tickets whose step has this status (PENDING, IN_PROGRESS, SUCCEEDED, FAILED, …)
        #[arg(long)]
        status: Option<String>,
        /// At most this many (1 to 1000), newest first
        #[arg(long, default_value_t = PageRequest::DEFAULT_LIMIT)]
        limit: u32,
        /// Skip this many first
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Print a ticket's events as they happen, until it closes
    Watch {
        /// The ticket's id (or URI)
        #[arg(value_parser = crate::cli::ticket_id)]
        id: i64,
        /// Only events after this event id
        #[arg(long)]
        after: Option<i64>,
    },
}

/// Runs `ticket …`.
pub async fn run(config: &Config, json: bool, command: TicketCommand) -> anyhow::Result<()> {
    let services = config.connect(None).await?;
    match command {
        TicketCommand::Show { id } => {
            let ticket = services.tickets.get_ticket(id).await?;
            if json {
                output::json(&ticket)
            } else {
                print_detail(&ticket);
                let request =
                    crate::commands::status::request_status(config, &services, ticket.ticket.id)
                        .await?;
                crate::commands::status::show_request(request.as_ref());
                Ok(())
            }
        }
        TicketCommand::List {
            owner,
            state,
            step,
            status,
            limit,
            offset,
        } => {
            let filter = TicketFilter {
                owner,
                state: state.map(|s| s.parse()).transpose()?,
                step: step.map(|s| s.parse()).transpose()?,
                status: status.map(|s| s.parse()).transpose()?,
            };
            let page = services
                .tickets
                .list_tickets(filter, PageRequest::checked(limit, offset)?)
                .await?;
            if json {
                return output::json(&page);
            }
            println!(
                "{:>6}  {:<14} {:<11} {:<24} TITLE",
                "ID", "STEP", "STATUS", "OWNER"
            );
            for t in &page.objects {
                println!(
                    "{:>6}  {:<14} {:<11} {:<24} {}",
                    t.id, t.current_workflow_step, t.status, t.owner, t.title
                );
            }
            let shown = page.meta.offset + page.objects.len() as u64;
            println!(
                "({} of {} shown)",
                page.objects.len(),
                page.meta.total_count
            );
            if shown < page.meta.total_count {
                println!("more: --offset {shown}");
            }
            Ok(())
        }
        TicketCommand::Watch { id, after } => {
            let mut events = services.tickets.events(id, after).await?;
            while let Some(event) = events.next().await {
                let event = event?;
                if json {
                    println!("{}", serde_json::to_string(&event)?);
                } else {
                    println!(
                        "{}  #{:<5} {:<18} {:<14} {:<11} {}",
                        event.created_at.format("%Y-%m-%d %H:%M:%S"),
                        event.id,
                        event.kind.as_str(),
                        event.step,
                        event.status,
                        event.message
                    );
                }
            }
            Ok(())
        }
    }
}

fn print_detail(detail: &TicketDetail) {
    let t = &detail.ticket;
    println!("Ticket {}: {}", t.id, t.title);
    println!("  uri:         {}", t.resource_uri);
    println!("  owner:       {}", t.owner);
    if !t.bug_id.is_empty() {
        println!("  bug:         {}", t.bug_id);
    }
    if !t.description.is_empty() {
        println!("  description: {}", t.description);
    }
    println!("  step:        {} ({})", t.current_workflow_step, t.status);
    println!(
        "  created:     {}",
        t.created_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    for sub in &detail.subtickets {
        println!(
            "  subticket {}: upload {} (assignee {})",
            sub.id, sub.source_package_upload, sub.assignee
        );
        for a in detail
            .artifacts
            .iter()
            .filter(|a| a.subticket == Some(sub.resource_uri))
        {
            println!(
                "    {:<10} {}  {}",
                a.artifact_type.as_str(),
                a.name,
                a.reference
            );
        }
    }
    for a in detail.artifacts.iter().filter(|a| a.subticket.is_none()) {
        println!(
            "  {:<10} {}  {}",
            a.artifact_type.as_str(),
            a.name,
            a.reference
        );
    }
    if !detail.progress.is_empty() {
        println!("  progress:");
        for p in &detail.progress {
            println!(
                "    {}  {:<14} {:<11} {}",
                p.created_at.format("%H:%M:%S"),
                p.step,
                p.status,
                p.message
            );
        }
    }
}
