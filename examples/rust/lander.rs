//! One request through the whole pipeline with the SDK, on the embedded defaults, its
//! progress printed as it comes:
//!
//!     cargo run -p ubuntu-ci-core --example lander -- path/to/hello-ci_1.0-1_source.changes
//!
//! The state goes where `ubuntu-ci` keeps it (`$XDG_DATA_HOME/ubuntu-ci`, or
//! `$UBUNTU_CI_DATA_DIR`), so `ubuntu-ci ticket show ID` shows the ticket afterwards.

use std::sync::Arc;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::{ExecuteRequest, Lander};
use ubuntu_ci_core::queue::{ProgressMessage, QueueName};
use ubuntu_ci_core::submit::{CreateTicket, NoProgress};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(changes) = std::env::args().nth(1) else {
        eprintln!("usage: lander PATH/TO/SOURCE.changes");
        std::process::exit(2);
    };
    let mut config = Config::default();
    if let Ok(dir) = std::env::var("UBUNTU_CI_DATA_DIR") {
        config.data_dir = Some(dir.into());
    }
    let services = config.connect(None).await?;

    // Steps 1 and 2 of the seed: the ticket, its uploads stored.
    let ticket = CreateTicket::new("dev@example.com", "through the SDK")
        .with_upload(&changes)
        .run(&services, Arc::new(NoProgress))
        .await?;
    let id = ticket.ticket.id;
    println!("ticket {id}");

    // The rest: the lander, its progress read from the request's queue.
    let queue = QueueName::new(format!("sdk-ticket-{id}"))?;
    let mut progress = services.queues.subscribe(&queue, None).await?;
    let printer = tokio::spawn(async move {
        while let Some(Ok(message)) = progress.next().await {
            match ProgressMessage::from_json(&message.body) {
                Ok(ProgressMessage::Phase { phase, message }) => println!("{phase}: {message}"),
                Ok(ProgressMessage::Tests { current, total, .. }) => {
                    println!("  test {current}/{total}");
                }
                _ => {}
            }
        }
    });
    let request = ExecuteRequest::for_ticket(&ticket, &queue);
    let lander = Lander::new(services.clone(), config.lander_options("bookworm")?);
    let outcome = lander.execute(request, CancellationToken::new()).await?;
    printer.await?;
    println!("{:?} at {}", outcome.state, outcome.step);
    if let Some(reason) = outcome.reason {
        println!("{reason}");
    }
    Ok(())
}
