//! Following a worker's progress queue live: phases and heartbeats on stderr, log lines on
//! stdout or stderr (every message as JSON with `--json`), Ctrl-C cancelling the work.

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::queue::{Done, DoneState, MessageStream, ProgressMessage};
use ubuntu_ci_core::{Error, Result};

use crate::exit::DidNotComplete;
use crate::output::{self, note};

/// Where a followed work's log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    /// Standard output: the log is the command's output (`build`).
    Stdout,
    /// Standard error: the command prints its result on standard output (`image`).
    Stderr,
}

/// Shows `messages` until the queue ends, cancels on Ctrl-C, and returns what `done` ends
/// with. `command` names the command in the interruption notice.
///
/// # Errors
/// What the queue or the work report.
pub async fn follow(
    command: &str,
    mut messages: MessageStream,
    mut done: tokio::task::JoinHandle<Result<Done>>,
    cancel: &CancellationToken,
    json: bool,
    log_to: LogTo,
) -> anyhow::Result<Done> {
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    // The work's end, once it came: its final message is then on the queue, which is read
    // to its end. Work that fails before it can report ends the following at once.
    let mut finished: Option<Done> = None;
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => {
                    let message = message?;
                    if json {
                        output::json_line(&message)?;
                    } else {
                        show(&ProgressMessage::from_json(&message.body)?, log_to);
                    }
                }
                None => break,
            },
            result = &mut done, if finished.is_none() => {
                let result = result.map_err(|e| {
                    Error::internal(format!("the {command} task failed")).with_source(e)
                })?;
                finished = Some(result?);
            }
            _ = &mut interrupted => {
                if cancel.is_cancelled() {
                    anyhow::bail!("ubuntu-ci {command}: interrupted twice; leaving without waiting");
                }
                eprintln!("ubuntu-ci {command}: interrupted; ending the work… (Ctrl-C again to leave)");
                cancel.cancel();
                interrupted.set(tokio::signal::ctrl_c());
            }
        }
    }
    match finished {
        Some(finished) => Ok(finished),
        None => Ok(done
            .await
            .map_err(|e| Error::internal(format!("the {command} task failed")).with_source(e))??),
    }
}

/// The failure of `done` as an error, or nothing when it completed: the work refused (bad
/// input, a missing object, …) is an error of that kind (exit 3, 4, …); work that ran and
/// failed is [`DidNotComplete`] (exit 11).
///
/// # Errors
/// As above, with the reason, when `done` failed.
pub fn outcome(done: &Done, what: &str) -> anyhow::Result<()> {
    if done.state == DoneState::Completed {
        return Ok(());
    }
    let reason = done
        .reason
        .clone()
        .unwrap_or_else(|| "no reason given".to_owned());
    Err(match done.error_kind() {
        Some(kind) => Error::new(kind, reason).into(),
        None => DidNotComplete {
            what: what.to_owned(),
            reason,
        }
        .into(),
    })
}

fn show(message: &ProgressMessage, log_to: LogTo) {
    match message {
        ProgressMessage::Phase { phase, message } => {
            note!("{} {message}", output::bold(&format!("==> {phase}:")));
        }
        ProgressMessage::Log { log } => {
            for line in log {
                match log_to {
                    LogTo::Stdout => println!("{line}"),
                    LogTo::Stderr => note!("{line}"),
                }
            }
        }
        ProgressMessage::Tests {
            current,
            total,
            message,
            ..
        } => note!("==> test {current}/{total} ({message})"),
        ProgressMessage::Heartbeat { heartbeat, phase } => {
            note!("... {phase} still running ({heartbeat} s)");
        }
        ProgressMessage::Done(done) => match done.state {
            DoneState::Completed => {
                match (
                    done.results.get("status").and_then(|s| s.as_str()),
                    done.results.get("test_result").and_then(|s| s.as_str()),
                ) {
                    (Some(status), Some(result)) => {
                        note!("==> done: {} ({status})", verdict(result));
                    }
                    _ => note!("==> {}", output::green("done")),
                }
                for key in ["binaries", "url_list", "artifacts"] {
                    for url in done
                        .results
                        .get(key)
                        .and_then(|b| b.as_array())
                        .into_iter()
                        .flatten()
                    {
                        note!("    {}", url.as_str().unwrap_or_default());
                    }
                }
            }
            DoneState::Failed => note!("==> {}", output::red("FAILED")),
        },
    }
}

/// A test verdict, coloured by what it means for a request.
fn verdict(result: &str) -> String {
    match result {
        "FAILED" => output::red(result),
        "PASSED" => output::green(result),
        other => other.to_owned(),
    }
}
