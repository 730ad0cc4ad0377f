//! `ubuntu-ci build`: builds one source upload into a PPA with sbuild, showing the build
//! log live.

use std::path::PathBuf;

use clap::Args;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::builder::sbuild::SbuildOptions;
use ubuntu_ci_core::builder::standalone;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_core::queue::{DoneState, ProgressMessage};
use ubuntu_ci_core::Error;

use crate::output;

/// Arguments of `build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The _source.changes to build (the files it lists beside it)
    pub changes: PathBuf,
    /// The PPA to build against and publish into (ppa:OWNER/NAME)
    #[arg(long)]
    pub ppa: PpaName,
    /// The series (default: the configured one, bookworm)
    #[arg(long)]
    pub series: Option<String>,
    /// The architecture (default: the host's)
    #[arg(long)]
    pub arch: Option<String>,
}

/// Runs `build`.
pub async fn run(config: &Config, json: bool, args: BuildArgs) -> anyhow::Result<()> {
    let services = config.connect(None).await?;
    let cancel = CancellationToken::new();
    let running = standalone::start(
        &services,
        &args.changes,
        &args.ppa,
        args.series.as_deref(),
        args.arch.as_deref(),
        SbuildOptions::new(&config.data_dir()?),
        cancel.clone(),
    )
    .await?;
    let mut messages = running.messages;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut last = None;
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => {
                    let message = message?;
                    if json {
                        output::json(&message)?;
                    } else {
                        show(&ProgressMessage::from_json(&message.body)?);
                    }
                    last = Some(message);
                }
                None => break,
            },
            _ = &mut interrupted => {
                eprintln!("ubuntu-ci build: interrupted; ending the build…");
                cancel.cancel();
            }
        }
    }
    let done = running
        .done
        .await
        .map_err(|e| Error::internal("the build task failed").with_source(e))??;
    drop(last);
    match done.state {
        DoneState::Completed => Ok(()),
        DoneState::Failed => {
            Err(Error::invalid(done.reason.unwrap_or_else(|| "the build failed".to_owned())).into())
        }
    }
}

fn show(message: &ProgressMessage) {
    match message {
        ProgressMessage::Phase { phase, message } => eprintln!("==> {phase}: {message}"),
        ProgressMessage::Log { log } => {
            for line in log {
                println!("{line}");
            }
        }
        ProgressMessage::Heartbeat { heartbeat, phase } => {
            eprintln!("... {phase} still running ({heartbeat} s)");
        }
        ProgressMessage::Done(done) => match done.state {
            DoneState::Completed => {
                eprintln!("==> done: built and published");
                for url in done
                    .results
                    .get("binaries")
                    .and_then(|b| b.as_array())
                    .into_iter()
                    .flatten()
                {
                    eprintln!("    {}", url.as_str().unwrap_or_default());
                }
            }
            DoneState::Failed => eprintln!("==> FAILED"),
        },
    }
}
